//! Checks and verdicts: each finding is decided by rules computed from the runs, never written in.
//!
//! A check compares a [`Metric`] across arms, each arm summarised over its seeds by the mean and the
//! seed spread (sample standard deviation; 0 with one seed). A check's verdict is **reproduced**,
//! **not reproduced** or **inconclusive** by the rule [`Check::rule`] states; an experiment's verdict
//! is reproduced when every check is, not reproduced when any check is not, inconclusive otherwise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::curves::{Metric, RunCurves};

/// The outcome of a check or an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The data show the claim beyond the seed spread.
    Reproduced,
    /// The data show the opposite beyond the seed spread.
    NotReproduced,
    /// The difference is within the seed spread, or data are missing.
    Inconclusive,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

impl Verdict {
    /// An experiment's verdict from its checks' (`None` without checks).
    pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Option<Verdict> {
        let verdicts: Vec<Verdict> = verdicts.into_iter().collect();
        if verdicts.is_empty() {
            None
        } else if verdicts.contains(&Verdict::NotReproduced) {
            Some(Verdict::NotReproduced)
        } else if verdicts.iter().all(|v| *v == Verdict::Reproduced) {
            Some(Verdict::Reproduced)
        } else {
            Some(Verdict::Inconclusive)
        }
    }
}

/// A metric name in an experiment file (`"top_accuracy"`, `"accuracy@48"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MetricName(pub Metric);

impl TryFrom<String> for MetricName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(MetricName)
    }
}

impl From<MetricName> for String {
    fn from(m: MetricName) -> String {
        m.0.to_string()
    }
}

/// One rule of an experiment file (`[[checks]]`, chosen by `kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// `higher`'s metric exceeds `lower`'s.
    Compare {
        /// The claim in words.
        claim: String,
        /// What is compared.
        metric: MetricName,
        /// The arm expected higher.
        higher: String,
        /// The arm expected lower.
        lower: String,
        /// Smallest gap that counts, whatever the seed spread (default 0).
        #[serde(default)]
        min_gap: f64,
    },
    /// Two arms' metric about equal.
    Similar {
        /// The claim in words.
        claim: String,
        /// What is compared.
        metric: MetricName,
        /// The two arms.
        arms: [String; 2],
        /// Largest gap still "about equal".
        tolerance: f64,
    },
    /// The ranking of `arms` by `low` differs from their ranking by `high` (conclusions flip).
    RankFlip {
        /// The claim in words.
        claim: String,
        /// The arms ranked.
        arms: Vec<String>,
        /// The first ranking's metric (e.g. accuracy at a small budget).
        low: MetricName,
        /// The second ranking's metric (e.g. accuracy at the largest budget).
        high: MetricName,
        /// Smallest gap that counts, whatever the seed spread (default 0).
        #[serde(default)]
        min_gap: f64,
    },
    /// The arm's runs show stage I then stage II ([`super::curves::Stages`]).
    TwoStages {
        /// The claim in words.
        claim: String,
        /// The arm.
        arm: String,
    },
}

/// One arm's metric over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedStats {
    /// Per seed; `None` where the run lacks the data.
    pub values: Vec<Option<f64>>,
}

impl SeedStats {
    /// The metric of each of `runs`.
    pub fn of(metric: Metric, runs: &[RunCurves]) -> Self {
        Self {
            values: runs.iter().map(|r| metric.value(r)).collect(),
        }
    }

    /// Mean over seeds; `None` when a seed lacks the value or there are none.
    pub fn mean(&self) -> Option<f64> {
        let values: Option<Vec<f64>> = self.values.iter().copied().collect();
        let values = values.filter(|v| !v.is_empty())?;
        Some(values.iter().sum::<f64>() / values.len() as f64)
    }

    /// Sample standard deviation over seeds (0 with one seed).
    pub fn spread(&self) -> Option<f64> {
        let mean = self.mean()?;
        let n = self.values.len();
        if n < 2 {
            return Some(0.0);
        }
        let ss: f64 = self
            .values
            .iter()
            .flatten()
            .map(|v| (v - mean).powi(2))
            .sum();
        Some((ss / (n - 1) as f64).sqrt())
    }

    /// `mean ± spread` in the metric's unit.
    pub fn show(&self, metric: Metric) -> String {
        match (self.mean(), self.spread()) {
            (Some(m), Some(s)) => format!("{} ± {}", value(metric, m), value(metric, s)),
            _ => "—".into(),
        }
    }
}

