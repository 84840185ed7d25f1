//! laconic-optim against the PyTorch reference of `tests/fixtures/make_optim_fixtures.py`:
//! advantages, the actor loss, its metrics and its gradient for every estimator × aggregation mode ×
//! KL type × {vanilla, dual clip, GSPO}, through plain autodiff and through the custom LM-head op;
//! and AdamW (ours and burn's) against `torch.optim.AdamW`.

use std::path::PathBuf;

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use laconic_model::safetensors::SafetensorsIndex;
use laconic_optim::agg::AggCounts;
use laconic_optim::head::{head_logprobs_grad, HeadOptions};
use laconic_optim::logprob::logprobs_from_logits;
use laconic_optim::objective::{objective, LossSettings, TokenBatch};
use laconic_optim::policy_loss::ClipRange;
use laconic_optim::{
    AdamW, AdamWSettings, AdvEstimator, AdvantageOptions, KlLossType, LossAggMode, PolicyLoss,
};
use serde_json::Value;

type B = NdArray;
type AD = Autodiff<NdArray>;

const TOLERANCE: f64 = 1e-5;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/optim")
}

struct LossFixture {
    meta: Value,
    tensors: SafetensorsIndex,
}

impl LossFixture {
    fn load() -> Self {
        let dir = fixture_dir();
        let meta =
            serde_json::from_str(&std::fs::read_to_string(dir.join("loss.json")).unwrap()).unwrap();
        let tensors = SafetensorsIndex::from_files(&[dir.join("loss.safetensors")]).unwrap();
        Self { meta, tensors }
    }

    fn tensor(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        (
            self.tensors.get(name).unwrap().shape.clone(),
            self.tensors.read_f32(name).unwrap(),
        )
    }

    fn usizes(&self, key: &str) -> Vec<usize> {
        self.meta[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    }

    fn f64s(value: &Value) -> Vec<f64> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    }

    fn masked(&self) -> Vec<bool> {
        self.meta["masked"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect()
    }

    fn rewards(&self) -> Vec<f32> {
        Self::f64s(&self.meta["rewards"])
            .into_iter()
            .map(|v| v as f32)
            .collect()
    }
}

/// The trainable tokens of the fixture batch: token indices (into the 20 fixture tokens) and the
/// `TokenBatch` the updater would build for the case.
fn token_batch(
    fx: &LossFixture,
    advantages: &[f32],
    mode: LossAggMode,
    with_ref: bool,
) -> (Vec<i64>, TokenBatch) {
    let lengths = fx.usizes("lengths");
    let masked = fx.masked();
    let (_, old) = fx.tensor("old_logprobs");
    let (_, reference) = fx.tensor("ref_logprobs");
    let (mut rows, mut batch) = (Vec::new(), TokenBatch::default());
    let mut start = 0;
    for (i, &len) in lengths.iter().enumerate() {
        if !masked[i] {
            rows.extend((start..start + len).map(|t| t as i64));
            batch.lengths.push(len);
            batch
                .advantages
                .extend(std::iter::repeat_n(advantages[i], len));
        }
        start += len;
    }
    batch.old_logprobs = rows.iter().map(|&t| old[t as usize]).collect();
    batch.ref_logprobs = with_ref.then(|| rows.iter().map(|&t| reference[t as usize]).collect());
    let counts = AggCounts::from_lengths(&batch.lengths, None);
    batch.weights = mode.token_weights(&batch.lengths, &counts);
    (rows, batch)
}

fn parse<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap()
}

