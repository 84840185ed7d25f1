//! Arora & Zanette's sigmoid length penalty on correct rollouts.

use serde::{Deserialize, Serialize};

use super::{sigmoid, RewardFn};
use crate::group::{GroupView, Scored};

/// `ε` in the standardisation, as in Arora & Zanette.
const STD_EPS: f64 = 1e-7;

/// Arora & Zanette, "Training Language Models to Reason Efficiently" (arXiv 2502.04463):
/// `R = 1[c]·(1 − α·σ((L − mean_correct)/(std_correct + 1e-7)))`, with the mean and population
/// standard deviation over the group's correct rollouts; wrong rollouts get 0.
///
/// TOML: `[reward]` `kind = "arora_zanette"`, `alpha = 0.1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AroraZanette {
    /// `α`, the most a correct rollout can lose. Default 0.1 (DESIGN.md; the paper sweeps it).
    pub alpha: f64,
}

impl Default for AroraZanette {
    fn default() -> Self {
        AroraZanette { alpha: 0.1 }
    }
}

impl RewardFn for AroraZanette {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        let c = &group.stats().correct;
        group
            .rollouts()
            .iter()
            .map(|r| {
                if !r.correct {
                    return Scored::reward(0.0);
                }
                let z = (r.length as f64 - c.mean) / (c.std + STD_EPS);
                Scored::reward((1.0 - self.alpha * sigmoid(z)) as f32)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_rewards, group};
    use super::*;

    #[test]
    fn by_hand() {
        // Correct lengths 100, 300: mean 200, std 100 → z = ∓1; σ(−1) = 0.268941, σ(1) = 0.731059.
        // 1 − 0.1·0.268941 = 0.973106; 1 − 0.1·0.731059 = 0.926894; wrong → 0.
        let g = group(&[(true, 100), (true, 300), (false, 5)]);
        assert_rewards(
            &AroraZanette::default().score_group(&g),
            &[0.973106, 0.926894, 0.0],
        );
    }

    #[test]
    fn edge_groups() {
        let a = AroraZanette::default();
        // One correct / equal lengths: z = 0 → 1 − 0.05.
        assert_rewards(
            &a.score_group(&group(&[(true, 100), (false, 5)])),
            &[0.95, 0.0],
        );
        assert_rewards(
            &a.score_group(&group(&[(true, 7), (true, 7)])),
            &[0.95, 0.95],
        );
        assert_rewards(
            &a.score_group(&group(&[(false, 7), (false, 9)])),
            &[0.0, 0.0],
        );
        assert!(a.score_group(&group(&[])).is_empty());
    }
}
