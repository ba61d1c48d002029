//! `welt bench`: the CPU cost of one decoding step — mask the logits, advance every row by
//! its token, read the stop flags, restart the rows that finished — for batches of 1, 3, 32
//! and 256 rows over WeLT's 256-byte vocabulary with `f32` logits.
//!
//! Three modes run the same step on the same token streams, interleaved in every round:
//!
//! - `welt`: [`welt_runtime::WordBatch`] with the generated `Utf8Words` tables;
//! - `reference_port`: [`reference_port::ReferenceBatch`], the reference algorithm
//!   ported to Rust (tail scan for the mask, decode the whole word for the stop flag);
//! - `floor`: one pass writing every logit of the batch and nothing else — the least any
//!   mask applied by writing into the logits can cost — with the widest stores the CPU has
//!   (AVX-512, else AVX2), as welt's mask uses AVX-512 masked stores where it can;
//! - `floor_baseline`: the same pass as the compiler writes it for the baseline x86-64
//!   target (16-byte SSE2 stores). Reported for comparison with numbers measured before
//!   welt's mask used wider stores; the targets are judged against `floor`;
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
use std::hint::black_box;
use std::time::Instant;

use serde_json::json;
use welt_runtime::{Decoder, Sequence, Utf8Words, WordBatch};

pub mod e2e;
pub mod large;
pub mod reference_port;

use reference_port::{ReferenceBatch, ReferenceError, EOS, VOCAB};

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

/// The SplitMix64 generator (Steele, Lea and Flood): tiny and good enough to draw a corpus;
/// written here so that the bench needs no `rand` and its corpus never changes under us.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 for `n == 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % u64::from(n.max(1))) as u32
    }

    /// A number in `lo..=hi` (`lo <= hi`).
    pub fn between(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }

    /// One of `items`, drawn with the given weights.
    fn weighted<T: Copy>(&mut self, items: &[(u32, T)]) -> T {
        let total: u32 = items.iter().map(|(w, _)| w).sum();
        let mut x = self.below(total);
        for &(w, item) in items {
            if x < w {
                return item;
            }
            x -= w;
        }
        items[items.len() - 1].1
    }
}

/// How words finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Finishes {
    /// Words that stopped: the rule matched, or EOS.
    pub stops: u64,
    /// Words cut by the word length limit.
    pub limits: u64,
}

/// The words the rows replay: one byte string per word, each a sequence welt can generate
/// that finishes exactly at its last byte (it stops there, or reaches the length limit).
#[derive(Clone, Debug)]
pub struct Corpus {
    bytes: Vec<u8>,
    /// Word `i` is `bytes[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    finishes: Finishes,
    multibyte: usize,
}

#[derive(Clone, Copy)]
enum Script {
    Ascii,
    Latin,
    Greek,
    Cyrillic,
    Arabic,
    Cjk,
    Emoji,
    Numeric,
}

#[derive(Clone, Copy)]
enum Shape {
    /// A word and one whitespace character: stops on the whitespace.
    Spaced,
    /// A word and EOS.
    Eos,
    /// A word longer than the limit.
    Long,
    /// Whitespace first: never stops by the rule, so it ends by EOS or the limit.
    Leading,
    /// A word with a zero width space (not whitespace) inside, then a space.
    ZeroWidth,
}

const ACCENTED: &[char] = &[
    'é', 'è', 'ê', 'à', 'á', 'â', 'ü', 'ö', 'ä', 'ñ', 'ç', 'ß', 'ø', 'å', 'í', 'ó', 'ú', 'ł', 'ő', 'š', 'ž',
];
const LETTERS: &[u8] = b"etaoinshrdlucmfwypvbgkjqxzetaoinshrdlu";
const NUMERIC: &[&str] = &[
    "2024",
    "3,14",
    "42",
    "(a)",
    "\u{2014}",
    "\u{ab}oui\u{bb}",
    "1.5%",
    "#7",
    "\u{20ac}9",
];

