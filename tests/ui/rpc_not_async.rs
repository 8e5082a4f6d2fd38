use hardlight::*;

#[rpc]
trait Api {
    fn get(&self) -> HandlerResult<u32>;
}

fn main() {}
