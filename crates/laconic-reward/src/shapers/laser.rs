//! Laser and Laser-D: step rewards around a target length.

use serde::{Deserialize, Serialize};

use super::RewardFn;
use crate::group::{GroupView, Scored};

/// Laser (Liu et al., arXiv 2505.15612; as written in arXiv 2602.20945):
/// `R = 1[c]·(1 + α·1[L < L_T])`.
///
/// TOML: `[reward]` `kind = "laser"`, `l_t = 4096`, `alpha = 0.4`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Laser {
    /// Target length `L_T` in tokens. Default 4096 (the paper's ablation setting, `L_T = 4k`).
    pub l_t: usize,
    /// Bonus `α` for a correct rollout shorter than `L_T`. Default 0.4 (arXiv 2602.20945).
    pub alpha: f64,
}

impl Default for Laser {
    fn default() -> Self {
        Laser {
            l_t: 4096,
            alpha: 0.4,
        }
    }
}

/// Laser-D (arXiv 2602.20945, eq. 6):
/// `R = 1[c]·(1 + α·1[L < L_T]) + 1[¬c]·α·1[L ≥ L_T]` — an incorrect rollout that used at least
/// `L_T` tokens gets `α`, which keeps exploration alive on prompts the policy cannot yet solve.
///
/// TOML: `[reward]` `kind = "laser_d"`, `l_t = 4096`, `alpha = 0.4`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LaserD {
    /// Target length `L_T` in tokens. Default 4096 (the paper's ablation setting).
    pub l_t: usize,
    /// `α`. Default 0.4 (arXiv 2602.20945).
    pub alpha: f64,
}

impl Default for LaserD {
    fn default() -> Self {
        LaserD {
            l_t: 4096,
            alpha: 0.4,
        }
    }
}

fn laser(group: &GroupView, l_t: usize, alpha: f64, reward_long_incorrect: bool) -> Vec<Scored> {
    group
        .rollouts()
        .iter()
        .map(|r| {
            let short = r.length < l_t;
            let reward = match (r.correct, short) {
                (true, true) => 1.0 + alpha,
                (true, false) => 1.0,
                (false, false) if reward_long_incorrect => alpha,
                (false, _) => 0.0,
            };
            Scored::reward(reward as f32)
        })
        .collect()
}

impl RewardFn for Laser {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        laser(group, self.l_t, self.alpha, false)
    }

    fn effective_l_t(&self, groups: &[GroupView]) -> Vec<Option<f64>> {
        vec![Some(self.l_t as f64); groups.len()]
    }
}

impl RewardFn for LaserD {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        laser(group, self.l_t, self.alpha, true)
    }

    fn effective_l_t(&self, groups: &[GroupView]) -> Vec<Option<f64>> {
        vec![Some(self.l_t as f64); groups.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_rewards, group};
    use super::*;

    /// correct·short, correct·long (L = L_T), incorrect·short, incorrect·long; L_T = 100.
    fn quadrants() -> GroupView {
        group(&[(true, 99), (true, 100), (false, 99), (false, 100)])
    }

    #[test]
    fn laser_by_hand() {
        // 1 + 0.4, 1 (L = L_T is not < L_T), 0, 0.
        assert_rewards(
            &Laser {
                l_t: 100,
                alpha: 0.4,
            }
            .score_group(&quadrants()),
            &[1.4, 1.0, 0.0, 0.0],
        );
    }

    #[test]
    fn laser_d_by_hand() {
        // As Laser, plus α for the incorrect rollout with L ≥ L_T.
        assert_rewards(
            &LaserD {
                l_t: 100,
                alpha: 0.4,
            }
            .score_group(&quadrants()),
            &[1.4, 1.0, 0.0, 0.4],
        );
    }

    #[test]
    fn edge_groups() {
        let l = LaserD {
            l_t: 100,
            alpha: 0.4,
        };
        assert_rewards(&l.score_group(&group(&[(true, 5), (true, 5)])), &[1.4, 1.4]);
        assert_rewards(
            &l.score_group(&group(&[(false, 5), (false, 500)])),
            &[0.0, 0.4],
        );
        assert!(l.score_group(&group(&[])).is_empty());
    }
}
