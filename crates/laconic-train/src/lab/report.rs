//! The lab's report: `report.md` (summary table, rules, one section per experiment), `summary.json`
//! (the verdicts, for programs) and SVG figures under `figures/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use laconic_eval::plot::{accuracy_chart, band_chart, histogram_chart, Band, Bars, Line};
use laconic_eval::Histogram;
use serde::Serialize;

use super::curves::{Metric, RunCurves};
use super::experiment::Experiment;
use super::verdict::{ArmRuns, CheckOutcome, SeedStats, Verdict};
use crate::error::{Error, Result};
use crate::run::write_atomic;

/// Picks one per-step curve of a run.
type CurveOf = fn(&RunCurves) -> &[(f64, f64)];

/// The training curves drawn per experiment: (file suffix, title, y axis, which curve).
const CURVES: &[(&str, &str, &str, CurveOf)] = &[
    ("length", "rollout length", "tokens", |r| &r.length),
    ("accuracy", "training accuracy", "accuracy", |r| &r.accuracy),
    ("entropy", "policy entropy", "entropy (nats)", |r| {
        &r.entropy
    }),
    (
        "positive_density",
        "positive-reward density",
        "share of rollouts with reward > 0",
        |r| &r.positive_density,
    ),
];

/// The per-arm numbers of an experiment's table.
const TABLE: &[Metric] = &[
    Metric::TopAccuracy,
    Metric::EvalLength,
    Metric::CorrectLength,
    Metric::IncorrectLength,
    Metric::TrainLength,
    Metric::StageOneEnd,
    Metric::EntropyPeak,
    Metric::PositiveDensity,
];

/// One experiment's results, decided.
#[derive(Debug, Clone)]
pub struct ExperimentResult<'a> {
    /// The experiment.
    pub experiment: &'a Experiment,
    /// Its arms' finished runs.
    pub runs: ArmRuns,
    /// Its checks' outcomes.
    pub outcomes: Vec<CheckOutcome>,
    /// Its verdict (`None` without checks).
    pub verdict: Option<Verdict>,
    /// `(arm, the run it shares)` for arms trained once for several experiments.
    pub shared: Vec<(String, String)>,
}

impl<'a> ExperimentResult<'a> {
    /// Decides `experiment` on its arms' runs.
    pub fn decide(
        experiment: &'a Experiment,
        runs: ArmRuns,
        shared: Vec<(String, String)>,
    ) -> Self {
        let outcomes: Vec<CheckOutcome> = experiment
            .checks
            .iter()
            .map(|c| c.evaluate(&runs))
            .collect();
        let verdict = Verdict::combine(outcomes.iter().map(|o| o.verdict));
        Self {
            experiment,
            runs,
            outcomes,
            verdict,
            shared,
        }
    }
}

/// What the lab ran, for the report's header.
#[derive(Debug, Clone)]
pub struct LabRun {
    /// The command line that continues this lab.
    pub command: String,
    /// Seeds per arm.
    pub seeds: u64,
    /// Whether the runs were halved.
    pub quick: bool,
    /// Distinct runs in the plan.
    pub runs: usize,
    /// Sum of the runs' wall times (seconds).
    pub run_seconds: f64,
    /// Wall time of the lab process (seconds).
    pub wall_seconds: f64,
    /// Runs that failed: `(label, status, log)`.
    pub failed: Vec<(String, String, PathBuf)>,
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    experiment: &'a str,
    finding: &'a str,
    verdict: Option<Verdict>,
    checks: Vec<CheckJson<'a>>,
}

#[derive(Serialize)]
struct CheckJson<'a> {
    claim: &'a str,
    verdict: Verdict,
    evidence: &'a str,
    rule: &'a str,
}

