//! The element types a logits buffer may have.

/// A logit type the mask can be applied to: `f32`, `f64`, `half::f16`, `half::bf16`.
pub trait Logit: Copy + sealed::Sealed + 'static {
    /// The value written where a token is forbidden.
    const NEG_INFINITY: Self;
}

impl Logit for f32 {
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
}
impl Logit for f64 {
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
}
impl Logit for half::f16 {
    const NEG_INFINITY: half::f16 = half::f16::NEG_INFINITY;
}
impl Logit for half::bf16 {
    const NEG_INFINITY: half::bf16 = half::bf16::NEG_INFINITY;
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
/// forbidden (one `fill`, a memset), and only mixed words are walked bit by bit.
#[inline]
pub(crate) fn mask_row<L: Logit>(row: &mut [L], mask: &[u8]) {
    for (chunk, m) in row.chunks_mut(64).zip(mask.chunks_exact(8)) {
        let live = if chunk.len() == 64 {
            !0u64
        } else {
            (1u64 << chunk.len()) - 1
        };
        let bits = u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]]);
        let mut forbid = !bits & live;
        if forbid == 0 {
            continue;
        }
        if forbid == live {
            chunk.fill(L::NEG_INFINITY);
            continue;
        }
        while forbid != 0 {
            let i = forbid.trailing_zeros() as usize;
            if let Some(x) = chunk.get_mut(i) {
                *x = L::NEG_INFINITY;
            }
            forbid &= forbid - 1;
        }
    }
}
