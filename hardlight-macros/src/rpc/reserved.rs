//! Method names an `#[rpc]` trait cannot use: the generated `<Trait>Client` derefs to
//! `hardlight::Client`, so an RPC method named like one of its methods would shadow it (or
//! be shadowed), and the handler struct implements `RpcHandler`.
//!
//! The tests below keep this list from drifting: they read every public method of
//! `Client` from the client crate's source and of the generated client from this crate's
//! own output, and check that the compile-fail case names every entry.

/// Names an RPC method cannot have (besides any name starting with `__`).
pub(super) const RESERVED: &[&str] = &[
    // `hardlight::Client`
    "connect",
    "disconnect",
    "durable",
    "is_connected",
    "new",
    "new_self_signed",
    "stats",
    "state",
    "status",
    "subscribe",
    "transport",
    "watch_state",
    "watch_status",
    "with_call_timeout",
    "with_config",
    "with_context",
    "with_priority",
    // the generated client's trait impls
    "clone",
    "clone_from",
    "deref",
    "fmt",
    // `RpcHandler`, implemented by the handler struct
    "dispatch",
];

/// Whether an RPC method may not be called `name`.
pub(super) fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name) || name.starts_with("__")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::{fs, path::Path};

    use super::{is_reserved, RESERVED};

    fn workspace() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
    }

    /// Public methods of inherent impls of `ty` in `items`, recursing into macro calls
    /// whose tokens are items (the generated client sits inside `cfg_client! { … }`).
    fn public_methods(items: &[syn::Item], ty: &str, out: &mut Vec<String>) {
        for item in items {
            match item {
                syn::Item::Impl(block) if block.trait_.is_none() => {
                    let syn::Type::Path(path) = &*block.self_ty else {
                        continue;
                    };
                    if path.path.segments.last().is_some_and(|s| s.ident == ty) {
                        for item in &block.items {
                            if let syn::ImplItem::Fn(f) = item {
                                if matches!(f.vis, syn::Visibility::Public(_)) {
                                    out.push(f.sig.ident.to_string());
                                }
                            }
                        }
                    }
                }
                syn::Item::Macro(call) => {
                    if let Ok(file) = syn::parse2::<syn::File>(call.mac.tokens.clone()) {
                        public_methods(&file.items, ty, out);
                    }
                }
                _ => {}
            }
        }
    }

    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_public_method_of_client_is_reserved() {
        let mut files = Vec::new();
        rust_files(&workspace().join("hardlight-client/src"), &mut files);
        let mut methods = Vec::new();
        for file in files {
            let source = fs::read_to_string(&file).unwrap();
            let parsed = syn::parse_file(&source).unwrap();
            public_methods(&parsed.items, "Client", &mut methods);
        }
        assert!(methods.iter().any(|m| m == "connect"), "found {methods:?}");
        for method in methods {
            assert!(
                is_reserved(&method),
                "`Client::{method}` is not in RESERVED: an RPC method of that name would shadow it"
            );
        }
    }

    #[test]
    fn every_method_of_the_generated_client_is_reserved() {
        let item: syn::ItemTrait = syn::parse_quote! {
            pub trait Api {
                async fn ping(&self) -> HandlerResult<()>;
            }
        };
        let service = super::super::model::Service::parse(&item).unwrap();
        let generated = super::super::client::generate(&item, &service);
        let file: syn::File = syn::parse2(generated).unwrap();
        let mut methods = Vec::new();
        public_methods(&file.items, "ApiClient", &mut methods);
        assert!(
            methods.iter().any(|m| m == "with_config"),
            "found {methods:?}"
        );
        for method in methods.iter().filter(|m| *m != "ping") {
            assert!(
                is_reserved(method),
                "`ApiClient::{method}` is not in RESERVED"
            );
        }
    }

    #[test]
    fn the_compile_fail_case_names_every_reserved_name() {
        let case = fs::read_to_string(workspace().join("tests/ui/rpc_reserved_name.rs")).unwrap();
        for name in RESERVED {
            assert!(
                case.contains(&format!("async fn {name}(")),
                "tests/ui/rpc_reserved_name.rs has no method `{name}`"
            );
        }
    }
}
