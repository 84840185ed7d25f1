//! `PolicyUpdater`: one rollout batch → `ppo_epochs × mini-batches` AdamW updates of the policy.
//!
//! For each mini-batch: its global counts fix the aggregation weights; each micro-batch of
//! `ppo_micro_batch_size` sequences is packed, run through the decoder, scored through the
//! memory-bounded LM head ([`crate::head`]), turned into its partial loss ([`crate::objective`]) and
//! back-propagated; the gradients are summed (burn's `GradientsAccumulator`), clipped to a global norm
//! ([`crate::clip`]) and applied by AdamW ([`crate::adamw`]) at the scheduled learning rate. A
//! non-finite loss or gradient norm stops the step with [`Error::NonFinite`] before any parameter of
//! that mini-batch changes. Saving and restoring the updater's state: [`state`].

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use laconic_model::seed::GOLDEN_GAMMA;
use laconic_model::CausalLm;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::adamw::{all_finite, AdamW};
use crate::agg::AggCounts;
use crate::batch::{UpdateBatch, UpdateSequence};
use crate::clip::clip_grad_norm;
use crate::collective::{
    all_gather_groups, all_reduce_counts, all_reduce_gradients, all_reduce_sums, Collective,
    SingleWorker,
};
use crate::config::OptimConfig;
use crate::error::{Error, Result};
use crate::head::{head_logprobs_grad, HeadOptions, LogprobBackend};
use crate::logprob::{check_head, head_weight, response_hidden_with_aux, PackedSequences};
use crate::objective::{objective, ObjectiveSums, TokenBatch};
use crate::zero::{sharded_step, ShardedStep, ZeroStage};

pub(crate) mod state;
pub use state::OptimizerState;

/// Metrics of one `step` (means over its optimizer updates), with verl's keys via [`UpdateMetrics::to_map`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateMetrics {
    /// `actor/pg_loss`: the aggregated surrogate loss.
    pub pg_loss: f64,
    /// `actor/pg_clipfrac`: fraction of tokens whose clipped branch is active.
    pub pg_clipfrac: f64,
    /// `actor/pg_clipfrac_lower`: fraction of tokens held by the dual clip.
    pub pg_clipfrac_lower: f64,
    /// `actor/ppo_kl`: token mean of `log π_old − log π_θ`.
    pub ppo_kl: f64,
    /// `actor/kl_loss`: the aggregated KL to the reference, when reference log-probs were given.
    pub kl_loss: Option<f64>,
    /// `actor/router_aux_loss`: the router load-balancing loss, for MoE policies.
    pub router_aux_loss: Option<f64>,
    /// `actor/entropy`: token mean of the policy entropy.
    pub entropy: f64,
    /// `actor/grad_norm`: global gradient norm before clipping.
    pub grad_norm: f64,
    /// `actor/lr`: learning rate of the last update.
    pub lr: f64,
    /// `actor/loss`: the total loss that was back-propagated.
    pub loss: f64,
    /// `actor/num_updates`: optimizer updates applied.
    pub num_updates: usize,
    /// `actor/skipped_mini_batches`: mini-batches with no trainable token (all masked), not applied.
    pub skipped_mini_batches: usize,
    /// `actor/num_tokens`: response tokens trained on, summed over updates.
    pub num_tokens: usize,
}

