//! `Engine`: turns prompts into groups of `n` rollouts with one batched, KV-cached decode loop.
//!
//! - **Prefix sharing**: each prompt is prefilled once; its cache row is replicated for its `n` samples.
//! - **Continuous batching**: at most `max_batch` sequences decode together; a finished sequence leaves
//!   the batch at once (its cache rows are dropped: compaction) and its slot goes to the next waiting
//!   sample, so a long tail never pays for finished rows.
//! - **Determinism**: sample `s` of prompt `p` draws from its own ChaCha8 stream seeded by
//!   `(seed, p, s)`, so the sampled ids and finish reasons do not depend on batch size, admission order
//!   or prefix sharing. Log-probs agree across batchings up to float rounding (~1e-5 relative): matrix-product
//!   reductions depend on the batch shape.

use std::collections::VecDeque;
use std::rc::Rc;

use burn::prelude::*;
use laconic_model::{AttentionLayout, KvCache, Qwen3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rollout::{Observer, Progress, Rollout};
use crate::sampling::{sample, Finish, SamplingParams};

/// Batching knobs of the engine (speed and memory only; they never change the rollouts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Most sequences decoded together (bounds KV-cache memory). Default 64.
    pub max_batch: usize,
    /// Prompts prefilled in one forward call. Default 8.
    pub prefill_batch: usize,
    /// Prefill each prompt once and share its cache across its `n` samples. Default true.
    pub share_prefix: bool,
    /// Drop finished sequences from the batch and refill their slots. Off = static batches that decode
    /// until their longest member ends (the naive baseline). Default true.
    pub compact: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 64,
            prefill_batch: 8,
            share_prefix: true,
            compact: true,
        }
    }
}

impl EngineConfig {
    /// The naive baseline: every sample prefilled separately, static batches, no compaction.
    pub fn naive(max_batch: usize) -> Self {
        Self {
            max_batch,
            prefill_batch: max_batch,
            share_prefix: false,
            compact: false,
        }
    }

    fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("max_batch", self.max_batch),
            ("prefill_batch", self.prefill_batch),
        ] {
            if value == 0 {
                return Err(Error::InvalidEngine {
                    name,
                    expected: "a positive integer",
                    found: "0".into(),
                });
            }
        }
        Ok(())
    }
}

/// Generates rollouts from a model.
#[derive(Debug)]
pub struct Engine<'a, B: Backend> {
    model: &'a Qwen3<B>,
    config: EngineConfig,
    device: B::Device,
}

/// A prefilled prompt whose samples are waiting for decode slots.
struct Waiting<B: Backend> {
    prompt_idx: usize,
    prompt_len: usize,
    /// Prefill cache shared by the prompts prefilled together, and this prompt's row in it.
    cache: Rc<KvCache<B>>,
    row: usize,
    /// Logits of the prompt's last position.
    logits: Rc<Vec<f32>>,
    /// Sample indices still to admit.
    samples: VecDeque<usize>,
}

/// A sequence in the decode batch.
struct Live {
    prompt_idx: usize,
    sample_idx: usize,
    prompt_len: usize,
    response: Vec<u32>,
    logprobs: Vec<f32>,
    rng: ChaCha8Rng,
    finish: Option<Finish>,
}

impl Live {
    fn into_rollout(self) -> Rollout {
        Rollout {
            prompt_idx: self.prompt_idx,
            sample_idx: self.sample_idx,
            response_ids: self.response,
            logprobs: self.logprobs,
            finish: self
                .finish
                .expect("only finished sequences become rollouts"),
        }
    }
}

