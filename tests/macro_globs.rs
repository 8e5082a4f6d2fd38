//! A service defined in one module and served from another, with both `use hardlight::*`
//! and `use service::*` in scope: the framework's glob must not clash with the names a
//! service module exports by convention (`Handler`, `State`, the trait, its client).
#![deny(warnings)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod service {
    use hardlight::*;

    #[rpc]
    pub trait Greeter {
        async fn greet(&self, name: String) -> HandlerResult<String>;
    }

    #[connection_state]
    pub struct State {
        pub greeted: u32,
    }

    #[rpc_handler(pub)]
    impl Greeter for Handler {
        async fn greet(&self, name: String) -> HandlerResult<String> {
            self.state.write().await.greeted += 1;
            Ok(format!("hello, {name}"))
        }
    }
}

use hardlight::*;
use service::*;

#[tokio::test]
async fn a_service_from_another_module_is_served_with_both_globs_imported() {
    let mut server = Server::new(
        ServerConfig::new_self_signed("127.0.0.1:0"),
        factory!(Handler),
    );
    let addr = server.bind().unwrap();
    let shutdown = server.shutdown_handle();
    tokio::spawn(server.run());
    let client = GreeterClient::new_self_signed(addr.to_string(), Compression::default());
    client.connect().await.unwrap();
    assert_eq!(client.greet("globs".into()).await.unwrap(), "hello, globs");
    let state: std::sync::Arc<State> = client.state().await.unwrap();
    assert_eq!(state.greeted, 1);
    client.disconnect().await;
    shutdown.shutdown(std::time::Duration::from_secs(5)).await;
}
