use hardlight::*;

#[connection_state]
struct State(u32, String);

fn main() {}
