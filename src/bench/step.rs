//! One decoding step of each mode over a replay of the corpus, and the check pass that
//! records the replay while holding welt to the reference port.

use std::error::Error;
use std::hint::black_box;

use crate::Utf8Words;
use welt_runtime::{Decoder, WordBatch};

use super::corpus::{Corpus, Finishes};
use super::floor::{floor_baseline_pass, floor_pass};
use super::reference_port::{ReferenceBatch, ReferenceError, VOCAB};
use crate::rng::SplitMix64;

/// Where each row is in the corpus. Row `r` visits the words in its own order (a start and
/// an odd stride: with a power-of-two corpus every row visits every word), so rows do not
/// replay each other's streams.
#[derive(Clone, Debug)]
struct Cursors {
    word: Vec<u32>,
    pos: Vec<u32>,
    stride: Vec<u32>,
}

impl Cursors {
    fn new(corpus: &Corpus, batch: usize) -> Cursors {
        let n = corpus.len().max(1) as u64;
        let mut rng = SplitMix64::new(0xC0FF_EE00 ^ batch as u64);
        let mut c = Cursors {
            word: Vec::with_capacity(batch),
            pos: Vec::with_capacity(batch),
            stride: Vec::with_capacity(batch),
        };
        for _ in 0..batch {
            let w = (rng.next_u64() % n) as u32;
            c.word.push(w);
            c.pos.push(corpus.starts[w as usize]);
            c.stride.push((rng.next_u64() % n) as u32 | 1);
        }
        c
    }

    /// The row finished: on to its next word.
    #[inline]
    fn next_word(&mut self, corpus: &Corpus, row: usize) {
        // `word < n` and `stride <= n`: one subtraction, not a division, keeps this out of
        // the measurement (a 64-bit `%` per finished word is a division on the timed path).
        let mut w = self.word[row] as usize + self.stride[row] as usize;
        if w >= corpus.len() {
            w -= corpus.len();
        }
        self.word[row] = w as u32;
        self.pos[row] = corpus.starts[w];
    }

    /// Writes each row's next token.
    #[inline]
    fn gather(&self, corpus: &Corpus, tokens: &mut [u32]) -> Result<(), Box<dyn Error>> {
        for (t, &p) in tokens.iter_mut().zip(&self.pos) {
            // A word always finishes by its last byte (the corpus is cut that way, and the
            // check pass proves both engines agree), so this never runs past the corpus.
            *t = u32::from(*corpus.bytes.get(p as usize).ok_or("a row ran past the corpus")?);
        }
        Ok(())
    }
}

/// What the driver needs of a batch: the API shared by `WordBatch` and `ReferenceBatch`.
trait Stepper {
    type Err: Error + 'static;
    fn apply_mask(&self, logits: &mut [f32]) -> Result<(), Self::Err>;
    fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, Self::Err>;
    /// Mask, sample (`sampled[row]`, written into `tokens`) and advance, the way a caller of
    /// this engine would run them: `apply_mask` and `advance` unless it has one call for all.
    #[inline]
    fn mask_choose_advance(
        &mut self,
        logits: &mut [f32],
        tokens: &mut [u32],
        sampled: &[u32],
    ) -> Result<(), Self::Err> {
        self.apply_mask(logits)?;
        tokens.copy_from_slice(sampled);
        self.advance(tokens)?;
        Ok(())
    }
    fn stopped(&self) -> &[bool];
    fn restart_finished(&mut self) -> usize;
    fn reset(&mut self);
}