impl UpdateMetrics {
    /// The metrics under their namespaced keys.
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        let mut map = BTreeMap::new();
        let mut put = |key: &str, value: f64| {
            map.insert(key.to_string(), value);
        };
        put("actor/pg_loss", self.pg_loss);
        put("actor/pg_clipfrac", self.pg_clipfrac);
        put("actor/pg_clipfrac_lower", self.pg_clipfrac_lower);
        put("actor/ppo_kl", self.ppo_kl);
        if let Some(kl) = self.kl_loss {
            put("actor/kl_loss", kl);
        }
        if let Some(aux) = self.router_aux_loss {
            put("actor/router_aux_loss", aux);
        }
        put("actor/entropy", self.entropy);
        put("actor/grad_norm", self.grad_norm);
        put("actor/lr", self.lr);
        put("actor/loss", self.loss);
        put("actor/num_updates", self.num_updates as f64);
        put(
            "actor/skipped_mini_batches",
            self.skipped_mini_batches as f64,
        );
        put("actor/num_tokens", self.num_tokens as f64);
        map
    }

    fn record(&mut self, sums: &ObjectiveSums, grad_norm: f64, lr: f64) {
        let tokens = sums.tokens.max(1.0);
        self.pg_loss += sums.pg_loss;
        self.pg_clipfrac += sums.clipped / tokens;
        self.pg_clipfrac_lower += sums.clipped_lower / tokens;
        self.ppo_kl += sums.ppo_kl_sum / tokens;
        self.kl_loss = sums.kl_loss.map(|kl| self.kl_loss.unwrap_or(0.0) + kl);
        self.router_aux_loss = sums
            .router_aux
            .map(|aux| self.router_aux_loss.unwrap_or(0.0) + aux);
        self.entropy += sums.entropy_sum / tokens;
        self.grad_norm += grad_norm;
        self.loss += sums.loss;
        self.lr = lr;
        self.num_updates += 1;
        self.num_tokens += sums.tokens as usize;
    }

    fn finish(mut self) -> Self {
        let n = self.num_updates.max(1) as f64;
        for value in [
            &mut self.pg_loss,
            &mut self.pg_clipfrac,
            &mut self.pg_clipfrac_lower,
            &mut self.ppo_kl,
            &mut self.entropy,
            &mut self.grad_norm,
            &mut self.loss,
        ] {
            *value /= n;
        }
        self.kl_loss = self.kl_loss.map(|kl| kl / n);
        self.router_aux_loss = self.router_aux_loss.map(|aux| aux / n);
        self
    }
}

/// Turns scored rollouts into parameter updates of a [`CausalLm`] policy on an autodiff backend.
#[derive(Debug)]
pub struct PolicyUpdater<B: LogprobBackend> {
    config: OptimConfig,
    optimizer: AdamW<B::InnerBackend>,
    /// Optimizer updates applied so far (the schedule's position).
    updates: u64,
    /// Rollout batches consumed so far (seeds the shuffle of each batch).
    batches: u64,
}

impl<B: LogprobBackend> PolicyUpdater<B> {
    /// Values held by the optimizer state (AdamW's two moments of every trained parameter; none for a
    /// frozen one; this worker's shard of them under ZeRO).
    pub fn optimizer_state_numel(&self) -> usize {
        self.optimizer.state_numel()
    }

    /// Bytes held by this worker's optimizer state (the metric `memory/optimizer_state_bytes`).
    pub fn optimizer_state_bytes(&self) -> usize {
        self.optimizer.state_bytes()
    }

