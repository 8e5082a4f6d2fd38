use hardlight::*;

struct NotCodable {
    value: u32,
}

#[rpc]
trait Api {
    async fn take(&self, input: NotCodable) -> HandlerResult<u32>;
}

#[connection_state]
struct State {}

fn main() {}
