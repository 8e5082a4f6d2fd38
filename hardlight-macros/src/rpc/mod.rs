//! `#[rpc]`: parse the trait into a [`model::Service`], check it, generate the server trait,
//! the service descriptor and the client.

mod attr;
mod client;
mod model;
mod reserved;
mod server;

use proc_macro2::TokenStream;

use crate::errors::with_item;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse2::<syn::ItemTrait>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new_spanned(&input, "#[rpc] applies to a trait");
            return with_item(error, input);
        }
    };
    let attr = attr::parse(args);
    let service = model::Service::parse(&item);
    // emitted as written on error, less the methods' options (which only #[rpc] reads)
    let item = without_method_options(item);
    match (attr, service) {
        (Ok(attr), Ok(service)) => {
            let mut out = server::generate(&item, &attr, &service);
            out.extend(client::generate(&item, &service));
            out
        }
        (Err(mut a), Err(b)) => {
            a.combine(b);
            with_item(a, item)
        }
        (Err(e), _) | (_, Err(e)) => with_item(e, item),
    }
}

/// `item` without the `#[rpc(..)]` options of its methods.
fn without_method_options(mut item: syn::ItemTrait) -> syn::ItemTrait {
    for trait_item in &mut item.items {
        if let syn::TraitItem::Fn(f) = trait_item {
            f.attrs.retain(|a| !a.path().is_ident("rpc"));
        }
    }
    item
}

/// The hidden descriptor type generated for trait `name`.
pub(crate) fn service_ident(name: &syn::Ident) -> syn::Ident {
    quote::format_ident!("__{}Service", name)
}
