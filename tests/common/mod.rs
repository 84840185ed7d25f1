//! Shared helpers of the integration tests. Here, those of the transformers-parity tests
//! (`tests/parity.rs`, `tests/moe.rs`): fixture folders (their expected outputs and the relative-error
//! measure come from laconic-harness's `parity`, shared with `examples/gpu_check.rs`), token batches,
//! greedy decoding with the cache; in [`rl`], those of the RL-loop tests.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod rl;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use laconic::model::{AttentionLayout, CausalLm};
use laconic_harness::parity::{self, F32_TOLERANCE};
pub use laconic_harness::parity::{rel_err, Expected};

/// Largest accepted [`rel_err`] (laconic-harness's f32 bound).
pub const MAX_REL_ERR: f32 = F32_TOLERANCE;

/// `tests/fixtures/parity/<relative>`.
pub fn parity_fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(relative)
}

/// The reference outputs of a fixture folder (panics with the file named when they cannot be read).
pub fn read_expected(dir: &Path) -> Expected {
    parity::read_expected(dir).unwrap_or_else(|e| panic!("{e}"))
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
    model: &CausalLm<B>,
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