/// Writes `report.md`, the same as a self-contained `report.html` (figures inlined, see
/// [`crate::html`]), `summary.json` and the figures into `dir`; returns `report.md`'s path.
///
/// # Errors
/// A file that cannot be written or a figure that cannot be drawn.
pub fn write(dir: &Path, lab: &LabRun, results: &[ExperimentResult<'_>]) -> Result<PathBuf> {
    let figures = dir.join("figures");
    std::fs::create_dir_all(&figures).map_err(|e| Error::io(&figures, e))?;
    let mut md = header(lab, results);
    for result in results {
        let drawn = draw_figures(&figures, result)?;
        md.push_str(&section(result, &drawn, dir));
    }
    let path = dir.join("report.md");
    write_atomic(&path, md.as_bytes())?;
    let html = crate::html::page(
        &format!("laconic lab: {}", lab.command),
        &[crate::html::Section {
            markdown: &md,
            base: dir,
        }],
    );
    write_atomic(&dir.join("report.html"), html.as_bytes())?;
    let summary: Vec<SummaryJson<'_>> = results
        .iter()
        .map(|r| SummaryJson {
            experiment: &r.experiment.name,
            finding: &r.experiment.finding,
            verdict: r.verdict,
            checks: r
                .outcomes
                .iter()
                .map(|o| CheckJson {
                    claim: &o.claim,
                    verdict: o.verdict,
                    evidence: &o.evidence,
                    rule: &o.rule,
                })
                .collect(),
        })
        .collect();
    let json = serde_json::to_string_pretty(&summary).expect("the summary serialises");
    write_atomic(&dir.join("summary.json"), json.as_bytes())?;
    Ok(path)
}

/// The summary table of the verdicts (what README shows).
pub fn summary_table(results: &[ExperimentResult<'_>]) -> String {
    let mut s =
        String::from("| experiment | finding | verdict | decided by |\n|---|---|---|---|\n");
    for r in results {
        let verdict = r
            .verdict
            .map_or("— (no checks)".to_string(), |v| format!("**{v}**"));
        let evidence: Vec<String> = r
            .outcomes
            .iter()
            .map(|o| format!("{}: {}", o.verdict, o.evidence))
            .collect();
        let _ = writeln!(
            s,
            "| `{}` | {} | {verdict} | {} |",
            r.experiment.name,
            r.experiment.finding,
            evidence.join("<br>")
        );
    }
    s
}

fn header(lab: &LabRun, results: &[ExperimentResult<'_>]) -> String {
    let mut s = String::from("# The lab\n\n");
    let _ = writeln!(
        s,
        "{} seed(s) per arm{}; {} distinct runs, {:.1} min of run time, {:.1} min wall time. \
         Continue or redraw with `{}`.\n",
        lab.seeds,
        if lab.quick {
            ", quick mode (half the steps)"
        } else {
            ""
        },
        lab.runs,
        lab.run_seconds / 60.0,
        lab.wall_seconds / 60.0,
        lab.command
    );
    if !lab.failed.is_empty() {
        s.push_str("**Runs that failed** (their arms count as missing data):\n\n");
        for (label, status, log) in &lab.failed {
            let _ = writeln!(s, "- `{label}`: {status}; log `{}`", log.display());
        }
        s.push('\n');
    }
    s.push_str("## Summary\n\n");
    s.push_str(&summary_table(results));
    s.push_str(
        "\n## How verdicts are decided\n\nEach arm's metric is summarised over its seeds by the mean \
         and the seed spread (sample standard deviation; 0 with a single seed, so one-seed verdicts \
         are indicative only). Every check states its rule below; an experiment is **reproduced** \
         when all its checks are, **not reproduced** when any is not, and **inconclusive** \
         otherwise. Missing data (an unfinished run, a budget not evaluated) is inconclusive.\n\n",
    );
    s
}

fn section(r: &ExperimentResult<'_>, figures: &[PathBuf], dir: &Path) -> String {
    let e = r.experiment;
    let mut s = format!("## `{}` — {}\n\n", e.name, e.finding);
    let verdict = r.verdict.map_or("no checks".to_string(), |v| v.to_string());
    let _ = writeln!(s, "Verdict: **{verdict}**.\n");
    let _ = write!(s, "Base `{}`", e.base.display());
    if !e.set.is_empty() {
        let _ = write!(s, " with `{}`", e.set.join("`, `"));
    }
    s.push_str(".\n\n");
    s.push_str("| arm | overrides | seeds |");
    for m in TABLE {
        let _ = write!(s, " {m} |");
    }
    s.push_str("\n|---|---|---:|");
    s.push_str(&"---:|".repeat(TABLE.len()));
    s.push('\n');
    for arm in &e.arms {
        let runs = r.runs.get(&arm.name).map_or(&[][..], Vec::as_slice);
        let overrides = if arm.set.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", arm.set.join("`, `"))
        };
        let _ = write!(s, "| {} | {overrides} | {} |", arm.name, runs.len());
        for &m in TABLE {
            let _ = write!(s, " {} |", SeedStats::of(m, runs).show(m));
        }
        s.push('\n');
    }
    for (arm, run) in &r.shared {
        let _ = writeln!(
            s,
            "\n`{arm}` shares its runs with `{run}` (the same resolved config)."
        );
    }
    s.push_str(&accuracy_table(r));
    if !r.outcomes.is_empty() {
        s.push_str("\n### Checks\n\n");
        for o in &r.outcomes {
            let _ = writeln!(
                s,
                "- **{}** — {}\n  - {}\n  - Rule: {}",
                o.verdict, o.claim, o.evidence, o.rule
            );
        }
    }
    s.push_str("\n### Figures\n\n");
    for f in figures {
        let rel = f.strip_prefix(dir).unwrap_or(f);
        let _ = writeln!(s, "![{0}]({0})", rel.display());
    }
    s.push('\n');
    s
}

/// Accuracy per budget at the last evaluation, mean ± spread over seeds.
fn accuracy_table(r: &ExperimentResult<'_>) -> String {
    let budgets = budgets(r);
    if budgets.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nAccuracy (Mean@k, %) by budget at the last evaluation:\n\n| arm |");
    for b in &budgets {
        let _ = write!(s, " {b} |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(budgets.len()));
    s.push('\n');
    for arm in &r.experiment.arms {
        let runs = r.runs.get(&arm.name).map_or(&[][..], Vec::as_slice);
        let _ = write!(s, "| {} |", arm.name);
        for &b in &budgets {
            let stats = SeedStats::of(Metric::AccuracyAt(b), runs);
            let _ = write!(
                s,
                " {} |",
                stats.show(Metric::AccuracyAt(b)).replace(" %", "")
            );
        }
        s.push('\n');
    }
    s
}

fn budgets(r: &ExperimentResult<'_>) -> Vec<usize> {
    let mut budgets: Vec<usize> = r
        .runs
        .values()
        .flatten()
        .filter_map(|run| run.evals.last())
        .flat_map(|e| e.accuracy.iter().map(|&(b, _)| b))
        .collect();
    budgets.sort_unstable();
    budgets.dedup();
    budgets
}

/// Mean ± spread over seeds of a per-step curve, on the steps of the first seed.
fn band(runs: &[RunCurves], curve: CurveOf) -> Vec<(f64, f64, f64)> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    curve(first)
        .iter()
        .map(|&(step, _)| {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|r| curve(r).iter().find(|p| p.0 == step).map(|p| p.1))
                .collect();
            let stats = SeedStats {
                values: values.into_iter().map(Some).collect(),
            };
            (
                step,
                stats.mean().unwrap_or(f64::NAN),
                stats.spread().unwrap_or(0.0),
            )
        })
        .collect()
}

fn draw_figures(figures: &Path, r: &ExperimentResult<'_>) -> Result<Vec<PathBuf>> {
    let name = &r.experiment.name;
    let arms = &r.experiment.arms;
    let runs_of = |arm: &str| r.runs.get(arm).map_or(&[][..], Vec::as_slice);
    let mut written = Vec::new();
    for (suffix, title, y, curve) in CURVES {
        let bands: Vec<Band> = arms
            .iter()
            .enumerate()
            .map(|(i, arm)| Band {
                label: format!("{} ({} seeds)", arm.name, runs_of(&arm.name).len()),
                points: band(runs_of(&arm.name), *curve),
                color: i,
            })
            .filter(|b| !b.points.is_empty())
            .collect();
        if bands.is_empty() {
            continue;
        }
        let path = figures.join(format!("{name}-{suffix}.svg"));
        let title = format!("{name}: {title} (mean ± seed spread)");
        written.push(band_chart(&path, &title, ("step", y), &bands)?);
    }
    let budgets = budgets(r);
    let lines: Vec<Line> = arms
        .iter()
        .enumerate()
        .map(|(i, arm)| Line {
            label: arm.name.clone(),
            points: budgets
                .iter()
                .filter_map(|&b| {
                    let mean = SeedStats::of(Metric::AccuracyAt(b), runs_of(&arm.name)).mean()?;
                    Some((b, mean))
                })
                .collect(),
            color: i,
            dashed: false,
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    if !lines.is_empty() {
        let path = figures.join(format!("{name}-accuracy-vs-budget.svg"));
        let title = format!("{name}: accuracy vs budget, last evaluation");
        written.push(accuracy_chart(&path, &title, &lines)?);
    }
    for arm in arms {
        if let Some(path) = length_histogram(figures, name, &arm.name, runs_of(&arm.name))? {
            written.push(path);
        }
    }
    Ok(written)
}

/// Correct and incorrect lengths at the largest budget of the last evaluation, summed over seeds.
fn length_histogram(
    figures: &Path,
    experiment: &str,
    arm: &str,
    runs: &[RunCurves],
) -> Result<Option<PathBuf>> {
    let finals: Vec<_> = runs
        .iter()
        .filter_map(|r| r.last_eval.as_ref()?.at_max())
        .collect();
    let Some(first) = finals.first() else {
        return Ok(None);
    };
    let sum = |pick: fn(&laconic_eval::BudgetMetrics) -> &Histogram| {
        let mut h = pick(first).clone();
        for m in &finals[1..] {
            let other = pick(m);
            if other.edges == h.edges {
                for (c, o) in h.counts.iter_mut().zip(&other.counts) {
                    *c += o;
                }
            }
        }
        h
    };
    let correct = sum(|m| &m.lengths.correct.histogram);
    let incorrect = sum(|m| &m.lengths.incorrect.histogram);
    let total = correct.total() + incorrect.total();
    let layers = [
        Bars {
            label: format!("correct ({})", correct.total()),
            histogram: &correct,
            total,
            color: 2,
        },
        Bars {
            label: format!("incorrect ({})", incorrect.total()),
            histogram: &incorrect,
            total,
            color: 3,
        },
    ];
    let path = figures.join(format!("{experiment}-lengths-{arm}.svg"));
    let title = format!(
        "{experiment}/{arm}: lengths at B = {}, {} seed(s)",
        first.budget,
        finals.len()
    );
    Ok(Some(histogram_chart(
        &path,
        &title,
        "response length (tokens)",
        &layers,
    )?))
}
