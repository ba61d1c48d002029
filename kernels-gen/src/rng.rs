//! The workspace's one seeded generator: the synthetic vocabularies of [`crate::synthetic`],
//! the `welt` tool's bench corpus, token streams and the byte Llama's random weights, and the
//! test suites' random inputs all draw from it, so that a seed means the same draws everywhere.
//!
//! Public and behind no feature, so that the tool and every crate's tests can share it
//! without a `rand` dependency.

/// The SplitMix64 generator (Steele, Lea and Flood): tiny, well mixed and the same on every
/// platform, so that seeded outputs (the bench corpus, the model's random weights, synthetic
/// vocabularies) never change under us.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 for `n == 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % u64::from(n.max(1))) as u32
    }

    /// An index in `0..len` (0 for `len == 0`): [`below`](Self::below) for lengths.
    pub fn index(&mut self, len: usize) -> usize {
        (self.next_u64() % (len.max(1) as u64)) as usize
    }

    /// A number in `lo..=hi` (`lo <= hi`).
    pub fn between(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den` (`den > 0`).
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.index(den) < num
    }

    /// One element of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// One of `items`, drawn with the given weights.
    pub fn weighted<T: Copy>(&mut self, items: &[(u32, T)]) -> T {
        let total: u32 = items.iter().map(|(w, _)| w).sum();
        let mut x = self.below(total);
        for &(w, item) in items {
            if x < w {
                return item;
            }
            x -= w;
        }
        items[items.len() - 1].1
    }

    /// Uniform in (0, 1]: never 0, so that `ln` in Box-Muller is finite.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `n` draws from N(0, std²) by Box-Muller, both values of each pair used.
    pub fn normals(&mut self, n: usize, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let r = (-2.0 * self.uniform().ln()).sqrt() * std;
            let theta = std::f64::consts::TAU * self.uniform();
            out.push((r * theta.cos()) as f32);
            out.push((r * theta.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_published_sequence() {
        // The first outputs for seed 0 of the reference C implementation.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn below_and_index_are_the_draw_modulo_n() {
        // Seeded outputs elsewhere (vocabularies, corpus, weights) rely on exactly this.
        let (mut a, mut b, mut c) = (SplitMix64::new(9), SplitMix64::new(9), SplitMix64::new(9));
        for n in 1..500u32 {
            let x = c.next_u64();
            assert_eq!(u64::from(a.below(n)), x % u64::from(n));
            assert_eq!(b.index(n as usize) as u64, x % u64::from(n));
        }
    }

    #[test]
    fn draws_stay_in_their_ranges() {
        let mut r = SplitMix64::new(7);
        for _ in 0..10_000 {
            assert!(r.below(5) < 5);
            assert!(r.index(5) < 5);
            assert!((3..=9).contains(&r.between(3, 9)));
            let u = r.uniform();
            assert!(u > 0.0 && u <= 1.0, "{u}");
            assert!(matches!(r.weighted(&[(1, 'a'), (0, 'b'), (2, 'c')]), 'a' | 'c'));
            assert!(!r.chance(0, 3) && r.chance(3, 3));
            assert!(matches!(r.pick(&['x', 'y']), 'x' | 'y'));
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.index(0), 0);
        let n = SplitMix64::new(1).normals(5, 0.02);
        assert_eq!(n.len(), 5);
        assert_eq!(n, SplitMix64::new(1).normals(5, 0.02));
    }
}
