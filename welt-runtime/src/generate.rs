//! Word-by-word generation with a byte decoder model (feature `candle`).
//!
//! WeLT writes a word at a time: for each word a small decoder is started (BOS, after an
//! optional conditioning vector such as the word's latent), then run one position per step,
//! each row stopping when its word is complete. [`WordGenerator`] is that loop for B rows:
//!
//! ```text
//! logits = model.start(B, condition)
//! loop: mask(logits) -> choose a token per row -> advance (stop flags, length limit, PAD)
//!       -> until every row is done -> logits = model.next(tokens)
//! ```
//!
//! The mask runs where the logits live, as a candle in-place op ([`crate::MaskOp`]); on the CPU the
//! tokens are chosen straight from the tensor's storage, so nothing is copied or allocated per
//! step beyond what the model itself allocates.

use std::time::{Duration, Instant};

use candle_core::{CpuStorage, Storage, Tensor};

use crate::mask_op::ConstraintMask;
use crate::{Error, ErrorKind, Sampler, Tables, WordBatch};

/// A byte decoder that [`WordGenerator`] can drive: logits for the next position of each
/// row, with its own KV cache.
pub trait WordModel {
    /// The model's vocabulary size (must equal the decoder tables').
    fn vocab_size(&self) -> usize;

    /// Starts new words for `batch` rows: clears the KV cache and feeds the start input —
    /// per row the conditioning vector (if any: `[batch, hidden]`, e.g. WeLT's word latent)
    /// then the BOS embedding — and returns the logits for the first generated position,
    /// `[batch, vocab]` (f32).
    fn start(&mut self, batch: usize, condition: Option<&Tensor>) -> candle_core::Result<Tensor>;

    /// Feeds one token per row and returns the logits for the next position, `[batch, vocab]`.
    fn next(&mut self, tokens: &[u32]) -> candle_core::Result<Tensor>;
}

/// A borrowed model drives generation too (e.g. one model shared by several generators in
/// turn).
impl<M: WordModel + ?Sized> WordModel for &mut M {
    fn vocab_size(&self) -> usize {
        (**self).vocab_size()
    }
    fn start(&mut self, batch: usize, condition: Option<&Tensor>) -> candle_core::Result<Tensor> {
        (**self).start(batch, condition)
    }
    fn next(&mut self, tokens: &[u32]) -> candle_core::Result<Tensor> {
        (**self).next(tokens)
    }
}

/// What constrains the words: masks the logits before a token is chosen, and advances rows.
/// [`WordBatch`] is welt's; the benchmark plugs in the reference algorithm and "no constraint"
/// through the same loop.
pub trait Constraint {
    /// What its methods fail with.
    type Error: Into<GenerateError>;
    /// Number of rows.
    fn batch_size(&self) -> usize;
    /// Starts new, empty words in every row.
    fn reset(&mut self);
    /// Starts every row as a continuation of `prefix`.
    fn set_prefix(&mut self, prefix: &[u32]) -> Result<(), Self::Error>;
    /// Masks `[B x V]` logits in place (rows contiguous).
    fn mask_f32(&self, logits: &mut [f32]) -> Result<(), Self::Error>;
    /// Advances every row (PAD for finished rows); returns the rows still running.
    fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, Self::Error>;
    /// Per row: the word is complete.
    fn stopped(&self) -> &[bool];
    /// Per row: stopped or at the length limit.
    fn finished(&self) -> &[bool];
}

impl Constraint for WordBatch<'_> {
    type Error = Error;
    fn batch_size(&self) -> usize {
        WordBatch::batch_size(self)
    }
    fn reset(&mut self) {
        WordBatch::reset(self)
    }
    fn set_prefix(&mut self, prefix: &[u32]) -> Result<(), Error> {
        // Validate once, so that an invalid prefix changes nothing.
        crate::sequence::walk_prefix(self.tables(), prefix, self.max_word_len())?;
        for row in 0..WordBatch::batch_size(self) {
            WordBatch::set_prefix(self, row, prefix)?;
        }
        Ok(())
    }
    fn mask_f32(&self, logits: &mut [f32]) -> Result<(), Error> {
        self.apply_mask(logits)
    }
    fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, Error> {
        WordBatch::advance(self, tokens)
    }
    fn stopped(&self) -> &[bool] {
        WordBatch::stopped(self)
    }
    fn finished(&self) -> &[bool] {
        WordBatch::finished(self)
    }
}

