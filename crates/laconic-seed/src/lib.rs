//! Seed mixing shared by laconic's crates: SplitMix64 (Steele, Lea & Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014). Independent streams from `(seed, index)` pairs, the
//! same on every backend, thread count and machine: per-step prompt and sampling streams, per-sample
//! rollout streams, LoRA initialisation, the verifier's sample points. No dependency: laconic-model
//! re-exports it as `laconic_model::seed`, and laconic-reward, which stays free of burn, uses it
//! directly.

/// SplitMix64's increment, `⌊2⁶⁴/φ⌋`.
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective mix of 64 bits.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64's output for the state `z`: the state advanced by [`GOLDEN_GAMMA`], mixed.
pub fn splitmix64(z: u64) -> u64 {
    mix64(z.wrapping_add(GOLDEN_GAMMA))
}

/// The seed of stream `index` of `seed` (a step of a run, a rollout batch of a step).
pub fn stream_seed(seed: u64, index: u64) -> u64 {
    mix64(seed ^ index.wrapping_mul(GOLDEN_GAMMA))
}

/// A SplitMix64 generator: the draws of one seeded stream, in order. Tests and fixtures take their
/// random inputs from it, so every run and machine checks the same numbers and a failure reproduces
/// from its seed.
#[derive(Debug, Clone)]
pub struct Stream {
    state: u64,
}

impl Stream {
    /// The stream seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// A uniform draw from `[0, 1)` with 53 random bits.
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal draw (Box–Muller; the second value of each pair is dropped).
    pub fn next_normal(&mut self) -> f64 {
        // 1 − u is in (0, 1]: its logarithm is finite.
        let radius = (-2.0 * (1.0 - self.next_unit()).ln()).sqrt();
        radius * (std::f64::consts::TAU * self.next_unit()).cos()
    }

    /// `len` draws from `N(0, std²)` as f32.
    pub fn normals(&mut self, len: usize, std: f64) -> Vec<f32> {
        (0..len)
            .map(|_| (self.next_normal() * std) as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs of SplitMix64 seeded with 0 (Vigna's reference implementation).
        let outputs: Vec<u64> = (0..3u64)
            .map(|i| splitmix64(i.wrapping_mul(GOLDEN_GAMMA)))
            .collect();
        assert_eq!(
            outputs,
            [
                0xE220_A839_7B1D_CDAF,
                0x6E78_9E6A_A1B9_65F4,
                0x06C4_5D18_8009_454F
            ]
        );
    }

    #[test]
    fn streams_differ_by_index_and_seed() {
        assert_ne!(stream_seed(1, 0), stream_seed(1, 1));
        assert_ne!(stream_seed(1, 0), stream_seed(2, 0));
        assert_eq!(
            stream_seed(7, 3),
            mix64(7 ^ 3u64.wrapping_mul(GOLDEN_GAMMA))
        );
    }

    #[test]
    fn stream_draws_follow_splitmix64_and_are_normal() {
        let mut stream = Stream::new(0);
        assert_eq!(stream.next_u64(), 0xE220_A839_7B1D_CDAF);
        let values = Stream::new(5).normals(20_000, 2.0);
        let n = values.len() as f64;
        let mean = values.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&x| (x as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        // Standard errors: 2/√n ≈ 0.014 for the mean, about 0.04 for the variance of 4.
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 4.0).abs() < 0.15, "variance {var}");
        assert_eq!(values, Stream::new(5).normals(20_000, 2.0));
        assert_ne!(values[..4], Stream::new(6).normals(4, 2.0)[..]);
    }
}
