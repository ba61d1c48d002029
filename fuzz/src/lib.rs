//! The bodies of the fuzz targets, one function per target. `fuzz_targets/*.rs` call them under
//! libFuzzer; `tests/fuzz_regressions.rs` includes this file as a module and replays
//! `fuzz/regressions/<target>/` through the same functions under plain `cargo test`.
//!
//! Each function returns normally for input the library refuses with an `Err`, and panics only
//! where the library broke a promise: a panic inside it, an accepted input whose result is
//! inconsistent, or a failed call that changed state it promises to leave alone.

use std::sync::OnceLock;

use kernels_gen::DecoderOptions;
use welt::query::Mode;
use welt_runtime::{Decoder, OwnedTables, Sequence, Tables, Utf8Words, WordBatch};

/// The one place the tokenizer loader is called.
fn load_tokenizer(json: &str) -> Result<kernels_gen::Vocabulary, kernels_gen::Error> {
    kernels_gen::tokenizer::load_str("fuzz.json", json, &DecoderOptions::default())
}

/// The one place a `welt query` input is answered (what the CLI runs on its input).
fn run_query(tables: &Tables<'_>, mode: Mode, input: &[u8]) -> Result<String, String> {
    let mut out = Vec::new();
    welt::query::run_mode(tables, mode, input, &mut out).map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// A byte-level BPE decoder for `"tokens"` queries: the repository's fixture, generated once.
fn bpe_tables() -> Tables<'static> {
    static TABLES: OnceLock<OwnedTables> = OnceLock::new();
    TABLES
        .get_or_init(|| {
            let json = include_str!("../../tests/fixtures/bpe_bytelevel.json");
            let vocab = load_tokenizer(json).expect("the fixture loads");
            let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::new(vocab)).expect("tables");
            OwnedTables::from_bytes(tables.to_blob()).expect("valid tables")
        })
        .as_tables()
}

/// Target `tokenizer`: arbitrary bytes as a `tokenizer.json`. A vocabulary the loader accepts
/// is generated into tables; generated tables must validate and read back through the runtime's
/// checking reader.
pub fn tokenizer(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(vocab) = load_tokenizer(json) else {
        return;
    };
    let Ok(tables) = kernels_gen::generate(&kernels_gen::DecoderSpec::new(vocab)) else {
        return;
    };
    if let Err(e) = tables.validate() {
        panic!("generated tables fail their own validation: {e}");
    }
    let blob = tables.to_blob();
    match Tables::from_bytes(&blob) {
        Ok(t) => {
            if let Err(e) = t.validate_masks() {
                panic!("generated tables fail validate_masks: {e}");
            }
            drive(&t, data);
        }
        Err(e) => panic!("the runtime refuses generated tables: {e}"),
    }
}

/// Target `runtime`: a table blob, then the operations to run on it. Layout: a little-endian
/// `u32` blob length (clamped to what follows), the blob, then operation bytes (see [`drive`]).
/// Every blob `Tables::from_bytes` accepts must keep the promises its doc makes, and stepping,
/// masking and querying it must never panic.
pub fn runtime(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (blob, ops) = rest.split_at(len);
    let Ok(t) = Tables::from_bytes(blob) else {
        return;
    };
    // `from_bytes` checks masks against entries in the direct layout (its doc says the class
    // layout's check is left to `validate`, which `OwnedTables::from_bytes` runs).
    if t.token_classes().is_none() {
        if let Err(e) = t.validate_masks() {
            panic!("from_bytes accepted direct tables that validate_masks refuses: {e}");
        }
    }
    if OwnedTables::from_bytes(blob.to_vec()).is_ok() {
        if let Err(e) = t.validate_masks() {
            panic!("OwnedTables::from_bytes accepted tables that validate_masks refuses: {e}");
        }
    }
    drive(&t, ops);
}

/// Target `query`: one `welt query` input (a line, or several), answered with the byte decoder
/// (`"bytes"` lines) and with a byte-level BPE decoder (`"tokens"` lines). An answered input
/// has one JSON output line per non-blank input line, each with a mask of `ceil(V / 8)` bytes.
pub fn query(data: &[u8]) {
    for (tables, mode) in [(Utf8Words::TABLES, Mode::Bytes), (bpe_tables(), Mode::Tokens)] {
        let Ok(out) = run_query(&tables, mode, data) else {
            continue;
        };
        let lines = data.split(|&b| b == b'\n');
        let answered = lines
            .filter(|l| !String::from_utf8_lossy(l).trim().is_empty())
            .count();
        assert_eq!(out.lines().count(), answered, "one output line per input line");
        for line in out.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("output is JSON");
            let mask = v["mask"].as_str().expect("a mask string");
            assert_eq!(mask.len(), 2 * tables.vocab_size().div_ceil(8), "mask width");
        }
    }
}

const MAX_OPS: usize = 768;

/// Token ids from operation bytes: three bytes each, reduced modulo `V + 2` so that the two
/// ids just past the vocabulary come up too.
fn ids(ops: &[u8], vocab: usize) -> Vec<u32> {
    let m = vocab as u64 + 2;
    ops.chunks(3)
        .map(|c| {
            let x = c.iter().rev().fold(0u64, |x, &b| x << 8 | u64::from(b));
            (x % m) as u32
        })
        .collect()
}

