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

/// `welt demo ARGS` with its address space capped at 4 GiB, so that an input that would
/// allocate more fails (abort) instead of swapping the machine.
fn welt_bounded(args: &[&OsStr]) -> (i32, String, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_welt"))
        .arg("demo")
        .args(args)
        .output()
        .expect("sh runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A checkpoint of `tiny(256)` in a fresh directory, its config.json edited by `edit`.
fn checkpoint(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("welt-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ByteLlama::random(tiny(256), 3, &Device::Cpu)
        .unwrap()
        .save(&dir)
        .unwrap();
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
    dir
}

/// Each config.json that once aborted, wrapped or was accepted: exit 2 and a message that
/// names what is wrong, within the 4 GiB bound.
#[test]
fn hostile_configs_are_clear_errors_within_bounded_memory() {
    let wraps = (1u64 << 63) + 8; // x 2 heads = 16 = hidden_size, modulo 2^64
    let cases: [(&str, serde_json::Value, &str); 5] = [
        (
            "num_hidden_layers",
            1_000_000_000.into(),
            "tensor `model.layers.1.self_attn.q_proj.weight` is missing",
        ),
        ("head_dim", wraps.into(), "head_dim 9223372036854775816 is not"),
        (
            "rms_norm_eps",
            1e-300.into(),
            "rms_norm_eps must be positive and finite in f32",
        ),
        ("rope_theta", 1e-50.into(), "rope_theta must be at least 1"),
        (
            "max_position_embeddings",
            8.into(),
            "max_position_embeddings is 8, a word needs 18",
        ),
    ];
    for (key, value, needle) in cases {
        let dir = checkpoint(key, |c| c[key] = value.clone());
        let (code, out, err) = welt_bounded(&[os("--model"), dir.as_os_str(), os("--words"), os("1")]);
        assert_eq!(code, 2, "{key} = {value}: {err}");
        assert!(err.contains(needle), "{key} = {value}: {err}");
        assert!(out.is_empty(), "{out}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// max_position_embeddings bounds positions; it sizes nothing, so a huge one generates.
#[test]
fn a_huge_max_position_embeddings_generates_within_bounded_memory() {
    let dir = checkpoint("max-positions", |c| {
        c["max_position_embeddings"] = 200_000_000.into()
    });
    let (code, _, err) = welt_bounded(&[os("--model"), dir.as_os_str(), os("--words"), os("2")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 of 2 words are valid UTF-8"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The number a refusal prints: "... would need N bytes ...".
fn needed_bytes(err: &str) -> u128 {
    err.split(" would need ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {err}"))
}

#[test]
fn a_batch_past_the_memory_limit_is_refused_with_the_bytes_it_needs() {
    // The default model: 4 layers x 4 key/value heads x head_dim 64, 32 cached positions.
    let cfg = LlamaConfig::welt_default();
    let per_row = 2 * 4 * cfg.num_hidden_layers * cfg.num_key_value_heads * 32 * cfg.head_dim();
    let (code, out, err) = welt_bounded(&[os("--batch"), os("100000"), os("--words"), os("1")]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(needed_bytes(&err) >= 100_000 * per_row as u128, "{err}");
    assert!(err.contains("limit of 4294967296 bytes"), "{err}");

    // The limit is an option: 4 rows fit the default, not 100 KB.
    let (code, _, err) = welt_bounded(&[
        os("--batch"),
        os("4"),
        os("--words"),
        os("1"),
        os("--max-memory"),
        os("100000"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(needed_bytes(&err) >= 4 * per_row as u128, "{err}");
    let (code, _, err) = welt_bounded(&[os("--batch"), os("4"), os("--words"), os("1")]);
    assert_eq!(code, 0, "{err}");

    // The rows' texts count too, and words x batch may not overflow.
    let (code, _, err) = welt_bounded(&[os("--batch"), os("2"), os("--words"), os("1000000000000")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("more than --max-memory"), "{err}");
    let (code, _, err) = welt_bounded(&[os("--batch"), os("4"), os("--words"), os(&u64::MAX.to_string())]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not fit"), "{err}");
}

/// A truncated or mislabelled model.safetensors: exit 2 naming the file or the tensor.
#[test]
fn bad_safetensors_files_are_clear_errors() {
    let dir = checkpoint("truncated", |_| {});
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() - 1, 100, 3] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let (code, _, err) = welt_bounded(&[os("--model"), dir.as_os_str(), os("--words"), os("1")]);
        assert_eq!(code, 2, "{keep}: {err}");
        assert!(err.contains("model.safetensors"), "{keep}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A config.json that never ends (a link to `/dev/zero`) is refused after its bound, not read
/// until memory runs out; a config error names the file it is about.
#[test]
fn an_endless_config_is_refused_and_config_errors_name_the_file() {
    let dir = checkpoint("endless", |_| {});
    let config = dir.join("config.json");
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    let (code, out, err) = welt_bounded(&[os("--model"), dir.as_os_str(), os("--words"), os("1")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("config.json") && err.contains("larger than 1048576 bytes"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
    let _ = std::fs::remove_dir_all(&dir);

    let dir = checkpoint("named", |c| c["rope_theta"] = 1e-50.into());
    let (code, _, err) = welt_bounded(&[os("--model"), dir.as_os_str(), os("--words"), os("1")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&dir.join("config.json").display().to_string()),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
