//! The mask: `-inf` into the logits of forbidden tokens, row by row, for every element type a
//! logits buffer may have ([`Logit`]). The portable code and, on x86-64 with AVX-512, its
//! masked-store twin ([`x86`]), which the tests hold to the portable code bit for bit.

use crate::cpu::Avx512;
use crate::error::{Error, ErrorKind};
use crate::sparse::SparseMasks;

/// A logit type the mask can be applied to: `f32`, `f64`, and (feature `half`, on by default)
/// `half::f16`, `half::bf16`.
pub trait Logit: Copy + sealed::Sealed + 'static {
    /// The value written where a token is forbidden.
    const NEG_INFINITY: Self;
    /// The value as an `f32` (for choosing a token).
    fn to_f32(self) -> f32;
}

impl Logit for f32 {
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    fn to_f32(self) -> f32 {
        self
    }
}
impl sealed::Sealed for f32 {
    const NEG_INFINITY_BITS: u64 = f32::NEG_INFINITY.to_bits() as u64;
}
impl Logit for f64 {
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    fn to_f32(self) -> f32 {
        self as f32
    }
}
impl sealed::Sealed for f64 {
    const NEG_INFINITY_BITS: u64 = f64::NEG_INFINITY.to_bits();
}
#[cfg(feature = "half")]
impl Logit for half::f16 {
    const NEG_INFINITY: half::f16 = half::f16::NEG_INFINITY;
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}
#[cfg(feature = "half")]
impl sealed::Sealed for half::f16 {
    const NEG_INFINITY_BITS: u64 = half::f16::NEG_INFINITY.to_bits() as u64;
}
#[cfg(feature = "half")]
impl Logit for half::bf16 {
    const NEG_INFINITY: half::bf16 = half::bf16::NEG_INFINITY;
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
}
#[cfg(feature = "half")]
impl sealed::Sealed for half::bf16 {
    const NEG_INFINITY_BITS: u64 = half::bf16::NEG_INFINITY.to_bits() as u64;
}

/// The shortest logits buffer that holds `batch` rows of `vocab` logits, row `i` at
/// `i * row_stride`: `(batch - 1) * row_stride + vocab`. `Err` for a stride shorter than a row,
/// or a size past `usize` (the logits of such a batch cannot exist; `expected` is then
/// `usize::MAX`, and `got` the length of the caller's buffer). A batch has at least one row: 0
/// counts as 1.
pub(crate) fn min_logits_len(
    batch: usize,
    row_stride: usize,
    vocab: usize,
    got: usize,
) -> Result<usize, Error> {
    if row_stride < vocab {
        return Err(Error::new(ErrorKind::StrideTooSmall {
            stride: row_stride,
            vocab: u32::try_from(vocab).unwrap_or(u32::MAX),
        }));
    }
    batch
        .saturating_sub(1)
        .checked_mul(row_stride)
        .and_then(|x| x.checked_add(vocab))
        .ok_or(Error::new(ErrorKind::LogitsSize {
            expected: usize::MAX,
            got,
        }))
}

/// The rows of a batch to mask: row `r` (at `r * stride` in the logits) has state
/// `states[r]`, whose mask is the `width` bytes at `states[r] * width` in `masks`, or, where
/// `sparse` has them, its list or runs of forbidden tokens; rows whose `finished` flag is set
/// are left alone.
#[derive(Clone, Copy)]
pub(crate) struct MaskRows<'a> {
    pub states: &'a [u16],
    pub finished: &'a [bool],
    pub masks: &'a [u8],
    pub width: usize,
    pub stride: usize,
    pub sparse: Option<&'a SparseMasks>,
}

impl MaskRows<'_> {
    /// Calls `f(row logits, row mask)` for every running row whose state has no list or runs,
    /// and masks the others from those. A row or a mask past its buffer (which the callers
    /// rule out) is skipped: never a panic, never an access out of bounds.
    #[inline(always)]
    fn each<L: Logit>(self, logits: &mut [L], v: usize, mut f: impl FnMut(&mut [L], &[u8])) {
        for (row, (&state, &done)) in self.states.iter().zip(self.finished).enumerate() {
            if done {
                continue;
            }
            let at = usize::from(state) * self.width;
            let start = row * self.stride;
            let Some(logits) = logits.get_mut(start..start + v) else {
                continue;
            };
            if self.sparse.is_some_and(|s| s.mask(logits, state)) {
                continue;
            }
            if let Some(mask) = self.masks.get(at..at + self.width) {
                f(logits, mask);
            }
        }
    }
}

/// Masks the `v` logits of each of `rows` in place. The hot loop of
/// [`crate::WordBatch::apply_mask`].
///
/// With an [`Avx512`] (x86-64 with AVX-512 F/BW/VL) rows are written with masked vector
/// stores: per 16 `f32` (8 `f64`, 32 `f16`/`bf16`) one store of `-inf` into exactly the
/// forbidden lanes, and on a long row only for the 16 that hold a forbidden token (one cache
/// line). Elsewhere, the portable [`mask_row`], which skips the 64-token words that forbid
/// nothing. So on a long row the cost follows the forbidden tokens, not V (`welt bench
/// --vocab N` times the mask at a word start, nearly all allowed, and mid-word, nearly all
/// forbidden). A row whose state `rows.sparse` lists (one that forbids few tokens) is masked
/// from its list instead, on every path: one store per forbidden token; one whose state has
/// runs there (a few runs, without AVX-512), with wide stores over each run.
#[inline]
pub(crate) fn mask_rows<L: Logit>(avx: Option<Avx512>, logits: &mut [L], v: usize, rows: MaskRows<'_>) {
    if let Some(avx) = avx {
        #[cfg(target_arch = "x86_64")]
        return x86::mask_rows(avx, logits, v, rows);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = avx;
    }
    rows.each(logits, v, mask_row);
}

