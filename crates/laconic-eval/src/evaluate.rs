//! `evaluate`: generate `k` samples per question once, capped at the largest budget, and score every
//! budget from them (see [`crate::sweep`] for why this equals one run per budget).

use std::time::Instant;

use burn::prelude::*;
use laconic_model::{CausalLm, Tokenizer};
use laconic_reward::Judge;
use laconic_rollout::{shard_range, Engine, Observer, Progress, Rollout, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::benchmark::{Benchmark, OverlongPrompts, PromptLimit};
use crate::config::EvalConfig;
use crate::error::{Error, Result};
use crate::report::{BenchmarkReport, EvalReport, RunInfo};
use crate::sweep::{score_sample_records, QuestionRef, SampleRecord};

/// Evaluates `model` on `benchmarks` at every budget of `config` from one generation per benchmark capped
/// at the largest budget; `judge` grades each sample's text cut at each budget against the item's gold.
///
/// The observer hears every sampled token and, after every engine step, the progress over all
/// benchmarks together (`total` = questions × samples of every benchmark). Pass `&mut ()` to ignore it.
/// Give a training model as `&model.valid()`.
///
/// # Errors
/// An invalid config, an empty benchmark, a prompt the engine rejects, or a decoding failure.
pub fn evaluate<B: Backend>(
    model: &CausalLm<B>,
    tokenizer: &Tokenizer,
    benchmarks: &[Benchmark],
    config: &EvalConfig,
    judge: &dyn Judge,
    observer: &mut dyn Observer,
) -> Result<EvalReport> {
    let whole = QuestionShard { rank: 0, world: 1 };
    let shard = evaluate_shard(model, tokenizer, benchmarks, config, judge, observer, whole)?;
    Ok(EvalReport::from_shards(benchmarks, config, vec![shard]))
}

/// Which questions of every benchmark one data-parallel worker evaluates: share `rank` of `world`
/// contiguous shares ([`shard_range`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuestionShard {
    /// This worker, `0..world`.
    pub rank: usize,
    /// Workers.
    pub world: usize,
}

/// What one worker's share of an evaluation produced: scored samples numbered as in the whole
/// benchmarks, and how its generation ran. [`EvalReport::from_shards`] joins every worker's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalShard {
    /// Generation and scoring of this share.
    pub info: RunInfo,
    /// This share's samples, in benchmark then question order.
    pub samples: Vec<SampleRecord>,
}

/// [`evaluate`] of `shard`'s share of every benchmark's questions, each sampled from the random
/// stream the whole evaluation gives it: the shards of every worker, joined by
/// [`EvalReport::from_shards`], are the whole evaluation. Every worker checks every prompt, so all
/// fail alike on bad input.
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_shard<B: Backend>(
    model: &CausalLm<B>,
    tokenizer: &Tokenizer,
    benchmarks: &[Benchmark],
    config: &EvalConfig,
    judge: &dyn Judge,
    observer: &mut dyn Observer,
    shard: QuestionShard,
) -> Result<EvalShard> {
    config.validate()?;
    let positions = model.config().max_position_embeddings;
    if config.max_budget() > positions {
        return Err(Error::InvalidConfig {
            key: "eval.budgets",
            expected: format!(
                "budgets within the model's max_position_embeddings = {positions} (prompt included)"
            ),
            found: format!("{} (largest)", config.max_budget()),
        });
    }
    let limit = PromptLimit::for_model(
        positions,
        config.max_budget(),
        None,
        OverlongPrompts::Error,
        "`--overlong-prompts drop` (eval) or `data.overlong_prompts = \"drop\"` (training)",
    );
    for bench in benchmarks {
        bench.check_prompts(&limit)?;
    }
    if let Some((i, bench)) = benchmarks
        .iter()
        .enumerate()
        .find(|(i, b)| benchmarks[..*i].iter().any(|a| a.name == b.name))
    {
        return Err(Error::Mismatch {
            benchmark: bench.name.clone(),
            message: format!(
                "benchmark {} has the name of an earlier one; rename one (NAME=PATH)",
                i + 1
            ),
        });
    }
    if let Some(empty) = benchmarks.iter().find(|b| b.is_empty()) {
        return Err(Error::Mismatch {
            benchmark: empty.name.clone(),
            message: "no questions".into(),
        });
    }
    let mut info = RunInfo {
        max_tokens: config.max_budget(),
        ..RunInfo::default()
    };
    let params = config.sampling_params(stop_ids(config, tokenizer, model));
    info.stop_ids = params.stop_ids.clone();
    let engine = Engine::new(model, config.engine.clone())?;
    let shares: Vec<_> = benchmarks
        .iter()
        .map(|b| shard_range(b.len(), shard.world, shard.rank))
        .collect();
    let mut overall = Overall {
        inner: observer,
        total: shares.iter().map(|r| r.len() * config.samples).sum(),
        finished: 0,
        tokens: 0,
        preemptions: 0,
        bench_preemptions: 0,
    };
    let mut samples = Vec::new();
    for (bench, share) in benchmarks.iter().zip(shares) {
        if share.is_empty() {
            continue;
        }
        let start = Instant::now();
        let prompts: Vec<Vec<u32>> = bench.items[share.clone()]
            .iter()
            .map(|i| i.prompt_ids.clone())
            .collect();
        let params = SamplingParams {
            first_prompt: share.start,
            ..params.clone()
        };
        let rollouts = engine.generate(&prompts, config.samples, &params, &mut overall)?;
        info.generation_seconds += start.elapsed().as_secs_f64();
        let tokens: usize = rollouts.iter().map(Rollout::len).sum();
        info.tokens_generated += tokens;
        overall.finished += rollouts.len();
        overall.tokens += tokens;
        overall.preemptions += std::mem::take(&mut overall.bench_preemptions);

        let start = Instant::now();
        let part = if share.len() == bench.len() {
            std::borrow::Cow::Borrowed(bench)
        } else {
            std::borrow::Cow::Owned(Benchmark::new(
                bench.name.clone(),
                bench.items[share.clone()].to_vec(),
            ))
        };
        let (_, records) = score_benchmark(&part, &rollouts, config, judge, &|ids| {
            tokenizer.decode(ids)
        })?;
        info.scoring_seconds += start.elapsed().as_secs_f64();
        samples.extend(records.into_iter().map(|r| SampleRecord {
            question_idx: share.start + r.question_idx,
            ..r
        }));
    }
    Ok(EvalShard { info, samples })
}

