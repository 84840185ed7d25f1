//! Outcome advantage estimators: one scalar reward per rollout → one advantage per rollout.
//!
//! Every estimator compares a rollout with the other rollouts of its group (the `N` samples of one
//! prompt). Masked rollouts (the reward crate's `masked = true`: no reward and no gradient) get
//! advantage 0 and are dropped from the loss; whether their rewards still count in the group mean/std
//! is [`AdvantageOptions::masked_in_group_stats`] (unspecified in the paper; default `false`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which advantage estimator turns rewards into advantages (`adv_estimator`, verl's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvEstimator {
    /// `(r − mean_G) / (std_G + ε)`: GRPO (DeepSeekMath, arXiv 2402.03300), the paper's choice.
    #[default]
    Grpo,
    /// `r − mean_G`, no std scaling: Dr. GRPO (arXiv 2503.20783).
    DrGrpo,
    /// `r − mean of the other G − 1 rewards`: RLOO (arXiv 2402.14740).
    Rloo,
    /// `x = r − mean_G`, then `(x − mean_B) / (std_B + ε)` over the batch: REINFORCE++-baseline
    /// (arXiv 2501.03262). verl's name `reinforce_plus_plus_baseline` is accepted as an alias.
    #[serde(alias = "reinforce_plus_plus_baseline")]
    ReinforcePpBaseline,
}

/// The knobs shared by the estimators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdvantageOptions {
    /// `ε` added to the std in `grpo` and `reinforce_pp_baseline`. Unspecified in the paper; default
    /// 1e-6 (verl).
    pub epsilon: f32,
    /// Bessel-corrected std (`/(n − 1)`), as verl's `torch.std`; `false` divides by `n`.
    pub unbiased_std: bool,
    /// Whether masked rollouts' rewards count in the group statistics. Unspecified in the paper
    /// (PAPER.md asks for a knob); default `false`: a masked rollout is invisible to the optimiser.
    pub masked_in_group_stats: bool,
}

impl Default for AdvantageOptions {
    fn default() -> Self {
        Self {
            epsilon: 1e-6,
            unbiased_std: true,
            masked_in_group_stats: false,
        }
    }
}

/// Mean and std of the rewards of one group, with verl's convention for a group of one: mean 0 and
/// std 1, so a lone rollout keeps its raw reward as advantage (REINFORCE without a baseline).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupStats {
    /// Rewards that entered the statistics.
    pub count: usize,
    /// `mean_G` (0 for a group of one).
    pub mean: f64,
    /// `std_G` (1 for a group of one).
    pub std: f64,
}

impl AdvEstimator {
    /// Every estimator, in the order of its config names.
    pub const ALL: [AdvEstimator; 4] = [
        AdvEstimator::Grpo,
        AdvEstimator::DrGrpo,
        AdvEstimator::Rloo,
        AdvEstimator::ReinforcePpBaseline,
    ];

    /// Advantages of a batch of rollouts: 0 for masked ones.
    ///
    /// # Shapes
    /// - `rewards`, `groups`, `masked`: `[n]` (one entry per rollout; `groups[i]` is any id shared by
    ///   the rollouts of one prompt, not necessarily contiguous)
    /// - returns: `[n]`
    ///
    /// # Errors
    /// When the three slices differ in length, or an unmasked reward is NaN or infinite.
    pub fn compute(
        self,
        rewards: &[f32],
        groups: &[usize],
        masked: &[bool],
        options: &AdvantageOptions,
    ) -> Result<Vec<f32>> {
        if rewards.len() != groups.len() || rewards.len() != masked.len() {
            return Err(Error::Input(format!(
                "advantages need one group id and one mask flag per reward, found {} rewards, {} group ids, {} mask flags",
                rewards.len(),
                groups.len(),
                masked.len()
            )));
        }
        if let Some(i) = (0..rewards.len()).find(|&i| !masked[i] && !rewards[i].is_finite()) {
            return Err(Error::Input(format!(
                "reward of rollout {i} is `{}`; rewards of unmasked rollouts must be finite",
                rewards[i]
            )));
        }
        let stats = group_stats(rewards, groups, masked, options);
        let raw: Vec<Option<f64>> = (0..rewards.len())
            .map(|i| {
                (!masked[i]).then(|| {
                    let (r, g) = (f64::from(rewards[i]), &stats[&groups[i]]);
                    match self {
                        AdvEstimator::Grpo => grpo(r, g, options.epsilon),
                        AdvEstimator::DrGrpo | AdvEstimator::ReinforcePpBaseline => dr_grpo(r, g),
                        AdvEstimator::Rloo => rloo(r, g),
                    }
                })
            })
            .collect();
        let advantages = match self {
            AdvEstimator::ReinforcePpBaseline => batch_whiten(&raw, options),
            _ => raw,
        };
        Ok(advantages
            .into_iter()
            .map(|a| a.map_or(0.0, |a| a as f32))
            .collect())
    }
}

