//! `PolicyUpdater` on tiny Qwen3 models: micro-batch invariance of the gradient, learning a rewarded
//! sequence, checkpoint/resume, and refusals (non-finite loss, missing reference log-probs).

mod common;

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::prelude::*;
use common::{batch, max_abs_diff, micro_batch_spread, tiny_on};
use laconic_model::{
    load_model, named_tensors, save_pretrained, ActivationCheckpointing, CausalLm,
};
use laconic_optim::{
    compute_logprobs, Error, OptimConfig, PolicyUpdater, UpdateBatch, UpdateSequence,
};

type AD = Autodiff<NdArray>;

fn tiny(tied: bool) -> CausalLm<AD> {
    tiny_on::<AD>(tied)
}

/// In f32 the micro-batch split changes only the summation order: the gradients agree to f32
/// accumulation noise (the exact check is in f64, `tests/micro_batch.rs`).
#[test]
fn f32_gradient_agrees_across_micro_batch_sizes_to_rounding() {
    for tied in [true, false] {
        let (worst, scale) = micro_batch_spread::<AD>(tied);
        println!("f32, tied={tied}: micro-batch 1 vs 2/4/7: max |Δgrad| = {worst:.3e} (max |grad| {scale:.3e})");
        assert!(worst <= 1e-4 * scale, "{worst}");
    }
}

/// Sum of the response's log-probs under `model`.
fn sequence_logprob(model: &CausalLm<AD>, prompt: &[u32], response: &[u32]) -> f32 {
    compute_logprobs(&model.valid(), &[(prompt, response)], &Default::default()).unwrap()[0]
        .logprobs
        .iter()
        .sum()
}

#[test]
fn a_positive_advantage_raises_the_sequence_log_probability_every_update() {
    let mut model = tiny(true);
    let (prompt, response) = (vec![3u32, 7, 11], vec![5u32, 9, 2, 30]);
    let config = OptimConfig {
        lr: 1e-3,
        ..OptimConfig::default()
    };
    let mut updater = PolicyUpdater::new(config, &model).unwrap();
    let mut previous = sequence_logprob(&model, &prompt, &response);
    let start = previous;
    for _ in 0..6 {
        // On-policy: old log-probs are the current policy's.
        let old =
            compute_logprobs(&model.valid(), &[(&prompt, &response)], &Default::default()).unwrap();
        let batch = UpdateBatch {
            sequences: vec![UpdateSequence {
                prompt_ids: prompt.clone(),
                response_ids: response.clone(),
                old_logprobs: old[0].logprobs.clone(),
                advantage: 1.0,
                masked: false,
                group: 0,
            }],
        };
        let (next, metrics) = updater.step(model, &batch, None).unwrap();
        model = next;
        // On-policy, one update: the ratio is exactly 1 and nothing is clipped.
        assert!(
            metrics.ppo_kl.abs() < 1e-6 && metrics.pg_clipfrac == 0.0,
            "{metrics:?}"
        );
        let now = sequence_logprob(&model, &prompt, &response);
        assert!(now > previous, "log-prob fell from {previous} to {now}");
        previous = now;
    }
    println!("log π(response) rose from {start:.4} to {previous:.4} over 6 updates");
}

/// Layer recompute changes what the forward keeps, not what the update computes: the same metrics and,
/// after the step's updates, the same parameters (to f32 rounding of the gradient sums).
#[test]
fn layer_recompute_leaves_the_update_unchanged() {
    let model = tiny(false);
    let (batch, _) = batch(&model);
    let run = |checkpointing| {
        let config = OptimConfig {
            lr: 1e-3,
            ppo_mini_batch_size: Some(2),
            ppo_micro_batch_size: 2,
            activation_checkpointing: checkpointing,
            ..OptimConfig::default()
        };
        let mut updater = PolicyUpdater::new(config, &model).unwrap();
        let (updated, metrics) = updater.step(model.clone(), &batch, None).unwrap();
        (params(&updated), metrics.to_map())
    };
    let (plain, plain_metrics) = run(ActivationCheckpointing::None);
    let (recomputed, recomputed_metrics) = run(ActivationCheckpointing::Layer);
    for (key, a) in &plain_metrics {
        let b = recomputed_metrics[key];
        assert!(
            (a - b).abs() <= 1e-6 * a.abs().max(1e-12),
            "{key}: {a} without recompute, {b} with"
        );
    }
    let diff = max_abs_diff(&plain, &recomputed);
    let scale = plain.iter().fold(0f32, |m, v| m.max(v.abs()));
    println!("layer recompute: max |Δθ| after the step = {diff:.3e} (max |θ| {scale:.3e})");
    assert!(diff <= 1e-6 * scale, "{diff}");
}

