//! DAPO's soft overlong punishment.

use serde::{Deserialize, Serialize};

use super::RewardFn;
use crate::group::{GroupView, Scored};

/// DAPO soft overlong punishment (Yu et al., arXiv 2503.14476, "overlong reward shaping") added to the
/// correctness reward:
/// `R_len = 0` if `L ≤ L_max − L_cache`; `(L_max − L_cache − L)/L_cache` if
/// `L_max − L_cache < L ≤ L_max`; `−1` if `L > L_max`; and `R = R_c + R_len` with
/// `R_c = 1` when correct, else `incorrect_reward`.
///
/// TOML: `[reward]` `kind = "dapo_overlong"`, `l_max = 20480`, `l_cache = 4096`,
/// `incorrect_reward = -1.0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DapoOverlong {
    /// `L_max`, the length where the penalty reaches −1. Default 20480 (DAPO: 16384 expected
    /// plus a 4096 buffer).
    pub l_max: usize,
    /// `L_cache`, the width of the soft buffer below `L_max`. Default 4096 (DAPO). With 0 the
    /// penalty is a hard step at `L_max`.
    pub l_cache: usize,
    /// Correctness reward of a wrong rollout. Default −1 (DAPO's rule-based ±1 reward).
    pub incorrect_reward: f64,
}

impl Default for DapoOverlong {
    fn default() -> Self {
        DapoOverlong {
            l_max: 20480,
            l_cache: 4096,
            incorrect_reward: -1.0,
        }
    }
}

impl DapoOverlong {
    /// The length penalty alone, `R_len(L)`.
    pub fn penalty(&self, length: usize) -> f64 {
        let (l, l_max, l_cache) = (length as f64, self.l_max as f64, self.l_cache as f64);
        let start = l_max - l_cache;
        if l <= start {
            0.0
        } else if l <= l_max && l_cache > 0.0 {
            (start - l) / l_cache
        } else {
            -1.0
        }
    }
}

impl RewardFn for DapoOverlong {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        group
            .rollouts()
            .iter()
            .map(|r| {
                let base = if r.correct {
                    1.0
                } else {
                    self.incorrect_reward
                };
                Scored::reward((base + self.penalty(r.length)) as f32)
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
        // L_max = 100, L_cache = 20: buffer starts at 80.
        // 80 → 0; 90 → (80 − 90)/20 = −0.5; 100 → −1; 101 → −1. Correct adds 1, wrong adds −1.
        let d = DapoOverlong {
            l_max: 100,
            l_cache: 20,
            incorrect_reward: -1.0,
        };
        let g = group(&[
            (true, 80),
            (true, 90),
            (true, 100),
            (false, 101),
            (false, 10),
        ]);
        assert_rewards(&d.score_group(&g), &[1.0, 0.5, 0.0, -2.0, -1.0]);
    }

    #[test]
    fn zero_buffer_and_edge_groups() {
        let d = DapoOverlong {
            l_max: 100,
            l_cache: 0,
            incorrect_reward: 0.0,
        };
        assert_rewards(
            &d.score_group(&group(&[(true, 100), (true, 101)])),
            &[1.0, 0.0],
        );
        assert_rewards(
            &d.score_group(&group(&[(false, 1), (false, 1)])),
            &[0.0, 0.0],
        );
        assert!(d.score_group(&group(&[])).is_empty());
    }
}
