//! Losing the connection: the client reconnects with backoff and resumes its session
//! (state, subscriptions, events missed meanwhile); in-flight calls fail retriably and are
//! never replayed; a restarted server means a new session; a vanished client's session
//! ends after the grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    board::{note, BoardClient, BoardServer},
    eventually,
    tcp_proxy::TcpProxy,
    udp_proxy::{Faults, UdpProxy},
    KitchenClient,
};
use hardlight::*;

/// Timeouts short enough that a blackholed QUIC connection is noticed within seconds on
/// both sides, with fifteen keep-alives per idle timeout so that a live connection is never
/// mistaken for a lost one, however loaded the machine. (A cut TCP connection is noticed
/// at once.)
fn quick_limits() -> Limits {
    Limits::default()
        .with_idle_timeout(Duration::from_secs(3))
        .with_keep_alive(Duration::from_millis(200))
}

fn quick_reconnect() -> Option<Reconnect> {
    Some(Reconnect {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_attempts: None,
    })
}

async fn board() -> BoardServer {
    BoardServer::start(|c| c.with_limits(quick_limits())).await
}

fn client_via(
    server: &BoardServer,
    addr: std::net::SocketAddr,
    transport: Transport,
) -> BoardClient {
    BoardClient::with_config(
        server
            .config_via(addr, transport)
            .with_limits(quick_limits())
            .with_reconnect(quick_reconnect()),
    )
}

/// Emits notes `range` on `topic`.
async fn emit(server: &BoardServer, topic: &str, range: std::ops::Range<u64>) {
    for seq in range {
        server.emitter.emit(&Topic::from(topic), note(0, seq)).await;
    }
}

async fn expect_notes(events: &mut Subscription<common::board::Note>, range: std::ops::Range<u64>) {
    for seq in range {
        let event = events.recv().await.expect("no loss");
        assert_eq!(event.payload.seq, seq);
    }
}

/// The session survives the loss: same state, same subscriptions, the gap's events
/// delivered in order.
async fn resume_after(
    server: &BoardServer,
    client: &BoardClient,
    cut: impl FnOnce(),
    heal: impl FnOnce(),
) {
    client.connect().await.unwrap();
    let mut status = client.watch_status();
    let mut events = client.subscribe().await.unwrap();
    assert!(client.join("news".into()).await.unwrap());
    emit(server, "news", 0..5).await;
    expect_notes(&mut events, 0..5).await;

    cut();
    status
        .wait_for(|s| matches!(s, ConnectionStatus::Reconnecting { .. }))
        .await
        .unwrap();
    // events emitted while the client is away wait in the session's queue
    emit(server, "news", 5..10).await;
    heal();
    let resumed = status
        .wait_for(ConnectionStatus::is_connected)
        .await
        .unwrap();
    assert!(
        matches!(resumed, ConnectionStatus::Connected { resumed: true, .. }),
        "{resumed:?}"
    );
    expect_notes(&mut events, 5..10).await;
    assert_eq!(
        client.state().await.unwrap().joined,
        vec!["news".to_owned()],
        "state resynced"
    );
    emit(server, "news", 10..11).await;
    expect_notes(&mut events, 10..11).await;
    assert!(client.stats().reconnects >= 1);
    assert_eq!(server.stats.snapshot().sessions_resumed, 1);
}

#[tokio::test]
async fn a_lost_quic_connection_resumes_its_session() {
    let server = board().await;
    let proxy = UdpProxy::start(server.addr, 3).await;
    let client = client_via(&server, proxy.addr, Transport::Quic);
    let blackhole = Faults {
        blackhole: true,
        ..Faults::default()
    };
    resume_after(
        &server,
        &client,
        || proxy.set(blackhole),
        || proxy.set(Faults::default()),
    )
    .await;
}

#[tokio::test]
async fn a_lost_websocket_connection_resumes_its_session() {
    let server = board().await;
    let proxy = TcpProxy::start(server.addr).await;
    let client = client_via(&server, proxy.addr, Transport::WebSocket);
    resume_after(&server, &client, || proxy.cut(), || proxy.heal()).await;
}

#[tokio::test]
async fn in_flight_calls_fail_retriably_and_are_not_replayed() {
    let server = common::TestServer::start_with(|c| c.with_limits(quick_limits())).await;
    let proxy = TcpProxy::start(server.addr).await;
    let client = KitchenClient::with_config(
        server
            .config_via(proxy.addr, Transport::WebSocket)
            .with_limits(quick_limits())
            .with_reconnect(quick_reconnect()),
    );
    client.connect().await.unwrap();
    assert_eq!(client.increment(1).await.unwrap(), 1);
    let slow = {
        let client = client.clone();
        tokio::spawn(async move { client.sleep(60_000).await })
    };
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.increment(0).await }
    });
    // let both calls reach the server, then cut the connection under them
    eventually("the calls reaching the server", || {
        server.stats.snapshot().traffic.calls_in_flight == 1
    })
    .await;
    let _ = pending.await;
    proxy.cut();
    let error = slow.await.unwrap().expect_err("the call was cut off");
    assert!(error.is_retriable(), "{error}");
    proxy.heal();
    let mut status = client.watch_status();
    status
        .wait_for(ConnectionStatus::is_connected)
        .await
        .unwrap();
    assert_eq!(
        client.state().await.unwrap().counter,
        1,
        "the session resumed with its state"
    );
    assert_eq!(
        server.stats.snapshot().traffic.calls,
        3,
        "nothing was replayed after the reconnection"
    );
}

