use hardlight::*;

struct Handler;

#[rpc_handler]
impl Handler {
    fn helper(&self) {}
}

fn main() {}
