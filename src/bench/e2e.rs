//! `welt bench --e2e`: the same word generation three ways in one run — welt's constraints,
//! the Rust port of the reference algorithm, and no constraint — with the default byte
//! decoder (random weights, the size of the Python baseline's model), B in {1, 3, 32}.
//!
//! As `bench_baseline.py` does, the model's output bias is -1e4 on every byte that could end a
//! word (ASCII whitespace and controls, EOS, and the lead bytes of the multi-byte spaces), so
//! every word runs to the length limit in every mode: the three modes do the same number of
//! model steps, and the difference is the constraint alone.

use std::error::Error;
use std::time::Instant;

use crate::Utf8Words;
use candle_core::Device;
use serde_json::json;
use welt_runtime::{Constraint, Decoder, GenerateError, Sampler, WordBatch, WordGenerator};

use super::reference_port::{ReferenceBatch, ReferenceError};
use crate::model::{ByteLlama, LlamaConfig};

/// Bytes biased to -1e4 so that no word stops early (the Python baseline's `STOP_PRONE`).
pub fn stop_prone_bias() -> Vec<f32> {
    let mut bias = vec![0f32; 256];
    for b in (0x01..=0x20).chain([0x7F, 0xC2, 0xE1, 0xE2, 0xE3]) {
        bias[b] = -1e4;
    }
    bias
}

impl From<ReferenceError> for GenerateError {
    fn from(e: ReferenceError) -> GenerateError {
        GenerateError::Constraint(Box::new(e))
    }
}

impl Constraint for ReferenceBatch {
    type Error = ReferenceError;
    fn batch_size(&self) -> usize {
        ReferenceBatch::batch_size(self)
    }
    fn reset(&mut self) {
        ReferenceBatch::reset(self)
    }
    fn set_prefix(&mut self, prefix: &[u32]) -> Result<(), ReferenceError> {
        // The reference has no notion of a valid prefix: it just sees the bytes.
        for &t in prefix {
            let mut tokens = vec![t; ReferenceBatch::batch_size(self)];
            ReferenceBatch::advance(self, &mut tokens)?;
        }
        Ok(())
    }
    fn mask_f32(&self, logits: &mut [f32]) -> Result<(), ReferenceError> {
        self.apply_mask(logits)
    }
    fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, ReferenceError> {
        ReferenceBatch::advance(self, tokens)
    }
    fn stopped(&self) -> &[bool] {
        ReferenceBatch::stopped(self)
    }
    fn finished(&self) -> &[bool] {
        ReferenceBatch::finished(self)
    }
}

/// No constraint: only the word length limit, as `generate` with neither hook.
#[derive(Debug, Clone)]
pub struct Unconstrained {
    len: Vec<u32>,
    finished: Vec<bool>,
    stopped: Vec<bool>,
    max_len: u32,
    pad: u32,
}

impl Unconstrained {
    /// `batch` rows, `max_len` tokens per word.
    pub fn new(batch: usize, max_len: u32, pad: u32) -> Unconstrained {
        Unconstrained {
            len: vec![0; batch],
            finished: vec![false; batch],
            stopped: vec![false; batch],
            max_len,
            pad,
        }
    }
}

impl Constraint for Unconstrained {
    type Error = welt_runtime::Error;
    fn batch_size(&self) -> usize {
        self.len.len()
    }
    fn reset(&mut self) {
        self.len.fill(0);
        self.finished.fill(false);
    }
    fn set_prefix(&mut self, prefix: &[u32]) -> Result<(), welt_runtime::Error> {
        self.len.fill(prefix.len() as u32);
        Ok(())
    }
    fn mask_f32(&self, _: &mut [f32]) -> Result<(), welt_runtime::Error> {
        Ok(())
    }
    fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, welt_runtime::Error> {
        let mut running = 0;
        for (row, tok) in tokens.iter_mut().enumerate() {
            if self.finished[row] {
                *tok = self.pad;
                continue;
            }
            self.len[row] += 1;
            self.finished[row] = self.len[row] >= self.max_len;
            running += usize::from(!self.finished[row]);
        }
        Ok(running)
    }
    fn stopped(&self) -> &[bool] {
        &self.stopped
    }
    fn finished(&self) -> &[bool] {
        &self.finished
    }
}

/// Options of `welt bench --e2e`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Print one JSON object instead of the table.
    pub json: bool,
    /// Fewer words (smoke runs).
    pub quick: bool,
}

