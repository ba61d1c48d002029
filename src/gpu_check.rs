//! `welt gpu-check`: the one prepared command for a GPU machine (feature `cuda`).
//!
//! Correctness — the device against the CPU tables, on fresh random logits, for the default
//! decoder (V = 256) and synthetic byte-level BPE decoders of 32k and 128k tokens, batch sizes
//! 1, 3, 32 and 1024, and f32, f16 and bf16:
//! - `advance`: after every step, the device's states, lengths and flags equal a CPU
//!   [`WordBatch`] fed the same tokens;
//! - `mask`: the masked logits equal the CPU's, element for element;
//! - fused greedy `step`: with the next-token buffer poisoned first, every row's token equals
//!   the CPU argmax of its masked logits (PAD for finished rows), and the state after it equals
//!   the CPU's;
//! - sampling: two batches with the same history and seed choose the same tokens, all allowed;
//! - sampling where `logit / T` leaves f32: the fused step chooses exactly what
//!   [`Sampler::choose`] does (the largest unscaled logit).
//!
//! Timing — CUDA events, warm-up, medians of single launches: mask, advance, the fused step,
//! the fused step replayed from a CUDA graph, and device-to-device copy bandwidth beside the
//! mask's for the large vocabulary. Prints a table; writes JSON to `--json FILE` or `$OUT`.
//!
//! No host synchronization happens inside a step: `step` only enqueues one kernel, the
//! tokens it writes stay on the device, and the host reads nothing until `running()`.

use std::time::Instant;

use crate::Utf8Words;
use half::{bf16, f16};
use serde_json::json;
use welt_runtime::cuda::{CudaDecoder, CudaError, DeviceBatch, DeviceLogit};
use welt_runtime::{Decoder, OwnedTables, Sampler, Tables, WordBatch};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Options of `welt gpu-check`.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Fewer sizes and repetitions (for compute-sanitizer).
    pub quick: bool,
    /// Where to write the JSON report (default: `$OUT/gpu_check.json` when `$OUT` is set).
    pub json: Option<std::path::PathBuf>,
}

/// The bench's generator, with the two draws the checks need.
struct Rng(crate::rng::SplitMix64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(crate::rng::SplitMix64::new(seed))
    }
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
    /// A logit in [-4, 4).
    fn logit(&mut self) -> f32 {
        (self.0.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0
    }
}

trait Elem: DeviceLogit + Copy + PartialEq + std::fmt::Debug {
    fn from_f32(x: f32) -> Self;
}
impl Elem for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }
}
impl Elem for f16 {
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
}
impl Elem for bf16 {
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
}

/// A decoder under test: its tables and CUDA source.
struct Subject {
    name: String,
    tables: OwnedTables,
    source: String,
}

fn subjects(quick: bool) -> Result<Vec<Subject>> {
    let mut out = vec![Subject {
        name: "utf8".into(),
        tables: Utf8Words::TABLES.into(),
        source: Utf8Words::CUDA_SOURCE.into(),
    }];
    for v in if quick {
        vec![131_072]
    } else {
        vec![32_768, 131_072]
    } {
        let json = kernels_gen::synthetic::byte_level_bpe_json(v, 11);
        let vocab =
            kernels_gen::tokenizer::load_str(&format!("synthetic-{v}.json"), &json, &Default::default())?;
        let tables = kernels_gen::generate(&kernels_gen::DecoderSpec::new(vocab))?;
        out.push(Subject {
            name: format!("bpe-{}k", v / 1024),
            tables: OwnedTables::from_bytes(tables.to_blob())?,
            source: kernels_gen::emit::cuda::source(&tables),
        });
    }
    Ok(out)
}

