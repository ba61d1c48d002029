//! Choosing a token from masked logits: greedy, or seeded temperature / top-k / top-p sampling.
//!
//! The same algorithm runs in the generated CUDA step kernel, so a CPU run and a GPU run with
//! the same seed draw the same random numbers:
//!
//! 1. scale: `x = logit * (1 / temperature)`; NaN and `-inf` are never chosen;
//! 2. greedy (a temperature below [`Sampler::GREEDY_BELOW`], 0 included): the largest logit in
//!    IEEE total order, lowest id on ties;
//! 3. top-k: keep every `x` at least the k-th largest (ties at the threshold are kept);
//! 4. weights `exp(x - max)`; top-p: keep the largest values whose weight is at least
//!    `top_p` of the kept total (the smallest such set, ties kept);
//! 5. one uniform `u` in [0, 1) from Philox-4x32-10 (Salmon et al., SC'11), key = seed,
//!    counter = (row, draw, 0, "welt"): the first token, in id order, whose running weight
//!    exceeds `u * total`.
//!
//! Where scaling leaves f32 (the largest `x` is `+inf`, or every allowed `x` is `-inf` though
//! the logits are finite), the distribution at that temperature is its limit: all of its mass
//! on the largest logit, as far as f32 can tell logits apart (two logits whose difference
//! `exp` could weigh are equal in f32 once `logit / temperature` overflows). The choice is
//! then the greedy one, on the unscaled logits.
//!
//! The GPU sums in another order and uses a fast `exp`, so on rare draws that land within
//! rounding of a boundary the two may pick neighbouring tokens; greedy is exact.

use crate::error::{Error, ErrorKind};
use crate::mask::Logit;

/// How to choose a token. [`Sampler::check`] says which values are valid; choosing with an
/// invalid sampler is an `Err`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// Finite and `>= 0`; below [`Sampler::GREEDY_BELOW`] (0 included): greedy.
    pub temperature: f32,
    /// Keep the `top_k` largest (ties kept); 0, or at least the vocabulary size: off.
    pub top_k: u32,
    /// Keep the smallest set of largest values with this share of the mass: in `(0, 1]`;
    /// 1: off.
    pub top_p: f32,
    /// The Philox key; with the row and the row's draw count it fixes every random number.
    pub seed: u64,
}

impl Sampler {
    /// Argmax, lowest id on ties.
    pub const GREEDY: Sampler = Sampler {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: 0,
    };

    /// Temperatures below this (`f32::MIN_POSITIVE`: 0 and the subnormals) choose greedily.
    /// Below about 2.9e-39 `1 / temperature` is not even finite, and at any temperature below
    /// this, logits more than about 1e-36 apart get weights whose ratio underflows f32.
    pub const GREEDY_BELOW: f32 = f32::MIN_POSITIVE;

    /// Seeded sampling at `temperature` with top-k and top-p off.
    pub fn with_temperature(temperature: f32, seed: u64) -> Sampler {
        Sampler {
            temperature,
            top_k: 0,
            top_p: 1.0,
            seed,
        }
    }

    /// `Ok` for a valid sampler: the temperature finite and `>= 0`, `top_p` in `(0, 1]`
    /// (every `top_k` and seed is valid). NaN, a negative or infinite temperature, and a
    /// `top_p` that is NaN, `<= 0` or `> 1` are an `Err` ([`ErrorKind::InvalidSampler`]).
    pub fn check(&self) -> Result<(), Error> {
        // Written so that NaN fails both tests.
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::new(ErrorKind::InvalidSampler(
                "the temperature must be a finite number >= 0 (0 is greedy)",
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::new(ErrorKind::InvalidSampler(
                "top-p must be greater than 0 and at most 1 (1 is off)",
            )));
        }
        Ok(())
    }

    /// Whether this sampler chooses greedily, with no random draw: a temperature below
    /// [`Sampler::GREEDY_BELOW`].
    pub fn is_greedy(&self) -> bool {
        self.temperature < Sampler::GREEDY_BELOW
    }

    /// Chooses a token from one row of logits (already masked: forbidden tokens are `-inf`).
    /// `row` and `draw` are the Philox counter: a caller keeps one draw count per row and
    /// passes it, incremented after each token sampled by a sampler that is not
    /// [greedy](Sampler::is_greedy). `Ok(None)` if no token has a finite logit; `Err` for an
    /// invalid sampler ([`Sampler::check`]).
    pub fn choose<L: Logit>(&self, logits: &[L], row: u32, draw: u32) -> Result<Option<u32>, Error> {
        self.check()?;
        if self.is_greedy() {
            return Ok(largest(logits, 1.0).map(|(_, i)| i as u32));
        }
        Ok(self.sample(logits, row, draw))
    }