/// Whitespace that ends a word, by weight: mostly U+0020, then newlines, tabs and the
/// multi-byte spaces a multilingual model produces.
const SPACES: &[(u32, char)] = &[
    (55, ' '),
    (10, '\n'),
    (4, '\t'),
    (3, '\r'),
    (8, '\u{A0}'),
    (6, '\u{3000}'),
    (5, '\u{2009}'),
    (3, '\u{202F}'),
    (2, '\u{2003}'),
    (2, '\u{85}'),
    (2, '\u{2028}'),
];

fn push_range(rng: &mut SplitMix64, out: &mut String, lo: u32, hi: u32, n: u32) {
    for _ in 0..n {
        // Every range used here is free of surrogates, so `from_u32` never says no.
        out.extend(char::from_u32(rng.between(lo, hi)));
    }
}

fn letter(rng: &mut SplitMix64) -> char {
    char::from(LETTERS[rng.below(LETTERS.len() as u32) as usize])
}

fn push_body(rng: &mut SplitMix64, out: &mut String, script: Script, long: bool) {
    // A long word is about three times longer: past the 16-byte limit for most scripts.
    let scale = if long { 3 } else { 1 };
    let extra = u32::from(long);
    match script {
        Script::Ascii => {
            for i in 0..rng.between(1, 9) * scale {
                let c = letter(rng);
                out.push(if i == 0 && rng.below(5) == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                });
            }
        }
        Script::Latin => {
            for _ in 0..rng.between(2, 8) * scale {
                if rng.below(4) == 0 {
                    out.push(ACCENTED[rng.below(ACCENTED.len() as u32) as usize]);
                } else {
                    out.push(letter(rng));
                }
            }
        }
        Script::Greek => {
            let n = rng.between(2, 7) * scale;
            push_range(rng, out, 0x3AC, 0x3C9, n);
        }
        Script::Cyrillic => {
            let n = rng.between(2, 8) * scale;
            push_range(rng, out, 0x430, 0x44F, n);
        }
        Script::Arabic => {
            let n = rng.between(2, 6) * scale;
            push_range(rng, out, 0x627, 0x64A, n);
        }
        Script::Cjk => {
            let n = rng.between(1, 4) * scale + extra;
            push_range(rng, out, 0x4E00, 0x9FFF, n);
        }
        Script::Emoji => match rng.below(4) {
            // A ZWJ sequence: woman, ZWJ, laptop.
            0 => out.push_str("\u{1F469}\u{200D}\u{1F4BB}"),
            1 => {
                push_range(rng, out, 0x1F300, 0x1F64F, 1);
                out.push('\u{FE0F}');
            }
            _ => {
                let n = rng.between(1, 2) * scale + extra;
                push_range(rng, out, 0x1F300, 0x1F64F, n);
            }
        },
        Script::Numeric => {
            for _ in 0..scale {
                out.push_str(NUMERIC[rng.below(NUMERIC.len() as u32) as usize]);
            }
        }
    }
}

fn draw_word(rng: &mut SplitMix64, out: &mut String) {
    let script = rng.weighted(&[
        (38, Script::Ascii),
        (15, Script::Latin),
        (8, Script::Greek),
        (10, Script::Cyrillic),
        (7, Script::Arabic),
        (12, Script::Cjk),
        (5, Script::Emoji),
        (5, Script::Numeric),
    ]);
    let shape = rng.weighted(&[
        (66, Shape::Spaced),
        (14, Shape::Eos),
        (10, Shape::Long),
        (8, Shape::Leading),
        (2, Shape::ZeroWidth),
    ]);
    match shape {
        Shape::Spaced => {
            push_body(rng, out, script, false);
            out.push(rng.weighted(SPACES));
            if rng.below(8) == 0 {
                // "ab\r\n", "ab  ": the row stops at the first space and the rest is dropped.
                out.push(rng.weighted(SPACES));
            }
        }
        Shape::Eos => {
            push_body(rng, out, script, false);
            out.push(char::from(EOS));
        }
        Shape::Long => push_body(rng, out, script, true),
        Shape::Leading => {
            out.push(rng.weighted(SPACES));
            push_body(rng, out, script, false);
            out.push(rng.weighted(SPACES));
        }
        Shape::ZeroWidth => {
            push_body(rng, out, script, false);
            out.push('\u{200B}');
            out.push(' ');
        }
    }
}

