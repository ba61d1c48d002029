//! The CPU features welt's vector code needs, detected once.

/// Proof that the CPU has AVX-512 F, BW and VL, which every AVX-512 path of the batch uses
/// (the masked stores of the mask, the gathers of `advance`). Made only by
/// [`Avx512::detect`], so code that holds one may run those instructions without checking
/// again: CPU features do not change while a program runs. Never made off x86-64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// `Some` where the CPU has the features (std caches the answer).
    #[inline]
    pub(crate) fn detect() -> Option<Avx512> {
        #[cfg(target_arch = "x86_64")]
        {
            let has = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl");
            has.then_some(Avx512(()))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }
}

/// Proof that the CPU has AVX, whose 32-byte stores write a run of `-inf` in half the stores
/// of the baseline target's 16-byte ones (see `sparse`). Made only by [`Avx::detect`], so
/// code that holds one may run AVX instructions without checking again. Never made off
/// x86-64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx(());

impl Avx {
    /// `Some` where the CPU has AVX (std caches the answer).
    #[inline]
    pub(crate) fn detect() -> Option<Avx> {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx").then_some(Avx(()))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }
}
