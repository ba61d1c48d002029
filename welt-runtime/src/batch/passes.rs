//! `WordBatch::advance` and `WordBatch::restart_finished` 16 rows at a time with AVX-512
//! (x86-64, after run-time CPU feature detection). Each function here handles the rows of
//! the whole 16-row blocks and returns how many rows that was; the caller runs its scalar
//! code (the reference for all of this: the tests compare the two) on the rest.
//!
//! Why: at B = 32 the scalar `advance` was 3.7 ns and `restart_finished` 2 ns per row in
//! `welt bench`, more than half of welt's whole step; here the table lookup of 16 rows is one
//! gather, and the bookkeeping a few vector instructions.

#![allow(unsafe_code)]

use std::arch::x86_64::*;

pub(crate) use crate::cpu::Avx512;
use crate::tables::Tables;

/// Rows per block: a batch of fewer rows never calls in here.
pub(crate) const N: usize = 16;

/// Where 32-bit gathers may read the tables: the whole blob, with the byte offsets of the
/// class and entry tables in it. Every offset a gather uses is that of a 2-byte element of
/// one of those tables, and both are followed inside the blob by at least 2 more bytes (the
/// class table by the entries, the entries by the masks, which are never empty), so each
/// 4-byte read stays inside the blob. `None` where offsets would not fit the gathers' `i32`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gather<'a> {
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
    pub(crate) fn new(t: &Tables<'a>) -> Option<Gather<'a>> {
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

/// The first pass of `advance` over whole blocks: each row's entry into `entries`, and the
/// first running row whose token is out of range or forbidden. Changes nothing else.
/// Returns `(rows done, first bad row)`; it stops at the block of the first bad row.
pub(crate) fn lookup(
    _: Avx512,
    g: &Gather<'_>,
    tokens: &[u32],
    states: &[u16],
    finished: &[bool],
    entries: &mut [u16],
) -> (usize, Option<usize>) {
    // SAFETY: the CPU has the features `lookup_avx512` enables (an `Avx512` exists).
    unsafe { lookup_avx512(g, tokens, states, finished, entries) }
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
    let next_bits = _mm512_set1_epi32(0x7FFF);
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
        let dead: __mmask16 = _mm512_cmpeq_epi32_mask(_mm512_and_si512(e, next_bits), _mm512_setzero_si512());
        // SAFETY: as for the loads above.
        unsafe { _mm256_storeu_si256(entries.as_mut_ptr().add(i).cast(), _mm512_cvtepi32_epi16(e)) };
        let bad = !done & (!in_range | dead);
        if bad != 0 {
            return (i + N, Some(i + bad.trailing_zeros() as usize));
        }
    }
    (n, None)
}

/// The per-row arrays the second pass of `advance` writes.
pub(crate) struct Rows<'a> {
    pub tokens: &'a mut [u32],
    pub entries: &'a [u16],
    pub state: &'a mut [u16],
    pub len: &'a mut [u32],
    pub stopped: &'a mut [bool],
    pub finished: &'a mut [bool],
}

/// The second pass of `advance` over whole blocks (see `WordBatch::advance`). Returns
/// `(rows done, rows that finished now)`.
pub(crate) fn commit(_: Avx512, rows: Rows<'_>, max_len: u32, pad: u32) -> (usize, usize) {
    // SAFETY: the CPU has the features `commit_avx512` enables (an `Avx512` exists).
    unsafe { commit_avx512(rows, max_len, pad) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn commit_avx512(r: Rows<'_>, max_len: u32, pad: u32) -> (usize, usize) {
    let n = [
        r.tokens.len(),
        r.entries.len(),
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
    let next_bits = _mm512_set1_epi32(0x7FFF);
    let stop_bit = _mm512_set1_epi32(0x8000);
    let mut newly = 0;
    for i in (0..n).step_by(N) {
        // SAFETY: i + 16 <= n <= every slice's length: each load and store below touches 16
        // elements inside its slice. The bytes written to `stopped` and `finished` are 0 or
        // 1 (valid `bool`s).
        unsafe {
            let e = _mm512_cvtepu16_epi32(_mm256_loadu_si256(r.entries.as_ptr().add(i).cast()));
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
            let t_ptr = r.tokens.as_mut_ptr().add(i).cast();
            _mm512_mask_storeu_epi32(t_ptr, !run, pad);
            newly += ends.count_ones() as usize;
        }
    }
    (n, newly)
}

/// `restart_finished` over whole blocks: finished rows back to `start`, length 0, not
/// stopped, not finished. Returns `(rows done, rows restarted)`.
pub(crate) fn restart(
    _: Avx512,
    state: &mut [u16],
    len: &mut [u32],
    stopped: &mut [bool],
    finished: &mut [bool],
    start: u16,
) -> (usize, usize) {
    // SAFETY: the CPU has the features `restart_avx512` enables (an `Avx512` exists).
    unsafe { restart_avx512(state, len, stopped, finished, start) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn restart_avx512(
    state: &mut [u16],
    len: &mut [u32],
    stopped: &mut [bool],
    finished: &mut [bool],
    start: u16,
) -> (usize, usize) {
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
