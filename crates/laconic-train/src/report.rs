//! Run reports: SVG curves of the training metrics (drawn by laconic-eval's plotting module), a
//! `summary.md` for terminals and a self-contained `report.html` for browsers.

use std::path::{Path, PathBuf};

use laconic_eval::plot::{line_chart, Series};
use laconic_eval::EvalReport;

use std::fmt::Write as _;

use crate::error::{Error, Result};
use crate::html::{write_page, Section};
use crate::run::{Metrics, RunDir};

/// Curves drawn into `report/`: (file stem, title, metric keys on one chart).
pub const CURVES: &[(&str, &str, &[&str])] = &[
    (
        "length",
        "response length (tokens)",
        &[
            "response_length/mean",
            "response_length/positive_mean",
            "response_length/negative_mean",
        ],
    ),
    (
        "accuracy",
        "training accuracy and reward",
        &["acc/mean", "reward/mean", "reward/positive_density"],
    ),
    (
        "truncation",
        "truncation rate",
        &["response/truncation_rate"],
    ),
    ("entropy", "policy entropy", &["actor/entropy"]),
    (
        "kl",
        "KL to the initial policy",
        &["actor/kl_loss", "actor/ppo_kl"],
    ),
    (
        "grad_norm",
        "gradient norm (pre-clip)",
        &["actor/grad_norm"],
    ),
];

