//! `EvalReport`: every number of an evaluation, and the files of its folder (written by
//! `EvalReport::write` in `write.rs`, which adds the Markdown tables and plots).
//!
//! A report folder holds `eval.json` (this struct without the samples), `eval.md` (tables: rows =
//! budgets, columns = benchmarks), `samples.jsonl` (one [`SampleRecord`] per line), `accuracy.svg`
//! (Mean@k and Pass@k against the budget on a log₂ axis) and `lengths-<benchmark>.svg` (length histograms
//! of correct and incorrect samples at the largest budget).

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::benchmark::Benchmark;
use crate::config::EvalConfig;
use crate::error::{Error, Result};
use crate::evaluate::EvalShard;
use crate::metrics::{budget_metrics, BudgetMetrics, LengthOptions};
use crate::sweep::SampleRecord;

/// The report's JSON file.
pub const EVAL_JSON: &str = "eval.json";
/// The report's Markdown file.
pub const EVAL_MD: &str = "eval.md";
/// The per-sample JSONL file.
pub const SAMPLES_JSONL: &str = "samples.jsonl";

/// How the evaluation ran.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunInfo {
    /// What was evaluated (a checkpoint folder, a training step), for titles and tables.
    pub model: Option<String>,
    /// The generation cap: the largest budget.
    pub max_tokens: usize,
    /// Wall time spent generating, seconds.
    pub generation_seconds: f64,
    /// Wall time spent decoding and judging at every budget, seconds.
    pub scoring_seconds: f64,
    /// Response tokens generated.
    pub tokens_generated: usize,
    /// The ids that ended responses.
    pub stop_ids: Vec<u32>,
}

/// One benchmark's metrics at every budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkReport {
    /// The benchmark.
    pub name: String,
    /// Questions.
    pub questions: usize,
    /// Samples per question.
    pub samples: usize,
    /// Metrics per budget, ascending.
    pub budgets: Vec<BudgetMetrics>,
}

impl BenchmarkReport {
    /// Metrics at every budget from scored samples ordered by question (as [`crate::score_sample_records`]
    /// returns them).
    pub fn from_records(
        name: impl Into<String>,
        records: &[SampleRecord],
        config: &EvalConfig,
    ) -> Self {
        let pass_ks = config.pass_ks();
        let lengths = LengthOptions {
            quantiles: &config.quantiles,
            bins: config.histogram_bins,
        };
        let budget_count = records.first().map_or(0, |r| r.budgets.len());
        let budgets: Vec<BudgetMetrics> = (0..budget_count)
            .map(|at| budget_metrics(records, at, &pass_ks, &lengths))
            .collect();
        Self {
            name: name.into(),
            questions: budgets.first().map_or(0, |m| m.questions),
            samples: budgets.first().map_or(0, |m| m.samples),
            budgets,
        }
    }

    /// The metrics at `budget`, if it was scored.
    pub fn at(&self, budget: usize) -> Option<&BudgetMetrics> {
        self.budgets.iter().find(|m| m.budget == budget)
    }

    /// The metrics at the largest budget.
    pub fn at_max(&self) -> Option<&BudgetMetrics> {
        self.budgets.last()
    }
}

/// The result of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// How it ran.
    pub info: RunInfo,
    /// The configuration used.
    pub config: EvalConfig,
    /// Per-benchmark metrics.
    pub benchmarks: Vec<BenchmarkReport>,
    /// Every sample at every budget (written to `samples.jsonl`, not to `eval.json`).
    #[serde(skip)]
    pub samples: Vec<SampleRecord>,
}

impl EvalReport {
    /// The report of an evaluation whose questions were shared out ([`crate::evaluate_shard`]):
    /// every benchmark's samples from all shards, in question order, scored together. Generation and
    /// scoring times are the slowest shard's (the shards run side by side), tokens the sum.
    pub fn from_shards(
        benchmarks: &[Benchmark],
        config: &EvalConfig,
        shards: Vec<EvalShard>,
    ) -> Self {
        let mut info = RunInfo::default();
        let mut samples = Vec::new();
        for shard in shards {
            info.max_tokens = info.max_tokens.max(shard.info.max_tokens);
            info.generation_seconds = info.generation_seconds.max(shard.info.generation_seconds);
            info.scoring_seconds = info.scoring_seconds.max(shard.info.scoring_seconds);
            info.tokens_generated += shard.info.tokens_generated;
            if info.stop_ids.is_empty() {
                info.stop_ids = shard.info.stop_ids;
            }
            samples.extend(shard.samples);
        }
        let order = |name: &str| benchmarks.iter().position(|b| b.name == name);
        samples.sort_by_key(|r| (order(&r.benchmark), r.question_idx, r.sample_idx));
        let reports = benchmarks
            .iter()
            .map(|bench| {
                let first = samples.partition_point(|r| order(&r.benchmark) < order(&bench.name));
                let end = samples.partition_point(|r| order(&r.benchmark) <= order(&bench.name));
                BenchmarkReport::from_records(bench.name.clone(), &samples[first..end], config)
            })
            .collect();
        Self {
            info,
            config: config.clone(),
            benchmarks: reports,
            samples,
        }
    }

