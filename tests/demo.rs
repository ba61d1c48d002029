//! `welt demo` and the generation loop with the real byte Llama: words come out valid and end
//! by the rule or the limit, runs reproduce with a seed, and bad input (prompt, checkpoint,
//! vocabulary) is a clear error with a non-zero exit.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use candle_core::Device;
use welt::model::{ByteLlama, LlamaConfig};
use welt_runtime::{Decoder, Sampler, Utf8Words, WordGenerator};

fn welt(args: &[&OsStr]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_welt"))
        .args(args)
        .output()
        .expect("welt runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// A small model (vocabulary 256, so it fits the byte decoder) that is quick in debug builds.
fn tiny(vocab: usize) -> LlamaConfig {
    LlamaConfig {
        vocab_size: vocab,
        hidden_size: 16,
        intermediate_size: 32,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        ..LlamaConfig::welt_default()
    }
}

#[test]
fn demo_generates_valid_words_and_reproduces_with_a_seed() {
    let dir = std::env::temp_dir().join(format!("welt-demo-model-{}", std::process::id()));
    ByteLlama::random(tiny(256), 3, &Device::Cpu)
        .unwrap()
        .save(&dir)
        .unwrap();
    let args = [
        os("demo"),
        os("--model"),
        dir.as_os_str(),
        os("--words"),
        os("6"),
        os("--seed"),
        os("5"),
    ];
    let (code, out, err) = welt(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("The quick brown fox "), "{out}");
    assert!(err.contains("6 of 6 words are valid UTF-8"), "{err}");
    assert!(err.contains("constraint time:"), "{err}");
    assert_eq!(welt(&args).1, out, "same seed, same words");
    let (_, other, _) = welt(&[
        os("demo"),
        os("--model"),
        dir.as_os_str(),
        os("--words"),
        os("6"),
        os("--seed"),
        os("6"),
    ]);
    assert_ne!(other, out, "another seed, other words");

    // Several rows side by side.
    let (code, out, err) = welt(&[
        os("demo"),
        os("--model"),
        dir.as_os_str(),
        os("--words"),
        os("3"),
        os("--batch"),
        os("4"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with('[')).count(), 4, "{out}");
    assert!(err.contains("12 of 12 words are valid UTF-8"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_prompts_are_clear_errors() {
    for (prompt, needle) in [
        (&b""[..], "the prompt is empty"),
        (&b"ab\xe3\x80"[..], "ends inside a UTF-8 character"),
        (&b"a\xffb"[..], "not valid UTF-8"),
    ] {
        let (code, out, err) = welt(&[
            os("demo"),
            os("--prompt"),
            OsStr::from_bytes(prompt),
            os("--words"),
            os("1"),
        ]);
        assert_eq!(code, 2, "{prompt:?}: {err}");
        assert!(err.contains(needle), "{prompt:?}: {err}");
        assert!(out.is_empty(), "nothing generated: {out}");
    }
}

#[test]
fn a_checkpoint_that_does_not_fit_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("welt-demo-vocab-{}", std::process::id()));
    ByteLlama::random(tiny(300), 1, &Device::Cpu)
        .unwrap()
        .save(&dir)
        .unwrap();
    let (code, _, err) = welt(&[os("demo"), os("--model"), dir.as_os_str(), os("--words"), os("1")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("vocabulary of 300 tokens but the decoder has 256"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let (code, _, err) = welt(&[
        os("demo"),
        os("--model"),
        os("/nonexistent/welt-model"),
        os("--words"),
        os("1"),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("config.json"), "{err}");
}

/// The real model in the real loop: every word is a valid UTF-8 prefix, ends by the rule (as
/// the runtime's own tables confirm) or at the limit, and seeded sampling reproduces.
#[test]
fn word_generator_with_the_byte_llama() {
    let run = |seed: u64| {
        let model = ByteLlama::random(tiny(256), 9, &Device::Cpu).unwrap();
        let mut g =
            WordGenerator::new(model, Utf8Words::TABLES, 3, Sampler::with_temperature(1.0, seed)).unwrap();
        let mut all = Vec::new();
        for _ in 0..4 {
            for w in g.generate(None, &[]).unwrap() {
                all.push((w.tokens.clone(), w.stopped));
            }
        }
        (all, g.stats())
    };
    let (words, stats) = run(1);
    assert_eq!(words, run(1).0);
    assert_ne!(words, run(2).0);
    assert_eq!(stats.words, 12);
    assert!(stats.steps > 0);
    for (tokens, stopped) in &words {
        let bytes: Vec<u8> = tokens.iter().map(|&t| t as u8).collect();
        let prefix_ok = std::str::from_utf8(&bytes).map_or_else(|e| e.error_len().is_none(), |_| true);
        assert!(prefix_ok, "{bytes:?}");
        let walk = Utf8Words::TABLES.walk(tokens).unwrap();
        assert!(walk.reachable, "{bytes:?}");
        assert_eq!(walk.stop, *stopped, "{bytes:?}");
        assert!(*stopped || tokens.len() == 16, "{bytes:?}");
    }
}
