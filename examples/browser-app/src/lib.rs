//! Runs in the page: connects with the wasm HardLight client, enters the lobby, shows the
//! mirrored state and every event live.

pub mod service;

use hardlight::*;
use service::LobbyClient;
use wasm_bindgen::prelude::*;

fn append(list: &str, text: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let (Some(list), Ok(item)) = (
        document.get_element_by_id(list),
        document.create_element("li"),
    ) {
        item.set_text_content(Some(text));
        let _ = list.append_child(&item);
    }
}

fn show(id: &str, text: &str) {
    if let Some(element) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id))
    {
        element.set_text_content(Some(text));
    }
}

/// The 32 bytes of a hash in hex, if it is one.
fn hash(hex: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(hash)
}

/// Connects to the HardLight server at `url` (e.g. `ws://127.0.0.1:4433/`) — over
/// WebTransport where the browser has it, accepting the server's development certificate
/// by its SHA-256 hash `certificate_hash` (hex), else over WebSocket — and runs the page.
#[wasm_bindgen]
pub async fn run(url: String, certificate_hash: String) -> Result<(), JsValue> {
    let mut config = ClientConfig::new(url);
    if let Some(hash) = hash(&certificate_hash) {
        config = config.with_certificate_hash(hash);
    }
    let client = LobbyClient::with_config(config);
    client
        .connect()
        .await
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
    let transport = match client.transport() {
        Some(TransportKind::WebTransport) => "WebTransport (QUIC)",
        Some(TransportKind::WebSocket) => "WebSocket",
        Some(other) => other.name(),
        None => "nothing",
    };
    show("status", &format!("connected over {transport}"));
    let mut events = client
        .subscribe()
        .await
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
    let visitors = client
        .enter("browser".into())
        .await
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
    append(
        "log",
        &format!("entered the lobby; {visitors} visitor(s) so far"),
    );
    client
        .say("hello from the wasm client".into())
        .await
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
    if let Ok(state) = client.state().await {
        show("state", &format!("{state:?}"));
    }
    loop {
        match events.recv().await {
            Ok(event) => {
                append(
                    "log",
                    &format!(
                        "[{}] {}: {}",
                        event.topic, event.payload.from, event.payload.text
                    ),
                );
                if let Ok(state) = client.state().await {
                    show("state", &format!("{state:?}"));
                }
            }
            Err(RecvError::Lagged(n)) => append("log", &format!("(missed {n} events)")),
            Err(RecvError::SessionReset) => append("log", "(reconnected as a new session)"),
            Err(RecvError::Gap(topic)) => {
                append("log", &format!("(events of {topic} may be missing)"))
            }
            Err(RecvError::Closed) => break,
            Err(other) => append("log", &format!("({other})")),
        }
    }
    Ok(())
}
