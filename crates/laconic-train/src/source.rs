//! Where each step's prompts come from, and what judges their answers.
//!
//! A JSONL dataset is walked in seeded shuffled epochs ([`PromptSampler`], checkpointed with the run);
//! the synthetic task draws fresh problems from a stream seeded by `(seed, step)`, so it needs no state.

use laconic_eval::{Benchmark, EvalItem, PromptLimit};
use laconic_model::seed::stream_seed;
use laconic_model::Tokenizer;
use laconic_reward::Judge;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{DataConfig, RunConfig};
use crate::data::{PromptItem, PromptSampler};
use crate::error::{Error, Result};
use crate::task::{DigitSumConfig, DigitSumJudge, Problem};

/// Offset between the training and the held-out seeds of the synthetic task.
const HELD_OUT_SEED: u64 = 0x005E_ED0F_E7A1;

/// A run's prompts, judge and evaluation benchmarks.
pub struct Task {
    source: Source,
    /// Grades responses against gold answers.
    pub judge: Box<dyn Judge>,
    /// Benchmarks of the periodic evaluation (may be empty).
    pub benchmarks: Vec<Benchmark>,
}

enum Source {
    Dataset {
        items: Vec<PromptItem>,
        sampler: PromptSampler,
    },
    DigitSum {
        config: DigitSumConfig,
        seed: u64,
    },
}

impl Task {
    /// Builds the task of `config`, tokenising with `tokenizer`.
    ///
    /// # Errors
    /// A missing or malformed dataset, an empty dataset, or a tokenizer failure.
    /// `positions` is the model's `max_position_embeddings`: a JSONL prompt must leave room for
    /// `rollout.max_tokens` (an evaluation prompt for the largest budget), or is handled as
    /// `data.overlong_prompts` says.
    pub fn from_config(
        config: &RunConfig,
        tokenizer: &Tokenizer,
        positions: usize,
    ) -> Result<Self> {
        let seed = config.train.seed;
        match &config.data {
            DataConfig::DigitSum(task) => {
                let encode = |text: &str| tokenizer.encode(text);
                let held_out = digit_sum_items(
                    &task.held_out(),
                    config.train.eval_problems,
                    seed ^ HELD_OUT_SEED,
                    &encode,
                )?;
                let items = held_out
                    .into_iter()
                    .map(|p| EvalItem {
                        prompt_ids: p.prompt_ids,
                        gold: p.gold,
                        question: p.text,
                    })
                    .collect();
                Ok(Self {
                    source: Source::DigitSum {
                        config: task.clone(),
                        seed,
                    },
                    judge: Box::new(DigitSumJudge),
                    benchmarks: vec![Benchmark::new("digit_sum", items)],
                })
            }
            DataConfig::Jsonl(data) => {
                let mut bench = Benchmark::load(&data.dataset, &data.prompt, tokenizer)?;
                let hint = "`data.overlong_prompts = \"drop\"`";
                let train_limit = PromptLimit::for_model(
                    positions,
                    config.rollout.sampling.max_tokens,
                    data.max_prompt_tokens,
                    data.overlong_prompts,
                    hint,
                );
                bench.limit_prompts(&train_limit)?;
                if bench.is_empty() {
                    return Err(Error::NoPrompts {
                        path: data.dataset.path.clone(),
                        max_prompt_tokens: train_limit.max_tokens,
                        why: train_limit.why.to_string(),
                    });
                }
                let items: Vec<PromptItem> = bench
                    .items
                    .into_iter()
                    .map(|i| PromptItem {
                        text: i.question,
                        prompt_ids: i.prompt_ids,
                        gold: i.gold,
                    })
                    .collect();
                let benchmarks = config
                    .train
                    .eval_benchmarks
                    .iter()
                    .map(|spec| {
                        let mut bench = Benchmark::load(spec, &data.prompt, tokenizer)?;
                        let limit = PromptLimit::for_model(
                            positions,
                            config.eval.max_budget(),
                            data.max_prompt_tokens,
                            data.overlong_prompts,
                            hint,
                        );
                        bench.limit_prompts(&limit)?;
                        Ok(bench)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let sampler = PromptSampler::new(items.len(), seed);
                Ok(Self {
                    source: Source::Dataset { items, sampler },
                    judge: Box::new(config.reward.judge()),
                    benchmarks,
                })
            }
        }
    }

    /// The prompts of rollout batch `draw` of step `step` (`count` of them). A step draws one batch,
    /// or more under dynamic sampling: the dataset's cursor moves on, the synthetic stream takes the
    /// seed [`draw_seed`] gives.
    ///
    /// # Errors
    /// When the tokenizer fails on a synthetic prompt.
    pub fn next_batch(
        &mut self,
        step: u64,
        draw: u64,
        count: usize,
        tokenizer: &Tokenizer,
    ) -> Result<Vec<PromptItem>> {
        match &mut self.source {
            Source::Dataset { items, sampler } => Ok(sampler
                .next_batch(count)
                .into_iter()
                .map(|i| items[i].clone())
                .collect()),
            Source::DigitSum { config, seed } => digit_sum_items(
                config,
                count,
                draw_seed(*seed, step, draw),
                &|text: &str| tokenizer.encode(text),
            ),
        }
    }

    /// Tokens of the longest training prompt: the dataset's longest, or for the synthetic task a
    /// problem of `data.max_digits` digits.
    ///
    /// # Errors
    /// When the tokenizer fails on a synthetic prompt.
    pub fn longest_prompt(&self, tokenizer: &Tokenizer) -> Result<usize> {
        match &self.source {
            Source::Dataset { items, .. } => {
                Ok(items.iter().map(|i| i.prompt_ids.len()).max().unwrap_or(0))
            }
            Source::DigitSum { config, .. } => {
                let longest = format!("{}=", "9".repeat(config.max_digits));
                Ok(tokenizer.encode(&longest)?.len())
            }
        }
    }

    /// The sampler state to checkpoint (`None` for the stateless synthetic stream).
    pub fn sampler(&self) -> Option<&PromptSampler> {
        match &self.source {
            Source::Dataset { sampler, .. } => Some(sampler),
            Source::DigitSum { .. } => None,
        }
    }

    /// Restores a checkpointed sampler.
    ///
    /// # Errors
    /// When the checkpoint's sampler does not fit this dataset.
    pub fn restore_sampler(&mut self, saved: Option<PromptSampler>) -> Result<()> {
        match (&mut self.source, saved) {
            (Source::Dataset { sampler, .. }, Some(saved)) if saved.len == sampler.len => {
                *sampler = saved;
                Ok(())
            }
            (Source::DigitSum { .. }, None) => Ok(()),
            _ => Err(Error::CursorMismatch),
        }
    }
}

/// `count` digit-sum problems from `seed`, tokenised.
fn digit_sum_items(
    config: &DigitSumConfig,
    count: usize,
    seed: u64,
    encode: &dyn Fn(&str) -> laconic_model::Result<Vec<u32>>,
) -> Result<Vec<PromptItem>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let p = Problem::sample(config, &mut rng);
            let text = p.prompt();
            Ok(PromptItem {
                prompt_ids: encode(&text)?,
                text,
                gold: p.answer(),
            })
        })
        .collect()
}

/// The seed of rollout batch `draw` of step `step` (its synthetic prompts and sampling streams):
/// `stream_seed(seed, step)` for the first batch, an independent stream for each further one.
pub fn draw_seed(seed: u64, step: u64, draw: u64) -> u64 {
    let first = stream_seed(seed, step);
    if draw == 0 {
        first
    } else {
        stream_seed(first, draw)
    }
}
