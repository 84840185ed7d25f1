//! Rotary position embeddings in Qwen's rotate-half (NeoX) layout, with angles computed in f64.
//!
//! Not burn's `RotaryEncoding`, which interleaves pairs (GPT-J layout) and would silently scramble a
//! Qwen checkpoint.
//!
//! Under training the rotation and the move to the heads-first layout are one autodiff node whose
//! backward is the inverse rotation (see [`crate::fused`]); one pass on flex.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;

use crate::config::DecoderConfig;
use crate::fused::{cast, float, on_autodiff, primitive, record, register, Ad};
pub use crate::rope_scaling::RopeScaling;

/// Inverse frequencies `θ^(−2i/D)` for `i < D/2` (scaled by the checkpoint's `rope_scaling`, see
/// [`RopeScaling`]), in f64, and the factor the cos/sin tables are multiplied by (YaRN's; 1 otherwise).
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f64>,
    attention_factor: f64,
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
        Self {
            inv_freq,
            attention_factor: 1.0,
        }
    }

    /// The rotary embedding a config describes: its `head_dim`, `rope_theta` and `rope_scaling`.
    ///
    /// # Panics
    /// On a `rope_scaling` the config's validation refuses (a loaded config has passed it).
    pub fn for_config(config: &DecoderConfig) -> Self {
        let (head_dim, theta) = (config.head_dim(), config.rope_theta);
        let unscaled = Self::new(head_dim, theta);
        match config.rope_scaling_kind() {
            None => unscaled,
            Some(scaling) => {
                let (inv_freq, attention_factor) =
                    scaling.apply(&unscaled.inv_freq, head_dim, theta);
                Self {
                    inv_freq,
                    attention_factor,
                }
            }
        }
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
                    let scale = self.attention_factor;
                    ((s * scale) as f32, (c * scale) as f32)
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
        rotate_heads_first(x, &self.cos, &self.sin)
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

// RoPE plus the move to heads-first layout as one autodiff node; its backward is the inverse
// rotation (the same rotation with the sine negated) back into the projections' layout.

/// Rotates `x` by the tables and returns it heads-first: one fused node under autodiff (see
/// [`crate::fused`]), one pass on flex, `rotate(x).swap_dims(1, 2)` elsewhere.
///
/// # Shapes
/// - `x`: `[B, T, H, D]`, `cos`, `sin`: `[B, T, 1, D]` (signed sine) → `[B, H, T, D]`
pub(crate) fn rotate_heads_first<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Tensor<B, 4> {
    on_autodiff!(B, I, C => {
        let table = |t: &Tensor<B, 4>| cast::<Tensor<B, 4>, Tensor<Ad<I, C>, 4>>(t.clone()).inner();
        cast(rope_node::<I, C>(cast(x), table(cos), table(sin)))
    });
    rope_forward(x, cos.clone(), sin.clone())
}

/// `[B, T, H, D]` → rotated `[B, H, T, D]` on a plain backend.
pub(crate) fn rope_forward<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    if let Some(out) = laconic_kernels::flex::rotate_heads_first(&x, &cos, &sin) {
        return out;
    }
    rotate(x, cos, sin).swap_dims(1, 2)
}

/// The gradient of [`rope_forward`]: `[B, H, T, D]` → rotated back, `[B, T, H, D]`.
pub(crate) fn rope_backward<B: Backend>(
    grad: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    if let Some(out) = laconic_kernels::flex::unrotate_heads_last(&grad, &cos, &sin) {
        return out;
    }
    rotate(grad.swap_dims(1, 2), cos, sin.neg())
}

/// The tables (constants: no gradient reaches them).
#[derive(Debug, Clone)]
struct RopeState<B: Backend> {
    cos: FloatTensor<B>,
    sin: FloatTensor<B>,
}

#[derive(Debug)]
struct RopeBackward;

impl<B: Backend> Backward<B, 1> for RopeBackward {
    type State = RopeState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = float::<B, 4>(grads.consume::<B>(&ops.node));
        let grad_x = node_x
            .is_some()
            .then(|| rope_backward(grad, float(ops.state.cos), float(ops.state.sin)));
        register(grads, node_x, grad_x);
    }
}

/// The fused node on `Autodiff<I, C>`.
fn rope_node<I: Backend, C: CheckpointStrategy>(
    x: Tensor<Ad<I, C>, 4>,
    cos: Tensor<I, 4>,
    sin: Tensor<I, 4>,
) -> Tensor<Ad<I, C>, 4> {
    let x = x.into_primitive().tensor();
    let output = primitive(rope_forward(
        float::<I, 4>(x.primitive.clone()),
        cos.clone(),
        sin.clone(),
    ));
    record!(
        C,
        RopeBackward,
        [x],
        output,
        RopeState {
            cos: primitive(cos),
            sin: primitive(sin),
        }
    )
}

#[cfg(test)]
mod node_tests {
    use super::*;
    use crate::fused::tests::{assert_close, random};
    use crate::rope::Rope;
    use crate::TestBackend;

    /// Values and gradients of the fused node equal autodiff through the composition, at positions
    /// that differ between batch rows; on flex the node runs the one-pass kernels (a head width of 40
    /// leaves a tail after the SIMD body of each half).
    #[test]
    fn fused_node_matches_composition() {
        check::<TestBackend>(8);
        #[cfg(feature = "flex")]
        for d in [8, 40, 64] {
            check::<burn::backend::Flex>(d);
        }
    }

    fn check<I: Backend>(d: usize) {
        let mut stream = crate::seed::Stream::new(14);
        let (b, t, h) = (2, 3, 2);
        let positions = [0, 1, 2, 5, 6, 7];
        let tables = Rope::new(d, 10_000.0).tables::<Ad<I>>(&positions, b, t, &Default::default());
        let x = random::<I, 4>(&mut stream, [b, t, h, d], 1.0);
        let upstream = random::<I, 4>(&mut stream, [b, h, t, d], 1.0);
        let run = |fused: bool| {
            let x = Tensor::<Ad<I>, 4>::from_inner(x.clone()).require_grad();
            let y = if fused {
                rope_node(
                    x.clone(),
                    tables.cos.clone().inner(),
                    tables.sin.clone().inner(),
                )
            } else {
                tables.apply(x.clone()).swap_dims(1, 2)
            };
            let loss = (y.clone() * Tensor::from_inner(upstream.clone())).sum();
            let grads = loss.backward();
            (y.inner(), x.grad(&grads).unwrap())
        };
        let (y0, gx0) = run(false);
        let (y1, gx1) = run(true);
        assert_close(y0, y1);
        assert_close(gx0, gx1);
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