/// CPU argmax over the masked row, lowest id on ties, skipping NaN and -inf.
fn cpu_argmax(row: &[f32]) -> Option<u32> {
    let mut best: Option<(f32, u32)> = None;
    for (t, &x) in row.iter().enumerate() {
        if x.is_nan() || x == f32::NEG_INFINITY {
            continue;
        }
        // The device orders by IEEE total order (so -0 < +0), keeping the lowest id on ties.
        if best.is_none_or(|(b, _)| x.total_cmp(&b) == std::cmp::Ordering::Greater) {
            best = Some((x, t as u32));
        }
    }
    best.map(|(_, t)| t)
}

fn check<E: Elem>(dec: &CudaDecoder, t: &Tables<'_>, batch: usize, rng: &mut Rng) -> Result<()> {
    let v = t.vocab_size();
    let stream = dec.stream();
    let mut cpu = WordBatch::new(*t, batch)?;
    let mut gpu = DeviceBatch::new(dec, batch)?;
    let steps = 1 + rng.below(usize::from(t.max_word_len()) + 2);
    for step in 0..steps {
        // Fresh logits; the CPU and the device see the same values (rounded to E).
        let host: Vec<E> = (0..batch * v).map(|_| E::from_f32(rng.logit())).collect();
        let mut dev = stream.clone_htod(&host)?;
        // mask
        let mut cpu_masked = host.clone();
        cpu.apply_mask(&mut cpu_masked)?;
        gpu.mask(&mut dev, v)?;
        let got = stream.clone_dtoh(&dev)?;
        if got != cpu_masked {
            let i = got.iter().zip(&cpu_masked).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!("mask differs at row {} token {} (step {step})", i / v, i % v).into());
        }
        // fused greedy step on unmasked logits, next tokens poisoned first
        let dev = stream.clone_htod(&host)?;
        gpu.fill_next_tokens(u32::MAX)?;
        gpu.step(&dev, v, &Sampler::GREEDY)?;
        gpu.check_error()?;
        let state = gpu.download()?;
        let before_finished = cpu.finished().to_vec();
        let mut tokens: Vec<u32> = (0..batch)
            .map(|r| {
                let row: Vec<f32> = cpu_masked[r * v..(r + 1) * v]
                    .iter()
                    .map(|x| x.to_f32())
                    .collect();
                cpu_argmax(&row).unwrap_or(t.pad())
            })
            .collect();
        for r in 0..batch {
            let want = if before_finished[r] { t.pad() } else { tokens[r] };
            if state.next_tokens[r] != want {
                return Err(format!(
                    "step {step} row {r}: device chose {}, CPU {want}",
                    state.next_tokens[r]
                )
                .into());
            }
        }
        cpu.advance(&mut tokens)?;
        let flags: Vec<u8> = (0..batch)
            .map(|r| u8::from(cpu.stopped()[r]) | (u8::from(cpu.finished()[r]) << 1))
            .collect();
        let lengths: Vec<u16> = cpu.lengths().iter().map(|&l| l as u16).collect();
        if state.states != cpu.states() || state.lengths != lengths || state.flags != flags {
            return Err(
                format!("step {step}: device state differs from the CPU's after the fused step").into(),
            );
        }
        if state.running as usize != cpu.running() {
            return Err(format!(
                "step {step}: running {} on the device, {} on the CPU",
                state.running,
                cpu.running()
            )
            .into());
        }
        if cpu.is_done() {
            break;
        }
    }
    Ok(())
}

