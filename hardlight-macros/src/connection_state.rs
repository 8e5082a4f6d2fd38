//! `#[connection_state]`: per-field codec and schema fingerprint for a state struct.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::errors::{with_item, Errors};

/// Derives the state needs and adds when the user did not: (name, absolute path).
const NEEDED_DERIVES: [(&str, &str); 3] = [
    ("Debug", "::core::fmt::Debug"),
    ("Clone", "::core::clone::Clone"),
    ("Default", "::core::default::Default"),
];

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse2::<syn::ItemStruct>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            let error = syn::Error::new_spanned(
                &input,
                "#[connection_state] applies to a struct with named fields",
            );
            return with_item(error, input);
        }
    };
    match check(&args, &item) {
        Ok(fields) => generate(&item, &fields),
        Err(error) => with_item(error, item),
    }
}

struct Field<'a> {
    ident: &'a syn::Ident,
    ty: &'a syn::Type,
}

fn check<'a>(args: &TokenStream, item: &'a syn::ItemStruct) -> Result<Vec<Field<'a>>, syn::Error> {
    let mut errors = Errors::default();
    if !args.is_empty() {
        errors.at(args, "#[connection_state] takes no arguments");
    }
    if !item.generics.params.is_empty() {
        errors.at(&item.generics, "a connection state cannot be generic");
    }
    let fields = match &item.fields {
        syn::Fields::Named(named) => named
            .named
            .iter()
            .filter_map(|f| f.ident.as_ref().map(|ident| Field { ident, ty: &f.ty }))
            .collect(),
        other => {
            errors.at(other, "a connection state needs named fields");
            Vec::new()
        }
    };
    if fields.len() > usize::from(u16::MAX) {
        errors.at(&item.ident, "a connection state has at most 65535 fields");
    }
    errors.finish().map(|()| fields)
}

fn generate(item: &syn::ItemStruct, fields: &[Field<'_>]) -> TokenStream {
    let name = &item.ident;
    let p = quote!(::hardlight::__private);
    let missing: Vec<syn::Path> = NEEDED_DERIVES
        .iter()
        .filter(|(needed, _)| !derives(item, needed))
        .filter_map(|(_, path)| syn::parse_str(path).ok())
        .collect();
    let derive = (!missing.is_empty()).then(|| quote!(#[derive(#(#missing),*)]));
    let names = fields.iter().map(|f| f.ident.to_string());
    let schema = crate::codable::schema_impl(&syn::DeriveInput::from(item.clone()));
    let encode_arms = fields.iter().enumerate().map(|(i, f)| {
        let (index, ident) = (i as u16, f.ident);
        quote_spanned! {f.ty.span()=> #index => #p::encode(&self.#ident), }
    });
    let decode_arms = fields.iter().enumerate().map(|(i, f)| {
        let (index, ident, ty) = (i as u16, f.ident, f.ty);
        quote_spanned! {f.ty.span()=>
            #index => {
                self.#ident = #p::decode::<#ty>(bytes)?;
                #p::Ok(())
            }
        }
    });
    quote! {
        #derive
        #item

        #schema

        impl #p::ConnectionState for #name {
            const FIELDS: &'static [&'static str] = &[#(#names),*];

            fn encode_field(&self, index: u16) -> #p::Result<#p::Bytes, #p::ProtocolError> {
                match index {
                    #(#encode_arms)*
                    _ => #p::Err(#p::unknown_field(index)),
                }
            }

            fn decode_field(&mut self, index: u16, bytes: &[u8]) -> #p::Result<(), #p::ProtocolError> {
                match index {
                    #(#decode_arms)*
                    _ => #p::Err(#p::unknown_field(index)),
                }
            }
        }
    }
}

/// Whether `item` already derives `name`.
fn derives(item: &syn::ItemStruct, name: &str) -> bool {
    item.attrs
        .iter()
        .filter(|attr| attr.path().is_ident("derive"))
        .any(|attr| {
            let mut found = false;
            let _ = attr.parse_nested_meta(|meta| {
                found |= meta.path.segments.last().is_some_and(|s| s.ident == name);
                Ok(())
            });
            found
        })
}