/// Per-group reward statistics. A rollout enters its group's statistics when it is unmasked, or
/// always with `masked_in_group_stats`.
pub fn group_stats(
    rewards: &[f32],
    groups: &[usize],
    masked: &[bool],
    options: &AdvantageOptions,
) -> BTreeMap<usize, GroupStats> {
    let mut members: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for i in 0..rewards.len() {
        let entry = members.entry(groups[i]).or_default();
        if !masked[i] || options.masked_in_group_stats {
            entry.push(f64::from(rewards[i]));
        }
    }
    members
        .into_iter()
        .map(|(group, values)| (group, stats_of(&values, options.unbiased_std)))
        .collect()
}

/// Mean and std of `values`; a single value (or none) gives verl's `(0, 1)`.
fn stats_of(values: &[f64], unbiased: bool) -> GroupStats {
    let count = values.len();
    if count < 2 {
        return GroupStats {
            count,
            mean: 0.0,
            std: 1.0,
        };
    }
    let n = count as f64;
    let mean = values.iter().sum::<f64>() / n;
    let squares = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    let dof = if unbiased { n - 1.0 } else { n };
    GroupStats {
        count,
        mean,
        std: (squares / dof).sqrt(),
    }
}

/// GRPO: `A = (r − mean_G) / (std_G + ε)` (arXiv 2402.03300, eq. 3 outcome supervision).
fn grpo(reward: f64, group: &GroupStats, epsilon: f32) -> f64 {
    (reward - group.mean) / (group.std + f64::from(epsilon))
}

/// Dr. GRPO: `A = r − mean_G` (arXiv 2503.20783, sec. 3.1: the std term is a difficulty bias).
fn dr_grpo(reward: f64, group: &GroupStats) -> f64 {
    reward - group.mean
}

/// RLOO: `A_i = r_i − (1/(G−1)) Σ_{j≠i} r_j = G/(G−1) · (r_i − mean_G)` (arXiv 2402.14740, eq. 6);
/// a group of one keeps its raw reward (verl).
fn rloo(reward: f64, group: &GroupStats) -> f64 {
    if group.count < 2 {
        return reward;
    }
    let g = group.count as f64;
    g / (g - 1.0) * (reward - group.mean)
}