/// Scores rollouts a caller generated itself (with `max_tokens` ≥ the largest budget) at every budget of
/// `config`: the scoring half of [`evaluate`]. `decode` turns ids into text (`|ids| tokenizer.decode(ids)`).
///
/// # Errors
/// A rollout of a prompt the benchmark does not have, one cut below a budget, or a decoding failure.
pub fn score_benchmark(
    benchmark: &Benchmark,
    rollouts: &[Rollout],
    config: &EvalConfig,
    judge: &dyn Judge,
    decode: &crate::sweep::Decode<'_>,
) -> Result<(BenchmarkReport, Vec<SampleRecord>)> {
    let questions: Vec<QuestionRef<'_>> = benchmark
        .items
        .iter()
        .map(|i| QuestionRef {
            question: &i.question,
            gold: &i.gold,
        })
        .collect();
    check_sample_counts(benchmark, rollouts, &config.pass_ks())?;
    let records = score_sample_records(
        &benchmark.name,
        &questions,
        rollouts,
        &config.sorted_budgets(),
        judge,
        config.truncated,
        decode,
    )?;
    let report = BenchmarkReport::from_records(benchmark.name.clone(), &records, config);
    Ok((report, records))
}

/// Every question needs at least as many samples as the largest Pass@k `k`.
fn check_sample_counts(
    benchmark: &Benchmark,
    rollouts: &[Rollout],
    pass_ks: &[usize],
) -> Result<()> {
    let mut counts = vec![0usize; benchmark.len()];
    for r in rollouts {
        if let Some(c) = counts.get_mut(r.prompt_idx) {
            *c += 1;
        }
    }
    let need = pass_ks.iter().copied().max().unwrap_or(1).max(1);
    match counts.iter().position(|&c| c < need) {
        Some(q) => Err(Error::Mismatch {
            benchmark: benchmark.name.clone(),
            message: format!(
                "question {q} has {} samples, fewer than {need} (the largest Pass@k k)",
                counts[q]
            ),
        }),
        None => Ok(()),
    }
}

/// The ids that end a response: the config's, or the tokenizer's and the model's `eos_token_id`.
pub fn stop_ids<B: Backend>(
    config: &EvalConfig,
    tokenizer: &Tokenizer,
    model: &CausalLm<B>,
) -> Vec<u32> {
    if !config.stop_ids.is_empty() {
        return config.stop_ids.clone();
    }
    let mut ids = tokenizer.stop_ids();
    ids.extend(model.config().eos_token_ids());
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Forwards events, turning each benchmark's progress into progress over all benchmarks.
struct Overall<'a> {
    inner: &'a mut dyn Observer,
    total: usize,
    /// Rollouts and tokens of the benchmarks already generated.
    finished: usize,
    tokens: usize,
    preemptions: usize,
    /// Preemptions of the benchmark being generated.
    bench_preemptions: usize,
}

impl Observer for Overall<'_> {
    fn on_progress(&mut self, progress: &Progress) {
        self.bench_preemptions = progress.preemptions;
        self.inner.on_progress(&Progress {
            total: self.total,
            finished: self.finished + progress.finished,
            tokens: self.tokens + progress.tokens,
            preemptions: self.preemptions + progress.preemptions,
            ..*progress
        });
    }

    fn on_token(&mut self, prompt_idx: usize, sample_idx: usize, token: u32) {
        self.inner.on_token(prompt_idx, sample_idx, token);
    }
}

#[cfg(test)]
mod tests;
