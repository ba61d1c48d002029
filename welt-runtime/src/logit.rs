//! The element types a logits buffer may have.

/// A logit type the mask can be applied to: `f32`, `f64`, `half::f16`, `half::bf16`.
pub trait Logit: Copy + sealed::Sealed + 'static {
    /// The value written where a token is forbidden.
    const NEG_INFINITY: Self;
    /// The value as an `f32` (for choosing a token).
    fn to_f32(self) -> f32;
    /// Masks one row.
    #[doc(hidden)]
    #[inline]
    fn mask_row(row: &mut [Self], mask: &[u8]) {
        mask_row(row, mask)
    }
}

impl Logit for f32 {
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn mask_row(row: &mut [f32], mask: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        {
            if row.len() >= 4096 && std::arch::is_x86_feature_detected!("avx512f") {
                return x86::mask_f32_avx512(row, mask);
            }
        }
        mask_row(row, mask)
    }
}
impl Logit for f64 {
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    fn to_f32(self) -> f32 {
        self as f32
    }
}
impl Logit for half::f16 {
    const NEG_INFINITY: half::f16 = half::f16::NEG_INFINITY;
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}
impl Logit for half::bf16 {
    const NEG_INFINITY: half::bf16 = half::bf16::NEG_INFINITY;
    fn to_f32(self) -> f32 {
        half::bf16::to_f32(self)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// Writes `-inf` into every logit of `row` whose bit in `mask` (little-endian u64 words) is
/// clear. `row.len()` is the vocabulary size and `mask` holds `ceil(len / 64) * 8` bytes.
///
/// Masks of real decoders are runs: whole 64-token words are either kept (skipped) or
/// forbidden, and a mixed word is mostly whole bytes (for the byte decoder at a character
/// boundary, 0xC0-0xFF is `fc ff ff ff ff ff 1f 00`). This is the hot loop of
/// `WordBatch::apply_mask`; `welt bench` showed where its time went, hence:
///
/// - a whole forbidden word is written through a `[L; 64]` array, so the compiler emits a
///   fixed run of vector stores instead of a loop that recomputes the chunk's length and tail;
/// - in a mixed word, each fully forbidden byte is written as one `[L; 8]` and only the bits
///   of partly forbidden bytes one by one (5 single stores at a boundary instead of 13).
///
/// On the bench's byte streams (x86-64, f32, B = 32) this took the mask from about 23 to 14
/// ns per row.
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

/// The mask of a large row as AVX-512 masked stores: per 16 logits one store of `-inf` into
/// exactly the forbidden lanes, no branch on the row's state. For a large vocabulary the
/// forbidden tokens are scattered over most of the row's cache lines, so the scalar loop's
/// per-bit stores were the cost (`welt bench --vocab 131072`: 38 -> 23 µs per row, the floor
/// being 22). For rows of 256 logits, in L1, the scalar loop measured faster (9 against 15 ns).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use std::arch::x86_64::*;

    pub(super) fn mask_f32_avx512(row: &mut [f32], mask: &[u8]) {
        assert!(mask.len() * 8 >= row.len(), "a mask bit for every logit");
        // SAFETY: called only after `is_x86_feature_detected!("avx512f")` returned true.
        unsafe { f32_avx512(row, mask) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn f32_avx512(row: &mut [f32], mask: &[u8]) {
        let neg = _mm512_set1_ps(f32::NEG_INFINITY);
        let whole = row.len() / 16;
        let p = row.as_mut_ptr();
        for i in 0..whole {
            let forbid: __mmask16 = !u16::from_le_bytes([mask[2 * i], mask[2 * i + 1]]);
            // SAFETY: i < len / 16, so lanes 16i..16i + 16 lie inside `row`.
            unsafe { _mm512_mask_storeu_ps(p.add(16 * i), forbid, neg) };
        }
        for t in 16 * whole..row.len() {
            if mask[t / 8] >> (t % 8) & 1 == 0 {
                row[t] = f32::NEG_INFINITY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 path (used for rows of 4096 logits and more, where it measured about 1.7x
    /// faster than the scalar loop: the mask of a large vocabulary touches most cache lines)
    /// writes exactly what the scalar `mask_row` writes, bit for bit, for row lengths around
    /// and past every vector boundary and masks of every density. The scalar `mask_row` is
    /// checked against an independent computation in the integration tests.
    #[test]
    fn avx512_mask_equals_the_scalar_mask() {
        #[cfg(target_arch = "x86_64")]
        {
            if !std::arch::is_x86_feature_detected!("avx512f") {
                eprintln!("no AVX-512 on this CPU: only the scalar path runs here");
                return;
            }
            let mut z = 1u64;
            let mut next = move || {
                z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut x = z;
                x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                x ^ (x >> 31)
            };
            for v in (1..=70usize).chain([255, 256, 300, 4095, 4096, 4097, 131_072]) {
                for density in 0..=8u64 {
                    let mut mask = vec![0u8; v.div_ceil(64) * 8];
                    for (i, b) in mask.iter_mut().enumerate() {
                        *b = (0..8).fold(0u8, |acc, j| acc | (u8::from(next() % 8 < density) << j));
                        if i * 8 >= v {
                            *b = 0;
                        }
                    }
                    let row: Vec<f32> = (0..v).map(|i| f32::from_bits(next() as u32 ^ i as u32)).collect();
                    let mut want = row.clone();
                    mask_row(&mut want, &mask);
                    let mut got = row.clone();
                    x86::mask_f32_avx512(&mut got, &mask);
                    let bits = |r: &[f32]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "v={v} density={density}");
                    let mut dispatched = row.clone();
                    <f32 as Logit>::mask_row(&mut dispatched, &mask);
                    assert_eq!(bits(&dispatched), bits(&want), "dispatch v={v}");
                }
            }
        }
    }
}
