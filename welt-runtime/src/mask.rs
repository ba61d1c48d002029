//! The mask: `-inf` into the logits of forbidden tokens, row by row, for every element type a
//! logits buffer may have ([`Logit`]). The portable code and, on x86-64 with AVX-512, its
//! masked-store twin ([`x86`]), which the tests hold to the portable code bit for bit.

use crate::cpu::Avx512;
use crate::error::{Error, ErrorKind};

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
/// `states[r]`, whose mask is the `width` bytes at `states[r] * width` in `masks`; rows whose
/// `finished` flag is set are left alone.
#[derive(Clone, Copy)]
pub(crate) struct MaskRows<'a> {
    pub states: &'a [u16],
    pub finished: &'a [bool],
    pub masks: &'a [u8],
    pub width: usize,
    pub stride: usize,
}

impl MaskRows<'_> {
    /// Calls `f(row logits, row mask)` for every running row. A row or a mask past its buffer
    /// (which the callers rule out) is skipped: never a panic, never an access out of bounds.
    #[inline(always)]
    fn each<L>(self, logits: &mut [L], v: usize, mut f: impl FnMut(&mut [L], &[u8])) {
        for (row, (&state, &done)) in self.states.iter().zip(self.finished).enumerate() {
            if done {
                continue;
            }
            let at = usize::from(state) * self.width;
            let start = row * self.stride;
            if let (Some(mask), Some(logits)) = (
                self.masks.get(at..at + self.width),
                logits.get_mut(start..start + v),
            ) {
                f(logits, mask);
            }
        }
    }
}

