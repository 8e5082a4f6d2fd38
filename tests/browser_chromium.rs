//! The wasm client in real headless Chromium against a real native server: typed calls,
//! state updates, typed errors, events, durable events (acked, and redelivered when
//! not), streaming calls of all three kinds and a stalled stream beside other calls —
//! the whole suite twice: over WebTransport (the server's self-signed certificate
//! accepted by its hash, and by nothing else), then against a server without
//! WebTransport, where the client falls back to WebSocket by itself (and, in one test,
//! in a page without WebTransport at all).
//!
//! Needs the `wasm32-unknown-unknown` target, `wasm-bindgen-test-runner` (wasm-bindgen-cli
//! at the version in `tests/browser/Cargo.lock`), `chromium` and `chromedriver`; `.ci/run`
//! installs them. Without them the test is skipped, except under CI, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;
#[path = "browser/src/service.rs"]
mod service;

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use hardlight::*;
use service::{BrowserError, Room, Shout};

#[rpc_handler]
impl Room for Handler {
    async fn add(&self, a: i32, b: i32) -> HandlerResult<i32> {
        Ok(a + b)
    }

    async fn join(&self, room: String, name: String) -> HandlerResult<()> {
        self.subscriptions.add(&Topic::from(room.as_str()));
        let mut state = self.state.write().await;
        state.room = room;
        state.name = name;
        Ok(())
    }

    async fn shout(&self, text: String) -> HandlerResult<u32, BrowserError> {
        if text.chars().count() > 280 {
            return Err(BrowserError::TooLong { limit: 280 });
        }
        let mut state = self.state.write().await;
        state.shouts += 1;
        let shout = Shout::Said {
            from: state.name.clone(),
            text,
        };
        self.events
            .emit(&Topic::from(state.room.as_str()), shout)
            .await;
        SHOUTS_SERVED.fetch_add(1, Ordering::SeqCst);
        Ok(state.shouts)
    }

    async fn note(&self, text: String) -> HandlerResult<Position> {
        let note = Shout::Note(text);
        let stored = self
            .events
            .emit_durable(&Topic::from("notes"), note, EmitOptions::default())
            .await?;
        Ok(stored.position)
    }

    async fn read_notes(&self) -> HandlerResult<Position> {
        let topic = Topic::from("notes");
        Ok(self
            .subscriptions
            .add_durable(&topic, "reader", StartAt::AckFloor)
            .await?)
    }

    async fn measure(&self, mut words: Streaming<String>) -> HandlerResult<u32> {
        let mut total = 0;
        while let Some(word) = futures_util::StreamExt::next(&mut words).await {
            total += word?.len() as u32;
        }
        Ok(total)
    }

    async fn shout_back(&self, words: Streaming<String>) -> HandlerResult<Streaming<String>> {
        Ok(Streaming::try_new(futures_util::StreamExt::map(
            words,
            |word| word.map(|word| word.to_uppercase()),
        )))
    }

    async fn wave(&self) -> HandlerResult<()> {
        let room = Topic::from(self.state.read().await.room.as_str());
        let wave = Shout::Said {
            from: "wave".into(),
            text: "~".into(),
        };
        self.events.emit_unreliable(&room, wave);
        self.events.emit(&room, Shout::Note("waved".into())).await;
        Ok(())
    }

    async fn bulk(&self, chunks: u32) -> HandlerResult<Streaming<Vec<u8>>> {
        Ok(Streaming::new(futures_util::stream::iter(
            (0..chunks).map(|_| vec![7u8; 64 * 1024]),
        )))
    }

    async fn count_to(&self, to: u32) -> HandlerResult<Streaming<u32>> {
        let state = self.state.clone();
        Ok(Streaming::new(futures_util::stream::unfold(1, move |n| {
            let state = state.clone();
            async move {
                if n > to {
                    return None;
                }
                state.write().await.counted = n;
                Some((n, n + 1))
            }
        })))
    }
}

/// Shouts served (their events queued).
static SHOUTS_SERVED: AtomicU32 = AtomicU32::new(0);

/// Connections authenticated over WebTransport, with the page's `Origin`.
static WEBTRANSPORT_ORIGINS: AtomicU32 = AtomicU32::new(0);

/// Admits a browser's connection only with its `Origin` header, which over WebTransport
/// comes from the session's `CONNECT` request.
async fn origin_required(request: AuthRequest) -> Result<Identity, AuthError> {
    let origin = request
        .origin()
        .ok_or_else(|| AuthError::new("browsers send an Origin"))?;
    if request.transport == TransportKind::WebTransport {
        WEBTRANSPORT_ORIGINS.fetch_add(1, Ordering::SeqCst);
    }
    Ok(Identity::new(origin))
}

/// The path of `tool` on `PATH`.
fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|candidate| candidate.is_file())
    })
}

fn wasm_target_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("wasm32-unknown-unknown"))
        .unwrap_or(false)
}

