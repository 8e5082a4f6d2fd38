//! `#[codable]`: rkyv derives through the re-exported crate path.

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::with_item;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse2::<syn::DeriveInput>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error =
                syn::Error::new_spanned(&input, "#[codable] applies to a struct or an enum");
            return with_item(error, input);
        }
    };
    if !args.is_empty() {
        let error = syn::Error::new_spanned(&args, "#[codable] takes no arguments");
        return with_item(error, item);
    }
    if let syn::Data::Union(data) = &item.data {
        let error = syn::Error::new_spanned(data.union_token, "#[codable] does not support unions");
        return with_item(error, item);
    }
    quote! {
        #[derive(
            ::hardlight::__private::rkyv::Archive,
            ::hardlight::__private::rkyv::Serialize,
            ::hardlight::__private::rkyv::Deserialize
        )]
        #[rkyv(crate = ::hardlight::__private::rkyv)]
        #item
    }
}
