//! KL penalty to a frozen reference policy (`kl_loss_type`, `kl_loss_coef`).
//!
//! Schulman's estimators of `KL(π_θ ‖ π_ref)` from one sampled token ("Approximating KL divergence",
//! J. Schulman, 2020, joschu.net/blog/kl-approx.html), with `log r = log π_ref(y) − log π_θ(y)` and
//! `y ~ π_θ`:
//! - `k1 = −log r = log π_θ − log π_ref`: unbiased, high variance, negative on some tokens;
//! - `k2 = ½ (log r)²`: biased, low variance (its expectation is an f-divergence close to KL);
//! - `k3 = (r − 1) − log r = exp(ref − logp) − (ref − logp) − 1`: unbiased and non-negative.
//!
//! An estimator that swaps the two policies (`exp(logp − ref) − …`) estimates the reverse KL: that is
//! the biased-KL bug peers hit, and the fixture tests pin the sign convention here. The samples come
//! from the rollout policy, so the estimators are exact only on-policy. As losses their gradients are
//! not the gradient of the KL (k1's expected gradient is 0): `k3` (the default when on) is what GRPO uses.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// `log π_ref − log π_θ` is clamped to `±KL_LOG_RATIO_CLAMP` before `k3`'s exponential (verl: 20), so
/// a token the reference finds impossible cannot overflow the loss.
pub const KL_LOG_RATIO_CLAMP: f32 = 20.0;
/// `k3` itself is clamped to at most `K3_MAX` per token (verl: 10); outside, the token's KL gradient is 0.
pub const K3_MAX: f32 = 10.0;

/// Which per-token KL estimator the KL loss uses (`kl_loss_type`; verl's aliases `kl`, `mse`,
/// `low_var_kl` are accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlLossType {
    /// `logp − ref`.
    #[serde(alias = "kl")]
    K1,
    /// `½ (logp − ref)²`.
    #[serde(alias = "mse")]
    K2,
    /// `exp(ref − logp) − (ref − logp) − 1`. Unspecified in the paper; default k3 (PAPER.md, GRPO).
    #[default]
    #[serde(alias = "low_var_kl")]
    K3,
}

impl KlLossType {
    /// Every estimator, in the order of their config names.
    pub const ALL: [KlLossType; 3] = [KlLossType::K1, KlLossType::K2, KlLossType::K3];

    /// The per-token estimate.
    ///
    /// # Shapes
    /// - `logp`, `ref_logp`: `[n_tok]`; returns `[n_tok]`
    pub fn per_token<B: Backend>(self, logp: Tensor<B, 1>, ref_logp: Tensor<B, 1>) -> Tensor<B, 1> {
        match self {
            KlLossType::K1 => k1(logp, ref_logp),
            KlLossType::K2 => k2(logp, ref_logp),
            KlLossType::K3 => k3(logp, ref_logp),
        }
    }
}

/// `k1 = logp − ref`.
fn k1<B: Backend>(logp: Tensor<B, 1>, ref_logp: Tensor<B, 1>) -> Tensor<B, 1> {
    logp - ref_logp
}

/// `k2 = ½ (logp − ref)²`.
fn k2<B: Backend>(logp: Tensor<B, 1>, ref_logp: Tensor<B, 1>) -> Tensor<B, 1> {
    (logp - ref_logp).powi_scalar(2).mul_scalar(0.5)
}

/// `k3 = exp(d) − d − 1` with `d = clamp(ref − logp, ±20)`, then clamped to at most `K3_MAX`.
fn k3<B: Backend>(logp: Tensor<B, 1>, ref_logp: Tensor<B, 1>) -> Tensor<B, 1> {
    let d = (ref_logp - logp).clamp(-KL_LOG_RATIO_CLAMP, KL_LOG_RATIO_CLAMP);
    (d.clone().exp() - d).sub_scalar(1.0).clamp_max(K3_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn estimators_match_their_formulas() {
        let device = Default::default();
        let logp = [-1.0f32, -0.5, -2.0];
        let refp = [-1.2f32, -0.5, -1.0];
        for kind in KlLossType::ALL {
            let out = kind
                .per_token(
                    Tensor::<TestBackend, 1>::from_floats(logp, &device),
                    Tensor::from_floats(refp, &device),
                )
                .into_data()
                .into_vec::<f32>()
                .unwrap();
            for i in 0..3 {
                let x = f64::from(logp[i] - refp[i]);
                let expected = match kind {
                    KlLossType::K1 => x,
                    KlLossType::K2 => 0.5 * x * x,
                    KlLossType::K3 => (-x).exp() + x - 1.0,
                };
                assert!((f64::from(out[i]) - expected).abs() < 1e-6, "{kind:?} {i}");
            }
        }
    }

    #[test]
    fn k3_is_unbiased_for_kl_to_the_reference() {
        // Two-outcome policies: π = (0.7, 0.3), π_ref = (0.4, 0.6). E_π[k3] = KL(π ‖ π_ref).
        let (pi, pr) = ([0.7f64, 0.3], [0.4f64, 0.6]);
        let kl: f64 = (0..2).map(|i| pi[i] * (pi[i] / pr[i]).ln()).sum();
        let device = Default::default();
        let logp: Vec<f32> = pi.iter().map(|p| p.ln() as f32).collect();
        let refp: Vec<f32> = pr.iter().map(|p| p.ln() as f32).collect();
        let k3 = KlLossType::K3
            .per_token(
                Tensor::<TestBackend, 1>::from_floats(logp.as_slice(), &device),
                Tensor::from_floats(refp.as_slice(), &device),
            )
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        let expectation: f64 = (0..2).map(|i| pi[i] * f64::from(k3[i])).sum();
        assert!((expectation - kl).abs() < 1e-6, "{expectation} vs {kl}");
    }

    #[test]
    fn names_round_trip() {
        for (kind, name) in KlLossType::ALL.iter().zip(["k1", "k2", "k3"]) {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<KlLossType>(&json).unwrap(), *kind);
        }
        assert_eq!(
            serde_json::from_str::<KlLossType>("\"low_var_kl\"").unwrap(),
            KlLossType::K3
        );
        let err = serde_json::from_str::<KlLossType>("\"k4\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("k1") && err.contains("k3"), "{err}");
    }
}