/// Masks one row: [`mask_rows`] for a single row.
#[inline]
pub(crate) fn mask_one<L: Logit>(row: &mut [L], mask: &[u8]) {
    let v = row.len();
    let rows = MaskRows {
        states: &[0],
        finished: &[false],
        masks: mask,
        width: mask.len(),
        stride: v,
        sparse: None,
    };
    mask_rows(Avx512::detect(), row, v, rows);
}

mod sealed {
    pub trait Sealed {
        /// The bits of `-inf` (in the low `size_of::<Self>()` bytes).
        const NEG_INFINITY_BITS: u64;
    }
}

/// Writes `-inf` into every logit of `row` whose bit in `mask` (little-endian u64 words) is
/// clear. `row.len()` is the vocabulary size and `mask` holds `ceil(len / 64) * 8` bytes; a
/// shorter mask covers only its own words, and the logits past them are left as they are.
///
/// The portable path of `WordBatch::apply_mask` (CPUs without AVX-512, and the tails of long
/// rows). Its cost follows the forbidden tokens, not the row's length: at a word start of a
/// large vocabulary nearly every token is allowed (Llama 3: 127,052 of 128,256), and a mask
/// that visited every logit would cost as much as one that forbids them all. So the row goes
/// 512 logits at a time, and a block whose 64 mask bytes are all ones (nothing forbidden) is
/// skipped after one test of eight words; the others go word by word through [`mask_words`].
#[inline]
pub(crate) fn mask_row<L: Logit>(row: &mut [L], mask: &[u8]) {
    // Without this, a mask shorter than the row would end the block loop at its first
    // block and leave the words it does cover unwritten.
    let covered = (mask.len() / 8).saturating_mul(64);
    let len = row.len().min(covered);
    let row = &mut row[..len];
    let done = row.len() / 512;
    let mut blocks = row.chunks_exact_mut(512);
    for (block, m) in (&mut blocks).zip(mask.chunks_exact(64)) {
        if !all_allowed(m) {
            mask_words(block, m);
        }
    }
    // By offset, not the mask chunks' remainder: a mask padded to whole words can hold one
    // more 64-byte chunk than the row has whole blocks.
    mask_words(blocks.into_remainder(), mask.get(done * 64..).unwrap_or_default());
}

/// Whether the mask bytes `m` (a whole number of u64 words) allow every token they cover.
#[inline(always)]
fn all_allowed(m: &[u8]) -> bool {
    m.chunks_exact(8).fold(!0u64, |acc, w| {
        acc & w.try_into().map(u64::from_ne_bytes).unwrap_or(0)
    }) == !0
}

/// [`mask_row`] word by word: a 64-token word with nothing forbidden is skipped.
///
/// Masks of real decoders are runs: whole 64-token words are either kept (skipped) or
/// forbidden, and a mixed word is mostly whole bytes (for the byte decoder at a character
/// boundary, 0xC0-0xFF is `fc ff ff ff ff ff 1f 00`). The time goes into stores, hence:
///
/// - a whole forbidden word is written through a `[L; 64]` array, so the compiler emits a
///   fixed run of vector stores instead of a loop that recomputes the chunk's length and tail;
/// - in a mixed word, each fully forbidden byte is written as one `[L; 8]` and only the bits
///   of partly forbidden bytes one by one (5 single stores at a boundary instead of 13).
#[inline]
fn mask_words<L: Logit>(row: &mut [L], mask: &[u8]) {
    for (chunk, m) in row.chunks_mut(64).zip(mask.chunks_exact(8)) {
        let bits = u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]]);
        let Ok(word) = <&mut [L; 64]>::try_from(&mut *chunk) else {
            // The vocabulary's last, partial word: only its first `chunk.len()` bits count.
            forbid_bits(chunk, !bits & ((1u64 << chunk.len()) - 1));
            continue;
        };
        let forbid = !bits;
        if forbid == 0 {
            continue;
        }
        if forbid == !0 {
            *word = [L::NEG_INFINITY; 64];
            continue;
        }
        // 0x80 in each byte of `bits` that is zero, exactly (no borrow between bytes): the
        // groups of eight forbidden tokens.
        const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
        let zero = !(((bits & LOW7) + LOW7) | bits | LOW7);
        let mut groups = zero;
        while groups != 0 {
            let g = (groups.trailing_zeros() / 8) as usize;
            if let Some(Ok(group)) = word.get_mut(8 * g..8 * g + 8).map(<&mut [L; 8]>::try_from) {
                *group = [L::NEG_INFINITY; 8];
            }
            groups &= groups - 1;
        }
        forbid_bits(word, forbid & !((zero >> 7) * 0xFF));
    }
}

/// Writes `-inf` at each set bit of `forbid` (bit `i` is `chunk[i]`; bits past the chunk are
/// ignored).
#[inline(always)]
fn forbid_bits<L: Logit>(chunk: &mut [L], mut forbid: u64) {
    while forbid != 0 {
        if let Some(x) = chunk.get_mut(forbid.trailing_zeros() as usize) {
            *x = L::NEG_INFINITY;
        }
        forbid &= forbid - 1;
    }
}