/// A server in its own runtime, so that it can be killed without a goodbye.
struct Killable {
    runtime: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
}

fn identity() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (cert.cert.pem(), cert.key_pair.serialize_pem())
}

impl Killable {
    async fn start(addr: std::net::SocketAddr, (cert, key): &(String, String)) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = ServerConfig::from_pem(addr.to_string(), cert.as_bytes(), key.as_bytes())
            .unwrap()
            .with_limits(quick_limits());
        let (tx, rx) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let mut server = Server::new(config, factory!(common::board::BoardHandler));
            let _ = tx.send(server.bind());
            let _ = server.run().await;
        });
        let addr = rx.await.unwrap().expect("bind");
        Self { runtime, addr }
    }

    /// Stops the server's runtime, dropping every task and socket: no `GoAway`, no
    /// drain, no goodbyes.
    async fn kill(self) {
        let runtime = self.runtime;
        tokio::task::spawn_blocking(move || runtime.shutdown_timeout(Duration::from_secs(5)))
            .await
            .unwrap();
    }
}

/// A proxy in front of a killable server, for either transport: the client keeps the
/// proxy's address while the server behind it is killed and started again on a fresh port
/// (a fixed port could be taken by another test in the meantime).
enum Front {
    Quic(UdpProxy),
    WebSocket(TcpProxy),
}

impl Front {
    async fn start(transport: Transport, server: std::net::SocketAddr) -> Self {
        match transport {
            Transport::WebSocket => Self::WebSocket(TcpProxy::start(server).await),
            _ => Self::Quic(UdpProxy::start(server, 8).await),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Self::Quic(proxy) => proxy.addr,
            Self::WebSocket(proxy) => proxy.addr,
        }
    }

    fn retarget(&self, server: std::net::SocketAddr) {
        match self {
            Self::Quic(proxy) => proxy.retarget(server),
            Self::WebSocket(proxy) => proxy.retarget(server),
        }
    }
}

#[tokio::test]
async fn a_killed_server_fails_calls_and_a_restarted_one_gets_a_new_session() {
    let identity = identity();
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    for transport in [Transport::Quic, Transport::WebSocket] {
        let server = Killable::start(any_port, &identity).await;
        let front = Front::start(transport, server.addr).await;
        let client = BoardClient::with_config(
            common::config_via(front.addr(), &identity.0, transport)
                .with_limits(quick_limits())
                .with_reconnect(quick_reconnect()),
        );
        client.connect().await.unwrap();
        let mut events = client.subscribe().await.unwrap();
        assert!(client.join("news".into()).await.unwrap());
        server.kill().await;
        // a call on the dead connection fails (after the idle timeout over QUIC), never hangs
        let failed = client.join("more".into()).await;
        assert!(
            matches!(&failed, Err(e) if e.is_retriable()),
            "{transport:?}: {failed:?}"
        );
        let mut status = client.watch_status();
        status
            .wait_for(|s| matches!(s, ConnectionStatus::Reconnecting { .. }))
            .await
            .unwrap();
        let restarted = Killable::start(any_port, &identity).await;
        front.retarget(restarted.addr);
        let back = status
            .wait_for(ConnectionStatus::is_connected)
            .await
            .unwrap();
        assert!(
            matches!(back, ConnectionStatus::Connected { resumed: false, .. }),
            "{transport:?}: a restarted server has no sessions: {back:?}"
        );
        assert_eq!(
            events.recv().await.unwrap_err(),
            RecvError::SessionReset,
            "{transport:?}: subscribers learn their subscriptions are gone"
        );
        assert!(client.state().await.unwrap().joined.is_empty());
        assert!(client.join("news".into()).await.unwrap(), "usable again");
        client.disconnect().await;
        restarted.kill().await;
    }
}