    /// Steps 1 and 3-5 of the module doc, for a valid sampler that is not greedy.
    fn sample<L: Logit>(&self, logits: &[L], row: u32, draw: u32) -> Option<u32> {
        let inv_t = 1.0 / self.temperature;
        let x = |i: usize| -> Option<f32> { allowed(logits[i].to_f32() * inv_t) };
        let Some((m, argmax)) = largest(logits, inv_t).filter(|(m, _)| m.is_finite()) else {
            // Scaling left f32: the limit distribution, all on the largest logit.
            return largest(logits, 1.0).map(|(_, i)| i as u32);
        };
        let key = |v: f32| -> u32 {
            let u = v.to_bits();
            if u & 0x8000_0000 != 0 {
                !u
            } else {
                u | 0x8000_0000
            }
        };
        // top-k: the k-th largest key, by the same bitwise search as the kernel.
        let mut kth = 0u32;
        if self.top_k > 0 && (self.top_k as usize) < logits.len() {
            for bit in (0..32).rev() {
                let cand = kth | (1 << bit);
                let count = (0..logits.len())
                    .filter(|&i| x(i).is_some_and(|v| key(v) >= cand))
                    .count();
                if count >= self.top_k as usize {
                    kth = cand;
                }
            }
        }
        let weight = |i: usize, threshold: u32| -> f32 {
            match x(i) {
                Some(v) if key(v) >= threshold => (v - m).exp(),
                _ => 0.0,
            }
        };
        let z: f32 = (0..logits.len()).map(|i| weight(i, kth)).sum();
        let mut pth = kth;
        if self.top_p > 0.0 && self.top_p < 1.0 {
            let need = self.top_p * z;
            let mut acc = 0u32;
            for bit in (0..32).rev() {
                let cand = acc | (1 << bit);
                let tail: f32 = (0..logits.len()).map(|i| weight(i, kth.max(cand))).sum();
                if tail >= need {
                    acc = cand;
                }
            }
            pth = acc.max(kth);
        }
        let total: f32 = (0..logits.len()).map(|i| weight(i, pth)).sum();
        let target = philox_uniform(self.seed, row, draw) * total;
        let mut run = 0.0f32;
        for i in 0..logits.len() {
            let w = weight(i, pth);
            if w == 0.0 {
                continue;
            }
            run += w;
            if run > target {
                return Some(i as u32);
            }
        }
        Some(argmax as u32) // rounding left the target past the end
    }
}

/// A logit that can be chosen: not NaN, not `-inf`.
fn allowed(v: f32) -> Option<f32> {
    (!v.is_nan() && v != f32::NEG_INFINITY).then_some(v)
}

/// The largest allowed `logit * scale` in IEEE total order and its index, lowest on ties.
fn largest<L: Logit>(logits: &[L], scale: f32) -> Option<(f32, usize)> {
    let mut best: Option<(f32, usize)> = None;
    for (i, l) in logits.iter().enumerate() {
        if let Some(v) = allowed(l.to_f32() * scale) {
            if best.is_none_or(|(b, _)| v.total_cmp(&b).is_gt()) {
                best = Some((v, i));
            }
        }
    }
    best
}

/// Philox-4x32-10: the four output words for a counter and key.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for _ in 0..10 {
        let p0 = u64::from(0xD251_1F53u32) * u64::from(c0);
        let p1 = u64::from(0xCD9E_8D57u32) * u64::from(c2);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
        k0 = k0.wrapping_add(0x9E37_79B9);
        k1 = k1.wrapping_add(0xBB67_AE85);
    }
    [c0, c1, c2, c3]
}

