//! Reward shapers: one file per reward (or family), each a serde config struct whose
//! [`RewardFn::score_group`] maps a [`GroupView`] to one [`Scored`] per rollout.
//!
//! The configs are the variants of [`crate::config::RewardConfig`], which a `[reward]` TOML table
//! selects by `kind`. Every reward takes correctness from the group, where a rollout cut at `L_R`
//! (`Finish::Length`) is already incorrect.

mod adaptive;
mod alp;
mod arora_zanette;
mod correctness;
mod cosine;
mod dapo;
mod grpo_lead;
mod kimi;
mod l1;
mod laser;
mod truncation;

pub use adaptive::{AdaptiveScope, AdaptiveTruncation};
pub use alp::Alp;
pub use arora_zanette::AroraZanette;
pub use correctness::Correctness;
pub use cosine::Cosine;
pub use dapo::DapoOverlong;
pub use grpo_lead::GrpoLead;
pub use kimi::Kimi;
pub use l1::L1;
pub use laser::{Laser, LaserD};
pub use truncation::{truncation_reward, Truncation, TruncationMask};

use crate::group::{GroupView, Scored};

/// A reward over a group of rollouts of one prompt.
pub trait RewardFn: Send + Sync {
    /// One score per rollout of `group`, in order (empty for an empty group).
    fn score_group(&self, group: &GroupView) -> Vec<Scored>;

    /// Score every group of a rollout batch. The default scores groups independently; rewards
    /// with batch-level statistics (adaptive `L_T` with `scope = "batch"`) override it.
    fn score_batch(&self, groups: &[GroupView]) -> Vec<Vec<Scored>> {
        groups.iter().map(|g| self.score_group(g)).collect()
    }

    /// The target length `L_T` this reward applied to each group, for logging (`None` for
    /// rewards without one).
    fn effective_l_t(&self, groups: &[GroupView]) -> Vec<Option<f64>> {
        vec![None; groups.len()]
    }
}

/// The `p`-th percentile (`0 ≤ p ≤ 100`) of `values` with linear interpolation between closest
/// ranks (NumPy's default `method="linear"`): with sorted `x` and `h = (n−1)·p/100`,
/// `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌈h⌉] − x[⌊h⌋])`. `None` when `values` is empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut x: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if x.is_empty() {
        return None;
    }
    x.sort_by(f64::total_cmp);
    let h = (x.len() - 1) as f64 * p.clamp(0.0, 100.0) / 100.0;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    let (a, b) = (*x.get(lo)?, *x.get(hi)?);
    Some(a + (h - h.floor()) * (b - a))
}

/// The logistic function `σ(x) = 1 / (1 + e^{−x})`.
pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Helpers for the shapers' tests.
#[cfg(test)]
pub(crate) mod test_util {
    use crate::group::{Finish, GroupView, Scored};

    /// A group of `(correct, length)` rollouts that all stopped normally.
    pub fn group(xs: &[(bool, usize)]) -> GroupView {
        GroupView::new(xs.iter().map(|&(c, l)| (c, l, Finish::Stop)))
    }

    /// Assert rewards match `expected` within 1e-5 and no rollout is masked.
    pub fn assert_rewards(got: &[Scored], expected: &[f32]) {
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for (g, e) in got.iter().zip(expected) {
            assert!(!g.masked, "{got:?}");
            assert!(g.reward.is_finite(), "{got:?}");
            assert!(
                (g.reward - e).abs() < 1e-5,
                "got {got:?}, expected {expected:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        // numpy.percentile([1, 2, 3, 4], 90) = 3.7 (h = 3·0.9 = 2.7 → 3 + 0.7·1).
        assert!((percentile(&[4.0, 1.0, 3.0, 2.0], 90.0).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(percentile(&[5.0], 90.0), Some(5.0));
        assert_eq!(percentile(&[], 90.0), None);
        assert_eq!(percentile(&[1.0, 9.0], 0.0), Some(1.0));
        assert_eq!(percentile(&[1.0, 9.0], 100.0), Some(9.0));
    }
}