fn settings(case: &Value, kl_coef: f32) -> LossSettings {
    LossSettings {
        policy_loss: parse::<PolicyLoss>(&case["policy_loss"]),
        clip: ClipRange {
            low: 0.2,
            high: 0.28,
            dual_c: case["clip_ratio_c"].as_f64().map(|c| c as f32),
        },
        kl_type: parse::<KlLossType>(&case["kl_loss_type"]),
        kl_coef,
        entropy_coeff: case["entropy_coeff"].as_f64().unwrap() as f32,
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn advantages_match_the_reference() {
    let fx = LossFixture::load();
    let (rewards, groups, masked) = (fx.rewards(), fx.usizes("groups"), fx.masked());
    let mut worst: f64 = 0.0;
    for (key, expected) in fx.meta["advantage_variants"].as_object().unwrap() {
        let parts: Vec<&str> = key.split('|').collect();
        let estimator: AdvEstimator = serde_json::from_str(&format!("\"{}\"", parts[0])).unwrap();
        let options = AdvantageOptions {
            epsilon: 1e-6,
            masked_in_group_stats: parts[1] == "1",
            unbiased_std: parts[2] == "1",
        };
        let got = estimator
            .compute(&rewards, &groups, &masked, &options)
            .unwrap();
        for (g, e) in got.iter().zip(LossFixture::f64s(expected)) {
            worst = worst.max((f64::from(*g) - e).abs());
        }
    }
    println!("advantages: max |Δ| = {worst:.3e}");
    assert!(worst < TOLERANCE);
}

/// Every case through plain autodiff on the fixture's (temperature-scaled) logits.
#[test]
fn loss_metrics_and_logit_gradients_match_the_reference() {
    let fx = LossFixture::load();
    let device = Default::default();
    let (shape, logits) = fx.tensor("logits");
    let targets: Vec<i64> = fx.usizes("targets").into_iter().map(|t| t as i64).collect();
    let kl_coef = fx.meta["kl_loss_coef"].as_f64().unwrap() as f32;
    let (mut worst_loss, mut worst_grad, mut worst_metric) = (0.0f64, 0.0f64, 0.0f64);
    for case in fx.meta["cases"].as_array().unwrap() {
        let estimator: AdvEstimator = parse(&case["adv_estimator"]);
        let mode: LossAggMode = parse(&case["loss_agg_mode"]);
        let advantages: Vec<f32> =
            LossFixture::f64s(&fx.meta["advantages"][case["adv_estimator"].as_str().unwrap()])
                .into_iter()
                .map(|a| a as f32)
                .collect();
        let _ = estimator;
        let (rows, batch) = token_batch(&fx, &advantages, mode, true);
        let z = Tensor::<AD, 2>::from_data(TensorData::new(logits.clone(), shape.clone()), &device)
            .require_grad();
        let t = Tensor::<AD, 1, Int>::from_data(
            TensorData::new(targets.clone(), [targets.len()]),
            &device,
        );
        let (logp, entropy) = logprobs_from_logits(z.clone(), t, 1.0);
        let index =
            Tensor::<AD, 1, Int>::from_data(TensorData::new(rows.clone(), [rows.len()]), &device);
        let (loss, sums) = objective(
            logp.select(0, index.clone()),
            entropy.select(0, index),
            &batch,
            &settings(case, kl_coef),
        );
        let grads = loss.backward();
        let grad: Vec<f32> = z.grad(&grads).unwrap().into_data().into_vec().unwrap();
        let (_, expected_grad) = fx.tensor(&format!("case{}.grad", case["index"]));
        worst_grad = worst_grad.max(max_abs_diff(&grad, &expected_grad));
        worst_loss = worst_loss.max((sums.loss - case["loss"].as_f64().unwrap()).abs());
        let tokens = sums.tokens;
        for (got, key) in [
            (sums.pg_loss, "pg_loss"),
            (sums.kl_loss.unwrap(), "kl_loss"),
            (sums.entropy_loss, "entropy_loss"),
            (sums.clipped / tokens, "pg_clipfrac"),
            (sums.clipped_lower / tokens, "pg_clipfrac_lower"),
            (sums.ppo_kl_sum / tokens, "ppo_kl"),
            (sums.entropy_sum / tokens, "entropy"),
        ] {
            worst_metric = worst_metric.max((got - case[key].as_f64().unwrap()).abs());
        }
    }
    println!("loss: max |Δ| = {worst_loss:.3e}; dL/dlogits: max |Δ| = {worst_grad:.3e}; metrics: max |Δ| = {worst_metric:.3e}");
    assert!(worst_loss < TOLERANCE && worst_grad < TOLERANCE && worst_metric < TOLERANCE);
}

/// Every case through the custom LM-head op on `(hidden, W, τ)`: its gradients must equal the chain
/// rule applied to the reference `g_z = dL/dz` with `z = h·Wᵀ/τ`: `dL/dh = g_z·W/τ`, `dL/dW = g_zᵀ·h/τ`.
#[test]
fn custom_head_op_gradients_match_the_reference() {
    let fx = LossFixture::load();
    let device = Default::default();
    let (h_shape, hidden) = fx.tensor("hidden");
    let (w_shape, weight) = fx.tensor("weight");
    let tau = fx.meta["temperature"].as_f64().unwrap() as f32;
    let targets: Vec<i64> = fx.usizes("targets").into_iter().map(|t| t as i64).collect();
    let kl_coef = fx.meta["kl_loss_coef"].as_f64().unwrap() as f32;
    let inner = |v: &[f32], s: &[usize]| {
        Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), s.to_vec()), &device)
    };
    let (mut worst_h, mut worst_w) = (0.0f64, 0.0f64);
    for case in fx.meta["cases"].as_array().unwrap() {
        let mode: LossAggMode = parse(&case["loss_agg_mode"]);
        let advantages: Vec<f32> =
            LossFixture::f64s(&fx.meta["advantages"][case["adv_estimator"].as_str().unwrap()])
                .into_iter()
                .map(|a| a as f32)
                .collect();
        let (rows, batch) = token_batch(&fx, &advantages, mode, true);
        let h = Tensor::<AD, 2>::from_inner(inner(&hidden, &h_shape)).require_grad();
        let w = Tensor::<AD, 2>::from_inner(inner(&weight, &w_shape)).require_grad();
        let index =
            Tensor::<AD, 1, Int>::from_data(TensorData::new(rows.clone(), [rows.len()]), &device);
        let picked: Vec<i64> = rows.iter().map(|&r| targets[r as usize]).collect();
        let t = Tensor::<AD, 1, Int>::from_data(TensorData::new(picked, [rows.len()]), &device);
        // Only the trainable rows enter the op (as in the updater), chunks of 3 tokens.
        let options = HeadOptions {
            temperature: tau,
            chunk_size: 3,
            entropy_grad: case["entropy_coeff"].as_f64().unwrap() != 0.0,
            keep_logits_bytes: 0,
        };
        let (logp, entropy) = head_logprobs_grad(h.clone().select(0, index), w.clone(), t, options);
        let (loss, _) = objective(logp, entropy, &batch, &settings(case, kl_coef));
        let grads = loss.backward();
        let gh: Vec<f32> = h.grad(&grads).unwrap().into_data().into_vec().unwrap();
        let gw: Vec<f32> = w.grad(&grads).unwrap().into_data().into_vec().unwrap();
        let (z_shape, gz) = fx.tensor(&format!("case{}.grad", case["index"]));
        let gz = inner(&gz, &z_shape).div_scalar(tau);
        let expect_h: Vec<f32> = gz
            .clone()
            .matmul(inner(&weight, &w_shape))
            .into_data()
            .into_vec()
            .unwrap();
        let expect_w: Vec<f32> = gz
            .transpose()
            .matmul(inner(&hidden, &h_shape))
            .into_data()
            .into_vec()
            .unwrap();
        worst_h = worst_h.max(max_abs_diff(&gh, &expect_h));
        worst_w = worst_w.max(max_abs_diff(&gw, &expect_w));
    }
    println!("custom head op: dL/dhidden max |Δ| = {worst_h:.3e}; dL/dW max |Δ| = {worst_w:.3e}");
    assert!(worst_h < TOLERANCE && worst_w < TOLERANCE);
}

