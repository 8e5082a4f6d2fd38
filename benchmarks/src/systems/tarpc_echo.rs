//! tarpc over TCP with bincode (no TLS: tarpc's TCP transport has none).

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{future::BoxFuture, FutureExt, StreamExt};
use serde_bytes::ByteBuf;
use tarpc::{
    client, context,
    server::{self, Channel},
    tokio_serde::formats::Bincode,
};

use super::{Connection, Target, MAX_MESSAGE};
use crate::child::announce;

#[tarpc::service]
trait Echo {
    /// Returns `data`.
    async fn echo(data: ByteBuf) -> ByteBuf;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, data: ByteBuf) -> ByteBuf {
        data
    }
}

pub(super) async fn serve() {
    let mut listener = tarpc::serde_transport::tcp::listen(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Bincode::default,
    )
    .await
    .expect("bind");
    listener.config_mut().max_frame_length(MAX_MESSAGE);
    announce(listener.local_addr());
    listener
        .filter_map(|transport| async move { transport.ok() })
        .for_each(|transport| async move {
            let _ = transport.get_ref().set_nodelay(true);
            tokio::spawn(
                server::BaseChannel::with_defaults(transport)
                    .execute(EchoServer.serve())
                    .for_each(|response| async move {
                        tokio::spawn(response);
                    }),
            );
        })
        .await;
}

pub(super) async fn connect(addr: SocketAddr) -> Connection {
    let mut transport = tarpc::serde_transport::tcp::connect(addr, Bincode::default);
    transport.config_mut().max_frame_length(MAX_MESSAGE);
    let transport = transport.await.expect("connect");
    let _ = transport.get_ref().set_nodelay(true);
    let mut config = client::Config::default();
    config.max_in_flight_requests = 4096;
    config.pending_request_buffer = 4096;
    Arc::new(TarpcTarget(EchoClient::new(config, transport).spawn()))
}

struct TarpcTarget(EchoClient);

impl Target for TarpcTarget {
    fn call(&self, data: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let client = self.0.clone();
        async move {
            client
                .echo(context::current(), ByteBuf::from(data))
                .await
                .expect("echo")
                .into_vec()
        }
        .boxed()
    }
}
