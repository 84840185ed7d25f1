//! The Kimi-1.5 length reward.

use serde::{Deserialize, Serialize};

use super::RewardFn;
use crate::group::{GroupView, Scored};

/// Kimi-1.5's length penalty on top of correctness (Kimi Team, arXiv 2501.12599, "length penalty"; as
/// written in arXiv 2602.20945):
/// `L̃ = (L − L_min)/(L_max − L_min)` over the group,
/// `R = 1[c]·(1 + α(0.5 − L̃)) + 1[¬c]·min(0, α(0.5 − L̃))`.
/// When every length is equal `L̃ = 0.5` (no length term), so there is no division by zero.
///
/// TOML: `[reward]` `kind = "kimi"`, `alpha = 0.4`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Kimi {
    /// Weight `α` of the length term. Default 0.4 (arXiv 2602.20945).
    pub alpha: f64,
}

impl Default for Kimi {
    fn default() -> Self {
        Kimi { alpha: 0.4 }
    }
}

impl RewardFn for Kimi {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        let s = &group.stats().all;
        let span = s.max - s.min;
        group
            .rollouts()
            .iter()
            .map(|r| {
                let norm = if span > 0.0 {
                    (r.length as f64 - s.min) / span
                } else {
                    0.5
                };
                let lambda = self.alpha * (0.5 - norm);
                let reward = if r.correct {
                    1.0 + lambda
                } else {
                    lambda.min(0.0)
                };
                Scored::reward(reward as f32)
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
        // L = 100, 200, 300 → L̃ = 0, 0.5, 1 → α(0.5 − L̃) = 0.2, 0, −0.2.
        // correct 100: 1.2; incorrect 200: min(0, 0) = 0; correct 300: 0.8.
        let k = Kimi::default();
        assert_rewards(
            &k.score_group(&group(&[(true, 100), (false, 200), (true, 300)])),
            &[1.2, 0.0, 0.8],
        );
        // incorrect 100: min(0, 0.2) = 0; incorrect 300: min(0, −0.2) = −0.2.
        assert_rewards(
            &k.score_group(&group(&[(false, 100), (true, 200), (false, 300)])),
            &[0.0, 1.0, -0.2],
        );
    }

    #[test]
    fn edge_groups() {
        let k = Kimi::default();
        // Equal lengths: no length term, no NaN.
        assert_rewards(
            &k.score_group(&group(&[(true, 50), (false, 50)])),
            &[1.0, 0.0],
        );
        assert_rewards(&k.score_group(&group(&[(true, 50)])), &[1.0]);
        // All correct / none correct, L = 0 and 10 → L̃ = 0, 1.
        assert_rewards(
            &k.score_group(&group(&[(true, 0), (true, 10)])),
            &[1.2, 0.8],
        );
        assert_rewards(
            &k.score_group(&group(&[(false, 0), (false, 10)])),
            &[0.0, -0.2],
        );
        assert!(k.score_group(&group(&[])).is_empty());
    }
}
