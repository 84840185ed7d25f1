//! Rotary position embeddings in Qwen's rotate-half (NeoX) layout, with angles computed in f64.
//!
//! Not burn's `RotaryEncoding`, which interleaves pairs (GPT-J layout) and would silently scramble a
//! Qwen checkpoint.

use burn::prelude::*;

/// Inverse frequencies `θ^(−2i/D)` for `i < D/2`, in f64.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f64>,
}

/// `cos` and `sin` of every (position, frequency) pair of a batch, shared by all heads.
///
/// # Shapes
/// - `cos`, `sin`: `[B, T, 1, D]`, the `D/2` angles repeated twice (rotate-half), the sine's first half
///   negated (see [`RopeTables::apply`])
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    pub(crate) cos: Tensor<B, 4>,
    pub(crate) sin: Tensor<B, 4>,
}

impl Rope {
    /// Frequencies for heads of width `head_dim` and base `theta`.
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64))
            .collect();
        Self { inv_freq }
    }

    /// Tables for `positions`, a row-major `[B, T]` grid of absolute positions.
    pub fn tables<B: Backend>(
        &self,
        positions: &[usize],
        batch: usize,
        seq: usize,
        device: &B::Device,
    ) -> RopeTables<B> {
        let half = self.inv_freq.len();
        let dim = 2 * half;
        // One row per position: cos = [c, c], signed sin = [−s, s].
        let mut cos_rows = Vec::with_capacity(positions.len() * dim);
        let mut sin_rows = Vec::with_capacity(positions.len() * dim);
        for &position in positions {
            let (sin, cos): (Vec<f32>, Vec<f32>) = self
                .inv_freq
                .iter()
                .map(|freq| {
                    let (s, c) = (position as f64 * freq).sin_cos();
                    (s as f32, c as f32)
                })
                .unzip();
            cos_rows.extend_from_slice(&cos);
            cos_rows.extend_from_slice(&cos);
            sin_rows.extend(sin.iter().map(|s| -s));
            sin_rows.extend_from_slice(&sin);
        }
        let table =
            |rows: Vec<f32>| Tensor::from_data(TensorData::new(rows, [batch, seq, 1, dim]), device);
        RopeTables {
            cos: table(cos_rows),
            sin: table(sin_rows),
        }
    }
}

impl<B: Backend> RopeTables<B> {
    /// Rotates `x` (`[B, T, H, D]`, heads after positions): `x·cos + rotate_half(x)·sin` with
    /// `rotate_half([x1, x2]) = [−x2, x1]`, computed as `x·cos + [x2, x1]·[−sin, sin]` (the sign lives in
    /// the table, which saves a negation).
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        rotate(x, self.cos.clone(), self.sin.clone())
    }

    /// Rotates `x` (`[B, T, H, D]`) and lays it out heads-first for attention: `[B, H, T, D]`. One fused
    /// autodiff node under autodiff, one pass on flex (see [`crate::fused`]).
    pub fn heads_first(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::fused::rotate_heads_first(x, &self.cos, &self.sin)
    }
}

/// `x·cos + [x2, x1]·sin` over the last dimension (halves `x1`, `x2`), with the tables broadcast over
/// heads.
///
/// # Shapes
/// - `x`: `[B, T, H, D]`, `cos`, `sin`: `[B, T, 1, D]` → `[B, T, H, D]`
pub(crate) fn rotate<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let [b, t, h, d] = x.dims();
    let x1 = x.clone().slice([0..b, 0..t, 0..h, 0..d / 2]);
    let x2 = x.clone().slice([0..b, 0..t, 0..h, d / 2..d]);
    let swapped = Tensor::cat(vec![x2, x1], 3);
    x * cos + swapped * sin
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn rotates_pairs_across_halves() {
        let device = Default::default();
        // D = 2, θ irrelevant (one frequency, 1.0): position p rotates (a, b) by p radians.
        let rope = Rope::new(2, 10_000.0);
        let tables = rope.tables::<TestBackend>(&[0, 1], 1, 2, &device);
        // [B = 1, T = 2, H = 1, D = 2].
        let x = Tensor::<TestBackend, 4>::from_floats([[[[1.0, 0.0]], [[1.0, 0.0]]]], &device);
        let y = tables.apply(x);
        let (c, s) = (1f32.cos(), 1f32.sin());
        y.into_data().assert_approx_eq::<f32>(
            &TensorData::from([[[[1.0, 0.0]], [[c, s]]]]),
            Default::default(),
        );
    }

    #[test]
    fn frequencies_follow_theta() {
        let rope = Rope::new(4, 100.0);
        // θ^(−0/4) = 1, θ^(−2/4) = 1/10.
        assert_eq!(rope.inv_freq, vec![1.0, 0.1]);
    }
}
