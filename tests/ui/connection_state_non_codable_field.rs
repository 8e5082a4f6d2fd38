use hardlight::*;

#[derive(Debug, Clone, Default)]
struct Opaque;

#[connection_state]
struct State {
    fine: u32,
    opaque: Opaque,
}

fn main() {}
