//! A UDP proxy between QUIC clients and a server that can lose, duplicate and reorder
//! packets (from a fixed seed, so runs repeat), stop forwarding entirely, or forward only
//! a client's first packets.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::{net::UdpSocket, task::JoinHandle};

/// What the proxy does to packets, in both directions.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Drop everything.
    pub blackhole: bool,
    /// Probability of dropping a packet.
    pub drop: f64,
    /// Probability of sending a packet twice.
    pub duplicate: f64,
    /// Probability of holding a packet back until after the next one.
    pub reorder: f64,
    /// Forward only this many packets from each client (then drop the rest).
    pub client_packets: Option<usize>,
}

struct State {
    faults: Faults,
    /// Where packets go, and how many times that changed.
    server: SocketAddr,
    generation: u64,
    rng: StdRng,
    /// A packet held back for reordering, per direction and client.
    held: HashMap<(SocketAddr, bool), Vec<u8>>,
    sent_by_client: HashMap<SocketAddr, usize>,
    /// The address packets reach the server from.
    from: IpAddr,
    /// Packets from clients, as they came, while recording.
    recorded: Option<Vec<Vec<u8>>>,
}

/// A running proxy; stops on drop.
pub struct UdpProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl UdpProxy {
    /// Proxies to `server`, with `seed` for the random faults.
    pub async fn start(server: SocketAddr, seed: u64) -> Self {
        Self::start_from(server, seed, IpAddr::from([127, 0, 0, 1])).await
    }

    /// Like [`UdpProxy::start`], reaching the server from address `from` (another
    /// loopback address: to the server, another host).
    pub async fn start_from(server: SocketAddr, seed: u64, from: IpAddr) -> Self {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            faults: Faults::default(),
            server,
            generation: 0,
            rng: StdRng::seed_from_u64(seed),
            held: HashMap::new(),
            sent_by_client: HashMap::new(),
            from,
            recorded: None,
        }));
        let task = tokio::spawn(run(socket, Arc::clone(&state)));
        Self { addr, state, task }
    }

    /// Applies `faults` from now on.
    pub fn set(&self, faults: Faults) {
        self.state.lock().unwrap().faults = faults;
    }

    /// Records the packets clients send from now on, for [`UdpProxy::replay`].
    pub fn record(&self) {
        self.state.lock().unwrap().recorded = Some(Vec::new());
    }

    /// Sends the recorded packets to the server again, in order, from a new address: an
    /// attacker replaying what it captured.
    pub async fn replay(&self) {
        let (packets, server, from) = {
            let state = self.state.lock().unwrap();
            (
                state.recorded.clone().unwrap_or_default(),
                state.server,
                state.from,
            )
        };
        let socket = UdpSocket::bind((from, 0)).await.unwrap();
        for packet in packets {
            let _ = socket.send_to(&packet, server).await;
        }
    }

    /// Sends every packet to `server` from now on, as if the old server's host had come
    /// back under a new port (clients keep the proxy's address).
    pub fn retarget(&self, server: SocketAddr) {
        let mut state = self.state.lock().unwrap();
        state.server = server;
        state.generation += 1;
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to send for one packet: nothing, once, twice, or with a held-back one after it.
fn decide(state: &mut State, client: SocketAddr, to_server: bool, packet: Vec<u8>) -> Vec<Vec<u8>> {
    let faults = state.faults.clone();
    if faults.blackhole {
        return Vec::new();
    }
    if to_server {
        let sent = state.sent_by_client.entry(client).or_default();
        *sent += 1;
        if faults.client_packets.is_some_and(|limit| *sent > limit) {
            return Vec::new();
        }
    }
    if state.rng.random_bool(faults.drop.clamp(0.0, 1.0)) {
        return Vec::new();
    }
    let key = (client, to_server);
    if state.rng.random_bool(faults.reorder.clamp(0.0, 1.0)) && !state.held.contains_key(&key) {
        state.held.insert(key, packet);
        return Vec::new();
    }
    let mut out = vec![packet.clone()];
    if state.rng.random_bool(faults.duplicate.clamp(0.0, 1.0)) {
        out.push(packet);
    }
    if let Some(held) = state.held.remove(&key) {
        out.push(held);
    }
    out
}

async fn run(socket: Arc<UdpSocket>, state: Arc<Mutex<State>>) {
    let mut upstreams: HashMap<SocketAddr, (u64, Arc<UdpSocket>)> = HashMap::new();
    // dropped (and so aborted) with this task
    let mut tasks = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((len, client)) = socket.recv_from(&mut buf).await {
        let (server, generation) = {
            let state = state.lock().unwrap();
            (state.server, state.generation)
        };
        let upstream = match upstreams.get(&client) {
            Some((made_for, upstream)) if *made_for == generation => Arc::clone(upstream),
            _ => {
                let from = state.lock().unwrap().from;
                let upstream = Arc::new(UdpSocket::bind((from, 0)).await.unwrap());
                upstream.connect(server).await.unwrap();
                upstreams.insert(client, (generation, Arc::clone(&upstream)));
                tasks.spawn(replies(
                    Arc::clone(&upstream),
                    Arc::clone(&socket),
                    client,
                    Arc::clone(&state),
                ));
                upstream
            }
        };
        let packets = {
            let mut state = state.lock().unwrap();
            if let Some(recorded) = &mut state.recorded {
                recorded.push(buf[..len].to_vec());
            }
            decide(&mut state, client, true, buf[..len].to_vec())
        };
        for packet in packets {
            let _ = upstream.send(&packet).await;
        }
    }
}

async fn replies(
    upstream: Arc<UdpSocket>,
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    state: Arc<Mutex<State>>,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(len) = upstream.recv(&mut buf).await {
        let packets = decide(
            &mut state.lock().unwrap(),
            client,
            false,
            buf[..len].to_vec(),
        );
        for packet in packets {
            let _ = socket.send_to(&packet, client).await;
        }
    }
}
