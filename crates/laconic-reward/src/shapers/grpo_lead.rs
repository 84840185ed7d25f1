//! GRPO-LEAD's length-dependent accuracy reward.

use serde::{Deserialize, Serialize};

use super::RewardFn;
use crate::group::{GroupView, Scored};

/// `ε` in the standardisation. Unspecified in GRPO-LEAD; 1e-6.
const STD_EPS: f64 = 1e-6;

/// GRPO-LEAD (Zhang & Zuo, arXiv 2504.09696): a correct rollout gets `exp(−α·z)` with
/// `z = (L − mean_correct)/(std_correct + ε)` standardised over the group's correct rollouts;
/// a wrong one gets `incorrect_reward`.
///
/// TOML: `[reward]` `kind = "grpo_lead"`, `alpha = 0.05`, `incorrect_reward = -1.0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoLead {
    /// `α`. Default 0.05 (GRPO-LEAD).
    pub alpha: f64,
    /// Reward of a wrong rollout. Default −1 (GRPO-LEAD's explicit penalty).
    pub incorrect_reward: f64,
}

impl Default for GrpoLead {
    fn default() -> Self {
        GrpoLead {
            alpha: 0.05,
            incorrect_reward: -1.0,
        }
    }
}

impl RewardFn for GrpoLead {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        let c = &group.stats().correct;
        group
            .rollouts()
            .iter()
            .map(|r| {
                if !r.correct {
                    return Scored::reward(self.incorrect_reward as f32);
                }
                let z = (r.length as f64 - c.mean) / (c.std + STD_EPS);
                Scored::reward((-self.alpha * z).exp() as f32)
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
        // Correct lengths 100, 300: z = ∓1 → e^{0.05} = 1.051271, e^{−0.05} = 0.951229; wrong −1.
        let g = group(&[(true, 100), (true, 300), (false, 5)]);
        assert_rewards(
            &GrpoLead::default().score_group(&g),
            &[1.051271, 0.951229, -1.0],
        );
    }

    #[test]
    fn edge_groups() {
        let l = GrpoLead::default();
        assert_rewards(
            &l.score_group(&group(&[(true, 100), (false, 5)])),
            &[1.0, -1.0],
        );
        assert_rewards(&l.score_group(&group(&[(true, 7), (true, 7)])), &[1.0, 1.0]);
        assert_rewards(
            &l.score_group(&group(&[(false, 7), (false, 9)])),
            &[-1.0, -1.0],
        );
        assert!(l.score_group(&group(&[])).is_empty());
    }
}