impl Corpus {
    /// `words` words drawn from `seed`, each cut where welt finishes it — at its stop or at
    /// the word length limit — or given an EOS if it would not finish (a word that begins
    /// with whitespace). `Err` if welt refuses a byte, which would be a bug here or there.
    pub fn generate(words: usize, seed: u64) -> Result<Corpus, Box<dyn Error>> {
        let tables = Utf8Words::TABLES;
        let max_len = usize::from(tables.max_word_len());
        let mut rng = SplitMix64::new(seed);
        let mut corpus = Corpus {
            bytes: Vec::new(),
            starts: vec![0],
            finishes: Finishes::default(),
            multibyte: 0,
        };
        let mut text = String::new();
        for _ in 0..words.max(1) {
            text.clear();
            draw_word(&mut rng, &mut text);
            let start = corpus.bytes.len();
            let mut seq = Sequence::new(tables);
            let mut stopped = false;
            for &b in text.as_bytes().iter().chain(std::iter::once(&EOS)) {
                stopped = seq
                    .step(u32::from(b))
                    .map_err(|e| format!("corpus word {text:?}: welt refuses byte {b:#04x}: {e}"))?;
                corpus.bytes.push(b);
                if stopped || seq.len() >= max_len {
                    break;
                }
            }
            if stopped {
                corpus.finishes.stops += 1;
            } else {
                corpus.finishes.limits += 1;
            }
            corpus.multibyte += corpus.bytes[start..].iter().filter(|&&b| b >= 0x80).count();
            let end = u32::try_from(corpus.bytes.len()).map_err(|_| "corpus too large")?;
            corpus.starts.push(end);
        }
        Ok(corpus)
    }

    /// The corpus `welt bench` measures.
    pub fn standard() -> Result<Corpus, Box<dyn Error>> {
        Corpus::generate(CORPUS_WORDS, CORPUS_SEED)
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }
    /// Whether there is no word (never, for a generated corpus).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Word `i`'s bytes (empty past the end).
    pub fn word(&self, i: usize) -> &[u8] {
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.bytes[a as usize..b as usize],
            _ => &[],
        }
    }
    /// All bytes, word after word.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// How the words finish.
    pub fn finishes(&self) -> Finishes {
        self.finishes
    }
    /// Bytes that belong to multi-byte characters.
    pub fn multibyte_bytes(&self) -> usize {
        self.multibyte
    }
}

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
        // the measurement (a 64-bit `%` per finished word costs ~1 ns per row-token).
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
    fn stopped(&self) -> &[bool];
    fn restart_finished(&mut self) -> usize;
    fn reset(&mut self);
}

impl Stepper for WordBatch<'_> {
    type Err = welt_runtime::Error;
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
    s.apply_mask(logits)?;
    tokens.copy_from_slice(sampled);
    s.advance(tokens)?;
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
    /// `welt_runtime::WordBatch` with the generated tables.
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
}

impl Mode {
    /// Every mode, in report order.
    pub const ALL: [Mode; 5] = [
        Mode::Welt,
        Mode::ReferencePort,
        Mode::Floor,
        Mode::FloorBaseline,
        Mode::WeltNoMask,
    ];

    /// Whether the mode runs words (the floors only write logits).
    pub fn finishes_words(self) -> bool {
        matches!(self, Mode::Welt | Mode::ReferencePort | Mode::WeltNoMask)
    }

    /// The mode's name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Welt => "welt",
            Mode::ReferencePort => "reference_port",
            Mode::Floor => "floor",
            Mode::FloorBaseline => "floor_baseline",
            Mode::WeltNoMask => "welt_no_mask",
        }
    }
}

