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
//!
//! // A custom tokenizer (feature `tokenizers` of welt-runtime); the path is relative to the
//! // crate's Cargo.toml, and an edit of the file rebuilds the crate.
//! #[welt_runtime::welt_decoder(tokenizer = "tokenizers/llama.json", eos = "</s>")]
//! pub struct LlamaWords;
//! ```
//!
//! Every problem is a compile error pointing at the offending argument, all of them at once.

use std::path::PathBuf;

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Data, DeriveInput, Expr, ExprLit, Fields, Lit, LitStr, Meta, Token};

/// Implements `welt_runtime::Decoder` for a unit struct with generated `const` tables.
///
/// Arguments (all optional):
/// - `tokenizer = "path/to/tokenizer.json"`: a Hugging Face tokenizer file, relative to the
///   using crate's `Cargo.toml` (needs the `tokenizers` feature of welt-runtime); without it,
///   WeLT's UTF-8 byte tokenizer;
/// - `eos = "TOKEN"`: the EOS token's content (default: found in the file by its usual names);
/// - `pad = "TOKEN"`: the PAD token reported for finished rows (default: `<pad>`-like, else EOS);
/// - `stop_token = "TOKEN"`: another token that ends a word (repeat for several);
/// - `max_word_len = N`: the default word length limit in tokens (1..=65535; WeLT uses 16);
/// - `layout = "auto" | "direct" | "classes"`: the entry table layout (default `auto`).
#[proc_macro_attribute]
pub fn welt_decoder(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into())
        .unwrap_or_else(|errors| errors.to_compile_error())
        .into()
}

#[derive(Default)]
struct Args {
    tokenizer: Option<LitStr>,
    eos: Option<LitStr>,
    pad: Option<LitStr>,
    stop_tokens: Vec<LitStr>,
    max_word_len: Option<u16>,
    layout: Option<kernels_gen::Layout>,
}

fn parse_args(attr: proc_macro2::TokenStream, errors: &mut Vec<syn::Error>) -> Args {
    let mut args = Args::default();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr) {
        Ok(m) => m,
        Err(e) => {
            errors.push(e);
            return args;
        }
    };
    let mut seen: Vec<String> = Vec::new();
    for meta in &metas {
        let Meta::NameValue(nv) = meta else {
            errors.push(syn::Error::new_spanned(
                meta,
                "expected `name = value`, e.g. `max_word_len = 16`",
            ));
            continue;
        };
        let key = nv.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
        if key != "stop_token" && seen.contains(&key) {
            errors.push(syn::Error::new_spanned(
                &nv.path,
                format!("`{key}` is given twice"),
            ));
            continue;
        }
        seen.push(key.clone());
        let string = |errors: &mut Vec<syn::Error>| match lit(&nv.value) {
            Some(Lit::Str(s)) => Some(s.clone()),
            _ => {
                errors.push(syn::Error::new_spanned(
                    &nv.value,
                    format!("`{key}` must be a string literal"),
                ));
                None
            }
        };
        match key.as_str() {
            "max_word_len" => match lit(&nv.value) {
                Some(Lit::Int(i)) => match i.base10_parse::<u16>() {
                    Ok(n) if n >= 1 => args.max_word_len = Some(n),
                    _ => errors.push(syn::Error::new_spanned(i, "`max_word_len` must be an integer in 1..=65535")),
                },
                _ => errors.push(syn::Error::new_spanned(&nv.value, "`max_word_len` must be an integer literal")),
            },
            "tokenizer" => args.tokenizer = string(errors),
            "eos" => args.eos = string(errors),
            "pad" => args.pad = string(errors),
            "stop_token" => args.stop_tokens.extend(string(errors)),
            "layout" => {
                if let Some(s) = string(errors) {
                    args.layout = match s.value().as_str() {
                        "auto" => Some(kernels_gen::Layout::Auto),
                        "direct" => Some(kernels_gen::Layout::Direct),
                        "classes" => Some(kernels_gen::Layout::Classes),
                        _ => {
                            errors.push(syn::Error::new_spanned(&s, "`layout` is \"auto\", \"direct\" or \"classes\""));
                            None
                        }
                    }
                }
            }
            _ => errors.push(syn::Error::new_spanned(
                &nv.path,
                "unknown argument; expected `tokenizer`, `eos`, `pad`, `stop_token`, `max_word_len` or `layout`",
            )),
        }
    }
    if args.tokenizer.is_none() {
        for s in args.eos.iter().chain(&args.pad).chain(&args.stop_tokens) {
            errors.push(syn::Error::new_spanned(
                s,
                "this names a token of a custom tokenizer: add `tokenizer = \"...\"` (the built-in byte \
                 tokenizer's EOS is 0x03 and its PAD 0x00)",
            ));
        }
    }
    args
}

fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> Result<proc_macro2::TokenStream, syn::Error> {
    let mut errors: Vec<syn::Error> = Vec::new();
    let args = parse_args(attr, &mut errors);

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

    let mut spec = kernels_gen::DecoderSpec::utf8_bytes();
    let mut track = quote!();
    if let Some(tok) = &args.tokenizer {
        let (vocab, path) = load_tokenizer(tok, &args)?;
        spec.vocab = vocab;
        // Tracks the file: Cargo rebuilds this crate when it changes.
        let p = path.to_string_lossy().into_owned();
        track = quote!(
            const _: &[u8] = include_bytes!(#p);
        );
    }
    if let Some(n) = args.max_word_len {
        spec.max_word_len = n;
    }
    if let Some(l) = args.layout {
        spec.layout = l;
    }
    let tables = kernels_gen::generate(&spec).map_err(|e| {
        let span = args.tokenizer.as_ref().map_or_else(Span::call_site, LitStr::span);
        syn::Error::new(span, e.to_string())
    })?;
    let ident = &item.ident;
    let imp = kernels_gen::emit::rust::decoder_impl(&tables, &quote!(#ident));
    Ok(quote! { #item #imp #track })
}

#[cfg(feature = "tokenizers")]
fn load_tokenizer(tok: &LitStr, args: &Args) -> Result<(kernels_gen::Vocabulary, PathBuf), syn::Error> {
    use kernels_gen::Subject;
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = dir.join(tok.value());
    let opts = kernels_gen::tokenizer::TokenizerOptions {
        eos: args.eos.as_ref().map(LitStr::value),
        pad: args.pad.as_ref().map(LitStr::value),
        stop_tokens: args.stop_tokens.iter().map(LitStr::value).collect(),
    };
    let vocab = kernels_gen::tokenizer::load_file(&path, &opts).map_err(|e| {
        let at: &LitStr = match e.subject() {
            Subject::Eos => args.eos.as_ref().unwrap_or(tok),
            Subject::Pad => args.pad.as_ref().unwrap_or(tok),
            Subject::StopToken(i) => args.stop_tokens.get(i).unwrap_or(tok),
            _ => tok,
        };
        syn::Error::new(at.span(), e.to_string())
    })?;
    Ok((vocab, path))
}

#[cfg(not(feature = "tokenizers"))]
fn load_tokenizer(tok: &LitStr, _: &Args) -> Result<(kernels_gen::Vocabulary, PathBuf), syn::Error> {
    Err(syn::Error::new(
        tok.span(),
        "custom tokenizers need the `tokenizers` feature of welt-runtime: \
         `welt-runtime = { version = \"...\", features = [\"tokenizers\"] }`",
    ))
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
