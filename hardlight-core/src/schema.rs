//! Schema fingerprints: the layout of every type a service sends, reduced to a hash that
//! the handshake compares, so that a client and a server whose types differ never talk.
//!
//! A fingerprint covers structure, not spelling: field names, their order and types,
//! enum variants and their fields, recursively through nested types, and the standard
//! containers by what they are (`Vec`, `Option`, maps, tuples, arrays, primitives).
//! `String` and `std::string::String`, or a type imported under another path, give the
//! same fingerprint; the names of structs and enums themselves are not part of it (the
//! wire never carries them). Recursive types work: a type met again while it is being
//! described is written as a reference to the enclosing one.
//!
//! `#[codable]` and `#[connection_state]` implement [`Schema`]; `#[rpc]` combines the
//! fingerprints of every method's arguments, result and error, the state and the events
//! into a [`ServiceSchema`].
//!
//! ```
//! use hardlight_core::schema::{fingerprint, Layout, Schema};
//!
//! struct Item { price: u32, qty: u32 }
//! impl Schema for Item {
//!     fn describe(layout: &mut Layout) {
//!         layout.named::<Self>("Item", |l| {
//!             l.structure(&[("price", <u32 as Schema>::describe), ("qty", <u32 as Schema>::describe)])
//!         });
//!     }
//! }
//! struct Swapped { qty: u32, price: u32 }
//! impl Schema for Swapped {
//!     fn describe(layout: &mut Layout) {
//!         layout.named::<Self>("Item", |l| {
//!             l.structure(&[("qty", <u32 as Schema>::describe), ("price", <u32 as Schema>::describe)])
//!         });
//!     }
//! }
//! assert_ne!(fingerprint::<Item>(), fingerprint::<Swapped>());
//! assert_eq!(fingerprint::<String>(), fingerprint::<std::string::String>());
//! ```

use std::{
    any::TypeId,
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
};

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A type whose wire layout has a fingerprint. Implemented by `#[codable]` and
/// `#[connection_state]`, and here for the primitives and standard containers rkyv
/// archives.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel over HardLight",
    label = "not codable",
    note = "add `#[codable]` to the definition of `{Self}` (and of every type inside it)"
)]
pub trait Schema: 'static {
    /// Writes the layout of `Self` into `layout`.
    fn describe(layout: &mut Layout);
}

/// How a layout is written: one function per type, so that a type's layout can be passed
/// around without a value (`<T as Schema>::describe`).
pub type Describe = fn(&mut Layout);

/// A named type met while describing a service, and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SchemaItem {
    /// What it is: `method add`, `state`, `events`, or a type's name.
    pub name: String,
    /// Its fingerprint.
    pub fingerprint: u64,
}

/// A service's schema: the hash the handshake compares, and the fingerprints of its parts
/// (methods, state, events, and every named type they reach), used to name the first part
/// that differs when two builds disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSchema {
    /// The hash over every part, in order.
    pub hash: u64,
    /// The parts, in the order they were met.
    pub items: Vec<SchemaItem>,
}

impl ServiceSchema {
    /// The first of `ours` that `theirs` lacks or has with another fingerprint.
    ///
    /// ```
    /// use hardlight_core::schema::{SchemaItem, ServiceSchema};
    /// let item = |name: &str, fingerprint| SchemaItem { name: name.into(), fingerprint };
    /// let ours = ServiceSchema { hash: 1, items: vec![item("method add", 1), item("Item", 2)] };
    /// let theirs = vec![item("method add", 1), item("Item", 3)];
    /// assert_eq!(ours.first_difference(&theirs).map(|i| i.name.as_str()), Some("Item"));
    /// ```
    pub fn first_difference<'a>(&'a self, theirs: &[SchemaItem]) -> Option<&'a SchemaItem> {
        self.items.iter().find(|ours| {
            !theirs
                .iter()
                .any(|t| t.name == ours.name && t.fingerprint == ours.fingerprint)
        })
    }
}

/// The fingerprint of `T`'s layout.
pub fn fingerprint<T: Schema + ?Sized>() -> u64 {
    let mut layout = Layout::new();
    T::describe(&mut layout);
    layout.finish()
}

/// Tags of the canonical layout encoding; each is followed by its operands.
mod tag {
    pub(super) const PRIMITIVE: u8 = 1;
    pub(super) const CONTAINER: u8 = 2;
    pub(super) const TUPLE: u8 = 3;
    pub(super) const ARRAY: u8 = 4;
    pub(super) const STRUCT: u8 = 5;
    pub(super) const ENUM: u8 = 6;
    pub(super) const NAMED: u8 = 7;
    pub(super) const BACK: u8 = 8;
    pub(super) const PART: u8 = 9;
    pub(super) const MODIFIER: u8 = 10;
}

/// Writes layouts in a canonical, injective encoding and hashes them.
#[derive(Debug)]
pub struct Layout {
    /// The bytes of the type being described at each depth; `frames[0]` is the root.
    frames: Vec<Frame>,
    /// Fingerprints of types whose layout does not refer to an enclosing type.
    closed: HashMap<TypeId, u64>,
    /// Every named type met, in the order first met.
    items: Vec<SchemaItem>,
}

