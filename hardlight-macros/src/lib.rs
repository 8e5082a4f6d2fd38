//! Procedural macros of HardLight. Use them through the `hardlight` crate:
//! `#[codable]`, `#[rpc]`, `#[connection_state]`, `#[rpc_handler]` and `factory!`.
//!
//! Each macro parses its input into a model, checks it (collecting every error with the
//! span of the offending token), then generates code that names runtime items only by
//! absolute paths through `::hardlight::__private`. When the input has errors, the user's
//! item is still emitted beside the errors so that editors keep working.

use proc_macro::TokenStream;

mod codable;
mod connection_state;
mod errors;
mod factory;
mod rpc;
mod rpc_handler;

/// Makes a struct or enum travel over HardLight: adds rkyv's validated derives.
///
/// ```ignore
/// #[codable]
/// #[derive(Debug, Clone)]
/// enum CounterEvent { Incremented { to: u32, from: u32 } }
/// ```
///
/// A type that contains itself takes `recursive`, and its recursive fields
/// `#[rkyv(omit_bounds)]`; on the wire it nests at most 128 levels deep
/// (`codec::MAX_DEPTH`):
///
/// ```ignore
/// #[codable(recursive)]
/// struct Tree { label: String, #[rkyv(omit_bounds)] children: Vec<Tree> }
/// ```
#[proc_macro_attribute]
pub fn codable(args: TokenStream, input: TokenStream) -> TokenStream {
    codable::expand(args.into(), input.into()).into()
}

/// Defines a service from a trait of `async fn name(&self, args…) -> HandlerResult<T>`.
///
/// Generates the server-side trait, a hidden service descriptor and `<Trait>Client`.
/// Options: `#[rpc(state = MyState)]` (default: the type named `State` in scope) and
/// `#[rpc(events = MyEvent)]`, the type published on topics (default `()`).
#[proc_macro_attribute]
pub fn rpc(args: TokenStream, input: TokenStream) -> TokenStream {
    rpc::expand(args.into(), input.into()).into()
}

/// Makes a struct with named fields the connection state a service syncs to its clients.
#[proc_macro_attribute]
pub fn connection_state(args: TokenStream, input: TokenStream) -> TokenStream {
    connection_state::expand(args.into(), input.into()).into()
}

/// Implements a service: on `impl Trait for Handler { … }`, generates `struct Handler`
/// (with `state`, `subscriptions`, `events`) and its dispatch. `#[rpc_handler(pub)]` makes
/// the struct public; `#[rpc_handler(app = AppState)]` adds `app: Arc<AppState>`, shared by
/// every connection's handler and given with `factory!(Handler, app_state)`.
#[proc_macro_attribute]
pub fn rpc_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    rpc_handler::expand(args.into(), input.into()).into()
}

/// The handler factory a `Server` takes: `factory!(Handler)`, or
/// `factory!(Handler, app_state)` for a handler declared with `#[rpc_handler(app = …)]`.
#[proc_macro]
pub fn factory(input: TokenStream) -> TokenStream {
    factory::expand(input.into()).into()
}
