//! `Engine`: turns prompts into groups of `n` rollouts with one batched, KV-cached decode loop.
//!
//! - **Prefix sharing**: each prompt is prefilled once; its cache row is replicated for its `n` samples.
//! - **Continuous batching**: at most `max_batch` sequences decode together; a finished sequence leaves
//!   the batch at once (its cache rows are dropped: compaction) and its slot goes to the next waiting
//!   sample, so a long tail never pays for finished rows.
//! - **KV-cache budget**: the shared cache holds at most `kv_cache_tokens` slots (rows × cached
//!   columns). A sample is admitted only while the batch still fits; when the next decode step would
//!   not, the most recently admitted rows are preempted (their cache rows dropped) and queued again
//!   ahead of new samples, to be recomputed by a prefill of their prompt and tokens so far once room
//!   frees up. Their random streams travel with them, so a preempted sequence comes out as it would
//!   have unpreempted.
//! - **Determinism**: sample `s` of prompt `p` draws from its own ChaCha8 stream seeded by
//!   `(seed, p, s)`, so the sampled ids and finish reasons do not depend on batch size, admission order
//!   or prefix sharing. Log-probs agree across batchings up to float rounding (~1e-5 relative): matrix-product
//!   reductions depend on the batch shape.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use burn::prelude::*;
use laconic_model::seed::{splitmix64, GOLDEN_GAMMA};
use laconic_model::{AttentionLayout, CausalLm, KvCache};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rollout::{Observer, Progress, Rollout};
use crate::sampling::{sample, Finish, SamplingParams};
use budget::KvBudget;
pub use budget::{slot_bytes, DEFAULT_MEMORY_FRACTION};

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
    /// Most KV-cache slots (rows × cached columns of the shared, left-padded cache; one slot is one
    /// token's keys and values in every layer). `None`: a quarter of the memory the OS reports
    /// available, in slots of this model ([`slot_bytes`]) — on a GPU, set it from the card's memory
    /// (vLLM's `gpu_memory_utilization` plays this part there).
    pub kv_cache_tokens: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 64,
            prefill_batch: 8,
            share_prefix: true,
            compact: true,
            kv_cache_tokens: None,
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
            kv_cache_tokens: None,
        }
    }

    /// Checks every setting is in range.
    ///
    /// # Errors
    /// [`Error::InvalidEngine`] naming the first setting out of range.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("max_batch", self.max_batch),
            ("prefill_batch", self.prefill_batch),
            ("kv_cache_tokens", self.kv_cache_tokens.unwrap_or(1)),
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
    model: &'a CausalLm<B>,
    config: EngineConfig,
    budget: KvBudget,
    /// Samples admitted so far (numbers each admission).
    admissions: Cell<usize>,
    device: B::Device,
}

/// Work not in the decode batch: prompts to prefill, prefilled prompts with samples to admit, and
/// preempted sequences (latest admission first).
struct Pending<'q, B: Backend> {
    queue: &'q mut VecDeque<(usize, Vec<usize>)>,
    waiting: &'q mut VecDeque<Waiting<B>>,
    preempted: &'q mut Vec<Live>,
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
    /// Admission order (later admitted = larger), for choosing whom to preempt.
    admitted: usize,
    prompt_idx: usize,
    sample_idx: usize,
    prompt_len: usize,
    response: Vec<u32>,
    logprobs: Vec<f32>,
    rng: ChaCha8Rng,
    finish: Option<Finish>,
}

impl Live {
    /// Tokens of this sequence in the cache before its next decode step (all but the last sampled).
    fn cached_len(&self) -> usize {
        self.prompt_len + self.response.len() - 1
    }

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
        x = splitmix64(x ^ splitmix64(part.wrapping_add(GOLDEN_GAMMA)));
    }
    ChaCha8Rng::seed_from_u64(x)
}

impl<'a, B: Backend> Engine<'a, B> {
    /// An engine over `model` (use `model.valid()` of a training model: no autodiff graph is needed).
    ///
    /// # Errors
    /// When a batching knob is zero.
    pub fn new(model: &'a CausalLm<B>, config: EngineConfig) -> Result<Self> {
        config.validate()?;
        let device = model.model.embed_tokens.weight.device();
        let budget = KvBudget::new(config.kv_cache_tokens, model);
        Ok(Self {
            model,
            config,
            budget,
            admissions: Cell::new(0),
            device,
        })
    }

