//! An archive nested deeper than `codec::MAX_DEPTH` — a type that contains itself, sent
//! a million levels deep in a few megabytes — is refused with `InvalidPayload` before
//! anything recurses: the server, in a child process so that a stack overflow would
//! show, survives and serves on. Over QUIC and WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::child::{announce_and_serve, is_child, ChildServer};
use hardlight::*;

/// A value that nests inside itself: `Nest(vec![Nest(vec![...])])`.
#[codable(recursive)]
#[derive(Debug, Clone, PartialEq)]
pub struct Nest(#[rkyv(omit_bounds)] pub Vec<Nest>);

#[rpc(state = ())]
trait Depths {
    /// How deep `nest` goes.
    async fn depth(&self, nest: Nest) -> HandlerResult<u32>;
}

#[rpc_handler]
impl Depths for Handler {
    async fn depth(&self, nest: Nest) -> HandlerResult<u32> {
        let (mut depth, mut next) = (0, nest.0.into_iter().next());
        while let Some(inner) = next {
            depth += 1;
            next = inner.0.into_iter().next();
        }
        Ok(depth)
    }
}

/// `levels` nested vectors; built, encoded and dropped on the client's deep stack.
fn nested(levels: u32) -> Nest {
    (0..levels).fold(Nest(Vec::new()), |inner, _| Nest(vec![inner]))
}

/// The child's server (returns at once unless run as the child).
#[tokio::test]
async fn serve_depths() {
    if !is_child() {
        return;
    }
    let config = ServerConfig::new_self_signed("127.0.0.1:0");
    let certificate_pem = config.certificate_pem().unwrap();
    let mut server = Server::new(config, factory!(Handler));
    let addr = server.bind().unwrap();
    tokio::spawn(server.run());
    announce_and_serve(addr, &certificate_pem).await;
}

#[test]
fn a_deeply_nested_archive_is_refused_and_the_server_serves_on() {
    let mut child = ChildServer::spawn("serve_depths");
    let configs = [Transport::Quic, Transport::WebSocket].map(|t| child.config(t));
    // the client itself recurses a million levels to encode and drop the value
    std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                for config in configs {
                    let client = DepthsClient::with_config(config);
                    client.connect().await.unwrap();
                    assert_eq!(client.depth(nested(100)).await.unwrap(), 100);
                    match client.depth(nested(1_000_000)).await {
                        Err(RpcError::Remote { code, message }) => {
                            assert_eq!(code, ErrorCode::InvalidPayload, "{message}");
                            assert!(message.contains("nests deeper than 128"), "{message}");
                        }
                        other => panic!("expected InvalidPayload, got {other:?}"),
                    }
                    assert_eq!(client.depth(nested(3)).await.unwrap(), 3);
                }
            });
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(child.alive(), "the server survived");
}
