//! The SwiGLU feed-forward block, and SwiGLU's math: `silu(a)⊙b` and its closed-form backward,
//! recorded as one autodiff node under training (see [`crate::fused`]), one SIMD pass on flex.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::ops::FloatTensor;

use crate::fused::{cast, float, on_autodiff, primitive, record, register, Ad};
use crate::linear::Linear;

/// `down_proj(silu(gate_proj(x)) · up_proj(x))`.
///
/// # Shapes
/// - input/output: `[..., d]`
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[I, d]`.
    pub gate_proj: Linear<B>,
    /// `[I, d]`.
    pub up_proj: Linear<B>,
    /// `[d, I]`.
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// A randomly initialised block of width `intermediate` (HF's init: zero biases when `bias`, as
    /// Llama's `mlp_bias`).
    pub fn init(
        hidden: usize,
        intermediate: usize,
        bias: bool,
        std: f64,
        device: &B::Device,
    ) -> Self {
        Self {
            gate_proj: Linear::init(hidden, intermediate, bias, std, device),
            up_proj: Linear::init(hidden, intermediate, bias, std, device),
            down_proj: Linear::init(intermediate, hidden, bias, std, device),
        }
    }

    /// Applies the block.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let gate = self.gate_proj.forward(x.clone());
        let up = self.up_proj.forward(x);
        self.down_proj.forward(swiglu(gate, up))
    }
}

// SwiGLU, `silu(a)⊙b`, as one autodiff node.

/// `silu(gate) ⊙ up`: one fused node under autodiff (see the [`crate::fused`] docs), one SIMD
/// pass on
/// flex, the plain composition otherwise.
///
/// # Shapes
/// - `gate`, `up`: `[..., I]` → `[..., I]`
pub(crate) fn swiglu<B: Backend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Tensor<B, D> {
    let dims = gate.dims();
    let n = dims.iter().product::<usize>();
    on_autodiff!(B, I, C => {
        let y = swiglu_node::<I, C>(cast(gate.reshape([n])), cast(up.reshape([n])));
        cast::<Tensor<Ad<I, C>, 1>, Tensor<B, 1>>(y).reshape(dims)
    });
    swiglu_forward(gate.reshape([n]), up.reshape([n])).reshape(dims)
}

/// `silu(gate)⊙up` on the inner backend: one SIMD pass on flex, the composition elsewhere.
pub(crate) fn swiglu_forward<I: Backend>(gate: Tensor<I, 1>, up: Tensor<I, 1>) -> Tensor<I, 1> {
    #[cfg(feature = "flex")]
    if let Some(out) = laconic_kernels::flex::swiglu(&gate, &up) {
        return out;
    }
    silu(gate) * up
}

/// What the backward needs: both inputs (the sigmoid is recomputed).
#[derive(Debug, Clone)]
struct SwigluState<B: Backend> {
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
}

#[derive(Debug)]
struct SwigluBackward;

impl<B: Backend> Backward<B, 2> for SwigluBackward {
    type State = SwigluState<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_gate, node_up] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = float::<B, 1>(grads.consume::<B>(&ops.node));
        let (gate, up) = (float::<B, 1>(ops.state.gate), float::<B, 1>(ops.state.up));
        let (grad_gate, grad_up) =
            swiglu_backward(grad, gate, up, (node_gate.is_some(), node_up.is_some()));
        register(grads, node_gate, grad_gate);
        register(grads, node_up, grad_up);
    }
}

/// `(∂gate, ∂up)` of `y = silu(a)⊙b` for the upstream gradient `g` (each only when wanted; the flex
/// kernel computes both in one pass): `∂a = g⊙b⊙σ(a)(1 + a(1 − σ(a)))`, `∂b = g⊙silu(a)`.
///
/// # Shapes
/// - all `[n]`
pub(crate) fn swiglu_backward<B: Backend>(
    grad: Tensor<B, 1>,
    gate: Tensor<B, 1>,
    up: Tensor<B, 1>,
    (want_gate, want_up): (bool, bool),
) -> (Option<Tensor<B, 1>>, Option<Tensor<B, 1>>) {
    #[cfg(feature = "flex")]
    if let Some((grad_gate, grad_up)) = laconic_kernels::flex::swiglu_grad(&grad, &gate, &up) {
        return (Some(grad_gate), Some(grad_up));
    }
    let sig = sigmoid(gate.clone());
    let silu = gate.clone() * sig.clone();
    let grad_up = want_up.then(|| grad.clone() * silu);
    // σ(a)(1 + a(1 − σ(a))) = σ(a) + a·σ(a) − a·σ(a)², with a·σ(a) = silu(a).
    let grad_gate = want_gate.then(|| {
        let dsilu = sig.clone() * (gate.clone() - gate * sig).add_scalar(1.0);
        grad * up * dsilu
    });
    (grad_gate, grad_up)
}

/// The fused node on `Autodiff<I, C>`.
///
/// # Shapes
/// - `gate`, `up`: `[n]` → `[n]`
fn swiglu_node<I: Backend, C: CheckpointStrategy>(
    gate: Tensor<Ad<I, C>, 1>,
    up: Tensor<Ad<I, C>, 1>,
) -> Tensor<Ad<I, C>, 1> {
    let gate = gate.into_primitive().tensor();
    let up = up.into_primitive().tensor();
    let output = primitive(swiglu_forward(
        float::<I, 1>(gate.primitive.clone()),
        float::<I, 1>(up.primitive.clone()),
    ));
    record!(
        C,
        SwigluBackward,
        [gate, up],
        output,
        SwigluState {
            gate: gate.primitive,
            up: up.primitive,
        }
    )
}

#[cfg(test)]
mod node_tests {
    use super::*;
    use crate::fused::tests::{assert_close, random};
    use crate::TestBackend;

    /// Values and gradients of the fused node equal autodiff through the composition; on flex the node
    /// runs the SIMD kernels (`n` leaves a tail after the SIMD body and spans several blocks).
    #[test]
    fn fused_node_matches_composition() {
        check::<TestBackend>(40);
        #[cfg(feature = "flex")]
        for n in [40, 3, 70_001] {
            check::<burn::backend::Flex>(n);
        }
    }

    fn check<I: Backend>(n: usize) {
        let mut stream = crate::seed::Stream::new(13);
        let gate = random::<I, 1>(&mut stream, [n], 3.0);
        let up = random::<I, 1>(&mut stream, [n], 1.0);
        let upstream = random::<I, 1>(&mut stream, [n], 1.0);
        let run = |fused: bool| {
            let a = Tensor::<Ad<I>, 1>::from_inner(gate.clone()).require_grad();
            let b = Tensor::<Ad<I>, 1>::from_inner(up.clone()).require_grad();
            let y = if fused {
                swiglu_node(a.clone(), b.clone())
            } else {
                silu(a.clone()) * b.clone()
            };
            let loss = (y.clone() * Tensor::from_inner(upstream.clone())).sum();
            let grads = loss.backward();
            (y.inner(), a.grad(&grads).unwrap(), b.grad(&grads).unwrap())
        };
        let (y0, ga0, gb0) = run(false);
        let (y1, ga1, gb1) = run(true);
        assert_close(y0, y1);
        assert_close(ga0, ga1);
        assert_close(gb0, gb1);
    }
}
