//! What the lab reads back from one finished run: its training curves, its evaluations, the stages of
//! its length curve, and the scalar [`Metric`]s that checks compare.

use std::path::Path;
use std::str::FromStr;

use laconic_eval::{BenchmarkReport, EvalReport};

use crate::error::Result;
use crate::report::points;
use crate::run::RunDir;

/// Points of a trailing moving average used on training curves (per-step values are noisy).
pub const SMOOTHING: usize = 5;
/// Stage I exists when the evaluation length falls by at least this share of its value before training.
pub const STAGE_ONE_MIN_DROP: f64 = 0.15;
/// Stage I ends where the evaluation length has covered this share of its drop (to its minimum).
pub const STAGE_ONE_COVERED: f64 = 0.9;
/// Stage II must span at least this share of the run's steps.
pub const STAGE_TWO_MIN_SHARE: f64 = 0.2;
/// In stage II the evaluation length stays within this share of the stage I drop (max − min).
pub const STAGE_TWO_MAX_DRIFT: f64 = 0.25;
/// In stage II the top-budget accuracy may end at most this far (absolute) below its value at the
/// first evaluation after stage I: "recovers or improves", one held-out problem in 100 of slack.
pub const STAGE_TWO_ACCURACY_SLACK: f64 = 0.01;

/// One evaluation of a run: accuracy per budget and the mean length at the largest budget.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalPoint {
    /// The step evaluated (0 = before training).
    pub step: u64,
    /// `(budget, Mean@k)`, ascending budgets.
    pub accuracy: Vec<(usize, f64)>,
    /// Mean length at the largest budget (tokens).
    pub length: f64,
}

impl EvalPoint {
    /// Mean@k at the largest budget.
    pub fn top_accuracy(&self) -> Option<f64> {
        self.accuracy.last().map(|&(_, a)| a)
    }
}

/// The curves of one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunCurves {
    /// `(step, mean rollout length)`.
    pub length: Vec<(f64, f64)>,
    /// `(step, training accuracy)`.
    pub accuracy: Vec<(f64, f64)>,
    /// `(step, policy entropy)`.
    pub entropy: Vec<(f64, f64)>,
    /// `(step, share of rollouts with a positive reward)`.
    pub positive_density: Vec<(f64, f64)>,
    /// Every evaluation, by step.
    pub evals: Vec<EvalPoint>,
    /// The last evaluation's first benchmark (histograms, Pass@k).
    pub last_eval: Option<BenchmarkReport>,
}

impl RunCurves {
    /// Reads a run folder: `metrics.jsonl` and every `eval/step_N/eval.json`.
    ///
    /// # Errors
    /// An unreadable metrics file or evaluation report (naming it).
    pub fn read(dir: &Path) -> Result<Self> {
        let (run, _) = RunDir::attach(dir)?;
        let metrics = run.read_metrics()?;
        let mut steps: Vec<u64> = std::fs::read_dir(dir.join("eval"))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str()?.strip_prefix("step_")?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        steps.sort_unstable();
        let mut evals = Vec::new();
        let mut last_eval = None;
        for step in steps {
            let report = EvalReport::read(dir.join(format!("eval/step_{step}")))?;
            let Some(bench) = report.benchmarks.into_iter().next() else {
                continue;
            };
            evals.push(EvalPoint {
                step,
                accuracy: bench
                    .budgets
                    .iter()
                    .map(|m| (m.budget, m.mean_at_k))
                    .collect(),
                length: bench.at_max().map_or(f64::NAN, |m| m.mean_length),
            });
            last_eval = Some(bench);
        }
        Ok(Self {
            length: points(&metrics, "response_length/mean"),
            accuracy: points(&metrics, "acc/mean"),
            entropy: points(&metrics, "actor/entropy"),
            positive_density: points(&metrics, "reward/positive_density"),
            evals,
            last_eval,
        })
    }

    /// The last step with a training metric.
    pub fn last_step(&self) -> f64 {
        self.length.last().map_or(0.0, |&(s, _)| s)
    }

    /// The stages of this run's length curve.
    pub fn stages(&self) -> Stages {
        detect_stages(&self.evals, &self.entropy, self.last_step())
    }
}

/// Trailing moving average over [`SMOOTHING`] points.
pub fn smooth(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|i| {
            let window = &points[i.saturating_sub(SMOOTHING - 1)..=i];
            let mean = window.iter().map(|&(_, v)| v).sum::<f64>() / window.len() as f64;
            (points[i].0, mean)
        })
        .collect()
}

