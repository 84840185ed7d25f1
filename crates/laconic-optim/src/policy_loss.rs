//! The clipped policy-gradient surrogate (`policy_loss = vanilla | gspo`) with clip-higher and
//! optional dual clip.
//!
//! Per response token `t` of rollout `i`, with advantage `A_i` and importance ratio `ρ`:
//! `l = max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high))` (PPO, arXiv 1707.06347, eq. 7, written as a
//! loss; clip-higher ε_high > ε_low from DAPO, arXiv 2503.14476), and with dual clip, for `A < 0`:
//! `l = min(l, −A·c)` (arXiv 1912.09729, eq. 5). The ratio is always computed, also on-policy where
//! it is exactly 1 and the loss reduces to `−A·ρ` with gradient `−A·∇log π`.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// `log π_θ − log π_old` is clamped to `±LOG_RATIO_CLAMP` before `exp` (verl: 20): a ratio of
/// `e^20` is already clipped, and the clamp keeps a token the rollout policy found impossible from
/// overflowing. Inside the range the gradient is untouched.
pub const LOG_RATIO_CLAMP: f32 = 20.0;
/// GSPO's sequence log-ratio is clamped to at most `GSPO_LOG_RATIO_MAX` (verl: 10).
pub const GSPO_LOG_RATIO_MAX: f32 = 10.0;

/// Which importance ratio the surrogate uses (`policy_loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyLoss {
    /// Token-level ratio `ρ_t = π_θ(y_t)/π_old(y_t)` (PPO/GRPO). The default (verl).
    #[default]
    Vanilla,
    /// Sequence-level ratio `s_i = (π_θ(y_i)/π_old(y_i))^(1/|y_i|)`, with the gradient routed through
    /// each token as `s_{i,t} = sg[s_i] · π_θ(y_t)/sg[π_θ(y_t)]` (GSPO, arXiv 2507.18071, eq. 7 and
    /// 13). The configured `loss_agg_mode` is honoured (GSPO's objective is `seq-mean-token-mean`,
    /// which verl forces; here it is the user's choice), and so is the dual clip when set.
    Gspo,
}

impl PolicyLoss {
    /// Both kinds, in the order of their config names.
    pub const ALL: [PolicyLoss; 2] = [PolicyLoss::Vanilla, PolicyLoss::Gspo];
}

/// The clip range of the surrogate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipRange {
    /// `ε_low`: the ratio is clipped below at `1 − ε_low`.
    pub low: f32,
    /// `ε_high`: the ratio is clipped above at `1 + ε_high`.
    pub high: f32,
    /// Dual-clip bound `c > 1` for negative advantages, or `None`.
    pub dual_c: Option<f32>,
}

/// Per-token surrogate losses and the indicators behind the clip metrics.
#[derive(Debug, Clone)]
pub struct Surrogate<B: Backend> {
    /// `l_t`, `[n_tok]`.
    pub loss: Tensor<B, 1>,
    /// 1 where the clipped branch is the larger loss (`actor/pg_clipfrac`), else 0.
    pub clipped: Tensor<B, 1>,
    /// 1 where the dual clip bound is active (`actor/pg_clipfrac_lower`), else 0.
    pub clipped_lower: Tensor<B, 1>,
}