/// Masks the `v` logits of each of `rows` in place. The hot loop of
/// [`crate::WordBatch::apply_mask`].
///
/// With an [`Avx512`] (x86-64 with AVX-512 F/BW/VL) every row is written with masked vector
/// stores: per 16 `f32` (8 `f64`, 32 `f16`/`bf16`) one store of `-inf` into exactly the
/// forbidden lanes, with no branch on the mask's content, so the cost does not depend on
/// which states the rows are in (`welt bench` prints the mask's cost). Elsewhere, the portable
/// [`mask_row`].
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
/// clear. `row.len()` is the vocabulary size and `mask` holds `ceil(len / 64) * 8` bytes.
///
/// Masks of real decoders are runs: whole 64-token words are either kept (skipped) or
/// forbidden, and a mixed word is mostly whole bytes (for the byte decoder at a character
/// boundary, 0xC0-0xFF is `fc ff ff ff ff ff 1f 00`). This is the portable path of
/// `WordBatch::apply_mask` (CPUs without AVX-512, and the tails of long rows), and it spends
/// its time in stores, hence:
///
/// - a whole forbidden word is written through a `[L; 64]` array, so the compiler emits a
///   fixed run of vector stores instead of a loop that recomputes the chunk's length and tail;
/// - in a mixed word, each fully forbidden byte is written as one `[L; 8]` and only the bits
///   of partly forbidden bytes one by one (5 single stores at a boundary instead of 13).
#[inline]
pub(crate) fn mask_row<L: Logit>(row: &mut [L], mask: &[u8]) {
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
    fn each_row<L>(rows: MaskRows<'_>, logits: &mut [L], v: usize, mut f: impl FnMut(&mut [L], &[u8])) {
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
            f(r, m);
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

    /// One row through masked stores of `LANES` lanes. The row goes 256 logits at a time,
    /// a fixed run of stores that the compiler lays out straight (for `f32`, 16 stores, each
    /// with its own 16 mask bits); what is left after the last 256 goes to the portable
    /// [`super::mask_row`], out of line, so that nothing of it (no spilled vector, no extra
    /// live register) weighs on the stores of the common row.
    #[inline(always)]
    fn row<L: Logit, const LANES: usize>(row: &mut [L], mask: &[u8], store: impl Fn(*mut L, u64)) {
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

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn rows16<L: Logit>(logits: &mut [L], v: usize, rows: MaskRows<'_>) {
        debug_assert_eq!(size_of::<L>(), 2);
        let neg = _mm512_set1_epi16(L::NEG_INFINITY_BITS as u16 as i16);
        each_row(rows, logits, v, |r, mask| {
            // SAFETY: `p` points at 32 lanes of 2 bytes inside the row (see `row`); L is a
            // 2-byte float, so writing its -inf bit pattern as i16 is a valid L.
            row::<L, 32>(r, mask, move |p, f| unsafe {
                _mm512_mask_storeu_epi16(p.cast(), f as u32, neg)
            });
        });
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn rows32<L: Logit>(logits: &mut [L], v: usize, rows: MaskRows<'_>) {
        debug_assert_eq!(size_of::<L>(), 4);
        let neg = _mm512_set1_epi32(L::NEG_INFINITY_BITS as u32 as i32);
        each_row(rows, logits, v, |r, mask| {
            // SAFETY: as in `rows16`, with 16 lanes of 4 bytes.
            row::<L, 16>(r, mask, move |p, f| unsafe {
                _mm512_mask_storeu_epi32(p.cast(), f as u16, neg)
            });
        });
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn rows64<L: Logit>(logits: &mut [L], v: usize, rows: MaskRows<'_>) {
        debug_assert_eq!(size_of::<L>(), 8);
        let neg = _mm512_set1_epi64(L::NEG_INFINITY_BITS as i64);
        each_row(rows, logits, v, |r, mask| {
            // SAFETY: as in `rows16`, with 8 lanes of 8 bytes.
            row::<L, 8>(r, mask, move |p, f| unsafe {
                _mm512_mask_storeu_epi64(p.cast(), f as u8, neg)
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Per dtype: the dispatched `mask_rows` (AVX-512 masked stores on a CPU that has them)
    /// writes exactly what the portable `mask_row` writes, bit for bit, on several rows of
    /// one strided buffer (the padding between rows and a finished row untouched), for row
    /// lengths around and past every vector boundary and masks of every density. `mask_row` itself is checked
    /// against an independent computation in the integration tests.
    fn dispatched_equals_portable<L: Logit + PartialEq + std::fmt::Debug>(
        from_bits: impl Fn(u64) -> L,
        bits: impl Fn(L) -> u64,
    ) {
        if Avx512::detect().is_none() {
            eprintln!("no AVX-512 on this CPU: the dispatch takes the portable path");
        }
        let mut z = 1u64;
        for v in (1..=70usize).chain([127, 128, 129, 255, 256, 300, 4095, 4096, 4097, 131_072]) {
            let rows = if v > 5000 { 2 } else { 3 };
            let stride = v + 5;
            for density in 0..=8u64 {
                let masks: Vec<Vec<u8>> = (0..rows)
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
                let buf: Vec<L> = (0..rows * stride).map(|_| from_bits(splitmix(&mut z))).collect();
                // Row 1 has finished: the mask leaves it alone.
                let finished: Vec<bool> = (0..rows).map(|r| r == 1).collect();
                let mut want = buf.clone();
                for (r, m) in masks.iter().enumerate().filter(|&(r, _)| !finished[r]) {
                    mask_row(&mut want[r * stride..r * stride + v], m);
                }
                let mut got = buf.clone();
                let all: Vec<u8> = masks.concat();
                let states: Vec<u16> = (0..rows as u16).collect();
                let batch = MaskRows {
                    states: &states,
                    finished: &finished,
                    masks: &all,
                    width: masks[0].len(),
                    stride,
                };
                mask_rows(Avx512::detect(), &mut got, v, batch);
                let b = |x: &[L]| x.iter().map(|&y| bits(y)).collect::<Vec<_>>();
                assert_eq!(b(&got), b(&want), "v={v} density={density}");
                let mut one = buf[..v].to_vec();
                mask_one(&mut one, &masks[0]);
                assert_eq!(b(&one), b(&want[..v]), "one row, v={v} density={density}");
            }
        }
    }

    #[test]
    fn masked_stores_equal_the_portable_mask_f32() {
        dispatched_equals_portable::<f32>(|x| f32::from_bits(x as u32), |x| u64::from(x.to_bits()));
    }
    #[test]
    fn masked_stores_equal_the_portable_mask_f64() {
        dispatched_equals_portable::<f64>(f64::from_bits, f64::to_bits);
    }
    #[cfg(feature = "half")]
    #[test]
    fn masked_stores_equal_the_portable_mask_f16() {
        dispatched_equals_portable::<half::f16>(
            |x| half::f16::from_bits(x as u16),
            |x| u64::from(x.to_bits()),
        );
    }
    #[cfg(feature = "half")]
    #[test]
    fn masked_stores_equal_the_portable_mask_bf16() {
        dispatched_equals_portable::<half::bf16>(
            |x| half::bf16::from_bits(x as u16),
            |x| u64::from(x.to_bits()),
        );
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
                assert_eq!(b(&got), b(&want), "v={v} density={density}");
                // Only the first word of the mask: the logits past 64 are left alone.
                let mut short = row.clone();
                mask_one_row(Avx512::detect(), &mut short, &mask[..8]);
                let mut want = row.clone();
                mask_row(&mut want[..v.min(64)], &mask[..8]);
                assert_eq!(b(&short), b(&want), "short mask, v={v} density={density}");
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
