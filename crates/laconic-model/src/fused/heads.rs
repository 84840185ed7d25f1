//! The change between attention's heads-first layout and the projections' positions-first one as one
//! autodiff node that leaves contiguous tensors on both sides (forward and backward).
//!
//! As a view (`swap_dims`), the swap costs nothing in the forward but hands every later op — and, in
//! the backward, every gradient — a strided tensor, which CPU backends copy or walk element by element.
//! On flex this node copies rows of `D` once instead, in both directions.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;

use super::{cast, float, on_autodiff, primitive, record, register, Ad};

/// Swaps axes 1 and 2 (`[B, T, H, D]` ↔ `[B, H, T, D]`): one node under autodiff, a contiguous copy on
/// flex, a strided view elsewhere.
pub(crate) fn swap_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    on_autodiff!(B, I => cast(swap_node::<I>(cast(x))));
    swap(x)
}

/// The swap on a plain backend.
pub(super) fn swap<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    if let Some(out) = crate::flex::swap_middle(&x) {
        return out;
    }
    x.swap_dims(1, 2)
}

#[derive(Debug)]
struct SwapBackward;

impl<B: Backend> Backward<B, 1> for SwapBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = float::<B, 4>(grads.consume::<B>(&ops.node));
        register(grads, node_x, node_x.is_some().then(|| swap(grad)));
    }
}

/// The fused node on `Autodiff<I>`.
fn swap_node<I: Backend>(x: Tensor<Ad<I>, 4>) -> Tensor<Ad<I>, 4> {
    let x = x.into_primitive().tensor();
    let output = primitive(swap(float::<I, 4>(x.primitive.clone())));
    record!(SwapBackward, [x], output, ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::tests::{assert_close, random};
    use crate::TestBackend;

    /// Values and gradients of the node equal autodiff through `swap_dims`, on the test backend and on
    /// flex (its copy kernel).
    #[test]
    fn fused_node_matches_swap_dims() {
        check::<TestBackend>();
        #[cfg(feature = "flex")]
        check::<burn::backend::Flex>();
    }

    fn check<I: Backend>() {
        let x = random::<I, 4>([2, 3, 4, 5], 1.0);
        let upstream = random::<I, 4>([2, 4, 3, 5], 1.0);
        let run = |fused: bool| {
            let x = Tensor::<Ad<I>, 4>::from_inner(x.clone()).require_grad();
            let y = if fused {
                swap_node(x.clone())
            } else {
                x.clone().swap_dims(1, 2)
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
