//! Shared helpers of the integration tests. Here, those of the transformers-parity tests
//! (`tests/parity.rs`, `tests/moe.rs`): fixture folders and their expected outputs, token batches, the
//! relative-error measure, greedy decoding with the cache; in [`rl`], those of the RL-loop tests.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

pub mod rl;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use laconic::model::safetensors::SafetensorsIndex;
use laconic::model::{AttentionLayout, Qwen3};

/// Largest accepted `max|ours − reference| / max|reference|`.
pub const MAX_REL_ERR: f32 = 1e-4;

/// `tests/fixtures/parity/<relative>`.
pub fn parity_fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(relative)
}

/// What transformers computed for a fixture (`expected.json` + `expected.safetensors`).
pub struct Expected {
    pub prompts: Vec<Vec<u32>>,
    pub greedy: Vec<Vec<u32>>,
    /// `[T_i, V]` logits of each prompt run alone, row-major.
    pub logits: Vec<Vec<f32>>,
    /// The whole `expected.json`, for fixture-specific values.
    pub json: serde_json::Value,
}

/// Reads the expected outputs stored in a fixture folder.
pub fn read_expected(dir: &Path) -> Expected {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let ids = |key: &str| -> Vec<Vec<u32>> { serde_json::from_value(json[key].clone()).unwrap() };
    let tensors = SafetensorsIndex::from_files(&[dir.join("expected.safetensors")]).unwrap();
    let prompts = ids("prompts");
    let logits = (0..prompts.len())
        .map(|i| tensors.read_f32(&format!("logits_{i}")).unwrap())
        .collect();
    Expected {
        prompts,
        greedy: ids("greedy"),
        logits,
        json,
    }
}

/// `max|ours − reference| / max|reference|`.
pub fn rel_err(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len());
    let max_ref = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_diff = ours
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    max_diff / max_ref
}

/// A `[rows, width]` batch of ids, padded with 0 on the left (`left`) or the right.
pub fn tokens<B: Backend>(
    rows: &[Vec<u32>],
    width: usize,
    left: bool,
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    let mut data = Vec::with_capacity(rows.len() * width);
    for row in rows {
        let pad = width - row.len();
        let ids = row.iter().map(|&t| t as i64);
        if left {
            data.extend(std::iter::repeat_n(0i64, pad).chain(ids));
        } else {
            data.extend(ids.chain(std::iter::repeat_n(0i64, pad)));
        }
    }
    Tensor::from_data(TensorData::new(data, [rows.len(), width]), device)
}

/// A tensor's values as f32.
pub fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec().unwrap()
}

/// The layout of one unpadded sequence of `len` tokens.
pub fn alone_layout(len: usize) -> AttentionLayout {
    AttentionLayout::left_padded(&[len], len).unwrap()
}

/// Logits of the real positions of row `b` of a `[B, T, V]` batch.
pub fn row_logits(
    all: &[f32],
    b: usize,
    width: usize,
    vocab: usize,
    cols: std::ops::Range<usize>,
) -> Vec<f32> {
    let start = (b * width + cols.start) * vocab;
    all[start..start + cols.len() * vocab].to_vec()
}

/// Greedy decoding with the KV cache: prefill once, then one token per step. Returns the ids and the
/// last step's logits.
pub fn greedy<B: Backend>(
    model: &Qwen3<B>,
    prompt: &[u32],
    steps: usize,
    device: &B::Device,
) -> (Vec<u32>, Vec<f32>) {
    let mut cache = model.new_cache();
    let mut logits = model
        .forward_cached(
            tokens::<B>(&[prompt.to_vec()], prompt.len(), true, device),
            &alone_layout(prompt.len()),
            &mut cache,
        )
        .unwrap();
    let mut out = Vec::new();
    for step in 0..steps {
        let [_, t, v] = logits.dims();
        let last = logits.slice([0..1, t - 1..t, 0..v]);
        let next = values(last.clone().argmax(2).float())[0] as u32;
        out.push(next);
        if step + 1 == steps {
            return (out, values(last));
        }
        let layout = AttentionLayout::decode_step(vec![prompt.len() + step]);
        logits = model
            .forward_cached(
                tokens::<B>(&[vec![next]], 1, true, device),
                &layout,
                &mut cache,
            )
            .unwrap();
    }
    unreachable!("steps > 0")
}
