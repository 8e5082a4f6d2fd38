use hardlight::*;

#[rpc]
trait Api {
    async fn greet(&self, name: &str) -> HandlerResult<String>;
}

fn main() {}