/// One generated word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The tokens generated for the word (the prefix not included).
    pub tokens: Vec<u32>,
    /// Whether the word is complete by the rule or EOS (else it hit the length limit).
    pub stopped: bool,
}

impl Word {
    /// The word as bytes, for a byte decoder (token id = byte value); ids above 255 are an
    /// `Err`.
    pub fn bytes(&self) -> Result<Vec<u8>, Error> {
        self.tokens
            .iter()
            .enumerate()
            .map(|(at, &t)| {
                u8::try_from(t).map_err(|_| {
                    Error::new(ErrorKind::TokenOutOfRange {
                        token: t,
                        vocab: 256,
                        at,
                    })
                })
            })
            .collect()
    }
    /// The word as text, decoded as the reference decodes (`errors="ignore"`). welt only
    /// generates valid UTF-8 prefixes, so the only bytes this can drop are a character cut
    /// off by the word length limit at the end.
    pub fn text(&self) -> Result<String, Error> {
        let bytes = self.bytes()?;
        let valid = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(e) => e.valid_up_to(),
        };
        Ok(String::from_utf8_lossy(&bytes[..valid]).into_owned())
    }
}

/// Where the time of [`WordGenerator::generate`] went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Decoding steps (model calls after `start`).
    pub steps: u64,
    /// Words generated (rows x calls).
    pub words: u64,
    /// In the model (`start` and `next`).
    pub model: Duration,
    /// In the constraint: mask and advance (what the Python hooks did).
    pub constraint: Duration,
    /// Choosing tokens from the masked logits.
    pub choose: Duration,
}

impl GenerationStats {
    /// Total time.
    pub fn total(&self) -> Duration {
        self.model + self.constraint + self.choose
    }
    /// The constraint's share of the total time.
    pub fn constraint_share(&self) -> f64 {
        let t = self.total().as_secs_f64();
        if t == 0.0 {
            0.0
        } else {
            self.constraint.as_secs_f64() / t
        }
    }
}

/// An error of [`WordGenerator`]: the constraint's or the model's.
#[derive(Debug)]
pub enum GenerateError {
    /// Bad input to the constraint (vocabulary mismatch, prefix, ...).
    Welt(Error),
    /// The model failed.
    Model(candle_core::Error),
    /// Another constraint failed (e.g. the benchmark's reference port).
    Constraint(Box<dyn std::error::Error + Send + Sync>),
}

impl std::fmt::Display for GenerateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GenerateError::Welt(e) => write!(f, "{e}"),
            GenerateError::Model(e) => write!(f, "model: {e}"),
            GenerateError::Constraint(e) => write!(f, "constraint: {e}"),
        }
    }
}
impl std::error::Error for GenerateError {}
impl From<Error> for GenerateError {
    fn from(e: Error) -> Self {
        GenerateError::Welt(e)
    }
}
impl From<candle_core::Error> for GenerateError {
    fn from(e: candle_core::Error) -> Self {
        GenerateError::Model(e)
    }
}

/// Generates one word per row with a [`WordModel`] under a [`Constraint`].
pub struct WordGenerator<M: WordModel, C: Constraint> {
    model: M,
    constraint: C,
    vocab: usize,
    sampler: Sampler,
    pad: u32,
    tokens: Vec<u32>,
    draws: Vec<u32>,
    running_before: Vec<bool>,
    words: Vec<Word>,
    stats: GenerationStats,
}

impl<'t, M: WordModel> WordGenerator<M, WordBatch<'t>> {
    /// B rows with welt's constraint from `tables` (whose vocabulary must be the model's).
    pub fn new(model: M, tables: Tables<'t>, batch: usize, sampler: Sampler) -> Result<Self, Error> {
        let constraint = WordBatch::new(tables, batch)?;
        WordGenerator::with_constraint(model, constraint, tables.vocab_size(), tables.pad(), sampler)
    }
}

impl<M: WordModel, C: Constraint> WordGenerator<M, C> {
    /// A generator with any constraint over a `vocab`-token vocabulary; finished rows feed
    /// `pad` to the model. `Err` if the model's vocabulary is not `vocab`, or for an invalid
    /// sampler ([`Sampler::check`]).
    pub fn with_constraint(
        model: M,
        constraint: C,
        vocab: usize,
        pad: u32,
        sampler: Sampler,
    ) -> Result<Self, Error> {
        if model.vocab_size() != vocab {
            return Err(Error::new(ErrorKind::VocabMismatch {
                decoder: vocab,
                model: model.vocab_size(),
            }));
        }
        sampler.check()?;
        let b = constraint.batch_size();
        Ok(WordGenerator {
            model,
            constraint,
            vocab,
            sampler,
            pad,
            tokens: vec![0; b],
            draws: vec![0; b],
            running_before: vec![false; b],
            words: (0..b)
                .map(|_| Word {
                    tokens: Vec::with_capacity(64),
                    stopped: false,
                })
                .collect(),
            stats: GenerationStats::default(),
        })
    }