/// Token-level log-ratio `clamp(logp − old, ±LOG_RATIO_CLAMP)`.
///
/// # Shapes
/// - `logp`, `old_logp`: `[n_tok]`; returns `[n_tok]`
pub fn token_log_ratio<B: Backend>(logp: Tensor<B, 1>, old_logp: Tensor<B, 1>) -> Tensor<B, 1> {
    (logp - old_logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
}

/// GSPO's per-token log-ratio `min(logp + shift, GSPO_LOG_RATIO_MAX)`, where the detached
/// `shift_t = mean_{t'∈i}(logp − old) − logp_t` (from [`gspo_shift`]) makes its value the sequence's
/// mean log-ratio while its gradient is `∇ logp_t`.
///
/// # Shapes
/// - `logp`, `shift`: `[n_tok]`; returns `[n_tok]`
pub fn gspo_log_ratio<B: Backend>(logp: Tensor<B, 1>, shift: Tensor<B, 1>) -> Tensor<B, 1> {
    (logp + shift).clamp_max(GSPO_LOG_RATIO_MAX)
}

/// The detached shift of [`gspo_log_ratio`], on the host: for every token of sequence `i`,
/// `(1/|y_i|) Σ_t (logp_t − old_t) − logp_t`.
///
/// # Shapes
/// - `logp`, `old_logp`: `[Σ lengths]`, sequence-major; returns the same
pub fn gspo_shift(logp: &[f32], old_logp: &[f32], lengths: &[usize]) -> Vec<f32> {
    let mut shift = Vec::with_capacity(logp.len());
    let mut start = 0;
    for &len in lengths {
        let range = start..start + len;
        let mean = range
            .clone()
            .map(|t| f64::from(logp[t]) - f64::from(old_logp[t]))
            .sum::<f64>()
            / len.max(1) as f64;
        shift.extend(range.map(|t| (mean - f64::from(logp[t])) as f32));
        start += len;
    }
    shift
}

/// The clipped surrogate `max(−A·ρ, −A·clip(ρ, 1−ε_low, 1+ε_high))`, then for `A < 0` with dual clip
/// `min(·, −A·c)`, from the log-ratio `log ρ`.
///
/// # Shapes
/// - `log_ratio`, `advantages`: `[n_tok]`
pub fn clipped_surrogate<B: Backend>(
    log_ratio: Tensor<B, 1>,
    advantages: Tensor<B, 1>,
    clip: &ClipRange,
) -> Surrogate<B> {
    let ratio = log_ratio.exp();
    let neg_adv = advantages.clone().neg();
    // − A·ρ
    let unclipped = neg_adv.clone() * ratio.clone();
    // − A·clip(ρ, 1 − ε_low, 1 + ε_high)
    let clipped = neg_adv.clone() * ratio.clamp(1.0 - clip.low, 1.0 + clip.high);
    let clipped_frac = clipped.clone().greater(unclipped.clone()).float();
    let loss = unclipped.max_pair(clipped);
    let Some(c) = clip.dual_c else {
        let clipped_lower = loss.zeros_like();
        return Surrogate {
            loss,
            clipped: clipped_frac,
            clipped_lower,
        };
    };
    // − A·c bounds the loss of negative advantages from above.
    let bound = neg_adv.mul_scalar(c);
    let negative = advantages.lower_elem(0.0);
    let lower_active = loss
        .clone()
        .greater(bound.clone())
        .bool_and(negative.clone());
    let dual = loss.clone().min_pair(bound);
    Surrogate {
        loss: loss.mask_where(negative, dual),
        clipped: clipped_frac,
        clipped_lower: lower_active.float(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    fn values(t: Tensor<TestBackend, 1>) -> Vec<f32> {
        t.into_data().into_vec::<f32>().unwrap()
    }

    #[test]
    fn surrogate_matches_the_scalar_formula() {
        let device = Default::default();
        let ratios = [0.5f32, 0.9, 1.0, 1.2, 1.5, 4.0];
        for dual_c in [None, Some(3.0f32)] {
            let clip = ClipRange {
                low: 0.2,
                high: 0.28,
                dual_c,
            };
            for adv in [1.5f32, -2.0] {
                let log_ratio: Vec<f32> = ratios.iter().map(|r| r.ln()).collect();
                let s = clipped_surrogate(
                    Tensor::<TestBackend, 1>::from_floats(log_ratio.as_slice(), &device),
                    Tensor::from_floats([adv; 6], &device),
                    &clip,
                );
                let (loss, clipped, lower) =
                    (values(s.loss), values(s.clipped), values(s.clipped_lower));
                for (i, &r) in ratios.iter().enumerate() {
                    let l1 = -adv * r;
                    let l2 = -adv * r.clamp(0.8, 1.28);
                    let mut l = l1.max(l2);
                    let mut is_lower = 0.0;
                    if let (Some(c), true) = (dual_c, adv < 0.0) {
                        if l > -adv * c {
                            is_lower = 1.0;
                        }
                        l = l.min(-adv * c);
                    }
                    assert!((loss[i] - l).abs() < 1e-5, "r={r} A={adv} {dual_c:?}");
                    assert_eq!(clipped[i], f32::from(u8::from(l2 > l1)));
                    assert_eq!(lower[i], is_lower);
                }
            }
        }
    }

    #[test]
    fn gspo_shift_gives_the_sequence_mean_log_ratio() {
        let logp = [-1.0f32, -2.0, -0.5, -0.1, -0.3];
        let old = [-1.5f32, -1.0, -0.5, -0.2, -0.2];
        let shift = gspo_shift(&logp, &old, &[3, 2]);
        let means = [(0.5 - 1.0 + 0.0) / 3.0, (0.1 - 0.1) / 2.0];
        for t in 0..5 {
            let seq = usize::from(t >= 3);
            assert!((logp[t] + shift[t] - means[seq] as f32).abs() < 1e-6);
        }
    }

    #[test]
    fn names_round_trip() {
        for (kind, name) in PolicyLoss::ALL.iter().zip(["vanilla", "gspo"]) {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<PolicyLoss>(&json).unwrap(), *kind);
        }
        let err = serde_json::from_str::<PolicyLoss>("\"ppo\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("vanilla") && err.contains("gspo"), "{err}");
    }
}
