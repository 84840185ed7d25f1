//! Training-time metrics of a scored rollout batch, in verl's namespaced style.
//!
//! The paper tracks mean length overall and of positive (reward > 0) and negative rollouts, the
//! truncation rate, and (for its data findings) how dense positive rewards are and how solve
//! rates spread over prompts. [`BatchMetrics::compute`] gathers all of it;
//! [`BatchMetrics::to_pairs`] flattens it to `(key, value)` pairs such as
//! `response_length/mean`, `response_length/positive_mean`, `reward/positive_density`,
//! `response/truncation_rate`, `acc/mean`, `solve_rate/all_correct`. Keys of an empty subset
//! (no correct rollout, say) are left out rather than written as NaN, so every value is valid
//! JSON.

use crate::error::{Error, Result};
use crate::group::{Finish, GroupView, LengthSummary, Scored};
use crate::shapers::percentile;

/// Number of equal-width solve-rate histogram bins over `[0, 1]` (the last bin is closed).
pub const SOLVE_RATE_BINS: usize = 10;

/// Length statistics of a subset of rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LengthStats {
    /// Count, mean, population std, min, max.
    pub summary: LengthSummary,
    /// Median (linear interpolation).
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl LengthStats {
    /// Statistics of `lengths` (all zero when empty).
    pub fn of(lengths: &[f64]) -> LengthStats {
        LengthStats {
            summary: LengthSummary::of(lengths.iter().copied()),
            p50: percentile(lengths, 50.0).unwrap_or(0.0),
            p90: percentile(lengths, 90.0).unwrap_or(0.0),
            p99: percentile(lengths, 99.0).unwrap_or(0.0),
        }
    }

    fn push_pairs(&self, out: &mut Vec<(String, f64)>, prefix: &str) {
        if self.summary.count == 0 {
            return;
        }
        let s = &self.summary;
        for (name, v) in [
            ("mean", s.mean),
            ("std", s.std),
            ("min", s.min),
            ("max", s.max),
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
        ] {
            out.push((format!("response_length/{prefix}{name}"), v));
        }
    }
}

/// How solve rates spread over the batch's groups (prompts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SolveRateStats {
    /// Non-empty groups counted.
    pub groups: usize,
    /// Mean solve rate over groups.
    pub mean: f64,
    /// Fraction of groups with every rollout correct (no learning signal under GRPO).
    pub all_correct: f64,
    /// Fraction of groups with no rollout correct (no learning signal either).
    pub all_wrong: f64,
    /// Fraction of groups with some but not all correct.
    pub mixed: f64,
    /// Group counts per solve-rate bin `[k/10, (k+1)/10)` (the last bin includes 1).
    pub histogram: [usize; SOLVE_RATE_BINS],
}

/// Everything [`BatchMetrics::compute`] measures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchMetrics {
    /// Rollouts in the batch.
    pub rollouts: usize,
    /// All lengths.
    pub length: LengthStats,
    /// Lengths of correct rollouts.
    pub correct: LengthStats,
    /// Lengths of incorrect rollouts.
    pub incorrect: LengthStats,
    /// Lengths of unmasked rollouts with reward > 0.
    pub positive: LengthStats,
    /// Lengths of unmasked rollouts with reward ≤ 0.
    pub negative: LengthStats,
    /// Mean reward over unmasked rollouts.
    pub reward_mean: f64,
    /// Population std of the reward over unmasked rollouts.
    pub reward_std: f64,
    /// Fraction of all rollouts with reward > 0 (masked ones count as not positive).
    pub positive_density: f64,
    /// Fraction of rollouts masked.
    pub masked_fraction: f64,
    /// Fraction of rollouts cut at `L_R` (`Finish::Length`).
    pub truncation_rate: f64,
    /// Fraction correct.
    pub accuracy: f64,
    /// Solve rates over groups.
    pub solve: SolveRateStats,
}