    /// An updater with fresh optimizer state.
    ///
    /// # Errors
    /// When the config is invalid or the model's LM head has a bias.
    pub fn new(config: OptimConfig, model: &CausalLm<B>) -> Result<Self> {
        config.validate()?;
        check_head(model)?;
        Ok(Self {
            optimizer: AdamW::new(config.adamw()),
            config,
            updates: 0,
            batches: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimConfig {
        &self.config
    }

    /// Optimizer updates applied so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// The learning rate the next update will use.
    pub fn next_lr(&self) -> f64 {
        self.config.schedule().lr_at(self.updates)
    }

    /// Updates `model` on one rollout batch: `ppo_epochs` passes over mini-batches of
    /// `ppo_mini_batch_size` groups, one AdamW update each. `ref_logprobs` (one vector per sequence,
    /// see [`crate::logprob::compute_logprobs`]) is required when `kl_loss_coef > 0` and reported as
    /// `actor/kl_loss` whenever given.
    ///
    /// # Errors
    /// An invalid batch; missing reference log-probs; a non-finite loss, gradient norm, updated
    /// parameter ([`Error::NonFinite`]: the model is dropped, resume from the last
    /// checkpoint).
    pub fn step(
        &mut self,
        model: CausalLm<B>,
        batch: &UpdateBatch,
        ref_logprobs: Option<&[Vec<f32>]>,
    ) -> Result<(CausalLm<B>, UpdateMetrics)> {
        self.step_with(model, batch, ref_logprobs, &SingleWorker)
    }

    /// [`PolicyUpdater::step`] as one worker of a data-parallel run. `batch` is this worker's shard
    /// of the whole batch: whole groups, with ids that number the whole batch's groups in order
    /// (any subset of them on each worker, in ascending id). The workers agree on the group order and on each
    /// mini-batch's global counts, sum their gradients through `collective`, and apply the same
    /// AdamW step, so every worker ends with the model (and metrics) one process would compute on
    /// the whole batch, up to float rounding. Every worker must call this with the same config and
    /// model; a shard may be empty.
    ///
    /// # Errors
    /// As [`PolicyUpdater::step`], on every worker alike; the collective's failures.
    pub fn step_with(
        &mut self,
        mut model: CausalLm<B>,
        batch: &UpdateBatch,
        ref_logprobs: Option<&[Vec<f32>]>,
        collective: &dyn Collective<B::InnerBackend>,
    ) -> Result<(CausalLm<B>, UpdateMetrics)> {
        batch.validate(ref_logprobs, model.config().vocab_size)?;
        if self.config.kl_loss_coef > 0.0 && ref_logprobs.is_none() {
            return Err(Error::Input(
                "`kl_loss_coef` > 0 needs reference log-probs for every sequence".into(),
            ));
        }
        let device = head_weight(&model).device();
        let groups = all_gather_groups(collective, &batch.group_order(), &device)?;
        let mut metrics = UpdateMetrics::default();
        let mut rng =
            StdRng::seed_from_u64(self.config.seed ^ self.batches.wrapping_mul(GOLDEN_GAMMA));
        for _epoch in 0..self.config.ppo_epochs {
            let shuffle = self.config.shuffle.then_some(&mut rng);
            let mini_batches =
                batch.mini_batches_over(groups.clone(), self.config.ppo_mini_batch_size, shuffle);
            for mini_batch in mini_batches {
                let trainable: Vec<&UpdateSequence> = mini_batch
                    .iter()
                    .map(|&i| &batch.sequences[i])
                    .filter(|s| s.is_trainable())
                    .collect();
                let refs: Option<Vec<&[f32]>> = ref_logprobs.map(|r| {
                    mini_batch
                        .iter()
                        .filter(|&&i| batch.sequences[i].is_trainable())
                        .map(|&i| r[i].as_slice())
                        .collect()
                });
                let lengths: Vec<usize> = trainable.iter().map(|s| s.response_ids.len()).collect();
                let counts = all_reduce_counts(
                    collective,
                    &lengths,
                    self.config.loss_scale_factor.map(f64::from),
                    &device,
                )?;
                if counts.is_empty() {
                    metrics.skipped_mini_batches += 1;
                    continue;
                }
                let (grads, sums) =
                    self.accumulate(&model, &trainable, refs.as_deref(), &counts)?;
                let sums = all_reduce_sums(collective, &sums, &device)?;
                self.check_loss(&sums)?;
                let lr = self.next_lr();
                let (updated, grad_norm) = self.apply(model, grads, lr, collective, &device)?;
                model = updated;
                // A finite gradient can still overflow the update (a huge learning rate, a decay
                // factor far from 1): such a model is never handed back, so it is never saved. The
                // moments need no check: with every g² finite (the norm is), β·m + (1 − β)·g and
                // β·v + (1 − β)·g² stay within max(|m|, |g|) and max(v, g²).
                if !parameters_finite(&model) {
                    return Err(Error::NonFinite {
                        what: "the updated parameters",
                        value: f64::NAN,
                        step: self.updates,
                    });
                }
                self.updates += 1;
                metrics.record(&sums, grad_norm, lr);
            }
        }
        self.batches += 1;
        Ok((model, metrics.finish()))
    }

    /// Sums `grads` over the workers, clips them and applies AdamW at `lr`: the whole model on
    /// every worker, or each worker its shard under ZeRO ([`crate::zero`]). Returns the updated
    /// model and the gradient norm before clipping.
    ///
    /// # Errors
    /// [`Error::NonFinite`] for a non-finite gradient norm; the collective's.
    fn apply(
        &mut self,
        model: CausalLm<B>,
        mut grads: GradientsParams,
        lr: f64,
        collective: &dyn Collective<B::InnerBackend>,
        device: &B::Device,
    ) -> Result<(CausalLm<B>, f64)> {
        if self.is_sharded(collective) {
            let step = ShardedStep {
                stage: self.config.zero(),
                collective,
                bucket_elems: self.config.allreduce_bucket_elems(),
                max_norm: self.config.grad_clip,
                lr,
                step: self.updates,
            };
            return sharded_step(model, grads, &mut self.optimizer, &step);
        }
        all_reduce_gradients::<B, _>(
            &model,
            &mut grads,
            collective,
            self.config.allreduce_bucket_elems(),
            device,
        )?;
        let grad_norm = clip_grad_norm(&model, &mut grads, self.config.grad_clip);
        if !grad_norm.is_finite() {
            return Err(Error::NonFinite {
                what: "grad_norm",
                value: grad_norm,
                step: self.updates,
            });
        }
        Ok((self.optimizer.step(model, grads, lr), grad_norm))
    }

    /// Whether the optimizer state is sharded over the workers of `collective` (ZeRO stage ≥ 1
    /// with more than one worker).
    fn is_sharded(&self, collective: &dyn Collective<B::InnerBackend>) -> bool {
        self.config.zero() != ZeroStage::Replicated && collective.world_size() > 1
    }

    /// The summed gradients of the objective over `sequences` (all trainable), processed
    /// `ppo_micro_batch_size` at a time, with aggregation weights from the mini-batch's `counts`.
    /// The result does not depend on the micro-batch size (up to float rounding).
    ///
    /// # Errors
    /// When the model rejects the input or a partial loss is not finite.
    pub fn accumulate_gradients(
        &self,
        model: &CausalLm<B>,
        sequences: &[&UpdateSequence],
        ref_logprobs: Option<&[&[f32]]>,
        counts: &AggCounts,
    ) -> Result<(GradientsParams, ObjectiveSums)> {
        let (grads, sums) = self.accumulate(model, sequences, ref_logprobs, counts)?;
        self.check_loss(&sums)?;
        Ok((grads, sums))
    }

    /// [`NonFinite`](Error::NonFinite) unless the loss of `sums` is finite.
    fn check_loss(&self, sums: &ObjectiveSums) -> Result<()> {
        if sums.loss.is_finite() {
            Ok(())
        } else {
            Err(Error::NonFinite {
                what: "loss",
                value: sums.loss,
                step: self.updates,
            })
        }
    }

    /// [`PolicyUpdater::accumulate_gradients`] without the loss check: a micro-batch with a
    /// non-finite loss ends the accumulation (no backward) and leaves its loss in the sums, so a
    /// data-parallel worker still takes part in the reductions and every worker refuses the update.
    /// `counts` are the mini-batch's global counts; the router's share of each micro-batch is its
    /// sequences over `counts.num_seqs`.
    fn accumulate(
        &self,
        model: &CausalLm<B>,
        sequences: &[&UpdateSequence],
        ref_logprobs: Option<&[&[f32]]>,
        counts: &AggCounts,
    ) -> Result<(GradientsParams, ObjectiveSums)> {
        let config = &self.config;
        let settings = config.loss_settings();
        let weight = head_weight(model);
        let device = weight.device();
        let mut accumulator = GradientsAccumulator::<CausalLm<B>>::new();
        let mut total = ObjectiveSums::default();
        let micro = config.ppo_micro_batch_size;
        let head_options = HeadOptions {
            temperature: config.temperature,
            chunk_size: config.logprob_chunk_size,
            entropy_grad: config.entropy_coeff != 0.0,
            keep_logits_bytes: config.logprob_keep_logits_mib.saturating_mul(1 << 20),
        };
        for (chunk_index, chunk) in sequences.chunks(micro).enumerate() {
            let pairs: Vec<(&[u32], &[u32])> = chunk
                .iter()
                .map(|s| (s.prompt_ids.as_slice(), s.response_ids.as_slice()))
                .collect();
            let packed = PackedSequences::new(&pairs)?;
            let tokens = token_batch(
                chunk,
                ref_logprobs.map(|r| &r[chunk_index * micro..chunk_index * micro + chunk.len()]),
                counts,
                config,
            );
            // Decoder → response rows [n_tok, d] → head op → per-token log-probs and entropies.
            let (hidden, aux) =
                response_hidden_with_aux(model, &packed, config.activation_checkpointing, &device)?;
            let (logp, entropy) = head_logprobs_grad(
                hidden,
                weight.clone(),
                packed.targets_tensor(&device),
                head_options,
            );
            let (mut loss, mut sums) = objective(logp, entropy, &tokens, &settings);
            if let Some(aux) = aux {
                let share = chunk.len() as f64 / counts.num_seqs.max(1) as f64;
                let aux_loss = aux.load_balancing_loss();
                let value: f64 =
                    burn::tensor::ElementConversion::elem(aux_loss.clone().into_scalar());
                sums.router_aux = Some(share * value);
                let coef = f64::from(config.router_aux_loss_coef);
                if coef != 0.0 {
                    loss = loss + aux_loss.mul_scalar(coef * share);
                    sums.loss += coef * share * value;
                }
            }
            total.add(&sums);
            if !sums.loss.is_finite() {
                break;
            }
            let grads = GradientsParams::from_grads(loss.backward(), model);
            accumulator.accumulate(model, grads);
        }
        Ok((accumulator.grads(), total))
    }
}

/// Host-side token data of one micro-batch, weights normalised by the mini-batch's counts.
fn token_batch(
    chunk: &[&UpdateSequence],
    ref_logprobs: Option<&[&[f32]]>,
    counts: &AggCounts,
    config: &OptimConfig,
) -> TokenBatch {
    let lengths: Vec<usize> = chunk.iter().map(|s| s.response_ids.len()).collect();
    TokenBatch {
        old_logprobs: chunk
            .iter()
            .flat_map(|s| s.old_logprobs.iter().copied())
            .collect(),
        advantages: chunk
            .iter()
            .flat_map(|s| std::iter::repeat_n(s.advantage, s.response_ids.len()))
            .collect(),
        ref_logprobs: ref_logprobs.map(|r| r.iter().flat_map(|v| v.iter().copied()).collect()),
        weights: config.loss_agg_mode.token_weights(&lengths, counts),
        lengths,
    }
}

/// Whether every parameter of `model` is finite (on the inner backend: nothing is recorded).
fn parameters_finite<B: AutodiffBackend>(model: &CausalLm<B>) -> bool {
    struct Collect<B: AutodiffBackend>(Vec<Tensor<B::InnerBackend, 1>>);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let inner = param.val().inner();
            let n = inner.shape().num_elements();
            self.0.push(inner.reshape([n]));
        }
    }
    let mut collect = Collect::<B>(Vec::new());
    model.visit(&mut collect);
    all_finite(collect.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_means_over_updates_under_verl_keys() {
        let mut metrics = UpdateMetrics::default();
        let sums = ObjectiveSums {
            pg_loss: 0.5,
            clipped: 1.0,
            tokens: 4.0,
            entropy_sum: 8.0,
            ..ObjectiveSums::default()
        };
        metrics.record(&sums, 2.0, 1e-6);
        metrics.record(
            &ObjectiveSums {
                tokens: 4.0,
                ..sums
            },
            4.0,
            2e-6,
        );
        let map = metrics.finish().to_map();
        assert_eq!(map["actor/pg_loss"], 0.5);
        assert_eq!(map["actor/pg_clipfrac"], 0.25);
        assert_eq!(map["actor/entropy"], 2.0);
        assert_eq!(map["actor/grad_norm"], 3.0);
        assert_eq!(map["actor/lr"], 2e-6);
        assert_eq!(map["actor/num_updates"], 2.0);
        assert!(!map.contains_key("actor/kl_loss"));
    }
}
