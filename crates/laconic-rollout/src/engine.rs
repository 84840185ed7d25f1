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
use crate::rollout::{Progress, Rollout};
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

    /// `n` rollouts for each prompt, ordered by `(prompt_idx, sample_idx)`. `progress` is called after
    /// every prefill and decode step.
    ///
    /// # Errors
    /// Invalid parameters, empty prompts or ids outside the vocabulary, non-finite logits.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        n: usize,
        params: &SamplingParams,
        progress: &mut dyn FnMut(&Progress),
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
                )?;
            }
            state.finished = done.len();
            state.live = live.iter().filter(|l| l.finish.is_none()).count();
            progress(&state);
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
                    state.tokens += 1;
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
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::activation::log_softmax;
    use laconic_model::Qwen3Config;

    fn tiny_model(vocab: usize) -> Qwen3<TestBackend> {
        let config = Qwen3Config::from_json_str(
            &format!(
                r#"{{"model_type": "qwen3", "vocab_size": {vocab}, "hidden_size": 32, "intermediate_size": 48,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
                "tie_word_embeddings": true}}"#
            ),
            "tiny",
        )
        .unwrap();
        // HF's 0.02 init makes near-uniform logits; a spread-out embedding gives a peaked distribution.
        let model = Qwen3::<TestBackend>::init(&config, &Default::default()).unwrap();
        let mut model = model;
        model.model.embed_tokens.weight = model.model.embed_tokens.weight.map(|w| w * 6.0);
        model
    }

    fn prompts() -> Vec<Vec<u32>> {
        vec![vec![3, 7, 1, 9, 4], vec![5], vec![2, 8, 6]]
    }

    #[test]
    fn rollouts_do_not_depend_on_batching() {
        let model = tiny_model(24);
        let params = SamplingParams {
            temperature: 0.9,
            top_k: 12,
            max_tokens: 9,
            stop_ids: vec![0, 1],
            seed: 3,
            ..Default::default()
        };
        let run = |config: EngineConfig| {
            Engine::new(&model, config)
                .unwrap()
                .generate(&prompts(), 5, &params, &mut |_| {})
                .unwrap()
        };
        let reference = run(EngineConfig::default());
        assert_eq!(reference.len(), 15);
        for config in [
            EngineConfig {
                max_batch: 2,
                prefill_batch: 1,
                ..Default::default()
            },
            EngineConfig {
                max_batch: 7,
                prefill_batch: 2,
                ..Default::default()
            },
            EngineConfig {
                share_prefix: false,
                ..Default::default()
            },
            EngineConfig::naive(4),
        ] {
            assert_same_rollouts(&run(config.clone()), &reference, &format!("{config:?}"));
        }
        // Different seeds give different rollouts.
        let other = Engine::new(&model, EngineConfig::default())
            .unwrap()
            .generate(
                &prompts(),
                5,
                &SamplingParams {
                    seed: 4,
                    ..params.clone()
                },
                &mut |_| {},
            )
            .unwrap();
        assert_ne!(other, reference);
    }

    /// Same ids and finish reasons; log-probs equal up to float rounding (matrix-product reductions
    /// depend on the batch shape, so bitwise equality of log-probs across batchings is not promised).
    fn assert_same_rollouts(a: &[Rollout], b: &[Rollout], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(
                (x.prompt_idx, x.sample_idx, &x.response_ids, x.finish),
                (y.prompt_idx, y.sample_idx, &y.response_ids, y.finish),
                "{what}"
            );
            for (p, q) in x.logprobs.iter().zip(&y.logprobs) {
                assert!(
                    (p - q).abs() <= 1e-4 * p.abs().max(1.0),
                    "{what}: logprob {p} vs {q}"
                );
            }
        }
    }

    #[test]
    fn finish_reasons_at_the_boundaries() {
        let model = tiny_model(24);
        let engine = Engine::new(&model, EngineConfig::default()).unwrap();
        // No stop ids: every rollout is cut at exactly max_tokens.
        let cut = engine
            .generate(&prompts(), 2, &SamplingParams::greedy(4), &mut |_| {})
            .unwrap();
        assert!(cut
            .iter()
            .all(|r| r.finish == Finish::Length && r.len() == 4));
        // The 4th greedy token of prompt 0 as the only stop id: it ends as Stop with exactly 4 tokens.
        let ids = &cut[0].response_ids;
        let stop = ids[3];
        if !ids[..3].contains(&stop) {
            let params = SamplingParams {
                stop_ids: vec![stop],
                ..SamplingParams::greedy(4)
            };
            let out = engine
                .generate(&prompts()[..1], 1, &params, &mut |_| {})
                .unwrap();
            assert_eq!(out[0].finish, Finish::Stop);
            assert_eq!(&out[0].response_ids, ids);
        }
        // A stop on the very first token.
        let params = SamplingParams {
            stop_ids: vec![ids[0]],
            ..SamplingParams::greedy(4)
        };
        let out = engine
            .generate(&prompts()[..1], 2, &params, &mut |_| {})
            .unwrap();
        assert!(out
            .iter()
            .all(|r| r.finish == Finish::Stop && r.response_ids == vec![ids[0]]));
    }

    #[test]
    fn logprobs_equal_a_fresh_forward_pass() {
        let model = tiny_model(24);
        let params = SamplingParams {
            temperature: 0.7,
            top_p: 0.9,
            max_tokens: 6,
            seed: 11,
            ..Default::default()
        };
        let engine = Engine::new(
            &model,
            EngineConfig {
                max_batch: 3,
                ..Default::default()
            },
        )
        .unwrap();
        let rollouts = engine
            .generate(&prompts(), 3, &params, &mut |_| {})
            .unwrap();
        let device = Default::default();
        for r in &rollouts {
            let prompt = &prompts()[r.prompt_idx];
            let ids: Vec<i64> = prompt
                .iter()
                .chain(&r.response_ids)
                .map(|&t| t as i64)
                .collect();
            let len = ids.len();
            let tokens =
                Tensor::<TestBackend, 2, Int>::from_data(TensorData::new(ids, [1, len]), &device);
            let layout = AttentionLayout::left_padded(&[len], len).unwrap();
            let logp = log_softmax(model.forward(tokens, &layout).unwrap() / 0.7, 2);
            let logp: Vec<f32> = logp.into_data().convert::<f32>().into_vec().unwrap();
            let vocab = 24;
            for (i, (&token, &got)) in r.response_ids.iter().zip(&r.logprobs).enumerate() {
                let position = prompt.len() + i - 1;
                let expected = logp[position * vocab + token as usize];
                assert!(
                    (got - expected).abs() < 1e-4,
                    "token {i}: {got} vs {expected}"
                );
            }
        }
    }

    /// Probabilities of the first token under temperature → top-k → top-p → min-p, computed directly.
    fn reference_distribution(
        logits: &[f32],
        t: f32,
        top_k: usize,
        top_p: f32,
        min_p: f32,
    ) -> Vec<f64> {
        let scaled: Vec<f64> = logits.iter().map(|&l| l as f64 / t as f64).collect();
        let mut order: Vec<usize> = (0..scaled.len()).collect();
        order.sort_by(|&a, &b| scaled[b].partial_cmp(&scaled[a]).unwrap());
        let k = if top_k == 0 { order.len() } else { top_k };
        let mut kept: Vec<usize> = order[..k].to_vec();
        let weight = |i: usize| (scaled[i] - scaled[order[0]]).exp();
        let z: f64 = kept.iter().map(|&i| weight(i)).sum();
        let mut mass = 0.0;
        let mut n = kept.len();
        for (j, &i) in kept.iter().enumerate() {
            mass += weight(i) / z;
            if mass >= top_p as f64 {
                n = j + 1;
                break;
            }
        }
        kept.truncate(n);
        kept.retain(|&i| weight(i) >= min_p as f64 * weight(kept_first(&order)));
        let z: f64 = kept.iter().map(|&i| weight(i)).sum();
        let mut p = vec![0.0; scaled.len()];
        for i in kept {
            p[i] = weight(i) / z;
        }
        p
    }

    fn kept_first(order: &[usize]) -> usize {
        order[0]
    }

    #[test]
    fn sampled_frequencies_match_the_truncated_softmax() {
        let model = tiny_model(16);
        let prompt = vec![vec![3u32, 5, 7]];
        let device = Default::default();
        let tokens = Tensor::<TestBackend, 2, Int>::from_ints([[3, 5, 7]], &device);
        let layout = AttentionLayout::left_padded(&[3], 3).unwrap();
        let logits: Vec<f32> = model
            .forward(tokens, &layout)
            .unwrap()
            .into_data()
            .convert::<f32>()
            .into_vec()
            .unwrap();
        let last = &logits[2 * 16..3 * 16];
        let engine = Engine::new(
            &model,
            EngineConfig {
                max_batch: 4096,
                ..Default::default()
            },
        )
        .unwrap();
        let n = 4000;
        for (t, top_k, top_p, min_p) in [
            (1.0, 0, 1.0, 0.0),
            (0.7, 5, 1.0, 0.0),
            (1.3, 0, 0.8, 0.0),
            (1.0, 8, 0.9, 0.1),
        ] {
            let params = SamplingParams {
                temperature: t,
                top_k,
                top_p,
                min_p,
                max_tokens: 1,
                seed: 99,
                ..Default::default()
            };
            let out = engine.generate(&prompt, n, &params, &mut |_| {}).unwrap();
            let mut counts = vec![0usize; 16];
            for r in &out {
                counts[r.response_ids[0] as usize] += 1;
            }
            let p = reference_distribution(last, t, top_k, top_p, min_p);
            // Pearson chi-square over tokens with nonzero expected probability; none outside the support.
            let mut chi2 = 0.0;
            let mut dof = 0;
            for (token, &c) in counts.iter().enumerate() {
                if p[token] == 0.0 {
                    assert_eq!(c, 0, "token {token} sampled outside the truncated support ({t}, {top_k}, {top_p}, {min_p})");
                    continue;
                }
                let expected = p[token] * n as f64;
                chi2 += (c as f64 - expected).powi(2) / expected;
                dof += 1;
            }
            let dof = (dof - 1).max(1) as f64;
            // Mean + 6 standard deviations of the chi-square distribution (a fixed seed makes this exact).
            let bound = dof + 6.0 * (2.0 * dof).sqrt();
            assert!(
                chi2 < bound,
                "chi2 {chi2:.1} ≥ {bound:.1} for ({t}, {top_k}, {top_p}, {min_p})"
            );
        }
    }

    #[test]
    fn rejects_bad_prompts() {
        let model = tiny_model(24);
        let engine = Engine::new(&model, EngineConfig::default()).unwrap();
        let err = engine
            .generate(
                &[vec![1], vec![]],
                1,
                &SamplingParams::greedy(2),
                &mut |_| {},
            )
            .unwrap_err();
        assert!(err.to_string().contains("prompt 1"), "{err}");
        let err = engine
            .generate(&[vec![99]], 1, &SamplingParams::greedy(2), &mut |_| {})
            .unwrap_err();
        assert!(err.to_string().contains("`99`"), "{err}");
        assert!(Engine::new(
            &model,
            EngineConfig {
                max_batch: 0,
                ..Default::default()
            }
        )
        .is_err());
    }
}