    /// The report of `name`.
    pub fn benchmark(&self, name: &str) -> Option<&BenchmarkReport> {
        self.benchmarks.iter().find(|b| b.name == name)
    }

    /// Every budget scored by some benchmark, ascending.
    pub fn budgets(&self) -> Vec<usize> {
        let mut budgets: Vec<usize> = self
            .benchmarks
            .iter()
            .flat_map(|b| b.budgets.iter().map(|m| m.budget))
            .collect();
        budgets.sort_unstable();
        budgets.dedup();
        budgets
    }

    /// Flat metric pairs for a trainer's `metrics.jsonl`: `eval/<benchmark>/<metric>@<B>`, metrics
    /// `mean@k`, `pass@k` (each configured k), `length_mean`, `length_correct_mean`,
    /// `length_incorrect_mean` (when there is such a sample) and `truncation_rate`.
    pub fn scalars(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for bench in &self.benchmarks {
            for m in &bench.budgets {
                let key = |metric: &str| format!("eval/{}/{metric}@{}", bench.name, m.budget);
                out.push((key(&format!("mean@{}", m.samples)), m.mean_at_k));
                for (k, v) in &m.pass_at_k {
                    out.push((key(&format!("pass@{k}")), *v));
                }
                out.push((key("length_mean"), m.mean_length));
                for (name, dist) in [
                    ("length_correct_mean", &m.lengths.correct),
                    ("length_incorrect_mean", &m.lengths.incorrect),
                ] {
                    if let Some(mean) = dist.mean {
                        out.push((key(name), mean));
                    }
                }
                out.push((key("truncation_rate"), m.truncation_rate));
            }
        }
        out
    }

    /// Reads the `eval.json` of a report folder (its `samples` stay empty; see [`read_samples`]).
    ///
    /// # Errors
    /// When the file is missing or malformed.
    pub fn read(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join(EVAL_JSON);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::read(&path, e))?;
        serde_json::from_str(&text).map_err(|source| Error::Report { path, source })
    }
}

/// Reads a `samples.jsonl`.
///
/// # Errors
/// When the file is missing or a line is not a sample record (naming the line).
pub fn read_samples(path: impl AsRef<Path>) -> Result<Vec<SampleRecord>> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::read(path, e))?;
    let mut records = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::read(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        records.push(
            serde_json::from_str(&line).map_err(|source| Error::JsonLine {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })?,
        );
    }
    Ok(records)
}

/// Writes `text` to `path`; returns the path.
pub(crate) fn write_file(path: &Path, text: &str) -> Result<PathBuf> {
    std::fs::write(path, text).map_err(|e| Error::write(path, e))?;
    Ok(path.to_path_buf())
}

pub(crate) fn write_samples(path: &Path, samples: &[SampleRecord]) -> Result<PathBuf> {
    let file = std::fs::File::create(path).map_err(|e| Error::write(path, e))?;
    let mut out = BufWriter::new(file);
    for record in samples {
        serde_json::to_writer(&mut out, record).map_err(|e| Error::write(path, e.into()))?;
        out.write_all(b"\n").map_err(|e| Error::write(path, e))?;
    }
    out.flush().map_err(|e| Error::write(path, e))?;
    Ok(path.to_path_buf())
}

/// Benchmarks of `after` in order, then those only `before` has.
pub(crate) fn benchmark_names(before: &EvalReport, after: &EvalReport) -> Vec<String> {
    let mut names: Vec<String> = after.benchmarks.iter().map(|b| b.name.clone()).collect();
    for b in &before.benchmarks {
        if !names.contains(&b.name) {
            names.push(b.name.clone());
        }
    }
    names
}

/// A benchmark name made safe for a file name: anything but ASCII letters, digits, `-`, `_` and `.` → `_`.
pub(crate) fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("gsm8k"), "gsm8k");
        assert_eq!(file_stem("aime/25 (v2)"), "aime_25__v2_");
    }
}
