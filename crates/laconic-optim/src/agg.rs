//! Loss aggregation (`loss_agg_mode`): per-token losses → one scalar, normalised by **global**
//! mini-batch counts.
//!
//! Every mode is linear in the per-token losses `l_{i,t}`, so it is a weighted sum
//! `L = Σ_{i,t} w_i · l_{i,t}` whose weight depends only on the sequence's length and on counts over
//! the whole mini-batch. Splitting a mini-batch into micro-batches and summing their partial losses
//! (gradient accumulation) therefore gives exactly the mini-batch loss and gradient: the classic bug
//! of normalising each micro-batch by its own token count cannot happen.
//!
//! Masked rollouts and empty responses contribute no token and are not counted.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// How per-token losses are reduced to a scalar (verl's `agg_loss` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LossAggMode {
    /// `Σ_{i,t} l_{i,t} / N_tok`: every token weighs the same (DAPO, arXiv 2503.14476, eq. 8).
    /// Unspecified in the paper; the default (verl).
    #[default]
    #[serde(rename = "token-mean")]
    TokenMean,
    /// `(1/N_seq) Σ_i Σ_t l_{i,t}`: sum over tokens, mean over sequences.
    #[serde(rename = "seq-mean-token-sum")]
    SeqMeanTokenSum,
    /// `(1/N_seq) Σ_i (1/|o_i|) Σ_t l_{i,t}`: the original GRPO objective (arXiv 2402.03300, eq. 3).
    #[serde(rename = "seq-mean-token-mean")]
    SeqMeanTokenMean,
    /// `(1/N_seq) Σ_i Σ_t l_{i,t} / L_norm` with a constant `L_norm` (Dr. GRPO, arXiv 2503.20783:
    /// "MAX_TOKENS"). verl divides the micro-batch's sum by the padded width instead, which changes
    /// with the micro-batch split; here `L_norm` is `loss_scale_factor` or, unset, the longest
    /// response of the mini-batch.
    #[serde(rename = "seq-mean-token-sum-norm")]
    SeqMeanTokenSumNorm,
}

/// Counts over a whole mini-batch that the weights are normalised by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggCounts {
    /// `N_tok`: response tokens of the unmasked rollouts.
    pub num_tokens: usize,
    /// `N_seq`: unmasked rollouts with at least one response token.
    pub num_seqs: usize,
    /// `L_norm` of `seq-mean-token-sum-norm`.
    pub norm_length: f64,
}

impl AggCounts {
    /// Counts of a mini-batch given the response lengths of its unmasked rollouts; `norm_length`
    /// defaults to the longest of them.
    pub fn from_lengths(lengths: &[usize], norm_length: Option<f64>) -> Self {
        let longest = lengths.iter().copied().max().unwrap_or(0);
        Self {
            num_tokens: lengths.iter().sum(),
            num_seqs: lengths.iter().filter(|&&len| len > 0).count(),
            norm_length: norm_length.unwrap_or(longest.max(1) as f64),
        }
    }

    /// Whether the mini-batch has no token to learn from.
    pub fn is_empty(&self) -> bool {
        self.num_tokens == 0
    }
}

impl LossAggMode {
    /// Every mode, in the order of their config names.
    pub const ALL: [LossAggMode; 4] = [
        LossAggMode::TokenMean,
        LossAggMode::SeqMeanTokenSum,
        LossAggMode::SeqMeanTokenMean,
        LossAggMode::SeqMeanTokenSumNorm,
    ];

    /// `w_i`, the weight of each token of a sequence of `len` tokens (0 for an empty mini-batch).
    pub fn token_weight(self, len: usize, counts: &AggCounts) -> f64 {
        if counts.is_empty() || len == 0 {
            return 0.0;
        }
        let seqs = counts.num_seqs as f64;
        match self {
            LossAggMode::TokenMean => 1.0 / counts.num_tokens as f64,
            LossAggMode::SeqMeanTokenSum => 1.0 / seqs,
            LossAggMode::SeqMeanTokenMean => 1.0 / (seqs * len as f64),
            LossAggMode::SeqMeanTokenSumNorm => 1.0 / (seqs * counts.norm_length),
        }
    }

    /// The weight of every token of the given sequences, concatenated in order.
    ///
    /// # Shapes
    /// - `lengths`: `[n_seq]`; returns `[Σ lengths]`
    pub fn token_weights(self, lengths: &[usize], counts: &AggCounts) -> Vec<f32> {
        lengths
            .iter()
            .flat_map(|&len| std::iter::repeat_n(self.token_weight(len, counts) as f32, len))
            .collect()
    }

