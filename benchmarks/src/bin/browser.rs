//! Calls from the wasm client in headless Chromium over WebTransport and over WebSocket,
//! from the same page against the same server, in alternating rounds:
//!
//! ```sh
//! cargo run --release -p hardlight-benchmarks --bin browser
//! ```
//!
//! Needs what the browser test needs: the `wasm32-unknown-unknown` target,
//! `wasm-bindgen-test-runner` at the version `benchmarks/browser/Cargo.lock` locks,
//! `chromium` and `chromedriver` (`.ci/run` installs them). The page's measurements
//! (sequential latency from `performance.now()`, which Chromium rounds to 5–100 µs, and
//! calls/s with 64 in flight) are printed as it reports them.

#[allow(unreachable_pub)]
#[path = "../../browser/src/lib.rs"]
mod service;

use std::path::PathBuf;

use hardlight::*;
use service::Echo;

#[rpc_handler]
impl Echo for Handler {
    async fn echo(&self, data: Vec<u8>) -> HandlerResult<Vec<u8>> {
        Ok(data)
    }
}

/// The path of `tool` on `PATH`.
fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|candidate| candidate.is_file())
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runner = which("wasm-bindgen-test-runner").ok_or("wasm-bindgen-test-runner not on PATH")?;
    let chromedriver = which("chromedriver").ok_or("chromedriver not on PATH")?;
    let config = ServerConfig::new_self_signed("127.0.0.1:0");
    let hash = config.certificate_sha256_hex().unwrap_or_default();
    let mut server = Server::new(config, factory!(Handler));
    let addr = server.bind()?;
    tokio::spawn(server.run());

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("../target/browser");
    std::fs::create_dir_all(&target)?;
    // WebTransport accepts the certificate by its hash; the WebSocket needs the flag
    let webdriver = target.join("webdriver-bench.json");
    std::fs::write(
        &webdriver,
        r#"{"goog:chromeOptions": {"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--ignore-certificate-errors", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]}}"#,
    )?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = tokio::process::Command::new(cargo)
        .current_dir(root.join("browser"))
        .args([
            "test",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--target-dir",
        ])
        .arg(&target)
        .args(["--", "--nocapture"])
        .env("HARDLIGHT_BENCH_SERVER", addr.to_string())
        .env("HARDLIGHT_BENCH_CERT_HASH", &hash)
        .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", &webdriver)
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", &runner)
        .env("CHROMEDRIVER", &chromedriver)
        .env("WASM_BINDGEN_TEST_TIMEOUT", "600")
        .status()
        .await?;
    if !status.success() {
        return Err("the browser benchmark failed".into());
    }
    Ok(())
}
