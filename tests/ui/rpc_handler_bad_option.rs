use hardlight::*;

#[rpc]
trait Api {
    async fn get(&self) -> HandlerResult<u32>;
}

#[connection_state]
struct State {}

#[rpc_handler(pub, context = Missing)]
impl Api for Handler {
    async fn get(&self) -> HandlerResult<u32> {
        Ok(1)
    }
}

fn main() {}