#[derive(Debug)]
struct Frame {
    ty: Option<TypeId>,
    bytes: Vec<u8>,
    /// Refers to a type further out (recursion), so its fingerprint depends on where it
    /// was met and cannot be reused elsewhere.
    open: bool,
}

impl Default for Layout {
    fn default() -> Self {
        Self::new()
    }
}

impl Layout {
    /// An empty layout.
    pub fn new() -> Self {
        Self {
            frames: vec![Frame {
                ty: None,
                bytes: Vec::new(),
                open: false,
            }],
            closed: HashMap::new(),
            items: Vec::new(),
        }
    }

    fn bytes(&mut self) -> &mut Vec<u8> {
        // frames is never empty: the root frame is only taken by `finish`
        let last = self.frames.len() - 1;
        &mut self.frames[last].bytes
    }

    fn tag(&mut self, tag: u8) {
        self.bytes().push(tag);
    }

    fn text(&mut self, text: &str) {
        self.number(text.len() as u64);
        self.bytes().extend_from_slice(text.as_bytes());
    }

    fn number(&mut self, n: u64) {
        self.bytes().extend_from_slice(&n.to_le_bytes());
    }

    /// A primitive type, by name (`u32`, `bool`, `String`, ...).
    pub fn primitive(&mut self, name: &'static str) {
        self.tag(tag::PRIMITIVE);
        self.text(name);
    }

    /// A standard container (`Vec`, `Option`, `HashMap`, ...) of the given parameters.
    pub fn container(&mut self, name: &'static str, params: &[Describe]) {
        self.tag(tag::CONTAINER);
        self.text(name);
        self.number(params.len() as u64);
        for param in params {
            param(self);
        }
    }

    /// A tuple of these elements.
    pub fn tuple(&mut self, elements: &[Describe]) {
        self.tag(tag::TUPLE);
        self.number(elements.len() as u64);
        for element in elements {
            element(self);
        }
    }

    /// An array of `len` elements.
    pub fn array(&mut self, len: usize, element: Describe) {
        self.tag(tag::ARRAY);
        self.number(len as u64);
        element(self);
    }

    /// A struct's fields, in order: names (or positions, `"0"`, `"1"`, ... for a tuple
    /// struct) and types.
    pub fn structure(&mut self, fields: &[(&str, Describe)]) {
        self.tag(tag::STRUCT);
        self.fields(fields);
    }

    fn fields(&mut self, fields: &[(&str, Describe)]) {
        self.number(fields.len() as u64);
        for (name, describe) in fields {
            self.text(name);
            describe(self);
        }
    }

    /// An enum's variants, in order, with their fields.
    pub fn variants(&mut self, variants: &[(&str, &[(&str, Describe)])]) {
        self.tag(tag::ENUM);
        self.number(variants.len() as u64);
        for (name, fields) in variants {
            self.text(name);
            self.fields(fields);
        }
    }

    /// Something that changes how the next type is archived, as written (an rkyv `with`
    /// wrapper on a field).
    pub fn modifier(&mut self, text: &str) {
        self.tag(tag::MODIFIER);
        self.text(text);
    }

    /// A named type `T` (a struct or enum), described by `body` unless it was met before:
    /// its fingerprint stands for it, or, while `T` is itself being described (a
    /// recursive type), a reference to that enclosing description.
    pub fn named<T: 'static + ?Sized>(&mut self, name: &'static str, body: impl FnOnce(&mut Self)) {
        let ty = TypeId::of::<T>();
        if let Some(depth) = self.frames.iter().rposition(|f| f.ty == Some(ty)) {
            let distance = self.frames.len() - depth;
            for frame in &mut self.frames[depth + 1..] {
                frame.open = true;
            }
            self.tag(tag::BACK);
            self.number(distance as u64);
            return;
        }
        let fingerprint = match self.closed.get(&ty) {
            Some(fingerprint) => *fingerprint,
            None => {
                self.frames.push(Frame {
                    ty: Some(ty),
                    bytes: Vec::new(),
                    open: false,
                });
                body(self);
                // the frame pushed above: `body` pushes and pops its own in pairs
                let (bytes, open) = match self.frames.pop() {
                    Some(frame) => (frame.bytes, frame.open),
                    None => (Vec::new(), true),
                };
                let fingerprint = fnv1a(&bytes);
                if !open {
                    self.closed.insert(ty, fingerprint);
                }
                if !self.items.iter().any(|i| i.name == name) {
                    self.items.push(SchemaItem {
                        name: name.to_owned(),
                        fingerprint,
                    });
                }
                fingerprint
            }
        };
        self.tag(tag::NAMED);
        self.number(fingerprint);
    }

    /// A part of a service (a method, the state, the events), described by `body`; its
    /// fingerprint is kept under `name` to tell which part differs.
    pub fn part(&mut self, name: String, body: impl FnOnce(&mut Self)) {
        let start = self.bytes().len();
        self.tag(tag::PART);
        self.text(&name);
        body(self);
        let fingerprint = fnv1a(&self.bytes()[start..]);
        self.items.push(SchemaItem { name, fingerprint });
    }

    /// A method: its name, its arguments' types in order, its result and its error.
    pub fn method(&mut self, name: &str, args: &[Describe], ok: Describe, err: Describe) {
        self.part(format!("method {name}"), |l| {
            l.tuple(args);
            ok(l);
            err(l);
        });
    }

    /// The fingerprint of everything written.
    pub fn finish(self) -> u64 {
        fnv1a(&self.frames[0].bytes)
    }

    /// The service schema of everything written: the parts in order, then the named types
    /// they reached.
    pub fn into_service(self) -> ServiceSchema {
        let hash = fnv1a(&self.frames[0].bytes);
        ServiceSchema {
            hash,
            items: self.items,
        }
    }
}

