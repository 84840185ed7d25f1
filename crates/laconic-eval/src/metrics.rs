//! Mean@k, unbiased Pass@k, lengths and truncation rate per budget.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::distribution::LengthDistribution;
use crate::sweep::SampleRecord;

/// Unbiased Pass@k from `n` samples of which `c` are correct: `1 − C(n−c, k) / C(n, k)`, the probability
/// that a random `k`-subset of the `n` samples holds a correct one (Chen et al. 2021, "Evaluating Large
/// Language Models Trained on Code", arXiv 2107.03374, eq. 1).
///
/// Computed as `1 − ∏_{i=n−c+1}^{n} (1 − k/i)`, since `C(n−c, k)/C(n, k) = ∏_{i=0}^{k−1} (n−c−i)/(n−i)`
/// `= ∏_{i=n−c+1}^{n} (i−k)/i`: no factorials, no overflow, every factor in [0, 1].
///
/// # Panics
/// When `c > n` or `k` is not in `1..=n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(
        c <= n && (1..=n).contains(&k),
        "pass@k needs c ≤ n and 1 ≤ k ≤ n (n={n}, c={c}, k={k})"
    );
    if n - c < k {
        return 1.0;
    }
    let miss: f64 = (n - c + 1..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    1.0 - miss
}

/// The metrics of one benchmark at one budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetMetrics {
    /// The budget `B` (tokens).
    pub budget: usize,
    /// Questions scored.
    pub questions: usize,
    /// Samples per question (`k`).
    pub samples: usize,
    /// Mean@k: the fraction of a question's `k` samples that are correct, averaged over questions (the
    /// paper's Mean@8).
    pub mean_at_k: f64,
    /// Unbiased Pass@k for each configured `k` ([`pass_at_k`]), averaged over questions.
    pub pass_at_k: BTreeMap<usize, f64>,
    /// Mean tokens per sample, each counted up to `B`.
    pub mean_length: f64,
    /// Fraction of samples without their stop token within `B`.
    pub truncation_rate: f64,
    /// Lengths (each ≤ `B`) of every sample, of the correct ones and of the incorrect ones.
    pub lengths: LengthSplit,
}

/// Length distributions split by correctness at one budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthSplit {
    /// Every sample.
    pub all: LengthDistribution,
    /// Samples correct at this budget.
    pub correct: LengthDistribution,
    /// Samples incorrect at this budget.
    pub incorrect: LengthDistribution,
}

/// How lengths are summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct LengthOptions<'a> {
    /// Quantile levels.
    pub quantiles: &'a [f64],
    /// Histogram bins over `[0, B]`.
    pub bins: usize,
}

/// The metrics at the budget of position `at` in every record's `budgets`, from records ordered by
/// question (as [`crate::score_sample_records`] returns them).
///
/// # Panics
/// When a record has no outcome at `at`, or when `pass_ks` holds a `k` above a question's sample count.
pub fn budget_metrics(
    records: &[SampleRecord],
    at: usize,
    pass_ks: &[usize],
    lengths: &LengthOptions<'_>,
) -> BudgetMetrics {
    let budget = records.first().map_or(0, |r| r.budgets[at].budget);
    let questions = group_by_question(records);
    let per_question: Vec<(usize, usize)> = questions
        .iter()
        .map(|q| (q.len(), q.iter().filter(|r| r.budgets[at].correct).count()))
        .collect();
    let mean_over_questions =
        |f: &dyn Fn(usize, usize) -> f64| mean(per_question.iter().map(|&(n, c)| f(n, c)));
    let mean_at_k = mean_over_questions(&|n, c| c as f64 / n as f64);
    let pass_at_k = pass_ks
        .iter()
        .map(|&k| (k, mean_over_questions(&|n, c| pass_at_k(n, c, k))))
        .collect();
    let outcome_lengths = |keep: &dyn Fn(bool) -> bool| -> Vec<usize> {
        records
            .iter()
            .map(|r| &r.budgets[at])
            .filter(|o| keep(o.correct))
            .map(|o| o.length)
            .collect()
    };
    let summarise =
        |l: &[usize]| LengthDistribution::of(l, lengths.quantiles, budget, lengths.bins);
    let all = outcome_lengths(&|_| true);
    BudgetMetrics {
        budget,
        questions: questions.len(),
        samples: per_question.iter().map(|&(n, _)| n).max().unwrap_or(0),
        mean_at_k,
        pass_at_k,
        mean_length: mean(all.iter().map(|&l| l as f64)),
        truncation_rate: mean(
            records
                .iter()
                .map(|r| f64::from(u8::from(!r.budgets[at].finished))),
        ),
        lengths: LengthSplit {
            correct: summarise(&outcome_lengths(&|c| c)),
            incorrect: summarise(&outcome_lengths(&|c| !c)),
            all: summarise(&all),
        },
    }
}

