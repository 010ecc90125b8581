//! `#[task]`: a registered operation plus a lazy calling function.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{
    Error, Expr, ExprLit, FnArg, GenericArgument, ItemFn, Lit, Meta, Pat, Path, PathArguments,
    ReturnType, Token, Type,
};

struct Options {
    krate: Path,
    name: Option<String>,
    pure: bool,
}

fn parse_options(attr: TokenStream) -> syn::Result<Options> {
    let mut opts = Options {
        krate: syn::parse_quote!(::oxidask),
        name: None,
        pure: true,
    };
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        let Meta::NameValue(nv) = &meta else {
            return Err(Error::new_spanned(meta, "expected `key = value`"));
        };
        let key = nv
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match (key.as_str(), &nv.value) {
            ("crate", Expr::Path(p)) => opts.krate = p.path.clone(),
            (
                "crate",
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }),
            ) => opts.krate = s.parse()?,
            (
                "name",
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }),
            ) => opts.name = Some(s.value()),
            (
                "pure",
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                }),
            ) => opts.pure = b.value,
            _ => {
                return Err(Error::new_spanned(
                    meta,
                    "unknown option; expected `crate = path`, `name = \"...\"` or `pure = bool`",
                ))
            }
        }
    }
    Ok(opts)
}

/// How a parameter is received.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    /// `x: T`: taken by value.
    Owned,
    /// `x: &T`: borrowed.
    Ref,
    /// `x: &str`: borrowed from a `String`.
    Str,
    /// `x: &[T]`: borrowed from a `Vec<T>`.
    Slice,
    /// `x: &[&T]`: each item of a list borrowed where it is, nothing copied.
    RefList,
}

struct Param {
    ident: syn::Ident,
    /// The type as written.
    ty: Type,
    /// The `Data` type the argument travels as: `T` for `T` and `&T`, `String` for `&str`,
    /// `Vec<T>` for `&[T]`.
    data_ty: Type,
    pass: Pass,
}

/// `Result<T, E>` → `Some(T)`.
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(tp) = ty else { return None };
    let last = tp.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

