//! The passes of [`WordBatch::advance`](super::WordBatch::advance) and
//! [`WordBatch::restart_finished`](super::WordBatch::restart_finished), each run from one
//! function here: on x86-64 with AVX-512 its twin in [`avx512`] takes the whole blocks of 16
//! rows, and the portable code the rest (and every row elsewhere). The portable code is the
//! reference: the tests in `batch` hold the twins to it, step by step.
//!
//! Why the twins: the table lookup of 16 rows is one gather, and their bookkeeping a few
//! vector instructions, where the portable code spends a load, a lookup and several stores per
//! row; at the batch sizes `welt bench` measures, the portable passes alone take more than half
//! of welt's whole step.
//!
//! Every pass is free of branches on the rows' data (a finished row looks up a harmless entry
//! and ignores it): which rows finish is unpredictable, and a branch per row costs more than
//! the work it skips.

use crate::cpu::Avx512;
use crate::tables::{split, Tables};

/// The per-row arrays of a batch that the passes write, one element per row each.
pub(super) struct BatchRows<'a> {
    pub state: &'a mut [u16],
    pub len: &'a mut [u32],
    pub stopped: &'a mut [bool],
    pub finished: &'a mut [bool],
}

// The rows and slices past the AVX-512 twins' whole blocks: used only where they run.
#[cfg(target_arch = "x86_64")]
impl<'a> BatchRows<'a> {
    /// The rows from `from` on (none where `from` is past the end).
    fn skip(self, from: usize) -> BatchRows<'a> {
        BatchRows {
            state: tail_mut(self.state, from),
            len: tail_mut(self.len, from),
            stopped: tail_mut(self.stopped, from),
            finished: tail_mut(self.finished, from),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn tail<T>(x: &[T], from: usize) -> &[T] {
    x.get(from..).unwrap_or_default()
}

#[cfg(target_arch = "x86_64")]
fn tail_mut<T>(x: &mut [T], from: usize) -> &mut [T] {
    let from = from.min(x.len());
    &mut x[from..]
}

/// What the AVX-512 twins need, for a batch where they run (see [`gather_for`]).
#[cfg(target_arch = "x86_64")]
pub(super) use avx512::Simd;
/// Never made off x86-64.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy, Debug)]
pub(super) struct Simd<'t>(std::convert::Infallible, std::marker::PhantomData<&'t ()>);

/// The AVX-512 twins for a batch of `rows` over `tables`, where they can run and pay: a CPU
/// with AVX-512 (`avx`), tables whose offsets fit the gathers, and at least one whole block.
pub(super) fn gather_for<'t>(avx: Option<Avx512>, tables: &Tables<'t>, rows: usize) -> Option<Simd<'t>> {
    #[cfg(target_arch = "x86_64")]
    {
        avx512::Simd::new(avx?, tables, rows)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (avx, tables, rows);
        None
    }
}

/// Pass 1 of `advance`: each row's entry for its token into `entries`, and the first running
/// row whose token is out of range or forbidden (`None`: every token is valid). Changes
/// nothing else, so that an error leaves the batch as it was.
#[inline]
pub(super) fn lookup(
    simd: Option<&Simd<'_>>,
    tables: &Tables<'_>,
    tokens: &[u32],
    states: &[u16],
    finished: &[bool],
    entries: &mut [u16],
) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(s) = simd {
        return lookup_blocks(s, tables, tokens, states, finished, entries);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    lookup_rows(tables, tokens, states, finished, entries)
}

/// [`lookup`] with the AVX-512 twin: the whole blocks, then the rest. Out of line, so that a
/// batch too small for the twin pays nothing for its set-up.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn lookup_blocks(
    s: &Simd<'_>,
    tables: &Tables<'_>,
    tokens: &[u32],
    states: &[u16],
    finished: &[bool],
    entries: &mut [u16],
) -> Option<usize> {
    let (done, bad) = avx512::lookup(s, tokens, states, finished, entries);
    if bad.is_some() {
        return bad;
    }
    lookup_rows(
        tables,
        tail(tokens, done),
        tail(states, done),
        tail(finished, done),
        tail_mut(entries, done),
    )
    .map(|row| done + row)
}

