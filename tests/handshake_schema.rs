//! The schema hash covers the full layout of every type a service sends: two builds whose
//! types differ in any way that changes the wire fail at `connect()` with
//! `SchemaMismatch`, naming the type that differs; builds that only spell the same types
//! differently connect. Each module below stands for one build of the `Shop` service.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub,
    missing_docs
)]

use hardlight::*;

/// One build of the service: its types, trait and state, with the given definitions.
macro_rules! shop {
    (
        $build:ident,
        Item { $($item:tt)* },
        Kind { $($kind:tt)* },
        Sold { $($sold:tt)* },
        ShopError { $($error:tt)* } $(,)?
    ) => {
        pub mod $build {
            use hardlight::*;

            #[codable]
            #[derive(Debug, Clone, PartialEq)]
            pub struct Item { $($item)* }

            #[codable]
            #[derive(Debug, Clone, PartialEq)]
            pub enum Kind { $($kind)* }

            /// The event type.
            #[codable]
            #[derive(Debug, Clone, PartialEq)]
            pub enum Sold { $($sold)* }

            /// The handler's error type.
            #[codable]
            #[derive(Debug, Clone, PartialEq)]
            pub enum ShopError { $($error)* }

            impl std::fmt::Display for ShopError {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    write!(f, "{self:?}")
                }
            }

            #[rpc(events = Sold)]
            pub trait Shop {
                async fn buy(&self, item: Item, kind: Kind, note: String) -> HandlerResult<u32, ShopError>;
            }

            #[connection_state]
            pub struct State {
                pub bought: u32,
            }
        }
    };
}

shop!(
    served,
    Item { pub price: u32, pub qty: u32 },
    Kind { Book, Toy },
    Sold { Item(Item) },
    ShopError { SoldOut },
);
shop!(
    swapped_fields,
    Item { pub qty: u32, pub price: u32 },
    Kind { Book, Toy },
    Sold { Item(Item) },
    ShopError { SoldOut },
);
shop!(
    changed_field_type,
    Item { pub price: i32, pub qty: u32 },
    Kind { Book, Toy },
    Sold { Item(Item) },
    ShopError { SoldOut },
);
shop!(
    added_variant,
    Item { pub price: u32, pub qty: u32 },
    Kind { Book, Toy, Game },
    Sold { Item(Item) },
    ShopError { SoldOut },
);
shop!(
    changed_event,
    Item { pub price: u32, pub qty: u32 },
    Kind { Book, Toy },
    Sold { Item(Item), Refund(Item) },
    ShopError { SoldOut },
);
shop!(
    changed_error,
    Item { pub price: u32, pub qty: u32 },
    Kind { Book, Toy },
    Sold { Item(Item) },
    ShopError { SoldOut, Closed },
);

/// The served build with every type spelled another way: full paths, the types defined in
/// another module and imported under other names.
pub mod respelled {
    use hardlight::*;

    pub mod catalogue {
        use hardlight::*;

        #[codable]
        #[derive(Debug, Clone, PartialEq)]
        pub struct Article {
            pub price: ::core::primitive::u32,
            pub qty: u32,
        }

        #[codable]
        #[derive(Debug, Clone, PartialEq)]
        pub enum Category {
            Book,
            Toy,
        }
    }

    use catalogue::Article as Item;

    #[codable]
    #[derive(Debug, Clone, PartialEq)]
    pub enum Sold {
        Item(catalogue::Article),
    }

    #[codable]
    #[derive(Debug, Clone, PartialEq)]
    pub enum ShopError {
        SoldOut,
    }

    impl std::fmt::Display for ShopError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    #[rpc(events = Sold)]
    pub trait Shop {
        async fn buy(
            &self,
            item: Item,
            kind: self::catalogue::Category,
            note: std::string::String,
        ) -> Result<u32, ShopError>;
    }

    #[connection_state]
    pub struct State {
        pub bought: ::core::primitive::u32,
    }
}

#[rpc_handler(pub)]
impl served::Shop for Handler {
    async fn buy(
        &self,
        item: served::Item,
        _kind: served::Kind,
        _note: String,
    ) -> HandlerResult<u32, served::ShopError> {
        if item.qty == 0 {
            return Err(served::ShopError::SoldOut);
        }
        let mut state = self.state.write().await;
        state.bought += item.qty;
        Ok(item.price * item.qty)
    }
}