enum Engine {
    Welt(WordBatch<'static>),
    Reference(ReferenceBatch),
    Floor,
    FloorBaseline,
    WeltNoMask(WordBatch<'static>),
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

/// The floor's one pass: `-inf` into every logit with the widest stores this CPU has —
/// 64-byte AVX-512 stores, else 32-byte AVX2 stores (detected at run time, once per pass,
/// as welt's mask detects AVX-512), else [`floor_baseline_pass`].
///
/// A floor must be the least a pass over the logits can cost on the machine at hand: welt's
/// mask writes with AVX-512 masked stores, so a floor held to 16-byte stores would flatter
/// welt (measured on the bench machine, B = 32: 10.8 ns per 256-logit row with 16-byte
/// stores, 5.4 with 64-byte ones).
#[inline(never)]
pub fn floor_pass(logits: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return wide::avx512(logits);
        }
        if std::arch::is_x86_feature_detected!("avx") {
            return wide::avx(logits);
        }
    }
    floor_baseline_pass(logits)
}

/// The stores [`floor_pass`] uses on this CPU, for the report.
pub fn floor_stores() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "64-byte AVX-512 stores";
        }
        if std::arch::is_x86_feature_detected!("avx") {
            return "32-byte AVX stores";
        }
    }
    "the baseline target's stores"
}

/// The floor's pass as the compiler writes it for the baseline target: `-inf` into every
/// logit, 64 at a time through a `[f32; 64]` (sixteen 16-byte stores per chunk on x86-64).
///
/// Why not `logits.fill(..)`: that compiles to a tiny loop of two 16-byte stores whose speed
/// depends on where the linker happens to place it. Measured on the bench machine, the same
/// machine code ran at 11 ns per 256-logit row when the loop sat inside one 32-byte block of
/// code and at 22 ns when it straddled two (the front end, not the stores, was the limit).
/// The unrolled chunk makes the stores the limit wherever the code lands.
#[inline(never)]
pub fn floor_baseline_pass(logits: &mut [f32]) {
    let mut chunks = logits.chunks_exact_mut(64);
    for chunk in &mut chunks {
        if let Ok(chunk) = <&mut [f32; 64]>::try_from(chunk) {
            *chunk = [f32::NEG_INFINITY; 64];
        }
    }
    chunks.into_remainder().fill(f32::NEG_INFINITY);
}

