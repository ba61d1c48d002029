//! `welt bench`: the CPU cost of one decoding step — mask the logits, advance every row by
//! its token, read the stop flags, restart the rows that finished — for batches of 1, 3, 32
//! and 256 rows over WeLT's 256-byte vocabulary with `f32` logits.
//!
//! Three modes run the same step on the same token streams, interleaved in every round:
//!
//! - `welt`: [`welt_runtime::WordBatch`] with the generated `Utf8Words` tables, one
//!   [`WordBatch::step`](welt_runtime::WordBatch::step) call (mask, choose, advance) per step;
//! - `welt_split`: the same through `apply_mask` and `advance`, as Hugging Face's logits
//!   processors drive it (in the JSON);
//! - `reference_port`: [`reference_port::ReferenceBatch`], the reference algorithm
//!   ported to Rust (tail scan for the mask, decode the whole word for the stop flag);
//! - `floor`: one pass writing every logit of the batch and nothing else — the least any
//!   mask applied by writing into the logits can cost — with the widest stores the CPU has
//!   (AVX-512, else AVX2), as welt's mask uses AVX-512 masked stores where it can;
//! - `floor_baseline`: the same pass as the compiler writes it for the baseline x86-64
//!   target (16-byte SSE2 stores). Reported to show what wider stores are worth; the
//!   targets are judged against `floor`;
//! - `welt_no_mask`: `welt` without the mask, so that `welt - welt_no_mask` is the mask's own
//!   cost.
//!
//! The token streams stand in for what a sampler would pick from the masked logits. They
//! come from a corpus of words generated here with a seeded PRNG, so every run measures the
//! same bytes: mixed scripts (ASCII, accented Latin, Greek, Cyrillic, Arabic, CJK, emoji),
//! words ended by several kinds of whitespace (U+00A0, U+2009, U+3000 ... included), by EOS,
//! or by the 16-byte limit, and words that begin with whitespace and so never stop by the
//! rule. Each row walks the corpus in its own order; when a row finishes, its next word
//! starts. The logits are not refilled between steps (the model's cost is not ours), for
//! every mode alike.
//!
//! Before anything is timed, welt and the reference port are run side by side over exactly
//! the steps that will be timed ([`check`]): every token must be allowed by welt's mask (and
//! so by the reference's), and both must finish the same rows at the same steps. That pass
//! records each step's tokens ([`Replay`]); a timed step copies its row of tokens, as a
//! sampler would write them, and restarts the finished rows with `restart_finished`, so that
//! what is timed is the engine, not the walk over the corpus. Timed blocks then have to
//! reproduce the same counts of finished words, or the run fails.

use std::error::Error;
use std::time::Instant;

use crate::Utf8Words;
use serde_json::json;
use welt_runtime::Decoder;

pub mod corpus;
pub mod e2e;
pub mod floor;
pub mod large;
pub mod reference_port;
pub mod step;
mod timing;

pub use corpus::{Corpus, Finishes};
pub use floor::{floor_baseline_pass, floor_pass, floor_stores};
pub use step::{check, Mode, Replay, Workload};

use reference_port::VOCAB;
use timing::{all_cpu_ns, cpu_wait_ns, machine, median, others_ns, own_cpu_ns};

/// The batch sizes measured.
pub const BATCH_SIZES: [usize; 4] = [1, 3, 32, 256];
/// Words in the generated corpus (a power of two, so that every odd stride visits them all).
pub const CORPUS_WORDS: usize = 4096;
/// The corpus seed: every run measures the same bytes.
pub const CORPUS_SEED: u64 = 0x5765_4C54_2D62_656E;

/// `lcm(1, 3, 32, 256)`: row-steps per block are a multiple of it, so that every batch size
/// runs a whole number of steps over the same number of row-tokens.
const BLOCK_UNIT: usize = 768;

/// Options of `welt bench`.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Print one JSON object instead of the table.
    pub json: bool,
    /// A few short rounds, for smoke tests: the numbers are not meant to be read.
    pub quick: bool,
}

impl Options {
    fn rounds(&self) -> usize {
        if self.quick {
            3
        } else {
            15
        }
    }

