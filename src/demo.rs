//! `welt demo`: generates words for a text prompt with a byte decoder, the way WeLT does — one
//! word at a time, each word's decoder started from a conditioning vector and BOS, every byte
//! masked to stay valid UTF-8 and every row stopped when its word is complete.
//!
//! WeLT's word-level latent model is not part of welt: as a stand-in, each word is conditioned
//! on the mean byte embedding of the text so far (prompt and words generated). With the
//! default model (random weights from a fixed seed) the words are noise; with `--model DIR` (a
//! Hugging Face Llama checkpoint of a byte-level decoder) they are that model's.

use std::error::Error;
use std::io::Write;
use std::time::Instant;

use crate::Utf8Words;
use candle_core::{DType, Device, Tensor};
use welt_runtime::{Decoder, Sampler, WordGenerator};

use crate::model::{ByteLlama, LlamaConfig};

/// Options of `welt demo`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The prompt's bytes (checked: valid UTF-8, not empty).
    pub prompt: Vec<u8>,
    /// Words to generate per row.
    pub words: usize,
    /// Rows generated side by side.
    pub batch: usize,
    /// A local checkpoint (`config.json` + `model.safetensors`); default: random weights.
    pub model: Option<std::path::PathBuf>,
    /// Seed of the random weights and of sampling.
    pub seed: u64,
    /// How tokens are chosen.
    pub sampler: Sampler,
    /// The most bytes the model's buffers (KV cache, rotary tables, a step's intermediate
    /// tensors) and the rows' texts may take; more is refused before anything is allocated.
    pub max_memory: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prompt: b"The quick brown fox".to_vec(),
            words: 32,
            batch: 1,
            model: None,
            seed: 0,
            sampler: Sampler {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                seed: 0,
            },
            max_memory: ByteLlama::DEFAULT_MEMORY_LIMIT,
        }
    }
}

/// Checks the prompt: not empty, valid UTF-8, not ending inside a character.
pub fn check_prompt(prompt: &[u8]) -> Result<&str, String> {
    if prompt.is_empty() {
        return Err("the prompt is empty".into());
    }
    match std::str::from_utf8(prompt) {
        Ok(s) => Ok(s),
        Err(e) if e.error_len().is_none() => Err(format!(
            "the prompt ends inside a UTF-8 character (byte {} starts an incomplete sequence)",
            e.valid_up_to()
        )),
        Err(e) => Err(format!(
            "the prompt is not valid UTF-8 (invalid byte at {})",
            e.valid_up_to()
        )),
    }
}

/// The conditioning vector of each row: the mean embedding of its text's bytes, kept as a
/// running sum so that a word costs its own bytes, not the whole text again.
struct Condition {
    /// The embedding rows of the 256 bytes.
    embed: Vec<Vec<f32>>,
    sums: Vec<Vec<f64>>,
    lens: Vec<usize>,
}

impl Condition {
    fn new(embed: &Tensor, prompt: &[u8], rows: usize) -> candle_core::Result<Self> {
        let embed = embed.narrow(0, 0, 256)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        let mut c = Condition {
            sums: vec![vec![0.0; embed[0].len()]],
            lens: vec![0],
            embed,
        };
        c.add(0, prompt);
        c.sums = vec![c.sums[0].clone(); rows];
        c.lens = vec![c.lens[0]; rows];
        Ok(c)
    }

    fn add(&mut self, row: usize, bytes: &[u8]) {
        for &b in bytes {
            for (s, &e) in self.sums[row].iter_mut().zip(&self.embed[usize::from(b)]) {
                *s += f64::from(e);
            }
        }
        self.lens[row] += bytes.len();
    }

    /// `[rows, hidden]`, f32.
    fn tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        let hidden = self.sums[0].len();
        let data: Vec<f32> = self
            .sums
            .iter()
            .zip(&self.lens)
            .flat_map(|(sum, &n)| sum.iter().map(move |s| (s / n as f64) as f32))
            .collect();
        Tensor::from_vec(data, (self.sums.len(), hidden), device)
    }
}

