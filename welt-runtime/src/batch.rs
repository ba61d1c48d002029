//! A batch of words generated side by side on the CPU.

use crate::cpu::Avx512;
use crate::error::{Error, ErrorKind};
use crate::mask::{mask_one_row, min_logits_len, Logit, MaskRows};
use crate::sequence::walk_prefix;
use crate::sparse::SparseMasks;
use crate::tables::{split, Mask, Tables, DEAD};
use crate::Decoder;
use std::sync::Arc;

mod passes;

use passes::{gather_for, BatchRows, Simd};

/// B words generated in lockstep, as Hugging Face `generate` drives a batch: each step the
/// caller masks the logits ([`WordBatch::apply_mask`]), samples one token per row and
/// [`advances`](WordBatch::advance) the batch, until [`WordBatch::is_done`].
///
/// A row *stops* when its word is complete (the word rule matched, or EOS); it *finishes*
/// when it stops or reaches the word length limit. Finished rows keep their state, their
/// logits are left untouched, and `advance` reports PAD for them, as `generate` pads
/// finished rows. Nothing allocates after construction.
///
/// ```
/// use welt_runtime::{Utf8Words, WordBatch};
/// let mut batch = WordBatch::for_decoder::<Utf8Words>(2).unwrap();
/// let mut logits = vec![0.0f32; 2 * 256];
/// batch.apply_mask(&mut logits).unwrap();
/// assert!(logits[0x80].is_infinite()); // a continuation byte cannot start a word
/// let mut tokens = [b'a' as u32, b' ' as u32];
/// batch.advance(&mut tokens).unwrap();
/// assert_eq!(batch.finished(), &[false, false]); // " " alone never completes a word
/// let mut tokens = [b' ' as u32, b'x' as u32];
/// batch.advance(&mut tokens).unwrap();
/// assert_eq!(batch.stopped(), &[true, false]);   // "a " is complete
/// ```
#[derive(Clone, Debug)]
pub struct WordBatch<'t> {
    tables: Tables<'t>,
    max_len: u32,
    state: Vec<u16>,
    len: Vec<u32>,
    stopped: Vec<bool>,
    finished: Vec<bool>,
    running: usize,
    /// Each running row's entry for its token, found while checking the tokens and applied
    /// once all are valid: one table lookup per row, and nothing changes on an error.
    entries: Vec<u16>,
    /// `B x V`, the length of contiguous logits (`None` past `usize`: no buffer has it),
    /// computed once so that `apply_mask` checks the size with one comparison.
    logits_len: Option<usize>,
    /// The CPU's AVX-512, detected once: the mask's masked stores run when this is `Some`.
    avx: Option<Avx512>,
    /// The forbidden tokens of the states that forbid few (a large vocabulary's word start),
    /// as lists, and without AVX-512 of the states that forbid a few runs (every state of the
    /// byte decoder), as runs: such a row is masked with one store per forbidden token, or
    /// with wide stores over each run. Shared by clones.
    sparse: Option<Arc<SparseMasks>>,
    /// `advance` and `restart_finished` run their AVX-512 twins when this is `Some`: a CPU
    /// with AVX-512, tables whose offsets fit the gathers, and 16 rows or more.
    simd: Option<Simd<'t>>,
}

impl<'t> WordBatch<'t> {
    /// `batch_size` empty words with the decoder's default word length limit.
    ///
    /// `Err` for 0 rows, and for more rows than memory can hold (the allocation is tried, not
    /// assumed: no panic or abort).
    pub fn new(tables: Tables<'t>, batch_size: usize) -> Result<WordBatch<'t>, Error> {
        fn rows<T: Clone>(value: T, n: usize) -> Result<Vec<T>, Error> {
            let mut v = Vec::new();
            v.try_reserve_exact(n)
                .map_err(|_| Error::new(ErrorKind::BatchTooLarge { rows: n }))?;
            v.resize(n, value);
            Ok(v)
        }
        if batch_size == 0 {
            return Err(Error::new(ErrorKind::EmptyBatch));
        }
        let avx = Avx512::detect();
        Ok(WordBatch {
            tables,
            max_len: u32::from(tables.max_word_len()),
            state: rows(tables.start(), batch_size)?,
            len: rows(0, batch_size)?,
            stopped: rows(false, batch_size)?,
            finished: rows(false, batch_size)?,
            running: batch_size,
            entries: rows(0, batch_size)?,
            logits_len: batch_size.checked_mul(tables.vocab_size()),
            avx,
            sparse: SparseMasks::new(&tables, avx.is_none()).map(Arc::new),
            simd: gather_for(avx, &tables, batch_size),
        })
    }

    /// A batch for a generated decoder type, e.g. `WordBatch::for_decoder::<Utf8Words>(32)`.
    pub fn for_decoder<D: Decoder>(batch_size: usize) -> Result<WordBatch<'static>, Error> {
        WordBatch::new(D::TABLES, batch_size)
    }

    /// Sets the word length limit (in tokens) for the words started from now on and the
    /// ones in progress. `Err` for 0.
    pub fn set_max_word_len(&mut self, max_len: u32) -> Result<(), Error> {
        if max_len == 0 {
            return Err(Error::new(ErrorKind::ZeroWordLength));
        }
        self.max_len = max_len;
        for row in 0..self.state.len() {
            if !self.finished[row] && self.len[row] >= max_len {
                self.finished[row] = true;
                self.running -= 1;
            }
        }
        Ok(())
    }