/// Consecutive runs of records with the same question.
fn group_by_question(records: &[SampleRecord]) -> Vec<&[SampleRecord]> {
    records
        .chunk_by(|a, b| a.question_idx == b.question_idx)
        .collect()
}

/// Mean of the values; 0 for none.
fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::BudgetOutcome;
    use laconic_rollout::Finish;

    /// `C(n, k)` exactly, for small values.
    fn binomial(n: usize, k: usize) -> f64 {
        (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
    }

    #[test]
    fn pass_at_k_hand_computed() {
        // n=5, c=2, k=2: 1 − C(3,2)/C(5,2) = 1 − 3/10.
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
        // k=1 is the fraction correct.
        assert!((pass_at_k(8, 3, 1) - 3.0 / 8.0).abs() < 1e-12);
        // n=4, c=1, k=3: 1 − C(3,3)/C(4,3) = 1 − 1/4.
        assert!((pass_at_k(4, 1, 3) - 0.75).abs() < 1e-12);
        assert_eq!(pass_at_k(8, 0, 8), 0.0);
        assert_eq!(pass_at_k(8, 1, 8), 1.0);
        assert_eq!(pass_at_k(8, 6, 3), 1.0);
        // Large n stays finite and exact-ish: n=1000, c=1, k=1 → 1/1000.
        assert!((pass_at_k(1000, 1, 1) - 1e-3).abs() < 1e-15);
        assert!(
            (pass_at_k(200, 10, 100) - (1.0 - binomial(190, 100) / binomial(200, 100))).abs()
                < 1e-9
        );
    }

    #[test]
    fn pass_at_k_equals_enumerating_every_subset() {
        // For every correctness pattern of n ≤ 6 samples and every k: the fraction of k-subsets holding a
        // correct sample.
        for n in 1..=6usize {
            for pattern in 0u32..(1 << n) {
                let c = pattern.count_ones() as usize;
                for k in 1..=n {
                    let (mut hit, mut total) = (0, 0);
                    for subset in 0u32..(1 << n) {
                        if subset.count_ones() as usize == k {
                            total += 1;
                            hit += usize::from(subset & pattern != 0);
                        }
                    }
                    let brute = hit as f64 / total as f64;
                    let got = pass_at_k(n, c, k);
                    assert!(
                        (got - brute).abs() < 1e-12,
                        "n={n} c={c} k={k}: {got} vs {brute}"
                    );
                }
            }
        }
    }

    fn record(
        question_idx: usize,
        sample_idx: usize,
        outcomes: &[(usize, usize, bool, bool)],
    ) -> SampleRecord {
        SampleRecord {
            benchmark: "t".into(),
            question_idx,
            sample_idx,
            question: String::new(),
            gold: String::new(),
            response: String::new(),
            length: outcomes.last().unwrap().1,
            finish: Finish::Stop,
            budgets: outcomes
                .iter()
                .map(|&(budget, length, finished, correct)| BudgetOutcome {
                    budget,
                    length,
                    finished,
                    correct,
                    extracted: None,
                })
                .collect(),
        }
    }

    #[test]
    fn metrics_of_two_questions() {
        // Question 0: two samples, one correct (length 4) and one cut (length 10). Question 1: two correct.
        let records = [
            record(0, 0, &[(10, 4, true, true)]),
            record(0, 1, &[(10, 10, false, false)]),
            record(1, 0, &[(10, 6, true, true)]),
            record(1, 1, &[(10, 8, true, true)]),
        ];
        let opts = LengthOptions {
            quantiles: &[0.5],
            bins: 2,
        };
        let m = budget_metrics(&records, 0, &[1, 2], &opts);
        assert_eq!((m.budget, m.questions, m.samples), (10, 2, 2));
        // Mean@2 = (1/2 + 2/2) / 2; Pass@2 = (1 + 1) / 2.
        assert!((m.mean_at_k - 0.75).abs() < 1e-12);
        assert!((m.pass_at_k[&1] - 0.75).abs() < 1e-12);
        assert!((m.pass_at_k[&2] - 1.0).abs() < 1e-12);
        assert!((m.mean_length - 7.0).abs() < 1e-12);
        assert!((m.truncation_rate - 0.25).abs() < 1e-12);
        assert_eq!(m.lengths.correct.count, 3);
        assert_eq!(m.lengths.correct.mean, Some(6.0));
        assert_eq!(m.lengths.incorrect.quantile(0.5), Some(10.0));
        assert_eq!(m.lengths.all.histogram.counts, [1, 3]);
    }
}
