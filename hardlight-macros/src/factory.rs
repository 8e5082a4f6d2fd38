//! `factory!(Handler)` and `factory!(Handler, app_state)`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{
    parse::{Parse, ParseStream},
    Token,
};

/// `Handler` or `Handler, app`.
struct Input {
    handler: syn::Type,
    app: Option<syn::Expr>,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let handler = input.parse()?;
        let app = if input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            Some(input.parse()?)
        } else {
            None
        };
        input.parse::<Option<Token![,]>>()?;
        Ok(Self { handler, app })
    }
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<Input>(input) {
        Ok(Input { handler, app: None }) => quote! { ::hardlight::__private::Factory::<#handler>::new() },
        Ok(Input {
            handler,
            app: Some(app),
        }) => quote! { ::hardlight::__private::Factory::<#handler>::with_app(#app) },
        Err(error) => syn::Error::new(
            error.span(),
            "factory! takes the handler type and, if it has app state, the state: factory!(Handler) or factory!(Handler, app)",
        )
        .to_compile_error(),
    }
}
