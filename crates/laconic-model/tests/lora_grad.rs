//! Gradient check of LoRA adapters against central finite differences, in f64: the gradient of
//! `L = Σ logits ⊙ r` of a tiny two-layer Qwen3 with respect to every entry of `A` and `B` of an
//! attention and an MLP projection, with `B` away from zero so `A`'s gradient is not trivially zero.
//!
//! On flex with f64 as the device's float dtype (as `moe_grad.rs`, and for the same reason); its own
//! test binary: burn 0.21 keeps one default float dtype per device and process.

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use common::{central_differences, f64_device, to_vec};
use laconic_model::{AttentionLayout, CausalLm, DecoderConfig, LoraConfig};

mod common;

type B64 = Flex;
type AD64 = Autodiff<B64>;

fn config() -> DecoderConfig {
    DecoderConfig::from_json_str(
        r#"{"model_type": "qwen3", "vocab_size": 12, "hidden_size": 8, "intermediate_size": 12,
            "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4,
            "tie_word_embeddings": true}"#,
        "tiny",
    )
    .unwrap()
}

/// The adapted projections checked: (layer, which, A or B).
#[derive(Debug, Clone, Copy)]
enum Target {
    QA,
    QB,
    DownA,
    DownB,
}

const TARGETS: [Target; 4] = [Target::QA, Target::QB, Target::DownA, Target::DownB];

fn param_mut<B: Backend>(model: &mut CausalLm<B>, target: Target) -> &mut Param<Tensor<B, 2>> {
    let layer = &mut model.model.layers[1];
    let attention = layer.self_attn.q_proj.lora.as_mut().unwrap();
    let mlp = match &mut layer.mlp {
        laconic_model::FeedForward::Dense(mlp) => mlp.down_proj.lora.as_mut().unwrap(),
        laconic_model::FeedForward::Sparse(_) => unreachable!("a dense model"),
    };
    match target {
        Target::QA => &mut attention.lora_a,
        Target::QB => &mut attention.lora_b,
        Target::DownA => &mut mlp.lora_a,
        Target::DownB => &mut mlp.lora_b,
    }
}

fn objective<B: Backend>(model: &CausalLm<B>, r: Tensor<B, 3>) -> Tensor<B, 1> {
    let device = r.device();
    let tokens = Tensor::<B, 2, Int>::from_ints([[3, 1, 4, 1], [0, 5, 9, 2]], &device);
    let layout = AttentionLayout::left_padded(&[4, 3], 4).unwrap();
    (model.forward(tokens, &layout).unwrap() * r).sum()
}

fn numeric_grad(model: &CausalLm<B64>, target: Target, r: &Tensor<B64, 3>) -> Vec<f64> {
    let mut model = model.clone();
    let original = param_mut(&mut model, target).val();
    let shape = original.dims();
    let base = to_vec(original);
    let device = r.device();
    let at = |values: Vec<f64>| {
        *param_mut(&mut model, target) =
            Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), &device));
        to_vec(objective(&model, r.clone()))[0]
    };
    central_differences(&base, at)
}

#[test]
fn lora_gradients_match_finite_differences() {
    let device = f64_device();
    AD64::seed(&device, 11);
    let lora = LoraConfig {
        rank: 3,
        alpha: 6.0,
        ..LoraConfig::default()
    };
    let mut model = CausalLm::<AD64>::init(&config(), &device)
        .unwrap()
        .with_lora(&lora, 5)
        .unwrap();
    for target in [Target::QB, Target::DownB] {
        let b = param_mut(&mut model, target);
        let random = Tensor::random(b.dims(), Distribution::Normal(0.0, 0.5), &device);
        *b = Param::from_tensor(random);
    }
    let r = Tensor::<AD64, 3>::random([2, 4, 12], Distribution::Normal(0.0, 1.0), &device);
    let grads = objective(&model, r.clone()).backward();
    let inner = model.valid();
    let r = r.inner();
    let mut worst: f64 = 0.0;
    for target in TARGETS {
        let analytic = to_vec(param_mut(&mut model, target).grad(&grads).unwrap());
        let numeric = numeric_grad(&inner, target, &r);
        let scale = analytic.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 1e-3, "{target:?}: a gradient to check");
        let err = analytic
            .iter()
            .zip(&numeric)
            .fold(0.0f64, |m, (a, n)| m.max((a - n).abs()));
        assert!(
            err <= 1e-7,
            "{target:?}: max |Δ| = {err:e} (max |grad| {scale:e})"
        );
        worst = worst.max(err);
    }
    println!("f64 LoRA gradients: max |analytic − finite difference| = {worst:.2e}");
}