impl BatchMetrics {
    /// Measure a scored batch.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `scores` does not have one entry per group and per rollout.
    pub fn compute(groups: &[GroupView], scores: &[Vec<Scored>]) -> Result<BatchMetrics> {
        if groups.len() != scores.len() {
            return Err(Error::LengthMismatch {
                what: "scores".into(),
                expected: groups.len(),
                found: scores.len(),
            });
        }
        let (mut all, mut cor, mut inc, mut pos, mut neg) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut rewards = Vec::new();
        let (mut n_pos, mut n_masked, mut n_trunc, mut n_correct) =
            (0usize, 0usize, 0usize, 0usize);
        let mut solve = SolveRateStats::default();
        let mut rate_sum = 0.0;
        for (i, (g, s)) in groups.iter().zip(scores).enumerate() {
            if g.len() != s.len() {
                return Err(Error::LengthMismatch {
                    what: format!("scores[{i}]"),
                    expected: g.len(),
                    found: s.len(),
                });
            }
            for (r, sc) in g.rollouts().iter().zip(s) {
                let l = r.length as f64;
                all.push(l);
                if r.correct {
                    n_correct += 1;
                    cor.push(l);
                } else {
                    inc.push(l);
                }
                n_trunc += usize::from(r.finish == Finish::Length);
                if sc.masked {
                    n_masked += 1;
                    continue;
                }
                rewards.push(f64::from(sc.reward));
                if sc.reward > 0.0 {
                    n_pos += 1;
                    pos.push(l);
                } else {
                    neg.push(l);
                }
            }
            if g.is_empty() {
                continue;
            }
            let rate = g.stats().solve_rate;
            solve.groups += 1;
            rate_sum += rate;
            let bin = ((rate * SOLVE_RATE_BINS as f64) as usize).min(SOLVE_RATE_BINS - 1);
            if let Some(h) = solve.histogram.get_mut(bin) {
                *h += 1;
            }
            if rate >= 1.0 {
                solve.all_correct += 1.0;
            } else if rate <= 0.0 {
                solve.all_wrong += 1.0;
            } else {
                solve.mixed += 1.0;
            }
        }
        if solve.groups > 0 {
            let n = solve.groups as f64;
            solve.mean = rate_sum / n;
            solve.all_correct /= n;
            solve.all_wrong /= n;
            solve.mixed /= n;
        }
        let n = all.len();
        let frac = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        let reward = LengthSummary::of(rewards.iter().copied());
        Ok(BatchMetrics {
            rollouts: n,
            length: LengthStats::of(&all),
            correct: LengthStats::of(&cor),
            incorrect: LengthStats::of(&inc),
            positive: LengthStats::of(&pos),
            negative: LengthStats::of(&neg),
            reward_mean: reward.mean,
            reward_std: reward.std,
            positive_density: frac(n_pos),
            masked_fraction: frac(n_masked),
            truncation_rate: frac(n_trunc),
            accuracy: frac(n_correct),
            solve,
        })
    }

