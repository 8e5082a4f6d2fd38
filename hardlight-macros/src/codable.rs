//! `#[codable]`: rkyv derives through the re-exported crate path, and the type's schema
//! fingerprint (its layout, for the handshake's schema hash).

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

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
    let recursive = match parse_args(args) {
        Ok(recursive) => recursive,
        Err(error) => return with_item(error, item),
    };
    if let syn::Data::Union(data) = &item.data {
        let error = syn::Error::new_spanned(data.union_token, "#[codable] does not support unions");
        return with_item(error, item);
    }
    let schema = schema_impl(&item);
    let bounds = recursive.then(recursive_bounds);
    quote! {
        #[derive(
            ::hardlight::__private::rkyv::Archive,
            ::hardlight::__private::rkyv::Serialize,
            ::hardlight::__private::rkyv::Deserialize
        )]
        #[rkyv(crate = ::hardlight::__private::rkyv)]
        #bounds
        #item

        #schema
    }
}

/// `#[codable]` or `#[codable(recursive)]`: whether the type contains itself.
fn parse_args(args: TokenStream) -> syn::Result<bool> {
    if args.is_empty() {
        return Ok(false);
    }
    match syn::parse2::<syn::Ident>(args.clone()) {
        Ok(ident) if ident == "recursive" => Ok(true),
        _ => Err(syn::Error::new_spanned(
            &args,
            "#[codable] takes no arguments but `recursive` (for a type that contains itself)",
        )),
    }
}

/// The bounds rkyv needs on a type that contains itself (its recursive fields marked
/// `#[rkyv(omit_bounds)]`), stated on the serializer, deserializer and validator instead of
/// on the field types, which would be circular.
fn recursive_bounds() -> TokenStream {
    let rkyv = quote!(::hardlight::__private::rkyv);
    quote! {
        #[rkyv(serialize_bounds(
            __S: #rkyv::ser::Writer + #rkyv::ser::Allocator,
            __S::Error: #rkyv::rancor::Source,
        ))]
        #[rkyv(deserialize_bounds(__D::Error: #rkyv::rancor::Source))]
        #[rkyv(bytecheck(bounds(
            __C: #rkyv::validation::ArchiveContext,
            __C::Error: #rkyv::rancor::Source,
        )))]
    }
}

/// `impl Schema`: the struct's fields or the enum's variants, each field by name (or
/// position) and type, in declaration order.
pub(crate) fn schema_impl(item: &syn::DeriveInput) -> TokenStream {
    let p = quote!(::hardlight::__private);
    let name = &item.ident;
    let name_text = name.to_string();
    let body = match &item.data {
        syn::Data::Struct(data) => {
            let fields = fields(&data.fields);
            quote!(l.structure(&[#(#fields),*]))
        }
        syn::Data::Enum(data) => {
            let variants = data.variants.iter().map(|v| {
                let variant = v.ident.to_string();
                let fields = fields(&v.fields);
                quote!((#variant, &[#(#fields),*]))
            });
            quote!(l.variants(&[#(#variants),*]))
        }
        syn::Data::Union(_) => return TokenStream::new(),
    };
    let mut generics = item.generics.clone();
    for param in generics.type_params_mut() {
        param.bounds.push(syn::parse_quote!(#p::Schema));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        impl #impl_generics #p::Schema for #name #ty_generics #where_clause {
            fn describe(layout: &mut #p::Layout) {
                layout.named::<Self>(#name_text, |l| #body);
            }
        }
    }
}

/// Each field as `(name, describe)`: named fields by name, tuple fields by position; a
/// field archived through an rkyv wrapper (`#[rkyv(with = …)]`) by the wrapper and its
/// type as written.
fn fields(fields: &syn::Fields) -> Vec<TokenStream> {
    let p = quote!(::hardlight::__private);
    fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let name = field
                .ident
                .as_ref()
                .map_or_else(|| i.to_string(), ToString::to_string);
            let ty = &field.ty;
            let modifiers: Vec<String> = field
                .attrs
                .iter()
                .filter(|attr| attr.path().is_ident("rkyv"))
                .map(|attr| attr.meta.to_token_stream().to_string())
                .filter(|text| !text.contains("omit_bounds"))
                .collect();
            if modifiers.is_empty() {
                quote!((#name, <#ty as #p::Schema>::describe))
            } else {
                // the wrapper decides the archived layout: the field's own type need not be
                // codable, so it is taken as written
                let ty = ty.to_token_stream().to_string();
                quote! {
                    (#name, |l: &mut #p::Layout| {
                        #(l.modifier(#modifiers);)*
                        l.modifier(#ty);
                    })
                }
            }
        })
        .collect()
}
