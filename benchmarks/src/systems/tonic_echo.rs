//! tonic: a unary `Echo` method over HTTP/2 with TLS or cleartext (h2c). The service glue is
//! what `tonic-build` generates, written out so that no `protoc` is needed.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use futures_util::{future::BoxFuture, FutureExt};
use tonic::{
    codegen::{http, Service},
    server::{NamedService, UnaryService},
    transport::{
        server::TcpIncoming, Certificate as TonicCert, Channel, ClientTlsConfig, Endpoint,
        Identity, ServerTlsConfig,
    },
};
use tonic_prost::ProstCodec;

use super::{Connection, Target, MAX_MESSAGE};
use crate::{child::announce, tls::Certificate};

/// The request and the reply: one `bytes` field.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Blob {
    /// The payload.
    #[prost(bytes = "vec", tag = "1")]
    pub(super) data: Vec<u8>,
}

const PATH: &str = "/bench.Echo/Echo";
const ITEMS: &str = "/bench.Echo/Items";

/// Server streaming: the request's data is `count` (u64 LE) then `size` (u32 LE); the
/// reply is `count` blobs of `size` bytes.
struct ItemsMethod;

type Blobs =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Blob, tonic::Status>> + Send>>;

impl tonic::server::ServerStreamingService<Blob> for ItemsMethod {
    type Response = Blob;
    type ResponseStream = Blobs;
    type Future = std::future::Ready<Result<tonic::Response<Blobs>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Blob>) -> Self::Future {
        let data = request.into_inner().data;
        let (count, size) = super::streams::parse_request(&data);
        let item = vec![7u8; size as usize];
        let blobs: Blobs = Box::pin(futures_util::stream::iter(
            (0..count).map(move |_| Ok(Blob { data: item.clone() })),
        ));
        std::future::ready(Ok(tonic::Response::new(blobs)))
    }
}

#[derive(Clone)]
struct EchoServer;

impl NamedService for EchoServer {
    const NAME: &'static str = "bench.Echo";
}

struct EchoMethod;

impl UnaryService<Blob> for EchoMethod {
    type Response = Blob;
    type Future = std::future::Ready<Result<tonic::Response<Blob>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Blob>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(request.into_inner())))
    }
}

impl Service<http::Request<tonic::body::Body>> for EchoServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Blob, Blob>::default())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
            match request.uri().path() {
                PATH => Ok(grpc.unary(EchoMethod, request).await),
                ITEMS => Ok(grpc.server_streaming(ItemsMethod, request).await),
                _ => Ok(tonic::Status::unimplemented("no such method").into_http()),
            }
        }
        .boxed()
    }
}

pub(super) async fn serve(cert: Option<Certificate>) {
    let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind")
        .with_nodelay(Some(true));
    announce(incoming.local_addr().expect("address"));
    let mut builder = tonic::transport::Server::builder();
    if let Some(cert) = cert {
        let identity = Identity::from_pem(&cert.cert_pem, &cert.key_pem);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .expect("server TLS");
    }
    builder
        .add_service(EchoServer)
        .serve_with_incoming(incoming)
        .await
        .expect("serve");
}

/// Drains one server-streaming call of `count` items of `size` bytes: the time to the
/// first item and to the end.
pub(super) async fn drain_items(channel: &Channel, count: u64, size: u32) -> (Duration, Duration) {
    let mut grpc = tonic::client::Grpc::new(channel.clone())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let started = std::time::Instant::now();
    grpc.ready().await.expect("ready");
    let mut blobs = grpc
        .server_streaming(
            tonic::Request::new(Blob {
                data: super::streams::request(count, size),
            }),
            http::uri::PathAndQuery::from_static(ITEMS),
            ProstCodec::<Blob, Blob>::default(),
        )
        .await
        .expect("items")
        .into_inner();
    let mut first = None;
    let mut seen = 0;
    while let Some(blob) = blobs.message().await.expect("an item") {
        first.get_or_insert_with(|| started.elapsed());
        assert_eq!(blob.data.len(), size as usize);
        seen += 1;
    }
    assert_eq!(seen, count);
    (first.unwrap_or_default(), started.elapsed())
}

/// A channel to the server at `addr`.
pub(super) async fn channel(addr: SocketAddr, cert: Option<&Certificate>) -> Channel {
    let endpoint = match cert {
        Some(cert) => Endpoint::from_shared(format!("https://{addr}"))
            .expect("endpoint")
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(TonicCert::from_pem(&cert.cert_pem))
                    .domain_name("localhost"),
            )
            .expect("client TLS"),
        None => Endpoint::from_shared(format!("http://{addr}")).expect("endpoint"),
    };
    endpoint
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect")
}

pub(super) async fn connect(addr: SocketAddr, cert: Option<&Certificate>) -> Connection {
    Arc::new(TonicTarget(channel(addr, cert).await))
}

struct TonicTarget(Channel);

impl Target for TonicTarget {
    fn call(&self, data: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let mut grpc = tonic::client::Grpc::new(self.0.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        async move {
            grpc.ready().await.expect("ready");
            let reply = grpc
                .unary(
                    tonic::Request::new(Blob { data }),
                    http::uri::PathAndQuery::from_static(PATH),
                    ProstCodec::<Blob, Blob>::default(),
                )
                .await
                .expect("echo");
            reply.into_inner().data
        }
        .boxed()
    }
}
