//! Runs in headless Chromium (wasm-bindgen-test) against the native server that
//! `tests/browser_chromium.rs` starts and names in `HARDLIGHT_BROWSER_SERVER`, with the
//! SHA-256 hash of its certificate in `HARDLIGHT_BROWSER_CERT_HASH` and the transport the
//! client must end up on in `HARDLIGHT_BROWSER_TRANSPORT` (`webtransport` or `websocket`,
//! the browser is started to allow one or the other); with `HARDLIGHT_BROWSER_GAP` set,
//! that server is in a cluster whose NATS it loses after the shout, and the browser
//! expects the gap notice. The server keeps durable topics with a 200 ms ack wait.

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

/// The client's configuration: the server, whose certificate it accepts by its hash.
fn config() -> ClientConfig {
    let config = ClientConfig::new(format!("wss://{}/", server()));
    match option_env!("HARDLIGHT_BROWSER_CERT_HASH") {
        Some(hex) => {
            let mut hash = [0u8; 32];
            for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
                *byte = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
            }
            config.with_certificate_hash(hash)
        }
        None => config,
    }
}

/// Whether this run's server serves WebTransport.
fn webtransport() -> bool {
    option_env!("HARDLIGHT_BROWSER_TRANSPORT") == Some("webtransport")
}

/// Connects, and checks the transport is the one this run expects.
async fn connected() -> RoomClient {
    let client = RoomClient::with_config(config());
    client.connect().await.expect("connect from the browser");
    let expected = match webtransport() {
        true => TransportKind::WebTransport,
        false => TransportKind::WebSocket,
    };
    assert_eq!(client.transport(), Some(expected));
    client
}

#[wasm_bindgen_test]
async fn calls_state_errors_and_events_from_the_browser() {
    let client = connected().await;

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
    let client = connected().await;
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
    let client = connected().await;
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

#[wasm_bindgen_test]
async fn a_stalled_stream_holds_up_no_other_call() {
    let client = connected().await;
    let mut bulk = client.bulk(256).await.expect("bulk");
    let first = bulk.next().await.expect("a chunk").expect("a chunk");
    // the rest of the 16 MiB is not read: the server is held back by the stream's flow
    // control; calls beside it complete all the same, before the transfer can
    for n in 0..10 {
        assert_eq!(client.add(n, 1).await.expect("add"), n + 1);
    }
    let mut total = first.len();
    while let Some(chunk) = bulk.next().await {
        total += chunk.expect("a chunk").len();
    }
    assert_eq!(total, 256 * 64 * 1024);
    client.disconnect().await;
}

#[wasm_bindgen_test]
async fn a_page_without_webtransport_goes_straight_to_websocket() {
    if webtransport() {
        return;
    }
    // as in a browser that has none: the client does not wait out the QUIC head start
    let global = js_sys::global();
    let constructor = js_sys::Reflect::get(&global, &"WebTransport".into()).unwrap();
    js_sys::Reflect::delete_property(&global, &"WebTransport".into()).unwrap();
    let client = connected().await;
    js_sys::Reflect::set(&global, &"WebTransport".into(), &constructor).unwrap();
    assert_eq!(client.add(1, 2).await.expect("add"), 3);
    client.disconnect().await;
}

#[wasm_bindgen_test]
async fn unreliable_events_reach_the_browser() {
    let client = connected().await;
    let mut events = client.subscribe().await.expect("subscribe");
    client
        .join("waves".into(), "chromium".into())
        .await
        .expect("join");
    // an unreliable event may be lost: wave until one arrives (each wave is followed by
    // a reliable note, so that no wait is open-ended)
    let mut arrived = false;
    for _ in 0..50 {
        client.wave().await.expect("wave");
        loop {
            let event = events.recv().await.expect("an event");
            if event.unreliable {
                assert!(matches!(&event.payload, Shout::Said { from, .. } if from == "wave"));
                arrived = true;
            } else {
                assert_eq!(event.payload, Shout::Note("waved".into()));
                break;
            }
        }
        if arrived {
            break;
        }
    }
    assert!(arrived, "no unreliable event arrived in 50 waves");
    let stats = client.stats();
    assert!(stats.unreliable_received >= 1);
    // over WebTransport they come as datagrams
    assert_eq!(stats.unreliable_datagrams >= 1, webtransport(), "{stats:?}");
    client.disconnect().await;
}
