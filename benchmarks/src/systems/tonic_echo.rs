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
            if request.uri().path() != PATH {
                return Ok(tonic::Status::unimplemented("no such method").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Blob, Blob>::default())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
            Ok(grpc.unary(EchoMethod, request).await)
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

pub(super) async fn connect(addr: SocketAddr, cert: Option<&Certificate>) -> Connection {
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
    let channel = endpoint
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect");
    Arc::new(TonicTarget(channel))
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