/// The two stages of training, detected on the curves (see the `STAGE_*` constants).
///
/// Lengths are the evaluation's (greedy, at the largest budget): a training rollout is cut at `L_R`,
/// so the training curve hides how long the policy would write.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    /// The step where stage I (length adaptation) ends, interpolated between evaluations; `None`
    /// when the length did not fall enough.
    pub stage_one_end: Option<f64>,
    /// Evaluation length before training.
    pub length_start: f64,
    /// The evaluation length's minimum.
    pub length_min: f64,
    /// Entropy at the first step.
    pub entropy_start: f64,
    /// Smoothed entropy at the end of stage I.
    pub entropy_stage_one: Option<f64>,
    /// Share of the run after stage I.
    pub stage_two_share: f64,
    /// Range (max − min) of the evaluation length after stage I, as a share of the stage I drop.
    pub stage_two_drift: Option<f64>,
    /// Top-budget accuracy at the first evaluation at or after the end of stage I, and at the last.
    pub accuracy: Option<(f64, f64)>,
}

impl Stages {
    /// Stage I: the length fell and so did the entropy.
    pub fn stage_one(&self) -> bool {
        self.stage_one_end.is_some()
            && self
                .entropy_stage_one
                .is_some_and(|e| e < self.entropy_start)
    }

    /// Stage II: long enough, the length flat, the accuracy recovered or improved.
    pub fn stage_two(&self) -> bool {
        self.stage_one()
            && self.stage_two_share >= STAGE_TWO_MIN_SHARE
            && self
                .stage_two_drift
                .is_some_and(|d| d <= STAGE_TWO_MAX_DRIFT)
            && self
                .accuracy
                .is_some_and(|(after, last)| last >= after - STAGE_TWO_ACCURACY_SLACK)
    }

    /// One line of the numbers that decided it.
    pub fn describe(&self) -> String {
        let Some(end) = self.stage_one_end else {
            return format!(
                "no stage I: evaluation length {:.1} → min {:.1} (less than a {:.0} % drop)",
                self.length_start,
                self.length_min,
                100.0 * STAGE_ONE_MIN_DROP
            );
        };
        format!(
            "stage I ends at step {end:.1}: evaluation length {:.1} → {:.1}, entropy {:.3} → {}; \
             stage II {:.0} % of the run, length drift {}, top accuracy {}",
            self.length_start,
            self.length_min,
            self.entropy_start,
            self.entropy_stage_one
                .map_or("—".into(), |e| format!("{e:.3}")),
            100.0 * self.stage_two_share,
            self.stage_two_drift
                .map_or("—".into(), |d| format!("{:.0} % of the drop", 100.0 * d)),
            self.accuracy.map_or("—".into(), |(a, b)| format!(
                "{:.1} → {:.1} %",
                100.0 * a,
                100.0 * b
            ))
        )
    }
}

/// Finds stage I's end on the evaluation length (interpolated between evaluations), checks the
/// training entropy fell by then, and measures stage II's length drift and accuracy.
pub fn detect_stages(evals: &[EvalPoint], entropy: &[(f64, f64)], last_step: f64) -> Stages {
    let lengths: Vec<(f64, f64)> = evals
        .iter()
        .map(|e| (e.step as f64, e.length))
        .filter(|(_, l)| l.is_finite())
        .collect();
    let length_start = lengths.first().map_or(f64::NAN, |&(_, v)| v);
    let length_min = lengths
        .iter()
        .map(|&(_, v)| v)
        .fold(f64::INFINITY, f64::min);
    let drop = length_start - length_min;
    let entropy_start = entropy.first().map_or(f64::NAN, |&(_, v)| v);
    let mut stages = Stages {
        stage_one_end: None,
        length_start,
        length_min,
        entropy_start,
        entropy_stage_one: None,
        stage_two_share: 0.0,
        stage_two_drift: None,
        accuracy: None,
    };
    let fell_enough = drop >= STAGE_ONE_MIN_DROP * length_start; // false for NaN
    if !fell_enough {
        return stages;
    }
    let target = length_start - STAGE_ONE_COVERED * drop;
    let Some(i) = lengths.iter().position(|&(_, v)| v <= target) else {
        return stages;
    };
    // Linear interpolation between the evaluation before the crossing and the one at it.
    let end = match i {
        0 => lengths[0].0,
        _ => {
            let ((s0, l0), (s1, l1)) = (lengths[i - 1], lengths[i]);
            s0 + (s1 - s0) * (l0 - target) / (l0 - l1)
        }
    };
    stages.stage_one_end = Some(end);
    stages.entropy_stage_one = smooth(entropy)
        .iter()
        .rev()
        .find(|&&(s, _)| s <= end.ceil())
        .map(|&(_, v)| v);
    let first = lengths[0].0;
    stages.stage_two_share = if last_step > first {
        ((last_step - end) / (last_step - first)).max(0.0)
    } else {
        0.0
    };
    let after: Vec<f64> = lengths[i..].iter().map(|&(_, v)| v).collect();
    if after.len() > 1 {
        let (lo, hi) = after
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        stages.stage_two_drift = Some((hi - lo) / drop);
    }
    let after_stage_one = evals
        .iter()
        .find(|e| e.step as f64 >= lengths[i].0)
        .and_then(EvalPoint::top_accuracy);
    let final_accuracy = evals.last().and_then(EvalPoint::top_accuracy);
    stages.accuracy = after_stage_one.zip(final_accuracy);
    stages
}