/// A value in the metric's unit: fractions as percentages.
pub fn value(metric: Metric, v: f64) -> String {
    if metric.is_fraction() {
        format!("{:.1} %", 100.0 * v)
    } else if v.abs() < 1.0 && v != 0.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

/// What a check decided and why.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// The claim checked.
    pub claim: String,
    /// The rule, stated.
    pub rule: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The numbers that decided it.
    pub evidence: String,
}

/// Each arm's runs, one per seed.
pub type ArmRuns = BTreeMap<String, Vec<RunCurves>>;

impl Check {
    /// The claim in words.
    pub fn claim(&self) -> &str {
        match self {
            Check::Compare { claim, .. }
            | Check::Similar { claim, .. }
            | Check::RankFlip { claim, .. }
            | Check::TwoStages { claim, .. } => claim,
        }
    }

    /// The arms the check reads.
    pub fn arms(&self) -> Vec<&str> {
        match self {
            Check::Compare { higher, lower, .. } => vec![higher, lower],
            Check::Similar { arms, .. } => arms.iter().map(String::as_str).collect(),
            Check::RankFlip { arms, .. } => arms.iter().map(String::as_str).collect(),
            Check::TwoStages { arm, .. } => vec![arm],
        }
    }

    /// Checks the knobs of the rule.
    ///
    /// # Errors
    /// A negative gap or tolerance, or a ranking of fewer than two arms.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |what: &str| Err(format!("check `{}`: {what}", self.claim()));
        match self {
            Check::Compare { min_gap, .. } | Check::RankFlip { min_gap, .. }
                if min_gap.is_nan() || *min_gap < 0.0 =>
            {
                bad("`min_gap` must be ≥ 0")
            }
            Check::Similar { tolerance, .. } if tolerance.is_nan() || *tolerance < 0.0 => {
                bad("`tolerance` must be ≥ 0")
            }
            Check::RankFlip { arms, .. } if arms.len() < 2 => bad("`arms` needs two or more"),
            _ => Ok(()),
        }
    }

    /// The rule in words, as the report states it.
    pub fn rule(&self) -> String {
        match self {
            Check::Compare {
                metric,
                higher,
                lower,
                min_gap,
                ..
            } => format!(
                "{m} = {meaning}. Reproduced when mean({higher}) − mean({lower}) > t, not reproduced \
                 when it is < −t, inconclusive otherwise; t = max(seed spread, {gap}), the seed spread \
                 being the larger of the two arms' standard deviations over seeds.",
                m = metric.0,
                meaning = metric.0.meaning(),
                gap = value(metric.0, *min_gap),
            ),
            Check::Similar {
                metric,
                arms,
                tolerance,
                ..
            } => format!(
                "{m} = {meaning}. Reproduced when |mean({a}) − mean({b})| ≤ {tol}, not reproduced when \
                 it exceeds {tol} + the seed spread, inconclusive otherwise.",
                m = metric.0,
                meaning = metric.0.meaning(),
                a = arms[0],
                b = arms[1],
                tol = value(metric.0, *tolerance),
            ),
            Check::RankFlip {
                arms,
                low,
                high,
                min_gap,
                ..
            } => format!(
                "Rank {arms} by {low} ({lm}) and by {high} ({hm}). Reproduced when some pair is ordered \
                 one way by {low} and the other way by {high}, each gap > t = max(the pair's seed \
                 spread, {gap}); not reproduced when no pair's order of means differs between the two; \
                 inconclusive otherwise.",
                arms = arms.join(", "),
                low = low.0,
                high = high.0,
                lm = low.0.meaning(),
                hm = high.0.meaning(),
                gap = value(low.0, *min_gap),
            ),
            Check::TwoStages { arm, .. } => format!(
                "On each seed of {arm}, the evaluation length (greedy, largest budget) falls by ≥ \
                 {drop:.0} % and stage I ends where {cover:.0} % of that drop is covered (interpolated \
                 between evaluations), with the smoothed training entropy below its start; stage II \
                 lasts ≥ {share:.0} % of the run with the evaluation length within {drift:.0} % of the \
                 drop and the top-budget accuracy at the last evaluation ≥ its value at the first \
                 evaluation after stage I − {slack:.0} point. Reproduced when every seed shows both \
                 stages, not reproduced when none does, inconclusive otherwise.",
                drop = 100.0 * super::curves::STAGE_ONE_MIN_DROP,
                cover = 100.0 * super::curves::STAGE_ONE_COVERED,
                share = 100.0 * super::curves::STAGE_TWO_MIN_SHARE,
                drift = 100.0 * super::curves::STAGE_TWO_MAX_DRIFT,
                slack = 100.0 * super::curves::STAGE_TWO_ACCURACY_SLACK,
            ),
        }
    }

    /// Decides the check on the arms' runs.
    pub fn evaluate(&self, runs: &ArmRuns) -> CheckOutcome {
        let stats = |arm: &str, metric: Metric| {
            SeedStats::of(metric, runs.get(arm).map_or(&[][..], Vec::as_slice))
        };
        let (verdict, evidence) = match self {
            Check::Compare {
                metric,
                higher,
                lower,
                min_gap,
                ..
            } => {
                let (h, l) = (stats(higher, metric.0), stats(lower, metric.0));
                compare(metric.0, (higher, &h), (lower, &l), *min_gap)
            }
            Check::Similar {
                metric,
                arms,
                tolerance,
                ..
            } => {
                let (a, b) = (stats(&arms[0], metric.0), stats(&arms[1], metric.0));
                similar(metric.0, (&arms[0], &a), (&arms[1], &b), *tolerance)
            }
            Check::RankFlip {
                arms,
                low,
                high,
                min_gap,
                ..
            } => {
                let at = |m: Metric| -> Vec<(&str, SeedStats)> {
                    arms.iter().map(|a| (a.as_str(), stats(a, m))).collect()
                };
                rank_flip((low.0, &at(low.0)), (high.0, &at(high.0)), *min_gap)
            }
            Check::TwoStages { arm, .. } => {
                two_stages(arm, runs.get(arm).map_or(&[][..], Vec::as_slice))
            }
        };
        CheckOutcome {
            claim: self.claim().to_string(),
            rule: self.rule(),
            verdict,
            evidence,
        }
    }
}