/// The floor's wide stores. (Left to itself the compiler turns a `[f32; 64]` assignment in
/// an AVX-512 function into scatter stores, 16x slower; hence the intrinsics.)
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod wide {
    use std::arch::x86_64::*;

    pub(super) fn avx512(logits: &mut [f32]) {
        assert!(std::arch::is_x86_feature_detected!("avx512f"));
        // SAFETY: the CPU has AVX-512F (asserted above).
        unsafe { avx512_pass(logits) }
    }

    pub(super) fn avx(logits: &mut [f32]) {
        assert!(std::arch::is_x86_feature_detected!("avx"));
        // SAFETY: the CPU has AVX (asserted above).
        unsafe { avx_pass(logits) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_pass(logits: &mut [f32]) {
        let neg = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut chunks = logits.chunks_exact_mut(64);
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr();
            // SAFETY: the chunk holds 64 f32: four stores of 16 lanes at 0, 16, 32, 48.
            unsafe {
                _mm512_storeu_ps(p, neg);
                _mm512_storeu_ps(p.add(16), neg);
                _mm512_storeu_ps(p.add(32), neg);
                _mm512_storeu_ps(p.add(48), neg);
            }
        }
        chunks.into_remainder().fill(f32::NEG_INFINITY);
    }

    #[target_feature(enable = "avx")]
    unsafe fn avx_pass(logits: &mut [f32]) {
        let neg = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut chunks = logits.chunks_exact_mut(64);
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr();
            for i in 0..8 {
                // SAFETY: the chunk holds 64 f32: eight stores of 8 lanes at 8i, i < 8.
                unsafe { _mm256_storeu_ps(p.add(8 * i), neg) };
            }
        }
        chunks.into_remainder().fill(f32::NEG_INFINITY);
    }

    #[cfg(test)]
    mod tests {
        /// Each wide pass this CPU can run writes `-inf` into every logit and nothing past
        /// the slice, for lengths around every chunk boundary.
        #[test]
        fn wide_floors_write_every_logit_and_nothing_else() {
            type Pass = fn(&mut [f32]);
            let passes: [(&str, Pass); 2] = [("avx512f", super::avx512), ("avx", super::avx)];
            for (feature, pass) in passes {
                let have = match feature {
                    "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
                    _ => std::arch::is_x86_feature_detected!("avx"),
                };
                if !have {
                    eprintln!("no {feature} on this CPU: that pass is not run");
                    continue;
                }
                for n in (0..=200).chain([255, 256, 257, 1023, 1024, 8192]) {
                    let mut buf = vec![1.5f32; n + 16];
                    pass(&mut buf[..n]);
                    assert!(
                        buf[..n].iter().all(|&x| x == f32::NEG_INFINITY),
                        "{feature} n={n}"
                    );
                    assert!(
                        buf[n..].iter().all(|&x| x == 1.5),
                        "{feature} n={n} wrote past the slice"
                    );
                }
            }
        }
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

/// Nanoseconds this thread has spent runnable but waiting for a CPU, from the second field
/// of `/proc/thread-self/schedstat` (Linux); `None` where that cannot be read.
fn cpu_wait_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// This thread's CPU time in ns: the first field of `/proc/thread-self/schedstat` (Linux).
fn own_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time of every process on every core in ns: the first line of `/proc/stat` (Linux),
/// all but idle and iowait, in clock ticks taken as 10 ms (`USER_HZ` is 100 on Linux).
fn all_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|&(i, _)| i != 3 && i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(busy * 10_000_000)
}

/// CPU time used by other processes over a period, from two snapshots of
/// `(all_cpu_ns, own_cpu_ns)`.
fn others_ns(before: (Option<u64>, Option<u64>), after: (Option<u64>, Option<u64>)) -> Option<u64> {
    let all = after.0?.checked_sub(before.0?)?;
    let own = after.1?.checked_sub(before.1?)?;
    Some(all.saturating_sub(own))
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
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

/// The 1-minute load average (Linux); `None` where it cannot be read.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The machine the numbers come from.
fn machine() -> serde_json::Value {
    let cores = std::thread::available_parallelism().map(|n| n.get()).ok();
    // Best effort: on Linux the CPU's name; nothing if it cannot be read.
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    json!({
        "cores": cores,
        "cpu": cpu,
        "arch": std::env::consts::ARCH,
        "os": std::env::consts::OS,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "load_average_1m": load_average(),
        // Whether welt's AVX-512 paths (mask stores; advance from 16 rows) run on this CPU.
        "avx512": avx512(),
        "floor_stores": floor_stores(),
    })
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

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

/// The targets of the issue that asked for this bench, as lines saying whether they are met
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
        for mode in Mode::ALL.into_iter().filter(|&m| m != Mode::WeltNoMask) {
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

    #[test]
    fn splitmix64_matches_the_published_sequence() {
        // The first outputs for seed 0 of the reference C implementation.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn corpus_is_deterministic_and_mixed() {
        let a = Corpus::generate(512, 7).unwrap();
        let b = Corpus::generate(512, 7).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.len(), 512);
        let text = String::from_utf8_lossy(a.bytes());
        for c in [
            '\u{A0}', '\u{3000}', '\u{2009}', '\u{3}', 'é', '\u{3b1}', '\u{430}',
        ] {
            assert!(text.contains(c), "no {c:?} in the corpus");
        }
        let f = a.finishes();
        assert!(f.stops > 300 && f.limits > 20, "{f:?}");
        assert!(a.multibyte_bytes() * 4 > a.bytes().len(), "too little non-ASCII");
        for i in 0..a.len() {
            let w = a.word(i);
            assert!(!w.is_empty() && w.len() <= 16, "word {i}: {w:?}");
        }
    }

    #[test]
    fn check_passes_and_modes_agree() {
        let corpus = Corpus::generate(256, 1).unwrap();
        for b in [1, 3, 32] {
            let steps = 600 / b;
            let replay = check(&corpus, b, steps).unwrap();
            let expected = replay.finishes();
            assert!(expected.stops > 0);
            assert_eq!(replay.steps(), steps);
            for mode in [Mode::Welt, Mode::ReferencePort, Mode::WeltNoMask] {
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