/// Chromium's arguments for a run: headless, and `extra`.
fn webdriver_json(extra: &[&str]) -> String {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    args.extend_from_slice(extra);
    let args = args
        .iter()
        .map(|arg| format!("\"{arg}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{{\"goog:chromeOptions\": {{\"args\": [{args}]}}}}")
}

/// One run of the browser suite against `server`, expecting `transport`, with
/// Chromium's `args`.
struct Run {
    transport: &'static str,
    server: ServerConfig,
    args: &'static [&'static str],
    /// Whether this run's server loses its NATS after the first shout.
    gap: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wasm_client_works_in_headless_chromium() {
    let runner = which("wasm-bindgen-test-runner");
    let chromedriver = which("chromedriver");
    if runner.is_none() || chromedriver.is_none() || !wasm_target_installed() {
        let missing =
            "wasm-bindgen-test-runner, chromedriver/chromium or the wasm32-unknown-unknown target";
        assert!(
            std::env::var_os("CI").is_none(),
            "browser test prerequisites missing: {missing}"
        );
        eprintln!("skipped: {missing} not installed (.ci/run installs them)");
        return;
    }
    let (runner, chromedriver) = (runner.unwrap(), chromedriver.unwrap());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    // with the cluster feature and a nats-server, the first run's server is in a cluster
    // whose NATS is killed once the browser's first shout is served: the browser then
    // receives a gap
    #[cfg(feature = "nats")]
    let mut nats = common::nats::NatsServer::start().await;
    #[cfg(feature = "nats")]
    let gap = nats.is_some();
    #[cfg(not(feature = "nats"))]
    let gap = false;
    let stores = [
        common::ledger::TempDir::new("browser-webtransport"),
        common::ledger::TempDir::new("browser-websocket"),
    ];
    // a short ack wait: the browser sees an unacked note come again
    let durable = |store: &common::ledger::TempDir| {
        DurableConfig::new(store.store()).with_ack_wait(Duration::from_millis(200))
    };
    let config = ServerConfig::new_self_signed("127.0.0.1:0")
        .with_durable(durable(&stores[0]))
        .with_authenticator(origin_required);
    #[cfg(feature = "nats")]
    let config = match &nats {
        Some(nats) => config.with_cluster(ClusterConfig::nats(nats.url())),
        None => config,
    };
    // the second run's server serves no WebTransport: the browser's attempt fails in the
    // QUIC handshake, and the client falls back to WebSocket
    let fallback = ServerConfig::new_self_signed("127.0.0.1:0")
        .with_durable(durable(&stores[1]))
        .with_authenticator(origin_required)
        .without_webtransport();

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target/browser");
    std::fs::create_dir_all(&target).unwrap();
    let runs = [
        // the certificate is accepted by its hash only: no flag makes Chromium trust it
        Run {
            transport: "webtransport",
            server: config,
            args: &[],
            gap,
        },
        // Chromium is told to accept the certificate for the WebSocket
        Run {
            transport: "websocket",
            server: fallback,
            args: &["--ignore-certificate-errors"],
            gap: false,
        },
    ];
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // the browser test's dependencies built first: the waits below time the runs, not a
    // build (each run still builds the test itself, which reads its settings at build time)
    let built = tokio::process::Command::new(&cargo)
        .current_dir(root.join("tests/browser"))
        .args([
            "test",
            "--target",
            "wasm32-unknown-unknown",
            "--no-run",
            "--target-dir",
        ])
        .arg(&target)
        .status()
        .await
        .expect("build the browser test");
    assert!(built.success(), "building the browser test failed");
    for run in runs {
        let hash = run.server.certificate_sha256_hex().unwrap();
        let mut server = Server::new(run.server, factory!(Handler));
        let addr = server.bind().unwrap();
        tokio::spawn(server.run());
        let webdriver = target.join(format!("webdriver-{}.json", run.transport));
        std::fs::write(&webdriver, webdriver_json(run.args)).unwrap();
        let mut command = tokio::process::Command::new(&cargo);
        command
            .current_dir(root.join("tests/browser"))
            .args(["test", "--target", "wasm32-unknown-unknown", "--target-dir"])
            .arg(&target)
            .env("HARDLIGHT_BROWSER_SERVER", addr.to_string())
            .env("HARDLIGHT_BROWSER_CERT_HASH", &hash)
            .env("HARDLIGHT_BROWSER_TRANSPORT", run.transport)
            .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", &webdriver)
            .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", &runner)
            .env("CHROMEDRIVER", &chromedriver)
            .env("WASM_BINDGEN_TEST_TIMEOUT", "120");
        if run.gap {
            command.env("HARDLIGHT_BROWSER_GAP", "1");
        } else {
            command.env_remove("HARDLIGHT_BROWSER_GAP");
        }
        let mut browser_test = command.spawn().expect("run the browser test");
        #[cfg(feature = "nats")]
        if run.gap {
            if let Some(mut nats) = nats.take() {
                // the shout served: its event is queued before the gap
                common::eventually("the browser's shout served", || {
                    SHOUTS_SERVED.load(Ordering::SeqCst) >= 1
                })
                .await;
                nats.kill();
            }
        }
        let status = browser_test.wait().await.expect("run the browser test");
        assert!(
            status.success(),
            "the browser test over {} failed",
            run.transport
        );
        if run.transport == "webtransport" {
            // every connection of the run came over WebTransport, its Origin authenticated
            assert!(WEBTRANSPORT_ORIGINS.load(Ordering::SeqCst) >= 4);
        }
    }
}
