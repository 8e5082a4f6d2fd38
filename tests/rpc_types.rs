//! Typed calls over real QUIC: every kind of argument and return type, and large payloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{Point, Shape, TestServer};

fn point(x: i64, y: i64, label: Option<&str>) -> Point {
    Point {
        x,
        y,
        label: label.map(str::to_owned),
    }
}

#[tokio::test]
async fn scalars_strings_and_several_arguments() {
    let server = TestServer::start().await;
    let client = server.client().await;
    assert_eq!(client.add(1, -2, 40).await.unwrap(), 39);
    assert_eq!(client.add(i64::MAX, 0, 0).await.unwrap(), i64::MAX);
    assert_eq!(
        client
            .describe(
                Shape::Circle {
                    center: point(3, 4, None),
                    radius: 1.5
                },
                Some(2.0)
            )
            .await
            .unwrap(),
        "circle at (3, 4) r=3"
    );
    assert_eq!(client.describe(Shape::Empty, None).await.unwrap(), "empty");
}

#[tokio::test]
async fn structs_enums_vecs_options_and_maps() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let points = vec![point(0, 0, Some("origin")), point(-5, 7, None)];
    let tags = HashMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]);
    let (moved, inverted) = client.transform(points, tags).await.unwrap();
    assert_eq!(
        moved,
        vec![point(1, -1, Some("ORIGIN")), point(-4, 6, None)]
    );
    assert_eq!(
        inverted,
        BTreeMap::from([(1, "a".to_owned()), (2, "b".to_owned())])
    );
    let polygon = Shape::Polygon(vec![point(1, 2, None), point(3, 4, Some("é✓"))]);
    assert_eq!(
        client.maybe(Some(polygon.clone())).await.unwrap(),
        Some(polygon)
    );
    assert_eq!(client.maybe(None).await.unwrap(), None);
    assert_eq!(
        client.echo_bytes(Vec::new()).await.unwrap(),
        Vec::<u8>::new()
    );
}

#[tokio::test]
async fn four_mib_payloads_round_trip_exactly() {
    let server = TestServer::start().await;
    let client = server.client().await;
    // incompressible: sent as is
    let random: Vec<u8> = (0..4 << 20).map(|_| rand::random::<u8>()).collect();
    assert_eq!(client.echo_bytes(random.clone()).await.unwrap(), random);
    // compressible: travels zstd-compressed both ways
    let patterned: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        client.echo_bytes(patterned.clone()).await.unwrap(),
        patterned
    );
}

#[tokio::test]
async fn works_without_compression() {
    let server = TestServer::start_with(|c| c.with_compression(hardlight::Compression::None)).await;
    let client = server.client().await;
    let data = vec![7u8; 100_000];
    assert_eq!(client.echo_bytes(data.clone()).await.unwrap(), data);
}
