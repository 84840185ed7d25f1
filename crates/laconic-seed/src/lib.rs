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
}