impl Stepper for WordBatch<'_> {
    type Err = welt_runtime::Error;
    /// `WordBatch::step`: the mask, the choice and the advance in one call.
    #[inline]
    fn mask_choose_advance(
        &mut self,
        logits: &mut [f32],
        tokens: &mut [u32],
        sampled: &[u32],
    ) -> Result<(), Self::Err> {
        WordBatch::step(self, logits, tokens, |row, _| {
            sampled.get(row).copied().unwrap_or(u32::MAX)
        })?;
        Ok(())
    }
    #[inline]
    fn apply_mask(&self, logits: &mut [f32]) -> Result<(), Self::Err> {
        WordBatch::apply_mask(self, logits)
    }
    #[inline]
    fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, Self::Err> {
        WordBatch::advance(self, tokens)
    }
    #[inline]
    fn stopped(&self) -> &[bool] {
        WordBatch::stopped(self)
    }
    #[inline]
    fn restart_finished(&mut self) -> usize {
        WordBatch::restart_finished(self)
    }
    fn reset(&mut self) {
        WordBatch::reset(self)
    }
}

impl Stepper for ReferenceBatch {
    type Err = ReferenceError;
    #[inline]
    fn apply_mask(&self, logits: &mut [f32]) -> Result<(), Self::Err> {
        ReferenceBatch::apply_mask(self, logits)
    }
    #[inline]
    fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, Self::Err> {
        ReferenceBatch::advance(self, tokens)
    }
    #[inline]
    fn stopped(&self) -> &[bool] {
        ReferenceBatch::stopped(self)
    }
    #[inline]
    fn restart_finished(&mut self) -> usize {
        ReferenceBatch::restart_finished(self)
    }
    fn reset(&mut self) {
        ReferenceBatch::reset(self)
    }
}

/// A `WordBatch` driven the Hugging Face way: `apply_mask`, then the sampler, then `advance`.
struct Split<'a, 't>(&'a mut WordBatch<'t>);

impl Stepper for Split<'_, '_> {
    type Err = welt_runtime::Error;
    #[inline]
    fn apply_mask(&self, logits: &mut [f32]) -> Result<(), Self::Err> {
        self.0.apply_mask(logits)
    }
    #[inline]
    fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, Self::Err> {
        self.0.advance(tokens)
    }
    #[inline]
    fn stopped(&self) -> &[bool] {
        self.0.stopped()
    }
    #[inline]
    fn restart_finished(&mut self) -> usize {
        self.0.restart_finished()
    }
    fn reset(&mut self) {
        self.0.reset()
    }
}

/// A `WordBatch` whose mask does nothing: the rest of the step, timed alone.
struct NoMask<'a, 't>(&'a mut WordBatch<'t>);

impl Stepper for NoMask<'_, '_> {
    type Err = welt_runtime::Error;
    #[inline]
    fn apply_mask(&self, logits: &mut [f32]) -> Result<(), Self::Err> {
        black_box(logits);
        Ok(())
    }
    #[inline]
    fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, Self::Err> {
        self.0.advance(tokens)
    }
    #[inline]
    fn stopped(&self) -> &[bool] {
        self.0.stopped()
    }
    #[inline]
    fn restart_finished(&mut self) -> usize {
        self.0.restart_finished()
    }
    fn reset(&mut self) {
        self.0.reset()
    }
}

/// One decoding step as a caller would run it: mask, sample (here: the recorded token of
/// each row), advance, count the words that finished and start the next word in their rows.
#[inline]
fn step<S: Stepper>(
    s: &mut S,
    logits: &mut [f32],
    tokens: &mut [u32],
    sampled: &[u32],
    finishes: &mut Finishes,
) -> Result<(), Box<dyn Error>> {
    s.mask_choose_advance(logits, tokens, sampled)?;
    // Rows stop only in the step they finish (restarting clears the flag).
    let stops = s.stopped().iter().filter(|&&x| x).count();
    let finished = s.restart_finished();
    finishes.stops += stops as u64;
    finishes.limits += finished.saturating_sub(stops) as u64;
    Ok(())
}

/// `steps` steps of `s` over the replay from step `*next`, starting the words over at its end.
#[inline]
fn run_steps<S: Stepper>(
    s: &mut S,
    logits: &mut [f32],
    tokens: &mut [u32],
    replay: &Replay,
    next: &mut usize,
    steps: usize,
    finishes: &mut Finishes,
) -> Result<(), Box<dyn Error>> {
    for _ in 0..steps {
        if *next == replay.steps() {
            s.reset();
            *next = 0;
        }
        step(s, logits, tokens, replay.step(*next), finishes)?;
        *next += 1;
    }
    Ok(())
}

