use hardlight::*;

#[rpc]
trait Api {
    async fn plain(&self) -> u32;
    async fn nothing(&self);
}

fn main() {}