/// `higher` above `lower` by more than `max(spread, min_gap)`.
fn compare(
    metric: Metric,
    (hi_name, hi): (&str, &SeedStats),
    (lo_name, lo): (&str, &SeedStats),
    min_gap: f64,
) -> (Verdict, String) {
    let (Some(h), Some(l), Some(sh), Some(sl)) = (hi.mean(), lo.mean(), hi.spread(), lo.spread())
    else {
        return (Verdict::Inconclusive, missing(&[hi_name, lo_name]));
    };
    let gap = h - l;
    let t = sh.max(sl).max(min_gap);
    let verdict = if gap > t {
        Verdict::Reproduced
    } else if gap < -t {
        Verdict::NotReproduced
    } else {
        Verdict::Inconclusive
    };
    let evidence = format!(
        "{metric}: {hi_name} {} vs {lo_name} {}; gap {}, t = {}",
        hi.show(metric),
        lo.show(metric),
        signed(metric, gap),
        value(metric, t)
    );
    (verdict, evidence)
}

/// `|a − b| ≤ tolerance`.
fn similar(
    metric: Metric,
    (a_name, a): (&str, &SeedStats),
    (b_name, b): (&str, &SeedStats),
    tolerance: f64,
) -> (Verdict, String) {
    let (Some(ma), Some(mb), Some(sa), Some(sb)) = (a.mean(), b.mean(), a.spread(), b.spread())
    else {
        return (Verdict::Inconclusive, missing(&[a_name, b_name]));
    };
    let gap = (ma - mb).abs();
    let verdict = if gap <= tolerance {
        Verdict::Reproduced
    } else if gap > tolerance + sa.max(sb) {
        Verdict::NotReproduced
    } else {
        Verdict::Inconclusive
    };
    let evidence = format!(
        "{metric}: {a_name} {} vs {b_name} {}; |gap| {}, tolerance {}",
        a.show(metric),
        b.show(metric),
        value(metric, gap),
        value(metric, tolerance)
    );
    (verdict, evidence)
}

