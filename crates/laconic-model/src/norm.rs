//! `RmsNorm` with Hugging Face's parameter name (`weight`), computed as Qwen does, and its math: the
//! forward and the closed-form backward, recorded as one autodiff node under training (see
//! [`crate::fused`]) and run by one pass per row on flex (laconic-kernels).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;

use crate::fused::{cast, float, on_autodiff, primitive, record, register, Ad};

/// Root-mean-square normalisation: `y = x / sqrt(mean(x²) + eps) · weight`.
///
/// # Shapes
/// - input: `[..., d]`
/// - output: `[..., d]`
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// Per-feature scale `[d]`, initialised to ones.
    pub weight: Param<Tensor<B, 1>>,
    /// Added to the mean square for numerical stability.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// A norm over `d` features with unit scale.
    pub fn init(d: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: Initializer::Ones.init([d], device),
            eps,
        }
    }

    /// Normalises the last dimension (one fused node under autodiff, see [`crate::fused`]).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        rms_norm(x, self.weight.val(), self.eps)
    }
}

// RMSNorm as one autodiff node.

/// `x / √(mean(x²) + eps) · weight` over the last dimension: one fused node under autodiff (see
/// [`crate::fused`]), the plain composition otherwise.
///
/// # Shapes
/// - `x`: `[..., d]`, `weight`: `[d]` → `[..., d]`
pub(crate) fn rms_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, D> {
    let dims = x.dims();
    let d = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    on_autodiff!(B, I, C => {
        let y = rms_norm_node::<I, C>(cast(x.reshape([rows, d])), cast(weight), eps);
        cast::<Tensor<Ad<I, C>, 2>, Tensor<B, 2>>(y).reshape(dims)
    });
    let (y, _) = rms_norm_forward(x.reshape([rows, d]), weight, eps);
    y.reshape(dims)
}

/// The composition of burn ops (values identical to the fused node's forward): the tests' reference.
#[cfg(test)]
fn composed<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, D> {
    let inv_rms = inverse_rms(x.clone(), eps);
    composed_with(x, inv_rms, weight)
}

/// `x·r·w` for a known `r = 1/rms`.
fn composed_with<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    inv_rms: Tensor<B, D>,
    weight: Tensor<B, 1>,
) -> Tensor<B, D> {
    x * inv_rms * weight.unsqueeze()
}

/// `1 / √(mean(x²) + eps)` over the last dimension, kept as a size-1 dimension.
fn inverse_rms<B: Backend, const D: usize>(x: Tensor<B, D>, eps: f64) -> Tensor<B, D> {
    // `1 / rms` as a division: burn-ndarray's `recip` is approximate, and its rounding depends on
    // the buffer's alignment, so two runs of one forward would differ.
    let rms = (x.powi_scalar(2).mean_dim(D - 1) + eps).sqrt();
    rms.ones_like() / rms
}

/// `(y, 1/rms)` on the inner backend: one pass per row on flex, burn ops elsewhere.
pub(crate) fn rms_norm_forward<I: Backend>(
    x: Tensor<I, 2>,
    weight: Tensor<I, 1>,
    eps: f64,
) -> (Tensor<I, 2>, Tensor<I, 2>) {
    #[cfg(feature = "flex")]
    if let Some(out) = laconic_kernels::flex::rms_norm(&x, &weight, eps) {
        return out;
    }
    let inv_rms = inverse_rms(x.clone(), eps);
    (composed_with(x, inv_rms.clone(), weight), inv_rms)
}

/// What the backward needs: the input, the weight and the per-row `1/rms` (`[n, 1]`).
#[derive(Debug, Clone)]
struct NormState<B: Backend> {
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    inv_rms: FloatTensor<B>,
}

#[derive(Debug)]
struct NormBackward;

impl<B: Backend> Backward<B, 2> for NormBackward {
    type State = NormState<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = float::<B, 2>(grads.consume::<B>(&ops.node));
        let state = ops.state;
        let (grad_x, grad_weight) = rms_norm_backward(
            float(state.x),
            float(state.weight),
            float(state.inv_rms),
            grad,
            (node_x.is_some(), node_weight.is_some()),
        );
        register(grads, node_x, grad_x);
        register(grads, node_weight, grad_weight);
    }
}

