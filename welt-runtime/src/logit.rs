//! The element types a logits buffer may have.

/// A logit type the mask can be applied to: `f32`, `f64`, `half::f16`, `half::bf16`.
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
