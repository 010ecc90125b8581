//! `#[derive(Data)]`: fields in declaration order; enums as a varint tag then fields.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{parse_quote, Data as SynData, DeriveInput, Error, Fields, Path};

fn crate_path(input: &DeriveInput) -> syn::Result<Path> {
    let mut krate: Path = parse_quote!(::oxidask);
    for attr in &input.attrs {
        if !attr.path().is_ident("data") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let value = meta.value()?;
                if let Ok(s) = value.parse::<syn::LitStr>() {
                    krate = s.parse()?;
                } else {
                    krate = value.parse()?;
                }
                Ok(())
            } else {
                Err(meta.error("unknown option; expected `crate = path`"))
            }
        })?;
    }
    Ok(krate)
}

/// Bindings for a variant's or struct's fields: `(pattern, [binding idents])`.
fn bindings(fields: &Fields) -> (TokenStream, Vec<syn::Ident>) {
    match fields {
        Fields::Named(named) => {
            let ids: Vec<syn::Ident> = named
                .named
                .iter()
                .map(|f| f.ident.clone().expect("named"))
                .collect();
            (quote!({ #(#ids),* }), ids)
        }
        Fields::Unnamed(unnamed) => {
            let ids: Vec<syn::Ident> = (0..unnamed.unnamed.len())
                .map(|i| format_ident!("__f{}", i))
                .collect();
            (quote!(( #(#ids),* )), ids)
        }
        Fields::Unit => (quote!(), Vec::new()),
    }
}

/// An expression constructing `path` from decoded fields.
fn construct(path: TokenStream, fields: &Fields, p: &TokenStream) -> TokenStream {
    match fields {
        Fields::Named(named) => {
            let inits = named.named.iter().map(|f| {
                let id = f.ident.as_ref().expect("named");
                let ty = &f.ty;
                quote!(#id: <#ty as #p::Data>::decode(r)?)
            });
            quote!(#path { #(#inits),* })
        }
        Fields::Unnamed(unnamed) => {
            let inits = unnamed.unnamed.iter().map(|f| {
                let ty = &f.ty;
                quote!(<#ty as #p::Data>::decode(r)?)
            });
            quote!(#path ( #(#inits),* ))
        }
        Fields::Unit => path,
    }
}

pub fn expand(item: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let krate = crate_path(&input)?;
    let p = quote!(#krate::__private);
    let name = &input.ident;

    let mut generics = input.generics.clone();
    for tp in generics.type_params_mut() {
        tp.bounds.push(parse_quote!(#p::Data));
    }
    let (impl_g, ty_g, where_c) = generics.split_for_impl();

    let (heap, encode, decode) = match &input.data {
        SynData::Struct(s) => {
            let (pat, ids) = bindings(&s.fields);
            let built = construct(quote!(Self), &s.fields, &p);
            (
                quote! { let Self #pat = self; 0 #(+ #p::Data::heap_bytes(#ids))* },
                quote! { let Self #pat = self; #(#p::Data::encode(#ids, w);)* },
                quote! { ::core::result::Result::Ok(#built) },
            )
        }
        SynData::Enum(e) => {
            if e.variants.is_empty() {
                return Err(Error::new_spanned(
                    name,
                    "Data cannot be derived for an enum with no variants",
                ));
            }
            let mut heap_arms = Vec::new();
            let mut enc_arms = Vec::new();
            let mut dec_arms = Vec::new();
            for (i, v) in e.variants.iter().enumerate() {
                let vid = &v.ident;
                let tag = i as u64;
                let (pat, ids) = bindings(&v.fields);
                heap_arms.push(quote! { Self::#vid #pat => 0 #(+ #p::Data::heap_bytes(#ids))* });
                enc_arms.push(quote! { Self::#vid #pat => { w.put_varint(#tag); #(#p::Data::encode(#ids, w);)* } });
                let built = construct(quote!(Self::#vid), &v.fields, &p);
                dec_arms.push(quote! { #tag => ::core::result::Result::Ok(#built) });
            }
            let name_str = name.to_string();
            (
                quote! { match self { #(#heap_arms,)* } },
                quote! { match self { #(#enc_arms)* } },
                quote! {
                    match r.get_varint("enum tag")? {
                        #(#dec_arms,)*
                        t => ::core::result::Result::Err(#p::CodecError::Invalid {
                            what: "enum tag",
                            detail: ::std::format!("{} has no variant number {}", #name_str, t),
                        }),
                    }
                },
            )
        }
        SynData::Union(u) => {
            return Err(Error::new_spanned(
                u.union_token,
                "Data cannot be derived for unions",
            ));
        }
    };

    // Non-generic types are registered for decoding by name in other processes.
    let register = if input.generics.params.is_empty() {
        quote! { #p::inventory::submit! { #p::TypeCodec::of::<#name>() } }
    } else {
        quote! {}
    };
    Ok(quote! {
        #register
        impl #impl_g #p::Data for #name #ty_g #where_c {
            #[allow(unused_variables)]
            fn heap_bytes(&self) -> usize { #heap }
            #[allow(unused_variables)]
            fn encode(&self, w: &mut #p::Writer<'_>) { #encode }
            #[allow(unused_variables)]
            fn decode(r: &mut #p::Reader<'_>) -> ::core::result::Result<Self, #p::CodecError> { #decode }
        }
    })
}
