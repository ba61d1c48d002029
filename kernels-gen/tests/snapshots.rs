//! Snapshots of the emitted code, so that a review shows what a change does to it: the Rust
//! (through prettyplease), the CUDA source, the C header, the DOT graph and the statistics,
//! for the default decoder and a byte-level BPE fixture.
//!
//! Table bytes are summarized (their length and FNV-1a hash), the code around them is
//! verbatim: a table change shows as a changed hash, a code change as its diff.
//!
//! After an intended change, re-accept every snapshot (no cargo-insta needed) and review the
//! diff of `kernels-gen/tests/snapshots/`:
//!
//! ```text
//! INSTA_UPDATE=always cargo test -p kernels-gen --features tokenizers --test all snapshots
//! ```

use kernels_gen::{emit, generate, DecoderSpec, Tables};

/// FNV-1a, 64 bits: a short stand-in for table bytes in a snapshot.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The Rust file with the blob and the CUDA source literals summarized, pretty-printed. The
/// CUDA literal must be exactly `emit::cuda::source` (snapshotted on its own).
fn rust(tables: &Tables) -> String {
    let src = emit::rust::decoder_file(tables, "Decoder", "A decoder.").unwrap();
    let (header, code) = src.split_at(src.find("\n\n").unwrap() + 2);
    let mut file = syn::parse_file(code).unwrap();
    let cuda = emit::cuda::source(tables);
    let mut summarized = 0;
    for item in &mut file.items {
        let syn::Item::Impl(imp) = item else { continue };
        for item in &mut imp.items {
            let syn::ImplItem::Const(c) = item else { continue };
            let lit = match &mut c.expr {
                syn::Expr::Call(call) => match call.args.first_mut() {
                    Some(syn::Expr::Lit(lit)) => &mut lit.lit,
                    _ => continue,
                },
                syn::Expr::Lit(lit) => &mut lit.lit,
                _ => continue,
            };
            let summary = match lit {
                syn::Lit::ByteStr(b) => {
                    let v = b.value();
                    format!("<{} table bytes, fnv1a {:016x}>", v.len(), fnv1a(&v))
                }
                syn::Lit::Str(s) => {
                    assert_eq!(s.value(), cuda, "CUDA_SOURCE is not emit::cuda::source");
                    "<emit::cuda::source>".to_string()
                }
                _ => continue,
            };
            *lit = syn::Lit::Str(syn::LitStr::new(&summary, proc_macro2::Span::call_site()));
            summarized += 1;
        }
    }
    assert_eq!(summarized, 2, "the blob and the CUDA source");
    format!("{header}{}", prettyplease::unparse(&file))
}

/// The CUDA source with each `__constant__` array's values summarized.
fn cuda(tables: &Tables) -> String {
    let src = emit::cuda::source(tables);
    let mut out = String::new();
    let mut lines = src.split_inclusive('\n');
    while let Some(line) = lines.next() {
        out.push_str(line);
        if line.starts_with("__constant__") && line.ends_with("= {\n") {
            let mut values = String::new();
            for line in lines.by_ref() {
                if line == "};\n" {
                    break;
                }
                values.push_str(line);
            }
            let n = values.split(',').filter(|v| !v.trim().is_empty()).count();
            out.push_str(&format!(
                "  /* {n} values, fnv1a {:016x} */\n}};\n",
                fnv1a(values.as_bytes())
            ));
        }
    }
    out
}

/// Everything of the CUDA source before the kernels: the part that depends on the decoder.
#[cfg(feature = "tokenizers")]
fn cuda_decoder_part(tables: &Tables) -> String {
    let src = cuda(tables);
    src[..src.find("/* ---- table access ---- */").unwrap()].to_string()
}

fn default_tables() -> Tables {
    generate(&DecoderSpec::utf8_bytes()).unwrap()
}

#[test]
fn default_decoder_rust() {
    insta::assert_snapshot!("utf8_rust", rust(&default_tables()));
}

#[test]
fn default_decoder_cuda() {
    insta::assert_snapshot!("utf8_cuda", cuda(&default_tables()));
}

#[test]
fn default_decoder_header() {
    insta::assert_snapshot!("utf8_header", emit::cuda::header(&default_tables()));
}

#[test]
fn default_decoder_dot() {
    insta::assert_snapshot!("utf8_dot", emit::dot::emit(&default_tables()));
}

#[test]
fn default_decoder_stats() {
    insta::assert_snapshot!("utf8_stats", emit::stats::emit(&default_tables()));
}

#[cfg(feature = "tokenizers")]
mod bpe_bytelevel {
    use super::*;

    fn tables() -> Tables {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/bpe_bytelevel.json");
        let vocab = kernels_gen::tokenizer::load_file(&path, &Default::default()).unwrap();
        generate(&DecoderSpec::new(vocab)).unwrap()
    }

    #[test]
    fn rust() {
        insta::assert_snapshot!("bpe_bytelevel_rust", super::rust(&tables()));
    }

    /// Only the decoder's part: the kernels after it are the default decoder's, verbatim.
    #[test]
    fn cuda() {
        let (t, d) = (super::cuda(&tables()), super::cuda(&default_tables()));
        let at = |s: &str| s.find("/* ---- table access ---- */").unwrap();
        assert_eq!(t[at(&t)..], d[at(&d)..]);
        insta::assert_snapshot!("bpe_bytelevel_cuda_decoder", cuda_decoder_part(&tables()));
    }

    #[test]
    fn dot() {
        insta::assert_snapshot!("bpe_bytelevel_dot", emit::dot::emit(&tables()));
    }

    #[test]
    fn stats() {
        insta::assert_snapshot!("bpe_bytelevel_stats", emit::stats::emit(&tables()));
    }
}