    /// The metrics as namespaced pairs (verl style), empty subsets left out.
    pub fn to_pairs(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        if self.rollouts == 0 {
            return out;
        }
        self.length.push_pairs(&mut out, "");
        self.correct.push_pairs(&mut out, "correct_");
        self.incorrect.push_pairs(&mut out, "incorrect_");
        self.positive.push_pairs(&mut out, "positive_");
        self.negative.push_pairs(&mut out, "negative_");
        let mut put = |k: &str, v: f64| out.push((k.to_string(), v));
        put("reward/mean", self.reward_mean);
        put("reward/std", self.reward_std);
        put("reward/positive_density", self.positive_density);
        put("reward/masked_fraction", self.masked_fraction);
        put("response/truncation_rate", self.truncation_rate);
        put("acc/mean", self.accuracy);
        if self.solve.groups > 0 {
            put("solve_rate/mean", self.solve.mean);
            put("solve_rate/all_correct", self.solve.all_correct);
            put("solve_rate/all_wrong", self.solve.all_wrong);
            put("solve_rate/mixed", self.solve.mixed);
            for (k, &c) in self.solve.histogram.iter().enumerate() {
                let key = format!(
                    "solve_rate/hist_{:.1}_{:.1}",
                    k as f64 / 10.0,
                    (k + 1) as f64 / 10.0
                );
                out.push((key, c as f64 / self.solve.groups as f64));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(pairs: &[(String, f64)], key: &str) -> Option<f64> {
        pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    #[test]
    fn by_hand() {
        // Group 1: lengths 100 (correct, r=1), 300 (wrong, r=0). Group 2: 200 (cut at L_R →
        // wrong, r=0), 400 (correct, masked).
        let groups = vec![
            GroupView::new([(true, 100, Finish::Stop), (false, 300, Finish::Stop)]),
            GroupView::new([(true, 200, Finish::Length), (true, 400, Finish::Stop)]),
        ];
        let scores = vec![
            vec![Scored::reward(1.0), Scored::reward(0.0)],
            vec![Scored::reward(0.0), Scored::masked()],
        ];
        let m = BatchMetrics::compute(&groups, &scores).unwrap();
        let p = m.to_pairs();
        assert_eq!(get(&p, "response_length/mean"), Some(250.0));
        assert_eq!(get(&p, "response_length/correct_mean"), Some(250.0)); // 100, 400
        assert_eq!(get(&p, "response_length/incorrect_mean"), Some(250.0)); // 300, 200
        assert_eq!(get(&p, "response_length/positive_mean"), Some(100.0));
        assert_eq!(get(&p, "response_length/negative_mean"), Some(250.0)); // 300, 200
        assert!((get(&p, "reward/mean").unwrap() - 1.0 / 3.0).abs() < 1e-12); // 1, 0, 0
        assert_eq!(get(&p, "reward/positive_density"), Some(0.25));
        assert_eq!(get(&p, "reward/masked_fraction"), Some(0.25));
        assert_eq!(get(&p, "response/truncation_rate"), Some(0.25));
        assert_eq!(get(&p, "acc/mean"), Some(0.5));
        // Both groups solve 1 of 2: mixed.
        assert_eq!(get(&p, "solve_rate/mixed"), Some(1.0));
        assert_eq!(get(&p, "solve_rate/all_correct"), Some(0.0));
        assert_eq!(get(&p, "solve_rate/hist_0.5_0.6"), Some(1.0));
        // Percentiles: all lengths 100..400 → p50 = 250, p90 = 370.
        assert_eq!(get(&p, "response_length/p50"), Some(250.0));
        assert!((get(&p, "response_length/p90").unwrap() - 370.0).abs() < 1e-9);
    }

    #[test]
    fn solve_rate_extremes_and_empty_subsets() {
        let groups = vec![
            GroupView::new([(true, 1, Finish::Stop), (true, 1, Finish::Stop)]),
            GroupView::new([(false, 1, Finish::Stop)]),
        ];
        let scores = vec![vec![Scored::reward(1.0); 2], vec![Scored::reward(0.0)]];
        let m = BatchMetrics::compute(&groups, &scores).unwrap();
        assert_eq!(
            (m.solve.all_correct, m.solve.all_wrong, m.solve.mixed),
            (0.5, 0.5, 0.0)
        );
        assert_eq!(m.solve.histogram[0], 1);
        assert_eq!(m.solve.histogram[SOLVE_RATE_BINS - 1], 1);
        let empty = BatchMetrics::compute(&[], &[]).unwrap();
        assert!(empty.to_pairs().is_empty());
        let p = BatchMetrics::compute(&groups[1..], &scores[1..])
            .unwrap()
            .to_pairs();
        assert_eq!(get(&p, "response_length/correct_mean"), None);
        assert!(p.iter().all(|(_, v)| v.is_finite()));
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        let groups = vec![GroupView::new([(true, 1, Finish::Stop)])];
        assert!(BatchMetrics::compute(&groups, &[]).is_err());
        let e = BatchMetrics::compute(&groups, &[vec![]])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "length mismatch: `scores[0]` has 0 entries, expected 1");
    }
}
