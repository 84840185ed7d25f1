//! The paper's truncation reward and its masking variants.

use serde::{Deserialize, Serialize};

use super::RewardFn;
use crate::group::{GroupView, Scored};

/// Which rollouts get no reward and no gradient (arXiv 2602.20945, masking table; "short" is
/// `L ≤ L_T`, "long" is `L > L_T`):
///
/// | variant | correct·short | correct·long | incorrect·short | incorrect·long |
/// |---|---|---|---|---|
/// | `none` (vanilla) | 1 | 0 | 0 | 0 |
/// | `incorrect` (−I) | 1 | 0 | − | − |
/// | `long_correct` (−L&C) | 1 | − | 0 | 0 |
/// | `long_correct_short_incorrect` (−L&C−S&I) | 1 | − | − | 0 |
/// | `long_correct_long_incorrect` (−L&C−L&I) | 1 | − | 0 | − |
///
/// The paper finds −I collapses (the "short-is-correct trap") and recommends `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TruncationMask {
    /// Vanilla: nothing is masked.
    #[default]
    None,
    /// −I: every incorrect rollout is masked.
    Incorrect,
    /// −L&C: correct rollouts longer than `L_T` are masked.
    LongCorrect,
    /// −L&C−S&I: long correct and short incorrect rollouts are masked.
    LongCorrectShortIncorrect,
    /// −L&C−L&I: long correct and long incorrect rollouts are masked.
    LongCorrectLongIncorrect,
}

impl TruncationMask {
    /// Whether a rollout with this correctness and "long" (`L > L_T`) flag is masked.
    pub fn masks(self, correct: bool, long: bool) -> bool {
        match self {
            TruncationMask::None => false,
            TruncationMask::Incorrect => !correct,
            TruncationMask::LongCorrect => correct && long,
            TruncationMask::LongCorrectShortIncorrect => (correct && long) || (!correct && !long),
            TruncationMask::LongCorrectLongIncorrect => long,
        }
    }
}

/// The truncation reward `R = 1[correct] · 1[L ≤ L_T]` (arXiv 2602.20945, the paper's choice),
/// with an optional mask.
///
/// TOML: `[reward]` `kind = "truncation"`, `l_t = 8192`, `mask = "none"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Truncation {
    /// Target length `L_T` in tokens. Default 8192: the paper's Qwen3-0.6B run uses
    /// `L_R = L_T = 8k`, and finds `L_T = L_R` the best trade-off.
    pub l_t: usize,
    /// Masking variant. Default `none` (vanilla).
    pub mask: TruncationMask,
}

impl Default for Truncation {
    fn default() -> Self {
        Truncation {
            l_t: 8192,
            mask: TruncationMask::None,
        }
    }
}

/// `1[c]·1[L ≤ L_T]` for each rollout, masked per `mask`. Shared with the adaptive variant.
pub fn truncation_reward(group: &GroupView, l_t: f64, mask: TruncationMask) -> Vec<Scored> {
    group
        .rollouts()
        .iter()
        .map(|r| {
            let long = r.length as f64 > l_t;
            if mask.masks(r.correct, long) {
                Scored::masked()
            } else {
                Scored::reward(if r.correct && !long { 1.0 } else { 0.0 })
            }
        })
        .collect()
}

impl RewardFn for Truncation {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        truncation_reward(group, self.l_t as f64, self.mask)
    }

    fn effective_l_t(&self, groups: &[GroupView]) -> Vec<Option<f64>> {
        vec![Some(self.l_t as f64); groups.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_rewards, group};
    use super::*;

    /// correct·short, correct·long, incorrect·short, incorrect·long with L_T = 100.
    fn quadrants() -> GroupView {
        group(&[(true, 50), (true, 150), (false, 50), (false, 150)])
    }

    fn pattern(mask: TruncationMask) -> Vec<Option<f32>> {
        let t = Truncation { l_t: 100, mask };
        t.score_group(&quadrants())
            .iter()
            .map(|s| (!s.masked).then_some(s.reward))
            .collect()
    }

    #[test]
    fn masking_table_of_the_paper() {
        // Rows of the table in PAPER.md; `None` is "−" (masked).
        use TruncationMask as M;
        assert_eq!(
            pattern(M::None),
            [Some(1.0), Some(0.0), Some(0.0), Some(0.0)]
        );
        assert_eq!(pattern(M::Incorrect), [Some(1.0), Some(0.0), None, None]);
        assert_eq!(
            pattern(M::LongCorrect),
            [Some(1.0), None, Some(0.0), Some(0.0)]
        );
        assert_eq!(
            pattern(M::LongCorrectShortIncorrect),
            [Some(1.0), None, None, Some(0.0)]
        );
        assert_eq!(
            pattern(M::LongCorrectLongIncorrect),
            [Some(1.0), None, Some(0.0), None]
        );
    }

    #[test]
    fn boundary_and_edge_groups() {
        let t = Truncation {
            l_t: 100,
            mask: TruncationMask::None,
        };
        // L = L_T is short (≤).
        assert_rewards(
            &t.score_group(&group(&[(true, 100), (true, 101)])),
            &[1.0, 0.0],
        );
        assert_rewards(
            &t.score_group(&group(&[(true, 10), (true, 20)])),
            &[1.0, 1.0],
        );
        assert_rewards(
            &t.score_group(&group(&[(false, 10), (false, 20)])),
            &[0.0, 0.0],
        );
        assert_rewards(
            &t.score_group(&group(&[(true, 10), (false, 20)])),
            &[1.0, 0.0],
        );
        assert!(t.score_group(&group(&[])).is_empty());
    }

    #[test]
    fn cut_rollouts_are_incorrect() {
        use crate::group::Finish;
        let g = GroupView::new([(true, 50, Finish::Length)]);
        assert_rewards(
            &Truncation {
                l_t: 100,
                mask: TruncationMask::None,
            }
            .score_group(&g),
            &[0.0],
        );
    }
}
