//! The code HardLight generates names everything by absolute path: `#[rpc]`,
//! `#[connection_state]` and `#[rpc_handler]` compile in a module without the standard
//! prelude. (`#[codable]` delegates to rkyv's derive, which itself needs the prelude, so
//! the codable type lives outside.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

#[hardlight::codable]
#[derive(Debug, Clone, PartialEq)]
pub struct Greeting {
    pub text: String,
    pub times: Option<u8>,
}

#[no_implicit_prelude]
mod service {
    use super::Greeting;
    use ::hardlight::*;

    #[rpc]
    pub trait Greeter {
        async fn greet(&self, name: ::std::string::String) -> HandlerResult<Greeting>;
    }

    #[connection_state]
    pub struct State {
        pub greeted: u32,
    }

    #[rpc_handler(pub)]
    impl Greeter for Handler {
        async fn greet(&self, name: ::std::string::String) -> HandlerResult<Greeting> {
            self.state.write().await.greeted += 1;
            ::core::result::Result::Ok(Greeting {
                text: ::std::format!("hello, {name}"),
                times: ::core::option::Option::Some(1),
            })
        }
    }
}

#[tokio::test]
async fn generated_code_needs_no_prelude() {
    use hardlight::*;
    let mut server = Server::new(
        ServerConfig::new_self_signed("127.0.0.1:0"),
        factory!(service::Handler),
    );
    let addr = server.bind().unwrap();
    tokio::spawn(server.run());
    let client = service::GreeterClient::new_self_signed(addr.to_string(), Compression::None);
    client.connect().await.unwrap();
    let greeting = client.greet("hygiene".into()).await.unwrap();
    assert_eq!(greeting.text, "hello, hygiene");
    assert_eq!(client.state().await.unwrap().greeted, 1);
}
