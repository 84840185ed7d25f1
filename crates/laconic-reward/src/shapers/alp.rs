//! ALP: a length penalty scaled by the prompt's solve rate.

use serde::{Deserialize, Serialize};

use super::RewardFn;
use crate::group::{GroupView, Scored};

/// Adaptive Length Penalty (Xiang et al., arXiv 2506.05256):
/// `R = 1[c] − β·L·max(p̂_solved, 1/K)`, with `p̂_solved` the group's solve rate and `K` the
/// group size: easy prompts pay more per token than hard ones.
///
/// TOML: `[reward]` `kind = "alp"`, `beta = 0.0001`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alp {
    /// `β` per token (ALP writes `β/N` with a normalising constant `N`; this is their ratio).
    /// Unspecified here; default 1e-4, so an 8k-token answer to an always-solved prompt loses
    /// about 0.8.
    pub beta: f64,
}

impl Default for Alp {
    fn default() -> Self {
        Alp { beta: 1e-4 }
    }
}

impl RewardFn for Alp {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        let k = group.len().max(1) as f64;
        let scale = group.stats().solve_rate.max(1.0 / k);
        group
            .rollouts()
            .iter()
            .map(|r| {
                let c = if r.correct { 1.0 } else { 0.0 };
                Scored::reward((c - self.beta * r.length as f64 * scale) as f32)
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
        // p̂ = 2/4 = 0.5 ≥ 1/K = 0.25. β = 1e-4:
        // 1 − 1e-4·1000·0.5 = 0.95; −1e-4·2000·0.5 = −0.1; 1 − 0.15 = 0.85; −0.025.
        let g = group(&[(true, 1000), (false, 2000), (true, 3000), (false, 500)]);
        assert_rewards(&Alp::default().score_group(&g), &[0.95, -0.1, 0.85, -0.025]);
    }

    #[test]
    fn edge_groups() {
        let a = Alp::default();
        // None correct: scale 1/K = 1/2 → −1e-4·1000·0.5 = −0.05.
        assert_rewards(
            &a.score_group(&group(&[(false, 1000), (false, 0)])),
            &[-0.05, 0.0],
        );
        // All correct: scale 1 → 1 − 0.1.
        assert_rewards(
            &a.score_group(&group(&[(true, 1000), (true, 1000)])),
            &[0.9, 0.9],
        );
        assert!(a.score_group(&group(&[])).is_empty());
    }
}
