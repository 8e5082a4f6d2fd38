//! Two services with the same trait, state and handler names in two modules of one crate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use hardlight::*;

mod alpha {
    use hardlight::*;

    #[rpc]
    pub trait Api {
        async fn name(&self) -> HandlerResult<String>;
    }

    #[connection_state]
    pub struct State {
        pub calls: u32,
    }

    #[rpc_handler(pub)]
    impl Api for Handler {
        async fn name(&self) -> HandlerResult<String> {
            self.state.write().await.calls += 1;
            Ok("alpha".into())
        }
    }
}

mod beta {
    use hardlight::*;

    #[rpc]
    pub trait Api {
        async fn name(&self) -> HandlerResult<String>;
        async fn double(&self, value: u64) -> HandlerResult<u64>;
    }

    #[connection_state]
    pub struct State {
        pub label: String,
    }

    #[rpc_handler(pub)]
    impl Api for Handler {
        async fn name(&self) -> HandlerResult<String> {
            self.state.write().await.label = "beta".into();
            Ok("beta".into())
        }

        async fn double(&self, value: u64) -> HandlerResult<u64> {
            Ok(value * 2)
        }
    }
}

async fn serve<H: RpcHandler>(factory: Factory<H>) -> String {
    let mut server = Server::new(ServerConfig::new_self_signed("127.0.0.1:0"), factory);
    let addr = server.bind().unwrap();
    tokio::spawn(server.run());
    addr.to_string()
}

#[tokio::test]
async fn same_names_in_two_modules_do_not_clash() {
    let a_addr = serve(factory!(alpha::Handler)).await;
    let b_addr = serve(factory!(beta::Handler)).await;
    let a = alpha::ApiClient::new_self_signed(a_addr.clone(), Compression::None);
    let b = beta::ApiClient::new_self_signed(b_addr.clone(), Compression::None);
    a.connect().await.unwrap();
    b.connect().await.unwrap();
    assert_eq!(a.name().await.unwrap(), "alpha");
    assert_eq!(b.name().await.unwrap(), "beta");
    assert_eq!(b.double(21).await.unwrap(), 42);
    assert_eq!(a.state().await.unwrap().calls, 1);
    assert_eq!(b.state().await.unwrap().label, "beta");
    // each refuses the other's clients
    let crossed = alpha::ApiClient::new_self_signed(b_addr, Compression::None);
    assert!(matches!(
        crossed.connect().await,
        Err(ConnectError::Rejected {
            code: RejectCode::SchemaMismatch,
            ..
        })
    ));
}