/// A number summarising one run, compared across arms by the checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Mean@k at the largest budget, last evaluation.
    TopAccuracy,
    /// Mean@k at one budget, last evaluation.
    AccuracyAt(usize),
    /// Pass@k (largest `k` evaluated) at the largest budget, last evaluation.
    PassAtK,
    /// Mean length at the largest budget, last evaluation (tokens).
    EvalLength,
    /// Mean length of the correct samples at the largest budget, last evaluation (tokens).
    CorrectLength,
    /// Mean length of the incorrect samples at the largest budget, last evaluation (tokens).
    IncorrectLength,
    /// Mean rollout length over the last quarter of the steps (tokens).
    TrainLength,
    /// The step stage I ends (the last step when there is no stage I).
    StageOneEnd,
    /// Highest smoothed entropy in the second half of the run.
    EntropyPeak,
    /// Mean share of rollouts with a positive reward, over all steps.
    PositiveDensity,
    /// Last smoothed rollout length minus its minimum (tokens).
    LengthRebound,
}

impl FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(budget) = s.strip_prefix("accuracy@") {
            return budget
                .parse()
                .map(Metric::AccuracyAt)
                .map_err(|_| format!("`{s}`: the budget after `accuracy@` must be an integer"));
        }
        Ok(match s {
            "top_accuracy" => Metric::TopAccuracy,
            "pass_at_k" => Metric::PassAtK,
            "eval_length" => Metric::EvalLength,
            "correct_length" => Metric::CorrectLength,
            "incorrect_length" => Metric::IncorrectLength,
            "train_length" => Metric::TrainLength,
            "stage_one_end" => Metric::StageOneEnd,
            "entropy_peak" => Metric::EntropyPeak,
            "positive_density" => Metric::PositiveDensity,
            "length_rebound" => Metric::LengthRebound,
            other => {
                return Err(format!(
                    "unknown metric `{other}` (top_accuracy, accuracy@B, pass_at_k, eval_length, \
                     correct_length, incorrect_length, train_length, stage_one_end, entropy_peak, \
                     positive_density, length_rebound)"
                ))
            }
        })
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Metric::TopAccuracy => write!(f, "top_accuracy"),
            Metric::AccuracyAt(b) => write!(f, "accuracy@{b}"),
            Metric::PassAtK => write!(f, "pass_at_k"),
            Metric::EvalLength => write!(f, "eval_length"),
            Metric::CorrectLength => write!(f, "correct_length"),
            Metric::IncorrectLength => write!(f, "incorrect_length"),
            Metric::TrainLength => write!(f, "train_length"),
            Metric::StageOneEnd => write!(f, "stage_one_end"),
            Metric::EntropyPeak => write!(f, "entropy_peak"),
            Metric::PositiveDensity => write!(f, "positive_density"),
            Metric::LengthRebound => write!(f, "length_rebound"),
        }
    }
}

impl Metric {
    /// What the metric measures, for the report's rules.
    pub fn meaning(&self) -> String {
        match self {
            Metric::TopAccuracy => "Mean@k at the largest budget at the last evaluation".into(),
            Metric::AccuracyAt(b) => format!("Mean@k at budget {b} at the last evaluation"),
            Metric::PassAtK => "Pass@k at the largest budget at the last evaluation".into(),
            Metric::EvalLength => "mean length at the largest budget at the last evaluation".into(),
            Metric::CorrectLength => {
                "mean length of the correct samples at the largest budget at the last evaluation"
                    .into()
            }
            Metric::IncorrectLength => {
                "mean length of the incorrect samples at the largest budget at the last evaluation"
                    .into()
            }
            Metric::TrainLength => "mean rollout length over the last quarter of the steps".into(),
            Metric::StageOneEnd => "the step stage I ends, interpolated between evaluations (the \
                                     run's last step without a stage I)"
                .into(),
            Metric::EntropyPeak => format!(
                "the highest {SMOOTHING}-step mean of the entropy in the second half of the run"
            ),
            Metric::PositiveDensity => {
                "the mean share of rollouts with a positive reward over all steps".into()
            }
            Metric::LengthRebound => {
                format!("the last {SMOOTHING}-step mean rollout length minus its minimum")
            }
        }
    }

