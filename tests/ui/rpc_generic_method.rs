use hardlight::*;

#[rpc]
trait Api {
    async fn convert<T>(&self, value: T) -> HandlerResult<u32>;
}

fn main() {}
