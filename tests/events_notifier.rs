//! Topic notifications: Created on the first subscriber, Removed on the last one leaving,
//! by unsubscribing or by disconnecting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::board::BoardServer;
use hardlight::{Topic, TopicNotification};

#[tokio::test]
async fn created_and_removed_follow_the_first_and_last_subscriber() {
    let mut server = BoardServer::start(|c| c).await;
    let a = server.client().await;
    let b = server.client().await;

    a.join("x".into()).await.unwrap();
    assert_eq!(
        server.next_change().await,
        TopicNotification::Created(Topic::from("x"))
    );
    b.join("x".into()).await.unwrap(); // not the first: no notification
    a.leave("x".into()).await.unwrap(); // not the last: no notification
    b.join("y".into()).await.unwrap();
    assert_eq!(
        server.next_change().await,
        TopicNotification::Created(Topic::from("y"))
    );
    b.leave("x".into()).await.unwrap();
    assert_eq!(
        server.next_change().await,
        TopicNotification::Removed(Topic::from("x"))
    );

    // the last subscriber disconnecting removes the topic too
    b.disconnect().await;
    assert_eq!(
        server.next_change().await,
        TopicNotification::Removed(Topic::from("y"))
    );
}