    /// Whether the value is a fraction (shown as a percentage).
    pub fn is_fraction(&self) -> bool {
        matches!(
            self,
            Metric::TopAccuracy | Metric::AccuracyAt(_) | Metric::PassAtK | Metric::PositiveDensity
        )
    }

    /// The metric of one run; `None` when the run lacks the data (e.g. a budget it did not evaluate).
    pub fn value(&self, run: &RunCurves) -> Option<f64> {
        let last = run.evals.last();
        let finite = |v: f64| v.is_finite().then_some(v);
        match self {
            Metric::TopAccuracy => last?.top_accuracy(),
            Metric::AccuracyAt(b) => last?
                .accuracy
                .iter()
                .find(|(budget, _)| budget == b)
                .map(|&(_, a)| a),
            Metric::PassAtK => run
                .last_eval
                .as_ref()?
                .at_max()?
                .pass_at_k
                .iter()
                .next_back()
                .map(|(_, &p)| p),
            Metric::EvalLength => finite(last?.length),
            Metric::CorrectLength => run.last_eval.as_ref()?.at_max()?.lengths.correct.mean,
            Metric::IncorrectLength => run.last_eval.as_ref()?.at_max()?.lengths.incorrect.mean,
            Metric::TrainLength => {
                let quarter = run.length.len().div_ceil(4);
                mean(
                    run.length[run.length.len() - quarter..]
                        .iter()
                        .map(|&(_, v)| v),
                )
            }
            Metric::StageOneEnd => Some(run.stages().stage_one_end.unwrap_or(run.last_step())),
            Metric::EntropyPeak => {
                let smoothed = smooth(&run.entropy);
                let half = run.last_step() / 2.0;
                smoothed
                    .iter()
                    .filter(|&&(s, _)| s > half)
                    .map(|&(_, v)| v)
                    .reduce(f64::max)
            }
            Metric::PositiveDensity => mean(run.positive_density.iter().map(|&(_, v)| v)),
            Metric::LengthRebound => {
                let smoothed = smooth(&run.length);
                let min = smoothed.iter().map(|&(_, v)| v).reduce(f64::min)?;
                Some(smoothed.last()?.1 - min)
            }
        }
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(values: &[f64]) -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| ((i + 1) as f64, v))
            .collect()
    }

    /// Evaluations every 10 steps from step 0: `(length, top accuracy)`.
    fn evals(points: &[(f64, f64)]) -> Vec<EvalPoint> {
        points
            .iter()
            .enumerate()
            .map(|(i, &(length, acc))| EvalPoint {
                step: 10 * i as u64,
                accuracy: vec![(32, acc / 2.0), (176, acc)],
                length,
            })
            .collect()
    }

    /// 40 steps of entropy falling from 0.3 to 0.1 over the first 10, then flat.
    fn falling_entropy() -> Vec<(f64, f64)> {
        curve(
            &(0..40)
                .map(|i| if i < 10 { 0.3 - 0.02 * i as f64 } else { 0.1 })
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn two_stages_are_found_on_a_falling_then_flat_curve() {
        // Length 96 → 40 (minimum 38): 90 % of the 58-token drop is reached at 43.8 tokens, between
        // step 0 (96) and step 10 (40): 10 · (96 − 43.8)/(96 − 40) = 9.32.
        let evals = evals(&[
            (96.0, 0.8),
            (40.0, 0.85),
            (38.0, 0.88),
            (39.0, 0.9),
            (38.5, 0.9),
        ]);
        let stages = detect_stages(&evals, &falling_entropy(), 40.0);
        let end = stages.stage_one_end.unwrap();
        assert!((end - 9.3214).abs() < 1e-3, "{end}");
        assert!(stages.stage_one() && stages.stage_two(), "{stages:?}");
        assert_eq!(stages.accuracy, Some((0.85, 0.9)));
        assert!(stages.describe().contains("stage I ends at step 9.3"));
    }

    #[test]
    fn stage_two_fails_when_accuracy_keeps_falling_or_length_rebounds() {
        let entropy = falling_entropy();
        let falling = evals(&[
            (96.0, 0.8),
            (40.0, 0.85),
            (38.0, 0.8),
            (39.0, 0.75),
            (38.5, 0.7),
        ]);
        let stages = detect_stages(&falling, &entropy, 40.0);
        assert!(stages.stage_one() && !stages.stage_two(), "{stages:?}");

        let rebound = evals(&[
            (96.0, 0.8),
            (40.0, 0.85),
            (38.0, 0.9),
            (50.0, 0.9),
            (60.0, 0.9),
        ]);
        let stages = detect_stages(&rebound, &entropy, 40.0);
        assert!(stages.stage_one(), "{stages:?}");
        assert!(stages.stage_two_drift.unwrap() > STAGE_TWO_MAX_DRIFT);
        assert!(!stages.stage_two());

        // Stage I that ends at the last evaluation leaves no stage II.
        let late = evals(&[
            (96.0, 0.8),
            (90.0, 0.85),
            (80.0, 0.9),
            (70.0, 0.9),
            (40.0, 0.9),
        ]);
        let stages = detect_stages(&late, &entropy, 40.0);
        assert!(stages.stage_one() && !stages.stage_two(), "{stages:?}");
    }

    #[test]
    fn no_stage_one_without_a_drop_or_when_entropy_rises() {
        let flat = evals(&[(60.0, 0.8), (59.0, 0.8), (61.0, 0.8), (58.0, 0.8)]);
        let stages = detect_stages(&flat, &falling_entropy(), 30.0);
        assert_eq!(stages.stage_one_end, None);
        assert!(!stages.stage_one() && stages.describe().starts_with("no stage I"));

        let dropping = evals(&[(96.0, 0.8), (40.0, 0.85), (38.0, 0.88), (39.0, 0.9)]);
        let rising = curve(&(0..30).map(|i| 0.1 + 0.01 * i as f64).collect::<Vec<_>>());
        let stages = detect_stages(&dropping, &rising, 30.0);
        assert!(stages.stage_one_end.is_some() && !stages.stage_one());
    }

    #[test]
    fn metrics_parse_print_and_read_runs() {
        for name in [
            "top_accuracy",
            "accuracy@48",
            "incorrect_length",
            "entropy_peak",
            "length_rebound",
        ] {
            assert_eq!(name.parse::<Metric>().unwrap().to_string(), name);
        }
        assert!("accuracy@x".parse::<Metric>().is_err());
        assert!("speed"
            .parse::<Metric>()
            .unwrap_err()
            .contains("top_accuracy"));

        // Training length: 50 falling to 30 at step 6, rebounding by 2 per step from step 15.
        let length: Vec<f64> = (1..=20)
            .map(|s| match s {
                ..=5 => 50.0 - 4.0 * f64::from(s),
                6..=14 => 30.0,
                _ => 30.0 + 2.0 * f64::from(s - 14),
            })
            .collect();
        let run = RunCurves {
            length: curve(&length),
            entropy: curve(&(1..=20).map(|s| 0.01 * f64::from(s)).collect::<Vec<_>>()),
            positive_density: curve(&[0.2, 0.4, 0.6]),
            evals: evals(&[(96.0, 0.8), (40.0, 0.9), (39.0, 0.9)]),
            ..Default::default()
        };
        assert_eq!(Metric::TopAccuracy.value(&run), Some(0.9));
        assert_eq!(Metric::AccuracyAt(32).value(&run), Some(0.45));
        assert_eq!(Metric::AccuracyAt(64).value(&run), None);
        assert_eq!(Metric::EvalLength.value(&run), Some(39.0));
        // 90 % of the 57-token drop: 44.7 tokens, at 10 · (96 − 44.7)/(96 − 40) = 9.16.
        let end = Metric::StageOneEnd.value(&run).unwrap();
        assert!((end - 9.1607).abs() < 1e-3, "{end}");
        assert!((Metric::PositiveDensity.value(&run).unwrap() - 0.4).abs() < 1e-12);
        // Last quarter (5 steps): 34, 36, 38, 40, 42.
        assert!((Metric::TrainLength.value(&run).unwrap() - 38.0).abs() < 1e-12);
        // Entropy rises 0.01 per step: the highest 5-step mean after step 10 ends at step 20.
        assert!((Metric::EntropyPeak.value(&run).unwrap() - 0.18).abs() < 1e-12);
        // Smoothed length: minimum 30, last mean(34..=42) = 38.
        assert!((Metric::LengthRebound.value(&run).unwrap() - 8.0).abs() < 1e-12);
        assert_eq!(Metric::PassAtK.value(&run), None);
        assert_eq!(Metric::IncorrectLength.value(&run), None);
    }
}
