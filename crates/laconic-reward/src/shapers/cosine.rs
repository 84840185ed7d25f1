//! The cosine length-scaled reward of Yeo et al.

use serde::{Deserialize, Serialize};

use super::RewardFn;
use crate::group::{Finish, GroupView, Scored};

/// Cosine length-scaled reward (Yeo et al., "Demystifying Long Chain-of-Thought Reasoning in
/// LLMs", arXiv 2502.03373):
/// `R = v_max_len + ½(v_zero_len − v_max_len)(1 + cos(π·min(L/L_max, 1)))`, with
/// `(v_zero_len, v_max_len)` = `(correct_at_zero, correct_at_max)` for a correct rollout (short
/// correct earns more) and `(wrong_at_zero, wrong_at_max)` for a wrong one (short wrong is
/// punished more). A rollout cut at `L_R` gets `exceed_reward` when set.
///
/// TOML: `[reward]` `kind = "cosine"`, `l_max = 8192`, `correct_at_zero = 1.0`,
/// `correct_at_max = 0.5`, `wrong_at_zero = -1.0`, `wrong_at_max = -0.5`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cosine {
    /// `L_max`, the length where the cosine reaches its end value. Default 8192.
    pub l_max: usize,
    /// Reward of a correct rollout of length 0. Default 1.0 (DESIGN.md; Yeo et al. use 2.0).
    pub correct_at_zero: f64,
    /// Reward of a correct rollout of length ≥ `L_max`. Default 0.5 (Yeo et al. use 1.0).
    pub correct_at_max: f64,
    /// Reward of a wrong rollout of length 0. Default −1.0 (Yeo et al. use −10).
    pub wrong_at_zero: f64,
    /// Reward of a wrong rollout of length ≥ `L_max`. Default −0.5 (Yeo et al. use 0).
    pub wrong_at_max: f64,
    /// Reward of a rollout cut at `L_R` (`finish = "length"`). Default none: the cosine value of
    /// a wrong rollout (Yeo et al. use −10).
    pub exceed_reward: Option<f64>,
}

impl Default for Cosine {
    fn default() -> Self {
        Cosine {
            l_max: 8192,
            correct_at_zero: 1.0,
            correct_at_max: 0.5,
            wrong_at_zero: -1.0,
            wrong_at_max: -0.5,
            exceed_reward: None,
        }
    }
}

impl RewardFn for Cosine {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        group
            .rollouts()
            .iter()
            .map(|r| {
                if let (Finish::Length, Some(e)) = (r.finish, self.exceed_reward) {
                    return Scored::reward(e as f32);
                }
                let (v0, v_end) = if r.correct {
                    (self.correct_at_zero, self.correct_at_max)
                } else {
                    (self.wrong_at_zero, self.wrong_at_max)
                };
                let t = if self.l_max == 0 {
                    1.0
                } else {
                    (r.length as f64 / self.l_max as f64).min(1.0)
                };
                let reward = v_end + 0.5 * (v0 - v_end) * (1.0 + (std::f64::consts::PI * t).cos());
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
        // L_max = 100. Correct: L = 0 → 1.0; 50 → 0.5 + 0.25·(1 + cos(π/2)) = 0.75; 100 → 0.5;
        // 200 → 0.5 (clamped). Wrong: 0 → −1.0; 50 → −0.5 − 0.25 = −0.75; 100 → −0.5.
        let c = Cosine {
            l_max: 100,
            ..Cosine::default()
        };
        let g = group(&[
            (true, 0),
            (true, 50),
            (true, 100),
            (true, 200),
            (false, 0),
            (false, 50),
            (false, 100),
        ]);
        assert_rewards(
            &c.score_group(&g),
            &[1.0, 0.75, 0.5, 0.5, -1.0, -0.75, -0.5],
        );
    }

    #[test]
    fn exceed_and_edges() {
        let c = Cosine {
            l_max: 100,
            exceed_reward: Some(-10.0),
            ..Cosine::default()
        };
        let g = GroupView::new([(true, 100, Finish::Length), (true, 0, Finish::Stop)]);
        assert_rewards(&c.score_group(&g), &[-10.0, 1.0]);
        let z = Cosine {
            l_max: 0,
            ..Cosine::default()
        };
        assert_rewards(
            &z.score_group(&group(&[(true, 0), (false, 0)])),
            &[0.5, -0.5],
        );
        assert!(c.score_group(&group(&[])).is_empty());
    }
}