/// Runs a self-signed server of `factory`'s handlers on a loopback port.
async fn serve<H: RpcHandler>(factory: Factory<H>) -> (std::net::SocketAddr, ShutdownHandle) {
    let mut server = Server::new(ServerConfig::new_self_signed("127.0.0.1:0"), factory);
    let addr = server.bind().unwrap();
    let shutdown = server.shutdown_handle();
    tokio::spawn(server.run());
    (addr, shutdown)
}

/// Connects a client of another build and expects a schema mismatch naming `differs`.
macro_rules! assert_mismatch {
    ($addr:expr, $build:ident, $differs:literal) => {{
        let client = $build::ShopClient::new_self_signed($addr.to_string(), Compression::default());
        match client.connect().await {
            Err(ConnectError::Rejected { code, reason }) => {
                assert_eq!(code, RejectCode::SchemaMismatch, "{reason}");
                assert!(
                    reason.contains(concat!("the first part that differs is `", $differs, "`")),
                    "{}: {reason}",
                    stringify!($build)
                );
            }
            other => panic!(
                "{}: expected a schema mismatch, got {other:?}",
                stringify!($build)
            ),
        }
    }};
}

#[tokio::test]
async fn every_layout_change_is_a_schema_mismatch_naming_the_type() {
    let (addr, shutdown) = serve(factory!(Handler)).await;
    assert_mismatch!(addr, swapped_fields, "Item");
    assert_mismatch!(addr, changed_field_type, "Item");
    assert_mismatch!(addr, added_variant, "Kind");
    assert_mismatch!(addr, changed_event, "Sold");
    assert_mismatch!(addr, changed_error, "ShopError");
    shutdown.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_same_layout_spelled_another_way_connects() {
    let (addr, shutdown) = serve(factory!(Handler)).await;
    let same = served::ShopClient::new_self_signed(addr.to_string(), Compression::default());
    same.connect().await.unwrap();
    let item = served::Item { price: 3, qty: 2 };
    assert_eq!(
        same.buy(item, served::Kind::Book, "a".into())
            .await
            .unwrap(),
        6
    );

    let respelled =
        respelled::ShopClient::new_self_signed(addr.to_string(), Compression::default());
    respelled.connect().await.unwrap();
    let article = respelled::catalogue::Article { price: 5, qty: 1 };
    let kind = respelled::catalogue::Category::Toy;
    assert_eq!(respelled.buy(article, kind, "b".into()).await.unwrap(), 5);
    assert_eq!(respelled.state().await.unwrap().bought, 1);
    shutdown.shutdown(std::time::Duration::from_secs(1)).await;
}

/// A recursive type: its layout refers to itself.
pub mod recursive {
    use hardlight::*;

    #[codable(recursive)]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Tree {
        pub label: String,
        #[rkyv(omit_bounds)]
        pub children: Vec<Tree>,
    }

    #[rpc(state = ())]
    pub trait Forest {
        async fn count(&self, tree: Tree) -> HandlerResult<u32>;
    }

    fn size(tree: &Tree) -> u32 {
        1 + tree.children.iter().map(size).sum::<u32>()
    }

    #[rpc_handler(pub)]
    impl Forest for ForestHandler {
        async fn count(&self, tree: Tree) -> HandlerResult<u32> {
            Ok(size(&tree))
        }
    }
}

#[tokio::test]
async fn recursive_types_have_a_schema_and_travel() {
    let (addr, shutdown) = serve(factory!(recursive::ForestHandler)).await;
    let client = recursive::ForestClient::new_self_signed(addr.to_string(), Compression::default());
    client.connect().await.unwrap();
    let leaf = |label: &str| recursive::Tree {
        label: label.into(),
        children: vec![],
    };
    let branch = recursive::Tree {
        label: "branch".into(),
        children: vec![leaf("b"), leaf("c")],
    };
    let tree = recursive::Tree {
        label: "root".into(),
        children: vec![leaf("a"), branch],
    };
    assert_eq!(client.count(tree).await.unwrap(), 5);
    shutdown.shutdown(std::time::Duration::from_secs(1)).await;
}
