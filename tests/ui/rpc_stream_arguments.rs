use hardlight::*;

#[rpc(state = ())]
trait Api {
    async fn two(&self, a: Streaming<u32>, b: Streaming<u32>) -> HandlerResult<()>;
    async fn with_error(&self, a: Streaming<u32, HandlerError>) -> HandlerResult<()>;
}

fn main() {}
