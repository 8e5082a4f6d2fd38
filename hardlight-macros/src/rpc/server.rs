//! The server side of `#[rpc]`: the handler trait with its dispatch, and the service
//! descriptor.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;

use super::{attr::Attr, model::Service, service_ident};

pub(crate) fn generate(item: &syn::ItemTrait, attr: &Attr, service: &Service) -> TokenStream {
    let p = quote!(::hardlight::__private);
    let syn::ItemTrait {
        attrs, vis, ident, ..
    } = item;
    let name = ident.to_string();
    let descriptor = service_ident(ident);
    let (state, events) = (&attr.state, &attr.events);

    let signatures = service.methods.iter().map(|m| {
        let (attrs, method, output) = (&m.attrs, &m.ident, &m.output);
        let args = m.args.iter().map(|a| {
            let (arg, ty) = (&a.ident, &a.ty);
            quote!(#arg: #ty)
        });
        quote! {
            #(#attrs)*
            fn #method(&self, #(#args),*)
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
            where
                Self: ::core::marker::Sized;
        }
    });
    let assertions = service.methods.iter().flat_map(|m| {
        m.args
            .iter()
            .map(|a| a.stream.as_ref().unwrap_or(&a.ty))
            .chain([m.stream.as_ref().unwrap_or(&m.ok)])
            .chain(m.err.as_ref())
            .map(|ty| quote_spanned! {ty.span()=> __assert_codable::<#ty>(); })
    });
    let arms = service.methods.iter().enumerate().map(|(i, m)| {
        let index = i as u16;
        let method = &m.ident;
        let method_name = method.to_string();
        let args: Vec<_> = m.args.iter().map(|a| &a.ident).collect();
        let plain: Vec<_> = m.plain_args().map(|a| &a.ident).collect();
        let types = m.plain_args().map(|a| &a.ty);
        // spanned at the user's method so a type error shows there, not at #[rpc]
        let decode = quote_spanned! {method.span()=> #p::Received::decode::<(#(#types,)*)>(args) };
        let input = m.input().map(|(arg, item)| {
            let ident = &arg.ident;
            quote_spanned! {arg.ty.span()=>
                let #ident = #p::Streaming::<#item>::decoding(
                    inbound.unwrap_or_else(#p::no_items),
                );
            }
        });
        let run = match &m.stream {
            None => quote_spanned! {m.output.span()=>
                #p::Outcome::from_result(self.#method(#(#args),*).await)
            },
            Some(item) => {
                let err = m
                    .err
                    .as_ref()
                    .map_or_else(|| quote!(#p::HandlerError), ToTokens::to_token_stream);
                quote_spanned! {m.output.span()=>
                    match self.#method(#(#args),*).await {
                        #p::Ok(items) => #p::Outcome::Stream(#p::encode_items::<#item, #err>(items)),
                        #p::Err(error) => #p::Outcome::from_result::<(), #err>(#p::Err(error)),
                    }
                }
            }
        };
        // a future of its own per method: a call is sized by its own method, not by the
        // service's largest
        quote! {
            #index => into.set(async move {
                #input
                let (#(#plain,)*) = match #decode {
                    #p::Ok(args) => args,
                    #p::Err(error) => return #p::Outcome::invalid_arguments(#method_name, error),
                };
                #run
            }),
        }
    });
    let method_names = service.methods.iter().map(|m| m.ident.to_string());
    let streaming: Vec<u16> = service
        .methods
        .iter()
        .enumerate()
        .filter(|(_, m)| m.kind() != "Unary")
        .map(|(i, _)| i as u16)
        .collect();
    let streams = (!streaming.is_empty()).then(|| {
        let arms = service
            .methods
            .iter()
            .enumerate()
            .filter(|(_, m)| m.kind() != "Unary")
            .map(|(i, m)| {
                let index = i as u16;
                let kind = syn::Ident::new(m.kind(), proc_macro2::Span::call_site());
                quote!(#index => #p::StreamKind::#kind,)
            });
        quote! {
            fn stream_kind(index: u16) -> #p::StreamKind {
                match index {
                    #(#arms)*
                    _ => #p::StreamKind::Unary,
                }
            }
        }
    });
    let ranked: Vec<_> = service
        .methods
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let index = i as u16;
            let level = m.priority.as_ref()?;
            Some(quote!(#index => #p::Priority::#level,))
        })
        .collect();
    let priorities = (!ranked.is_empty()).then(|| {
        quote! {
            fn priority(index: u16) -> #p::Priority {
                match index {
                    #(#ranked)*
                    _ => #p::Priority::Normal,
                }
            }
        }
    });
    let schema_methods = service.methods.iter().map(|m| {
        let method = m.ident.to_string();
        let types = m.args.iter().map(|a| &a.ty);
        let ok = &m.ok;
        let err = m
            .err
            .as_ref()
            .map_or_else(|| quote!(#p::HandlerError), ToTokens::to_token_stream);
        quote_spanned! {m.output.span()=>
            layout.method(
                #method,
                &[#(<#types as #p::Schema>::describe),*],
                <#ok as #p::Schema>::describe,
                <#err as #p::Schema>::describe,
            );
        }
    });

    quote! {
        #(#attrs)*
        #vis trait #ident: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#signatures)*

            /// Puts in `into` the future that decodes a call's arguments, runs the method and
            /// encodes its result.
            #[doc(hidden)]
            fn __hardlight_dispatch(
                self: ::std::sync::Arc<Self>,
                method: u16,
                args: #p::Received,
                inbound: ::core::option::Option<#p::Inbound>,
                into: &mut #p::HandlerFuture,
            )
            where
                Self: ::core::marker::Sized,
            {
                // the client's stream, for the method that takes one
                let _ = &inbound;
                match method {
                    #(#arms)*
                    _ => into.set(::core::future::ready(
                        #p::Outcome::unknown_method(#name, method),
                    )),
                }
            }
        }

        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #descriptor;

        // methods are `where Self: Sized`, so `dyn Trait` exists and can name the service
        impl #p::ServiceOf for dyn #ident {
            type Service = #descriptor;
        }

        impl #p::Service for #descriptor {
            type State = #state;
            type Event = #events;
            const NAME: &'static str = #name;
            const METHODS: &'static [&'static str] = &[#(#method_names),*];

            #streams
            #priorities

            fn schema() -> &'static #p::ServiceSchema {
                static SCHEMA: ::std::sync::OnceLock<#p::ServiceSchema> =
                    ::std::sync::OnceLock::new();
                SCHEMA.get_or_init(|| {
                    let mut layout = #p::Layout::new();
                    #(#schema_methods)*
                    layout.part(
                        ::std::borrow::ToOwned::to_owned("state"),
                        <#state as #p::Schema>::describe,
                    );
                    layout.part(
                        ::std::borrow::ToOwned::to_owned("events"),
                        <#events as #p::Schema>::describe,
                    );
                    layout.into_service()
                })
            }
        }

        const _: () = {
            fn __assert_codable<T: #p::Codable + #p::Schema>() {}
            fn __assert_all() {
                #(#assertions)*
            }
        };
    }
}
