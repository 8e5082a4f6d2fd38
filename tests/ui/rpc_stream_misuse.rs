use hardlight::*;

#[codable]
#[derive(Debug, Clone)]
pub enum Gone {
    Away,
}

#[rpc(state = ())]
trait Api {
    async fn ends_differently(&self) -> HandlerResult<Streaming<u32>, Gone>;
    async fn no_item(&self) -> HandlerResult<Streaming>;
}

fn main() {}