/// A finite loss and gradient whose update overflows the parameters (a learning rate of 1e38: the
/// first step size is lr / (1 − β1) = 1e39, past f32) is refused: the model never comes back, so it
/// can never be checkpointed.
#[test]
fn an_update_that_overflows_the_parameters_is_refused() {
    let model = tiny(false);
    let (batch, _) = batch(&model);
    let config = OptimConfig {
        lr: 1e38,
        ..OptimConfig::default()
    };
    let mut updater = PolicyUpdater::new(config, &model).unwrap();
    let err = updater.step(model, &batch, None).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NonFinite {
                what: "the updated parameters",
                step: 0,
                ..
            }
        ),
        "{err}"
    );
}

fn params(model: &CausalLm<AD>) -> Vec<f32> {
    named_tensors(model)
        .into_iter()
        .flat_map(|(_, _, v)| v)
        .collect()
}

#[test]
fn resumed_updates_equal_uninterrupted_ones() {
    let dir = std::env::temp_dir().join(format!("laconic-optim-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = tiny(false);
    let (batch, _) = batch(&model);
    let config = OptimConfig {
        lr: 1e-3,
        ppo_mini_batch_size: Some(1),
        ppo_epochs: 2,
        shuffle: true,
        warmup_steps: 3,
        ..OptimConfig::default()
    };
    // Uninterrupted: two rollout batches (2 epochs × 3 groups = 6 updates each).
    let mut updater = PolicyUpdater::new(config.clone(), &model).unwrap();
    let (model, _) = updater.step(model, &batch, None).unwrap();
    assert_eq!(updater.updates(), 6);
    let state = dir.join("optim.safetensors");
    updater.save_state(&state).unwrap();
    save_pretrained(&model, dir.join("model")).unwrap();
    let (straight, _) = updater.step(model, &batch, None).unwrap();

    // Resumed: a fresh process loads the model (new parameter ids) and the optimizer state.
    let reloaded: CausalLm<AD> = load_model(dir.join("model"), &Default::default()).unwrap();
    let mut resumed_updater = PolicyUpdater::new(config, &reloaded).unwrap();
    resumed_updater.load_state(&state, &reloaded).unwrap();
    assert_eq!(resumed_updater.updates(), 6);
    let (resumed, _) = resumed_updater.step(reloaded, &batch, None).unwrap();
    let diff = max_abs_diff(&params(&straight), &params(&resumed));
    println!("resume: max |Δθ| after 6 more updates = {diff:.3e}");
    assert_eq!(diff, 0.0);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary state files left behind: {leftovers:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn state_from_another_model_is_rejected() {
    let dir = std::env::temp_dir().join(format!("laconic-optim-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = tiny(false);
    let (batch, _) = batch(&model);
    let mut updater = PolicyUpdater::new(OptimConfig::default(), &model).unwrap();
    let (model, _) = updater.step(model, &batch, None).unwrap();
    let path = dir.join("optim.safetensors");
    updater.save_state(&path).unwrap();
    let tied = tiny(true);
    let err = PolicyUpdater::new(OptimConfig::default(), &tied)
        .unwrap()
        .load_state(&path, &tied)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lm_head.weight") && err.contains("optim.safetensors"),
        "{err}"
    );
    drop(model);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sets every parameter named `*norm.weight` to NaN.
struct Poison;

impl ModuleMapper<AD> for Poison {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AD, D>>) -> Param<Tensor<AD, D>> {
        param.map(|t| t.mul_scalar(f32::NAN))
    }
}

#[test]
fn a_non_finite_loss_is_a_typed_error_not_an_update() {
    let model = tiny(true);
    let (batch, _) = batch(&model);
    let poisoned = model.map(&mut Poison);
    let mut updater = PolicyUpdater::new(OptimConfig::default(), &poisoned).unwrap();
    let err = updater.step(poisoned, &batch, None).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NonFinite {
                what: "loss",
                step: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(updater.updates(), 0);
}

#[test]
fn kl_needs_reference_log_probs_and_masked_only_batches_are_skipped() {
    let model = tiny(true);
    let (mut batch, reference) = batch(&model);
    let config = OptimConfig {
        kl_loss_coef: 0.1,
        ..OptimConfig::default()
    };
    let mut updater = PolicyUpdater::new(config, &model).unwrap();
    let err = updater
        .step(model.clone(), &batch, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("kl_loss_coef"), "{err}");
    let (model, metrics) = updater.step(model, &batch, Some(&reference)).unwrap();
    assert!(metrics.kl_loss.is_some_and(f64::is_finite));
    for seq in &mut batch.sequences {
        seq.masked = true;
    }
    let before = params(&model);
    let (model, metrics) = updater.step(model, &batch, Some(&reference)).unwrap();
    assert_eq!((metrics.num_updates, metrics.skipped_mini_batches), (0, 1));
    assert_eq!(params(&model), before);
}

/// Global clipping on a real model's gradients: the clipped global norm is the threshold and every
/// parameter's gradient is scaled by the same factor (direction unchanged); below the threshold it is
/// a no-op.
#[test]
fn global_clipping_of_model_gradients() {
    let model = tiny(false);
    let (batch, _) = batch(&model);
    let seqs: Vec<&UpdateSequence> = batch
        .sequences
        .iter()
        .filter(|s| s.is_trainable())
        .collect();
    let lengths: Vec<usize> = seqs.iter().map(|s| s.response_ids.len()).collect();
    let counts = laconic_optim::AggCounts::from_lengths(&lengths, None);
    let updater = PolicyUpdater::new(OptimConfig::default(), &model).unwrap();
    let (grads, _) = updater
        .accumulate_gradients(&model, &seqs, None, &counts)
        .unwrap();
    let before = common::flat_grads(&model, &grads);
    let norm = before.iter().map(|g| g * g).sum::<f64>().sqrt();

    let mut clipped = grads;
    let threshold = (norm / 2.0) as f32;
    let reported = laconic_optim::clip::clip_grad_norm(&model, &mut clipped, threshold);
    assert!((reported - norm).abs() < 1e-5 * norm);
    let after = common::flat_grads(&model, &clipped);
    let new_norm = after.iter().map(|g| g * g).sum::<f64>().sqrt();
    assert!(
        (new_norm - f64::from(threshold)).abs() < 1e-5 * new_norm,
        "{new_norm} vs {threshold}"
    );
    let cosine = before.iter().zip(&after).map(|(a, b)| a * b).sum::<f64>() / (norm * new_norm);
    assert!(
        (cosine - 1.0).abs() < 1e-9,
        "direction changed: cos = {cosine}"
    );

    let again = after.clone();
    let mut grads = clipped;
    laconic_optim::clip::clip_grad_norm(&model, &mut grads, threshold * 2.0);
    assert_eq!(common::flat_grads(&model, &grads), again);
}

/// A tiny Qwen3-MoE policy: 4 experts, top-2, the second layer dense.
fn tiny_moe() -> CausalLm<AD> {
    let config = laconic_model::DecoderConfig::from_json_str(
        r#"{"model_type": "qwen3_moe", "vocab_size": 48, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
            "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8,
            "mlp_only_layers": [1], "tie_word_embeddings": true}"#,
        "config.json",
    )
    .unwrap();
    CausalLm::init_seeded(&config, 7, &Default::default()).unwrap()
}

#[test]
fn moe_router_loss_is_logged_and_trains_the_routers_only_when_weighted() {
    let batch = UpdateBatch {
        sequences: [
            (vec![3u32, 7], vec![5u32, 9, 2]),
            (vec![1], vec![4, 4, 8, 6]),
        ]
        .into_iter()
        .map(|(prompt_ids, response_ids)| UpdateSequence {
            old_logprobs: vec![-1.0; response_ids.len()],
            prompt_ids,
            response_ids,
            // Zero advantages: the policy-gradient term has no gradient.
            advantage: 0.0,
            masked: false,
            group: 0,
        })
        .collect(),
    };
    // One random model, cloned for each run (random init materialises every parameter).
    let base = tiny_moe();
    let step = |coef: f32| {
        let model = base.clone();
        let before = params(&model);
        let config = OptimConfig {
            lr: 1e-2,
            weight_decay: 0.0,
            router_aux_loss_coef: coef,
            ppo_micro_batch_size: 1,
            ..OptimConfig::default()
        };
        let mut updater = PolicyUpdater::new(config, &model).unwrap();
        let (model, metrics) = updater.step(model, &batch, None).unwrap();
        (max_abs_diff(&before, &params(&model)), metrics)
    };

    let (moved, metrics) = step(0.0);
    let aux = metrics
        .router_aux_loss
        .expect("an MoE policy logs its router loss");
    // E · Σ_e f_e · P_e: exactly k = 2 for perfectly balanced routing; near it for a random router.
    assert!(aux > 1.0 && aux < 4.0, "{aux}");
    assert!(metrics.to_map().contains_key("actor/router_aux_loss"));
    assert_eq!(
        moved, 0.0,
        "with no weight on L_aux and zero advantages nothing moves"
    );
    assert!((metrics.loss - metrics.pg_loss).abs() < 1e-9, "{metrics:?}");

    let (moved, weighted) = step(0.5);
    assert!(
        moved > 0.0,
        "the weighted router loss must train the routers"
    );
    // Same model and batch: the same L_aux, now half of it in the loss.
    assert!(
        (weighted.router_aux_loss.unwrap() - aux).abs() < 1e-6,
        "{weighted:?}"
    );
    assert!(
        (weighted.loss - weighted.pg_loss - 0.5 * aux).abs() < 1e-5,
        "{weighted:?}"
    );

    // Dense policies log no router loss.
    let dense = tiny(true);
    let mut updater = PolicyUpdater::new(OptimConfig::default(), &dense).unwrap();
    let (_, metrics) = updater.step(dense, &batch, None).unwrap();
    assert_eq!(metrics.router_aux_loss, None);
}