    /// The tables.
    pub fn tables(&self) -> &Tables<'t> {
        &self.tables
    }
    /// Number of rows.
    pub fn batch_size(&self) -> usize {
        self.state.len()
    }
    /// The word length limit in tokens.
    pub fn max_word_len(&self) -> u32 {
        self.max_len
    }

    /// Masks `[B x V]` logits in place (rows contiguous). See [`WordBatch::apply_mask_strided`].
    #[inline]
    pub fn apply_mask<L: Logit>(&self, logits: &mut [L]) -> Result<(), Error> {
        if Some(logits.len()) != self.logits_len {
            // The strided checks name what is wrong.
            return self.apply_mask_strided(logits, self.tables.vocab_size());
        }
        self.mask_checked(logits, self.tables.vocab_size());
        Ok(())
    }

    /// Masks the logits of every running row in place: forbidden tokens get `-inf`. Row `i`
    /// starts at `i * row_stride`; `row_stride >= V` (padding columns are never touched) and
    /// `logits.len()` must be `B * row_stride` or the minimum `(B - 1) * row_stride + V`.
    /// Finished rows are left as they are.
    pub fn apply_mask_strided<L: Logit>(&self, logits: &mut [L], row_stride: usize) -> Result<(), Error> {
        self.check_logits(logits.len(), row_stride)?;
        self.mask_checked(logits, row_stride);
        Ok(())
    }

    /// `Ok` where `len` logits are `B` rows of `row_stride` (see
    /// [`WordBatch::apply_mask_strided`]).
    fn check_logits(&self, len: usize, row_stride: usize) -> Result<(), Error> {
        let v = self.tables.vocab_size();
        let b = self.state.len();
        let min = min_logits_len(b, row_stride, v, len)?;
        let full = b.checked_mul(row_stride);
        if len != min && Some(len) != full {
            return Err(Error::new(ErrorKind::LogitsSize {
                expected: full.unwrap_or(usize::MAX),
                got: len,
            }));
        }
        Ok(())
    }

    /// The mask, once the size of `logits` is checked for `row_stride`. Below 16 rows row by
    /// row, each through [`mask_one_row`]: the whole-batch kernel's set-up would cost more
    /// than the rows' stores.
    #[inline]
    fn mask_checked<L: Logit>(&self, logits: &mut [L], row_stride: usize) {
        let v = self.tables.vocab_size();
        if self.state.len() < SMALL_BATCH {
            for (row, (&state, &done)) in self.state.iter().zip(&self.finished).enumerate() {
                if !done {
                    let at = row * row_stride;
                    if let Some(l) = logits.get_mut(at..at + v) {
                        mask_state(self.avx, self.sparse.as_deref(), &self.tables, l, state);
                    }
                }
            }
            return;
        }
        let rows = MaskRows {
            states: &self.state,
            finished: &self.finished,
            masks: self.tables.masks,
            width: self.tables.mask_bytes(),
            stride: row_stride,
            sparse: self.sparse.as_deref(),
        };
        crate::mask::mask_rows(self.avx, logits, v, rows);
    }

    /// One whole decoding step in one call: masks the `[B x V]` logits of every running row
    /// (rows contiguous), asks `choose(row, the row's masked logits)` for its token and
    /// advances the batch by the tokens chosen, which it writes into `tokens` (PAD for the
    /// finished rows, which `choose` is not asked about). Returns the number of rows still
    /// running. The same as [`WordBatch::apply_mask`], a sampler and [`WordBatch::advance`],
    /// with the checks done once per step and, below 16 rows, each row masked, chosen and
    /// looked up in one pass: at small batches the calls and checks of the three cost more
    /// than the work. See [`WordBatch::step_strided`].
    ///
    /// `Err` — with the batch unchanged — for logits or `tokens` of the wrong size (nothing is
    /// written), or for a chosen token outside the vocabulary or forbidden by its row's mask
    /// (the logits are masked and `tokens` holds the choices by then: they are the caller's).
    ///
    /// ```
    /// use welt_runtime::{Utf8Words, WordBatch};
    /// let mut batch = WordBatch::for_decoder::<Utf8Words>(2).unwrap();
    /// let mut logits = vec![0.0f32; 2 * 256];
    /// let mut tokens = [0u32; 2];
    /// // Row 0 writes "a ", row 1 "é ": here the choice ignores the logits.
    /// let words: [&[u8]; 2] = [b"a ", "\u{e9} ".as_bytes()];
    /// while !batch.is_done() {
    ///     logits.fill(0.0); // the model's next logits
    ///     let lengths = batch.lengths().to_vec();
    ///     batch
    ///         .step(&mut logits, &mut tokens, |row, masked| {
    ///             let t = words[row][lengths[row] as usize];
    ///             assert!(masked[usize::from(t)].is_finite());
    ///             u32::from(t)
    ///         })
    ///         .unwrap();
    /// }
    /// assert_eq!(batch.stopped(), &[true, true]);
    /// assert_eq!(batch.lengths(), &[2, 3]);
    /// ```
    #[inline]
    pub fn step<L: Logit>(
        &mut self,
        logits: &mut [L],
        tokens: &mut [u32],
        choose: impl FnMut(usize, &[L]) -> u32,
    ) -> Result<usize, Error> {
        let v = self.tables.vocab_size();
        if Some(logits.len()) != self.logits_len {
            self.check_logits(logits.len(), v)?;
        }
        self.step_checked(logits, v, tokens, choose)
    }

    /// [`WordBatch::step`] on logits whose row `i` starts at `i * row_stride`, sized as for
    /// [`WordBatch::apply_mask_strided`]; `choose` sees the row's `V` logits.
    pub fn step_strided<L: Logit>(
        &mut self,
        logits: &mut [L],
        row_stride: usize,
        tokens: &mut [u32],
        choose: impl FnMut(usize, &[L]) -> u32,
    ) -> Result<usize, Error> {
        self.check_logits(logits.len(), row_stride)?;
        self.step_checked(logits, row_stride, tokens, choose)
    }

    /// [`WordBatch::step_strided`] once the logits' size is checked.
    #[inline]
    fn step_checked<L: Logit>(
        &mut self,
        logits: &mut [L],
        row_stride: usize,
        tokens: &mut [u32],
        mut choose: impl FnMut(usize, &[L]) -> u32,
    ) -> Result<usize, Error> {
        let b = self.state.len();
        if tokens.len() != b {
            return Err(Error::new(ErrorKind::BatchSizeMismatch {
                expected: b,
                got: tokens.len(),
            }));
        }
        let v = self.tables.vocab_size();
        if b == 1 {
            debug_assert!(self.simd.is_none(), "the AVX-512 passes start at 16 rows");
            return self.step_one(logits, tokens, choose);
        }
        if self.simd.is_some() || b >= SMALL_BATCH {
            // Whole blocks of rows: the batch's mask, the choices, then `advance`'s passes
            // (without AVX-512 too: at 16 rows and more, a pass per job beats a pass per row).
            self.mask_checked(logits, row_stride);
            for (row, (token, &done)) in tokens.iter_mut().zip(&self.finished).enumerate() {
                let at = row * row_stride;
                if let (false, Some(l)) = (done, logits.get(at..at + v)) {
                    *token = choose(row, l);
                }
            }
            return self.advance_checked(tokens);
        }
        // Each running row masked, chosen and looked up in turn (pass 1 of `advance`, with
        // nothing changed until every token is known to be valid), then pass 2.
        let (tables, avx, sparse, vocab) = (&self.tables, self.avx, self.sparse.as_deref(), v as u32);
        let mut bad_at = usize::MAX;
        let (Some(entries), Some(states), Some(finished)) = (
            self.entries.get_mut(..b),
            self.state.get(..b),
            self.finished.get(..b),
        ) else {
            return Ok(self.running);
        };
        // Indexed, not zipped: with each row's mask out of line, four zipped iterators compiled
        // to more instructions a row than one index (every slice is `b` long: no check is left).
        for row in 0..b {
            let (Some(token), Some(entry), Some(&state), Some(&done)) = (
                tokens.get_mut(row),
                entries.get_mut(row),
                states.get(row),
                finished.get(row),
            ) else {
                continue;
            };
            if done {
                continue;
            }
            let at = row * row_stride;
            let Some(l) = logits.get_mut(at..at + v) else {
                continue;
            };
            mask_state(avx, sparse, tables, l, state);
            let t = choose(row, l);
            *token = t;
            let in_range = t < vocab;
            let e = tables.entry(state, if in_range { t } else { 0 });
            *entry = e;
            // Entry 0 is a forbidden token; a stop leads to DEAD with the stop bit.
            if (!in_range || e == 0) && bad_at == usize::MAX {
                bad_at = row;
            }
        }
        if bad_at != usize::MAX {
            return Err(self.token_error(tokens, bad_at));
        }
        let rows = BatchRows {
            state: &mut self.state,
            len: &mut self.len,
            stopped: &mut self.stopped,
            finished: &mut self.finished,
        };
        let newly_finished =
            passes::commit(None, rows, tokens, &self.entries, self.max_len, self.tables.pad());
        self.running -= newly_finished;
        Ok(self.running)
    }

    /// The allowed next tokens of `row` (empty once the row has finished).
    pub fn mask(&self, row: usize) -> Result<Mask<'t>, Error> {
        self.check_row(row)?;
        Ok(self
            .tables
            .mask(if self.finished[row] { DEAD } else { self.state[row] }))
    }

    /// Advances every row by its sampled token. `tokens[i]` is row `i`'s token; for rows that
    /// had already finished it is ignored and overwritten with PAD. Returns the number of
    /// rows still running. `Err` — with nothing changed — if `tokens` has the wrong length, or
    /// a running row's token is outside the vocabulary or forbidden by its mask.
    #[inline]
    pub fn advance(&mut self, tokens: &mut [u32]) -> Result<usize, Error> {
        let b = self.state.len();
        if tokens.len() != b {
            return Err(Error::new(ErrorKind::BatchSizeMismatch {
                expected: b,
                got: tokens.len(),
            }));
        }
        if b == 1 {
            return self.advance_one(tokens);
        }
        self.advance_checked(tokens)
    }

    /// [`WordBatch::advance`] once `tokens` holds one token per row.
    #[inline]
    fn advance_checked(&mut self, tokens: &mut [u32]) -> Result<usize, Error> {
        // Pass 1 looks up every row's entry and only finds the first running row whose token
        // is bad; nothing changes yet, so an error leaves the batch as it was.
        let bad_at = passes::lookup(
            self.simd.as_ref(),
            &self.tables,
            tokens,
            &self.state,
            &self.finished,
            &mut self.entries,
        );
        if let Some(at) = bad_at {
            return Err(self.token_error(tokens, at));
        }
        let rows = BatchRows {
            state: &mut self.state,
            len: &mut self.len,
            stopped: &mut self.stopped,
            finished: &mut self.finished,
        };
        let newly_finished = passes::commit(
            self.simd.as_ref(),
            rows,
            tokens,
            &self.entries,
            self.max_len,
            self.tables.pad(),
        );
        self.running -= newly_finished;
        Ok(self.running)
    }

    /// [`WordBatch::step_checked`] for a batch of one row: no loop, no pass over arrays.
    #[inline]
    fn step_one<L: Logit>(
        &mut self,
        logits: &mut [L],
        tokens: &mut [u32],
        mut choose: impl FnMut(usize, &[L]) -> u32,
    ) -> Result<usize, Error> {
        let v = self.tables.vocab_size();
        let (Some(&state), Some(&finished), Some(l)) =
            (self.state.first(), self.finished.first(), logits.get_mut(..v))
        else {
            return Ok(self.running);
        };
        if !finished {
            mask_state(self.avx, self.sparse.as_deref(), &self.tables, l, state);
            if let Some(token) = tokens.first_mut() {
                *token = choose(0, l);
            }
        }
        self.advance_one(tokens)
    }

    /// [`WordBatch::advance_checked`] for a batch of one row.
    #[inline(always)]
    fn advance_one(&mut self, tokens: &mut [u32]) -> Result<usize, Error> {
        let (Some(token), Some(state), Some(len), Some(stopped), Some(finished)) = (
            tokens.first_mut(),
            self.state.first_mut(),
            self.len.first_mut(),
            self.stopped.first_mut(),
            self.finished.first_mut(),
        ) else {
            return Ok(self.running);
        };
        if *finished {
            *token = self.tables.pad();
            return Ok(self.running);
        }
        let t = *token;
        let e = if t < self.tables.vocab {
            self.tables.entry(*state, t)
        } else {
            0
        };
        // Entry 0 is a forbidden token; a stop leads to DEAD with the stop bit.
        if e == 0 {
            return Err(self.token_error(tokens, 0));
        }
        let (next, stop) = split(e);
        *state = next;
        *len += 1;
        *stopped = stop;
        if stop || *len >= self.max_len {
            *finished = true;
            self.running = 0;
        }
        Ok(self.running)
    }

    /// The error for row `at`'s token, which pass 1 found out of range or forbidden.
    #[cold]
    #[inline(never)]
    fn token_error(&self, tokens: &[u32], at: usize) -> Error {
        let v = self.tables.vocab_size() as u32;
        let (token, state) = (
            tokens.get(at).copied().unwrap_or(0),
            self.state.get(at).copied().unwrap_or(DEAD),
        );
        Error::new(if token >= v {
            ErrorKind::TokenOutOfRange { token, vocab: v, at }
        } else {
            ErrorKind::TokenNotAllowed { token, state, at }
        })
    }

    /// Per row: the word is complete (the rule matched, or EOS).
    pub fn stopped(&self) -> &[bool] {
        &self.stopped
    }
    /// Per row: stopped, or reached the word length limit.
    pub fn finished(&self) -> &[bool] {
        &self.finished
    }
    /// Per row: tokens generated for the current word (prefix included).
    pub fn lengths(&self) -> &[u32] {
        &self.len
    }
    /// Per row: the automaton state.
    pub fn states(&self) -> &[u16] {
        &self.state
    }
    /// Number of rows still running.
    pub fn running(&self) -> usize {
        self.running
    }
    /// Whether every row has finished.
    pub fn is_done(&self) -> bool {
        self.running == 0
    }

    /// Starts a new, empty word in every row.
    pub fn reset(&mut self) {
        self.state.fill(self.tables.start());
        self.len.fill(0);
        self.stopped.fill(false);
        self.finished.fill(false);
        self.running = self.state.len();
    }

    /// Starts a new, empty word in every finished row and returns how many: continuous
    /// batching, where each row writes word after word and a finished row goes straight on
    /// to its next word (read its word and [`stopped`](WordBatch::stopped) flag first).
    /// Running rows are left as they are. The same as [`WordBatch::reset_row`] on each
    /// finished row, without a branch on which rows those are (a loop of `reset_row` behind
    /// an `if finished` branches on data that changes from word to word).
    ///
    /// ```
    /// use welt_runtime::{Utf8Words, WordBatch};
    /// let mut batch = WordBatch::for_decoder::<Utf8Words>(2).unwrap();
    /// batch.advance(&mut [b'a' as u32, b'b' as u32]).unwrap();
    /// batch.advance(&mut [b' ' as u32, b'c' as u32]).unwrap(); // "a " is complete
    /// assert_eq!(batch.restart_finished(), 1);
    /// assert_eq!(batch.lengths(), &[0, 2]);
    /// assert_eq!(batch.running(), 2);
    /// ```
    #[inline]
    pub fn restart_finished(&mut self) -> usize {
        if self.running == self.state.len() {
            // No row has finished (`running` counts the others): nothing to look at.
            return 0;
        }
        let rows = BatchRows {
            state: &mut self.state,
            len: &mut self.len,
            stopped: &mut self.stopped,
            finished: &mut self.finished,
        };
        let restarted = passes::restart(self.simd.as_ref(), rows, self.tables.start());
        self.running += restarted;
        restarted
    }

    /// Starts a new, empty word in `row`.
    pub fn reset_row(&mut self, row: usize) -> Result<(), Error> {
        self.check_row(row)?;
        // `set_prefix(row, &[])` without the walk: an empty word is never at the limit (>= 1).
        self.running += usize::from(self.finished[row]);
        self.state[row] = self.tables.start();
        self.len[row] = 0;
        self.stopped[row] = false;
        self.finished[row] = false;
        Ok(())
    }

    /// Starts `row` as a continuation of `prefix` (see [`crate::Sequence::with_prefix`] for
    /// what makes a prefix invalid; a prefix as long as the limit leaves the row finished).
    /// `Err` leaves the row as it was.
    pub fn set_prefix(&mut self, row: usize, prefix: &[u32]) -> Result<(), Error> {
        self.check_row(row)?;
        let (state, at_limit) = walk_prefix(&self.tables, prefix, self.max_len)?;
        let was_running = !self.finished[row];
        self.state[row] = state;
        self.len[row] = prefix.len() as u32;
        self.stopped[row] = false;
        self.finished[row] = at_limit;
        match (was_running, at_limit) {
            (true, true) => self.running -= 1,
            (false, false) => self.running += 1,
            _ => {}
        }
        Ok(())
    }

    fn check_row(&self, row: usize) -> Result<(), Error> {
        if row >= self.state.len() {
            return Err(Error::new(ErrorKind::RowOutOfRange {
                row,
                batch: self.state.len(),
            }));
        }
        Ok(())
    }
}

