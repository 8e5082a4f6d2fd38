use hardlight::*;

#[connection_state]
pub struct State {}

#[rpc]
pub trait Options {
    #[rpc(priority = urgent)]
    async fn unknown_level(&self) -> HandlerResult<()>;
    #[rpc(idempotent)]
    async fn unknown_option(&self) -> HandlerResult<()>;
}

fn main() {}
