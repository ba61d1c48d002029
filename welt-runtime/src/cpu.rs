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

/// Proof that the CPU has AVX2 (and so AVX), which the mask's 32-byte path uses on CPUs
/// without AVX-512. Made only by [`Avx2::detect`]; never made off x86-64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// `Some` where the CPU has the feature (std caches the answer).
    #[inline]
    pub(crate) fn detect() -> Option<Avx2> {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2").then_some(Avx2(()))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }
}

/// The widest vector code the mask runs on this CPU.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Vector {
    /// Masked 64-byte stores of exactly the forbidden lanes.
    Avx512(Avx512),
    /// The portable code compiled for AVX2: 32-byte stores.
    Avx2(Avx2),
    /// The baseline target's code (16-byte stores on x86-64).
    Portable,
}

impl Vector {
    /// The widest this CPU has.
    #[inline]
    pub(crate) fn detect() -> Vector {
        if let Some(avx) = Avx512::detect() {
            return Vector::Avx512(avx);
        }
        Avx2::detect().map_or(Vector::Portable, Vector::Avx2)
    }

    /// The AVX-512 proof, where this is the AVX-512 path.
    #[inline]
    pub(crate) fn avx512(self) -> Option<Avx512> {
        match self {
            Vector::Avx512(avx) => Some(avx),
            _ => None,
        }
    }

    /// Every path this CPU can run, the widest first: what the tests hold to each other.
    #[cfg(test)]
    pub(crate) fn every() -> Vec<(&'static str, Vector)> {
        let mut paths = Vec::new();
        if let Some(avx) = Avx512::detect() {
            paths.push(("AVX-512", Vector::Avx512(avx)));
        }
        if let Some(avx2) = Avx2::detect() {
            paths.push(("AVX2", Vector::Avx2(avx2)));
        }
        paths.push(("portable", Vector::Portable));
        paths
    }
}
