//! The checked model of an `#[rpc]` trait.

use quote::ToTokens;
use syn::spanned::Spanned;

use crate::errors::Errors;

/// Largest number of arguments a method may take (rkyv tuple support).
const MAX_ARGS: usize = 12;

/// A checked service.
pub(crate) struct Service {
    pub(crate) methods: Vec<Method>,
}

/// A checked method.
pub(crate) struct Method {
    pub(crate) ident: syn::Ident,
    pub(crate) attrs: Vec<syn::Attribute>,
    pub(crate) args: Vec<Arg>,
    /// The `Ok` type.
    pub(crate) ok: syn::Type,
    /// The error type, if the return type names one.
    pub(crate) err: Option<syn::Type>,
    /// The item type, when the method returns a stream (`Streaming<T>`).
    pub(crate) stream: Option<syn::Type>,
    /// The return type as written.
    pub(crate) output: syn::Type,
    /// The `Priority` variant of `#[rpc(priority = ..)]` on the method, if given.
    pub(crate) priority: Option<syn::Ident>,
}

/// A checked argument.
pub(crate) struct Arg {
    pub(crate) ident: syn::Ident,
    pub(crate) ty: syn::Type,
    /// The item type, when the argument is the client's stream (`Streaming<T>`).
    pub(crate) stream: Option<syn::Type>,
}

impl Method {
    /// The argument the client streams, if any.
    pub(crate) fn input(&self) -> Option<(&Arg, &syn::Type)> {
        self.args
            .iter()
            .find_map(|a| a.stream.as_ref().map(|item| (a, item)))
    }

    /// The arguments sent in the `Call`: all but the streamed one.
    pub(crate) fn plain_args(&self) -> impl Iterator<Item = &Arg> {
        self.args.iter().filter(|a| a.stream.is_none())
    }

    /// The `StreamKind` variant of the method.
    pub(crate) fn kind(&self) -> &'static str {
        match (self.input().is_some(), self.stream.is_some()) {
            (false, false) => "Unary",
            (false, true) => "Server",
            (true, false) => "Client",
            (true, true) => "Bidirectional",
        }
    }
}

impl Service {
    /// Parses and checks the trait, reporting every problem at once.
    pub(crate) fn parse(item: &syn::ItemTrait) -> Result<Self, syn::Error> {
        let mut errors = Errors::default();
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            errors.at(&item.generics, "an #[rpc] trait cannot be generic");
        }
        if let Some(unsafety) = &item.unsafety {
            errors.at(unsafety, "an #[rpc] trait cannot be unsafe");
        }
        let mut methods = Vec::new();
        for trait_item in &item.items {
            match trait_item {
                syn::TraitItem::Fn(f) => {
                    if let Some(method) = Method::parse(f, &mut errors) {
                        methods.push(method);
                    }
                }
                other => errors.at(other, "an #[rpc] trait holds only `async fn` methods"),
            }
        }
        if methods.len() > usize::from(u16::MAX) {
            errors.at(&item.ident, "an #[rpc] trait has at most 65535 methods");
        }
        errors.finish().map(|()| Self { methods })
    }
}

impl Method {
    fn parse(f: &syn::TraitItemFn, errors: &mut Errors) -> Option<Self> {
        let sig = &f.sig;
        let name = sig.ident.to_string();
        if sig.asyncness.is_none() {
            errors.at(
                sig.fn_token,
                format!("RPC method `{name}` must be `async fn`"),
            );
        }
        if super::reserved::is_reserved(&name) {
            errors.at(
                &sig.ident,
                format!(
                    "`{name}` is reserved by the generated client and handler; rename the method"
                ),
            );
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            errors.at(
                &sig.generics,
                format!(
                    "RPC method `{name}` cannot be generic: its types must be known to encode them"
                ),
            );
        }
        if let Some(body) = &f.default {
            errors.at(
                body,
                "RPC methods have no default body; implement them in #[rpc_handler]",
            );
        }
        if let Some(constness) = &sig.constness {
            errors.at(constness, "RPC methods cannot be const");
        }
        if let Some(unsafety) = &sig.unsafety {
            errors.at(unsafety, "RPC methods cannot be unsafe");
        }
        if let Some(variadic) = &sig.variadic {
            errors.at(variadic, "RPC methods cannot be variadic");
        }
        check_receiver(sig, errors);
        let args = parse_args(sig, errors);
        let output = match &sig.output {
            syn::ReturnType::Type(_, ty) => (**ty).clone(),
            syn::ReturnType::Default => {
                errors.at(
                    sig,
                    format!("RPC method `{name}` must return HandlerResult<T>"),
                );
                return None;
            }
        };
        let (ok, err) = match split_result(&output) {
            Some(parts) => parts,
            None => {
                errors.at(&output, "RPC methods return `HandlerResult<T>`, `HandlerResult<T, E>` or `Result<T, E>`");
                return None;
            }
        };
        let stream = streamed_item(&ok, err.as_ref(), errors);
        for extra in args.iter().filter(|a| a.stream.is_some()).skip(1) {
            errors.at(
                &extra.ty,
                "a method takes at most one stream: send the others' items in one `Streaming<T>` of a #[codable] enum",
            );
        }
        let (attrs, priority) = method_options(&f.attrs, errors);
        Some(Self {
            ident: sig.ident.clone(),
            attrs,
            priority,
            args,
            ok,
            err,
            stream,
            output,
        })
    }
}

