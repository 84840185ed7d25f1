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

/// `cos` and `sin` of every (position, frequency) pair of a batch, laid out like the queries and keys
/// they rotate.
///
/// The tables are materialised per head (not broadcast over heads) so every multiply in [`RopeTables::apply`]
/// is between two contiguous tensors of one shape, which CPU backends run as a flat SIMD loop (and its
/// gradient as well); a broadcast operand sends them through a strided per-element path several times
/// slower. They cost `4·H·D` floats per token, small next to the attention's own activations.
///
/// # Shapes
/// - one `(cos, sin)` pair per head count `H` (queries and keys): `[B, T, H, D]`, the `D/2` angles repeated
///   twice (rotate-half), the sine's first half negated (see [`RopeTables::apply`])
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    /// `(H, cos, sin)` for each head count the tables serve.
    by_heads: Vec<(usize, Tensor<B, 4>, Tensor<B, 4>)>,
}

impl Rope {
    /// Frequencies for heads of width `head_dim` and base `theta`.
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64))
            .collect();
        Self { inv_freq }
    }

    /// Tables for `positions`, a row-major `[B, T]` grid of absolute positions, for tensors of each head
    /// count in `heads` (the query and the key/value head counts).
    pub fn tables<B: Backend>(
        &self,
        positions: &[usize],
        batch: usize,
        seq: usize,
        heads: &[usize],
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
        let per_head = |rows: &[f32], h: usize| -> Tensor<B, 4> {
            let data: Vec<f32> = rows
                .chunks_exact(dim)
                .flat_map(|row| std::iter::repeat_n(row, h).flatten().copied())
                .collect();
            Tensor::from_data(TensorData::new(data, [batch, seq, h, dim]), device)
        };
        let mut by_heads: Vec<(usize, Tensor<B, 4>, Tensor<B, 4>)> = Vec::new();
        for &h in heads {
            if by_heads.iter().all(|(known, _, _)| *known != h) {
                by_heads.push((h, per_head(&cos_rows, h), per_head(&sin_rows, h)));
            }
        }
        RopeTables { by_heads }
    }
}

impl<B: Backend> RopeTables<B> {
    /// Rotates `x` (`[B, T, H, D]`, heads after positions): `x·cos + rotate_half(x)·sin` with
    /// `rotate_half([x1, x2]) = [−x2, x1]`, computed as `x·cos + [x2, x1]·[−sin, sin]` (the sign lives in
    /// the table, which saves a negation).
    ///
    /// # Panics
    /// When the tables were not built for `H` heads (a bug in the caller: the model builds them for its
    /// own head counts).
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, t, h, d] = x.dims();
        let (_, cos, sin) = self
            .by_heads
            .iter()
            .find(|(heads, _, _)| *heads == h)
            .unwrap_or_else(|| panic!("RoPE tables were not built for {h} heads"));
        let x1 = x.clone().slice([0..b, 0..t, 0..h, 0..d / 2]);
        let x2 = x.clone().slice([0..b, 0..t, 0..h, d / 2..d]);
        let swapped = Tensor::cat(vec![x2, x1], 3);
        x * cos.clone() + swapped * sin.clone()
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
        let tables = rope.tables::<TestBackend>(&[0, 1], 1, 2, &[1], &device);
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