#[derive(Module, Debug)]
struct Params<B: Backend> {
    a: Param<Tensor<B, 2>>,
    b: Param<Tensor<B, 1>>,
}

struct AdamWFixture {
    meta: Value,
}

impl AdamWFixture {
    fn load() -> Self {
        let text = std::fs::read_to_string(fixture_dir().join("adamw.json")).unwrap();
        Self {
            meta: serde_json::from_str(&text).unwrap(),
        }
    }

    fn values(v: &Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    fn module<I: Backend>(&self) -> Params<Autodiff<I>> {
        let device = Default::default();
        let init = &self.meta["initial"];
        Params {
            a: Param::from_tensor(Tensor::from_data(
                TensorData::new(Self::values(&init[0]), [3, 4]),
                &device,
            )),
            b: Param::from_tensor(Tensor::from_data(
                TensorData::new(Self::values(&init[1]), [5]),
                &device,
            )),
        }
    }

    fn grads<I: Backend>(&self, module: &Params<Autodiff<I>>, step: usize) -> GradientsParams {
        let device = Default::default();
        let g = &self.meta["steps"][step]["grads"];
        let mut grads = GradientsParams::new();
        grads.register::<I, 2>(
            module.a.id,
            Tensor::from_data(TensorData::new(Self::values(&g[0]), [3, 4]), &device),
        );
        grads.register::<I, 1>(
            module.b.id,
            Tensor::from_data(TensorData::new(Self::values(&g[1]), [5]), &device),
        );
        grads
    }

    fn diff<I: Backend>(&self, module: &Params<Autodiff<I>>, step: usize) -> f64 {
        let p = &self.meta["steps"][step]["params"];
        let a: Vec<f32> = module.a.val().into_data().into_vec().unwrap();
        let b: Vec<f32> = module.b.val().into_data().into_vec().unwrap();
        max_abs_diff(&a, &Self::values(&p[0])).max(max_abs_diff(&b, &Self::values(&p[1])))
    }
}

/// On ndarray (burn ops) and on flex (its one-pass kernel).
#[test]
fn adamw_matches_torch_optim_adamw() {
    check_adamw::<B>();
    check_adamw::<burn::backend::Flex>();
}

fn check_adamw<I: Backend>() {
    let fx = AdamWFixture::load();
    let lr = fx.meta["lr"].as_f64().unwrap();
    let mut module = fx.module::<I>();
    let mut ours = AdamW::<I>::new(AdamWSettings {
        betas: (0.9, 0.999),
        eps: 1e-8,
        weight_decay: 0.1,
    });
    let mut worst: f64 = 0.0;
    for step in 0..5 {
        let grads = fx.grads(&module, step);
        module = ours.step(module, grads, lr);
        worst = worst.max(fx.diff(&module, step));
    }
    println!("laconic AdamW vs torch.optim.AdamW, 5 steps: max |Δθ| = {worst:.3e}");
    assert!(worst < 1e-6);
}

/// burn's `AdamW` with PyTorch's hyper-parameters set explicitly computes the same update (decoupled
/// decay, bias correction); laconic uses its own only to key the state by parameter name.
#[test]
fn burns_adamw_with_explicit_torch_defaults_matches_too() {
    let fx = AdamWFixture::load();
    let lr = fx.meta["lr"].as_f64().unwrap();
    let mut module = fx.module::<B>();
    let mut optim = burn::optim::AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(0.1)
        .init::<AD, Params<AD>>();
    let mut worst: f64 = 0.0;
    for step in 0..5 {
        let grads = fx.grads(&module, step);
        module = optim.step(lr, module, grads);
        worst = worst.max(fx.diff(&module, step));
    }
    println!("burn AdamW vs torch.optim.AdamW, 5 steps: max |Δθ| = {worst:.3e}");
    assert!(worst < 1e-6);
}