/// The tokens of the timed steps, recorded by [`check`] while it walked the corpus:
/// `tokens[s * batch..][..batch]` are step `s`'s tokens, one per row. Replaying them stands
/// in for the sampler; each row's tokens are its words one after the other, so a row that
/// finishes a word and is restarted goes straight on with its next one.
#[derive(Clone, Debug)]
pub struct Replay {
    batch: usize,
    tokens: Vec<u32>,
    finishes: Finishes,
}

impl Replay {
    /// Rows.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Steps recorded.
    pub fn steps(&self) -> usize {
        self.tokens.len() / self.batch.max(1)
    }
    /// How the words finished over all the steps.
    pub fn finishes(&self) -> Finishes {
        self.finishes
    }
    /// Step `s`'s tokens.
    fn step(&self, s: usize) -> &[u32] {
        self.tokens
            .get(s * self.batch..(s + 1) * self.batch)
            .unwrap_or_default()
    }
}

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `welt_runtime::WordBatch` with the generated tables, one `step` call per step.
    Welt,
    /// The Rust port of the reference algorithm.
    ReferencePort,
    /// One pass writing every logit of the batch, with the widest stores the CPU has.
    Floor,
    /// `Welt` without the mask: advance, stop and the caller's bookkeeping. `Welt` minus this
    /// is what the mask costs.
    WeltNoMask,
    /// The same pass with the baseline x86-64 target's 16-byte stores.
    FloorBaseline,
    /// `Welt` through `apply_mask` and `advance`, as Hugging Face's logits processors call it.
    WeltSplit,
}

impl Mode {
    /// Every mode, in report order.
    pub const ALL: [Mode; 6] = [
        Mode::Welt,
        Mode::ReferencePort,
        Mode::Floor,
        Mode::FloorBaseline,
        Mode::WeltNoMask,
        Mode::WeltSplit,
    ];

    /// Whether the mode runs words (the floors only write logits).
    pub fn finishes_words(self) -> bool {
        matches!(
            self,
            Mode::Welt | Mode::ReferencePort | Mode::WeltNoMask | Mode::WeltSplit
        )
    }

    /// The mode's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Welt => "welt",
            Mode::ReferencePort => "reference_port",
            Mode::Floor => "floor",
            Mode::FloorBaseline => "floor_baseline",
            Mode::WeltNoMask => "welt_no_mask",
            Mode::WeltSplit => "welt_split",
        }
    }
}