/// The method's attributes without its `#[rpc(..)]` options, and the priority they set.
fn method_options(
    attrs: &[syn::Attribute],
    errors: &mut Errors,
) -> (Vec<syn::Attribute>, Option<syn::Ident>) {
    let mut priority = None;
    let mut kept = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("rpc") {
            kept.push(attr.clone());
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if !meta.path.is_ident("priority") {
                return Err(meta.error("unknown method option; expected `priority = high`, `normal`, `low` or `background`"));
            }
            let level: syn::Ident = meta.value()?.parse()?;
            let variant = match level.to_string().as_str() {
                "high" => "High",
                "normal" => "Normal",
                "low" => "Low",
                "background" => "Background",
                _ => {
                    return Err(syn::Error::new(
                        level.span(),
                        "unknown priority; expected `high`, `normal`, `low` or `background`",
                    ))
                }
            };
            priority = Some(syn::Ident::new(variant, level.span()));
            Ok(())
        });
        if let Err(error) = parsed {
            errors.push(error);
        }
    }
    (kept, priority)
}

fn check_receiver(sig: &syn::Signature, errors: &mut Errors) {
    match sig.receiver() {
        Some(r) if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(r) => errors.at(
            r,
            "RPC methods take `&self` (handlers are shared by concurrent calls)",
        ),
        None => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("RPC method `{}` must take `&self` first", sig.ident),
        )),
    }
}

fn parse_args(sig: &syn::Signature, errors: &mut Errors) -> Vec<Arg> {
    let typed: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            syn::FnArg::Typed(t) => Some(t),
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    if typed.len() > MAX_ARGS {
        errors.at(
            &sig.inputs,
            format!(
                "RPC methods take at most {MAX_ARGS} arguments; group them in a #[codable] struct"
            ),
        );
    }
    typed
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            if let syn::Type::Reference(r) = &*t.ty {
                errors.at(r, "RPC arguments travel over the network: take an owned type (e.g. String, not &str)");
                return None;
            }
            if let syn::Type::ImplTrait(r) = &*t.ty {
                errors.at(r, "RPC arguments need a concrete #[codable] type, not `impl Trait`");
                return None;
            }
            let ident = match &*t.pat {
                syn::Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
                syn::Pat::Wild(w) => syn::Ident::new(&format!("arg{i}"), w.span()),
                other => {
                    errors.at(other, "RPC arguments must be plain names (`amount: u32`)");
                    return None;
                }
            };
            let stream = streamed_arg(&t.ty, errors);
            Some(Arg {
                ident,
                ty: (*t.ty).clone(),
                stream,
            })
        })
        .collect()
}

/// The type arguments of `ty` if it is `Streaming<…>`; `None` for any other type (and
/// for a `Streaming` without them, reported).
fn streaming_args(ty: &syn::Type, errors: &mut Errors) -> Option<Vec<syn::Type>> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Streaming" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        errors.at(ty, "a stream names its item type: `Streaming<T>`");
        return None;
    };
    let types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    Some(types.collect())
}

/// `Streaming<T>` as an argument → `T`: the client's stream, whose items end without an
/// error of the method's.
fn streamed_arg(ty: &syn::Type, errors: &mut Errors) -> Option<syn::Type> {
    let types = streaming_args(ty, errors)?;
    if types.len() != 1 {
        errors.at(
            ty,
            "a streamed argument is `Streaming<T>`: the client's items carry no error type",
        );
    }
    types.into_iter().next()
}

/// `Streaming<T>` or `Streaming<T, E>` → `T`, checking that a stream's error type is the
/// method's: `HandlerResult<Streaming<T, E>, E>`.
fn streamed_item(
    ok: &syn::Type,
    err: Option<&syn::Type>,
    errors: &mut Errors,
) -> Option<syn::Type> {
    let types = streaming_args(ok, errors)?;
    let tokens = |ty: &syn::Type| ty.to_token_stream().to_string();
    let same = match (types.get(1), err) {
        (None, None) => true,
        (Some(a), Some(b)) => tokens(a) == tokens(b),
        (Some(a), None) => tokens(a) == "HandlerError",
        (None, Some(_)) => false,
    };
    if !same {
        errors.at(
            ok,
            "a stream ends with the method's error: write `HandlerResult<Streaming<T, E>, E>` with the same `E` in both",
        );
    }
    let item = types.into_iter().next();
    if item.is_none() {
        errors.at(ok, "a stream names its item type: `Streaming<T>`");
    }
    item
}

/// `HandlerResult<T>` → (T, None); `HandlerResult<T, E>` or `Result<T, E>` → (T, Some(E)).
fn split_result(ty: &syn::Type) -> Option<(syn::Type, Option<syn::Type>)> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    let ok = types.next()?;
    let err = types.next();
    match (last.ident.to_string().as_str(), &err) {
        ("HandlerResult", _) | ("Result", Some(_)) => Some((ok, err)),
        _ => None,
    }
}
