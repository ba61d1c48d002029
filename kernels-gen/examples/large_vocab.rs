//! Times table generation for a synthetic byte-level BPE vocabulary:
//! `cargo run --release -p kernels-gen --features tokenizers --example large_vocab -- 131072`
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size: usize = std::env::args().nth(1).map_or(Ok(131_072), |s| s.parse())?;
    let t = Instant::now();
    let json = kernels_gen::synthetic::byte_level_bpe_json(size, 7);
    let made = t.elapsed();
    let t = Instant::now();
    let vocab = kernels_gen::tokenizer::load_str("synthetic.json", &json, &Default::default())?;
    let loaded = t.elapsed();
    let t = Instant::now();
    let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::new(vocab))?;
    let generated = t.elapsed();
    let t = Instant::now();
    let blob = tables.to_blob();
    let rust = kernels_gen::emit::rust::decoder_impl(&tables, &quote_ty()).to_string();
    let emitted = t.elapsed();
    println!("vocab {size}: json {made:?}, load {loaded:?}, generate {generated:?}, emit {emitted:?}");
    println!("blob {} bytes, rust source {} bytes", blob.len(), rust.len());
    println!("{}", tables.stats());
    Ok(())
}

fn quote_ty() -> proc_macro2::TokenStream {
    "X".parse().expect("ident")
}
