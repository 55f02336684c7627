//! `#[appipc::interface]`: turns a trait of `async fn`s into an RPC interface of appipc (use it
//! through the `appipc` crate, which re-exports it; the generated code names `::appipc`).
//!
//! ```ignore
//! #[appipc::interface(uuid = "5b0c6f8e-2a41-4c57-9d0e-6a1f3e2b7c90", version = "1.0")]
//! pub trait Thermometer {
//!     async fn read(&self, cx: &CallContext, n: u32) -> CallResult<f64>;
//! }
//! ```
//!
//! generates, beside the trait (made `Send + Sync + 'static`, its methods boxed by
//! `async_trait` so that it is dyn-compatible; implement it with `#[appipc::async_trait]`):
//!
//! * `ThermometerClient`: `connect(session, endpoint, server_sid)` and
//!   `async fn read(&self, n: u32) -> appipc::Result<f64>`;
//! * `ThermometerBlockingClient`: the same, blocking, over `appipc::blocking::Session`;
//! * `impl appipc::rpc::Interface for dyn Thermometer`: the UUID, the version, the methods in
//!   declaration order (a method's procnum is its place) and the dispatcher.
//!
//! Each method takes `&self`, then `&CallContext` (the caller, for the method's own checks),
//! then owned serde arguments, and returns `CallResult<T>` (`Result<T, Fault>`).
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Error, Expr, FnArg, GenericArgument, Ident, ItemTrait, Lit, MetaNameValue, Pat, PathArguments,
    ReturnType, Token, TraitItem, Type, parse_macro_input, parse_quote,
};

