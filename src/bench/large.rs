//! `welt bench --vocab N` and `welt bench --tokenizer FILE`: the per-token CPU cost for a
//! large vocabulary (a synthetic byte-level BPE of N tokens, or a real tokenizer's), B = 32 by
//! default, side by side in one run with the floor (one pass writing every logit of the batch)
//! and with the default 256-token decoder:
//!
//! - the state step must stay O(1): ns per row for `advance` with N tokens against 256;
//! - the mask must cost what it forbids: at a word start (nearly every token allowed) at most
//!   10 % of the floor per row, and inside a character (nearly every token forbidden, so
//!   nearly the whole row is written) about the floor.
//!
//! The mask is timed three ways. Over a replayed stream: token streams are drawn before
//! timing, each row picking uniformly among the tokens its mask allows, so rows move through
//! every kind of state (word starts, mid-character, after a complete word), stop and restart
//! as in generation. And with every row in one state, each its own figure: the word start
//! (the decoder's start state) and mid-word, after the token of the single byte 0xE4, the
//! lead of a three-byte character (CJK), where only tokens that go on with continuation
//! bytes are allowed.
//!
//! The synthetic vocabulary puts its tokens in random order, so the 5-6 % of them that a word
//! start forbids (pieces that begin inside a character) are spread over most cache lines of
//! the row. A real tokenizer's are not: Llama 3's word start forbids 1,204 of 128,256 tokens,
//! in 11 % of the row's 16-token runs. `--tokenizer` measures what a user of that tokenizer
//! pays.

use std::error::Error;
use std::hint::black_box;
use std::time::Instant;

use crate::Utf8Words;
use kernels_gen::Token;
use serde_json::json;
use welt_runtime::{Decoder, OwnedTables, Tables, WordBatch};

/// The byte whose token puts a row mid-word: the lead of a three-byte character.
const MID_WORD_BYTE: u8 = 0xE4;

/// The vocabulary the bench runs on.
#[derive(Debug, Clone)]
pub enum Vocabulary {
    /// The synthetic byte-level BPE of this many tokens (`--vocab N`).
    Synthetic(usize),
    /// A real tokenizer's (`--tokenizer FILE`): its name for the report, and its decoder.
    Tokenizer(String, Box<kernels_gen::DecoderSpec>),
}

/// Options of `welt bench --vocab N` and `welt bench --tokenizer FILE`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The vocabulary.
    pub vocabulary: Vocabulary,
    /// Rows.
    pub batch: usize,
    /// JSON output.
    pub json: bool,
    /// Fewer steps.
    pub quick: bool,
}

/// Per step, one token per row, and which rows restart after the step.
struct Stream {
    tokens: Vec<u32>,
    restart: Vec<bool>,
    steps: usize,
}

fn draw_stream(t: Tables<'_>, batch: usize, steps: usize, seed: u64) -> Result<Stream, Box<dyn Error>> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    // Allowed tokens per state, drawn from the masks once.
    let allowed: Vec<Vec<u32>> = (0..t.num_states() as u16)
        .map(|s| t.mask(s).iter().collect())
        .collect();
    let mut b = WordBatch::new(t, batch)?;
    let mut tokens = Vec::with_capacity(steps * batch);
    let mut restart = Vec::with_capacity(steps * batch);
    let mut step_tokens = vec![0u32; batch];
    for _ in 0..steps {
        for (row, tok) in step_tokens.iter_mut().enumerate() {
            let a = &allowed[b.states()[row] as usize];
            *tok = a[(rng.next_u64() % a.len() as u64) as usize];
        }
        tokens.extend_from_slice(&step_tokens);
        b.advance(&mut step_tokens)?;
        for row in 0..batch {
            let done = b.finished()[row];
            restart.push(done);
            if done {
                b.reset_row(row)?;
            }
        }
    }
    Ok(Stream {
        tokens,
        restart,
        steps,
    })
}

/// Median over `rounds` of the ns per step of `f` run over the whole stream.
fn time_ns(
    rounds: usize,
    steps: usize,
    mut f: impl FnMut() -> Result<(), Box<dyn Error>>,
) -> Result<f64, Box<dyn Error>> {
    f()?; // warm-up
    let mut v = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_nanos() as f64 / steps as f64);
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

struct Measured {
    mask: f64,
    advance: f64,
    /// The floor of `welt bench`: every logit written with the widest stores the CPU has.
    floor: f64,
    /// `memset` (glibc's `rep stosb` for large rows: streaming stores that skip reading each
    /// cache line first), a lower bound no masking that keeps values can reach.
    memset: f64,
}

