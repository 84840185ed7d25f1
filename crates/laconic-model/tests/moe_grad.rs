//! Gradient check of the sparse MoE block against central finite differences, in f64: the gradient of
//! `L = Σ y ⊙ r + λ · L_aux` with respect to the input, the router and every expert weight, through the
//! grouped dispatch (gather → per-expert products → scatter-add) and the differentiable routing weights,
//! with and without `norm_topk_prob`, with a padding token.
//!
//! On flex with f64 as the device's float dtype: ndarray's sigmoid (burn's default) computes in f32
//! whatever the element type, which puts f32 rounding into SiLU and swamps the finite differences.
//! Its own test binary: burn 0.21 keeps one default float dtype per device and process.

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use common::{central_differences, f64_device, to_vec};
use laconic_model::{DecoderConfig, SparseMoeBlock};

mod common;

/// Flex with f64 tensors (set in [`f64_device`]).
type B64 = Flex;
type AD64 = Autodiff<B64>;

/// Weight of the load-balancing loss in the checked objective.
const AUX_WEIGHT: f64 = 0.3;

fn config(norm_topk_prob: bool) -> DecoderConfig {
    DecoderConfig::from_json_str(
        &format!(
            r#"{{"model_type": "qwen3_moe", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
                "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 4, "num_experts": 6,
                "num_experts_per_tok": 2, "moe_intermediate_size": 4, "norm_topk_prob": {norm_topk_prob}}}"#
        ),
        "tiny",
    )
    .unwrap()
}

/// `Σ y ⊙ r + λ · L_aux`.
fn objective<B: Backend>(
    block: &SparseMoeBlock<B>,
    x: Tensor<B, 3>,
    r: Tensor<B, 3>,
    valid: &[bool],
) -> Tensor<B, 1> {
    let (y, aux) = block.forward(x, Some(valid));
    (y * r).sum() + aux.load_balancing_loss() * AUX_WEIGHT
}

/// Which tensor of the block a gradient entry belongs to.
#[derive(Debug, Clone, Copy)]
enum Target {
    Router,
    Expert(usize, usize),
}

fn param_mut<B: Backend>(
    block: &mut SparseMoeBlock<B>,
    target: Target,
) -> &mut Param<Tensor<B, 2>> {
    match target {
        Target::Router => &mut block.gate.weight,
        Target::Expert(e, 0) => &mut block.experts[e].gate_proj.weight,
        Target::Expert(e, 1) => &mut block.experts[e].up_proj.weight,
        Target::Expert(e, _) => &mut block.experts[e].down_proj.weight,
    }
}

/// `(L(θ + h·e_i) − L(θ − h·e_i)) / 2h` for every entry `i` of `target`.
fn numeric_grad(
    block: &SparseMoeBlock<B64>,
    target: Target,
    x: &Tensor<B64, 3>,
    r: &Tensor<B64, 3>,
    valid: &[bool],
) -> Vec<f64> {
    let mut block = block.clone();
    let original = param_mut(&mut block, target).val();
    let shape = original.dims();
    let base = to_vec(original);
    let device = Default::default();
    let at = |values: Vec<f64>| {
        *param_mut(&mut block, target) =
            Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), &device));
        to_vec(objective(&block, x.clone(), r.clone(), valid))[0]
    };
    central_differences(&base, at)
}

fn numeric_input_grad(
    block: &SparseMoeBlock<B64>,
    x: &Tensor<B64, 3>,
    r: &Tensor<B64, 3>,
    valid: &[bool],
) -> Vec<f64> {
    let shape = x.dims();
    let base = to_vec(x.clone());
    let device = Default::default();
    let at = |values: Vec<f64>| {
        let x = Tensor::from_data(TensorData::new(values, shape), &device);
        to_vec(objective(block, x, r.clone(), valid))[0]
    };
    central_differences(&base, at)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn moe_block_gradients_match_finite_differences() {
    let device = f64_device();
    AD64::seed(&device, 7);
    for norm_topk_prob in [true, false] {
        let block = SparseMoeBlock::<AD64>::init(&config(norm_topk_prob), 0.5, &device);
        let x = Tensor::<AD64, 3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &device);
        let r = Tensor::<AD64, 3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &device);
        // Token (0, 0) is padding: no expert, no router statistics.
        let valid = [false, true, true, true, true, true];

        // Analytic gradients through autodiff.
        let x_ad = x.clone().require_grad();
        let grads = objective(&block, x_ad.clone(), r.clone(), &valid).backward();
        let mut analytic = vec![("input".to_string(), to_vec(x_ad.grad(&grads).unwrap()))];
        let mut targets = vec![Target::Router];
        for e in 0..block.experts.len() {
            targets.extend((0..3).map(|p| Target::Expert(e, p)));
        }
        let mut with_grads = block.clone();
        for &target in &targets {
            let p = param_mut(&mut with_grads, target);
            let grad = match p.grad(&grads) {
                Some(g) => to_vec(g),
                // An expert no token chose has no gradient: zero.
                None => vec![0.0; p.dims().iter().product()],
            };
            analytic.push((format!("{target:?}"), grad));
        }

        // Finite differences on the same weights, without autodiff.
        let inner_block = block.valid();
        let (x, r) = (x.inner(), r.inner());
        let mut numeric = vec![numeric_input_grad(&inner_block, &x, &r, &valid)];
        for &target in &targets {
            numeric.push(numeric_grad(&inner_block, target, &x, &r, &valid));
        }

        let mut worst: f64 = 0.0;
        let mut scale: f64 = 0.0;
        for ((name, a), n) in analytic.iter().zip(&numeric) {
            let err = max_abs_diff(a, n);
            scale = a.iter().fold(scale, |m, v| m.max(v.abs()));
            assert!(
                err <= 1e-7,
                "norm_topk_prob={norm_topk_prob} {name}: max |Δ| = {err:e}"
            );
            worst = worst.max(err);
        }
        // The padding token's input gradient is exactly zero (it reaches no expert and no statistic).
        assert!(analytic[0].1[..8].iter().all(|g| *g == 0.0));
        println!(
            "f64, norm_topk_prob={norm_topk_prob}: {} gradient entries, max |analytic − finite difference| = {worst:.2e} (max |grad| {scale:.2e})",
            analytic.iter().map(|(_, g)| g.len()).sum::<usize>()
        );
    }
}