/// The uniform in [0, 1) (24 random bits) that sampling uses for `row`'s `draw`-th draw.
pub fn philox_uniform(seed: u64, row: u32, draw: u32) -> f32 {
    let out = philox4x32_10([row, draw, 0, 0x7765_6c74], [seed as u32, (seed >> 32) as u32]);
    (out[0] >> 8) as f32 * (1.0 / 16_777_216.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    /// Known-answer vectors of Random123 (`kat_vectors`, philox4x32 with 10 rounds).
    #[test]
    fn philox_matches_random123() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn greedy_is_argmax_with_lowest_id_on_ties_and_skips_forbidden() {
        let l = [1.0f32, 3.0, f32::NEG_INFINITY, 3.0, f32::NAN];
        assert_eq!(Sampler::GREEDY.choose(&l, 0, 0), Ok(Some(1)));
        assert_eq!(Sampler::GREEDY.choose(&[f32::NEG_INFINITY; 3], 0, 0), Ok(None));
        // -0 < +0 in total order, as on the device.
        assert_eq!(Sampler::GREEDY.choose(&[-0.0f32, 0.0], 0, 0), Ok(Some(1)));
    }

    #[test]
    fn top_k_1_and_tiny_top_p_are_greedy() {
        let l: Vec<f32> = (0..50).map(|i| ((i * 37) % 50) as f32 * 0.1).collect();
        let argmax = Sampler::GREEDY.choose(&l, 0, 0);
        for draw in 0..100 {
            let k1 = Sampler {
                temperature: 1.0,
                top_k: 1,
                top_p: 1.0,
                seed: 5,
            };
            assert_eq!(k1.choose(&l, 3, draw), argmax);
            let p = Sampler {
                temperature: 1.0,
                top_k: 0,
                top_p: 1e-6,
                seed: 5,
            };
            assert_eq!(p.choose(&l, 3, draw), argmax);
        }
    }

    #[test]
    fn sampling_never_picks_a_forbidden_token_and_follows_the_weights() {
        // Two allowed tokens with weights 1 : e (temperature 1): frequencies near 27% / 73%.
        let mut l = vec![f32::NEG_INFINITY; 8];
        l[2] = 0.0;
        l[5] = 1.0;
        let s = Sampler::with_temperature(1.0, 42);
        let mut counts = [0u32; 8];
        for draw in 0..20_000 {
            counts[s.choose(&l, 7, draw).unwrap().unwrap() as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<u32>(), counts[2] + counts[5]);
        let share = f64::from(counts[5]) / 20_000.0;
        let expected = std::f64::consts::E / (1.0 + std::f64::consts::E);
        assert!(
            (share - expected).abs() < 0.02,
            "share {share}, expected {expected}"
        );
    }

    #[test]
    fn the_same_seed_row_and_draw_give_the_same_token() {
        let l: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
        let s = Sampler {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            seed: 9,
        };
        let a: Vec<_> = (0..50).map(|d| s.choose(&l, 1, d)).collect();
        let b: Vec<_> = (0..50).map(|d| s.choose(&l, 1, d)).collect();
        assert_eq!(a, b);
        let other: Vec<_> = (0..50).map(|d| s.choose(&l, 2, d)).collect();
        assert_ne!(a, other, "another row draws other numbers");
    }

    /// Below `GREEDY_BELOW` the choice is the argmax: at 1e-45 (the smallest subnormal)
    /// `1 / T` is infinite, and scaling by it would take token 0, or find no finite logit.
    #[test]
    fn a_tiny_temperature_is_greedy() {
        for t in [1e-45f32, 1e-39, f32::MIN_POSITIVE / 2.0, 0.0, -0.0] {
            let s = Sampler::with_temperature(t, 1);
            assert!(s.is_greedy(), "{t}");
            for draw in 0..20 {
                assert_eq!(s.choose(&[1.0f32, 3.0, -2.0, 2.0], 0, draw), Ok(Some(1)), "{t}");
                assert_eq!(
                    s.choose(&[-1.0f32, -0.5, f32::NEG_INFINITY], 0, draw),
                    Ok(Some(1)),
                    "{t}"
                );
            }
        }
        assert!(!Sampler::with_temperature(Sampler::GREEDY_BELOW, 1).is_greedy());
    }

    /// `logit / T` past f32: the mass is all on the largest logit, not on the first logit that
    /// overflows, and there is a token even when every scaled logit is `-inf`.
    #[test]
    fn scaling_past_f32_chooses_the_largest_logit() {
        let cases: [(f32, &[f32], u32); 5] = [
            (1e-10, &[1e30, 2e30, -1.0], 1),
            (1e-10, &[2e30, 1e30], 0),
            (0.5, &[-3.3e38, -3e38], 1),
            (2e-38, &[5.0, 7.0, 6.0], 1),
            (1.0, &[f32::INFINITY, 0.0, f32::INFINITY], 0),
        ];
        for (t, logits, want) in cases {
            for (top_k, top_p) in [(0, 1.0), (2, 1.0), (0, 0.5)] {
                let s = Sampler {
                    temperature: t,
                    top_k,
                    top_p,
                    seed: 3,
                };
                for draw in 0..20 {
                    assert_eq!(s.choose(logits, 0, draw), Ok(Some(want)), "T={t} {logits:?}");
                }
            }
        }
    }

    #[test]
    fn settings_out_of_range_are_an_err() {
        let bad = [
            (f32::NAN, 1.0),
            (-1.0, 1.0),
            (-1e-45, 1.0),
            (f32::INFINITY, 1.0),
            (f32::NEG_INFINITY, 1.0),
            (1.0, f32::NAN),
            (1.0, -5.0),
            (1.0, 0.0),
            (1.0, 1.5),
            (1.0, f32::INFINITY),
        ];
        for (temperature, top_p) in bad {
            let s = Sampler {
                temperature,
                top_k: 0,
                top_p,
                seed: 0,
            };
            let e = s.check().unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::InvalidSampler(_)), "{s:?}");
            assert_eq!(s.choose(&[0.0f32, 1.0], 0, 0), Err(e), "{s:?}");
        }
        for (temperature, top_k, top_p) in [
            (0.0, 0, 1.0),
            (1e-45, 7, 1e-30),
            (5.0, u32::MAX, 0.5),
            (f32::MAX, 1, 1.0),
        ] {
            let s = Sampler {
                temperature,
                top_k,
                top_p,
                seed: 0,
            };
            assert_eq!(s.check(), Ok(()), "{s:?}");
            assert!(s.choose(&[0.0f32, 1.0], 0, 0).unwrap().is_some());
        }
    }
}