/// Checks `advance` alone and sampling; returns (rows where the device drew the CPU sampler's
/// token, rows sampled).
fn check_advance_and_sampling(
    dec: &CudaDecoder,
    t: &Tables<'_>,
    batch: usize,
    rng: &mut Rng,
) -> Result<(usize, usize)> {
    let v = t.vocab_size();
    let stream = dec.stream();
    // advance alone, with random allowed tokens
    let mut cpu = WordBatch::new(*t, batch)?;
    let mut gpu = DeviceBatch::new(dec, batch)?;
    while !cpu.is_done() {
        let mut tokens: Vec<u32> = (0..batch)
            .map(|r| {
                let m: Vec<u32> = cpu.mask(r).map(|m| m.iter().collect()).unwrap_or_default();
                if m.is_empty() {
                    t.pad()
                } else {
                    m[rng.below(m.len())]
                }
            })
            .collect();
        let dev_tokens = stream.clone_htod(&tokens)?;
        gpu.advance(&dev_tokens)?;
        cpu.advance(&mut tokens)?;
        gpu.check_error()?;
        let s = gpu.download()?;
        if s.states != cpu.states() || s.next_tokens != tokens {
            return Err("advance: device state or next tokens differ from the CPU's".into());
        }
    }
    // Sampling: reproducible with a seed, only allowed tokens, and the same draws as the CPU
    // sampler (which runs the kernel's algorithm; see welt_runtime::Sampler).
    let sampler = Sampler {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.9,
        seed: 1234,
    };
    let host: Vec<f32> = (0..batch * v).map(|_| rng.logit()).collect();
    let dev = stream.clone_htod(&host)?;
    let mut a = DeviceBatch::new(dec, batch)?;
    let mut b = DeviceBatch::new(dec, batch)?;
    let mut cpu = WordBatch::new(*t, batch)?;
    let (mut agree, mut total) = (0usize, 0usize);
    for draw in 0..4u32 {
        let was_finished = cpu.finished().to_vec();
        a.step(&dev, v, &sampler)?;
        b.step(&dev, v, &sampler)?;
        a.check_error()?;
        b.check_error()?;
        let (sa, sb) = (a.download()?, b.download()?);
        if sa != sb {
            return Err("sampling with the same seed and history gave different tokens".into());
        }
        let mut masked = host.clone();
        cpu.apply_mask(&mut masked)?;
        for r in 0..batch {
            if was_finished[r] {
                continue;
            }
            let tok = sa.next_tokens[r];
            if !cpu.mask(r)?.allows(tok) {
                return Err(format!("sampling chose forbidden token {tok} in row {r}").into());
            }
            total += 1;
            agree += usize::from(sampler.choose(&masked[r * v..(r + 1) * v], r as u32, draw)? == Some(tok));
        }
        let mut tokens = sa.next_tokens.clone();
        cpu.advance(&mut tokens)?;
    }
    Ok((agree, total))
}

/// Where `logit / T` leaves f32 (the largest scaled logit is `+inf`, or every one is `-inf`),
/// the fused step must choose exactly as [`Sampler::choose`]: the largest unscaled logit. One
/// row per case, from the start state, its logits the case's values repeated over the row.
fn check_overflowing_scale(dec: &CudaDecoder, t: &Tables<'_>) -> Result<()> {
    let v = t.vocab_size();
    let stream = dec.stream();
    let cases: [(f32, &[f32]); 5] = [
        (1e-10, &[1e30, 2e30, -1.0]),
        (1e-10, &[2e30, 1e30]),
        (0.5, &[-3.3e38, -3e38]),
        (2e-38, &[5.0, 7.0, 6.0]),
        (1.0, &[f32::INFINITY, 0.0, f32::INFINITY]),
    ];
    for (temperature, pattern) in cases {
        for (top_k, top_p) in [(0, 1.0), (40, 0.9)] {
            let sampler = Sampler {
                temperature,
                top_k,
                top_p,
                seed: 99,
            };
            let host: Vec<f32> = (0..v).map(|i| pattern[i % pattern.len()]).collect();
            let mut masked = host.clone();
            WordBatch::new(*t, 1)?.apply_mask(&mut masked)?;
            let want = sampler.choose(&masked, 0, 0)?.unwrap_or(t.pad());
            let mut gpu = DeviceBatch::new(dec, 1)?;
            gpu.fill_next_tokens(u32::MAX)?;
            gpu.step(&stream.clone_htod(&host)?, v, &sampler)?;
            gpu.check_error()?;
            let got = gpu.download()?.next_tokens[0];
            if got != want {
                return Err(format!(
                    "T = {temperature:e}, top-k {top_k}, top-p {top_p}, logits {pattern:?}...: device chose \
                     {got}, the CPU sampler {want}"
                )
                .into());
            }
        }
    }
    Ok(())
}

