//! The view of one prompt's rollouts that every reward shaper scores: correctness, length and
//! finish reason per rollout, with the group statistics the length rewards need.

use serde::{Deserialize, Serialize};

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// An end-of-sequence or stop token.
    #[default]
    Stop,
    /// The rollout limit `L_R` was reached: the response is cut and counts as incorrect
    /// (arXiv 2602.20945: "a rollout cut at L_R has no answer").
    Length,
}

/// One rollout as the shapers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    /// Correct *and* not cut at `L_R` (see [`GroupView::new`]).
    pub correct: bool,
    /// Response length in tokens.
    pub length: usize,
    /// Why generation stopped.
    pub finish: Finish,
}

/// Summary statistics of a set of lengths (population standard deviation, `ddof = 0`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LengthSummary {
    /// How many lengths.
    pub count: usize,
    /// Smallest (0 when empty).
    pub min: f64,
    /// Largest (0 when empty).
    pub max: f64,
    /// Mean (0 when empty).
    pub mean: f64,
    /// Population standard deviation `sqrt(mean((L − mean)²))` (0 when empty).
    pub std: f64,
}

impl LengthSummary {
    /// Summarise `lengths`.
    pub fn of(lengths: impl IntoIterator<Item = f64>) -> LengthSummary {
        let v: Vec<f64> = lengths.into_iter().collect();
        if v.is_empty() {
            return LengthSummary::default();
        }
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
        LengthSummary {
            count: v.len(),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            mean,
            std: var.sqrt(),
        }
    }
}

/// The group statistics, computed once in [`GroupView::new`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GroupStats {
    /// Rollouts in the group, `G`.
    pub size: usize,
    /// Lengths of all rollouts.
    pub all: LengthSummary,
    /// Lengths of the correct rollouts (`count == 0` when none is correct).
    pub correct: LengthSummary,
    /// Fraction correct, `p̂ = #correct / G` (0 for an empty group).
    pub solve_rate: f64,
}

/// One prompt's rollouts, ready to score.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    rollouts: Vec<Rollout>,
    stats: GroupStats,
    target_length: Option<f64>,
}

impl GroupView {
    /// Build a group from `(judged correct, length in tokens, finish)` per rollout. A rollout with
    /// `Finish::Length` is incorrect whatever its text says.
    ///
    /// ```
    /// use laconic_reward::group::{Finish, GroupView};
    /// let g = GroupView::new([(true, 100, Finish::Stop), (true, 300, Finish::Length)]);
    /// assert_eq!(g.stats().solve_rate, 0.5);
    /// assert!(!g.rollouts()[1].correct);
    /// ```
    pub fn new(rollouts: impl IntoIterator<Item = (bool, usize, Finish)>) -> GroupView {
        let rollouts: Vec<Rollout> = rollouts
            .into_iter()
            .map(|(correct, length, finish)| Rollout {
                correct: correct && finish == Finish::Stop,
                length,
                finish,
            })
            .collect();
        let size = rollouts.len();
        let all = LengthSummary::of(rollouts.iter().map(|r| r.length as f64));
        let correct = LengthSummary::of(
            rollouts
                .iter()
                .filter(|r| r.correct)
                .map(|r| r.length as f64),
        );
        let solve_rate = if size == 0 {
            0.0
        } else {
            correct.count as f64 / size as f64
        };
        GroupView {
            rollouts,
            stats: GroupStats {
                size,
                all,
                correct,
                solve_rate,
            },
            target_length: None,
        }
    }

    /// Attach the per-prompt target length `n_gold` (L1 / LCPO, arXiv 2503.04697).
    pub fn with_target_length(mut self, target: f64) -> GroupView {
        self.target_length = Some(target);
        self
    }

    /// The rollouts.
    pub fn rollouts(&self) -> &[Rollout] {
        &self.rollouts
    }

    /// The precomputed statistics.
    pub fn stats(&self) -> &GroupStats {
        &self.stats
    }

    /// The per-prompt target length, if any.
    pub fn target_length(&self) -> Option<f64> {
        self.target_length
    }

    /// `G`.
    pub fn len(&self) -> usize {
        self.rollouts.len()
    }

    /// Whether the group has no rollouts.
    pub fn is_empty(&self) -> bool {
        self.rollouts.is_empty()
    }
}

/// The reward of one rollout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The scalar reward.
    pub reward: f32,
    /// No reward and no gradient: the optimizer drops this rollout from the loss (the masking
    /// variants of arXiv 2602.20945, Table "−I", "−L&C", …). `reward` is 0 when masked.
    pub masked: bool,
}

impl Scored {
    /// An unmasked reward.
    pub fn reward(reward: f32) -> Scored {
        Scored {
            reward,
            masked: false,
        }
    }

    /// A masked rollout.
    pub fn masked() -> Scored {
        Scored {
            reward: 0.0,
            masked: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_by_hand() {
        // lengths 100, 200, 300, 400; correct: 100 and 300 (400 was cut, so it is wrong).
        let g = GroupView::new([
            (true, 100, Finish::Stop),
            (false, 200, Finish::Stop),
            (true, 300, Finish::Stop),
            (true, 400, Finish::Length),
        ]);
        let s = g.stats();
        assert_eq!(s.size, 4);
        assert_eq!((s.all.min, s.all.max, s.all.mean), (100.0, 400.0, 250.0));
        // var = (150² + 50² + 50² + 150²)/4 = 12500 → std ≈ 111.803
        assert!((s.all.std - 12500f64.sqrt()).abs() < 1e-9);
        assert_eq!(
            (s.correct.count, s.correct.mean, s.correct.std),
            (2, 200.0, 100.0)
        );
        assert_eq!(s.solve_rate, 0.5);
    }

    #[test]
    fn empty_group() {
        let g = GroupView::new(std::iter::empty());
        assert!(g.is_empty());
        assert_eq!(g.stats().solve_rate, 0.0);
        assert_eq!(g.stats().all, LengthSummary::default());
    }
}
