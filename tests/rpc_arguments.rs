//! A call's arguments are decoded in its handler's first poll, which the server makes as
//! the call arrives: a body that lies in the message it came in (over WebSocket) is let go
//! before the handler runs, so that a handler that waits does not hold its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    future::{pending, Future},
    pin::pin,
    sync::Arc,
    task::{Context, Waker},
};

use hardlight::{
    protocol::{codec::encode, received::Received, service::HandlerFuture},
    *,
};

#[rpc(state = ())]
trait Holder {
    /// Waits for ever, holding its argument.
    async fn hold(&self, data: Vec<u8>) -> HandlerResult<()>;
}

struct Waiting;

impl Holder for Waiting {
    async fn hold(&self, data: Vec<u8>) -> HandlerResult<()> {
        pending::<()>().await;
        drop(data);
        Ok(())
    }
}

#[test]
fn a_body_in_its_message_is_let_go_once_decoded() {
    let archive = encode(&(vec![7u8; 100],)).unwrap();
    // the body lies in its message after another frame's bytes, misaligned
    let message = bytes::Bytes::from([&[0u8; 5][..], &archive].concat());
    let body = Received::Shared(message.slice(5..));
    assert!(!message.is_unique());
    let mut call = HandlerFuture::default();
    Arc::new(Waiting).__hardlight_dispatch(0, body, None, &mut call);
    let mut call = pin!(call);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        call.as_mut().poll(&mut cx).is_pending(),
        "the handler waits"
    );
    assert!(
        message.is_unique(),
        "the waiting handler holds its decoded arguments, not the message"
    );
}