    /// Row-tokens per timed block: a few ms for welt in a release build.
    fn row_tokens_per_block(&self) -> usize {
        if self.quick {
            BLOCK_UNIT * 4
        } else {
            BLOCK_UNIT * 341
        }
    }
}

/// The measurements of one batch size.
#[derive(Clone, Debug)]
pub struct BatchResult {
    /// Rows.
    pub batch: usize,
    /// Steps per timed block.
    pub steps_per_block: usize,
    /// Median ns per step, per mode in [`Mode::ALL`] order.
    pub ns_per_step: [f64; Mode::ALL.len()],
    /// The fastest block's ns per step, per mode (how far the median is from the best case).
    pub min_ns_per_step: [f64; Mode::ALL.len()],
    /// Words finished per block (the same for welt and the reference port).
    pub finishes: Finishes,
    /// The share of the timed wall-clock time this thread spent waiting for a CPU (another
    /// process had it), when the OS tells (Linux); above a few percent the machine was busy
    /// and every number here is inflated.
    pub cpu_wait_fraction: Option<f64>,
    /// CPU time other processes used while the blocks ran, in cores (0.5 = half a core on
    /// average), when the OS tells (Linux). On a 2-core machine anything above a few percent
    /// shares the core's caches and store bandwidth with the bench.
    pub other_cpu_fraction: Option<f64>,
}

impl BatchResult {
    /// Median ns per step of `mode`.
    pub fn ns_per_step(&self, mode: Mode) -> f64 {
        self.ns_per_step[mode as usize]
    }
    /// Median ns per row-token (one row advanced by one token) of `mode`.
    pub fn ns_per_row_token(&self, mode: Mode) -> f64 {
        self.ns_per_step(mode) / self.batch as f64
    }
}

/// Measures one batch size: the check pass, one warm-up block per mode, then `rounds`
/// rounds of one block per mode, the order of the modes rotating from round to round so that
/// none always runs first (or right after the same other mode).
pub fn measure(
    corpus: &Corpus,
    batch: usize,
    steps: usize,
    rounds: usize,
) -> Result<BatchResult, Box<dyn Error>> {
    let replay = check(corpus, batch, steps)?;
    let expected = replay.finishes();
    let mut loads = Mode::ALL
        .iter()
        .map(|&m| Workload::new(m, &replay))
        .collect::<Result<Vec<_>, _>>()?;
    for w in &mut loads {
        w.run(steps.div_ceil(4))?;
    }
    let mut times: [Vec<f64>; Mode::ALL.len()] = Default::default();
    let (mut wall_ns, mut wait_ns) = (0.0, Some(0u64));
    let (cpu_before, period) = ((all_cpu_ns(), own_cpu_ns()), Instant::now());
    for round in 0..rounds.max(1) {
        for k in 0..loads.len() {
            let w = &mut loads[(round + k) % Mode::ALL.len()];
            w.reset()?;
            let wait_before = cpu_wait_ns();
            let t = Instant::now();
            w.run(steps)?;
            let ns = t.elapsed().as_nanos() as f64;
            wall_ns += ns;
            wait_ns = match (wait_ns, wait_before, cpu_wait_ns()) {
                (Some(sum), Some(a), Some(b)) => Some(sum + b.saturating_sub(a)),
                _ => None,
            };
            if w.mode().finishes_words() && w.finishes() != expected {
                return Err(format!(
                    "B={batch}: {} finished {:?} in a timed block, the check pass {:?}",
                    w.mode().name(),
                    w.finishes(),
                    expected
                )
                .into());
            }
            times[w.mode() as usize].push(ns / steps as f64);
        }
    }
    let others = others_ns(cpu_before, (all_cpu_ns(), own_cpu_ns()));
    let period_ns = period.elapsed().as_nanos() as f64;
    let mut ns_per_step = [0.0; Mode::ALL.len()];
    let mut min_ns_per_step = [0.0; Mode::ALL.len()];
    for (i, t) in times.iter_mut().enumerate() {
        min_ns_per_step[i] = t.iter().copied().fold(f64::INFINITY, f64::min);
        ns_per_step[i] = median(t);
    }
    Ok(BatchResult {
        batch,
        steps_per_block: steps,
        ns_per_step,
        min_ns_per_step,
        finishes: expected,
        cpu_wait_fraction: wait_ns.map(|w| w as f64 / wall_ns.max(1.0)),
        other_cpu_fraction: others.map(|o| o as f64 / period_ns.max(1.0)),
    })
}

