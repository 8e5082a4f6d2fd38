use hardlight::*;

#[rpc]
trait Api {
    async fn connect(&self) -> HandlerResult<()>;
    async fn __hardlight_dispatch(&self) -> HandlerResult<()>;
}

fn main() {}