/// Marks a trait as an RPC interface; see the crate documentation.
#[proc_macro_attribute]
pub fn interface(attr: TokenStream, item: TokenStream) -> TokenStream {
    let trait_item = parse_macro_input!(item as ItemTrait);
    match expand(attr.into(), trait_item) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

struct Method {
    name: Ident,
    docs: Vec<syn::Attribute>,
    args: Vec<(Ident, Type)>,
    output: Type,
}

fn string_of(v: &MetaNameValue) -> syn::Result<String> {
    match &v.value {
        Expr::Lit(l) => match &l.lit {
            Lit::Str(s) => Ok(s.value()),
            other => Err(Error::new(other.span(), "expected a string")),
        },
        other => Err(Error::new(other.span(), "expected a string")),
    }
}

fn uuid(text: &str, span: Span) -> syn::Result<String> {
    let ok = text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if !ok {
        return Err(Error::new(
            span,
            "uuid: 8-4-4-4-12 hexadecimal digits, e.g. \"5b0c6f8e-2a41-4c57-9d0e-6a1f3e2b7c90\"",
        ));
    }
    Ok(text.to_ascii_lowercase())
}

fn version(text: &str, span: Span) -> syn::Result<(u16, u16)> {
    let bad = || Error::new(span, "version: \"MAJOR.MINOR\", each 0 to 65535, e.g. \"1.0\"");
    let (major, minor) = text.split_once('.').ok_or_else(bad)?;
    Ok((major.parse().map_err(|_| bad())?, minor.parse().map_err(|_| bad())?))
}

/// `T` of `CallResult<T>` or `Result<T, _>`.
fn result_type(ret: &ReturnType) -> syn::Result<Type> {
    let err = |span| Error::new(span, "an RPC method returns `CallResult<T>` (`Result<T, Fault>`)");
    let ReturnType::Type(_, ty) = ret else { return Err(err(ret.span())) };
    let Type::Path(p) = &**ty else { return Err(err(ty.span())) };
    let last = p.path.segments.last().ok_or_else(|| err(ty.span()))?;
    if last.ident != "CallResult" && last.ident != "Result" {
        return Err(err(ty.span()));
    }
    let PathArguments::AngleBracketed(a) = &last.arguments else { return Err(err(ty.span())) };
    match a.args.first() {
        Some(GenericArgument::Type(t)) => Ok(t.clone()),
        _ => Err(err(ty.span())),
    }
}

fn is_call_context(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    if r.mutability.is_some() {
        return false;
    }
    let Type::Path(p) = &*r.elem else { return false };
    p.path.segments.last().is_some_and(|s| s.ident == "CallContext")
}

fn method(f: &syn::TraitItemFn) -> syn::Result<Method> {
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        return Err(Error::new(
            sig.fn_token.span(),
            "the methods of an RPC interface are `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(Error::new(sig.generics.span(), "an RPC method has no generic parameters"));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        other => {
            let span = other.map_or(sig.span(), Spanned::span);
            return Err(Error::new(span, "an RPC method takes `&self` first"));
        }
    }
    match inputs.next() {
        Some(FnArg::Typed(t)) if is_call_context(&t.ty) => {}
        other => {
            let span = other.map_or(sig.span(), Spanned::span);
            return Err(Error::new(span, "an RPC method takes `cx: &CallContext` after `&self`"));
        }
    }
    let mut args = Vec::new();
    for (i, input) in inputs.enumerate() {
        let FnArg::Typed(t) = input else { unreachable!("a receiver comes first only") };
        if let Type::Reference(_) = &*t.ty {
            return Err(Error::new(
                t.ty.span(),
                "the arguments of an RPC method are owned values (`String`, not `&str`)",
            ));
        }
        let name = match &*t.pat {
            Pat::Ident(p) => p.ident.clone(),
            _ => format_ident!("__arg{i}"),
        };
        args.push((name, (*t.ty).clone()));
    }
    let docs = f.attrs.iter().filter(|a| a.path().is_ident("doc")).cloned().collect();
    Ok(Method { name: sig.ident.clone(), docs, args, output: result_type(&sig.output)? })
}

fn expand(attr: Tokens, mut item: ItemTrait) -> syn::Result<Tokens> {
    let pairs = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(attr)?;
    let (mut uuid_text, mut version_v) = (None, None);
    for p in &pairs {
        if p.path.is_ident("uuid") {
            uuid_text = Some(uuid(&string_of(p)?, p.value.span())?);
        } else if p.path.is_ident("version") {
            version_v = Some(version(&string_of(p)?, p.value.span())?);
        } else {
            return Err(Error::new(
                p.path.span(),
                "expected `uuid = \"…\"` or `version = \"M.m\"`",
            ));
        }
    }
    let uuid_text = uuid_text.ok_or_else(|| {
        Error::new(Span::call_site(), "#[appipc::interface] needs `uuid = \"…\"`")
    })?;
    let (major, minor) = version_v.unwrap_or((1, 0));
    if !item.generics.params.is_empty() {
        return Err(Error::new(item.generics.span(), "an RPC interface has no generic parameters"));
    }
    let mut methods = Vec::new();
    for i in &item.items {
        match i {
            TraitItem::Fn(f) => methods.push(method(f)?),
            other => {
                return Err(Error::new(other.span(), "an RPC interface has methods only"));
            }
        }
    }
    if methods.len() > u32::MAX as usize {
        return Err(Error::new(item.span(), "too many methods"));
    }
    item.supertraits.push(parse_quote!(::core::marker::Send));
    item.supertraits.push(parse_quote!(::core::marker::Sync));
    item.supertraits.push(parse_quote!('static));
    item.attrs.push(parse_quote!(#[::appipc::rpc::__private::async_trait]));

    let vis = &item.vis;
    let name = &item.ident;
    let name_str = name.to_string();
    let client = format_ident!("{}Client", name);
    let blocking = format_ident!("{}BlockingClient", name);
    let method_names: Vec<String> = methods.iter().map(|m| m.name.to_string()).collect();

    let mut async_methods = Vec::new();
    let mut blocking_methods = Vec::new();
    let mut arms = Vec::new();
    for (procnum, m) in methods.iter().enumerate() {
        let procnum = procnum as u32;
        let Method { name: mname, docs, args, output } = m;
        let arg_names: Vec<&Ident> = args.iter().map(|(n, _)| n).collect();
        let arg_types: Vec<&Type> = args.iter().map(|(_, t)| t).collect();
        async_methods.push(quote! {
            #(#docs)*
            #vis async fn #mname(&self, #(#arg_names: #arg_types),*) -> ::appipc::Result<#output> {
                self.proxy.call(#procnum, &(#(#arg_names,)*)).await
            }
        });
        blocking_methods.push(quote! {
            #(#docs)*
            #vis fn #mname(&self, #(#arg_names: #arg_types),*) -> ::appipc::Result<#output> {
                self.proxy.call(#procnum, &(#(#arg_names,)*))
            }
        });
        arms.push(quote! {
            #procnum => {
                let (#(#arg_names,)*): (#(#arg_types,)*) = __args.decode()?;
                let __result = __this.#mname(&__cx, #(#arg_names),*).await;
                __cx.encode_result(__result)
            }
        });
    }
    let client_doc = format!(
        "The async client of RPC interface [`{name_str}`] ({uuid_text} version {major}.{minor})."
    );
    let blocking_doc = format!(
        "The blocking client of RPC interface [`{name_str}`] ({uuid_text} version {major}.{minor}): each call waits on the calling thread."
    );
    Ok(quote! {
        #item

        #[doc = #client_doc]
        #[derive(Debug, Clone)]
        #vis struct #client {
            proxy: ::appipc::rpc::Proxy,
        }

        impl #client {
            /// Connects to the endpoint `endpoint` and binds this interface (see
            /// `appipc::rpc::connect` for `server_sid` and the errors; 1717 when the endpoint
            /// does not serve this interface at this version).
            #vis async fn connect(
                session: &::appipc::Session,
                endpoint: &str,
                server_sid: ::core::option::Option<&str>,
            ) -> ::appipc::Result<Self> {
                ::appipc::rpc::Proxy::connect::<dyn #name>(session, endpoint, server_sid)
                    .await
                    .map(|proxy| Self { proxy })
            }

            /// The connection (its server, its timeout).
            #vis fn proxy(&self) -> &::appipc::rpc::Proxy {
                &self.proxy
            }

            #(#async_methods)*
        }

        #[doc = #blocking_doc]
        #[derive(Debug)]
        #vis struct #blocking {
            proxy: ::appipc::rpc::BlockingProxy,
        }

        impl #blocking {
            /// Connects to the endpoint `endpoint` and binds this interface.
            #vis fn connect(
                session: &::appipc::blocking::Session,
                endpoint: &str,
                server_sid: ::core::option::Option<&str>,
            ) -> ::appipc::Result<Self> {
                ::appipc::rpc::BlockingProxy::connect::<dyn #name>(session, endpoint, server_sid)
                    .map(|proxy| Self { proxy })
            }

            /// The connection (its server, its timeout).
            #vis fn proxy(&self) -> &::appipc::rpc::BlockingProxy {
                &self.proxy
            }

            #(#blocking_methods)*
        }

        impl ::appipc::rpc::Interface for dyn #name {
            const NAME: &'static str = #name_str;
            const UUID: &'static str = #uuid_text;
            const VERSION: (u16, u16) = (#major, #minor);
            const METHODS: &'static [&'static str] = &[#(#method_names),*];
            type Client = #client;
            type BlockingClient = #blocking;

            fn client(proxy: ::appipc::rpc::Proxy) -> #client {
                #client { proxy }
            }

            fn blocking_client(proxy: ::appipc::rpc::BlockingProxy) -> #blocking {
                #blocking { proxy }
            }

            fn dispatch(
                __this: ::std::sync::Arc<Self>,
                __cx: ::appipc::rpc::CallContext,
                __procnum: u32,
                __args: ::appipc::rpc::Args,
            ) -> ::appipc::rpc::BoxFuture<
                'static,
                ::appipc::rpc::CallResult<::appipc::rpc::Encoded>,
            > {
                ::std::boxed::Box::pin(async move {
                    match __procnum {
                        #(#arms)*
                        _ => ::core::result::Result::Err(::appipc::rpc::Fault::new(
                            ::appipc::rpc::RPC_S_PROCNUM_OUT_OF_RANGE,
                            "no such method",
                        )),
                    }
                })
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(attr: Tokens, item: ItemTrait) -> String {
        match expand(attr, item) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    const UUID: &str = "5b0c6f8e-2a41-4c57-9d0e-6a1f3e2b7c90";

    #[test]
    fn a_well_formed_interface_expands_with_its_procnums_and_version() {
        let out = expand(
            quote!(uuid = "5B0C6F8E-2A41-4C57-9D0E-6A1F3E2B7C90", version = "2.7"),
            parse_quote! {
                pub trait T {
                    async fn a(&self, cx: &CallContext, x: u32) -> CallResult<u32>;
                    async fn b(&self, cx: &appipc::rpc::CallContext) -> Result<(), Fault>;
                }
            },
        )
        .unwrap()
        .to_string();
        assert!(
            out.contains("const UUID : & 'static str = \"5b0c6f8e-2a41-4c57-9d0e-6a1f3e2b7c90\""),
            "{out}"
        );
        assert!(out.contains("const VERSION : (u16 , u16) = (2u16 , 7u16)"), "{out}");
        assert!(out.contains("& [\"a\" , \"b\"]"), "{out}");
        assert!(out.contains("pub struct TClient") && out.contains("pub struct TBlockingClient"));
    }

    #[test]
    fn what_the_macro_refuses_it_says() {
        let attr = || quote!(uuid = "5b0c6f8e-2a41-4c57-9d0e-6a1f3e2b7c90");
        let cases: Vec<(Tokens, ItemTrait, &str)> = vec![
            (
                quote!(),
                parse_quote!(
                    trait T {}
                ),
                "needs `uuid",
            ),
            (
                quote!(uuid = "nope"),
                parse_quote!(
                    trait T {}
                ),
                "8-4-4-4-12",
            ),
            (
                quote!(uuid = #UUID, version = "1"),
                parse_quote!(
                    trait T {}
                ),
                "MAJOR.MINOR",
            ),
            (
                quote!(uuid = #UUID, colour = "red"),
                parse_quote!(
                    trait T {}
                ),
                "expected `uuid",
            ),
            (
                attr(),
                parse_quote!(
                    trait T {
                        fn f(&self, cx: &CallContext) -> CallResult<()>;
                    }
                ),
                "async fn",
            ),
            (
                attr(),
                parse_quote!(
                    trait T {
                        async fn f(cx: &CallContext) -> CallResult<()>;
                    }
                ),
                "`&self` first",
            ),
            (
                attr(),
                parse_quote!(
                    trait T {
                        async fn f(&mut self, cx: &CallContext) -> CallResult<()>;
                    }
                ),
                "`&self` first",
            ),
            (
                attr(),
                parse_quote!(
                    trait T {
                        async fn f(&self, x: u32) -> CallResult<()>;
                    }
                ),
                "&CallContext",
            ),
            (
                attr(),
                parse_quote!(
                    trait T {
                        async fn f(&self, cx: &CallContext, s: &str) -> CallResult<()>;
                    }
                ),
                "owned values",
            ),
            (
                attr(),
                parse_quote!(
                    trait T {
                        async fn f(&self, cx: &CallContext) -> u32;
                    }
                ),
                "CallResult<T>",
            ),
            (
                attr(),
                parse_quote!(
                    trait T {
                        async fn f(&self, cx: &CallContext);
                    }
                ),
                "CallResult<T>",
            ),
            (
                attr(),
                parse_quote!(
                    trait T {
                        async fn f<X>(&self, cx: &CallContext) -> CallResult<()>;
                    }
                ),
                "generic",
            ),
            (
                attr(),
                parse_quote!(
                    trait T<X> {}
                ),
                "generic",
            ),
            (
                attr(),
                parse_quote!(
                    trait T {
                        const N: u32;
                    }
                ),
                "methods only",
            ),
        ];
        for (attr, item, want) in cases {
            let got = refused(attr, item);
            assert!(got.contains(want), "{got:?} does not say {want:?}");
        }
    }
}