/// The AVX-512 masked stores of [`mask_rows`].
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::{Avx512, Logit, MaskRows};
    use std::arch::x86_64::*;
    use std::mem::size_of;

    #[inline]
    pub(super) fn mask_rows<L: Logit>(_: Avx512, logits: &mut [L], v: usize, rows: MaskRows<'_>) {
        // SAFETY: the CPU has the features these functions enable (an `Avx512` exists).
        unsafe {
            match size_of::<L>() {
                2 => rows16(logits, v, rows),
                4 => rows32(logits, v, rows),
                _ => rows64(logits, v, rows),
            }
        }
    }

    /// [`MaskRows::each`] with the bounds checked once for the batch instead of twice per row
    /// (next to the sixteen masked stores of a 256-logit `f32` row, per-row range checks are
    /// not negligible).
    /// Rows past the logits or a batch with no whole mask are not masked at all: never an
    /// access out of bounds.
    #[inline(always)]
    fn each_row<L: Logit>(
        rows: MaskRows<'_>,
        logits: &mut [L],
        v: usize,
        mut f: impl FnMut(&mut [L], &[u8]),
    ) {
        let b = rows.states.len().min(rows.finished.len());
        let masks = rows.masks.len().checked_div(rows.width).unwrap_or(0);
        let need = b
            .checked_sub(1)
            .and_then(|last_row| last_row.checked_mul(rows.stride))
            .and_then(|x| x.checked_add(v));
        let (Some(need), Some(last_mask)) = (need, masks.checked_sub(1)) else {
            return;
        };
        if need > logits.len() || rows.stride < v {
            return;
        }
        let (lp, mp) = (logits.as_mut_ptr(), rows.masks.as_ptr());
        for (row, (&state, &done)) in rows.states[..b].iter().zip(&rows.finished[..b]).enumerate() {
            if done {
                continue;
            }
            let s = usize::from(state).min(last_mask);
            // SAFETY: row < b, so row * stride + v <= need <= logits.len(); rows do not overlap
            // (stride >= v) and one row is borrowed at a time. s <= last_mask, so
            // (s + 1) * width <= masks * width <= rows.masks.len().
            let (r, m) = unsafe {
                (
                    std::slice::from_raw_parts_mut(lp.add(row * rows.stride), v),
                    std::slice::from_raw_parts(mp.add(s * rows.width), rows.width),
                )
            };
            if !rows.sparse.is_some_and(|sparse| sparse.mask(r, state)) {
                f(r, m);
            }
        }
    }

    /// One vector's bits of a mask: `LANES / 8` bytes from `at`, inverted (set = forbidden).
    #[inline(always)]
    fn forbidden<const LANES: usize>(mask: &[u8], at: usize) -> u64 {
        let mut bits = [0xFFu8; 8];
        if let Some(b) = mask.get(at..at + LANES / 8) {
            bits[..LANES / 8].copy_from_slice(b);
        }
        !u64::from_le_bytes(bits) & (u64::MAX >> (64 - LANES))
    }

    /// One row through masked stores of `LANES` lanes (one cache line of logits), its cost
    /// following the forbidden tokens. The row goes 512 logits at a time: `dirty` reads the
    /// block's 64 mask bytes as one vector and returns a bit per group of `LANES` tokens that
    /// forbids anything, and only those groups get their masked store. A block with nothing
    /// forbidden costs one load and a compare; the stores go to exactly the cache lines that
    /// hold a forbidden token; the loop over the set bits branches once per group stored, on
    /// a count the predictor learns, never on which tokens are allowed. A block whose every
    /// group forbids a token (a state inside a character allows almost nothing) takes its
    /// stores in a straight line instead, at constant offsets: no bit scan, no mask range
    /// check and no loop exit per group. That is one more branch per block, on whether every
    /// group is dirty, which the rows of one state take the same way.
    ///
    /// What is left after the last 512 goes to [`short_row`].
    #[inline(always)]
    fn long_row<L: Logit, const LANES: usize>(
        row: &mut [L],
        mask: &[u8],
        dirty: impl Fn(&[u8; 64]) -> u64,
        store: impl Fn(*mut L, u64) + Copy,
    ) {
        debug_assert!(mask.len() * 8 >= row.len(), "a mask bit for every logit");
        let row_len = row.len();
        // The bits of `dirty` that name a group of the block: 512 / LANES of them.
        let groups_in_block = u64::MAX >> (64 - 512 / LANES);
        let mut big = row.chunks_exact_mut(512);
        for (block, m) in (&mut big).zip(mask.chunks_exact(64)) {
            let Ok(m) = <&[u8; 64]>::try_from(m) else {
                continue;
            };
            let p = block.as_mut_ptr();
            let mut groups = dirty(m) & groups_in_block;
            if groups == groups_in_block {
                // Every group forbids a token (inside a character, where a state allows few):
                // the block's stores in a straight line, without the loop over the bits.
                for g in 0..512 / LANES {
                    // SAFETY: g < 512 / LANES, so the store's LANES lanes at g * LANES lie
                    // inside the block's 512 logits.
                    store(unsafe { p.add(g * LANES) }, forbidden::<LANES>(m, g * LANES / 8));
                }
                continue;
            }
            while groups != 0 {
                let g = groups.trailing_zeros() as usize;
                groups &= groups - 1;
                // SAFETY: g < 512 / LANES (`groups_in_block`), so the store's LANES lanes at
                // g * LANES lie inside the block's 512 logits.
                store(unsafe { p.add(g * LANES) }, forbidden::<LANES>(m, g * LANES / 8));
            }
        }
        // By offset, not the chunks' remainders: a mask padded to whole words can hold one
        // more chunk than the row has whole blocks (255 logits: 32 bytes).
        let done_big = row_len / 512;
        short_row::<L, LANES>(
            big.into_remainder(),
            mask.get(done_big * 64..).unwrap_or_default(),
            store,
        );
    }

    /// A row shorter than 512 logits (every row of the byte decoder, and what [`long_row`]
    /// leaves) through masked stores of `LANES` lanes, 256 logits at a time: a fixed run of
    /// stores that the compiler lays out straight, without a branch on the mask's content. At a
    /// few stores a row, a branch per group would mispredict on rows in mixed states and cost
    /// more than the stores it saves. The last `< 256` go to the portable
    /// [`super::mask_row`], out of line, so that nothing of it (no spilled vector, no extra
    /// live register) weighs on the stores of the common row.
    #[inline(always)]
    fn short_row<L: Logit, const LANES: usize>(row: &mut [L], mask: &[u8], store: impl Fn(*mut L, u64)) {
        debug_assert!(mask.len() * 8 >= row.len(), "a mask bit for every logit");
        let row_len = row.len();
        let mut blocks = row.chunks_exact_mut(256);
        let mut block_masks = mask.chunks_exact(32);
        for (block, m) in (&mut blocks).zip(&mut block_masks) {
            let p = block.as_mut_ptr();
            for j in 0..256 / LANES {
                // SAFETY: j * LANES + LANES <= 256 = block.len().
                store(unsafe { p.add(j * LANES) }, forbidden::<LANES>(m, j * LANES / 8));
            }
        }
        let rest = blocks.into_remainder();
        if !rest.is_empty() {
            // By offset, not `block_masks.remainder()`: a mask padded to whole words can hold
            // one more 32-byte chunk than the row has whole blocks (255 logits: 32 bytes).
            let done = row_len / 256;
            tail(rest, mask.get(done * 32..).unwrap_or_default());
        }
    }

    /// The last `row.len() < 256` logits of a row.
    #[inline(never)]
    fn tail<L: Logit>(row: &mut [L], mask: &[u8]) {
        super::mask_row(row, mask);
    }

    // The groups of a 512-token block that forbid a token (a mask lane that is not all
    // ones), for `long_row`: per 32 tokens (`f16`/`bf16` stores), 16, or 8 (`f64`). The callers'
    // CPU has AVX-512 F and BW: they are `rows*`, reached only with an `Avx512`.

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn dirty32(m: &[u8; 64]) -> u64 {
        // SAFETY: `m` holds the 64 bytes the unaligned load reads.
        let bits = unsafe { _mm512_loadu_si512(m.as_ptr().cast()) };
        u64::from(_mm512_cmpneq_epi32_mask(bits, _mm512_set1_epi32(-1)))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn dirty16(m: &[u8; 64]) -> u64 {
        // SAFETY: as in `dirty32`.
        let bits = unsafe { _mm512_loadu_si512(m.as_ptr().cast()) };
        u64::from(_mm512_cmpneq_epi16_mask(bits, _mm512_set1_epi16(-1)))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn dirty8(m: &[u8; 64]) -> u64 {
        // SAFETY: as in `dirty32`.
        let bits = unsafe { _mm512_loadu_si512(m.as_ptr().cast()) };
        _mm512_cmpneq_epi8_mask(bits, _mm512_set1_epi8(-1))
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn rows16<L: Logit>(logits: &mut [L], v: usize, rows: MaskRows<'_>) {
        debug_assert_eq!(size_of::<L>(), 2);
        let neg = _mm512_set1_epi16(L::NEG_INFINITY_BITS as u16 as i16);
        let store = move |p: *mut L, f: u64| {
            // SAFETY: `p` points at 32 lanes of 2 bytes inside the row (see `long_row` and
            // `short_row`); L is a 2-byte float, so writing its -inf bit pattern as i16 is a
            // valid L.
            unsafe { _mm512_mask_storeu_epi16(p.cast(), f as u32, neg) }
        };
        // SAFETY: this function runs with AVX-512 F and BW, which `dirty32` needs.
        let dirty = |m: &[u8; 64]| unsafe { dirty32(m) };
        // One branch for the batch: the rows of a short vocabulary keep their straight code.
        if v < 512 {
            each_row(rows, logits, v, |r, mask| short_row::<L, 32>(r, mask, store));
        } else {
            each_row(rows, logits, v, |r, mask| {
                long_row::<L, 32>(r, mask, dirty, store)
            });
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn rows32<L: Logit>(logits: &mut [L], v: usize, rows: MaskRows<'_>) {
        debug_assert_eq!(size_of::<L>(), 4);
        let neg = _mm512_set1_epi32(L::NEG_INFINITY_BITS as u32 as i32);
        let store = move |p: *mut L, f: u64| {
            // SAFETY: as in `rows16`, with 16 lanes of 4 bytes.
            unsafe { _mm512_mask_storeu_epi32(p.cast(), f as u16, neg) }
        };
        // SAFETY: this function runs with AVX-512 F and BW, which `dirty16` needs.
        let dirty = |m: &[u8; 64]| unsafe { dirty16(m) };
        // One branch for the batch: the rows of a short vocabulary keep their straight code.
        if v < 512 {
            each_row(rows, logits, v, |r, mask| short_row::<L, 16>(r, mask, store));
        } else {
            each_row(rows, logits, v, |r, mask| {
                long_row::<L, 16>(r, mask, dirty, store)
            });
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn rows64<L: Logit>(logits: &mut [L], v: usize, rows: MaskRows<'_>) {
        debug_assert_eq!(size_of::<L>(), 8);
        let neg = _mm512_set1_epi64(L::NEG_INFINITY_BITS as i64);
        let store = move |p: *mut L, f: u64| {
            // SAFETY: as in `rows16`, with 8 lanes of 8 bytes.
            unsafe { _mm512_mask_storeu_epi64(p.cast(), f as u8, neg) }
        };
        // SAFETY: this function runs with AVX-512 F and BW, which `dirty8` needs.
        let dirty = |m: &[u8; 64]| unsafe { dirty8(m) };
        // One branch for the batch: the rows of a short vocabulary keep their straight code.
        if v < 512 {
            each_row(rows, logits, v, |r, mask| short_row::<L, 8>(r, mask, store));
        } else {
            each_row(rows, logits, v, |r, mask| long_row::<L, 8>(r, mask, dirty, store));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decoder;

    /// The size check of the CPU and CUDA masks: exact where it fits, an `Err` (never a
    /// wrapped size that a short buffer would pass) where `(B - 1) * stride + V` overflows.
    #[test]
    fn min_logits_len_is_checked() {
        assert_eq!(min_logits_len(3, 260, 256, 0), Ok(2 * 260 + 256));
        assert_eq!(min_logits_len(1, usize::MAX, 256, 0), Ok(256));
        let e = min_logits_len(2, 255, 256, 7).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::StrideTooSmall {
                stride: 255,
                vocab: 256
            }
        );
        for (b, stride, v) in [
            (2, usize::MAX, 256),
            (u32::MAX as usize, usize::MAX / 1000, 256),
            (3, usize::MAX / 2, 256),
            (2, usize::MAX - 10, usize::MAX - 10),
        ] {
            let e = min_logits_len(b, stride, v, 1000).unwrap_err();
            assert_eq!(
                e.kind(),
                ErrorKind::LogitsSize {
                    expected: usize::MAX,
                    got: 1000
                },
                "B={b} stride={stride} V={v}"
            );
        }
    }

    fn splitmix(z: &mut u64) -> u64 {
        *z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = *z;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    /// The mask by definition: token by token, `-inf` where the token's bit is clear.
    fn naive<L: Logit>(row: &mut [L], mask: &[u8]) {
        for (t, x) in row.iter_mut().enumerate() {
            if mask[t / 8] >> (t % 8) & 1 == 0 {
                *x = L::NEG_INFINITY;
            }
        }
    }

    /// Rows of one strided buffer (random values, 3 logits of padding between rows), row `r`
    /// masked by `masks[r]` and row 1 finished: both paths of `mask_rows` — AVX-512 (where
    /// this CPU has it) and portable — write exactly what `naive` writes, bit for bit, the
    /// padding and the finished row untouched; `mask_one` writes row 0 as `naive` does.
    fn both_paths_are_naive<L: Logit>(
        v: usize,
        masks: &[Vec<u8>],
        z: &mut u64,
        from_bits: &impl Fn(u64) -> L,
        bits: &impl Fn(L) -> u64,
        what: &str,
    ) {
        let rows = masks.len();
        let stride = v + 3;
        let width = masks[0].len();
        let buf: Vec<L> = (0..rows * stride).map(|_| from_bits(splitmix(z))).collect();
        let finished: Vec<bool> = (0..rows).map(|r| r == 1 && rows > 2).collect();
        let mut want = buf.clone();
        for (r, m) in masks.iter().enumerate().filter(|&(r, _)| !finished[r]) {
            naive(&mut want[r * stride..r * stride + v], m);
        }
        let all: Vec<u8> = masks.concat();
        let states: Vec<u16> = (0..rows as u16).collect();
        let batch = MaskRows {
            states: &states,
            finished: &finished,
            masks: &all,
            width,
            stride,
            sparse: None,
        };
        let b = |x: &[L]| x.iter().map(|&y| bits(y)).collect::<Vec<_>>();
        let want = b(&want);
        let avx = Avx512::detect();
        for (path, avx) in [("AVX-512", avx), ("portable", None)] {
            if path == "AVX-512" && avx.is_none() {
                continue;
            }
            let mut got = buf.clone();
            mask_rows(avx, &mut got, v, batch);
            let got = b(&got);
            if got != want {
                let at = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(0);
                panic!(
                    "{path}, {what}, v={v}: logit {at} (row {}, token {}) differs",
                    at / stride,
                    at % stride
                );
            }
        }
        let mut one = buf[..v].to_vec();
        mask_one(&mut one, &masks[0]);
        assert!(b(&one) == want[..v], "mask_one, {what}, v={v}");
    }

    /// Masks of `v` tokens whose allowed and forbidden runs sit where the skipping paths
    /// decide: the first and last 16-token run, the last (partial) 64-token word, 512-token
    /// block edges, one token forbidden or allowed alone, and random mixes of whole words,
    /// single clear bits and noise. `pad` is the value of the mask bits past `v` (the tables
    /// zero them; a path must ignore them either way).
    fn edge_masks(v: usize, pad: bool, z: &mut u64) -> Vec<Vec<u8>> {
        let width = v.div_ceil(64) * 8;
        let from = |allowed: &dyn Fn(usize) -> bool| {
            let mut m = vec![0u8; width];
            for t in 0..width * 8 {
                if (t < v && allowed(t)) || (t >= v && pad) {
                    m[t / 8] |= 1 << (t % 8);
                }
            }
            m
        };
        let last_run = v - 1 - (v - 1) % 16;
        let last_word = v - 1 - (v - 1) % 64;
        let mut out = vec![
            from(&|_| true),
            from(&|_| false),
            from(&|t| t != 0),
            from(&|t| t != v - 1),
            from(&|t| t >= 16),
            from(&|t| t < last_run),
            from(&|t| t < last_word),
            from(&|t| t < 16),
            from(&|t| t >= last_run),
            from(&|t| t == v - 1),
            from(&|t| t == 0),
            from(&|t| t % 512 != 511 && t % 512 != 0),
            from(&|t| t % 512 == 511 || t % 512 == 0),
            from(&|t| t % 64 != 63),
            from(&|t| (t / 16) % 2 == 0),
            // Every 8-token group forbids one token, at a place that moves from group to
            // group: every block dirty in every group, for each store width, each group's bits
            // its own (a wrong offset writes the wrong ones).
            from(&|t| t % 8 != (t / 8) % 8),
            // Such blocks between blocks that allow everything.
            from(&|t| (t / 512) % 2 == 0 || t % 8 != (t / 8) % 8),
        ];
        for _ in 0..4 {
            let kinds: Vec<u64> = (0..v.div_ceil(64)).map(|_| splitmix(z)).collect();
            out.push(from(&|t| {
                let k = kinds[t / 64];
                match k % 5 {
                    0 | 1 => true,
                    2 => false,
                    3 => t % 64 != (k >> 8) as usize % 64,
                    _ => (k >> (t % 64)) & 1 == 1,
                }
            }));
        }
        out
    }

    fn skipping_paths_are_naive<L: Logit>(from_bits: impl Fn(u64) -> L, bits: impl Fn(L) -> u64) {
        if Avx512::detect().is_none() {
            eprintln!("no AVX-512 on this CPU: only the portable path is checked");
        }
        let mut z = 1u64;
        let lengths = (1..=70usize).chain([
            127, 128, 129, 255, 256, 257, 300, 511, 512, 513, 575, 576, 577, 1000, 1023, 1024, 1025, 1553,
            4095, 4096, 4097, 8191, 32_773, 128_256, 131_072,
        ]);
        for v in lengths {
            for pad in [false, true] {
                let masks = edge_masks(v, pad, &mut z);
                // Every mask as row 0 (alone, and with mask_one), and all of them in one batch.
                if v <= 4097 {
                    for m in &masks {
                        both_paths_are_naive(
                            v,
                            std::slice::from_ref(m),
                            &mut z,
                            &from_bits,
                            &bits,
                            "one row",
                        );
                    }
                }
                both_paths_are_naive(v, &masks, &mut z, &from_bits, &bits, &format!("pad={pad}"));
            }
            // Random bits of every density.
            for density in 0..=8u64 {
                let masks: Vec<Vec<u8>> = (0..3)
                    .map(|_| {
                        let mut mask = vec![0u8; v.div_ceil(64) * 8];
                        for (i, b) in mask.iter_mut().enumerate() {
                            *b = (0..8).fold(0u8, |acc, j| {
                                acc | (u8::from(splitmix(&mut z) % 8 < density) << j)
                            });
                            if i * 8 >= v {
                                *b = 0;
                            }
                        }
                        mask
                    })
                    .collect();
                both_paths_are_naive(
                    v,
                    &masks,
                    &mut z,
                    &from_bits,
                    &bits,
                    &format!("density {density}/8"),
                );
            }
        }
    }

    #[test]
    fn skipping_paths_are_naive_f32() {
        skipping_paths_are_naive::<f32>(|x| f32::from_bits(x as u32), |x| u64::from(x.to_bits()));
    }
    #[test]
    fn skipping_paths_are_naive_f64() {
        skipping_paths_are_naive::<f64>(f64::from_bits, f64::to_bits);
    }
    #[cfg(feature = "half")]
    #[test]
    fn skipping_paths_are_naive_f16() {
        skipping_paths_are_naive::<half::f16>(|x| half::f16::from_bits(x as u16), |x| u64::from(x.to_bits()));
    }
    #[cfg(feature = "half")]
    #[test]
    fn skipping_paths_are_naive_bf16() {
        skipping_paths_are_naive::<half::bf16>(
            |x| half::bf16::from_bits(x as u16),
            |x| u64::from(x.to_bits()),
        );
    }

    /// Every state's mask of `tables`, one row per state: both paths equal `naive`.
    fn every_state_is_naive(tables: crate::Tables<'_>, what: &str) {
        let v = tables.vocab_size();
        let masks: Vec<Vec<u8>> = (0..tables.num_states() as u16)
            .map(|s| tables.mask(s).padded_bytes().to_vec())
            .collect();
        let mut z = 3u64;
        let f32_bits = |x: f32| u64::from(x.to_bits());
        let f32_from = |x: u64| f32::from_bits(x as u32);
        for chunk in masks.chunks(64) {
            both_paths_are_naive(v, chunk, &mut z, &f32_from, &f32_bits, what);
        }
        #[cfg(feature = "half")]
        for chunk in masks.chunks(64) {
            let from = |x: u64| half::bf16::from_bits(x as u16);
            let bits = |x: half::bf16| u64::from(x.to_bits());
            both_paths_are_naive(v, chunk, &mut z, &from, &bits, what);
        }
    }

    /// A byte-level vocabulary of `n` tokens built here (no tokenizer file): the 256 bytes,
    /// then pieces of text in several scripts, some cut inside a character, in random order,
    /// so that a word start allows most tokens and a state inside a character few.
    fn byte_level_tables(n: usize, seed: u64) -> Vec<u8> {
        use kernels_gen::Token;
        let mut z = seed;
        let mut seen = std::collections::BTreeSet::new();
        let mut tokens: Vec<Token> = (0..=255u8).map(|b| Token::Bytes(vec![b])).collect();
        let scripts: [(u32, u32); 5] = [
            (0x61, 0x7A),
            (0xE0, 0xFF),
            (0x430, 0x44F),
            (0x4E00, 0x4EFF),
            (0x1F600, 0x1F64F),
        ];
        while tokens.len() < n - 1 {
            let mut text = String::new();
            if splitmix(&mut z).is_multiple_of(3) {
                text.push(' ');
            }
            let (lo, hi) = scripts[(splitmix(&mut z) % 5) as usize];
            for _ in 0..1 + splitmix(&mut z) % 4 {
                text.push(
                    char::from_u32(lo + (splitmix(&mut z) % u64::from(hi - lo + 1)) as u32).unwrap_or('x'),
                );
            }
            let mut bytes = text.into_bytes();
            if bytes.len() > 2 && splitmix(&mut z).is_multiple_of(4) {
                let cut = 1 + (splitmix(&mut z) as usize) % (bytes.len() - 1);
                bytes = if splitmix(&mut z).is_multiple_of(2) {
                    bytes[..cut].to_vec()
                } else {
                    bytes[cut..].to_vec()
                };
            }
            if seen.insert(bytes.clone()) {
                tokens.push(Token::Bytes(bytes));
            }
        }
        tokens.push(Token::Special("</s>".into()));
        let eos = Some(n as u32 - 1);
        let vocab = kernels_gen::Vocabulary::new("byte-level", tokens, eos, 0).unwrap();
        kernels_gen::generate(&kernels_gen::DecoderSpec::new(vocab))
            .unwrap()
            .to_blob()
    }

    #[test]
    fn every_state_of_the_default_decoder_is_naive() {
        every_state_is_naive(crate::Utf8Words::TABLES, "Utf8Words");
        let mut spec = kernels_gen::DecoderSpec::utf8_bytes();
        spec.layout = kernels_gen::Layout::Classes;
        let blob = kernels_gen::generate(&spec).unwrap().to_blob();
        every_state_is_naive(crate::Tables::from_bytes(&blob).unwrap(), "Utf8Words, classes");
    }

    /// A large vocabulary (V = 20,011: no multiple of 16 or 64), every state, on both paths;
    /// its word start leaves most 64-token words fully allowed, and the skipping paths are
    /// exercised where it matters.
    #[test]
    fn every_state_of_a_large_byte_level_vocabulary_is_naive() {
        let blob = byte_level_tables(20_011, 9);
        let tables = crate::Tables::from_bytes(&blob).unwrap();
        assert_eq!(tables.vocab_size(), 20_011);
        let start = tables.mask(tables.start());
        assert!(start.count() > tables.vocab_size() / 2, "{}", start.count());
        every_state_is_naive(tables, "byte-level 20,011");
    }
}

/// Masks one row whose mask the caller has found, for callers that mask row by row
/// ([`crate::WordBatch::step`] on a batch of fewer than 16 rows): [`mask_row`]'s result,
/// without the per-call set-up of [`mask_rows`] (its checks over the batch, the division by
/// the mask width). `mask` must hold a bit for every logit of `row`, which a mask of the
/// tables does for a row of `V` logits; a short mask leaves the logits past it alone.
#[inline]
pub(crate) fn mask_one_row<L: Logit>(avx: Option<Avx512>, row: &mut [L], mask: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx) = avx {
        return one_row::mask(avx, row, mask);
    }
    let _ = avx;
    mask_row(row, mask);
}

/// The AVX-512 masked stores of [`mask_one_row`]: per 64 logits one little-endian mask word,
/// stored as `64 / LANES` masked stores of `-inf` into exactly the forbidden lanes.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod one_row {
    use super::{Avx512, Logit};
    use std::arch::x86_64::*;
    use std::mem::size_of;

    #[inline]
    pub(super) fn mask<L: Logit>(_: Avx512, row: &mut [L], mask: &[u8]) {
        // SAFETY: the CPU has the features these functions enable (an `Avx512` exists).
        unsafe {
            match size_of::<L>() {
                2 => row16(row, mask),
                4 => row32(row, mask),
                _ => row64(row, mask),
            }
        }
    }

    /// The whole 64-logit words of `row` that `mask` covers through `store(pointer to 64
    /// logits, forbidden bits)`, then the rest through the portable [`super::mask_row`].
    #[inline(always)]
    fn words<L: Logit>(row: &mut [L], mask: &[u8], store: impl Fn(*mut L, u64)) {
        let whole = (row.len() / 64).min(mask.len() / 8);
        let (head, rest) = row.split_at_mut(whole * 64);
        let (head_mask, rest_mask) = mask.split_at(whole * 8);
        for (chunk, m) in head.chunks_exact_mut(64).zip(head_mask.chunks_exact(8)) {
            let bits = u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]]);
            // A word the mask allows whole is not stored to at all: in a real decoder's masks
            // most words are (at a character boundary, the first 128 bytes), and a masked store
            // of nothing costs what a store costs.
            if bits != u64::MAX {
                store(chunk.as_mut_ptr(), !bits);
            }
        }
        if !rest.is_empty() {
            super::mask_row(rest, rest_mask);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn row16<L: Logit>(row: &mut [L], mask: &[u8]) {
        let neg = _mm512_set1_epi16(L::NEG_INFINITY_BITS as u16 as i16);
        words(row, mask, |p, f| {
            for j in 0..2 {
                // SAFETY: `p` points at 64 logits of 2 bytes inside the row (`words`); -inf's
                // bits are a valid L.
                unsafe { _mm512_mask_storeu_epi16(p.add(32 * j).cast(), (f >> (32 * j)) as u32, neg) };
            }
        });
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn row32<L: Logit>(row: &mut [L], mask: &[u8]) {
        let neg = _mm512_set1_epi32(L::NEG_INFINITY_BITS as u32 as i32);
        words(row, mask, |p, f| {
            for j in 0..4 {
                // SAFETY: as in `row16`, 64 logits of 4 bytes.
                unsafe { _mm512_mask_storeu_epi32(p.add(16 * j).cast(), (f >> (16 * j)) as u16, neg) };
            }
        });
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn row64<L: Logit>(row: &mut [L], mask: &[u8]) {
        let neg = _mm512_set1_epi64(L::NEG_INFINITY_BITS as i64);
        words(row, mask, |p, f| {
            for j in 0..8 {
                // SAFETY: as in `row16`, 64 logits of 8 bytes.
                unsafe { _mm512_mask_storeu_epi64(p.add(8 * j).cast(), (f >> (8 * j)) as u8, neg) };
            }
        });
    }
}

#[cfg(test)]
mod one_row_tests {
    use super::*;

    /// The first index where `got` and `want` differ, with both values (not the rows whole:
    /// 4,096 logits would bury the failure).
    fn first_difference(got: &[u64], want: &[u64]) -> Option<(usize, u64, u64)> {
        got.iter()
            .zip(want)
            .enumerate()
            .find(|(_, (g, w))| g != w)
            .map(|(i, (&g, &w))| (i, g, w))
    }

    /// `mask_one_row` (AVX-512 where the CPU has it) writes exactly what `mask_row` writes,
    /// bit for bit, per dtype, for row lengths around every 64-logit word and masks of every
    /// density; a mask shorter than the row leaves the logits past it untouched.
    fn one_row_equals_portable<L: Logit>(from_bits: impl Fn(u64) -> L, bits: impl Fn(L) -> u64) {
        let mut z = 7u64;
        let mut next = || {
            z ^= z << 13;
            z ^= z >> 7;
            z ^= z << 17;
            z
        };
        for v in (1..=130usize).chain([255, 256, 257, 300, 4096, 4097]) {
            for density in 0..=8u64 {
                let mut mask = vec![0u8; v.div_ceil(64) * 8];
                for b in mask.iter_mut() {
                    *b = (0..8).fold(0u8, |acc, j| acc | (u8::from(next() % 8 < density) << j));
                }
                let row: Vec<L> = (0..v).map(|_| from_bits(next())).collect();
                let b = |x: &[L]| x.iter().map(|&y| bits(y)).collect::<Vec<_>>();
                let mut want = row.clone();
                mask_row(&mut want, &mask);
                let mut got = row.clone();
                mask_one_row(Avx512::detect(), &mut got, &mask);
                assert_eq!(
                    first_difference(&b(&got), &b(&want)),
                    None,
                    "v={v} density={density}"
                );
                // Only the first word of the mask: the logits past 64 are left alone.
                let mut short = row.clone();
                mask_one_row(Avx512::detect(), &mut short, &mask[..8]);
                let mut want = row.clone();
                mask_row(&mut want[..v.min(64)], &mask[..8]);
                assert_eq!(
                    first_difference(&b(&short), &b(&want)),
                    None,
                    "short mask, v={v} density={density}"
                );
                // The portable path on its own, which a CPU without AVX-512 takes above.
                let mut portable = row.clone();
                mask_row(&mut portable, &mask[..8]);
                assert_eq!(
                    first_difference(&b(&portable), &b(&want)),
                    None,
                    "short mask, portable, v={v} density={density}"
                );
            }
        }
    }

    #[test]
    fn one_row_equals_the_portable_mask_f32() {
        one_row_equals_portable::<f32>(|x| f32::from_bits(x as u32), |x| u64::from(x.to_bits()));
    }
    #[test]
    fn one_row_equals_the_portable_mask_f64() {
        one_row_equals_portable::<f64>(f64::from_bits, f64::to_bits);
    }
    #[cfg(feature = "half")]
    #[test]
    fn one_row_equals_the_portable_mask_f16() {
        one_row_equals_portable::<half::f16>(|x| half::f16::from_bits(x as u16), |x| u64::from(x.to_bits()));
    }
    #[cfg(feature = "half")]
    #[test]
    fn one_row_equals_the_portable_mask_bf16() {
        one_row_equals_portable::<half::bf16>(
            |x| half::bf16::from_bits(x as u16),
            |x| u64::from(x.to_bits()),
        );
    }
}
