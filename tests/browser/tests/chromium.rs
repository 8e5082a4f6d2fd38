//! Runs in headless Chromium (wasm-bindgen-test) against the native server that
//! `tests/browser_chromium.rs` starts and names in `HARDLIGHT_BROWSER_SERVER`; with
//! `HARDLIGHT_BROWSER_GAP` set, that server is in a cluster whose NATS it loses after the
//! shout, and the browser expects the gap notice. The server keeps durable topics with a
//! 200 ms ack wait.

use futures_util::StreamExt;
use hardlight::*;
use hardlight_browser_tests::service::{BrowserError, RoomClient, Shout};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn server() -> &'static str {
    option_env!("HARDLIGHT_BROWSER_SERVER").expect(
        "HARDLIGHT_BROWSER_SERVER names the server; run this through tests/browser_chromium.rs",
    )
}

#[wasm_bindgen_test]
async fn calls_state_errors_and_events_from_the_browser() {
    let client = RoomClient::with_config(ClientConfig::new(format!("wss://{}/", server())));
    client.connect().await.expect("connect from the browser");
    assert_eq!(client.transport(), Some(TransportKind::WebSocket));

    // typed calls
    assert_eq!(client.add(40, 2).await.expect("add"), 42);

    // state: the handler's writes are visible as soon as the call returns
    let mut events = client.subscribe().await.expect("subscribe");
    client
        .join("lobby".into(), "chromium".into())
        .await
        .expect("join");
    let state = client.state().await.expect("state");
    assert_eq!(
        (state.name.as_str(), state.room.as_str()),
        ("chromium", "lobby")
    );

    // events of the room the handler subscribed us to
    assert_eq!(
        client.shout("hello from wasm".into()).await.expect("shout"),
        1
    );
    assert_eq!(client.state().await.expect("state").shouts, 1);
    let event = events.recv().await.expect("an event");
    assert_eq!(event.topic, Topic::from("lobby"));
    assert_eq!(
        event.payload,
        Shout::Said {
            from: "chromium".into(),
            text: "hello from wasm".into()
        }
    );

    // a gap: the server's cluster link to NATS goes down once it has served the shout
    if option_env!("HARDLIGHT_BROWSER_GAP").is_some() {
        assert_eq!(
            events.recv().await,
            Err(RecvError::Gap(Topic::from("lobby"))),
            "the loss notice reaches the browser"
        );
        assert_eq!(client.stats().gaps, 1);
    }

    // the handler's own error, typed
    match client.shout("x".repeat(500)).await {
        Err(RpcError::Handler(BrowserError::TooLong { limit })) => assert_eq!(limit, 280),
        other => panic!("expected TooLong, got {other:?}"),
    }

    client.disconnect().await;
    assert!(!client.is_connected());
}

#[wasm_bindgen_test]
async fn streaming_calls_from_the_browser() {
    let client = RoomClient::with_config(ClientConfig::new(format!("wss://{}/", server())));
    client.connect().await.expect("connect from the browser");
    let mut numbers = client.count_to(50).await.expect("count_to");
    let mut seen = Vec::new();
    while let Some(n) = numbers.next().await {
        let n = n.expect("an item");
        let counted = client.state().await.expect("state").counted;
        assert!(counted >= n, "item {n} came before its state ({counted})");
        seen.push(n);
    }
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());

    // the browser's own stream, and both ways at once
    let words = ["streams", "from", "the", "browser"].map(String::from);
    let total = client
        .measure(futures_util::stream::iter(words.clone()))
        .await
        .expect("measure");
    assert_eq!(total, 21);
    let shouted: Vec<String> = client
        .shout_back(futures_util::stream::iter(words))
        .await
        .expect("shout_back")
        .map(|word| word.expect("a word"))
        .collect()
        .await;
    assert_eq!(shouted, ["STREAMS", "FROM", "THE", "BROWSER"]);
    client.disconnect().await;
}

#[wasm_bindgen_test]
async fn durable_events_are_acked_from_the_browser_and_redelivered_when_not() {
    let client = RoomClient::with_config(ClientConfig::new(format!("wss://{}/", server())));
    client.connect().await.expect("connect from the browser");
    let mut notes = client.durable().await.expect("durable");
    client.read_notes().await.expect("read notes");
    let first = client.note("one".into()).await.expect("note");
    let event = notes.recv().await.expect("a durable event");
    assert_eq!(
        (&event.payload, event.position, event.attempt),
        (&Shout::Note("one".into()), first, 1)
    );
    event.ack().expect("ack");
    // not acked: delivered again after the ack wait, with its position
    let second = client.note("two".into()).await.expect("note");
    let event = notes.recv().await.expect("a durable event");
    assert_eq!(
        (&event.payload, event.attempt),
        (&Shout::Note("two".into()), 1)
    );
    let again = notes.recv().await.expect("the redelivery");
    assert_eq!(
        (
            &again.payload,
            again.position,
            again.attempt,
            again.is_redelivery()
        ),
        (&Shout::Note("two".into()), second, 2, true)
    );
    again.ack().expect("ack");
    assert!(second.follows(first));
    assert_eq!(client.stats().durable_received, 3);
    client.disconnect().await;
}
