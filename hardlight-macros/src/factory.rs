//! `factory!(Handler)`.

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<syn::Type>(input) {
        Ok(handler) => quote! { ::hardlight::__private::Factory::<#handler>::new() },
        Err(error) => {
            let error = syn::Error::new(
                error.span(),
                "factory! takes the handler type: factory!(Handler)",
            );
            error.to_compile_error()
        }
    }
}