/// Median of `reps` timings (µs) of `f`, measured with CUDA events around each call.
fn time_us(
    dec: &CudaDecoder,
    reps: usize,
    mut f: impl FnMut() -> std::result::Result<(), CudaError>,
) -> Result<f64> {
    let ctx = dec.stream().context();
    let start = ctx.new_event(Some(
        welt_runtime::cuda::cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT,
    ))?;
    let end = ctx.new_event(Some(
        welt_runtime::cuda::cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT,
    ))?;
    for _ in 0..20 {
        f()?;
    }
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        start.record(dec.stream())?;
        f()?;
        end.record(dec.stream())?;
        end.synchronize()?;
        times.push(f64::from(start.elapsed_ms(&end)?) * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Timings for one decoder and batch size. The logits favour `a` by a wide margin and the
/// word length limit is raised, so every row keeps running (`a` never completes a word) and each
/// timed launch does the full work of a running row.
fn timings(dec: &CudaDecoder, t: &Tables<'_>, batch: usize, reps: usize) -> Result<serde_json::Value> {
    let v = t.vocab_size();
    let stream = dec.stream();
    let mut rng = Rng::new(99);
    let a = usize::from(b'a');
    let host: Vec<f32> = (0..batch * v)
        .map(|i| rng.logit() + if i % v == a { 20.0 } else { 0.0 })
        .collect();
    let mut logits = stream.clone_htod(&host)?;
    let tokens = stream.clone_htod(&vec![a as u32; batch])?;
    let mut gb = DeviceBatch::new(dec, batch)?;
    gb.set_max_word_len(u32::from(u16::MAX))?;
    let step = time_us(dec, reps, || gb.step(&logits, v, &Sampler::GREEDY))?;
    let advance = time_us(dec, reps, || gb.advance(&tokens))?;
    let sampled = time_us(dec, reps, || {
        gb.step(
            &logits,
            v,
            &Sampler {
                temperature: 0.8,
                top_k: 40,
                top_p: 0.9,
                seed: 7,
            },
        )
    })?;
    let graph = gb.capture_step(&logits, v, &Sampler::GREEDY)?;
    let step_graph = time_us(dec, reps, || graph.launch())?;
    let running = gb.running()?;
    if running as usize != batch {
        return Err(format!("timing rows finished early ({running} of {batch} running)").into());
    }
    let mask = time_us(dec, reps, || gb.mask(&mut logits, v))?;
    // The time to copy the same logits once, device to device.
    let mut copy = stream.alloc_zeros::<f32>(batch * v)?;
    let copy_us = time_us(dec, reps, || {
        stream.memcpy_dtod(&logits, &mut copy).map_err(CudaError::from)
    })?;
    let bytes = (batch * v * 4) as f64;
    Ok(json!({
        "vocab": v, "batch": batch,
        "mask_us": mask, "advance_us": advance, "step_us": step, "step_graph_us": step_graph,
        "step_sampled_us": sampled,
        "copy_us": copy_us,
        "copy_gb_per_s": 2.0 * bytes / copy_us / 1e3,
        "mask_vs_copy_time": copy_us / mask,
    }))
}

/// Runs the check; returns an error describing the first mismatch.
pub fn run(opts: &Options) -> Result<()> {
    let t0 = Instant::now();
    let subjects = subjects(opts.quick)?;
    let batches: &[usize] = if opts.quick { &[1, 32] } else { &[1, 3, 32, 1024] };
    let (mut agree, mut sampled) = (0usize, 0usize);
    for s in &subjects {
        let t = s.tables.as_tables();
        let dec = CudaDecoder::from_parts(t, &s.source, None, 0)?;
        let mut rng = Rng::new(0x5EED ^ t.vocab_size() as u64);
        for &b in batches {
            check::<f32>(&dec, &t, b, &mut rng).map_err(|e| format!("{} B={b} f32: {e}", s.name))?;
            check::<f16>(&dec, &t, b, &mut rng).map_err(|e| format!("{} B={b} f16: {e}", s.name))?;
            check::<bf16>(&dec, &t, b, &mut rng).map_err(|e| format!("{} B={b} bf16: {e}", s.name))?;
            let (a, n) = check_advance_and_sampling(&dec, &t, b, &mut rng)
                .map_err(|e| format!("{} B={b} advance/sampling: {e}", s.name))?;
            if b == batches[0] {
                check_overflowing_scale(&dec, &t)
                    .map_err(|e| format!("{} overflowing scale: {e}", s.name))?;
            }
            agree += a;
            sampled += n;
            println!(
                "ok  {:<9} B={b:<5} f32 f16 bf16: mask, advance, fused greedy step, seeded sampling",
                s.name
            );
        }
    }
    // Sums in another order and a fast exp on the device: a draw that lands within rounding of
    // a boundary may pick the neighbour. More than 1% disagreement is a bug, not rounding.
    let agreement = agree as f64 / sampled.max(1) as f64;
    println!(
        "sampling: the device drew the CPU sampler's token in {agree} of {sampled} rows ({:.2} %)",
        100.0 * agreement
    );
    if agreement < 0.99 {
        return Err(format!(
            "device sampling agrees with the CPU sampler in only {:.2} % of rows",
            100.0 * agreement
        )
        .into());
    }
    let reps = if opts.quick { 20 } else { 500 };
    let utf8_tables = subjects[0].tables.as_tables();
    let utf8 = CudaDecoder::from_parts(utf8_tables, &subjects[0].source, None, 0)?;
    let mut rows = Vec::new();
    for b in if opts.quick {
        vec![1, 64]
    } else {
        vec![1, 3, 32, 64, 1024]
    } {
        rows.push(timings(&utf8, &utf8_tables, b, reps)?);
    }
    let big = subjects.last().expect("a large decoder");
    let big_dec = CudaDecoder::from_parts(big.tables.as_tables(), &big.source, None, 0)?;
    rows.push(timings(&big_dec, &big.tables.as_tables(), 64, reps)?);

    println!(
        "\n{:>7} {:>5} {:>9} {:>10} {:>9} {:>11} {:>11} {:>9} {:>10}",
        "vocab", "B", "mask µs", "advance µs", "step µs", "graph µs", "sampled µs", "copy µs", "mask/copy"
    );
    for r in &rows {
        println!(
            "{:>7} {:>5} {:>9.2} {:>10.2} {:>9.2} {:>11.2} {:>11.2} {:>9.2} {:>10.2}",
            r["vocab"],
            r["batch"],
            r["mask_us"].as_f64().unwrap_or(f64::NAN),
            r["advance_us"].as_f64().unwrap_or(f64::NAN),
            r["step_us"].as_f64().unwrap_or(f64::NAN),
            r["step_graph_us"].as_f64().unwrap_or(f64::NAN),
            r["step_sampled_us"].as_f64().unwrap_or(f64::NAN),
            r["copy_us"].as_f64().unwrap_or(f64::NAN),
            r["mask_vs_copy_time"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let out = json!({
        "passed": true,
        "seconds": t0.elapsed().as_secs_f64(),
        "sampling_agreement": agreement,
        "timings": rows,
    });
    let path = opts
        .json
        .clone()
        .or_else(|| std::env::var_os("OUT").map(|o| std::path::PathBuf::from(o).join("gpu_check.json")));
    if let Some(p) = path {
        std::fs::write(&p, serde_json::to_string_pretty(&out)?)?;
        println!("wrote {}", p.display());
    }
    println!("gpu-check passed in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