/// Runs the demo, printing words as they come, then a summary.
pub fn run(opts: &Options) -> Result<(), Box<dyn Error>> {
    let prompt = check_prompt(&opts.prompt)?;
    if opts.batch == 0 || opts.words == 0 {
        return Err("--batch and --words must be at least 1".into());
    }
    let total_words = opts
        .words
        .checked_mul(opts.batch)
        .ok_or("--words times --batch does not fit a usize")?;
    let max_len = usize::from(Utf8Words::TABLES.max_word_len());
    // The texts of all rows are printed at the end (one row prints as it goes).
    if opts.batch > 1 {
        let needed = (opts.words as u128 * max_len as u128 + prompt.len() as u128) * opts.batch as u128;
        if needed > u128::from(opts.max_memory) {
            return Err(format!(
                "{} rows of up to {} bytes (the prompt and {} words of up to {max_len} bytes) would need \
                 {needed} bytes, more than --max-memory {}",
                opts.batch,
                needed / opts.batch as u128,
                opts.words,
                opts.max_memory
            )
            .into());
        }
    }
    let device = Device::Cpu;
    let t0 = Instant::now();
    let mut model = match &opts.model {
        Some(dir) => ByteLlama::load(dir, &device)?,
        None => ByteLlama::random(LlamaConfig::welt_default(), opts.seed, &device)?,
    };
    model.set_memory_limit(opts.max_memory);
    // A word's sequence: the condition, BOS, and one position per byte but the last.
    let positions = 2 + max_len;
    let max_positions = model.config().max_position_embeddings;
    if max_positions < positions {
        return Err(format!(
            "the model's max_position_embeddings is {max_positions}, a word needs {positions} positions \
             (condition, BOS, {max_len} bytes)"
        )
        .into());
    }
    model.check_memory(opts.batch, positions)?;
    let embed = model
        .tensors()?
        .into_iter()
        .find_map(|(name, t)| (name == "model.embed_tokens.weight").then_some(t))
        .ok_or("the model has no token embedding")?;
    let loaded = t0.elapsed();
    let mut gen = WordGenerator::new(model, Utf8Words::TABLES, opts.batch, opts.sampler)?;
    let mut condition = Condition::new(&embed, prompt.as_bytes(), opts.batch)?;
    eprintln!(
        "welt demo: {} words x {} row(s), {}, max {max_len} bytes per word, model ready in {:.0} ms",
        opts.words,
        opts.batch,
        match &opts.model {
            Some(d) => format!("model {}", d.display()),
            None => format!("random-weight byte Llama (seed {})", opts.seed),
        },
        loaded.as_secs_f64() * 1e3
    );
    let mut texts: Vec<Vec<u8>> = match opts.batch {
        1 => Vec::new(),
        _ => vec![prompt.as_bytes().to_vec(); opts.batch],
    };
    let (mut by_rule, mut by_limit, mut valid) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    let mut out = std::io::stdout().lock();
    if opts.batch == 1 {
        write!(out, "{prompt}")?;
        if !prompt.ends_with(char::is_whitespace) {
            write!(out, " ")?;
        }
    }
    for i in 0..opts.words {
        let cond = condition.tensor(&device)?;
        let words = gen.generate(Some(&cond), &[])?;
        for (row, w) in words.iter().enumerate() {
            let bytes = w.bytes()?;
            // Check what the summary claims, independently of the automaton: a valid UTF-8
            // prefix, and "stopped" means the rule (or EOS) holds for the decoded text.
            let ok = match std::str::from_utf8(&bytes) {
                Ok(_) => true,
                Err(e) => e.error_len().is_none() && !w.stopped,
            };
            valid += usize::from(ok);
            if w.stopped {
                by_rule += 1;
            } else {
                by_limit += 1;
            }
            condition.add(row, &bytes);
            if let Some(text) = texts.get_mut(row) {
                text.extend_from_slice(&bytes);
            }
            if opts.batch == 1 {
                write!(out, "{}", w.text()?)?;
                if !w.stopped {
                    write!(out, "\u{2026} ")?; // cut by the length limit
                }
                out.flush()?;
            }
        }
        if opts.batch > 1 && (i + 1) % 100 == 0 {
            eprintln!("  {} of {} words per row", i + 1, opts.words);
        }
    }
    if opts.batch == 1 {
        writeln!(out)?;
    } else {
        for (row, t) in texts.iter().enumerate() {
            writeln!(out, "[{row}] {}", String::from_utf8_lossy(t))?;
        }
    }
    let elapsed = started.elapsed();
    let s = gen.stats();
    eprintln!("\nsummary");
    eprintln!(
        "  words:            {total_words} ({} row(s) x {})",
        opts.batch, opts.words
    );
    eprintln!("  decoding steps:   {}", s.steps);
    eprintln!("  model time:       {:.1} ms", s.model.as_secs_f64() * 1e3);
    eprintln!(
        "  constraint time:  {:.3} ms ({:.3} % of generation; mask + advance + stop)",
        s.constraint.as_secs_f64() * 1e3,
        100.0 * s.constraint_share()
    );
    eprintln!("  choosing tokens:  {:.1} ms", s.choose.as_secs_f64() * 1e3);
    eprintln!(
        "  words per second: {:.0}",
        total_words as f64 / elapsed.as_secs_f64()
    );
    eprintln!(
        "  {valid} of {total_words} words are valid UTF-8; {by_rule} ended by the word rule or EOS, {by_limit} at the \
         {max_len}-byte limit"
    );
    if valid != total_words {
        return Err(format!("{} words were not valid UTF-8", total_words - valid).into());
    }
    Ok(())
}
