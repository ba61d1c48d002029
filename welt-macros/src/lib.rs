//! `#[welt_decoder]`: generates a welt decoder's tables at compile time.
//!
//! This crate is a shim: it parses the attribute and forwards to `kernels-gen`, where all
//! the logic lives and is tested without a compiler in the loop. Use it through
//! `welt_runtime::welt_decoder`, which re-exports it; the generated code names
//! `::welt_runtime`.
//!
//! ```ignore
//! #[welt_runtime::welt_decoder]                      // WeLT's UTF-8 byte decoder
//! pub struct MyWords;
//!
//! #[welt_runtime::welt_decoder(max_word_len = 24)]   // same, with another default limit
//! pub struct LongWords;
//! ```
//!
//! Every problem is a compile error pointing at the offending argument, all of them at once.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Data, DeriveInput, Expr, ExprLit, Fields, Lit, Meta, Token};

/// Implements `welt_runtime::Decoder` for a unit struct with generated `const` tables.
///
/// Arguments (all optional):
/// - `max_word_len = N`: the default word length limit in tokens (1..=65535; WeLT uses 16);
/// - `tokenizer = "path/to/tokenizer.json"`: a custom tokenizer (not supported yet: a compile
///   error says so);
/// - `eos = "TOKEN"`: the EOS token of a custom tokenizer.
#[proc_macro_attribute]
pub fn welt_decoder(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into())
        .unwrap_or_else(|errors| errors.to_compile_error())
        .into()
}

fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> Result<proc_macro2::TokenStream, syn::Error> {
    let mut errors: Vec<syn::Error> = Vec::new();
    let mut spec = kernels_gen::DecoderSpec::utf8_bytes();

    let args = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut seen: Vec<String> = Vec::new();
    for meta in &args {
        let Meta::NameValue(nv) = meta else {
            errors.push(syn::Error::new_spanned(
                meta,
                "expected `name = value`, e.g. `max_word_len = 16`",
            ));
            continue;
        };
        let key = nv.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
        if seen.contains(&key) {
            errors.push(syn::Error::new_spanned(
                &nv.path,
                format!("`{key}` is given twice"),
            ));
            continue;
        }
        seen.push(key.clone());
        match key.as_str() {
            "max_word_len" => match lit(&nv.value) {
                Some(Lit::Int(i)) => match i.base10_parse::<u16>() {
                    Ok(n) if n >= 1 => spec.max_word_len = n,
                    _ => errors.push(syn::Error::new_spanned(
                        i,
                        "`max_word_len` must be an integer in 1..=65535",
                    )),
                },
                _ => errors.push(syn::Error::new_spanned(
                    &nv.value,
                    "`max_word_len` must be an integer literal",
                )),
            },
            "tokenizer" => match lit(&nv.value) {
                Some(Lit::Str(s)) => errors.push(syn::Error::new_spanned(
                    s,
                    format!(
                        "custom tokenizers are not supported yet (\"{}\"): only WeLT's UTF-8 byte \
                         tokenizer is built in; remove `tokenizer = ...` to use it",
                        s.value()
                    ),
                )),
                _ => errors.push(syn::Error::new_spanned(
                    &nv.value,
                    "`tokenizer` must be a string literal path",
                )),
            },
            "eos" => errors.push(syn::Error::new_spanned(
                &nv.value,
                "`eos` names a custom tokenizer's EOS token; the built-in byte tokenizer's EOS is 0x03",
            )),
            _ => errors.push(syn::Error::new_spanned(
                &nv.path,
                "unknown argument; expected `max_word_len`, `tokenizer` or `eos`",
            )),
        }
    }

    let item: DeriveInput = match syn::parse2(item) {
        Ok(i) => i,
        Err(e) => {
            errors.push(syn::Error::new(
                e.span(),
                "#[welt_decoder] goes on a unit struct, e.g. `pub struct MyWords;`",
            ));
            return Err(combine(errors));
        }
    };
    match &item.data {
        Data::Struct(s) if matches!(s.fields, Fields::Unit) => {}
        Data::Struct(s) => errors.push(syn::Error::new_spanned(
            &s.fields,
            "#[welt_decoder] goes on a unit struct (no fields)",
        )),
        _ => errors.push(syn::Error::new_spanned(
            &item.ident,
            "#[welt_decoder] goes on a unit struct, not an enum or union",
        )),
    }
    if !item.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &item.generics,
            "#[welt_decoder] does not take generic parameters",
        ));
    }
    if !errors.is_empty() {
        return Err(combine(errors));
    }

    let tables =
        kernels_gen::generate(&spec).map_err(|e| syn::Error::new(Span::call_site(), e.to_string()))?;
    let ident = &item.ident;
    let imp = kernels_gen::emit::rust::decoder_impl(&tables, &quote!(#ident));
    Ok(quote! { #item #imp })
}

fn lit(e: &Expr) -> Option<&Lit> {
    match e {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

fn combine(errors: Vec<syn::Error>) -> syn::Error {
    let mut it = errors.into_iter();
    let mut first = it.next().expect("at least one error");
    for e in it {
        first.combine(e);
    }
    first
}
