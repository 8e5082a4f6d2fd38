//! The `#[rpc(...)]` options.

use proc_macro2::TokenStream;
use syn::parse::Parser;

/// Options of `#[rpc]`.
pub(crate) struct Attr {
    /// The connection state type; `State` when not given.
    pub(crate) state: syn::Type,
    /// The event type; `()` when not given.
    pub(crate) events: syn::Type,
}

pub(crate) fn parse(args: TokenStream) -> Result<Attr, syn::Error> {
    let mut state = None;
    let mut events = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("state") {
            state = Some(meta.value()?.parse::<syn::Type>()?);
            Ok(())
        } else if meta.path.is_ident("events") {
            events = Some(meta.value()?.parse::<syn::Type>()?);
            Ok(())
        } else {
            Err(meta.error("unknown #[rpc] option; expected `state = Type` or `events = Type`"))
        }
    });
    parser.parse2(args)?;
    Ok(Attr {
        state: state.unwrap_or_else(|| syn::parse_quote!(State)),
        events: events.unwrap_or_else(|| syn::parse_quote!(())),
    })
}