fn measure(t: Tables<'_>, o: &Options, steps: usize, rounds: usize) -> Result<Measured, Box<dyn Error>> {
    let v = t.vocab_size();
    let b = o.batch;
    let stream = draw_stream(t, b, steps, 7)?;
    // 64-byte aligned, as in `welt bench`.
    let mut buffer = vec![0.25f32; b * v + 16];
    let at = buffer.as_ptr().align_offset(64).min(16);
    let logits = &mut buffer[at..at + b * v];
    let mut batch = WordBatch::new(t, b)?;
    let mut tokens = vec![0u32; b];
    // The replay: states follow the drawn stream, so the mask sees the same mix of states.
    // Its time alone is (mask + advance) - (advance).
    let mut replay = |mask: bool, logits: &mut [f32]| -> Result<(), Box<dyn Error>> {
        batch.reset();
        for s in 0..stream.steps {
            if mask {
                batch.apply_mask(logits)?;
            }
            tokens.copy_from_slice(&stream.tokens[s * b..(s + 1) * b]);
            batch.advance(&mut tokens)?;
            for row in 0..b {
                if stream.restart[s * b + row] {
                    batch.reset_row(row)?;
                }
            }
        }
        black_box(&logits);
        Ok(())
    };
    let both = time_ns(rounds, steps, || replay(true, logits))?;
    let advance = time_ns(rounds, steps, || replay(false, logits))?;
    let floor = time_ns(rounds, steps, || {
        for _ in 0..steps {
            crate::bench::floor_pass(black_box(&mut *logits));
        }
        Ok(())
    })?;
    let memset = time_ns(rounds, steps, || {
        for _ in 0..steps {
            black_box(&mut *logits).fill(f32::NEG_INFINITY);
        }
        Ok(())
    })?;
    Ok(Measured {
        mask: (both - advance).max(0.0),
        advance,
        floor,
        memset,
    })
}

/// One state's mask, every row in it.
struct StateMask {
    state: u16,
    /// Allowed tokens.
    allowed: usize,
    /// 16-token runs (one cache line of `f32`) that hold a forbidden token: what the mask must
    /// write.
    dirty_runs: usize,
    /// ns per step (B rows) of `apply_mask`.
    ns: f64,
    /// ns per step of the same rows masked one by one through their bitset
    /// (`Mask::apply`), the path without the lists of forbidden tokens.
    bitset_ns: f64,
}

/// Times `apply_mask` with every row in the state that `prefix` (tokens from the start state)
/// leads to.
fn measure_state(
    t: Tables<'_>,
    o: &Options,
    prefix: &[u32],
    steps: usize,
    rounds: usize,
) -> Result<StateMask, Box<dyn Error>> {
    let v = t.vocab_size();
    let b = o.batch;
    let mut batch = WordBatch::new(t, b)?;
    for &tok in prefix {
        batch.advance(&mut vec![tok; b])?;
    }
    if batch.finished().iter().any(|&f| f) {
        return Err("the mid-word prefix finished the word".into());
    }
    let state = batch.states()[0];
    let mask = t.mask(state);
    let dirty_runs = (0..v.div_ceil(16))
        .filter(|r| (16 * r..(16 * r + 16).min(v)).any(|tok| !mask.allows(tok as u32)))
        .count();
    let mut buffer = vec![0.25f32; b * v + 16];
    let at = buffer.as_ptr().align_offset(64).min(16);
    let logits = &mut buffer[at..at + b * v];
    let ns = time_ns(rounds, steps, || {
        for _ in 0..steps {
            batch.apply_mask(black_box(&mut *logits))?;
        }
        Ok(())
    })?;
    let bitset_ns = time_ns(rounds, steps, || {
        for _ in 0..steps {
            for row in black_box(&mut *logits).chunks_exact_mut(v) {
                mask.apply(row)?;
            }
        }
        Ok(())
    })?;
    Ok(StateMask {
        state,
        allowed: mask.count(),
        dirty_runs,
        ns,
        bitset_ns,
    })
}