/// REINFORCE++-baseline's second stage: `(x − mean_B) / (std_B + ε)` over the unmasked rollouts of the
/// batch, each rollout counted once (arXiv 2501.03262, sec. 3.2). verl whitens over response tokens
/// (a long rollout weighs more) with `rsqrt(var + 1e-8)`; here every rollout weighs the same.
fn batch_whiten(values: &[Option<f64>], options: &AdvantageOptions) -> Vec<Option<f64>> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let batch = stats_of(&present, options.unbiased_std);
    let mean = if present.len() == 1 {
        present[0]
    } else {
        batch.mean
    };
    values
        .iter()
        .map(|v| v.map(|x| (x - mean) / (batch.std + f64::from(options.epsilon))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((f64::from(*x) - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn grpo_matches_hand_computation() {
        // Group 0: rewards 1, 0, 0, 1 → mean 0.5, unbiased std sqrt(1/3) = 0.57735.
        let rewards = [1.0, 0.0, 0.0, 1.0];
        let options = AdvantageOptions::default();
        let adv = AdvEstimator::Grpo
            .compute(&rewards, &[0; 4], &[false; 4], &options)
            .unwrap();
        let a = 0.5 / (0.577_350_269 + 1e-6);
        close(&adv, &[a, -a, -a, a]);
        // Biased std: sqrt(1/4) = 0.5.
        let options = AdvantageOptions {
            unbiased_std: false,
            ..options
        };
        let adv = AdvEstimator::Grpo
            .compute(&rewards, &[0; 4], &[false; 4], &options)
            .unwrap();
        let a = 0.5 / (0.5 + 1e-6);
        close(&adv, &[a, -a, -a, a]);
    }

    #[test]
    fn masked_rollouts_get_zero_and_stay_out_of_stats_by_default() {
        // Group 7: rewards 1, 0, (masked 0), 1; group 3: a lone unmasked rollout with reward 1.
        let rewards = [1.0, 0.0, 0.0, 1.0, 1.0];
        let groups = [7, 7, 7, 7, 3];
        let masked = [false, false, true, false, false];
        let options = AdvantageOptions::default();
        let adv = AdvEstimator::DrGrpo
            .compute(&rewards, &groups, &masked, &options)
            .unwrap();
        // mean over the three unmasked = 2/3; the lone rollout keeps its reward (verl: mean 0).
        close(&adv, &[1.0 / 3.0, -2.0 / 3.0, 0.0, 1.0 / 3.0, 1.0]);
        let with_masked = AdvantageOptions {
            masked_in_group_stats: true,
            ..options
        };
        let adv = AdvEstimator::DrGrpo
            .compute(&rewards, &groups, &masked, &with_masked)
            .unwrap();
        close(&adv, &[0.5, -0.5, 0.0, 0.5, 1.0]);
    }

    #[test]
    fn rloo_is_the_leave_one_out_baseline() {
        let rewards = [1.0, 0.0, 0.5];
        let adv = AdvEstimator::Rloo
            .compute(&rewards, &[0; 3], &[false; 3], &AdvantageOptions::default())
            .unwrap();
        // Loop version: r_i − mean of the others.
        let expected: Vec<f64> = (0..3)
            .map(|i| {
                let others: f64 = (0..3).filter(|&j| j != i).map(|j| rewards[j] as f64).sum();
                rewards[i] as f64 - others / 2.0
            })
            .collect();
        close(&adv, &expected);
    }

    #[test]
    fn reinforce_pp_baseline_whitens_over_the_batch() {
        let rewards = [1.0, 0.0, 1.0, 1.0];
        let groups = [0, 0, 1, 1];
        let adv = AdvEstimator::ReinforcePpBaseline
            .compute(&rewards, &groups, &[false; 4], &AdvantageOptions::default())
            .unwrap();
        // x = [0.5, -0.5, 0, 0]; mean 0; unbiased std sqrt(0.5/3).
        let s = (0.5f64 / 3.0).sqrt() + 1e-6;
        close(&adv, &[0.5 / s, -0.5 / s, 0.0, 0.0]);
    }

    #[test]
    fn rejects_inconsistent_inputs_and_nan_rewards() {
        let options = AdvantageOptions::default();
        assert!(AdvEstimator::Grpo
            .compute(&[1.0, 0.0], &[0], &[false, false], &options)
            .is_err());
        let err = AdvEstimator::Grpo
            .compute(&[f32::NAN, 0.0], &[0, 0], &[false, false], &options)
            .unwrap_err();
        assert!(err.to_string().contains("rollout 0"), "{err}");
        // A NaN reward on a masked rollout is ignored.
        assert!(AdvEstimator::Grpo
            .compute(&[f32::NAN, 0.0], &[0, 0], &[true, false], &options)
            .is_ok());
    }

    #[test]
    fn names_round_trip() {
        for (estimator, name) in
            AdvEstimator::ALL
                .iter()
                .zip(["grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"])
        {
            let json = serde_json::to_string(estimator).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            let back: AdvEstimator = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *estimator);
        }
        let alias: AdvEstimator = serde_json::from_str("\"reinforce_plus_plus_baseline\"").unwrap();
        assert_eq!(alias, AdvEstimator::ReinforcePpBaseline);
        let err = serde_json::from_str::<AdvEstimator>("\"GRPO\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("grpo") && err.contains("rloo"), "{err}");
    }
}