/// `Vec<T>` → `T` (RefList parameters travel as `Vec<T>`).
fn vec_element(ty: &Type) -> Type {
    if let Type::Path(tp) = ty {
        if let Some(PathArguments::AngleBracketed(a)) =
            tp.path.segments.last().map(|s| &s.arguments)
        {
            if let Some(GenericArgument::Type(t)) = a.args.first() {
                return t.clone();
            }
        }
    }
    ty.clone()
}

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let opts = parse_options(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if sig.asyncness.is_some() {
        return Err(Error::new_spanned(
            sig.asyncness,
            "#[task] functions cannot be async; a task runs on a worker thread",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &sig.generics,
            "#[task] functions cannot be generic: an operation is registered by name, so write one function per type",
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(Error::new_spanned(
            v,
            "#[task] functions cannot be variadic",
        ));
    }

    let mut params = Vec::new();
    for input in &sig.inputs {
        let FnArg::Typed(pt) = input else {
            return Err(Error::new_spanned(
                input,
                "#[task] functions cannot take `self`",
            ));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(Error::new_spanned(
                &pt.pat,
                "#[task] parameters must be plain names (`x: T`)",
            ));
        };
        let (data_ty, pass) = match &*pt.ty {
            Type::Reference(r) => {
                if r.mutability.is_some() {
                    return Err(Error::new_spanned(
                        r,
                        "#[task] parameters cannot be `&mut`: task inputs are shared",
                    ));
                }
                match &*r.elem {
                    Type::Path(tp) if tp.path.is_ident("str") => {
                        (syn::parse_quote!(::std::string::String), Pass::Str)
                    }
                    Type::Slice(sl) => match &*sl.elem {
                        Type::Reference(inner) if inner.mutability.is_none() => {
                            let elem = &inner.elem;
                            (syn::parse_quote!(::std::vec::Vec<#elem>), Pass::RefList)
                        }
                        elem => (syn::parse_quote!(::std::vec::Vec<#elem>), Pass::Slice),
                    },
                    elem => (elem.clone(), Pass::Ref),
                }
            }
            other => (other.clone(), Pass::Owned),
        };
        params.push(Param {
            ident: pi.ident.clone(),
            ty: (*pt.ty).clone(),
            data_ty,
            pass,
        });
    }

    let (ret_ty, ok_ty, fallible) = match &sig.output {
        ReturnType::Default => (quote!(()), quote!(()), false),
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(ok) => (quote!(#ty), quote!(#ok), true),
            None => (quote!(#ty), quote!(#ty), false),
        },
    };

    let krate = &opts.krate;
    let p = quote!(#krate::__private);
    let vis = &func.vis;
    let name = &sig.ident;
    let name_str = name.to_string();
    let attrs = &func.attrs;
    let block = &func.block;
    let n = params.len();

    let stable_name = match &opts.name {
        Some(s) => quote!(#s),
        None => quote!(concat!(module_path!(), "::", #name_str)),
    };
    let param_tys: Vec<&Type> = params.iter().map(|p| &p.ty).collect();
    let signature = quote!(#(#param_tys),*).to_string() + " -> " + &ret_ty.to_string();
    let param_names: Vec<String> = params.iter().map(|p| p.ident.to_string()).collect();
    let pure = opts.pure;

    let orig_inputs = &sig.inputs;
    let lazy_params = params.iter().map(|prm| {
        let id = &prm.ident;
        let dt = &prm.data_ty;
        quote!(#id: impl #p::IntoArg<#dt>)
    });
    let lazy_args = params.iter().map(|prm| {
        let id = &prm.ident;
        let dt = &prm.data_ty;
        quote!(#p::IntoArg::<#dt>::into_arg(#id))
    });

    let prepares = params
        .iter()
        .enumerate()
        // `&[&T]` borrows list items where they are; preparing would copy them into a Vec.
        .filter(|(_, p)| !matches!(p.pass, Pass::Owned | Pass::RefList))
        .map(|(i, prm)| {
            let dt = &prm.data_ty;
            let s = prm.ident.to_string();
            quote!(args.prepare::<#dt>(#i, #s)?;)
        });
    let takes = params
        .iter()
        .enumerate()
        .filter(|(_, p)| p.pass == Pass::Owned)
        .map(|(i, prm)| {
            let dt = &prm.data_ty;
            let s = prm.ident.to_string();
            let v = format_ident!("__arg{}", i);
            quote!(let #v: #dt = args.take::<#dt>(#i, #s)?;)
        });
    let gets = params
        .iter()
        .enumerate()
        .filter(|(_, p)| p.pass != Pass::Owned)
        .map(|(i, prm)| {
            let dt = &prm.data_ty;
            let s = prm.ident.to_string();
            let v = format_ident!("__arg{}", i);
            match prm.pass {
                Pass::Str => quote!(let #v: &str = args.get::<#dt>(#i, #s)?.as_str();),
                Pass::Slice => quote!(let #v = args.get::<#dt>(#i, #s)?.as_slice();),
                Pass::RefList => {
                    let holder = format_ident!("__refs{}", i);
                    let elem = vec_element(dt);
                    quote!(let #holder = args.get_refs::<#elem>(#i, #s)?; let #v = #holder.as_slice();)
                }
                _ => quote!(let #v: &#dt = args.get::<#dt>(#i, #s)?;),
            }
        });
    let call_args = (0..n).map(|i| format_ident!("__arg{}", i));
    let finish = if fallible {
        quote!(let __out = __out.map_err(#p::TaskFailure::from_error)?;)
    } else {
        quote!()
    };

    // Decoders for what travels: each parameter's type (and list items' type) and the result.
    let mut codec_types: Vec<Type> = Vec::new();
    for prm in &params {
        codec_types.push(prm.data_ty.clone());
        let is_vec = matches!(&prm.data_ty, Type::Path(tp) if tp.path.segments.last().is_some_and(|s| s.ident == "Vec"));
        if is_vec {
            codec_types.push(vec_element(&prm.data_ty));
        }
    }
    codec_types.push(syn::parse2(ok_ty.clone())?);
    let doc_call = format!("Runs `{name_str}` now, on this thread.");
    let doc_op = format!("The registered operation behind `{name_str}`.");
    let doc_struct = format!(
        "Companion of the lazy function `{name_str}`: `{name_str}::call(..)` runs it now, `{name_str}::op()` is its registered operation."
    );

    Ok(quote! {
        #(#attrs)*
        ///
        /// *Lazy:* returns a `Delayed` handle; arguments may be values or delayed results.
        #[allow(clippy::too_many_arguments)]
        #vis fn #name(#(#lazy_params),*) -> #p::Delayed<#ok_ty> {
            #p::Delayed::from_call(#name::op(), [#(#lazy_args),*])
        }

        #[doc = #doc_struct]
        #[allow(non_camel_case_types)]
        #vis struct #name {}

        impl #name {
            #[doc = #doc_call]
            #[allow(clippy::too_many_arguments)]
            #vis fn call(#orig_inputs) -> #ret_ty #block

            #[doc = #doc_op]
            #vis fn op() -> &'static #p::OpDef {
                fn __oxidask_call(args: &mut #p::Args) -> ::core::result::Result<#p::Value, #p::TaskFailure> {
                    args.expect_len(#n)?;
                    #(#prepares)*
                    #(#takes)*
                    #(#gets)*
                    let __out = #name::call(#(#call_args),*);
                    #finish
                    ::core::result::Result::Ok(#p::Value::new::<#ok_ty>(__out))
                }
                static OP: #p::OpDef = #p::OpDef::new(
                    #stable_name,
                    #name_str,
                    #signature,
                    &[#(#param_names),*],
                    #pure,
                    __oxidask_call,
                );
                #p::inventory::submit! { #p::OpRegistration(&OP) }
                #(#p::inventory::submit! { #p::TypeCodec::of::<#codec_types>() })*
                &OP
            }
        }
    })
}