/// Draws every curve of [`CURVES`] that has data, plus a chart of each evaluation metric pattern, into
/// `run/report/`; returns the files written.
///
/// # Errors
/// When a file cannot be written.
pub fn write_curves(run: &RunDir, metrics: &[Metrics]) -> Result<Vec<PathBuf>> {
    let dir = run.path.join("report");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut written = Vec::new();
    for (stem, title, keys) in CURVES {
        let series: Vec<Series> = keys
            .iter()
            .map(|k| Series {
                label: k.to_string(),
                points: points(metrics, k),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        let path = dir.join(format!("{stem}.svg"));
        written.extend(line_chart(&path, title, ("step", ""), &series)?);
    }
    Ok(written)
}

/// `(step, value)` of `key` over the metric lines that have it.
pub fn points(metrics: &[Metrics], key: &str) -> Vec<(f64, f64)> {
    metrics
        .iter()
        .filter_map(|m| Some((*m.get("step")?, *m.get(key)?)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// One row of the training trajectory: a step with an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryRow {
    /// Step (0 = before training).
    pub step: u64,
    /// Mean training reward of the step (`None` at step 0).
    pub train_reward: Option<f64>,
    /// Mean training rollout length of the step.
    pub train_length: Option<f64>,
    /// Mean evaluation length at the largest budget.
    pub eval_length: f64,
    /// Evaluation accuracy (Mean@k) per budget, ascending budgets.
    pub accuracy: Vec<(usize, f64)>,
}

/// The numbers a run summary reports: the trajectory of evaluations and the before/after comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The benchmark summarised.
    pub benchmark: String,
    /// One row per evaluated step.
    pub rows: Vec<TrajectoryRow>,
    /// Mean length of correct samples at the largest budget, before and after.
    pub correct_length: (Option<f64>, Option<f64>),
    /// Mean length of incorrect samples at the largest budget, before and after.
    pub incorrect_length: (Option<f64>, Option<f64>),
}

impl RunSummary {
    /// Builds the summary of `benchmark` from the run's metric lines and its first and last evaluation.
    pub fn new(
        benchmark: &str,
        metrics: &[Metrics],
        before: &EvalReport,
        after: &EvalReport,
    ) -> Option<Self> {
        let budgets = after
            .benchmark(benchmark)?
            .budgets
            .iter()
            .map(|m| m.budget)
            .collect::<Vec<_>>();
        let top = *budgets.last()?;
        let mut rows = Vec::new();
        for m in metrics {
            let key = |metric: &str, b: usize| format!("eval/{benchmark}/{metric}@{b}");
            let Some(eval_length) = m.get(&key("length_mean", top)) else {
                continue;
            };
            let mean_key = |b: usize| {
                m.iter()
                    .find(|(k, _)| {
                        k.starts_with(&format!("eval/{benchmark}/mean@"))
                            && k.ends_with(&format!("@{b}"))
                    })
                    .map(|(_, v)| *v)
            };
            rows.push(TrajectoryRow {
                step: m.get("step").copied().unwrap_or(0.0) as u64,
                train_reward: m.get("reward/mean").copied(),
                train_length: m.get("response_length/mean").copied(),
                eval_length: *eval_length,
                accuracy: budgets
                    .iter()
                    .filter_map(|&b| Some((b, mean_key(b)?)))
                    .collect(),
            });
        }
        let split = |r: &EvalReport, correct: bool| {
            let m = r
                .benchmark(benchmark)?
                .budgets
                .iter()
                .find(|m| m.budget == top)?;
            if correct {
                m.lengths.correct.mean
            } else {
                m.lengths.incorrect.mean
            }
        };
        Some(Self {
            benchmark: benchmark.to_string(),
            rows,
            correct_length: (split(before, true), split(after, true)),
            incorrect_length: (split(before, false), split(after, false)),
        })
    }

    /// Relative change of the evaluation length from the first to the last row (−0.4 = 40 % shorter).
    pub fn length_change(&self) -> Option<f64> {
        let (first, last) = (self.rows.first()?, self.rows.last()?);
        Some(last.eval_length / first.eval_length - 1.0)
    }

    /// Accuracy change at the largest budget, in points (percentage points).
    pub fn top_accuracy_change(&self) -> Option<f64> {
        let top = |row: &TrajectoryRow| row.accuracy.last().map(|&(_, a)| a);
        Some(100.0 * (top(self.rows.last()?)? - top(self.rows.first()?)?))
    }

    /// The first evaluated step where the length has covered 90 % of its total drop: the end of stage I
    /// (length adaptation). `None` when the length did not drop by at least 5 %: no stage I to speak of.
    pub fn stage_one_end(&self) -> Option<u64> {
        let (first, last) = (
            self.rows.first()?.eval_length,
            self.rows.last()?.eval_length,
        );
        if last >= 0.95 * first {
            return None;
        }
        let target = first - 0.9 * (first - last);
        self.rows
            .iter()
            .find(|r| r.eval_length <= target)
            .map(|r| r.step)
    }

    /// The summary as Markdown: before/after table, lengths by correctness, trajectory, stages.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let pct = |x: f64| format!("{:.1}", 100.0 * x);
        let opt = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.1}"));
        let (Some(first), Some(last)) = (self.rows.first(), self.rows.last()) else {
            return "no evaluations recorded\n".into();
        };
        s.push_str(&format!(
            "## Before (step {}) and after (step {}): `{}`\n\n",
            first.step, last.step, self.benchmark
        ));
        s.push_str("| budget | accuracy before (%) | accuracy after (%) | change (points) |\n|---:|---:|---:|---:|\n");
        for (&(b, before), &(_, after)) in first.accuracy.iter().zip(&last.accuracy) {
            s.push_str(&format!(
                "| {b} | {} | {} | {:+.1} |\n",
                pct(before),
                pct(after),
                100.0 * (after - before)
            ));
        }
        s.push_str(
            "\n| mean length at the largest budget (tokens) | before | after |\n|:---|---:|---:|\n",
        );
        s.push_str(&format!(
            "| all samples | {:.1} | {:.1} |\n",
            first.eval_length, last.eval_length
        ));
        s.push_str(&format!(
            "| correct samples | {} | {} |\n",
            opt(self.correct_length.0),
            opt(self.correct_length.1)
        ));
        s.push_str(&format!(
            "| incorrect samples | {} | {} |\n",
            opt(self.incorrect_length.0),
            opt(self.incorrect_length.1)
        ));
        s.push_str("\n## Trajectory\n\n| step | train reward | train length | eval length |");
        for (b, _) in &first.accuracy {
            s.push_str(&format!(" acc@{b} (%) |"));
        }
        s.push_str("\n|---:|---:|---:|---:|");
        s.push_str(&"---:|".repeat(first.accuracy.len()));
        s.push('\n');
        for r in &self.rows {
            let reward = r
                .train_reward
                .map_or("—".to_string(), |v| format!("{v:.3}"));
            s.push_str(&format!(
                "| {} | {reward} | {} | {:.1} |",
                r.step,
                opt(r.train_length),
                r.eval_length
            ));
            for (_, a) in &r.accuracy {
                s.push_str(&format!(" {} |", pct(*a)));
            }
            s.push('\n');
        }
        s.push_str("\n## The phenomenon\n\n");
        if let Some(change) = self.length_change() {
            s.push_str(&format!(
                "- Evaluation length: {:+.1} % ({:.1} → {:.1} tokens).\n",
                100.0 * change,
                first.eval_length,
                last.eval_length
            ));
        }
        if let Some(points) = self.top_accuracy_change() {
            s.push_str(&format!(
                "- Accuracy at the largest budget: {points:+.1} points.\n"
            ));
        }
        if let Some(end) = self.stage_one_end() {
            s.push_str(&format!(
                "- Stage I (length adaptation) ends by step {end}: 90 % of the length drop happened by then; \
                 stage II (reasoning refinement) follows with the length flat.\n"
            ));
        }
        s
    }
}

/// The closing report of a trained run: the summary of its first benchmark from the evaluations at
/// step 0 and at the last step (`None` when the run has either missing), then [`write_report`].
/// Returns the summary and the files written.
///
/// # Errors
/// When the run's config or metrics cannot be read or a report file cannot be written.
pub fn finish_report(run: &RunDir) -> Result<(Option<RunSummary>, Vec<PathBuf>)> {
    let steps = RunDir::attach(&run.path)?.1.train.steps;
    let eval_at = |step: u64| EvalReport::read(run.path.join(format!("eval/step_{step}"))).ok();
    let summary = match (eval_at(0), eval_at(steps)) {
        (Some(before), Some(after)) => {
            let metrics = run.read_metrics()?;
            let first = after.benchmarks.first();
            first.and_then(|b| RunSummary::new(&b.name, &metrics, &before, &after))
        }
        _ => None,
    };
    let files = write_report(run, summary.as_ref())?;
    Ok((summary, files))
}

/// Writes `report/summary.md` (the run summary when there is one, and the curves), the curves, and
/// `report/report.html`: the summary, the curves and the last evaluation (`eval/step_N/eval.md`,
/// its budget sweep and length histograms by correctness) on one self-contained page
/// ([`crate::html`]). Returns the files.
///
/// # Errors
/// When a file cannot be written.
pub fn write_report(run: &RunDir, summary: Option<&RunSummary>) -> Result<Vec<PathBuf>> {
    let metrics = run.read_metrics()?;
    let mut written = write_curves(run, &metrics)?;
    let dir = run.path.join("report");
    let path = dir.join("summary.md");
    let mut text = format!("# Run `{}`\n\n", run.path.display());
    match summary {
        Some(summary) => text.push_str(&summary.markdown()),
        None => {
            text.push_str("No evaluation was configured; see `metrics.jsonl` and the curves.\n")
        }
    }
    text.push_str("\n## Curves\n\n");
    for name in written.iter().filter_map(|p| p.file_name()) {
        let _ = writeln!(text, "![{0}]({0})", name.to_string_lossy());
    }
    std::fs::write(&path, &text).map_err(|e| Error::io(&path, e))?;
    written.push(path);

    let mut sections = vec![Section {
        markdown: &text,
        base: &dir,
    }];
    let last_eval = last_evaluation(run);
    let eval_markdown = last_eval
        .as_ref()
        .and_then(|eval| evaluation_markdown(eval));
    if let (Some(eval), Some(markdown)) = (&last_eval, &eval_markdown) {
        sections.push(Section {
            markdown,
            base: eval,
        });
    }
    let title = format!("laconic run {}", run.path.display());
    written.push(write_page(&dir.join("report.html"), &title, &sections)?);
    Ok(written)
}

/// An evaluation folder's `eval.md` followed by its figures (the budget sweep, the length
/// histograms by correctness), `None` without an `eval.md`.
fn evaluation_markdown(eval: &Path) -> Option<String> {
    let mut markdown = std::fs::read_to_string(eval.join("eval.md")).ok()?;
    let mut figures: Vec<String> = std::fs::read_dir(eval)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".svg"))
        .collect();
    figures.sort();
    if !figures.is_empty() {
        markdown.push_str("\n## Figures\n\n");
        for name in figures {
            let _ = writeln!(markdown, "![{name}]({name})");
        }
    }
    Some(markdown)
}

