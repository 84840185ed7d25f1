//! The plain correctness reward (vanilla RLVR baseline).

use serde::{Deserialize, Serialize};

use super::RewardFn;
use crate::group::{GroupView, Scored};

/// `R = 1[correct]`: the 0/1 baseline without any length shaping (arXiv 2602.20945, "vanilla
/// RL with verifiable rewards scores a rollout by correctness only").
///
/// TOML: `[reward]` `kind = "correctness"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Correctness {}

impl RewardFn for Correctness {
    fn score_group(&self, group: &GroupView) -> Vec<Scored> {
        group
            .rollouts()
            .iter()
            .map(|r| Scored::reward(if r.correct { 1.0 } else { 0.0 }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_rewards, group};
    use super::*;

    #[test]
    fn zero_one() {
        let c = Correctness {};
        assert_rewards(
            &c.score_group(&group(&[(true, 9), (false, 1)])),
            &[1.0, 0.0],
        );
        assert_rewards(&c.score_group(&group(&[(true, 9), (true, 9)])), &[1.0, 1.0]);
        assert_rewards(&c.score_group(&group(&[(false, 9)])), &[0.0]);
        assert!(c.score_group(&group(&[])).is_empty());
    }
}
