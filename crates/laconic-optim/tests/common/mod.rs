//! Shared helpers of the integration tests: a tiny Qwen3, a scored batch, gradient flattening and the
//! micro-batch spread of the gradient.
#![allow(dead_code)]

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use laconic_model::{named_tensors, CausalLm, DecoderConfig};
use laconic_optim::agg::AggCounts;
use laconic_optim::{
    compute_logprobs, KlLossType, LogprobBackend, LossAggMode, OptimConfig, PolicyLoss,
    PolicyUpdater, UpdateBatch, UpdateSequence,
};

/// A 2-layer Qwen3 (vocab 40, hidden 16, GQA 2/1 heads) with its parameters materialised.
pub fn tiny_on<A: LogprobBackend>(tied: bool) -> CausalLm<A> {
    let config = DecoderConfig::from_json_str(
        &format!(
            r#"{{"model_type": "qwen3", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
            "tie_word_embeddings": {tied}}}"#
        ),
        "<tiny>",
    )
    .unwrap();
    let model = CausalLm::init_seeded(&config, 7, &Default::default()).unwrap();
    // Materialise the lazily initialised parameters so that clones share their values.
    named_tensors(&model);
    model
}

/// `(prompt, response, advantage, masked, group)` of one test rollout.
type Spec = (&'static [u32], &'static [u32], f32, bool, usize);

/// A batch of 8 rollouts in 3 groups (one masked), lengths 1..6, old log-probs off-policy by a
/// deterministic perturbation so the ratios are not 1.
pub fn batch<A: LogprobBackend>(model: &CausalLm<A>) -> (UpdateBatch, Vec<Vec<f32>>) {
    // (prompt, response, advantage, masked, group)
    let specs: [Spec; 8] = [
        (&[1, 2, 3], &[4, 5, 6, 7], 1.2, false, 0),
        (&[1, 2, 3], &[8], -0.4, false, 0),
        (&[1, 2, 3], &[9, 10, 11], -0.8, true, 0),
        (&[12, 13], &[14, 15, 16, 17, 18, 19], 0.7, false, 1),
        (&[12, 13], &[20, 21], -0.7, false, 1),
        (&[22], &[23, 24, 25], 0.3, false, 2),
        (&[22], &[26, 27, 28, 29, 30], -1.1, false, 2),
        (&[22], &[31, 32], 0.8, false, 2),
    ];
    let pairs: Vec<(&[u32], &[u32])> = specs.iter().map(|s| (s.0, s.1)).collect();
    let current = compute_logprobs(&model.valid(), &pairs, &Default::default()).unwrap();
    let sequences = specs
        .iter()
        .zip(&current)
        .enumerate()
        .map(|(i, (s, lp))| UpdateSequence {
            prompt_ids: s.0.to_vec(),
            response_ids: s.1.to_vec(),
            old_logprobs: lp
                .logprobs
                .iter()
                .enumerate()
                .map(|(k, v)| v + 0.3 * (((i + k) % 5) as f32 - 2.0))
                .collect(),
            advantage: s.2,
            masked: s.3,
            group: s.4,
        })
        .collect();
    let reference = current
        .iter()
        .enumerate()
        .map(|(i, lp)| {
            lp.logprobs
                .iter()
                .map(|v| v - 0.1 * (i % 3) as f32)
                .collect()
        })
        .collect();
    (UpdateBatch { sequences }, reference)
}

/// Every parameter's gradient, flattened in visiting order, as f64.
pub fn flat_grads<A: LogprobBackend>(model: &CausalLm<A>, grads: &GradientsParams) -> Vec<f64> {
    struct Collect<'a, A> {
        grads: &'a GradientsParams,
        out: Vec<f64>,
        backend: std::marker::PhantomData<A>,
    }
    impl<A: LogprobBackend> ModuleVisitor<A> for Collect<'_, A> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
            let grad = self
                .grads
                .get::<A::InnerBackend, D>(param.id)
                .expect("every parameter has a gradient");
            self.out
                .extend(grad.into_data().convert::<f64>().into_vec::<f64>().unwrap());
        }
    }
    let mut visitor = Collect {
        grads,
        out: Vec::new(),
        backend: std::marker::PhantomData,
    };
    model.visit(&mut visitor);
    visitor.out
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Max |Δgrad| between micro-batch sizes 1 and 2/4/7 over every `loss_agg_mode`, vanilla and GSPO
/// (with dual clip, k3 KL and an entropy bonus on), and the largest |grad|.
pub fn micro_batch_spread<A: LogprobBackend>(tied: bool) -> (f64, f64) {
    let model = tiny_on::<A>(tied);
    let (batch, reference) = batch(&model);
    let trainable: Vec<usize> = (0..8)
        .filter(|&i| batch.sequences[i].is_trainable())
        .collect();
    let seqs: Vec<&UpdateSequence> = trainable.iter().map(|&i| &batch.sequences[i]).collect();
    let refs: Vec<&[f32]> = trainable.iter().map(|&i| reference[i].as_slice()).collect();
    let lengths: Vec<usize> = seqs.iter().map(|s| s.response_ids.len()).collect();
    let counts = AggCounts::from_lengths(&lengths, None);
    let (mut worst, mut scale) = (0.0f64, 0.0f64);
    for mode in LossAggMode::ALL {
        for policy_loss in [PolicyLoss::Vanilla, PolicyLoss::Gspo] {
            let mut grads = Vec::new();
            for micro in [1, 2, 4, 7] {
                let config = OptimConfig {
                    loss_agg_mode: mode,
                    policy_loss,
                    ppo_micro_batch_size: micro,
                    clip_ratio_c: Some(3.0),
                    kl_loss_coef: 0.1,
                    kl_loss_type: KlLossType::K3,
                    entropy_coeff: 0.01,
                    logprob_chunk_size: 5,
                    ..OptimConfig::default()
                };
                let updater = PolicyUpdater::new(config, &model).unwrap();
                let (g, sums) = updater
                    .accumulate_gradients(&model, &seqs, Some(&refs), &counts)
                    .unwrap();
                assert!(sums.loss.is_finite());
                grads.push(flat_grads(&model, &g));
            }
            scale = grads[0].iter().fold(scale, |m, g| m.max(g.abs()));
            for other in &grads[1..] {
                worst = grads[0]
                    .iter()
                    .zip(other)
                    .fold(worst, |m, (a, b)| m.max((a - b).abs()));
            }
        }
    }
    (worst, scale)
}
