//! The truncation reward with an adaptive target length.

use serde::{Deserialize, Serialize};

use super::{percentile, truncation_reward, RewardFn, TruncationMask};
use crate::group::{GroupView, Scored};

/// Over which rollouts the percentile of correct lengths is taken. The paper leaves it open
/// (group, batch or step); a step is a batch when one rollout batch feeds one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdaptiveScope {
    /// Each prompt's group sets its own `L_T`.
    #[default]
    Group,
    /// One `L_T` for the whole rollout batch (only [`RewardFn::score_batch`] sees a batch; a
    /// lone [`RewardFn::score_group`] call treats its group as the batch).
    Batch,
}

/// The truncation reward `1[c]·1[L ≤ L_T]` with `L_T` = the `percentile`-th percentile of the
/// correct rollouts' lengths (arXiv 2602.20945, "adaptive L_T": 90th percentile).
///
/// TOML: `[reward]` `kind = "adaptive_truncation"`, `percentile = 90`, `scope = "group"`,
/// `fallback_l_t = 8192`, `mask = "none"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptiveTruncation {
    /// Percentile of correct lengths, in `[0, 100]`, linear interpolation (NumPy's default).
    /// Default 90 (the paper).
    pub percentile: f64,
    /// Group or batch. Unspecified in the paper; default `group`.
    pub scope: AdaptiveScope,
    /// `L_T` when the scope has no correct rollout (then every reward is 0 anyway, but masks
    /// that look at "long" still need it). Unspecified in the paper; default 8192 — set it to
    /// your `L_R` (or your fixed `L_T`).
    pub fallback_l_t: usize,
    /// Masking variant, as for the fixed truncation reward. Default `none`.
    pub mask: TruncationMask,
}

impl Default for AdaptiveTruncation {
    fn default() -> Self {
        AdaptiveTruncation {
            percentile: 90.0,
            scope: AdaptiveScope::Group,
            fallback_l_t: 8192,
            mask: TruncationMask::None,
        }
    }
}

impl AdaptiveTruncation {
    fn l_t_of<'a>(&self, groups: impl IntoIterator<Item = &'a GroupView>) -> f64 {
        let correct: Vec<f64> = groups
            .into_iter()
            .flat_map(|g| {
                g.rollouts()
                    .iter()
                    .filter(|r| r.correct)
                    .map(|r| r.length as f64)
            })
            .collect();
        percentile(&correct, self.percentile).unwrap_or(self.fallback_l_t as f64)
    }
}

impl RewardFn for AdaptiveTruncation {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        truncation_reward(group, self.l_t_of([group]), self.mask)
    }

    fn score_batch(&self, groups: &[GroupView]) -> Vec<Vec<Scored>> {
        self.effective_l_t(groups)
            .into_iter()
            .zip(groups)
            .map(|(l_t, g)| {
                truncation_reward(g, l_t.unwrap_or(self.fallback_l_t as f64), self.mask)
            })
            .collect()
    }

    fn effective_l_t(&self, groups: &[GroupView]) -> Vec<Option<f64>> {
        match self.scope {
            AdaptiveScope::Group => groups.iter().map(|g| Some(self.l_t_of([g]))).collect(),
            AdaptiveScope::Batch => vec![Some(self.l_t_of(groups)); groups.len()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_rewards, group};
    use super::*;

    #[test]
    fn group_scope_by_hand() {
        // Correct lengths 100, 200, 300, 400: h = 3·0.9 = 2.7 → L_T = 300 + 0.7·100 = 370.
        // So 400 (correct, long) → 0; 500 is incorrect → 0.
        let g = group(&[
            (true, 100),
            (true, 200),
            (true, 300),
            (true, 400),
            (false, 50),
        ]);
        let a = AdaptiveTruncation::default();
        assert_eq!(a.effective_l_t(std::slice::from_ref(&g)), vec![Some(370.0)]);
        assert_rewards(&a.score_group(&g), &[1.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn one_correct_and_none_correct() {
        let a = AdaptiveTruncation {
            fallback_l_t: 64,
            ..AdaptiveTruncation::default()
        };
        // One correct rollout: L_T is its own length, so it is rewarded.
        let one = group(&[(true, 500), (false, 10)]);
        assert_eq!(
            a.effective_l_t(std::slice::from_ref(&one)),
            vec![Some(500.0)]
        );
        assert_rewards(&a.score_group(&one), &[1.0, 0.0]);
        // None correct: the fallback, all zero.
        let none = group(&[(false, 500), (false, 10)]);
        assert_eq!(
            a.effective_l_t(std::slice::from_ref(&none)),
            vec![Some(64.0)]
        );
        assert_rewards(&a.score_group(&none), &[0.0, 0.0]);
        assert!(a.score_group(&group(&[])).is_empty());
    }

    #[test]
    fn all_correct_with_equal_lengths() {
        // Every correct length is 300, so L_T = 300 and L = L_T is short: all rewarded.
        let g = group(&[(true, 300), (true, 300), (true, 300)]);
        assert_rewards(
            &AdaptiveTruncation::default().score_group(&g),
            &[1.0, 1.0, 1.0],
        );
    }

    #[test]
    fn batch_scope_pools_groups() {
        // Pooled correct lengths 100, 200 (group 1) and 1000 (group 2): h = 2·0.5 = 1 → 200.
        let a = AdaptiveTruncation {
            percentile: 50.0,
            scope: AdaptiveScope::Batch,
            ..Default::default()
        };
        let groups = [
            group(&[(true, 100), (true, 200)]),
            group(&[(true, 1000), (false, 5)]),
        ];
        assert_eq!(a.effective_l_t(&groups), vec![Some(200.0), Some(200.0)]);
        let s = a.score_batch(&groups);
        assert_rewards(&s[0], &[1.0, 1.0]);
        assert_rewards(&s[1], &[0.0, 0.0]);
        // Group scope would give group 2 L_T = 1000 and reward it.
        let g = AdaptiveTruncation {
            scope: AdaptiveScope::Group,
            ..a
        };
        assert_rewards(&g.score_batch(&groups)[1], &[1.0, 0.0]);
    }
}
