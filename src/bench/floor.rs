//! The floor: one pass writing every logit of the batch and nothing else, the least any mask
//! applied by writing into the logits can cost.

/// The floor's one pass: `-inf` into every logit with the widest stores this CPU has —
/// 64-byte AVX-512 stores, else 32-byte AVX2 stores (detected at run time, once per pass,
/// as welt's mask detects AVX-512), else [`floor_baseline_pass`].
///
/// A floor must be the least a pass over the logits can cost on the machine at hand: welt's
/// mask writes with AVX-512 masked stores, so a floor held to 16-byte stores would flatter
/// welt (`welt bench` prints both floors).
#[inline(never)]
pub fn floor_pass(logits: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return wide::avx512(logits);
        }
        if std::arch::is_x86_feature_detected!("avx") {
            return wide::avx(logits);
        }
    }
    floor_baseline_pass(logits)
}

/// The stores [`floor_pass`] uses on this CPU, for the report.
pub fn floor_stores() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "64-byte AVX-512 stores";
        }
        if std::arch::is_x86_feature_detected!("avx") {
            return "32-byte AVX stores";
        }
    }
    "the baseline target's stores"
}

/// The floor's pass as the compiler writes it for the baseline target: `-inf` into every
/// logit, 64 at a time through a `[f32; 64]` (sixteen 16-byte stores per chunk on x86-64).
///
/// Why not `logits.fill(..)`: that compiles to a tiny loop of two 16-byte stores whose speed
/// depends on where the linker happens to place it: the same machine code is far slower when
/// the loop straddles two 32-byte blocks of code than when it sits inside one (the front end,
/// not the stores, is then the limit). The unrolled chunk makes the stores the limit wherever
/// the code lands.
#[inline(never)]
pub fn floor_baseline_pass(logits: &mut [f32]) {
    let mut chunks = logits.chunks_exact_mut(64);
    for chunk in &mut chunks {
        if let Ok(chunk) = <&mut [f32; 64]>::try_from(chunk) {
            *chunk = [f32::NEG_INFINITY; 64];
        }
    }
    chunks.into_remainder().fill(f32::NEG_INFINITY);
}

/// The floor's wide stores. (Left to itself the compiler turns a `[f32; 64]` assignment in
/// an AVX-512 function into scatter stores, far slower than plain ones; hence the
/// intrinsics.)
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod wide {
    use std::arch::x86_64::*;

    pub(super) fn avx512(logits: &mut [f32]) {
        assert!(std::arch::is_x86_feature_detected!("avx512f"));
        // SAFETY: the CPU has AVX-512F (asserted above).
        unsafe { avx512_pass(logits) }
    }

    pub(super) fn avx(logits: &mut [f32]) {
        assert!(std::arch::is_x86_feature_detected!("avx"));
        // SAFETY: the CPU has AVX (asserted above).
        unsafe { avx_pass(logits) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_pass(logits: &mut [f32]) {
        let neg = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut chunks = logits.chunks_exact_mut(64);
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr();
            // SAFETY: the chunk holds 64 f32: four stores of 16 lanes at 0, 16, 32, 48.
            unsafe {
                _mm512_storeu_ps(p, neg);
                _mm512_storeu_ps(p.add(16), neg);
                _mm512_storeu_ps(p.add(32), neg);
                _mm512_storeu_ps(p.add(48), neg);
            }
        }
        chunks.into_remainder().fill(f32::NEG_INFINITY);
    }

    #[target_feature(enable = "avx")]
    unsafe fn avx_pass(logits: &mut [f32]) {
        let neg = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut chunks = logits.chunks_exact_mut(64);
        for chunk in &mut chunks {
            let p = chunk.as_mut_ptr();
            for i in 0..8 {
                // SAFETY: the chunk holds 64 f32: eight stores of 8 lanes at 8i, i < 8.
                unsafe { _mm256_storeu_ps(p.add(8 * i), neg) };
            }
        }
        chunks.into_remainder().fill(f32::NEG_INFINITY);
    }

    #[cfg(test)]
    mod tests {
        /// Each wide pass this CPU can run writes `-inf` into every logit and nothing past
        /// the slice, for lengths around every chunk boundary.
        #[test]
        fn wide_floors_write_every_logit_and_nothing_else() {
            type Pass = fn(&mut [f32]);
            let passes: [(&str, Pass); 2] = [("avx512f", super::avx512), ("avx", super::avx)];
            for (feature, pass) in passes {
                let have = match feature {
                    "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
                    _ => std::arch::is_x86_feature_detected!("avx"),
                };
                if !have {
                    eprintln!("no {feature} on this CPU: that pass is not run");
                    continue;
                }
                for n in (0..=200).chain([255, 256, 257, 1023, 1024, 8192]) {
                    let mut buf = vec![1.5f32; n + 16];
                    pass(&mut buf[..n]);
                    assert!(
                        buf[..n].iter().all(|&x| x == f32::NEG_INFINITY),
                        "{feature} n={n}"
                    );
                    assert!(
                        buf[n..].iter().all(|&x| x == 1.5),
                        "{feature} n={n} wrote past the slice"
                    );
                }
            }
        }
    }
}