/// The run's last evaluation folder (`eval/step_N` with the largest `N`), if any.
fn last_evaluation(run: &RunDir) -> Option<PathBuf> {
    std::fs::read_dir(run.path.join("eval"))
        .ok()?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let step: u64 = path
                .file_name()?
                .to_str()?
                .strip_prefix("step_")?
                .parse()
                .ok()?;
            Some((step, path))
        })
        .max_by_key(|(step, _)| *step)
        .map(|(_, path)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(lengths_and_accuracy: &[(f64, f64)]) -> RunSummary {
        RunSummary {
            benchmark: "held-out".into(),
            rows: lengths_and_accuracy
                .iter()
                .enumerate()
                .map(|(i, &(eval_length, accuracy))| TrajectoryRow {
                    step: 10 * i as u64,
                    train_reward: None,
                    train_length: None,
                    eval_length,
                    accuracy: vec![(32, accuracy / 2.0), (176, accuracy)],
                })
                .collect(),
            correct_length: (Some(90.0), Some(40.0)),
            incorrect_length: (None, None),
        }
    }

    #[test]
    fn stages_changes_and_markdown() {
        // 100 → 40: 90 % of the 60-token drop (≤ 46) is reached at step 20.
        let s = summary(&[(100.0, 0.8), (70.0, 0.7), (45.0, 0.75), (40.0, 0.85)]);
        assert_eq!(s.stage_one_end(), Some(20));
        assert!((s.length_change().unwrap() + 0.6).abs() < 1e-12);
        assert!((s.top_accuracy_change().unwrap() - 5.0).abs() < 1e-9);
        let md = s.markdown();
        assert!(md.contains("| 176 | 80.0 | 85.0 | +5.0 |"), "{md}");
        assert!(md.contains("ends by step 20"), "{md}");
        assert!(md.contains("| correct samples | 90.0 | 40.0 |"), "{md}");
        assert!(md.contains("| incorrect samples | — | — |"), "{md}");

        // A flat (or growing) length has no stage I.
        let flat = summary(&[(100.0, 0.8), (99.0, 0.8), (98.0, 0.8)]);
        assert_eq!(flat.stage_one_end(), None);
        assert!(!flat.markdown().contains("Stage I"));
        assert_eq!(summary(&[(50.0, 0.5), (60.0, 0.5)]).stage_one_end(), None);
    }
}