struct Sample {
    ms_per_word: Vec<f64>,
    us_per_step: Vec<f64>,
    share: Vec<f64>,
    words_per_s: Vec<f64>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the benchmark.
pub fn run(opts: &Options) -> Result<(), Box<dyn Error>> {
    // One model thread, as the Python baseline's CPU numbers (`--threads 1`): with two threads
    // on two shared cores the step time wobbles by a few percent, far more than the
    // constraint's share, and the paired ratios would measure the machine, not the constraint.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .map_err(|e| format!("thread pool: {e}"))?;
    let device = Device::Cpu;
    let model = || -> Result<ByteLlama, Box<dyn Error>> {
        let mut m = ByteLlama::random(LlamaConfig::welt_default(), 0, &device)?;
        m.set_logit_bias(&stop_prone_bias())?;
        Ok(m)
    };
    let max_len = u32::from(Utf8Words::TABLES.max_word_len());
    let mut results = Vec::new();
    let mut sample_counts = Vec::new();
    // One model for the three modes, so that they differ in the constraint alone (separate
    // copies of the weights measurably differ in speed through memory placement).
    let mut model = model()?;
    for batch in [1usize, 3, 32] {
        let mut welt_c = WordBatch::new(Utf8Words::TABLES, batch)?;
        let mut ref_c = ReferenceBatch::with_max_word_len(batch, max_len)?;
        let mut none_c = Unconstrained::new(batch, max_len, 0);
        // About a second and a half per mode and batch size; fewer with --quick.
        let calls = if opts.quick {
            3
        } else {
            (1500 / (14 + 2 * batch)).max(40)
        };
        let mut samples: Vec<Sample> = (0..3)
            .map(|_| Sample {
                ms_per_word: vec![],
                us_per_step: vec![],
                share: vec![],
                words_per_s: vec![],
            })
            .collect();
        for call in 0..=calls {
            // Interleaved call by call, in a rotating order, so that the machine's noise and
            // any effect of going first or last fall on every mode alike. Call 0 warms up.
            for k in 0..3 {
                let m = (call + k) % 3;
                let t = Instant::now();
                let stats = match m {
                    0 => one_call(&mut model, &mut welt_c)?,
                    1 => one_call(&mut model, &mut ref_c)?,
                    _ => one_call(&mut model, &mut none_c)?,
                };
                let elapsed = t.elapsed().as_secs_f64();
                if call == 0 {
                    continue;
                }
                let sample = &mut samples[m];
                // Positions run: every `next` plus the `start`.
                let steps = stats.steps as f64 + 1.0;
                // A call generates one word in each of the B rows: ms per word is its latency.
                sample.ms_per_word.push(elapsed * 1e3);
                sample.words_per_s.push(batch as f64 / elapsed);
                sample.us_per_step.push(elapsed * 1e6 / steps);
                sample.share.push(if m == 2 {
                    0.0
                } else {
                    stats.constraint.as_secs_f64() / elapsed
                });
            }
        }
        sample_counts.push(calls);
        // Paired: call c of a mode against call c of "none", run next to it in time.
        let none_ms = samples[2].ms_per_word.clone();
        for (m, name) in ["welt", "reference_port", "none"].iter().enumerate() {
            let s = &mut samples[m];
            let mut paired: Vec<f64> = none_ms.iter().zip(&s.ms_per_word).map(|(n, t)| n / t).collect();
            results.push(json!({
                "words_per_s_vs_none": median(&mut paired),
                "batch": batch,
                "mode": name,
                "ms_per_word": median(&mut s.ms_per_word),
                "us_per_step": median(&mut s.us_per_step),
                "constraint_share": median(&mut s.share),
                "words_per_s": median(&mut s.words_per_s),
                "calls": calls,
            }));
        }
    }
    if opts.json {
        println!(
            "{}",
            json!({ "results": results, "max_word_len": max_len, "model": "random-weight byte Llama, vocab 256, hidden 256, intermediate 1024, 4 layers, 4 heads", "device": "cpu", "sampling": "greedy" })
        );
        return Ok(());
    }
    println!(
        "end to end, default byte decoder (random weights, vocab 256, hidden 256, 4 layers), CPU, greedy,"
    );
    println!(
        "every word {max_len} bytes (stop-prone bytes biased away, as bench_baseline.py does); medians of {:?} calls per mode,",
        sample_counts
    );
    println!("modes interleaved call by call, in rotating order\n");
    println!(
        "{:>5} {:>15} {:>12} {:>12} {:>17} {:>14}",
        "B", "mode", "ms/word", "µs/step", "constraint share", "words/s vs none"
    );
    println!("{:>78}", "(paired median)");
    for chunk in results.chunks(3) {
        for r in chunk {
            let ms = r["ms_per_word"].as_f64().unwrap_or(f64::NAN);
            let vs_none = r["words_per_s_vs_none"].as_f64().unwrap_or(f64::NAN);
            println!(
                "{:>5} {:>15} {:>12.3} {:>12.1} {:>16.3}% {:>13.1}%",
                r["batch"].as_u64().unwrap_or(0),
                r["mode"].as_str().unwrap_or(""),
                ms,
                r["us_per_step"].as_f64().unwrap_or(f64::NAN),
                100.0 * r["constraint_share"].as_f64().unwrap_or(f64::NAN),
                100.0 * vs_none
            );
        }
    }
    Ok(())
}

/// One `generate` call with `model` under `constraint` (the generator around them is a few small
/// buffers, made outside the timed calls' hot loop).
fn one_call<C: Constraint>(
    model: &mut ByteLlama,
    constraint: &mut C,
) -> Result<welt_runtime::GenerationStats, GenerateError> {
    let mut g = WordGenerator::with_constraint(model, Borrowed(constraint), 256, 0, Sampler::GREEDY)?;
    g.generate(None, &[])?;
    Ok(g.stats())
}

/// A borrowed constraint, so that it keeps its buffers from call to call.
struct Borrowed<'a, C>(&'a mut C);

impl<C: Constraint> Constraint for Borrowed<'_, C> {
    type Error = C::Error;
    fn batch_size(&self) -> usize {
        self.0.batch_size()
    }
    fn reset(&mut self) {
        self.0.reset()
    }
    fn set_prefix(&mut self, prefix: &[u32]) -> Result<(), C::Error> {
        self.0.set_prefix(prefix)
    }
    fn mask_f32(&self, logits: &mut [f32]) -> Result<(), C::Error> {
        self.0.mask_f32(logits)
    }
    fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, C::Error> {
        self.0.advance(tokens)
    }
    fn stopped(&self) -> &[bool] {
        self.0.stopped()
    }
    fn finished(&self) -> &[bool] {
        self.0.finished()
    }
}
