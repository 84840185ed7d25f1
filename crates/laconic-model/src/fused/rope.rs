//! RoPE plus the move to heads-first layout as one autodiff node; its backward is the inverse rotation
//! (the same rotation with the sine negated) back into the projections' layout.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;

use super::{cast, float, on_autodiff, primitive, record, register, Ad};
use crate::rope::rotate;

/// Rotates `x` by the tables and returns it heads-first: one fused node under autodiff (see the
/// [module docs](super)), one pass on flex, `rotate(x).swap_dims(1, 2)` elsewhere.
///
/// # Shapes
/// - `x`: `[B, T, H, D]`, `cos`, `sin`: `[B, T, 1, D]` (signed sine) → `[B, H, T, D]`
pub(crate) fn rotate_heads_first<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Tensor<B, 4> {
    on_autodiff!(B, I => {
        let table = |t: &Tensor<B, 4>| cast::<Tensor<B, 4>, Tensor<Ad<I>, 4>>(t.clone()).inner();
        cast(rope_node::<I>(cast(x), table(cos), table(sin)))
    });
    forward(x, cos.clone(), sin.clone())
}

/// `[B, T, H, D]` → rotated `[B, H, T, D]` on a plain backend.
pub(super) fn forward<B: Backend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    if let Some(out) = crate::flex::rotate_heads_first(&x, &cos, &sin) {
        return out;
    }
    rotate(x, cos, sin).swap_dims(1, 2)
}

/// The gradient of [`forward`]: `[B, H, T, D]` → rotated back, `[B, T, H, D]`.
pub(super) fn backward<B: Backend>(
    grad: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    if let Some(out) = crate::flex::unrotate_heads_last(&grad, &cos, &sin) {
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
            .then(|| backward(grad, float(ops.state.cos), float(ops.state.sin)));
        register(grads, node_x, grad_x);
    }
}

/// The fused node on `Autodiff<I>`.
fn rope_node<I: Backend>(
    x: Tensor<Ad<I>, 4>,
    cos: Tensor<I, 4>,
    sin: Tensor<I, 4>,
) -> Tensor<Ad<I>, 4> {
    let x = x.into_primitive().tensor();
    let output = primitive(forward(
        float::<I, 4>(x.primitive.clone()),
        cos.clone(),
        sin.clone(),
    ));
    record!(
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
mod tests {
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
        let (b, t, h) = (2, 3, 2);
        let positions = [0, 1, 2, 5, 6, 7];
        let tables = Rope::new(d, 10_000.0).tables::<Ad<I>>(&positions, b, t, &Default::default());
        let x = random::<I, 4>([b, t, h, d], 1.0);
        let upstream = random::<I, 4>([b, h, t, d], 1.0);
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
