//! L1 / LCPO-Exact: reward for hitting a per-prompt target length.

use serde::{Deserialize, Serialize};

use super::RewardFn;
use crate::group::{GroupView, Scored};

/// L1, LCPO-Exact (Aggarwal & Welleck, arXiv 2503.04697, the LCPO-Exact reward):
/// `R = 1[c] − α·|n_gold − L|`, with the target `n_gold` given per prompt
/// ([`GroupView::with_target_length`]; in L1 it is also written into the prompt).
///
/// TOML: `[reward]` `kind = "l1"`, `alpha = 0.0003` (optionally `default_target = 4096`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct L1 {
    /// `α` per token of distance from the target. Default 3e-4 (L1).
    pub alpha: f64,
    /// Target used for groups that carry none. Default none: such groups get plain correctness
    /// (no length term), so a missing target never silently penalises.
    pub default_target: Option<usize>,
}

impl Default for L1 {
    fn default() -> Self {
        L1 {
            alpha: 3e-4,
            default_target: None,
        }
    }
}

impl L1 {
    fn target(&self, group: &GroupView) -> Option<f64> {
        group
            .target_length()
            .or(self.default_target.map(|t| t as f64))
    }
}

impl RewardFn for L1 {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        let target = self.target(group);
        group
            .rollouts()
            .iter()
            .map(|r| {
                let c = if r.correct { 1.0 } else { 0.0 };
                let pen = target.map_or(0.0, |t| self.alpha * (t - r.length as f64).abs());
                Scored::reward((c - pen) as f32)
            })
            .collect()
    }

    fn effective_l_t(&self, groups: &[GroupView]) -> Vec<Option<f64>> {
        groups.iter().map(|g| self.target(g)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_rewards, group};
    use super::*;

    #[test]
    fn by_hand() {
        // n_gold = 1000, α = 3e-4: correct at 1000 → 1; correct at 2000 → 1 − 0.3 = 0.7;
        // wrong at 500 → −0.15.
        let g = group(&[(true, 1000), (true, 2000), (false, 500)]).with_target_length(1000.0);
        assert_rewards(&L1::default().score_group(&g), &[1.0, 0.7, -0.15]);
    }

    #[test]
    fn missing_target_and_edge_groups() {
        let g = group(&[(true, 1000), (false, 2000)]);
        assert_rewards(&L1::default().score_group(&g), &[1.0, 0.0]);
        let d = L1 {
            default_target: Some(0),
            ..L1::default()
        };
        // 1 − 3e-4·1000 = 0.7; 0 − 3e-4·2000 = −0.6.
        assert_rewards(&d.score_group(&g), &[0.7, -0.6]);
        assert_eq!(d.effective_l_t(std::slice::from_ref(&g)), vec![Some(0.0)]);
        assert!(d.score_group(&group(&[])).is_empty());
    }
}
