//! Call arguments, replies, events and durable deliveries: arbitrary bytes decoded as the
//! typed messages a service exchanges (nested enums, options, maps, strings, vectors), a
//! durable delivery's event decoded as the client decodes it, and a call body split into
//! its call context and arguments as the server splits it.
#![no_main]

use std::collections::{BTreeMap, HashMap};

use hardlight::{
    codable,
    protocol::{
        codec::{decode, realign},
        context::{split_context, TraceParent},
        durable::Delivery,
        frame::{FrameHeader, Kind, FLAG_CONTEXT},
        received::Received,
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
    let call = FrameHeader::new(Kind::Call, 0).with_flags(FLAG_CONTEXT);
    let mut body = Received::Aligned(aligned.clone());
    if let Ok(Some(context)) = split_context(&call, &mut body) {
        assert!(body.len() <= aligned.len());
        let _ = decode::<(Shape, Option<f64>)>(&body);
        if let Some(traceparent) = &context.traceparent {
            if let Some(parsed) = TraceParent::parse(traceparent) {
                assert_eq!(TraceParent::parse(&parsed.to_string()), Some(parsed));
            }
        }
    }
});