/// Runs tables through everything a caller can do with them, driven by `ops` (the first
/// [`MAX_OPS`] bytes: enough for several words in every row).
fn drive(t: &Tables<'_>, ops: &[u8]) {
    let ops = &ops[..ops.len().min(MAX_OPS)];
    let v = t.vocab_size();
    let ids = ids(ops, v);
    for s in 0..t.num_states().min(64) {
        let m = t.mask(s as u16);
        assert_eq!(m.iter().count(), m.count());
        let _ = t.is_boundary(s as u16);
    }
    let _ = t.is_boundary(u16::MAX);
    // Whether each mask bit agrees with its entry: `from_bytes` promises it in the direct layout
    // only (see its doc), so a corrupted token-class blob may hold a mask that `step` disagrees
    // with; stepping it must still never panic or go out of bounds.
    let masks_agree = t.validate_masks().is_ok();
    sequence(t, &ids, masks_agree);
    walk(t, &ids);
    batch(t, ops, &ids);
}

fn sequence(t: &Tables<'_>, ids: &[u32], masks_agree: bool) {
    let v = t.vocab_size();
    let mut seq = Sequence::new(*t);
    for &id in ids {
        let in_range = (id as usize) < v;
        let allowed = in_range && seq.mask().allows(id);
        let (state, len, complete) = (seq.state(), seq.len(), seq.is_complete());
        match seq.step(id) {
            Ok(done) => {
                assert!(in_range, "step accepted token {id}, past the vocabulary of {v}");
                assert!(
                    allowed || !masks_agree,
                    "step accepted token {id}, which the mask forbids"
                );
                assert!(!complete, "step accepted a token after the word was complete");
                assert_eq!(done, seq.is_complete());
                assert_eq!(seq.len(), len + 1);
            }
            Err(_) => {
                assert_eq!(
                    (seq.state(), seq.len()),
                    (state, len),
                    "a failed step changed the word"
                );
            }
        }
        assert!(
            seq.len() <= usize::from(t.max_word_len()),
            "a word of {} tokens, past the limit of {}",
            seq.len(),
            t.max_word_len()
        );
        let m = seq.mask();
        assert_eq!(m.iter().count(), m.count());
        let _ = seq.is_at_boundary();
    }
    // A prefix: every prefix of the ids, as far as `with_prefix` takes them.
    for n in 0..ids.len().min(8) {
        let _ = Sequence::with_prefix(*t, &ids[..n]);
    }
}

fn walk(t: &Tables<'_>, ids: &[u32]) {
    let v = t.vocab_size();
    match t.walk(ids) {
        Ok(w) => {
            assert!(ids.iter().all(|&i| (i as usize) < v));
            assert!((w.state as usize) < t.num_states());
            let m = t.mask(w.state);
            let mut logits = vec![0.0f32; v];
            m.apply(&mut logits).expect("a mask applies to V logits");
            for (i, l) in logits.iter().enumerate() {
                assert_eq!(l.is_finite(), m.allows(i as u32), "logit {i} after the mask");
            }
        }
        Err(_) => assert!(ids.iter().any(|&i| i as usize >= v), "walk refused in-range ids"),
    }
}

fn batch(t: &Tables<'_>, ops: &[u8], ids: &[u32]) {
    let v = t.vocab_size();
    let (&b0, rest) = ops.split_first().unwrap_or((&0, &[]));
    let rows = 1 + usize::from(b0 % 4);
    let Ok(mut batch) = WordBatch::new(*t, rows) else {
        panic!("WordBatch::new refused {rows} rows");
    };
    if let Some(&len) = rest.first() {
        let r = batch.set_max_word_len(u32::from(len % 24));
        assert_eq!(r.is_ok(), len % 24 != 0, "set_max_word_len({})", len % 24);
    }
    let stride = v + usize::from(b0 / 4 % 3);
    let mut logits = vec![0.0f32; rows * stride];
    for (step, chunk) in ids.chunks(rows).enumerate() {
        if chunk.len() < rows {
            break;
        }
        logits.fill(0.0);
        batch
            .apply_mask_strided(&mut logits, stride)
            .expect("strided logits of B x stride");
        for r in 0..rows {
            let m = batch.mask(r).expect("a row's mask");
            if !batch.finished()[r] {
                for (i, l) in logits[r * stride..r * stride + v].iter().enumerate() {
                    assert_eq!(l.is_finite(), m.allows(i as u32));
                }
            }
        }
        assert!(batch.mask(rows).is_err());
        let before = (
            batch.states().to_vec(),
            batch.lengths().to_vec(),
            batch.finished().to_vec(),
        );
        let mut tokens = chunk.to_vec();
        match batch.advance(&mut tokens) {
            Ok(running) => {
                assert_eq!(running, batch.running());
                for (r, &token) in tokens.iter().enumerate() {
                    if before.2[r] {
                        assert_eq!(token, t.pad(), "a finished row reports PAD");
                    }
                    assert!(batch.lengths()[r] <= batch.max_word_len());
                }
            }
            Err(_) => {
                let after = (
                    batch.states().to_vec(),
                    batch.lengths().to_vec(),
                    batch.finished().to_vec(),
                );
                assert_eq!(before, after, "a failed advance changed the batch");
            }
        }
        match step % 5 {
            1 => {
                batch.restart_finished();
            }
            2 => {
                let _ = batch.set_prefix(step % rows, &chunk[..chunk.len().min(2)]);
            }
            3 => assert!(batch.reset_row(rows).is_err()),
            _ => {}
        }
        if batch.is_done() {
            batch.reset();
        }
    }
}