macro_rules! primitives {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl Schema for $ty {
            fn describe(layout: &mut Layout) {
                layout.primitive($name);
            }
        })*
    };
}

primitives! {
    () => "()", bool => "bool", char => "char",
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64", u128 => "u128", usize => "usize",
    i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64", i128 => "i128", isize => "isize",
    f32 => "f32", f64 => "f64", String => "String", str => "str",
}

macro_rules! containers {
    ($($name:literal: $ty:ident<$($param:ident),+> $(where $($bound:tt)+)?;)*) => {
        $(impl<$($param: Schema),+> Schema for $ty<$($param),+> {
            fn describe(layout: &mut Layout) {
                layout.container($name, &[$(<$param as Schema>::describe),+]);
            }
        })*
    };
}

containers! {
    "Vec": Vec<T>;
    "VecDeque": VecDeque<T>;
    "Option": Option<T>;
    "Box": Box<T>;
    "BTreeMap": BTreeMap<K, V>;
    "BTreeSet": BTreeSet<T>;
    "Result": Result<T, E>;
}

impl<T: Schema> Schema for [T] {
    fn describe(layout: &mut Layout) {
        layout.container("slice", &[<T as Schema>::describe]);
    }
}

impl<K: Schema, V: Schema, S: 'static> Schema for HashMap<K, V, S> {
    fn describe(layout: &mut Layout) {
        layout.container(
            "HashMap",
            &[<K as Schema>::describe, <V as Schema>::describe],
        );
    }
}

impl<T: Schema, S: 'static> Schema for HashSet<T, S> {
    fn describe(layout: &mut Layout) {
        layout.container("HashSet", &[<T as Schema>::describe]);
    }
}

impl<T: Schema, const N: usize> Schema for [T; N] {
    fn describe(layout: &mut Layout) {
        layout.array(N, <T as Schema>::describe);
    }
}

macro_rules! tuples {
    ($(($($t:ident),+)),* $(,)?) => {
        $(impl<$($t: Schema),+> Schema for ($($t,)+) {
            fn describe(layout: &mut Layout) {
                layout.tuple(&[$(<$t as Schema>::describe),+]);
            }
        })*
    };
}

tuples! {
    (A), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, E), (A, B, C, D, E, F),
    (A, B, C, D, E, F, G), (A, B, C, D, E, F, G, H), (A, B, C, D, E, F, G, H, I),
    (A, B, C, D, E, F, G, H, I, J), (A, B, C, D, E, F, G, H, I, J, K),
    (A, B, C, D, E, F, G, H, I, J, K, L),
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tree {
        _children: Vec<Tree>,
    }
    impl Schema for Tree {
        fn describe(layout: &mut Layout) {
            layout.named::<Self>("Tree", |l| {
                l.structure(&[("children", <Vec<Tree> as Schema>::describe)])
            });
        }
    }

    /// Mutually recursive: `Even` holds `Odd`s, which hold `Even`s.
    struct Even;
    struct Odd;
    impl Schema for Even {
        fn describe(layout: &mut Layout) {
            layout.named::<Self>("Even", |l| {
                l.structure(&[("next", <Vec<Odd> as Schema>::describe)])
            });
        }
    }
    impl Schema for Odd {
        fn describe(layout: &mut Layout) {
            layout.named::<Self>("Odd", |l| {
                l.structure(&[("next", <Option<Box<Even>> as Schema>::describe)])
            });
        }
    }

    #[test]
    fn recursive_types_have_a_fingerprint() {
        assert_ne!(fingerprint::<Tree>(), fingerprint::<Vec<Tree>>());
        assert_ne!(fingerprint::<Even>(), fingerprint::<Odd>());
        assert_eq!(fingerprint::<Even>(), fingerprint::<Even>());
    }

    #[test]
    fn containers_are_told_apart_by_what_they_are() {
        let all = [
            fingerprint::<Vec<u8>>(),
            fingerprint::<VecDeque<u8>>(),
            fingerprint::<Option<u8>>(),
            fingerprint::<Box<u8>>(),
            fingerprint::<[u8; 4]>(),
            fingerprint::<(u8,)>(),
            fingerprint::<HashMap<u8, u8>>(),
            fingerprint::<BTreeMap<u8, u8>>(),
            fingerprint::<u8>(),
            fingerprint::<i8>(),
        ];
        let distinct: HashSet<u64> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len());
    }
}