/// Runs the benchmark.
pub fn run(o: &Options) -> Result<(), Box<dyn Error>> {
    let synthetic;
    let (what, spec) = match &o.vocabulary {
        Vocabulary::Tokenizer(name, spec) => (name.as_str(), &**spec),
        Vocabulary::Synthetic(n) => {
            let json_text = kernels_gen::synthetic::byte_level_bpe_json(*n, 1);
            let vocab = kernels_gen::tokenizer::load_str(
                &format!("synthetic-{n}.json"),
                &json_text,
                &Default::default(),
            )?;
            synthetic = kernels_gen::DecoderSpec::new(vocab);
            ("synthetic byte-level BPE", &synthetic)
        }
    };
    let mid_word_token = spec
        .vocab
        .tokens()
        .iter()
        .position(|t| *t == Token::Bytes(vec![MID_WORD_BYTE]))
        .ok_or_else(|| {
            format!("{what}: no token of the single byte {MID_WORD_BYTE:#04X} to go mid-word with")
        })?;
    let mid_word_token = u32::try_from(mid_word_token)?;
    let generated = kernels_gen::generate(spec)?;
    let owned = OwnedTables::from_bytes(generated.to_blob())?;
    let big = owned.as_tables();
    let vocab = big.vocab_size();
    let (steps_big, steps_small, rounds) = if o.quick { (20, 2000, 3) } else { (400, 40_000, 9) };
    let large = measure(big, o, steps_big, rounds)?;
    let small = measure(Utf8Words::TABLES, o, steps_small, rounds)?;
    let word_start = measure_state(big, o, &[], steps_big, rounds)?;
    let mid_word = measure_state(big, o, &[mid_word_token], steps_big, rounds)?;
    let b = o.batch as f64;
    let res = json!({
        "batch": o.batch,
        "vocab": vocab,
        "vocabulary": what,
        "layout": if big.token_classes().is_some() { "token classes" } else { "direct" },
        "mask_ns_per_row": large.mask / b,
        "floor_ns_per_row": large.floor / b,
        "mask_speed_vs_floor": large.floor / large.mask,
        "mask_ns_per_row_word_start": word_start.ns / b,
        "mask_ns_per_row_word_start_bitset": word_start.bitset_ns / b,
        "mask_word_start_vs_floor": word_start.ns / large.floor,
        "allowed_word_start": word_start.allowed,
        "dirty_runs_word_start": word_start.dirty_runs,
        "mask_ns_per_row_mid_word": mid_word.ns / b,
        "mask_ns_per_row_mid_word_bitset": mid_word.bitset_ns / b,
        "mask_mid_word_vs_floor": mid_word.ns / large.floor,
        "allowed_mid_word": mid_word.allowed,
        "dirty_runs_mid_word": mid_word.dirty_runs,
        "memset_ns_per_row": large.memset / b,
        "mask_speed_vs_memset": large.memset / large.mask,
        "advance_ns_per_row": large.advance / b,
        "advance_ns_per_row_v256": small.advance / b,
        "advance_ratio_vs_v256": large.advance / small.advance,
        "mask_ns_per_row_v256": small.mask / b,
        "floor_ns_per_row_v256": small.floor / b,
    });
    if o.json {
        println!("{}", json!({ "results": [res] }));
        return Ok(());
    }
    println!(
        "welt bench: {what} of {vocab} tokens ({} layout, {} states), B = {}, f32, release build",
        res["layout"].as_str().unwrap_or(""),
        big.num_states(),
        o.batch
    );
    println!("medians of {rounds} rounds; tokens drawn from the masks, rows restarting as words finish\n");
    println!(
        "{:>8} {:>14} {:>14} {:>15} {:>15} {:>11}",
        "vocab", "mask ns/row", "floor ns/row", "memset ns/row", "advance ns/row", "mask speed"
    );
    for (v, m) in [(256usize, &small), (vocab, &large)] {
        println!(
            "{:>8} {:>14.1} {:>14.1} {:>15.1} {:>15.2} {:>10.0}%",
            v,
            m.mask / b,
            m.floor / b,
            m.memset / b,
            m.advance / b,
            100.0 * m.floor / m.mask
        );
    }
    println!(
        "(floor: every logit written with the widest stores the CPU has ({}), as in `welt bench`; mask speed = floor / mask time)",
        crate::bench::floor_stores()
    );
    println!(
        "\nstate step O(1): advance per row {:.2} ns with {} tokens, {:.2} ns with 256 ({:.2}x)",
        large.advance / b,
        vocab,
        small.advance / b,
        large.advance / small.advance
    );
    println!(
        "mask at {:.0} % of the floor's speed with {} tokens (target >= 70 %); {:.0} % of memset's",
        100.0 * large.floor / large.mask,
        vocab,
        100.0 * large.memset / large.mask
    );
    println!("\nthe mask with every row in one state, {vocab} tokens:");
    for (what, m) in [
        ("word start", &word_start),
        (
            &format!("mid-word (after byte {MID_WORD_BYTE:#04X})") as &str,
            &mid_word,
        ),
    ] {
        println!(
            "  {what:<27} state {:>5}: {:>6} tokens allowed, {:>5} of {} 16-token runs to write; mask {:>8.1} ns/row = {:>5.1} % of the floor ({:.1} ns/row); through the bitset alone {:>8.1} ns/row = {:>5.1} %",
            m.state,
            m.allowed,
            m.dirty_runs,
            vocab.div_ceil(16),
            m.ns / b,
            100.0 * m.ns / large.floor,
            large.floor / b,
            m.bitset_ns / b,
            100.0 * m.bitset_ns / large.floor,
        );
    }
    println!(
        "(the bitset alone: each row through `Mask::apply`, without the lists of forbidden tokens that `WordBatch` keeps for states that forbid few)"
    );
    println!(
        "(target: at a word start at most 10 % of the floor; no mask can write fewer cache lines than the runs to write, {:.0} % of the row here)",
        100.0 * word_start.dirty_runs as f64 / vocab.div_ceil(16) as f64
    );
    Ok(())
}