    /// Reference loop version of the aggregation, on the host: the formula of each mode written out.
    pub fn aggregate(self, per_sequence: &[Vec<f64>], counts: &AggCounts) -> f64 {
        if counts.is_empty() {
            return 0.0;
        }
        let seqs = counts.num_seqs as f64;
        let sums = per_sequence.iter().map(|s| s.iter().sum::<f64>());
        match self {
            LossAggMode::TokenMean => sums.sum::<f64>() / counts.num_tokens as f64,
            LossAggMode::SeqMeanTokenSum => sums.sum::<f64>() / seqs,
            LossAggMode::SeqMeanTokenMean => {
                per_sequence
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| s.iter().sum::<f64>() / s.len() as f64)
                    .sum::<f64>()
                    / seqs
            }
            LossAggMode::SeqMeanTokenSumNorm => sums.sum::<f64>() / (seqs * counts.norm_length),
        }
    }
}

/// `Σ_t w_t · l_t`: the vectorised aggregation (a partial loss when the tokens are one micro-batch).
///
/// # Shapes
/// - `values`, `weights`: `[n_tok]`; returns `[1]`
pub fn weighted_sum<B: Backend>(values: Tensor<B, 1>, weights: Tensor<B, 1>) -> Tensor<B, 1> {
    (values * weights).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn weighted_sum_matches_the_loop_version_and_splits_exactly() {
        let lengths = [3usize, 1, 0, 5];
        let per_sequence: Vec<Vec<f64>> = lengths
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                (0..len)
                    .map(|t| (i * 7 + t * 3) as f64 * 0.1 - 0.8)
                    .collect()
            })
            .collect();
        let counts = AggCounts::from_lengths(&lengths, Some(16.0));
        assert_eq!((counts.num_tokens, counts.num_seqs), (9, 3));
        let device = Default::default();
        for mode in LossAggMode::ALL {
            let expected = mode.aggregate(&per_sequence, &counts);
            // Whole mini-batch at once …
            let values: Vec<f32> = per_sequence.iter().flatten().map(|&v| v as f32).collect();
            let weights = mode.token_weights(&lengths, &counts);
            let whole = weighted_sum(
                Tensor::<TestBackend, 1>::from_floats(values.as_slice(), &device),
                Tensor::from_floats(weights.as_slice(), &device),
            )
            .into_scalar();
            assert!((f64::from(whole) - expected).abs() < 1e-6, "{mode:?}");
            // … and as two micro-batches whose partial sums add up.
            let split: f64 = [(0..2), (2..4)]
                .into_iter()
                .map(|range| {
                    let part = &lengths[range.clone()];
                    let vals: Vec<f32> = per_sequence[range]
                        .iter()
                        .flatten()
                        .map(|&v| v as f32)
                        .collect();
                    let w = mode.token_weights(part, &counts);
                    f64::from(
                        weighted_sum(
                            Tensor::<TestBackend, 1>::from_floats(vals.as_slice(), &device),
                            Tensor::from_floats(w.as_slice(), &device),
                        )
                        .into_scalar(),
                    )
                })
                .sum();
            assert!((split - expected).abs() < 1e-6, "{mode:?}");
        }
    }

    #[test]
    fn default_norm_length_is_the_longest_response() {
        let counts = AggCounts::from_lengths(&[4, 9, 2], None);
        assert_eq!(counts.norm_length, 9.0);
        let w = LossAggMode::SeqMeanTokenSumNorm.token_weight(4, &counts);
        assert!((w - 1.0 / 27.0).abs() < 1e-12);
        assert_eq!(
            LossAggMode::TokenMean.token_weight(3, &AggCounts::from_lengths(&[], None)),
            0.0
        );
    }

    #[test]
    fn names_round_trip() {
        for (mode, name) in LossAggMode::ALL.iter().zip([
            "token-mean",
            "seq-mean-token-sum",
            "seq-mean-token-mean",
            "seq-mean-token-sum-norm",
        ]) {
            let json = serde_json::to_string(mode).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<LossAggMode>(&json).unwrap(), *mode);
        }
        let err = serde_json::from_str::<LossAggMode>("\"token_mean\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("token-mean") && err.contains("seq-mean-token-sum-norm"),
            "{err}"
        );
    }
}
