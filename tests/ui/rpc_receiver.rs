use hardlight::*;

#[rpc]
trait Api {
    async fn no_self(value: u32) -> HandlerResult<u32>;
    async fn mutable(&mut self) -> HandlerResult<u32>;
    async fn owned(self) -> HandlerResult<u32>;
}

fn main() {}