/// `(∂x, ∂w)` of `y = x·r·w`: `∂x = r·(g⊙w) − x·r³·⟨g⊙w, x⟩/d`, `∂w = Σ_rows g⊙x·r`.
///
/// # Shapes
/// - `x`, `grad`: `[n, d]`, `weight`: `[d]`, `inv_rms`: `[n, 1]`
pub(crate) fn rms_norm_backward<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 1>,
    inv_rms: Tensor<B, 2>,
    grad: Tensor<B, 2>,
    (want_x, want_weight): (bool, bool),
) -> (Option<Tensor<B, 2>>, Option<Tensor<B, 1>>) {
    #[cfg(feature = "flex")]
    if want_x {
        if let Some((grad_x, grad_weight)) =
            laconic_kernels::flex::rms_norm_grad(&x, &weight, &inv_rms, &grad, want_weight)
        {
            return (Some(grad_x), grad_weight);
        }
    }
    let d = x.dims()[1];
    let grad_weight = want_weight.then(|| {
        (grad.clone() * x.clone() * inv_rms.clone())
            .sum_dim(0)
            .reshape([d])
    });
    let grad_x = want_x.then(|| {
        let scaled = grad * weight.unsqueeze();
        let dot = (scaled.clone() * x.clone()).sum_dim(1);
        let coef = inv_rms.clone().powi_scalar(3) * dot / d as f64;
        scaled * inv_rms - x * coef
    });
    (grad_x, grad_weight)
}

/// The fused node on `Autodiff<I, C>`.
///
/// # Shapes
/// - `x`: `[n, d]`, `weight`: `[d]` → `[n, d]`
fn rms_norm_node<I: Backend, C: CheckpointStrategy>(
    x: Tensor<Ad<I, C>, 2>,
    weight: Tensor<Ad<I, C>, 1>,
    eps: f64,
) -> Tensor<Ad<I, C>, 2> {
    let x = x.into_primitive().tensor();
    let weight = weight.into_primitive().tensor();
    let (output, inv_rms) = rms_norm_forward(
        float::<I, 2>(x.primitive.clone()),
        float::<I, 1>(weight.primitive.clone()),
        eps,
    );
    let output = primitive(output);
    record!(
        C,
        NormBackward,
        [x, weight],
        output,
        NormState {
            x: x.primitive,
            weight: weight.primitive,
            inv_rms: primitive(inv_rms),
        }
    )
}

#[cfg(test)]
mod node_tests {
    use super::*;
    use crate::fused::tests::{assert_close, random};
    use crate::TestBackend;

    /// Values and gradients of the fused node equal autodiff through the composition (on flex, its
    /// forward and backward run the row kernels).
    #[test]
    fn fused_node_matches_composition() {
        check::<TestBackend>(6, 8);
        // On flex: rows over several tasks, and rows with a SIMD body and a tail.
        #[cfg(feature = "flex")]
        for (n, d) in [(6, 8), (130, 40)] {
            check::<burn::backend::Flex>(n, d);
        }
    }

    fn check<I: Backend>(n: usize, d: usize) {
        let mut stream = crate::seed::Stream::new(15);
        let eps = 1e-6;
        let x = random::<I, 2>(&mut stream, [n, d], 1.0);
        let weight = random::<I, 1>(&mut stream, [d], 1.0) + 1.0;
        let upstream = random::<I, 2>(&mut stream, [n, d], 1.0);
        let run = |fused: bool| {
            let x = Tensor::<Ad<I>, 2>::from_inner(x.clone()).require_grad();
            let w = Tensor::<Ad<I>, 1>::from_inner(weight.clone()).require_grad();
            let y = if fused {
                rms_norm_node(x.clone(), w.clone(), eps)
            } else {
                composed(x.clone(), w.clone(), eps)
            };
            let loss = (y.clone() * Tensor::from_inner(upstream.clone())).sum();
            let grads = loss.backward();
            (y.inner(), x.grad(&grads).unwrap(), w.grad(&grads).unwrap())
        };
        let (y0, gx0, gw0) = run(false);
        let (y1, gx1, gw1) = run(true);
        assert_close(y0, y1);
        assert_close(gx0, gx1);
        assert_close(gw0, gw1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn normalises_by_root_mean_square() {
        let device = Default::default();
        let norm = RmsNorm::<TestBackend>::init(2, 0.0, &device);
        // rms([3, 4]) = sqrt((9 + 16) / 2) = 3.5355…; 3 / 3.5355 = 0.8485, 4 / 3.5355 = 1.1314.
        let y = norm.forward(Tensor::<TestBackend, 2>::from_floats([[3.0, 4.0]], &device));
        y.into_data().assert_approx_eq::<f32>(
            &TensorData::from([[0.848_528, 1.131_371]]),
            Default::default(),
        );
    }
}