/// Pass 2 of `advance`, once every token is valid: every running row takes its entry's state,
/// grows by one token, stops or finishes; finished rows report `pad` in `tokens`. Returns the
/// number of rows that finished now.
#[inline]
pub(super) fn commit(
    simd: Option<&Simd<'_>>,
    rows: BatchRows<'_>,
    tokens: &mut [u32],
    entries: &[u16],
    max_len: u32,
    pad: u32,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(s) = simd {
        return commit_blocks(s, rows, tokens, entries, max_len, pad);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    commit_rows(rows, tokens, entries, max_len, pad)
}

/// [`commit`] with the AVX-512 twin (out of line, as [`lookup_blocks`]).
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn commit_blocks(
    s: &Simd<'_>,
    mut rows: BatchRows<'_>,
    tokens: &mut [u32],
    entries: &[u16],
    max_len: u32,
    pad: u32,
) -> usize {
    let (done, newly_finished) = avx512::commit(s, &mut rows, tokens, entries, max_len, pad);
    newly_finished
        + commit_rows(
            rows.skip(done),
            tail_mut(tokens, done),
            tail(entries, done),
            max_len,
            pad,
        )
}

/// `restart_finished`: every finished row back to `start`, length 0, not stopped, not
/// finished. Returns the number of rows restarted.
#[inline]
pub(super) fn restart(simd: Option<&Simd<'_>>, rows: BatchRows<'_>, start: u16) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(s) = simd {
        return restart_blocks(s, rows, start);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    restart_rows(rows, start)
}

/// [`restart`] with the AVX-512 twin (out of line, as [`lookup_blocks`]).
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn restart_blocks(s: &Simd<'_>, mut rows: BatchRows<'_>, start: u16) -> usize {
    let (done, restarted) = avx512::restart(s, &mut rows, start);
    restarted + restart_rows(rows.skip(done), start)
}

/// [`lookup`], portable.
#[inline]
fn lookup_rows(
    tables: &Tables<'_>,
    tokens: &[u32],
    states: &[u16],
    finished: &[bool],
    entries: &mut [u16],
) -> Option<usize> {
    let v = tables.vocab_size() as u32;
    let mut bad_at = usize::MAX;
    for (row, (((&token, &state), &finished), entry)) in
        tokens.iter().zip(states).zip(finished).zip(entries).enumerate()
    {
        let in_range = token < v;
        let e = tables.entry(state, if in_range { token } else { 0 });
        // Entry 0 is a forbidden token; a stop leads to DEAD with the stop bit and is allowed.
        let bad = !finished & (!in_range | (e == 0));
        bad_at = bad_at.min(if bad { row } else { usize::MAX });
        *entry = e;
    }
    (bad_at != usize::MAX).then_some(bad_at)
}

/// [`commit`], portable.
#[inline]
fn commit_rows(rows: BatchRows<'_>, tokens: &mut [u32], entries: &[u16], max_len: u32, pad: u32) -> usize {
    let BatchRows {
        state,
        len,
        stopped,
        finished,
    } = rows;
    let mut newly_finished = 0;
    for (((((token, &e), state), len), stopped), finished) in tokens
        .iter_mut()
        .zip(entries)
        .zip(state)
        .zip(len)
        .zip(stopped)
        .zip(finished)
    {
        let run = !*finished;
        let (next, stop) = split(e);
        let stop = stop & run;
        *state = if run { next } else { *state };
        *len += u32::from(run);
        *stopped |= stop;
        let ends = run & (stop | (*len >= max_len));
        *finished |= ends;
        newly_finished += usize::from(ends);
        *token = if run { *token } else { pad };
    }
    newly_finished
}

/// [`restart`], portable.
#[inline]
fn restart_rows(rows: BatchRows<'_>, start: u16) -> usize {
    let BatchRows {
        state,
        len,
        stopped,
        finished,
    } = rows;
    let mut restarted = 0;
    for (((state, len), stopped), finished) in state.iter_mut().zip(len).zip(stopped).zip(finished) {
        let f = *finished;
        *state = if f { start } else { *state };
        *len = if f { 0 } else { *len };
        *stopped &= !f;
        *finished = false;
        restarted += usize::from(f);
    }
    restarted
}

/// The AVX-512 twins of the passes (x86-64, after run-time CPU feature detection): each
/// handles the rows of the whole 16-row blocks and returns how many rows that was.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::*;

    use super::BatchRows;
    use crate::cpu::Avx512;
    use crate::tables::Tables;
    use welt_format::{NEXT_STATE, STOP_BIT};

    /// Rows per block: a batch of fewer rows never calls in here.
    const N: usize = 16;

    /// Proof of the CPU features (`Avx512`) and the tables as the gathers read them.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Simd<'t> {
        _avx: Avx512,
        gather: Gather<'t>,
    }

    impl<'t> Simd<'t> {
        /// `None` for a batch of fewer than `N` rows, or tables the gathers cannot address.
        pub(super) fn new(avx: Avx512, tables: &Tables<'t>, rows: usize) -> Option<Simd<'t>> {
            if rows < N {
                return None;
            }
            Some(Simd {
                _avx: avx,
                gather: Gather::new(tables)?,
            })
        }
    }

    /// Where 32-bit gathers may read the tables: the whole blob, with the byte offsets of the
    /// class and entry tables in it. Every offset a gather uses is that of a 2-byte element of
    /// one of those tables, and both are followed inside the blob by at least 2 more bytes (the
    /// class table by the entries, the entries by the masks, which are never empty), so each
    /// 4-byte read stays inside the blob. `None` where offsets would not fit the gathers' `i32`.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Gather<'a> {
        blob: &'a [u8],
        class_at: i32,
        entries_at: i32,
        /// Entries per state: V (direct layout) or the number of classes.
        width: i32,
        classes: bool,
        states: i32,
        vocab: i32,
    }

    impl<'a> Gather<'a> {
        fn new(t: &Tables<'a>) -> Option<Gather<'a>> {
            let (blob, class_at, entries_at) = t.blob_layout();
            let fits = |x: usize| i32::try_from(x).is_ok();
            if !fits(blob.len()) || !fits(t.vocab_size()) || !fits(t.num_states()) {
                return None;
            }
            // The tables guarantee what the reads rest on; check it here all the same, once.
            let (entries_len, class_len) = (t.entries.len(), t.class_of.len());
            if class_at + class_len != entries_at || entries_at + entries_len + 2 > blob.len() {
                return None;
            }
            let classes = t.classes != 0;
            Some(Gather {
                blob,
                class_at: class_at as i32,
                entries_at: entries_at as i32,
                width: if classes {
                    t.classes as i32
                } else {
                    t.vocab_size() as i32
                },
                classes,
                states: t.num_states() as i32,
                vocab: t.vocab_size() as i32,
            })
        }
    }

    /// [`super::lookup`] over whole blocks. Returns `(rows done, first bad row)`; it stops at the
    /// block of the first bad row.
    pub(super) fn lookup(
        s: &Simd<'_>,
        tokens: &[u32],
        states: &[u16],
        finished: &[bool],
        entries: &mut [u16],
    ) -> (usize, Option<usize>) {
        // SAFETY: the CPU has the features `lookup_avx512` enables (`s` holds an `Avx512`).
        unsafe { lookup_avx512(&s.gather, tokens, states, finished, entries) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn lookup_avx512(
        g: &Gather<'_>,
        tokens: &[u32],
        states: &[u16],
        finished: &[bool],
        entries: &mut [u16],
    ) -> (usize, Option<usize>) {
        let n = tokens
            .len()
            .min(states.len())
            .min(finished.len())
            .min(entries.len())
            / N
            * N;
        let vocab = _mm512_set1_epi32(g.vocab);
        let last_state = _mm512_set1_epi32(g.states - 1);
        let width = _mm512_set1_epi32(g.width);
        let class_at = _mm512_set1_epi32(g.class_at);
        let entries_at = _mm512_set1_epi32(g.entries_at);
        let low16 = _mm512_set1_epi32(0xFFFF);
        let base = g.blob.as_ptr();
        for i in (0..n).step_by(N) {
            // SAFETY: i + 16 <= n, which is at most each slice's length: the loads read 16
            // elements inside `tokens`, `states` and `finished`, and the store writes 16 inside
            // `entries`. `bool` is one byte, 0 or 1.
            let (t, s, done) = unsafe {
                (
                    _mm512_loadu_si512(tokens.as_ptr().add(i).cast()),
                    _mm512_cvtepu16_epi32(_mm256_loadu_si256(states.as_ptr().add(i).cast())),
                    _mm_loadu_si128(finished.as_ptr().add(i).cast()),
                )
            };
            let done: __mmask16 = _mm_test_epi8_mask(done, done);
            let in_range: __mmask16 = _mm512_cmplt_epu32_mask(t, vocab);
            let token = _mm512_maskz_mov_epi32(in_range, t);
            // States are always in the table; the clamp keeps the reads' bounds local.
            let state = _mm512_min_epu32(s, last_state);
            let col = if g.classes {
                let at = _mm512_add_epi32(class_at, _mm512_slli_epi32::<1>(token));
                // SAFETY: token < V, so `at` is a class table element's offset (see `Gather`).
                let class = unsafe { _mm512_i32gather_epi32::<1>(at, base.cast()) };
                _mm512_min_epu32(_mm512_and_si512(class, low16), _mm512_set1_epi32(g.width - 1))
            } else {
                token
            };
            let index = _mm512_add_epi32(_mm512_mullo_epi32(state, width), col);
            let at = _mm512_add_epi32(entries_at, _mm512_slli_epi32::<1>(index));
            // SAFETY: state < states and col < width, so `at` is an entry's offset (`Gather`).
            let e = _mm512_and_si512(unsafe { _mm512_i32gather_epi32::<1>(at, base.cast()) }, low16);
            // Entry 0 is a forbidden token (a stop leads to DEAD with the stop bit, and is allowed).
            let dead: __mmask16 = _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512());
            // SAFETY: as for the loads above.
            unsafe { _mm256_storeu_si256(entries.as_mut_ptr().add(i).cast(), _mm512_cvtepi32_epi16(e)) };
            let bad = !done & (!in_range | dead);
            if bad != 0 {
                return (i + N, Some(i + bad.trailing_zeros() as usize));
            }
        }
        (n, None)
    }

    /// [`super::commit`] over whole blocks. Returns `(rows done, rows that finished now)`.
    pub(super) fn commit(
        s: &Simd<'_>,
        rows: &mut BatchRows<'_>,
        tokens: &mut [u32],
        entries: &[u16],
        max_len: u32,
        pad: u32,
    ) -> (usize, usize) {
        let _ = s;
        // SAFETY: the CPU has the features `commit_avx512` enables (`s` holds an `Avx512`).
        unsafe { commit_avx512(rows, tokens, entries, max_len, pad) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn commit_avx512(
        r: &mut BatchRows<'_>,
        tokens: &mut [u32],
        entries: &[u16],
        max_len: u32,
        pad: u32,
    ) -> (usize, usize) {
        let n = [
            tokens.len(),
            entries.len(),
            r.state.len(),
            r.len.len(),
            r.stopped.len(),
            r.finished.len(),
        ]
        .into_iter()
        .min()
        .unwrap_or(0)
            / N
            * N;
        let one = _mm512_set1_epi32(1);
        let max_len = _mm512_set1_epi32(max_len as i32);
        let pad = _mm512_set1_epi32(pad as i32);
        let next_bits = _mm512_set1_epi32(i32::from(NEXT_STATE));
        let stop_bit = _mm512_set1_epi32(i32::from(STOP_BIT));
        let mut newly = 0;
        for i in (0..n).step_by(N) {
            // SAFETY: i + 16 <= n <= every slice's length: each load and store below touches 16
            // elements inside its slice. The bytes written to `stopped` and `finished` are 0 or
            // 1 (valid `bool`s).
            unsafe {
                let e = _mm512_cvtepu16_epi32(_mm256_loadu_si256(entries.as_ptr().add(i).cast()));
                let f = _mm_loadu_si128(r.finished.as_ptr().add(i).cast());
                let st = _mm_loadu_si128(r.stopped.as_ptr().add(i).cast());
                let run: __mmask16 = !_mm_test_epi8_mask(f, f);
                let stop: __mmask16 = run & _mm512_test_epi32_mask(e, stop_bit);
                let s_ptr = r.state.as_mut_ptr().add(i).cast();
                let state = _mm512_cvtepu16_epi32(_mm256_loadu_si256(s_ptr));
                let state = _mm512_mask_mov_epi32(state, run, _mm512_and_si512(e, next_bits));
                _mm256_storeu_si256(s_ptr, _mm512_cvtepi32_epi16(state));
                let l_ptr = r.len.as_mut_ptr().add(i).cast();
                let len = _mm512_loadu_si512(l_ptr);
                let len = _mm512_mask_add_epi32(len, run, len, one);
                _mm512_storeu_si512(l_ptr, len);
                let at_limit: __mmask16 = _mm512_cmpge_epu32_mask(len, max_len);
                let ends: __mmask16 = run & (stop | at_limit);
                let was_stopped: __mmask16 = _mm_test_epi8_mask(st, st);
                _mm_storeu_si128(
                    r.stopped.as_mut_ptr().add(i).cast(),
                    _mm_maskz_set1_epi8(was_stopped | stop, 1),
                );
                _mm_storeu_si128(
                    r.finished.as_mut_ptr().add(i).cast(),
                    _mm_maskz_set1_epi8(!run | ends, 1),
                );
                let t_ptr = tokens.as_mut_ptr().add(i).cast();
                _mm512_mask_storeu_epi32(t_ptr, !run, pad);
                newly += ends.count_ones() as usize;
            }
        }
        (n, newly)
    }

    /// [`super::restart`] over whole blocks. Returns `(rows done, rows restarted)`.
    pub(super) fn restart(s: &Simd<'_>, rows: &mut BatchRows<'_>, start: u16) -> (usize, usize) {
        let _ = s;
        // SAFETY: the CPU has the features `restart_avx512` enables (`s` holds an `Avx512`).
        unsafe { restart_avx512(rows, start) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn restart_avx512(r: &mut BatchRows<'_>, start: u16) -> (usize, usize) {
        let BatchRows {
            state,
            len,
            stopped,
            finished,
        } = r;
        let n = state.len().min(len.len()).min(stopped.len()).min(finished.len()) / N * N;
        let start = _mm256_set1_epi16(start as i16);
        let mut restarted = 0;
        for i in (0..n).step_by(N) {
            // SAFETY: i + 16 <= n <= every slice's length; the bytes written are 0 (valid bools).
            unsafe {
                let f_ptr = finished.as_mut_ptr().add(i).cast();
                let f = _mm_loadu_si128(f_ptr);
                let fin: __mmask16 = _mm_test_epi8_mask(f, f);
                if fin == 0 {
                    continue;
                }
                _mm256_mask_storeu_epi16(state.as_mut_ptr().add(i).cast(), fin, start);
                _mm512_mask_storeu_epi32(len.as_mut_ptr().add(i).cast(), fin, _mm512_setzero_si512());
                _mm_mask_storeu_epi8(stopped.as_mut_ptr().add(i).cast(), fin, _mm_setzero_si128());
                _mm_storeu_si128(f_ptr, _mm_setzero_si128());
                restarted += fin.count_ones() as usize;
            }
        }
        (n, restarted)
    }
}
