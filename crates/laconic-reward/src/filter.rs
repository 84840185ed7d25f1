//! Dynamic sampling (DAPO's `filter_groups`, verl's meaning): which groups carry a learning signal.
//!
//! A group whose rollouts all earned the same value has zero advantage under GRPO and only dilutes
//! the batch. With `enable`, the trainer drops such groups and keeps generating rollout batches until
//! `prompts_per_step` informative groups are collected or `max_num_gen_batches` batches were drawn
//! (then it trains on what there is). This module owns the knob and the per-group decision; the loop
//! that draws batches lives in the trainer.
//!
//! ```toml
//! [algorithm]
//! filter_groups = { enable = true, metric = "acc", max_num_gen_batches = 10 }
//! ```

use serde::{Deserialize, Serialize};

use crate::group::{GroupView, Scored};

/// What is compared within a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterMetric {
    /// The shaped reward (verl's `seq_final_reward`): a group is informative when its rewards differ.
    #[default]
    Reward,
    /// Correctness (verl's `acc`): informative when some but not all rollouts are correct.
    Acc,
}

/// The `filter_groups` knob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterGroups {
    /// Drop zero-variance groups and draw more batches. Default `false`.
    pub enable: bool,
    /// What must vary within a group. Default `reward`.
    pub metric: FilterMetric,
    /// Most rollout batches drawn in one step (the first included). Default 10 (verl's DAPO recipe);
    /// verl's "non-positive means unbounded" is refused: a task the policy always or never solves
    /// would loop forever.
    pub max_num_gen_batches: usize,
}

impl Default for FilterGroups {
    fn default() -> Self {
        Self {
            enable: false,
            metric: FilterMetric::Reward,
            max_num_gen_batches: 10,
        }
    }
}

impl FilterGroups {
    /// Checks the knob.
    ///
    /// # Errors
    /// A message naming `max_num_gen_batches` when it is 0.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_num_gen_batches == 0 {
            return Err(
                "`max_num_gen_batches` must be at least 1 (the first batch is one)".to_string(),
            );
        }
        Ok(())
    }

    /// Rollout batches a step may draw: `max_num_gen_batches` when enabled, else 1.
    pub fn batch_limit(&self) -> usize {
        if self.enable {
            self.max_num_gen_batches
        } else {
            1
        }
    }

    /// Whether a group is kept: always when disabled; when enabled, when the metric of its unmasked
    /// rollouts (masked ones get no gradient) takes two values or more. A group of one rollout
    /// (`n = 1`) is kept, as in verl; a group with every rollout masked is dropped.
    ///
    /// ```
    /// use laconic_reward::filter::{FilterGroups, FilterMetric};
    /// use laconic_reward::{Finish, GroupView, Scored};
    /// let f = FilterGroups { enable: true, metric: FilterMetric::Acc, ..Default::default() };
    /// let g = GroupView::new([(true, 5, Finish::Stop), (false, 9, Finish::Stop)]);
    /// assert!(f.keeps(&g, &[Scored::reward(1.0), Scored::reward(0.0)]));
    /// // Only the correct rollout counts when the wrong one is masked.
    /// assert!(!f.keeps(&g, &[Scored::reward(1.0), Scored::masked()]));
    /// ```
    pub fn keeps(&self, group: &GroupView, scores: &[Scored]) -> bool {
        if !self.enable {
            return true;
        }
        if group.len() == 1 {
            return scores.first().is_some_and(|s| !s.masked);
        }
        let mut values = group
            .rollouts()
            .iter()
            .zip(scores)
            .filter(|(_, s)| !s.masked)
            .map(|(r, s)| match self.metric {
                FilterMetric::Reward => s.reward,
                FilterMetric::Acc => f32::from(u8::from(r.correct)),
            });
        let Some(first) = values.next() else {
            return false;
        };
        values.any(|v| v != first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::Finish;

    fn enabled(metric: FilterMetric) -> FilterGroups {
        FilterGroups {
            enable: true,
            metric,
            ..FilterGroups::default()
        }
    }

    fn group(correct: &[bool]) -> GroupView {
        GroupView::new(correct.iter().map(|&c| (c, 10, Finish::Stop)))
    }

    #[test]
    fn reward_metric_keeps_groups_whose_rewards_differ() {
        let f = enabled(FilterMetric::Reward);
        let g = group(&[true, true, true]);
        // All correct, but a length reward separates them: informative.
        let varied = [0.9, 1.0, 0.7].map(Scored::reward);
        assert!(f.keeps(&g, &varied));
        let flat = [1.0, 1.0, 1.0].map(Scored::reward);
        assert!(!f.keeps(&g, &flat));
        // The acc metric sees the all-correct group as flat whatever the rewards.
        assert!(!enabled(FilterMetric::Acc).keeps(&g, &varied));
    }

    #[test]
    fn acc_metric_keeps_mixed_groups_only() {
        let f = enabled(FilterMetric::Acc);
        let rewards = [1.0, 0.0, 0.0].map(Scored::reward);
        assert!(f.keeps(&group(&[true, false, false]), &rewards));
        assert!(!f.keeps(
            &group(&[false, false, false]),
            &[0.0; 3].map(Scored::reward)
        ));
        assert!(!f.keeps(&group(&[true, true, true]), &[1.0; 3].map(Scored::reward)));
    }

    #[test]
    fn masked_rollouts_do_not_count() {
        let f = enabled(FilterMetric::Reward);
        let g = group(&[true, false, false]);
        let scores = [Scored::reward(1.0), Scored::masked(), Scored::masked()];
        assert!(!f.keeps(&g, &scores));
        assert!(!f.keeps(&g, &[Scored::masked(); 3]));
        let two = [Scored::reward(1.0), Scored::reward(0.0), Scored::masked()];
        assert!(f.keeps(&g, &two));
    }

    #[test]
    fn single_rollout_groups_are_kept_unless_masked() {
        let f = enabled(FilterMetric::Acc);
        assert!(f.keeps(&group(&[false]), &[Scored::reward(0.0)]));
        assert!(!f.keeps(&group(&[false]), &[Scored::masked()]));
    }

    #[test]
    fn disabled_keeps_everything_and_draws_once() {
        let f = FilterGroups::default();
        assert!(f.keeps(&group(&[true, true]), &[1.0, 1.0].map(Scored::reward)));
        assert_eq!(f.batch_limit(), 1);
        assert_eq!(enabled(FilterMetric::Acc).batch_limit(), 10);
        let zero = FilterGroups {
            max_num_gen_batches: 0,
            ..FilterGroups::default()
        };
        assert!(zero.validate().unwrap_err().contains("max_num_gen_batches"));
    }
}
