//! Times table generation for a synthetic byte-level BPE vocabulary of the given size, or for
//! a `tokenizer.json` given by path:
//! `cargo run --release -p kernels-gen --features tokenizers --example large_vocab -- 131072`
//! `cargo run -p kernels-gen --features tokenizers --example large_vocab -- path/to/tokenizer.json`
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "131072".into());
    let t = Instant::now();
    let (label, json) = match arg.parse::<usize>() {
        Ok(size) => (
            format!("vocab {size}"),
            kernels_gen::synthetic::byte_level_bpe_json(size, 7),
        ),
        Err(_) => (arg.clone(), std::fs::read_to_string(&arg)?),
    };
    let made = t.elapsed();
    let t = Instant::now();
    let vocab = kernels_gen::tokenizer::load_str("tokenizer.json", &json, &Default::default())?;
    let loaded = t.elapsed();
    let t = Instant::now();
    let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::new(vocab))?;
    let generated = t.elapsed();
    let t = Instant::now();
    let blob = tables.to_blob();
    let rust = kernels_gen::emit::rust::decoder_impl(&tables, &quote_ty()).to_string();
    let emitted = t.elapsed();
    println!("{label}: json {made:?}, load {loaded:?}, generate {generated:?}, emit {emitted:?}");
    // A fingerprint of the tables, to compare generators (SipHash with fixed keys).
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&blob, &mut h);
    let fingerprint = std::hash::Hasher::finish(&h);
    println!(
        "blob {} bytes (fingerprint {fingerprint:016x}), rust source {} bytes",
        blob.len(),
        rust.len()
    );
    println!("{}", tables.stats());
    Ok(())
}

fn quote_ty() -> proc_macro2::TokenStream {
    "X".parse().expect("ident")
}