/// Above this share of time spent waiting for a CPU, the table says the machine was busy.
const BUSY_WAIT: f64 = 0.02;
/// Above this CPU use by other processes (in cores), likewise: `/proc/stat` counts in 10 ms
/// ticks, so a few percent is rounding.
const BUSY_OTHERS: f64 = 0.1;

fn result_json(r: &BatchResult) -> serde_json::Value {
    let welt = r.ns_per_row_token(Mode::Welt);
    let port = r.ns_per_row_token(Mode::ReferencePort);
    let floor = r.ns_per_row_token(Mode::Floor);
    let baseline = r.ns_per_row_token(Mode::FloorBaseline);
    json!({
        "batch": r.batch,
        "vocab": VOCAB,
        "welt_ns_per_row_token": welt,
        "reference_port_ns_per_row_token": port,
        "floor_ns_per_row_token": floor,
        "floor_baseline_ns_per_row_token": baseline,
        "welt_ns_per_step": r.ns_per_step(Mode::Welt),
        "reference_port_ns_per_step": r.ns_per_step(Mode::ReferencePort),
        "floor_ns_per_step": r.ns_per_step(Mode::Floor),
        "welt_min_ns_per_step": r.min_ns_per_step[Mode::Welt as usize],
        "reference_port_min_ns_per_step": r.min_ns_per_step[Mode::ReferencePort as usize],
        "floor_min_ns_per_step": r.min_ns_per_step[Mode::Floor as usize],
        "welt_over_floor": welt / floor,
        "welt_over_floor_baseline": welt / baseline,
        "welt_no_mask_ns_per_row_token": r.ns_per_row_token(Mode::WeltNoMask),
        // apply_mask + advance (the Hugging Face path) instead of `step`.
        "welt_split_ns_per_step": r.ns_per_step(Mode::WeltSplit),
        "welt_split_over_floor": r.ns_per_row_token(Mode::WeltSplit) / floor,
        // welt minus welt_no_mask: what the mask costs, per row.
        "welt_mask_ns_per_row": welt - r.ns_per_row_token(Mode::WeltNoMask),
        "reference_port_over_welt": port / welt,
        // From each mode's fastest block: less sensitive to other processes than the medians.
        "welt_over_floor_best": r.min_ns_per_step[Mode::Welt as usize] / r.min_ns_per_step[Mode::Floor as usize],
        "steps_per_block": r.steps_per_block,
        "stops_per_block": r.finishes.stops,
        "limit_finishes_per_block": r.finishes.limits,
        "cpu_wait_fraction": r.cpu_wait_fraction,
        "other_cpu_fraction": r.other_cpu_fraction,
    })
}

/// The bench's targets, as lines saying whether they are met
/// (or that nothing can be said, on a busy machine).
fn verdicts(results: &[BatchResult], busy: bool) -> Vec<String> {
    let ok = |b: bool| match (b, busy) {
        (_, true) => "unknown (busy machine)",
        (true, false) => "met",
        (false, false) => "MISSED",
    };
    let mut out = Vec::new();
    if let Some(r) = results.iter().find(|r| r.batch == 32) {
        let (w, f) = (r.ns_per_row_token(Mode::Welt), r.ns_per_row_token(Mode::Floor));
        out.push(format!(
            "B = 32: welt / floor = {:.2} (target <= 1.5): {}",
            w / f,
            ok(w <= 1.5 * f)
        ));
        out.push(format!(
            "B = 32: welt = {w:.1} ns per row-token (target < 50): {}",
            ok(w < 50.0)
        ));
    }
    let slower: Vec<String> = results
        .iter()
        .filter(|r| r.ns_per_step(Mode::Welt) >= r.ns_per_step(Mode::ReferencePort))
        .map(|r| r.batch.to_string())
        .collect();
    let what = "welt faster than the reference port at every batch size";
    out.push(if slower.is_empty() || busy {
        format!("{what}: {}", ok(slower.is_empty()))
    } else {
        format!("{what}: {} at B = {}", ok(false), slower.join(", "))
    });
    out
}