    /// `n` rollouts for each prompt, ordered by `(prompt_idx, sample_idx)`. The observer hears about every
    /// sampled token and, after every prefill and decode step, the progress (a `|p: &Progress| …` closure
    /// is an observer).
    ///
    /// # Errors
    /// Invalid parameters, empty prompts or ids outside the vocabulary, a prompt that cannot run to
    /// `max_tokens` within the KV-cache budget, non-finite logits.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        n: usize,
        params: &SamplingParams,
        observer: &mut dyn Observer,
    ) -> Result<Vec<Rollout>> {
        params.validate()?;
        self.check_prompts(prompts, params.max_tokens)?;
        self.budget.check_prompts(prompts, params.max_tokens)?;
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
        let mut preempted: Vec<Live> = Vec::new();
        let mut live: Vec<Live> = Vec::new();
        let mut cache = self.model.new_cache();
        let mut done: Vec<Rollout> = Vec::with_capacity(state.total);

        loop {
            // 1. Fill free slots (with compaction any time; without, only once the batch is empty).
            if self.config.compact || live.is_empty() {
                self.admit(
                    prompts,
                    params,
                    &mut Pending {
                        queue: &mut queue,
                        waiting: &mut waiting,
                        preempted: &mut preempted,
                    },
                    &mut live,
                    &mut cache,
                    &mut done,
                    observer,
                )?;
            }
            // The next decode step adds a column: preempt the latest admitted rows until it fits.
            if self.config.compact {
                state.preemptions += self.preempt(&mut live, &mut cache, &mut preempted);
            }
            state.finished = done.len() + live.iter().filter(|l| l.finish.is_some()).count();
            state.tokens = done.iter().map(Rollout::len).sum::<usize>()
                + live.iter().map(|l| l.response.len()).sum::<usize>();
            state.live = live.iter().filter(|l| l.finish.is_none()).count();
            state.kv_cache_tokens = cache.batch() * cache.len();
            state.kv_cache_peak = state.kv_cache_peak.max(live.len() * (cache.len() + 1));
            observer.on_progress(&state);
            if state.live == 0 {
                if queue.is_empty() && waiting.is_empty() && preempted.is_empty() {
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

    fn check_prompts(&self, prompts: &[Vec<u32>], max_tokens: usize) -> Result<()> {
        let vocab = self.model.config().vocab_size;
        let positions = self.model.config().max_position_embeddings;
        for (index, prompt) in prompts.iter().enumerate() {
            if prompt.len() + max_tokens > positions {
                return Err(Error::InvalidPrompt {
                    index,
                    message: format!(
                        "{} prompt tokens + max_tokens {max_tokens} = {} exceed the model's max_position_embeddings = {positions}",
                        prompt.len(),
                        prompt.len() + max_tokens
                    ),
                });
            }
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

    /// Moves preempted sequences, then waiting samples, into free decode slots while the batch fits the
    /// KV-cache budget, prefilling more prompts when none are waiting.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
        pending: &mut Pending<'_, B>,
        live: &mut Vec<Live>,
        cache: &mut KvCache<B>,
        done: &mut Vec<Rollout>,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        // Columns the batch will have once the admitted rows are gathered in (left-padded to the longest).
        let mut columns = cache.len();
        // The static (non-compacting) baseline admits a whole batch at once: reserve each row's full length.
        let reserve = if self.config.compact {
            1
        } else {
            params.max_tokens
        };
        let fits = |rows: usize, columns: usize| self.budget.fits(rows, columns + reserve);

        // 1. Preempted sequences come back first, oldest admission first, recomputed by one prefill.
        let mut resumed = Vec::new();
        while live.len() + resumed.len() < self.config.max_batch {
            let Some(seq) = pending.preempted.last() else {
                break;
            };
            let wanted = columns.max(seq.cached_len());
            if !fits(live.len() + resumed.len() + 1, wanted) {
                break;
            }
            columns = wanted;
            resumed.push(pending.preempted.pop().expect("checked above"));
        }
        if !resumed.is_empty() {
            let block = self.recompute(prompts, &resumed)?;
            *cache = std::mem::replace(cache, self.model.new_cache()).concat(block);
            live.extend(resumed);
        }
        if !pending.preempted.is_empty() {
            // New samples wait until every preempted sequence is back.
            return Ok(());
        }

        // 2. New samples of prefilled prompts.
        let mut new_rows: Vec<(Rc<KvCache<B>>, usize)> = Vec::new();
        'admit: while live.len() < self.config.max_batch {
            if pending.waiting.is_empty() {
                if pending.queue.is_empty() {
                    break;
                }
                self.prefill(prompts, pending.queue, pending.waiting)?;
            }
            let entry = pending
                .waiting
                .front_mut()
                .expect("prefill queued at least one prompt");
            while live.len() < self.config.max_batch {
                let wanted = columns.max(entry.prompt_len);
                if entry.samples.is_empty() || !fits(live.len() + 1, wanted) {
                    break;
                }
                let sample_idx = entry.samples.pop_front().expect("checked above");
                let mut seq = Live {
                    admitted: self.admissions.get(),
                    prompt_idx: entry.prompt_idx,
                    sample_idx,
                    prompt_len: entry.prompt_len,
                    response: Vec::new(),
                    logprobs: Vec::new(),
                    rng: sequence_rng(
                        params.seed,
                        params.first_prompt + entry.prompt_idx,
                        sample_idx,
                    ),
                    finish: None,
                };
                self.admissions.set(seq.admitted + 1);
                push_sample(&mut seq, &entry.logits, params)?;
                observer.on_token(seq.prompt_idx, sample_idx, seq.response[0]);
                if seq.finish.is_some() {
                    done.push(seq.into_rollout());
                } else {
                    columns = wanted;
                    new_rows.push((entry.cache.clone(), entry.row));
                    live.push(seq);
                }
            }
            if entry.samples.is_empty() {
                pending.waiting.pop_front();
            } else {
                // The batch is full or out of budget.
                break 'admit;
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

    /// Preempts the most recently admitted unfinished rows until the next decode step fits the budget
    /// (one row always stays); returns how many left. Their cache rows are dropped; they keep their
    /// tokens and random streams in `preempted` (latest admission first, so `pop` gives the oldest).
    fn preempt(
        &self,
        live: &mut Vec<Live>,
        cache: &mut KvCache<B>,
        preempted: &mut Vec<Live>,
    ) -> usize {
        let mut count = 0;
        while live.len() > 1 && !self.budget.fits(live.len(), cache.len() + 1) {
            let latest = (0..live.len())
                .max_by_key(|&r| live[r].admitted)
                .expect("at least two rows");
            let keep: Vec<usize> = (0..live.len()).filter(|&r| r != latest).collect();
            *cache = cache.select_rows(&keep).trim_left();
            let seq = live.remove(latest);
            let at = preempted.partition_point(|p| p.admitted > seq.admitted);
            preempted.insert(at, seq);
            count += 1;
        }
        count
    }

    /// The cache rows of `seqs` rebuilt by one left-padded prefill of each one's prompt and response
    /// so far (all but its last token, which the next decode step feeds).
    fn recompute(&self, prompts: &[Vec<u32>], seqs: &[Live]) -> Result<KvCache<B>> {
        let lengths: Vec<usize> = seqs.iter().map(Live::cached_len).collect();
        let width = *lengths.iter().max().expect("at least one sequence");
        let mut ids = Vec::with_capacity(seqs.len() * width);
        for (seq, len) in seqs.iter().zip(&lengths) {
            ids.extend(std::iter::repeat_n(0i64, width - len));
            ids.extend(prompts[seq.prompt_idx].iter().map(|&t| t as i64));
            let response = &seq.response[..seq.response.len() - 1];
            ids.extend(response.iter().map(|&t| t as i64));
        }
        let tokens =
            Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [seqs.len(), width]), &self.device);
        let layout = AttentionLayout::left_padded(&lengths, width)?;
        let mut cache = self.model.new_cache();
        self.model.forward_hidden(tokens, &layout, &mut cache)?;
        Ok(cache.trim_left())
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

mod budget;
#[cfg(test)]
mod tests;