/// Whether some pair of arms swaps order between the two metrics.
fn rank_flip(
    (low, at_low): (Metric, &[(&str, SeedStats)]),
    (high, at_high): (Metric, &[(&str, SeedStats)]),
    min_gap: f64,
) -> (Verdict, String) {
    let summary = |at: &[(&str, SeedStats)]| -> Option<Vec<(String, f64, f64)>> {
        at.iter()
            .map(|(name, s)| Some((name.to_string(), s.mean()?, s.spread()?)))
            .collect()
    };
    let (Some(lows), Some(highs)) = (summary(at_low), summary(at_high)) else {
        let names: Vec<&str> = at_low.iter().map(|(n, _)| *n).collect();
        return (Verdict::Inconclusive, missing(&names));
    };
    let mut verdict = Verdict::NotReproduced;
    for i in 0..lows.len() {
        for j in 0..lows.len() {
            let d_low = lows[i].1 - lows[j].1;
            let d_high = highs[j].1 - highs[i].1;
            if i == j || d_low <= 0.0 || d_high <= 0.0 {
                continue;
            }
            let t_low = lows[i].2.max(lows[j].2).max(min_gap);
            let t_high = highs[i].2.max(highs[j].2).max(min_gap);
            if d_low > t_low && d_high > t_high {
                verdict = Verdict::Reproduced;
            } else if verdict == Verdict::NotReproduced {
                verdict = Verdict::Inconclusive;
            }
        }
    }
    let ranking = |metric: Metric, rows: &[(String, f64, f64)]| {
        let mut sorted = rows.to_vec();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
        let items: Vec<String> = sorted
            .iter()
            .map(|(n, m, s)| format!("{n} {} ± {}", value(metric, *m), value(metric, *s)))
            .collect();
        format!("by {metric}: {}", items.join(" > "))
    };
    let evidence = format!("{}; {}", ranking(low, &lows), ranking(high, &highs));
    (verdict, evidence)
}

/// Every seed of the arm shows both stages.
fn two_stages(arm: &str, runs: &[RunCurves]) -> (Verdict, String) {
    if runs.is_empty() {
        return (Verdict::Inconclusive, missing(&[arm]));
    }
    let stages: Vec<_> = runs.iter().map(RunCurves::stages).collect();
    let both = stages.iter().filter(|s| s.stage_two()).count();
    let verdict = match both {
        0 => Verdict::NotReproduced,
        n if n == runs.len() => Verdict::Reproduced,
        _ => Verdict::Inconclusive,
    };
    let per_seed: Vec<String> = stages
        .iter()
        .enumerate()
        .map(|(seed, s)| {
            let shown = match (s.stage_one(), s.stage_two()) {
                (true, true) => "both stages",
                (true, false) => "stage I only",
                _ => "no stage I",
            };
            format!("seed {seed}: {shown} ({})", s.describe())
        })
        .collect();
    let evidence = format!(
        "{arm}: {both} of {} seeds show both stages. {}",
        runs.len(),
        per_seed.join("; ")
    );
    (verdict, evidence)
}

fn signed(metric: Metric, v: f64) -> String {
    let s = value(metric, v.abs());
    if v < 0.0 {
        format!("−{s}")
    } else {
        format!("+{s}")
    }
}