fn table(corpus: &Corpus, results: &[BatchResult], rounds: usize, row_tokens: usize) -> String {
    use std::fmt::Write;
    let m = machine();
    let mut s = String::new();
    let cpu = m["cpu"].as_str().unwrap_or("unknown CPU");
    let cores = m["cores"].as_u64().map_or("?".to_string(), |c| c.to_string());
    let _ = writeln!(
        s,
        "welt bench: mask + advance + stop per decoding step, V = {VOCAB}, f32 logits \
         ({} build, {cores} cores, {cpu})",
        m["build"].as_str().unwrap_or("?"),
    );
    let f = corpus.finishes();
    let _ = writeln!(
        s,
        "corpus: {} words, {} bytes ({:.0}% in multi-byte characters); {} words stop, {} hit the {}-byte limit",
        corpus.len(),
        corpus.bytes().len(),
        100.0 * corpus.multibyte_bytes() as f64 / corpus.bytes().len().max(1) as f64,
        f.stops,
        f.limits,
        Utf8Words::TABLES.max_word_len(),
    );
    let _ = writeln!(
        s,
        "median of {rounds} rounds, modes interleaved; {row_tokens} row-tokens per timed block\n"
    );
    let _ = writeln!(
        s,
        "{:>5} {:>7} | {:>21} | {:>21} | {:>21} | {:>21} | {:>10} {:>10} {:>10} | {:>21}",
        "",
        "",
        "welt",
        "reference_port",
        "floor",
        "floor_baseline",
        "welt",
        "ref_port",
        "welt",
        "welt's mask alone"
    );
    let _ = writeln!(
        s,
        "{:>5} {:>7} | {:>10} {:>10} | {:>10} {:>10} | {:>10} {:>10} | {:>10} {:>10} | {:>10} {:>10} {:>10} | {:>10} {:>10}",
        "B",
        "steps",
        "ns/step",
        "ns/row-tok",
        "ns/step",
        "ns/row-tok",
        "ns/step",
        "ns/row-tok",
        "ns/step",
        "ns/row-tok",
        "/ floor",
        "/ welt",
        "/ fl_base",
        "ns/row",
        "/ floor"
    );
    for r in results {
        let _ = write!(s, "{:>5} {:>7} |", r.batch, r.steps_per_block);
        for mode in Mode::ALL
            .into_iter()
            .filter(|&m| !matches!(m, Mode::WeltNoMask | Mode::WeltSplit))
        {
            let _ = write!(
                s,
                " {:>10.1} {:>10.2} |",
                r.ns_per_step(mode),
                r.ns_per_row_token(mode)
            );
        }
        let (w, p, fl, base) = (
            r.ns_per_row_token(Mode::Welt),
            r.ns_per_row_token(Mode::ReferencePort),
            r.ns_per_row_token(Mode::Floor),
            r.ns_per_row_token(Mode::FloorBaseline),
        );
        let mask = w - r.ns_per_row_token(Mode::WeltNoMask);
        let _ = writeln!(
            s,
            " {:>10.2} {:>10.2} {:>10.2} | {:>10.2} {:>10.2}",
            w / fl,
            p / w,
            w / base,
            mask,
            mask / fl
        );
    }
    let _ = writeln!(
        s,
        "\nfloor: every logit written with the widest stores this CPU has ({}); floor_baseline: \
         the same pass with the baseline x86-64 target's 16-byte stores.\nwelt's mask alone: welt \
         minus the same step without the mask (advance, stop flags, and the replay of sampled tokens \
         and restarts that stands in for the caller).",
        floor_stores()
    );
    s.push('\n');
    let waited = results
        .iter()
        .filter_map(|r| r.cpu_wait_fraction)
        .fold(0.0, f64::max);
    let others = results
        .iter()
        .filter_map(|r| r.other_cpu_fraction)
        .fold(0.0, f64::max);
    let busy = waited > BUSY_WAIT || others > BUSY_OTHERS;
    for v in verdicts(results, busy) {
        let _ = writeln!(s, "{v}");
    }
    if busy {
        let _ = writeln!(
            s,
            "WARNING: the machine was busy: other processes used up to {:.2} cores while blocks \
             ran, and this process waited for a CPU up to {:.0}% of the timed time.\nOther \
             processes inflate every number, and the floor most: it is bound by store bandwidth, \
             which a busy sibling thread of the core shares,\nso ratios to the floor look better \
             than they are. Rerun on an idle machine.",
            others,
            100.0 * waited
        );
    }
    if cfg!(debug_assertions) {
        let _ = writeln!(
            s,
            "(a debug build: these numbers mean little; use `cargo run --release -- bench`)"
        );
    }
    s
}

