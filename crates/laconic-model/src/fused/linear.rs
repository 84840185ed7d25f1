//! The projection `x·Wᵀ` as one autodiff node whose weight gradient comes out in `W`'s own layout.
//!
//! Through burn's ops, `x.matmul(w.transpose())` records a transpose node, so the weight's gradient is
//! the transpose of a contiguous product: a strided view that gradient clipping and the optimizer then
//! walk element by element or copy. This node computes `∂W = gᵀ·x` (`[d_out, d_in]`) directly.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;

use super::{cast, float, on_autodiff, primitive, record, register, Ad};

/// `x·Wᵀ`: one fused node under autodiff, the skinny-product kernel or burn's product otherwise.
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `weight`: `[d_out, d_in]` → `[rows, d_out]`
pub(crate) fn matmul_transposed<B: Backend>(x: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
    on_autodiff!(B, I => cast(linear_node::<I>(cast(x), cast(weight))));
    plain(x, weight)
}

/// `x·Wᵀ` on a plain backend.
pub(super) fn plain<B: Backend>(x: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "flex")]
    if let Some(out) = crate::flex::skinny_product(&x, &weight) {
        return out;
    }
    x.matmul(weight.transpose())
}

/// Both operands.
#[derive(Debug, Clone)]
struct LinearState<B: Backend> {
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
}

#[derive(Debug)]
struct LinearBackward;

impl<B: Backend> Backward<B, 2> for LinearBackward {
    type State = LinearState<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = float::<B, 2>(grads.consume::<B>(&ops.node));
        let (x, weight) = (float::<B, 2>(ops.state.x), float::<B, 2>(ops.state.weight));
        let (grad_x, grad_weight) =
            backward(x, weight, grad, (node_x.is_some(), node_weight.is_some()));
        register(grads, node_x, grad_x);
        register(grads, node_weight, grad_weight);
    }
}

/// `(∂x, ∂W)` of `y = x·Wᵀ` for the upstream gradient `g`: `∂x = g·W`, `∂W = gᵀ·x` (each only when
/// wanted).
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `weight`: `[d_out, d_in]`, `grad`: `[rows, d_out]`
pub(super) fn backward<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    grad: Tensor<B, 2>,
    (want_x, want_weight): (bool, bool),
) -> (Option<Tensor<B, 2>>, Option<Tensor<B, 2>>) {
    let grad_weight = want_weight.then(|| grad.clone().transpose().matmul(x));
    let grad_x = want_x.then(|| grad.matmul(weight));
    (grad_x, grad_weight)
}

/// The fused node on `Autodiff<I>`.
fn linear_node<I: Backend>(x: Tensor<Ad<I>, 2>, weight: Tensor<Ad<I>, 2>) -> Tensor<Ad<I>, 2> {
    let x = x.into_primitive().tensor();
    let weight = weight.into_primitive().tensor();
    let output = primitive(plain(
        float::<I, 2>(x.primitive.clone()),
        float::<I, 2>(weight.primitive.clone()),
    ));
    record!(
        LinearBackward,
        [x, weight],
        output,
        LinearState {
            x: x.primitive,
            weight: weight.primitive,
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::tests::{assert_close, random};
    use crate::TestBackend;

    /// Values and gradients of the node equal autodiff through `x.matmul(w.transpose())`.
    #[test]
    fn fused_node_matches_composition() {
        check::<TestBackend>();
        #[cfg(feature = "flex")]
        check::<burn::backend::Flex>();
    }

    fn check<I: Backend>() {
        let x = random::<I, 2>([5, 7], 1.0);
        let weight = random::<I, 2>([3, 7], 1.0);
        let upstream = random::<I, 2>([5, 3], 1.0);
        let run = |fused: bool| {
            let x = Tensor::<Ad<I>, 2>::from_inner(x.clone()).require_grad();
            let w = Tensor::<Ad<I>, 2>::from_inner(weight.clone()).require_grad();
            let y = if fused {
                linear_node(x.clone(), w.clone())
            } else {
                x.clone().matmul(w.clone().transpose())
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
