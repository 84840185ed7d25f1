//! SwiGLU, `silu(a)⊙b`, as one autodiff node.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::ops::FloatTensor;

use super::{cast, float, on_autodiff, primitive, record, register, Ad};

/// `silu(gate) ⊙ up`: one fused node under autodiff (see the [module docs](super)), one SIMD pass on
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
    on_autodiff!(B, I => {
        let y = swiglu_node::<I>(cast(gate.reshape([n])), cast(up.reshape([n])));
        cast::<Tensor<Ad<I>, 1>, Tensor<B, 1>>(y).reshape(dims)
    });
    forward(gate.reshape([n]), up.reshape([n])).reshape(dims)
}

/// `silu(gate)⊙up` on the inner backend: one SIMD pass on flex, the composition elsewhere.
pub(super) fn forward<I: Backend>(gate: Tensor<I, 1>, up: Tensor<I, 1>) -> Tensor<I, 1> {
    #[cfg(feature = "flex")]
    if let Some(out) = crate::flex::swiglu(&gate, &up) {
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
            backward(grad, gate, up, (node_gate.is_some(), node_up.is_some()));
        register(grads, node_gate, grad_gate);
        register(grads, node_up, grad_up);
    }
}

/// `(∂gate, ∂up)` of `y = silu(a)⊙b` for the upstream gradient `g` (each only when wanted; the flex
/// kernel computes both in one pass): `∂a = g⊙b⊙σ(a)(1 + a(1 − σ(a)))`, `∂b = g⊙silu(a)`.
///
/// # Shapes
/// - all `[n]`
pub(super) fn backward<B: Backend>(
    grad: Tensor<B, 1>,
    gate: Tensor<B, 1>,
    up: Tensor<B, 1>,
    (want_gate, want_up): (bool, bool),
) -> (Option<Tensor<B, 1>>, Option<Tensor<B, 1>>) {
    #[cfg(feature = "flex")]
    if let Some((grad_gate, grad_up)) = crate::flex::swiglu_grad(&grad, &gate, &up) {
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

/// The fused node on `Autodiff<I>`.
///
/// # Shapes
/// - `gate`, `up`: `[n]` → `[n]`
fn swiglu_node<I: Backend>(gate: Tensor<Ad<I>, 1>, up: Tensor<Ad<I>, 1>) -> Tensor<Ad<I>, 1> {
    let gate = gate.into_primitive().tensor();
    let up = up.into_primitive().tensor();
    let output = primitive(forward(
        float::<I, 1>(gate.primitive.clone()),
        float::<I, 1>(up.primitive.clone()),
    ));
    record!(
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
mod tests {
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
        let gate = random::<I, 1>([n], 3.0);
        let up = random::<I, 1>([n], 1.0);
        let upstream = random::<I, 1>([n], 1.0);
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