fn missing(arms: &[&str]) -> String {
    format!(
        "a run of {} lacks the data (not finished, or the metric was not evaluated)",
        arms.join(" / ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::curves::EvalPoint;
    use super::*;

    /// Runs whose last evaluation has these top-budget accuracies, at budgets 32 and 176 (32 gets
    /// `1 − top`: the opposite ranking).
    fn arm(accuracies: &[f64]) -> Vec<RunCurves> {
        accuracies
            .iter()
            .map(|&a| RunCurves {
                evals: vec![EvalPoint {
                    step: 10,
                    accuracy: vec![(32, 1.0 - a), (176, a)],
                    length: 40.0,
                }],
                ..Default::default()
            })
            .collect()
    }

    fn runs(arms: &[(&str, &[f64])]) -> ArmRuns {
        arms.iter().map(|(n, a)| (n.to_string(), arm(a))).collect()
    }

    fn compare_check(min_gap: f64) -> Check {
        Check::Compare {
            claim: "easy beats hard".into(),
            metric: MetricName(Metric::TopAccuracy),
            higher: "easy".into(),
            lower: "hard".into(),
            min_gap,
        }
    }

    #[test]
    fn compare_decides_by_the_seed_spread() {
        let check = compare_check(0.0);
        // Gap 0.2, spreads 0.01: reproduced.
        let clear = runs(&[("easy", &[0.99, 0.97, 0.98]), ("hard", &[0.78, 0.79, 0.77])]);
        let outcome = check.evaluate(&clear);
        assert_eq!(outcome.verdict, Verdict::Reproduced, "{}", outcome.evidence);
        assert!(
            outcome.evidence.contains("gap +20.0 %"),
            "{}",
            outcome.evidence
        );
        // Opposite: not reproduced.
        let opposite = runs(&[("easy", &[0.78, 0.79, 0.77]), ("hard", &[0.99, 0.97, 0.98])]);
        assert_eq!(check.evaluate(&opposite).verdict, Verdict::NotReproduced);
        // Gap 0.05 within a spread of 0.1: inconclusive.
        let noisy = runs(&[("easy", &[0.9, 1.0, 0.8]), ("hard", &[0.85, 0.85, 0.85])]);
        assert_eq!(check.evaluate(&noisy).verdict, Verdict::Inconclusive);
        // A stated minimum gap beats a small spread.
        let small = runs(&[("easy", &[0.9]), ("hard", &[0.89])]);
        assert_eq!(check.evaluate(&small).verdict, Verdict::Reproduced);
        assert_eq!(
            compare_check(0.02).evaluate(&small).verdict,
            Verdict::Inconclusive
        );
        // Missing data is inconclusive, never a pass.
        let unfinished = runs(&[("easy", &[0.9])]);
        assert_eq!(check.evaluate(&unfinished).verdict, Verdict::Inconclusive);
    }

    #[test]
    fn similar_and_rank_flip() {
        let similar = Check::Similar {
            claim: "flat".into(),
            metric: MetricName(Metric::TopAccuracy),
            arms: ["a".into(), "b".into()],
            tolerance: 0.03,
        };
        let close = runs(&[("a", &[0.9, 0.92]), ("b", &[0.91, 0.93])]);
        assert_eq!(similar.evaluate(&close).verdict, Verdict::Reproduced);
        let apart = runs(&[("a", &[0.9, 0.9]), ("b", &[0.7, 0.7])]);
        assert_eq!(similar.evaluate(&apart).verdict, Verdict::NotReproduced);

        let flip = Check::RankFlip {
            claim: "flips".into(),
            arms: vec!["kimi".into(), "trunc".into()],
            low: MetricName(Metric::AccuracyAt(32)),
            high: MetricName(Metric::TopAccuracy),
            min_gap: 0.0,
        };
        // kimi 0.7 vs trunc 0.9 at 176 and 0.3 vs 0.1 at 32: the order flips.
        let flipped = runs(&[("kimi", &[0.7, 0.71]), ("trunc", &[0.9, 0.91])]);
        let outcome = flip.evaluate(&flipped);
        assert_eq!(outcome.verdict, Verdict::Reproduced, "{}", outcome.evidence);
        assert!(
            outcome.evidence.starts_with("by accuracy@32: kimi 29.5 %"),
            "{}",
            outcome.evidence
        );
        // Make budget 32 agree with 176: no flip.
        let mut same = flipped.clone();
        for run in same.values_mut().flatten() {
            let top = run.evals[0].accuracy[1].1;
            run.evals[0].accuracy[0].1 = top / 2.0;
        }
        assert_eq!(flip.evaluate(&same).verdict, Verdict::NotReproduced);
        // A flip within the seed spread is inconclusive.
        let noisy = runs(&[("kimi", &[0.7, 0.95]), ("trunc", &[0.9, 0.91])]);
        assert_eq!(flip.evaluate(&noisy).verdict, Verdict::Inconclusive);
    }

    #[test]
    fn experiment_verdicts_combine_their_checks() {
        use Verdict::*;
        assert_eq!(Verdict::combine([]), None);
        assert_eq!(Verdict::combine([Reproduced, Reproduced]), Some(Reproduced));
        assert_eq!(
            Verdict::combine([Reproduced, Inconclusive]),
            Some(Inconclusive)
        );
        assert_eq!(
            Verdict::combine([Reproduced, NotReproduced, Inconclusive]),
            Some(NotReproduced)
        );
    }

    #[test]
    fn checks_parse_from_toml_and_name_bad_metrics() {
        #[derive(Deserialize)]
        struct File {
            checks: Vec<Check>,
        }
        let file: File = toml::from_str(
            r#"
[[checks]]
kind = "rank_flip"
claim = "flip"
arms = ["a", "b"]
low = "accuracy@32"
high = "top_accuracy"
[[checks]]
kind = "two_stages"
claim = "stages"
arm = "a"
"#,
        )
        .unwrap();
        assert_eq!(file.checks.len(), 2);
        assert_eq!(file.checks[1].arms(), vec!["a"]);
        let bad = toml::from_str::<File>(
            "[[checks]]\nkind = \"compare\"\nclaim = \"x\"\nmetric = \"speed\"\nhigher = \"a\"\nlower = \"b\"\n",
        );
        assert!(bad
            .err()
            .unwrap()
            .to_string()
            .contains("unknown metric `speed`"));
    }
}
