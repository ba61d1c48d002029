//! Synthetic byte-level BPE `tokenizer.json` files of any size, for tests and benchmarks of
//! large vocabularies (32k, 128k, 256k tokens) without downloading a model.
//!
//! The vocabulary looks like a real byte-level BPE one where it matters to the automaton: the
//! 256 single bytes, then tokens of 2–12 bytes cut from text in many scripts — words with and
//! without a leading space, runs of spaces and newlines, punctuation, and tokens that end or
//! start inside a multi-byte character (byte-level BPE splits characters freely) — and a
//! special `<|endoftext|>` as the last id. Deterministic for a given size and seed.

use std::collections::BTreeSet;
use std::fmt::Write;

/// A byte-level BPE `tokenizer.json` with `vocab_size` tokens (at least 257).
pub fn byte_level_bpe_json(vocab_size: usize, seed: u64) -> String {
    assert!(
        vocab_size >= 257,
        "a byte-level BPE vocabulary has the 256 bytes and EOS"
    );
    let alphabet = crate::tokenizer::gpt2_alphabet();
    let mut rng = crate::rng::SplitMix64::new(seed);
    let mut seen: BTreeSet<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let scripts: [(u32, u32); 10] = [
        (0x61, 0x7A),       // a-z
        (0x41, 0x5A),       // A-Z
        (0xE0, 0xFF),       // Latin-1 letters
        (0x3B1, 0x3C9),     // Greek
        (0x430, 0x44F),     // Cyrillic
        (0x627, 0x64A),     // Arabic
        (0x905, 0x939),     // Devanagari
        (0x4E00, 0x9FFF),   // CJK
        (0xAC00, 0xD7A3),   // Hangul
        (0x1F600, 0x1F64F), // emoji
    ];
    let spaces = [" ", "  ", "\n", "\n\n", "\t", "\u{a0}", "\u{3000}"];
    while tokens.len() < vocab_size - 1 {
        let mut text = String::new();
        match rng.below(10) {
            0 => text.push_str(spaces[rng.index(spaces.len())]),
            1 => text.push_str([".", ",", "!", "?", "...", "\"", "'s", "://"][rng.index(8)]),
            _ => {
                if rng.below(2) == 0 {
                    text.push(' ');
                }
                let (lo, hi) = scripts[rng.index(scripts.len())];
                for _ in 0..1 + rng.below(6) {
                    let c = char::from_u32(lo + rng.below(hi - lo + 1)).unwrap_or('x');
                    text.push(c);
                }
            }
        }
        let mut bytes = text.into_bytes();
        // Byte-level BPE merges bytes, not characters: sometimes cut inside a character.
        if bytes.len() > 2 && rng.below(4) == 0 {
            let cut = 1 + rng.index(bytes.len() - 1);
            bytes = if rng.below(2) == 0 {
                bytes[..cut].to_vec()
            } else {
                bytes[cut..].to_vec()
            };
        }
        bytes.truncate(12);
        if seen.insert(bytes.clone()) {
            tokens.push(bytes);
        }
    }
    let eos = tokens.len();
    let mut vocab = String::new();
    for (id, t) in tokens.iter().enumerate() {
        let s: String = t.iter().map(|&b| alphabet[b as usize]).collect();
        if id > 0 {
            vocab.push(',');
        }
        let _ = write!(vocab, "{}:{id}", serde_json::Value::String(s));
    }
    format!(
        r#"{{"version":"1.0","truncation":null,"padding":null,
"added_tokens":[{{"id":{eos},"content":"<|endoftext|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}}],
"normalizer":null,
"pre_tokenizer":{{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}},
"post_processor":null,
"decoder":{{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}},
"model":{{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{{{vocab}}},"merges":[]}}}}
"#
    )
}
