//! The wasm client in real headless Chromium against a real native server: typed calls,
//! state updates, typed errors, events, durable events (acked, and redelivered when
//! not) and streaming calls of all three kinds over the browser's WebSocket.
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
    // with the cluster feature and a nats-server, the server is in a cluster whose NATS
    // is killed once the browser's shout is served: the browser then receives a gap
    let store = common::ledger::TempDir::new("browser");
    // a short ack wait: the browser sees an unacked note come again
    let durable = DurableConfig::new(store.store()).with_ack_wait(Duration::from_millis(200));
    let config = ServerConfig::new_self_signed("127.0.0.1:0").with_durable(durable);
    #[cfg(feature = "nats")]
    let nats = common::nats::NatsServer::start().await;
    #[cfg(feature = "nats")]
    let config = match &nats {
        Some(nats) => config.with_cluster(ClusterConfig::nats(nats.url())),
        None => config,
    };
    let mut server = Server::new(config, factory!(Handler));
    let addr = server.bind().unwrap();
    tokio::spawn(server.run());

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let browser = root.join("tests/browser");
    let mut command = tokio::process::Command::new(cargo);
    command
        .current_dir(&browser)
        .args(["test", "--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(root.join("target/browser"))
        .env("HARDLIGHT_BROWSER_SERVER", addr.to_string());
    #[cfg(feature = "nats")]
    if nats.is_some() {
        command.env("HARDLIGHT_BROWSER_GAP", "1");
    }
    let mut browser_test = command
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
            runner.unwrap(),
        )
        .env("CHROMEDRIVER", chromedriver.unwrap())
        .env("WASM_BINDGEN_TEST_TIMEOUT", "120")
        .spawn()
        .expect("run the browser test");
    #[cfg(feature = "nats")]
    if let Some(mut nats) = nats {
        // the shout served: its event is queued before the gap
        common::eventually("the browser's shout served", || {
            SHOUTS_SERVED.load(Ordering::SeqCst) >= 1
        })
        .await;
        nats.kill();
    }
    let status = browser_test.wait().await.expect("run the browser test");
    assert!(status.success(), "the browser test failed");
}
