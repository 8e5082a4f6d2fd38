use hardlight::*;

#[rpc]
trait Api {
    async fn connect(&self) -> HandlerResult<()>;
    async fn disconnect(&self) -> HandlerResult<()>;
    async fn durable(&self) -> HandlerResult<()>;
    async fn is_connected(&self) -> HandlerResult<()>;
    async fn new(&self) -> HandlerResult<()>;
    async fn new_self_signed(&self) -> HandlerResult<()>;
    async fn stats(&self) -> HandlerResult<()>;
    async fn state(&self) -> HandlerResult<()>;
    async fn status(&self) -> HandlerResult<()>;
    async fn subscribe(&self) -> HandlerResult<()>;
    async fn transport(&self) -> HandlerResult<()>;
    async fn watch_state(&self) -> HandlerResult<()>;
    async fn watch_status(&self) -> HandlerResult<()>;
    async fn with_call_timeout(&self) -> HandlerResult<()>;
    async fn with_config(&self) -> HandlerResult<()>;
    async fn with_context(&self) -> HandlerResult<()>;
    async fn with_priority(&self) -> HandlerResult<()>;
    async fn clone(&self) -> HandlerResult<()>;
    async fn clone_from(&self) -> HandlerResult<()>;
    async fn deref(&self) -> HandlerResult<()>;
    async fn fmt(&self) -> HandlerResult<()>;
    async fn dispatch(&self) -> HandlerResult<()>;
    async fn __hardlight_dispatch(&self) -> HandlerResult<()>;
}

fn main() {}
