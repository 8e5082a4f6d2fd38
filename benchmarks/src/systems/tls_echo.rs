//! The TCP floor: TLS 1.3 over TCP, the length-prefixed pipelined echo of
//! [`super::pipelined`].

use std::{net::SocketAddr, sync::Arc};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{pipelined, Connection};
use crate::{child::announce, tls::Certificate};

const ALPN: &[u8] = b"echo";

pub(super) async fn serve(cert: Certificate) {
    let acceptor = TlsAcceptor::from(Arc::new(cert.server_config(ALPN)));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    announce(listener.local_addr().expect("address"));
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let (read, write) = tokio::io::split(tls);
            pipelined::serve(read, write).await;
        });
    }
}

pub(super) async fn connect(addr: SocketAddr, cert: &Certificate) -> Connection {
    let connector = TlsConnector::from(Arc::new(cert.client_config(ALPN)));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let (read, write) = tokio::io::split(tls);
    pipelined::connect(read, write, ())
}
