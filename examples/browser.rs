//! A page that uses the wasm HardLight client live.
//!
//! `cargo run --example browser`, then open the printed URL. The example builds the page's
//! wasm app (`examples/browser-app`, needs the `wasm32-unknown-unknown` target and
//! `wasm-bindgen` on `PATH`), serves it over HTTP, and runs a HardLight server whose bot
//! posts to the lobby every second. The page connects over WebTransport, accepting the
//! server's self-signed development certificate by the hash the example writes into it;
//! where the browser has no WebTransport it falls back to WebSocket, which for a local
//! demo is plain (`ws://`, which a browser accepts without a trusted certificate; real
//! deployments use TLS or a TLS-terminating proxy). The page shows which transport it is
//! on.
//!
//! `--once` serves for 20 seconds and exits (for a scripted check).

// shared with the page's crate, where its items are public API
#[allow(unreachable_pub)]
#[path = "browser-app/src/service.rs"]
mod service;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use hardlight::*;
use service::{Line, Lobby};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

#[rpc_handler]
impl Lobby for Handler {
    async fn enter(&self, name: String) -> HandlerResult<u32> {
        self.subscriptions.add(&Topic::from("lobby"));
        self.state.write().await.name = name.clone();
        let visitors = VISITORS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let line = Line {
            from: "server".into(),
            text: format!("{name} entered"),
        };
        self.events.emit(&Topic::from("lobby"), line).await;
        Ok(visitors)
    }

    async fn say(&self, text: String) -> HandlerResult<()> {
        let mut state = self.state.write().await;
        state.said += 1;
        let line = Line {
            from: state.name.clone(),
            text,
        };
        self.events.emit(&Topic::from("lobby"), line).await;
        Ok(())
    }
}

static VISITORS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Builds the page's wasm app and its JS glue into `target/browser-app/pkg`.
fn build_app(root: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let target = root.join("target/browser-app");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root.join("examples/browser-app"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--target-dir",
        ])
        .arg(&target)
        .status()?;
    if !status.success() {
        return Err(
            "building the wasm app failed (is the wasm32-unknown-unknown target installed?)".into(),
        );
    }
    let pkg = target.join("pkg");
    let status = Command::new("wasm-bindgen")
        .args(["--target", "web", "--out-dir"])
        .arg(&pkg)
        .arg(target.join("wasm32-unknown-unknown/release/hardlight_browser_app.wasm"))
        .status()?;
    if !status.success() {
        return Err(
            "wasm-bindgen failed (install wasm-bindgen-cli at the wasm-bindgen version in use)"
                .into(),
        );
    }
    Ok(pkg)
}

/// Serves the page and the app's files; nothing else.
async fn serve_http(listener: TcpListener, page: String, pkg: PathBuf) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let (page, pkg) = (page.clone(), pkg.clone());
        tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let n = stream.read(&mut request).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&request[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, kind, body) = match path {
                "/" => ("200 OK", "text/html", page.into_bytes()),
                "/pkg/hardlight_browser_app.js" => {
                    match tokio::fs::read(pkg.join("hardlight_browser_app.js")).await {
                        Ok(body) => ("200 OK", "text/javascript", body),
                        Err(_) => ("404 Not Found", "text/plain", b"missing".to_vec()),
                    }
                }
                "/pkg/hardlight_browser_app_bg.wasm" => {
                    match tokio::fs::read(pkg.join("hardlight_browser_app_bg.wasm")).await {
                        Ok(body) => ("200 OK", "application/wasm", body),
                        Err(_) => ("404 Not Found", "text/plain", b"missing".to_vec()),
                    }
                }
                _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let pkg = build_app(&root)?;

    let config = ServerConfig::new_self_signed("127.0.0.1:0")
        .with_websocket(WebSocketMode::PlainBehindTlsProxy);
    let hash = config.certificate_sha256_hex().unwrap_or_default();
    let mut server = Server::new(config, factory!(Handler));
    let addr = server.bind()?;
    let emitter = server.get_event_emitter();
    tokio::spawn(server.run());
    tokio::spawn(async move {
        for tick in 1u32.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let line = Line {
                from: "bot".into(),
                text: format!("tick {tick}"),
            };
            emitter.emit(&Topic::from("lobby"), line).await;
        }
    });

    let page = include_str!("browser-app/index.html")
        .replace("HARDLIGHT_URL", &format!("ws://{addr}/"))
        .replace("HARDLIGHT_CERT_HASH", &hash);
    let http = TcpListener::bind("127.0.0.1:0").await?;
    println!("HardLight server on {addr} (QUIC, WebTransport and WebSocket)");
    println!("open http://{}/", http.local_addr()?);
    let serving = tokio::spawn(serve_http(http, page, pkg));
    if std::env::args().any(|a| a == "--once") {
        tokio::time::sleep(Duration::from_secs(20)).await;
        serving.abort();
        return Ok(());
    }
    serving.await?;
    Ok(())
}