#[tokio::test]
async fn a_vanished_clients_session_ends_after_the_grace_period() {
    let mut server = BoardServer::start(|c| {
        c.with_limits(quick_limits()).with_server_limits(
            ServerLimits::default().with_resume_grace(Duration::from_millis(300)),
        )
    })
    .await;
    let proxy = UdpProxy::start(server.addr, 4).await;
    let client = BoardClient::with_config(
        server
            .config_via(proxy.addr, Transport::Quic)
            .with_limits(quick_limits())
            .with_reconnect(None),
    );
    client.connect().await.unwrap();
    assert!(client.join("room".into()).await.unwrap());
    assert_eq!(
        server.next_change().await,
        TopicNotification::Created(Topic::from("room"))
    );
    proxy.set(Faults {
        blackhole: true,
        ..Faults::default()
    });
    assert_eq!(
        server.next_change().await,
        TopicNotification::Removed(Topic::from("room")),
        "Removed fires once the grace period ends"
    );
    let stats = server.stats.snapshot();
    assert_eq!(
        (
            stats.sessions_expired,
            stats.sessions_parked,
            stats.connections_open
        ),
        (1, 0, 0),
        "the session was parked, then expired"
    );
    drop(client);
}

#[tokio::test]
async fn parked_sessions_are_capped_at_max_connections() {
    only_one_parked(ServerLimits::default().with_max_connections(1), None).await;
}

#[tokio::test]
async fn parked_sessions_are_capped_per_address_at_max_connections_per_ip() {
    // (both clients come from 127.0.0.1)
    only_one_parked(ServerLimits::default().with_max_connections_per_ip(1), None).await;
}

#[tokio::test]
async fn parked_sessions_are_capped_per_identity_at_max_connections_per_ip() {
    // the second client comes from 127.0.0.2, as the same identity
    let limits = ServerLimits::default().with_max_connections_per_ip(1);
    only_one_parked(limits, Some([127, 0, 0, 2].into())).await;
}

/// Every client is alice, with a token or without.
async fn everyone_is_alice(_request: AuthRequest) -> Result<Identity, AuthError> {
    Ok(Identity::new("alice"))
}

/// Under `limits`, the server parks the first of two vanished clients' sessions and
/// closes the second's. With `second_from`, the server authenticates both clients as one
/// identity, and the second reaches it from that address.
async fn only_one_parked(limits: ServerLimits, second_from: Option<std::net::IpAddr>) {
    let mut server = BoardServer::start(|c| {
        let c = c
            .with_limits(quick_limits())
            .with_server_limits(limits.with_resume_grace(Duration::from_secs(3600)));
        match second_from {
            Some(_) => c.with_authenticator(everyone_is_alice),
            None => c,
        }
    })
    .await;
    let vanish = |proxy: &UdpProxy| {
        proxy.set(Faults {
            blackhole: true,
            ..Faults::default()
        })
    };
    // the first vanished client's session is kept ...
    let first_proxy = UdpProxy::start(server.addr, 5).await;
    let first = client_via(&server, first_proxy.addr, Transport::Quic);
    first.connect().await.unwrap();
    assert!(first.join("first".into()).await.unwrap());
    vanish(&first_proxy);
    eventually("the first session parked", || {
        let stats = server.stats.snapshot();
        stats.sessions_parked == 1 && stats.connections_open == 0
    })
    .await;
    // ... the second one's is not
    let second_proxy = match second_from {
        Some(from) => UdpProxy::start_from(server.addr, 6, from).await,
        None => UdpProxy::start(server.addr, 6).await,
    };
    let second = client_via(&server, second_proxy.addr, Transport::Quic);
    second.connect().await.unwrap();
    assert!(second.join("second".into()).await.unwrap());
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(server.next_change().await);
    }
    vanish(&second_proxy);
    seen.push(server.next_change().await);
    assert_eq!(
        seen,
        vec![
            TopicNotification::Created(Topic::from("first")),
            TopicNotification::Created(Topic::from("second")),
            TopicNotification::Removed(Topic::from("second")),
        ],
        "the second session ends as soon as its connection is lost"
    );
    assert_eq!(server.stats.snapshot().sessions_parked, 1);
}

#[tokio::test]
async fn events_lost_while_parked_are_reported_and_counted() {
    let server = BoardServer::start(|c| {
        c.with_server_limits(ServerLimits::default().with_max_queued_events(2))
    })
    .await;
    let proxy = TcpProxy::start(server.addr).await;
    let client = BoardClient::with_config(
        server
            .config_via(proxy.addr, Transport::WebSocket)
            .with_reconnect(quick_reconnect()),
    );
    client.connect().await.unwrap();
    let mut events = client.subscribe().await.unwrap();
    assert!(client.join("news".into()).await.unwrap());
    // one at a time: the queue of 2 never overflows while the client reads
    for seq in 0..5 {
        emit(&server, "news", seq..seq + 1).await;
        expect_notes(&mut events, seq..seq + 1).await;
    }

    proxy.cut();
    // the server sees the TCP connection end and parks the session: from now on its
    // events wait in a queue of 2, so of the next 5 the oldest 3 are dropped
    eventually("session parked", || {
        server.stats.snapshot().sessions_parked == 1
    })
    .await;
    emit(&server, "news", 5..10).await;
    proxy.heal();
    assert_eq!(events.recv().await, Err(RecvError::Lagged(3)));
    expect_notes(&mut events, 8..10).await;
    let stats = client.stats();
    assert_eq!((stats.events_received, stats.events_lost), (7, 3));
}
