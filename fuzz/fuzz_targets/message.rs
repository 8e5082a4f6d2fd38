//! Call arguments, replies, events and durable deliveries: arbitrary bytes decoded as the
//! typed messages a service exchanges (nested enums, options, maps, strings, vectors), and
//! a durable delivery's event decoded as the client decodes it.
#![no_main]

use std::collections::{BTreeMap, HashMap};

use hardlight::{
    codable,
    protocol::{
        codec::{decode, realign},
        durable::Delivery,
    },
    HandlerError, Topic,
};
use libfuzzer_sys::fuzz_target;

#[codable]
#[derive(Debug, Clone, PartialEq)]
struct Point {
    x: i64,
    y: i64,
    label: Option<String>,
}

#[codable]
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Circle { center: Point, radius: f64 },
    Polygon(Vec<Point>),
    Empty,
}

fuzz_target!(|data: &[u8]| {
    let aligned = realign(data);
    let _ = decode::<(Shape, Option<f64>)>(&aligned);
    let _ = decode::<(Vec<Point>, HashMap<String, u32>)>(&aligned);
    let _ = decode::<(Vec<Point>, BTreeMap<u32, String>)>(&aligned);
    let _ = decode::<(Topic, Shape)>(&aligned);
    let _ = decode::<HandlerError>(&aligned);
    let _ = decode::<(Vec<u8>,)>(&aligned);
    if let Ok(delivery) = decode::<Delivery>(&aligned) {
        let _ = decode::<Shape>(&delivery.event);
    }
});
