//! Markdown tables of a report (`eval.md`) and of a comparison of two reports (`compare.md`).
//!
//! Every metric table has one row per budget and one column per benchmark; accuracies are percentages
//! with two decimals, lengths tokens with one decimal, so numbers can be checked against `eval.json`.

use std::fmt::Write;

use crate::metrics::BudgetMetrics;
use crate::report::{benchmark_names, BenchmarkReport, EvalReport};

/// A row value of a metric table.
type Getter = Box<dyn Fn(&BudgetMetrics) -> Option<f64>>;

/// A metric shown as one table.
struct Metric {
    title: String,
    get: Getter,
    unit: Unit,
}

#[derive(Clone, Copy)]
enum Unit {
    Percent,
    Tokens,
}

/// Formats a fraction as a percentage with two decimals: `0.4567` → `45.67`.
pub fn percent(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

/// Formats a token count with one decimal.
pub fn tokens(x: f64) -> String {
    format!("{x:.1}")
}

impl Unit {
    fn format(self, x: Option<f64>) -> String {
        match (self, x) {
            (_, None) => "—".to_string(),
            (Unit::Percent, Some(x)) => percent(x),
            (Unit::Tokens, Some(x)) => tokens(x),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Unit::Percent => " (%)",
            Unit::Tokens => " (tokens)",
        }
    }
}

/// The metrics every table set shows: Mean@k, each Pass@k, lengths, truncation rate.
fn metrics(samples: usize, pass_ks: &[usize]) -> Vec<Metric> {
    let mut out = vec![Metric {
        title: format!("Mean@{samples}"),
        get: Box::new(|m| Some(m.mean_at_k)),
        unit: Unit::Percent,
    }];
    for &k in pass_ks {
        out.push(Metric {
            title: format!("Pass@{k}"),
            get: Box::new(move |m| m.pass_at_k.get(&k).copied()),
            unit: Unit::Percent,
        });
    }
    out.extend([
        Metric {
            title: "Mean length, counted up to B".into(),
            get: Box::new(|m| Some(m.mean_length)),
            unit: Unit::Tokens,
        },
        Metric {
            title: "Mean length of correct samples".into(),
            get: Box::new(|m| m.lengths.correct.mean),
            unit: Unit::Tokens,
        },
        Metric {
            title: "Mean length of incorrect samples".into(),
            get: Box::new(|m| m.lengths.incorrect.mean),
            unit: Unit::Tokens,
        },
        Metric {
            title: "Truncation rate (no stop token within B)".into(),
            get: Box::new(|m| Some(m.truncation_rate)),
            unit: Unit::Percent,
        },
    ]);
    out
}

/// `eval.md`: the run's settings, one table per metric, then length quantiles by correctness.
pub fn report(r: &EvalReport) -> String {
    let mut md = String::from("# Evaluation\n\n");
    let c = &r.config;
    let model = r.info.model.as_deref().unwrap_or("(unnamed)");
    let _ = writeln!(
        md,
        "Model `{model}`; {} samples per question at temperature {}, top-p {}, top-k {}, seed {}; \
         one generation capped at {} tokens, scored at every budget B (a sample not finished within B \
         is scored on its first B tokens, rule `{}`).",
        c.samples,
        c.temperature,
        c.top_p,
        c.top_k,
        c.seed,
        r.info.max_tokens,
        serde_json::to_value(c.truncated).expect("enums serialise").as_str().unwrap_or_default()
    );
    let _ = writeln!(
        md,
        "Generation {:.1} s ({} tokens), scoring {:.1} s.\n",
        r.info.generation_seconds, r.info.tokens_generated, r.info.scoring_seconds
    );
    let names: Vec<&str> = r.benchmarks.iter().map(|b| b.name.as_str()).collect();
    let _ = writeln!(
        md,
        "Questions: {}.\n",
        r.benchmarks
            .iter()
            .map(|b| format!("{} {}", b.name, b.questions))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let budgets = r.budgets();
    for metric in metrics(c.samples, &c.pass_ks()) {
        let _ = writeln!(md, "## {}{}\n", metric.title, metric.unit.suffix());
        let _ = writeln!(md, "| budget | {} |", names.join(" | "));
        let _ = writeln!(md, "|---:|{}", "---:|".repeat(names.len()));
        for &b in &budgets {
            let cells: Vec<String> = r
                .benchmarks
                .iter()
                .map(|bench| {
                    metric
                        .unit
                        .format(bench.at(b).and_then(|m| (metric.get)(m)))
                })
                .collect();
            let _ = writeln!(md, "| {b} | {} |", cells.join(" | "));
        }
        md.push('\n');
    }
    for bench in &r.benchmarks {
        md.push_str(&length_table(bench, &c.quantiles));
    }
    md
}

/// Quantiles of the lengths of correct and incorrect samples of one benchmark, per budget.
fn length_table(bench: &BenchmarkReport, levels: &[f64]) -> String {
    let mut md = format!("## Lengths by correctness: {} (tokens)\n\n", bench.name);
    let heads: Vec<String> = levels.iter().map(|&q| level_name(q)).collect();
    let _ = writeln!(
        md,
        "| budget | samples | count | mean | {} |",
        heads.join(" | ")
    );
    let _ = writeln!(md, "|---:|:---|---:|---:|{}", "---:|".repeat(levels.len()));
    for m in &bench.budgets {
        for (split, dist) in [
            ("correct", &m.lengths.correct),
            ("incorrect", &m.lengths.incorrect),
        ] {
            let cells: Vec<String> = levels
                .iter()
                .map(|&q| Unit::Tokens.format(dist.quantile(q)))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {split} | {} | {} | {} |",
                m.budget,
                dist.count,
                Unit::Tokens.format(dist.mean),
                cells.join(" | ")
            );
        }
    }
    md.push('\n');
    md
}

/// `compare.md`: for each metric, each benchmark's value in `before`, in `after`, and the change.
pub fn comparison(before: &EvalReport, after: &EvalReport, labels: [&str; 2]) -> String {
    let mut md = format!("# Comparison: `{}` → `{}`\n\n", labels[0], labels[1]);
    let _ = writeln!(
        md,
        "Δ = {} − {} (percentage points for accuracies, tokens for lengths).\n",
        labels[1], labels[0]
    );
    let names = benchmark_names(before, after);
    let mut budgets = before.budgets();
    budgets.extend(after.budgets());
    budgets.sort_unstable();
    budgets.dedup();
    let mut pass_ks = before.config.pass_ks();
    pass_ks.extend(after.config.pass_ks());
    pass_ks.sort_unstable();
    pass_ks.dedup();
    let samples = after.config.samples;
    for metric in metrics(samples, &pass_ks) {
        let title = if samples == before.config.samples {
            metric.title.clone()
        } else {
            format!(
                "{} (before: {} samples)",
                metric.title, before.config.samples
            )
        };
        let _ = writeln!(md, "## {title}{}\n", metric.unit.suffix());
        let heads: Vec<String> = names
            .iter()
            .map(|n| format!("{n} {} | {n} {} | Δ", labels[0], labels[1]))
            .collect();
        let _ = writeln!(md, "| budget | {} |", heads.join(" | "));
        let _ = writeln!(md, "|---:|{}", "---:|".repeat(3 * names.len()));
        for &b in &budgets {
            let mut cells = Vec::new();
            for name in &names {
                let get = |r: &EvalReport| {
                    r.benchmark(name)
                        .and_then(|x| x.at(b))
                        .and_then(|m| (metric.get)(m))
                };
                let (x, y) = (get(before), get(after));
                let delta = x.zip(y).map(|(x, y)| y - x);
                cells.push(metric.unit.format(x));
                cells.push(metric.unit.format(y));
                cells.push(signed(metric.unit, delta));
            }
            let _ = writeln!(md, "| {b} | {} |", cells.join(" | "));
        }
        md.push('\n');
    }
    md
}

/// `0.1` → `p10`, `0.125` → `p12.5`.
fn level_name(q: f64) -> String {
    let p = 100.0 * q;
    if (p - p.round()).abs() < 1e-9 {
        format!("p{}", p.round() as i64)
    } else {
        format!("p{p}")
    }
}

/// A change with its sign: `+1.25`, `−0.50`.
fn signed(unit: Unit, delta: Option<f64>) -> String {
    match delta {
        None => "—".into(),
        Some(d) => {
            let text = unit.format(Some(d.abs()));
            if d < 0.0 {
                format!("−{text}")
            } else {
                format!("+{text}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(percent(0.45678), "45.68");
        assert_eq!(tokens(12.25), "12.2");
        assert_eq!(signed(Unit::Percent, Some(-0.005)), "−0.50");
        assert_eq!(signed(Unit::Tokens, Some(3.0)), "+3.0");
        assert_eq!(signed(Unit::Tokens, None), "—");
        assert_eq!(level_name(0.1), "p10");
        assert_eq!(level_name(0.125), "p12.5");
    }
}