/// Runs the benchmark and prints the table, or one JSON object with `--json`.
pub fn run(o: &Options) -> Result<(), Box<dyn Error>> {
    let corpus = Corpus::standard()?;
    let rounds = o.rounds();
    let row_tokens = o.row_tokens_per_block();
    let results = BATCH_SIZES
        .iter()
        .map(|&b| measure(&corpus, b, row_tokens / b, rounds))
        .collect::<Result<Vec<_>, _>>()?;
    let text = if o.json {
        let doc = json!({
            "results": results.iter().map(result_json).collect::<Vec<_>>(),
            "machine": machine(),
            "rounds": rounds,
            // Row-tokens per timed block: B x steps_per_block, the same at every B.
            "steps": row_tokens,
            "corpus": {
                "words": corpus.len(),
                "bytes": corpus.bytes().len(),
                "multibyte_bytes": corpus.multibyte_bytes(),
                "stops": corpus.finishes().stops,
                "limit_finishes": corpus.finishes().limits,
                "seed": CORPUS_SEED,
            },
        });
        format!("{doc}\n")
    } else {
        table(&corpus, &results, rounds, row_tokens)
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `welt_runtime`'s `mask_row` was tuned for this bench: pin that it still writes `-inf`
    /// exactly where the mask forbids, for every state, every logit type, and a vocabulary
    /// whose last 64-token word is partial (300 tokens).
    #[test]
    fn mask_row_writes_exactly_the_forbidden_logits() {
        use half::{bf16, f16};
        use kernels_gen::{DecoderSpec, Token, Vocabulary};
        use welt_runtime::{Logit, Mask, Tables};

        fn check_type<L: Logit + PartialEq>(mask: Mask<'_>, v: usize, one: L) {
            let mut logits = vec![one; v];
            mask.apply(&mut logits).unwrap();
            for (t, x) in logits.iter().enumerate() {
                let kept = *x == one;
                assert!(kept || *x == L::NEG_INFINITY);
                assert_eq!(kept, mask.allows(t as u32), "token {t}");
            }
        }
        fn check_tables(tables: Tables<'_>) {
            let v = tables.vocab_size();
            for s in 0..tables.num_states() {
                let mask = tables.mask(s as u16);
                check_type(mask, v, 1.0f32);
                check_type(mask, v, 1.0f64);
                check_type(mask, v, f16::ONE);
                check_type(mask, v, bf16::ONE);
            }
        }

        check_tables(Utf8Words::TABLES);
        let mut tokens: Vec<Token> = (0..=255u8).map(|b| Token::Bytes(vec![b])).collect();
        for i in 0..44u8 {
            tokens.push(Token::Bytes(match i % 3 {
                0 => vec![b'a' + i % 26, b' '],
                1 => "\u{e9}".as_bytes().to_vec(),
                _ => vec![0xE4, 0xB8],
            }));
        }
        let vocab = Vocabulary::new("bench test: 300 tokens", tokens, Some(3), 0).unwrap();
        let blob = kernels_gen::generate(&DecoderSpec::new(vocab)).unwrap().to_blob();
        check_tables(Tables::from_bytes(&blob).unwrap());
    }

    #[test]
    fn measure_reports_every_mode() {
        let r = measure(&Corpus::generate(256, 3).unwrap(), 3, 64, 2).unwrap();
        assert_eq!(r.batch, 3);
        assert!(r.ns_per_step.iter().all(|x| x.is_finite() && *x > 0.0));
        let v = result_json(&r);
        assert_eq!(v["vocab"], 256);
        assert!(v["welt_over_floor"].as_f64().is_some());
    }
}
