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

/// `cos` and `sin` of every (position, frequency) pair of a batch, ready to broadcast over heads.
///
/// # Shapes
/// - `cos`, `sin`: `[B, 1, T, D]` (the `D/2` angles repeated twice, matching rotate-half)
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    /// Cosines.
    pub cos: Tensor<B, 4>,
    /// Sines.
    pub sin: Tensor<B, 4>,
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
        let mut cos = Vec::with_capacity(positions.len() * dim);
        let mut sin = Vec::with_capacity(positions.len() * dim);
        let mut cos_row = vec![0f32; dim];
        let mut sin_row = vec![0f32; dim];
        for &position in positions {
            for (i, freq) in self.inv_freq.iter().enumerate() {
                let angle = position as f64 * freq;
                let (s, c) = angle.sin_cos();
                (cos_row[i], cos_row[i + half]) = (c as f32, c as f32);
                (sin_row[i], sin_row[i + half]) = (s as f32, s as f32);
            }
            cos.extend_from_slice(&cos_row);
            sin.extend_from_slice(&sin_row);
        }
        let shape = [batch, 1, seq, dim];
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }
}

impl<B: Backend> RopeTables<B> {
    /// Rotates `x` (`[B, H, T, D]`): `x·cos + rotate_half(x)·sin`, `rotate_half([x1, x2]) = [−x2, x1]`.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, h, t, d] = x.dims();
        let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..d / 2]);
        let x2 = x.clone().slice([0..b, 0..h, 0..t, d / 2..d]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
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
        let x = Tensor::<TestBackend, 4>::from_floats([[[[1.0, 0.0], [1.0, 0.0]]]], &device);
        let y = tables.apply(x);
        let (c, s) = (1f32.cos(), 1f32.sin());
        y.into_data().assert_approx_eq::<f32>(
            &TensorData::from([[[[1.0, 0.0], [c, s]]]]),
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