enum Engine {
    Welt(WordBatch<'static>),
    Reference(ReferenceBatch),
    Floor,
    FloorBaseline,
    WeltNoMask(WordBatch<'static>),
    WeltSplit(WordBatch<'static>),
}

/// One mode at one batch size, ready to run steps: its batch, its own `B x 256` logits and
/// the token buffer, over a [`Replay`]. Built (and [reset](Workload::reset)) outside the timed
/// region; [`Workload::run`] allocates nothing.
pub struct Workload<'r> {
    mode: Mode,
    replay: &'r Replay,
    engine: Engine,
    /// The logits are `logits[at..at + B * 256]`, where the buffer is 64-byte aligned.
    logits: Vec<f32>,
    at: usize,
    tokens: Vec<u32>,
    /// The next step of the replay.
    next: usize,
    finishes: Finishes,
}

impl<'r> Workload<'r> {
    /// A fresh workload for `replay`'s batch.
    pub fn new(mode: Mode, replay: &'r Replay) -> Result<Workload<'r>, Box<dyn Error>> {
        if replay.steps() == 0 {
            return Err("the replay has no step".into());
        }
        let batch = replay.batch();
        let mut w = Workload {
            mode,
            replay,
            engine: Engine::Floor,
            logits: vec![0.0; batch * VOCAB + 16],
            at: 0,
            tokens: vec![0; batch],
            next: 0,
            finishes: Finishes::default(),
        };
        w.reset()?;
        Ok(w)
    }

    /// Back to the first step: new empty words in every row, the logits refilled (the same
    /// values for every mode).
    pub fn reset(&mut self) -> Result<(), Box<dyn Error>> {
        let batch = self.tokens.len();
        self.engine = match self.mode {
            Mode::Welt => Engine::Welt(WordBatch::new(Utf8Words::TABLES, batch)?),
            Mode::ReferencePort => Engine::Reference(ReferenceBatch::new(batch)?),
            Mode::Floor => Engine::Floor,
            Mode::FloorBaseline => Engine::FloorBaseline,
            Mode::WeltNoMask => Engine::WeltNoMask(WordBatch::new(Utf8Words::TABLES, batch)?),
            Mode::WeltSplit => Engine::WeltSplit(WordBatch::new(Utf8Words::TABLES, batch)?),
        };
        // 64-byte aligned, as a framework's tensor buffers are (PyTorch aligns to 512 bytes):
        // with the 16-byte alignment the allocator happens to give, every 64-byte store of
        // the floor and of welt's mask straddles two cache lines, and how often that happens
        // would change from run to run with the addresses.
        self.at = self.logits.as_ptr().align_offset(64).min(16);
        let n = batch * VOCAB;
        for (i, x) in self.logits[self.at..self.at + n].iter_mut().enumerate() {
            *x = (i % 17) as f32 * 0.25 - 2.0;
        }
        self.next = 0;
        self.finishes = Finishes::default();
        Ok(())
    }

    /// Runs `steps` decoding steps. At the end of the replay the words start over from the
    /// first step (criterion runs as many steps as it likes).
    pub fn run(&mut self, steps: usize) -> Result<(), Box<dyn Error>> {
        let (replay, logits, tokens, finishes) = (
            self.replay,
            &mut self.logits[self.at..self.at + self.tokens.len() * VOCAB],
            &mut self.tokens[..],
            &mut self.finishes,
        );
        let mut next = self.next;
        // One match outside the loop: each mode's loop is monomorphic.
        let r = match &mut self.engine {
            Engine::Welt(b) => run_steps(b, logits, tokens, replay, &mut next, steps, finishes),
            Engine::Reference(b) => run_steps(b, logits, tokens, replay, &mut next, steps, finishes),
            Engine::WeltNoMask(b) => {
                let mut no_mask = NoMask(b);
                run_steps(&mut no_mask, logits, tokens, replay, &mut next, steps, finishes)
            }
            Engine::WeltSplit(b) => {
                let mut split = Split(b);
                run_steps(&mut split, logits, tokens, replay, &mut next, steps, finishes)
            }
            Engine::Floor => {
                for _ in 0..steps {
                    floor_pass(logits);
                    // The writes must happen: as far as the compiler knows, this reads them.
                    black_box(&mut *logits);
                }
                Ok(())
            }
            Engine::FloorBaseline => {
                for _ in 0..steps {
                    floor_baseline_pass(logits);
                    black_box(&mut *logits);
                }
                Ok(())
            }
        };
        self.next = next;
        r
    }

    /// The words finished since the last reset (always zero for the floors).
    pub fn finishes(&self) -> Finishes {
        self.finishes
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// Runs welt and the reference port side by side for `steps` steps from a fresh start, as
/// the timed blocks will: each token must be allowed by welt's mask — so by the reference's,
/// which allows a superset, checked too — and both must finish the same rows at the same
/// steps. Returns the words finished.
pub fn check(corpus: &Corpus, batch: usize, steps: usize) -> Result<Replay, Box<dyn Error>> {
    let mut welt = WordBatch::new(Utf8Words::TABLES, batch)?;
    let mut port = ReferenceBatch::new(batch)?;
    let mut cursors = Cursors::new(corpus, batch);
    let mut tokens = vec![0u32; batch];
    let mut port_tokens = vec![0u32; batch];
    let mut welt_logits = vec![0.0f32; batch * VOCAB];
    let mut port_logits = vec![0.0f32; batch * VOCAB];
    let mut finishes = Finishes::default();
    let mut recorded = Vec::with_capacity(steps * batch);
    for s in 0..steps {
        welt_logits.fill(0.0);
        port_logits.fill(0.0);
        welt.apply_mask(&mut welt_logits)?;
        port.apply_mask(&mut port_logits)?;
        cursors.gather(corpus, &mut tokens)?;
        for (row, &t) in tokens.iter().enumerate() {
            let at = row * VOCAB;
            let (w, p) = (&welt_logits[at..at + VOCAB], &port_logits[at..at + VOCAB]);
            if let Some(t) = (0..VOCAB).find(|&t| w[t].is_finite() && !p[t].is_finite()) {
                return Err(format!(
                    "B={batch} step {s} row {row}: welt allows byte {t:#04x} after {:?}, the reference does not",
                    port.word(row)
                )
                .into());
            }
            if !w[t as usize].is_finite() {
                return Err(format!(
                    "B={batch} step {s} row {row}: the corpus byte {t:#04x} after {:?} is masked by welt",
                    port.word(row)
                )
                .into());
            }
        }
        recorded.extend_from_slice(&tokens);
        port_tokens.copy_from_slice(&tokens);
        welt.advance(&mut tokens)?;
        port.advance(&mut port_tokens)?;
        for row in 0..batch {
            let (wf, pf) = (welt.finished()[row], port.finished()[row]);
            let (ws, ps) = (welt.stopped()[row], port.stopped()[row]);
            if (wf, ws) != (pf, ps) {
                return Err(format!(
                    "B={batch} step {s} row {row}: after {:?} welt says finished={wf} stopped={ws}, \
                     the reference port finished={pf} stopped={ps}",
                    port.word(row)
                )
                .into());
            }
            if wf {
                if ws {
                    finishes.stops += 1;
                } else {
                    finishes.limits += 1;
                }
                welt.reset_row(row)?;
                port.reset_row(row)?;
                cursors.next_word(corpus, row);
            } else {
                let end = corpus.starts[cursors.word[row] as usize + 1];
                cursors.pos[row] += 1;
                if cursors.pos[row] >= end {
                    return Err(format!(
                        "B={batch} step {s} row {row}: word {:?} ended without finishing",
                        port.word(row)
                    )
                    .into());
                }
            }
        }
    }
    Ok(Replay {
        batch,
        tokens: recorded,
        finishes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_passes_and_modes_agree() {
        let corpus = Corpus::generate(256, 1).unwrap();
        for b in [1, 3, 32] {
            let steps = 600 / b;
            let replay = check(&corpus, b, steps).unwrap();
            let expected = replay.finishes();
            assert!(expected.stops > 0);
            assert_eq!(replay.steps(), steps);
            for mode in [Mode::Welt, Mode::ReferencePort, Mode::WeltNoMask, Mode::WeltSplit] {
                let mut w = Workload::new(mode, &replay).unwrap();
                w.run(steps).unwrap();
                assert_eq!(w.finishes(), expected, "{mode:?} B={b}");
                w.reset().unwrap();
                w.run(steps).unwrap();
                assert_eq!(w.finishes(), expected, "{mode:?} B={b} after reset");
                // Past the end the words start over: twice the finishes after twice the steps.
                w.run(steps).unwrap();
                let twice = Finishes {
                    stops: 2 * expected.stops,
                    limits: 2 * expected.limits,
                };
                assert_eq!(w.finishes(), twice, "{mode:?} B={b} wrapped around");
            }
        }
    }

    #[test]
    fn check_fails_loudly_on_a_word_that_never_finishes() {
        let mut corpus = Corpus::generate(4, 1).unwrap();
        // "ab" and nothing else: neither engine finishes it before the next word's bytes.
        corpus.bytes = b"abababab".to_vec();
        corpus.starts = vec![0, 2, 4, 6, 8];
        let err = check(&corpus, 1, 4).unwrap_err().to_string();
        assert!(err.contains("ended without finishing"), "{err}");
    }
}
