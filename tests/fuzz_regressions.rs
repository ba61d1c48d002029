//! Replays the inputs the fuzz targets (fuzz/, `cargo fuzz`) found, under plain `cargo test`,
//! through the same target bodies (fuzz/src/lib.rs): each must now be refused with an `Err` or
//! give a consistent result, never panic. Inputs live in `fuzz/regressions/<target>/<defect>/`,
//! one test per directory; a directory whose defect is not fixed yet is `#[ignore]`d with the
//! defect named.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod drive;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs every file of `fuzz/<dir>` through `target`; fails naming each input that panics.
fn replay(dir: &str, target: fn(&[u8])) {
    let path = root().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", path.display());
    let failed: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let data = std::fs::read(f).unwrap();
            catch_unwind(AssertUnwindSafe(|| target(&data)))
                .is_err()
                .then(|| f.display().to_string())
        })
        .collect();
    assert!(failed.is_empty(), "inputs that panic: {failed:#?}");
}

/// The seed corpus, once, through every target: the drivers accept it without a panic.
#[test]
fn seeds_pass() {
    replay("seeds/tokenizer", drive::tokenizer);
    replay("seeds/runtime", drive::runtime);
    replay("seeds/query", drive::query);
}

/// The generated part of the seed corpus (table blobs and their operation bytes) in
/// fuzz/seeds/runtime/ is what today's generator writes: seeds the reader refuses would start the
/// fuzzer from inputs it rejects at once. `WELT_FUZZ_WRITE_SEEDS=1 cargo test --test all
/// fuzz_regressions::seeds_are_fresh` rewrites them.
#[test]
fn seeds_are_fresh() {
    use welt_runtime::Decoder;
    let write = std::env::var_os("WELT_FUZZ_WRITE_SEEDS").is_some();
    let dir = root().join("seeds/runtime");
    // Operations: a batch-size byte, a word-limit byte, then token ids (3 bytes each).
    let ops = |ids: &[u32]| -> Vec<u8> {
        let mut o = vec![1u8, 5];
        for id in ids {
            o.extend_from_slice(&id.to_le_bytes()[..3]);
        }
        o
    };
    let word: Vec<u32> = b"hi there, you ".iter().map(|&b| u32::from(b)).collect();
    let mut seeds: Vec<(String, Vec<u8>, Vec<u8>)> = vec![(
        "utf8_words".into(),
        welt_runtime::Utf8Words::TABLES.as_bytes().to_vec(),
        ops(&word),
    )];
    let fixtures = root().join("../tests/fixtures");
    for (name, layout) in [
        ("byt5_like", kernels_gen::Layout::Direct),
        ("byt5_like", kernels_gen::Layout::Classes),
        ("sp_unigram", kernels_gen::Layout::Classes),
    ] {
        let vocab =
            kernels_gen::tokenizer::load_file(&fixtures.join(format!("{name}.json")), &Default::default())
                .unwrap();
        let mut spec = kernels_gen::DecoderSpec::new(vocab);
        spec.layout = layout;
        spec.max_word_len = 6;
        let blob = kernels_gen::generate(&spec).unwrap().to_blob();
        seeds.push((
            format!("{name}_{layout:?}").to_lowercase(),
            blob,
            ops(&[3, 104, 105, 32, 7, 1]),
        ));
    }
    let mut stale = Vec::new();
    for (name, blob, ops) in seeds {
        assert!(
            welt_runtime::OwnedTables::from_bytes(blob.clone()).is_ok(),
            "{name}: a seed the reader refuses"
        );
        let mut data = (blob.len() as u32).to_le_bytes().to_vec();
        data.extend_from_slice(&blob);
        data.extend_from_slice(&ops);
        let path = dir.join(format!("{name}.bin"));
        if write {
            std::fs::write(&path, data).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&data[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale fuzz seeds (rewrite them with WELT_FUZZ_WRITE_SEEDS=1): {stale:#?}"
    );
}

#[test]
fn tokenizer_sequence_word_limit() {
    replay("regressions/tokenizer/sequence-word-limit", drive::tokenizer);
}

/// A token-class blob whose mask forbids a token its entry allows (one bit cleared in the start
/// state): `Tables::from_bytes` accepts it (it checks masks against entries in the direct layout
/// only), and stepping it must stay in bounds and consistent with its entries.
#[test]
fn runtime_class_mask_disagrees() {
    replay("regressions/runtime/class-mask-disagrees", drive::runtime);
}