/// Below this many rows `apply_mask` masks row by row (see [`WordBatch::mask_checked`]); the
/// AVX-512 passes of `advance` start at the same size (one block).
const SMALL_BATCH: usize = 16;

/// Masks one running row in `state`: through its list or runs of forbidden tokens where
/// `sparse` has them, else through its bitset.
#[inline(always)]
fn mask_state<L: Logit>(
    avx: Option<Avx512>,
    sparse: Option<&SparseMasks>,
    tables: &Tables<'_>,
    row: &mut [L],
    state: u16,
) {
    if !sparse.is_some_and(|s| s.mask(row, state)) {
        mask_one_row(avx, row, row_mask(tables, state));
    }
}

/// The mask bytes of `state` (a state of the tables: always a whole mask).
#[inline(always)]
fn row_mask<'t>(tables: &Tables<'t>, state: u16) -> &'t [u8] {
    let w = tables.mask_bytes();
    let at = usize::from(state) * w;
    tables.masks.get(at..at + w).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decoder, ErrorKind, Utf8Words};

    fn xorshift(z: &mut u64) -> u64 {
        *z ^= *z << 13;
        *z ^= *z >> 7;
        *z ^= *z << 17;
        *z
    }

    /// Everything observable about a batch.
    fn observe(b: &WordBatch<'_>) -> (Vec<u16>, Vec<u32>, Vec<bool>, Vec<bool>, usize) {
        (
            b.state.clone(),
            b.len.clone(),
            b.stopped.clone(),
            b.finished.clone(),
            b.running,
        )
    }

    /// The AVX-512 mask, `advance` and `restart_finished` (whole blocks of 16 rows, the rest
    /// portable) against the portable code alone, step by step, on batches of every size
    /// around the block boundaries, in both table layouts: the same results, the same errors
    /// (first bad row, kind) with nothing changed, the same tokens written back. Tokens are
    /// mostly allowed ones, with forbidden, out-of-range and junk tokens mixed in, and
    /// finished rows, resets and limits along the way.
    fn simd_equals_portable(tables: Tables<'_>) {
        let mut z = 0x2545_F491_4F6C_DD1Du64;
        let mut simd_runs = 0;
        for b in [16usize, 17, 31, 32, 33, 47, 48, 64, 100] {
            let mut fast = WordBatch::new(tables, b).unwrap();
            if fast.simd.is_none() {
                eprintln!("no AVX-512 F/BW/VL on this CPU: only the portable code runs here");
                return;
            }
            let mut slow = fast.clone();
            slow.simd = None;
            slow.avx = None;
            for step in 0..400 {
                let mut tokens: Vec<u32> = (0..b)
                    .map(|r| {
                        let allowed: Vec<u32> = slow.tables.mask(slow.state[r]).iter().collect();
                        match xorshift(&mut z) % 50 {
                            0 => tables.vocab_size() as u32 + (xorshift(&mut z) % 3) as u32,
                            1 => u32::MAX,
                            2 => xorshift(&mut z) as u32 % tables.vocab_size() as u32,
                            _ if allowed.is_empty() => 0,
                            _ => allowed[xorshift(&mut z) as usize % allowed.len()],
                        }
                    })
                    .collect();
                // The masks too: AVX-512 stores against the portable loop, on a padded stride.
                let v = tables.vocab_size();
                let stride = v + 3;
                let logits: Vec<f32> = (0..b * stride)
                    .map(|_| (xorshift(&mut z) % 1000) as f32)
                    .collect();
                let (mut x, mut y) = (logits.clone(), logits);
                fast.apply_mask_strided(&mut x, stride).unwrap();
                slow.apply_mask_strided(&mut y, stride).unwrap();
                assert!(
                    x.iter().zip(&y).all(|(a, c)| a.to_bits() == c.to_bits()),
                    "B={b} step {step}: masks"
                );
                let mut same = tokens.clone();
                let before = observe(&slow);
                let (a, c) = (fast.advance(&mut tokens), slow.advance(&mut same));
                match (&a, &c) {
                    (Ok(x), Ok(y)) => assert_eq!(x, y, "B={b} step {step}"),
                    (Err(x), Err(y)) => {
                        assert_eq!(x.kind(), y.kind(), "B={b} step {step}");
                        assert_eq!(observe(&slow), before, "an error changed the portable batch");
                    }
                    _ => panic!("B={b} step {step}: {a:?} against {c:?}"),
                }
                assert_eq!(tokens, same, "B={b} step {step}: tokens written back");
                assert_eq!(observe(&fast), observe(&slow), "B={b} step {step}");
                simd_runs += 1;
                match xorshift(&mut z) % 8 {
                    0 => {
                        let row = xorshift(&mut z) as usize % b;
                        fast.reset_row(row).unwrap();
                        slow.reset_row(row).unwrap();
                    }
                    1 => {
                        let max = 1 + (xorshift(&mut z) % 20) as u32;
                        fast.set_max_word_len(max).unwrap();
                        slow.set_max_word_len(max).unwrap();
                    }
                    2 | 3 => {}
                    _ => assert_eq!(
                        fast.restart_finished(),
                        slow.restart_finished(),
                        "B={b} step {step}"
                    ),
                }
                assert_eq!(
                    observe(&fast),
                    observe(&slow),
                    "B={b} step {step} after the restart"
                );
            }
        }
        assert!(simd_runs > 0);
    }

    #[test]
    fn simd_advance_equals_portable_direct_layout() {
        simd_equals_portable(Utf8Words::TABLES);
    }

    #[test]
    fn simd_advance_equals_portable_class_layout() {
        let mut spec = kernels_gen::DecoderSpec::utf8_bytes();
        spec.layout = kernels_gen::Layout::Classes;
        let blob = kernels_gen::generate(&spec).unwrap().to_blob();
        let tables = Tables::from_bytes(&blob).unwrap();
        assert!(tables.token_classes().is_some());
        simd_equals_portable(tables);
    }

    /// What one row does with `token`, computed from the tables alone: `None` where the token
    /// is refused (out of range or forbidden), else the row's (state, len, stopped, finished).
    fn model_row(t: &Tables<'_>, max: u32, row: (u16, u32), token: u32) -> Option<(u16, u32, bool, bool)> {
        let (state, len) = row;
        let (next, stop) = t.step(state, token).ok()?;
        if !t.mask(state).allows(token) {
            return None;
        }
        Some((next, len + 1, stop, stop || len + 1 >= max))
    }

    /// `step` (every path: one row, the one-pass rows below 16, the AVX-512 blocks) against
    /// `apply_mask` + the same choices + `advance` on a twin batch, and both against a model
    /// built from the tables alone: the same masked logits bit for bit (the mask itself
    /// checked against `Mask::apply` row by row, finished rows and padding untouched), the
    /// same tokens written, the same rows, the same errors (the first bad row) with the batch
    /// unchanged. Contiguous and strided logits, both table layouts, with junk and forbidden
    /// choices, finished rows, restarts and limits mixed in.
    fn step_equals_split(tables: Tables<'_>) {
        let mut z = 0x9E37_79B9_7F4A_7C15u64;
        let v = tables.vocab_size();
        for b in [1usize, 2, 3, 4, 7, 15, 16, 17, 33] {
            let mut fused = WordBatch::new(tables, b).unwrap();
            let mut split = fused.clone();
            for step in 0..300 {
                let stride = if step % 3 == 0 { v } else { v + 5 };
                let logits: Vec<f32> = (0..b * stride)
                    .map(|_| (xorshift(&mut z) % 1000) as f32)
                    .collect();
                let choices: Vec<u32> = (0..b)
                    .map(|r| {
                        let allowed: Vec<u32> = split.mask(r).unwrap().iter().collect();
                        match xorshift(&mut z) % 40 {
                            0 => v as u32 + (xorshift(&mut z) % 3) as u32,
                            1 => xorshift(&mut z) as u32 % v as u32,
                            _ if allowed.is_empty() => 0,
                            _ => allowed[xorshift(&mut z) as usize % allowed.len()],
                        }
                    })
                    .collect();
                // The mask expected, row by row.
                let mut want = logits.clone();
                for r in 0..b {
                    if !split.finished()[r] {
                        split
                            .mask(r)
                            .unwrap()
                            .apply(&mut want[r * stride..r * stride + v])
                            .unwrap();
                    }
                }
                let before = observe(&split);
                let (mut x, mut y) = (logits.clone(), logits);
                let mut t_fused = vec![7u32; b];
                let mut seen = vec![false; b];
                let a = fused.step_strided(&mut x, stride, &mut t_fused, |row, l| {
                    assert_eq!(l.len(), v);
                    assert!(!seen[row], "each row is chosen for once");
                    seen[row] = true;
                    // `choose` sees the row already masked.
                    let m = &want[row * stride..row * stride + v];
                    assert!(l.iter().zip(m).all(|(p, q)| p.to_bits() == q.to_bits()));
                    choices[row]
                });
                split.apply_mask_strided(&mut y, stride).unwrap();
                let mut t_split = choices.clone();
                let running: Vec<bool> = before.3.iter().map(|&f| !f).collect();
                assert_eq!(
                    seen, running,
                    "B={b} step {step}: chosen for exactly the running rows"
                );
                let c = split.advance(&mut t_split);
                assert!(
                    x.iter().zip(&want).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "B={b} step {step}: step's mask"
                );
                assert!(
                    y.iter().zip(&want).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "B={b} step {step}: apply_mask"
                );
                // The model: the first running row whose choice is refused, else every row.
                let bad = (0..b).find(|&r| {
                    !before.3[r]
                        && model_row(
                            &tables,
                            split.max_word_len(),
                            (before.0[r], before.1[r]),
                            choices[r],
                        )
                        .is_none()
                });
                match (&a, &c, bad) {
                    (Ok(p), Ok(q), None) => {
                        assert_eq!(p, q, "B={b} step {step}");
                        assert_eq!(t_fused, t_split, "B={b} step {step}: tokens written");
                        for r in 0..b {
                            let got = (split.state[r], split.len[r], split.stopped[r], split.finished[r]);
                            if before.3[r] {
                                assert_eq!(got, (before.0[r], before.1[r], before.2[r], true));
                                assert_eq!(t_split[r], tables.pad());
                            } else {
                                let m = model_row(
                                    &tables,
                                    split.max_word_len(),
                                    (before.0[r], before.1[r]),
                                    choices[r],
                                );
                                assert_eq!(Some(got), m, "B={b} step {step} row {r}");
                            }
                        }
                    }
                    (Err(p), Err(q), Some(at)) => {
                        assert_eq!(p.kind(), q.kind(), "B={b} step {step}");
                        let named = match p.kind() {
                            ErrorKind::TokenOutOfRange { at, .. } | ErrorKind::TokenNotAllowed { at, .. } => {
                                at
                            }
                            k => panic!("{k:?}"),
                        };
                        assert_eq!(named, at, "B={b} step {step}: the first bad row");
                        assert_eq!(observe(&fused), before, "an error changed the batch");
                        assert_eq!(observe(&split), before, "an error changed the batch");
                    }
                    _ => panic!("B={b} step {step}: {a:?} against {c:?}, model {bad:?}"),
                }
                assert_eq!(observe(&fused), observe(&split), "B={b} step {step}");
                match xorshift(&mut z) % 6 {
                    0 => {
                        let max = 1 + (xorshift(&mut z) % 20) as u32;
                        fused.set_max_word_len(max).unwrap();
                        split.set_max_word_len(max).unwrap();
                    }
                    1 => {}
                    _ => assert_eq!(fused.restart_finished(), split.restart_finished()),
                }
            }
        }
    }

    #[test]
    fn step_equals_apply_mask_and_advance_direct_layout() {
        step_equals_split(Utf8Words::TABLES);
    }

    #[test]
    fn step_equals_apply_mask_and_advance_class_layout() {
        let mut spec = kernels_gen::DecoderSpec::utf8_bytes();
        spec.layout = kernels_gen::Layout::Classes;
        let blob = kernels_gen::generate(&spec).unwrap().to_blob();
        step_equals_split(Tables::from_bytes(&blob).unwrap());
    }

    /// Rows masked from lists and runs (`SparseMasks`) write exactly each row's bitset mask,
    /// bit for bit, through `apply_mask` and `step`, row by row (B = 1, 3) and by the batch
    /// path (B = 16, 32), with rows at the word start, mid-character and after a letter, and
    /// finished rows left alone. And they read the lists and runs: with the word start's
    /// first forbidden token left out of them, every row at the word start keeps that logit.
    /// Lists: vocabularies whose word start forbids few (V = 5,000, whose last mask word is
    /// partial, and 8,192); runs: the byte decoder, and those vocabularies' few-run states.
    #[test]
    fn listed_and_run_states_mask_as_their_bitsets() {
        for n in [5000usize, 8192] {
            let owned = crate::sparse::sparse_start_tables(n);
            let t = owned.as_tables();
            assert_eq!(t.vocab_size(), n);
            // The lists are built on every CPU.
            assert!(WordBatch::new(t, 1).unwrap().sparse.is_some());
            for runs in [false, true] {
                sparse_states_mask_as_their_bitsets(t, runs);
            }
        }
        sparse_states_mask_as_their_bitsets(Utf8Words::TABLES, true);
        // What `WordBatch::new` builds: the byte decoder's runs where the CPU has no AVX-512.
        let batch = WordBatch::new(Utf8Words::TABLES, 1).unwrap();
        assert_eq!(batch.sparse.is_some(), Avx512::detect().is_none());
    }

    fn sparse_states_mask_as_their_bitsets(t: Tables<'_>, runs: bool) {
        use crate::sparse::Forbidden;
        let bits = |x: &[f32]| x.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
        let mut z = 0x9E37_79B9_7F4A_7C15u64;
        let v = t.vocab_size();
        let eos = t.eos().expect("an EOS token");
        let built = SparseMasks::new(&t, runs).expect("lists or runs");
        let first = match built.get(t.start()).expect("the word start has a list or runs") {
            Forbidden::List(ids) => ids[0],
            Forbidden::Runs(runs) => runs[0],
        } as usize;
        // The runs written with AVX's stores (where the CPU has it) and with the portable ones.
        let forms = [built.clone(), built.without_avx()];
        for (sparse, b) in forms.iter().flat_map(|s| [1usize, 3, 16, 32].map(|b| (s, b))) {
            let mut batch = WordBatch::new(t, b).unwrap();
            batch.sparse = Some(Arc::new(sparse.clone()));
            // Row r: r % 4 == 0 at the word start (a word written and restarted), 1 after
            // the lead byte 0xC3, 2 after "a", 3 finished by EOS.
            let mut tokens: Vec<u32> = (0..b)
                .map(|r| match r % 4 {
                    0 => u32::from(b'x'),
                    1 => 0xC3,
                    2 => u32::from(b'a'),
                    _ => eos,
                })
                .collect();
            batch.advance(&mut tokens).unwrap();
            for r in (0..b).filter(|r| r % 4 == 0) {
                batch.reset_row(r).unwrap();
            }
            let states = batch.states().to_vec();
            let finished = batch.finished().to_vec();
            assert!(states.iter().any(|&s| s == t.start()));
            // A row masked through its bitset too, where one is (not in the byte decoder).
            if b > 1 && v >= 4096 {
                assert!(states
                    .iter()
                    .zip(&finished)
                    .any(|(&s, &f)| !f && sparse.get(s).is_none()));
            }
            let logits: Vec<f32> = (0..b * v)
                .map(|_| (xorshift(&mut z) % 1000) as f32 / 100.0)
                .collect();
            let mut want = logits.clone();
            for r in (0..b).filter(|&r| !finished[r]) {
                let mask = t.mask(states[r]);
                for (tok, x) in want[r * v..(r + 1) * v].iter_mut().enumerate() {
                    if !mask.allows(tok as u32) {
                        *x = f32::NEG_INFINITY;
                    }
                }
            }
            let choose = |row: usize| t.mask(states[row]).iter().next().unwrap_or(0);
            let mut got = logits.clone();
            batch.apply_mask(&mut got).unwrap();
            assert!(
                bits(&got) == bits(&want),
                "apply_mask, V = {v}, B = {b}, runs {runs}"
            );
            let mut stepped = logits.clone();
            let mut seen = vec![false; b];
            let mut out = vec![0u32; b];
            batch
                .clone()
                .step(&mut stepped, &mut out, |row, masked| {
                    seen[row] = true;
                    assert!(
                        bits(masked) == bits(&want[row * v..(row + 1) * v]),
                        "step, V = {v}, B = {b}, runs {runs}, row {row}"
                    );
                    choose(row)
                })
                .unwrap();
            assert!(
                bits(&stepped) == bits(&want),
                "step, V = {v}, B = {b}, runs {runs}"
            );
            assert_eq!(seen, finished.iter().map(|f| !f).collect::<Vec<_>>());

            let mut tampered = batch.clone();
            Arc::make_mut(tampered.sparse.as_mut().unwrap()).drop_first(t.start());
            let mut masked = logits.clone();
            tampered.apply_mask(&mut masked).unwrap();
            let mut stepped = logits.clone();
            tampered
                .step(&mut stepped, &mut out, |row, _| choose(row))
                .unwrap();
            for r in 0..b {
                let at = r * v + first;
                let expect = if !finished[r] && states[r] == t.start() {
                    logits[at]
                } else {
                    want[at]
                };
                assert_eq!(
                    masked[at].to_bits(),
                    expect.to_bits(),
                    "V = {v}, B = {b}, row {r}"
                );
                assert_eq!(
                    stepped[at].to_bits(),
                    expect.to_bits(),
                    "step, V = {v}, B = {b}, row {r}"
                );
            }
        }
    }

    /// Wrong sizes are refused before anything is written: not the logits, not the tokens,
    /// not the batch; `choose` is never asked.
    #[test]
    fn step_refuses_wrong_sizes_and_changes_nothing() {
        for b in [1usize, 3, 16] {
            let mut batch = WordBatch::new(Utf8Words::TABLES, b).unwrap();
            batch
                .step(
                    &mut vec![0.0f32; b * 256],
                    &mut vec![u32::from(b'a'); b],
                    |_, _| u32::from(b'a'),
                )
                .unwrap();
            let before = observe(&batch);
            for (logits, tokens) in [
                (b * 256 - 1, b),
                (b * 256 + 1, b),
                (0, b),
                (b * 256, b + 1),
                (b * 256, b - 1),
            ] {
                let mut l = vec![1.0f32; logits];
                let mut t = vec![5u32; tokens];
                let e = batch
                    .step(&mut l, &mut t, |_, _| panic!("asked to choose"))
                    .unwrap_err();
                assert!(
                    matches!(
                        e.kind(),
                        ErrorKind::LogitsSize { .. } | ErrorKind::BatchSizeMismatch { .. }
                    ),
                    "{e}"
                );
                assert!(
                    l.iter().all(|&x| x == 1.0) && t.iter().all(|&x| x == 5),
                    "B={b}: nothing written"
                );
                assert_eq!(observe(&batch), before);
            }
            let e = batch
                .step_strided(&mut vec![0.0f32; b * 256], 255, &mut vec![0; b], |_, _| {
                    panic!("asked")
                })
                .unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::StrideTooSmall { .. }), "{e}");
            assert_eq!(observe(&batch), before);
        }
    }

    #[test]
    fn an_error_in_a_simd_block_names_the_first_bad_row() {
        let mut b = WordBatch::new(Utf8Words::TABLES, 40).unwrap();
        let mut tokens = vec![u32::from(b'a'); 40];
        tokens[5] = 0x80; // a continuation byte cannot start a word
        tokens[3] = 999; // out of range, and first
        tokens[37] = 0x80; // in the portable tail
        let e = b.advance(&mut tokens).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::TokenOutOfRange {
                token: 999,
                vocab: 256,
                at: 3
            }
        );
        tokens[3] = u32::from(b'a');
        let e = b.advance(&mut tokens).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::TokenNotAllowed {
                    token: 0x80,
                    at: 5,
                    ..
                }
            ),
            "{e}"
        );
        tokens[5] = u32::from(b'a');
        let e = b.advance(&mut tokens).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::TokenNotAllowed {
                    token: 0x80,
                    at: 37,
                    ..
                }
            ),
            "{e}"
        );
        assert!(b.lengths().iter().all(|&l| l == 0), "errors changed nothing");
    }
}
