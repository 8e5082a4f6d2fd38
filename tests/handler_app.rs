//! Handlers share application state given to the factory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use hardlight::*;

/// What every connection's handler shares, e.g. a pool or a cache.
struct Visits {
    greeting: String,
    total: AtomicU64,
}

#[rpc(state = ())]
trait Guestbook {
    /// Counts a visit across all connections.
    async fn visit(&self) -> HandlerResult<(String, u64)>;
}

#[rpc_handler(app = Visits)]
impl Guestbook for Handler {
    async fn visit(&self) -> HandlerResult<(String, u64)> {
        let total = self.app.total.fetch_add(1, Ordering::SeqCst) + 1;
        Ok((self.app.greeting.clone(), total))
    }
}

#[tokio::test]
async fn every_connection_shares_the_app_state() {
    let visits = Arc::new(Visits {
        greeting: "welcome".into(),
        total: AtomicU64::new(0),
    });
    let factory = Factory::<Handler>::with_shared_app(Arc::clone(&visits));
    let mut server = Server::new(ServerConfig::new_self_signed("127.0.0.1:0"), factory);
    let addr = server.bind().unwrap().to_string();
    tokio::spawn(server.run());
    let a = GuestbookClient::new_self_signed(addr.clone(), Compression::None);
    let b = GuestbookClient::new_self_signed(addr, Compression::None);
    a.connect().await.unwrap();
    b.connect().await.unwrap();
    assert_eq!(a.visit().await.unwrap(), ("welcome".to_owned(), 1));
    assert_eq!(b.visit().await.unwrap(), ("welcome".to_owned(), 2));
    assert_eq!(a.visit().await.unwrap().1, 3);
    assert_eq!(visits.total.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_factory_macro_takes_the_app_state() {
    let app = Visits {
        greeting: "hi".into(),
        total: AtomicU64::new(10),
    };
    let mut server = Server::new(
        ServerConfig::new_self_signed("127.0.0.1:0"),
        factory!(Handler, app),
    );
    let addr = server.bind().unwrap().to_string();
    tokio::spawn(server.run());
    let client = GuestbookClient::new_self_signed(addr, Compression::None);
    client.connect().await.unwrap();
    assert_eq!(client.visit().await.unwrap(), ("hi".to_owned(), 11));
}