    /// The model.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }
    /// The constraint.
    pub fn constraint(&self) -> &C {
        &self.constraint
    }
    /// The constraint, to change its settings (e.g. the word length limit).
    pub fn constraint_mut(&mut self) -> &mut C {
        &mut self.constraint
    }
    /// Time spent so far, by part.
    pub fn stats(&self) -> GenerationStats {
        self.stats
    }
    /// Sets how tokens are chosen (the per-row draw counters go on). `Err` for an invalid
    /// sampler ([`Sampler::check`]), with nothing changed.
    pub fn set_sampler(&mut self, sampler: Sampler) -> Result<(), Error> {
        sampler.check()?;
        self.sampler = sampler;
        Ok(())
    }

    /// Generates one word in every row: starts the model (with `condition`, `[B, hidden]`, if
    /// any), feeds `prefix` (a partial word every row continues; may end inside a
    /// character), then masks, chooses and advances until every row has finished. Returns
    /// the words (without the prefix), valid until the next call.
    pub fn generate(&mut self, condition: Option<&Tensor>, prefix: &[u32]) -> Result<&[Word], GenerateError> {
        let b = self.constraint.batch_size();
        let t = Instant::now();
        self.constraint.reset();
        self.constraint.set_prefix(prefix).map_err(Into::into)?;
        self.stats.constraint += t.elapsed();
        for w in &mut self.words {
            w.tokens.clear();
            w.stopped = false;
        }
        let t = Instant::now();
        let mut logits = self.model.start(b, condition)?;
        for &tok in prefix {
            self.tokens.fill(tok);
            logits = self.model.next(&self.tokens)?;
        }
        self.stats.model += t.elapsed();
        loop {
            let t0 = Instant::now();
            // The mask runs where the logits are, as a candle op (an `Err` off the CPU).
            logits.inplace_op1(&ConstraintMask(&self.constraint))?;
            let t1 = Instant::now();
            self.choose(&logits)?;
            let t2 = Instant::now();
            for (r, &f) in self.running_before.iter_mut().zip(self.constraint.finished()) {
                *r = !f;
            }
            let running = self.constraint.advance(&mut self.tokens).map_err(Into::into)?;
            let t3 = Instant::now();
            self.stats.constraint += (t1 - t0) + (t3 - t2);
            self.stats.choose += t2 - t1;
            for ((w, &r), &tok) in self.words.iter_mut().zip(&self.running_before).zip(&self.tokens) {
                if r {
                    w.tokens.push(tok);
                }
            }
            if running == 0 {
                break;
            }
            let t = Instant::now();
            logits = self.model.next(&self.tokens)?;
            self.stats.model += t.elapsed();
            self.stats.steps += 1;
        }
        for (w, &s) in self.words.iter_mut().zip(self.constraint.stopped()) {
            w.stopped = s;
        }
        self.stats.words += b as u64;
        Ok(&self.words)
    }

    fn choose(&mut self, logits: &Tensor) -> Result<(), GenerateError> {
        let (storage, layout) = logits.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
            return Err(GenerateError::Model(candle_core::Error::Msg(
                "WordGenerator needs f32 CPU logits".into(),
            )));
        };
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("the logits must be contiguous".into()))?;
        let v = &v[start..end];
        let finished = self.constraint.finished();
        for (row, tok) in self.tokens.iter_mut().enumerate() {
            if finished[row] {
                *tok = self.pad;
                continue;
            }
            let row_logits = &v[row * self.vocab..(row + 1) * self.vocab];
            *tok = self
                .sampler
                .choose(row_logits, row as u32, self.draws[row])?
                .ok_or_else(|| {
                    candle_core::Error::Msg(format!("row {row}: no allowed token has a finite logit"))
                })?;
            // Each sampled token uses one draw of the row's random stream (greedy uses none).
            if !self.sampler.is_greedy() {
                self.draws[row] = self.draws[row].wrapping_add(1);
            }
        }
        Ok(())
    }
}