/// The random stream of sample `sample_idx` of prompt `prompt_idx` (SplitMix64 mixing of the three).
pub fn sequence_rng(seed: u64, prompt_idx: usize, sample_idx: usize) -> ChaCha8Rng {
    let mut x = seed;
    for part in [prompt_idx as u64, sample_idx as u64] {
        x = splitmix64(x ^ splitmix64(part.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    }
    ChaCha8Rng::seed_from_u64(x)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<'a, B: Backend> Engine<'a, B> {
    /// An engine over `model` (use `model.valid()` of a training model: no autodiff graph is needed).
    ///
    /// # Errors
    /// When a batching knob is zero.
    pub fn new(model: &'a Qwen3<B>, config: EngineConfig) -> Result<Self> {
        config.validate()?;
        let device = model.model.embed_tokens.weight.device();
        Ok(Self {
            model,
            config,
            device,
        })
    }

    /// `n` rollouts for each prompt, ordered by `(prompt_idx, sample_idx)`. The observer hears about every
    /// sampled token and, after every prefill and decode step, the progress (a `|p: &Progress| …` closure
    /// is an observer).
    ///
    /// # Errors
    /// Invalid parameters, empty prompts or ids outside the vocabulary, non-finite logits.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        n: usize,
        params: &SamplingParams,
        observer: &mut dyn Observer,
    ) -> Result<Vec<Rollout>> {
        params.validate()?;
        self.check_prompts(prompts)?;
        // Work items: (prompt, samples) — all n samples per prompt when sharing, else one per item.
        let mut queue: VecDeque<(usize, Vec<usize>)> = if self.config.share_prefix {
            (0..prompts.len()).map(|p| (p, (0..n).collect())).collect()
        } else {
            (0..prompts.len())
                .flat_map(|p| (0..n).map(move |s| (p, vec![s])))
                .collect()
        };
        queue.retain(|(_, samples)| !samples.is_empty());
        let mut state = Progress {
            total: prompts.len() * n,
            ..Progress::default()
        };
        let mut waiting: VecDeque<Waiting<B>> = VecDeque::new();
        let mut live: Vec<Live> = Vec::new();
        let mut cache = self.model.new_cache();
        let mut done: Vec<Rollout> = Vec::with_capacity(state.total);

        loop {
            // 1. Fill free slots (with compaction any time; without, only once the batch is empty).
            if self.config.compact || live.is_empty() {
                self.admit(
                    prompts,
                    params,
                    &mut queue,
                    &mut waiting,
                    &mut live,
                    &mut cache,
                    &mut done,
                    observer,
                )?;
            }
            state.finished = done.len() + live.iter().filter(|l| l.finish.is_some()).count();
            state.tokens = done.iter().map(Rollout::len).sum::<usize>()
                + live.iter().map(|l| l.response.len()).sum::<usize>();
            state.live = live.iter().filter(|l| l.finish.is_none()).count();
            observer.on_progress(&state);
            if state.live == 0 {
                if queue.is_empty() && waiting.is_empty() {
                    break;
                }
                // A static batch that just ended: start the next one from scratch.
                done.extend(live.drain(..).map(Live::into_rollout));
                cache = self.model.new_cache();
                continue;
            }

            // 2. One decode step for every row (finished rows too when not compacting).
            let logits = self.decode_step(&live, &mut cache)?;
            let vocab = self.model.config().vocab_size;
            for (row, seq) in live.iter_mut().enumerate() {
                if seq.finish.is_none() {
                    let row_logits = &logits[row * vocab..(row + 1) * vocab];
                    push_sample(seq, row_logits, params)?;
                    observer.on_token(
                        seq.prompt_idx,
                        seq.sample_idx,
                        *seq.response.last().expect("just pushed"),
                    );
                }
            }

            // 3. Compaction: finished rows leave the batch and the cache.
            if self.config.compact && live.iter().any(|l| l.finish.is_some()) {
                let keep: Vec<usize> = (0..live.len())
                    .filter(|&r| live[r].finish.is_none())
                    .collect();
                cache = if keep.is_empty() {
                    self.model.new_cache()
                } else {
                    cache.select_rows(&keep).trim_left()
                };
                let (finished, running): (Vec<Live>, Vec<Live>) =
                    live.drain(..).partition(|l| l.finish.is_some());
                done.extend(finished.into_iter().map(Live::into_rollout));
                live = running;
            }
        }
        done.extend(live.into_iter().map(Live::into_rollout));
        done.sort_by_key(|r| (r.prompt_idx, r.sample_idx));
        Ok(done)
    }

    fn check_prompts(&self, prompts: &[Vec<u32>]) -> Result<()> {
        let vocab = self.model.config().vocab_size;
        for (index, prompt) in prompts.iter().enumerate() {
            if prompt.is_empty() {
                return Err(Error::InvalidPrompt {
                    index,
                    message: "prompt is empty".into(),
                });
            }
            if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
                return Err(Error::InvalidPrompt {
                    index,
                    message: format!("token id `{bad}` is outside the vocabulary of {vocab}"),
                });
            }
        }
        Ok(())
    }

    /// Moves waiting samples into free decode slots, prefilling more prompts when none are waiting.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
        queue: &mut VecDeque<(usize, Vec<usize>)>,
        waiting: &mut VecDeque<Waiting<B>>,
        live: &mut Vec<Live>,
        cache: &mut KvCache<B>,
        done: &mut Vec<Rollout>,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let mut new_rows: Vec<(Rc<KvCache<B>>, usize)> = Vec::new();
        while live.len() < self.config.max_batch {
            if waiting.is_empty() {
                if queue.is_empty() {
                    break;
                }
                self.prefill(prompts, queue, waiting)?;
            }
            let entry = waiting
                .front_mut()
                .expect("prefill queued at least one prompt");
            while live.len() < self.config.max_batch {
                let Some(sample_idx) = entry.samples.pop_front() else {
                    break;
                };
                let mut seq = Live {
                    prompt_idx: entry.prompt_idx,
                    sample_idx,
                    prompt_len: entry.prompt_len,
                    response: Vec::new(),
                    logprobs: Vec::new(),
                    rng: sequence_rng(params.seed, entry.prompt_idx, sample_idx),
                    finish: None,
                };
                push_sample(&mut seq, &entry.logits, params)?;
                observer.on_token(seq.prompt_idx, sample_idx, seq.response[0]);
                if seq.finish.is_some() {
                    done.push(seq.into_rollout());
                } else {
                    new_rows.push((entry.cache.clone(), entry.row));
                    live.push(seq);
                }
            }
            if entry.samples.is_empty() {
                waiting.pop_front();
            }
        }
        // Gather the admitted rows' prefill caches (grouped by shared prefill cache) into the batch.
        let mut start = 0;
        while start < new_rows.len() {
            let source = new_rows[start].0.clone();
            let end = start
                + new_rows[start..]
                    .iter()
                    .take_while(|(c, _)| Rc::ptr_eq(c, &source))
                    .count();
            let rows: Vec<usize> = new_rows[start..end].iter().map(|(_, r)| *r).collect();
            let block = source.select_rows(&rows).trim_left();
            *cache = std::mem::replace(cache, self.model.new_cache()).concat(block);
            start = end;
        }
        Ok(())
    }

    /// Prefills the next `prefill_batch` work items in one left-padded forward.
    fn prefill(
        &self,
        prompts: &[Vec<u32>],
        queue: &mut VecDeque<(usize, Vec<usize>)>,
        waiting: &mut VecDeque<Waiting<B>>,
    ) -> Result<()> {
        let take = self.config.prefill_batch.min(queue.len());
        let items: Vec<(usize, Vec<usize>)> = queue.drain(..take).collect();
        let lengths: Vec<usize> = items.iter().map(|(p, _)| prompts[*p].len()).collect();
        let width = *lengths.iter().max().expect("at least one item");
        let mut ids = Vec::with_capacity(items.len() * width);
        for (p, _) in &items {
            ids.extend(std::iter::repeat_n(0i64, width - prompts[*p].len()));
            ids.extend(prompts[*p].iter().map(|&t| t as i64));
        }
        let tokens = Tensor::<B, 2, Int>::from_data(
            TensorData::new(ids, [items.len(), width]),
            &self.device,
        );
        let layout = AttentionLayout::left_padded(&lengths, width)?;
        let mut cache = self.model.new_cache();
        let hidden = self.model.forward_hidden(tokens, &layout, &mut cache)?;
        let [b, t, d] = hidden.dims();
        // Left padding puts every prompt's last token in the last column.
        let logits = host_logits(self.model.logits(hidden.slice([0..b, t - 1..t, 0..d])));
        let vocab = self.model.config().vocab_size;
        let cache = Rc::new(cache);
        for (row, ((prompt_idx, samples), len)) in items.into_iter().zip(lengths).enumerate() {
            waiting.push_back(Waiting {
                prompt_idx,
                prompt_len: len,
                cache: cache.clone(),
                row,
                logits: Rc::new(logits[row * vocab..(row + 1) * vocab].to_vec()),
                samples: samples.into(),
            });
        }
        Ok(())
    }

    /// Feeds every row's last sampled token; returns `[B·V]` logits on the host.
    fn decode_step(&self, live: &[Live], cache: &mut KvCache<B>) -> Result<Vec<f32>> {
        let ids: Vec<i64> = live
            .iter()
            .map(|l| *l.response.last().expect("admitted rows have a token") as i64)
            .collect();
        let positions = live
            .iter()
            .map(|l| l.prompt_len + l.response.len() - 1)
            .collect();
        let tokens =
            Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [live.len(), 1]), &self.device);
        let logits =
            self.model
                .forward_cached(tokens, &AttentionLayout::decode_step(positions), cache)?;
        Ok(host_logits(logits))
    }
}

/// Samples the next token of `seq` from `logits` and records it, marking the sequence finished on a
/// stop id or at `max_tokens`.
fn push_sample(seq: &mut Live, logits: &[f32], params: &SamplingParams) -> Result<()> {
    let drawn = sample(logits, params, &mut seq.rng).ok_or(Error::NonFiniteLogits {
        prompt_idx: seq.prompt_idx,
        sample_idx: seq.sample_idx,
        step: seq.response.len(),
    })?;
    seq.response.push(drawn.token);
    seq.logprobs.push(drawn.logprob);
    if params.is_stop(drawn.token) {
        seq.finish = Some(Finish::Stop);
    } else if seq.response.len() >= params.max_tokens {
        seq.finish = Some(Finish::Length);
    }
    Ok(())
}

fn host_logits<B: Backend, const D: usize>(logits: Tensor<B, D>) -> Vec<f32> {
    logits
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("float logits convert to f32")
}

#[cfg(test)]
mod tests;
