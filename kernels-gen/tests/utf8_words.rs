//! welt-runtime's default decoder is generated once and checked in
//! (`welt-runtime/src/utf8_words.rs`), so that welt-runtime builds without the generator.
//! This test regenerates it and fails when the checked-in file differs; with
//! `WELT_REGENERATE=1` it writes the file instead:
//!
//! ```text
//! WELT_REGENERATE=1 cargo test -p kernels-gen --test all utf8_words
//! ```

use std::path::Path;

const REGENERATE: &str = "WELT_REGENERATE=1 cargo test -p kernels-gen --test all utf8_words";

fn expected() -> String {
    let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::utf8_bytes()).unwrap();
    let doc = "WeLT's default byte decoder: the `UTF8Tokenizer` vocabulary (256 byte tokens, PAD = \
               0x00, BOS = 0x02, EOS = 0x03), strict UTF-8, WeLT's word rule, 16 tokens per word.";
    let file = kernels_gen::emit::rust::decoder_file(&tables, "Utf8Words", doc).unwrap();
    format!(
        "// welt-runtime's default decoder, checked in so that welt-runtime builds without the\n\
         // generator. Regenerate with `{REGENERATE}`.\n{file}"
    )
}

#[test]
fn checked_in_default_decoder_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../welt-runtime/src/utf8_words.rs");
    let want = expected();
    if std::env::var_os("WELT_REGENERATE").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale (or missing): regenerate it with `{REGENERATE}`",
        path.display()
    );
}
