//! Masked softmax attention as one autodiff node that keeps the attention weights for its backward.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module;
use burn::tensor::ops::{AttentionModuleOptions, FloatTensor};

use super::{cast, float, on_autodiff, primitive, record, register, Ad};

/// `softmax(q·kᵀ·scale, masked)·v`: one fused node under autodiff (see the [module docs](super)),
/// burn's attention op otherwise.
///
/// # Shapes
/// - `q`: `[B, H, Q, D]`, `k`, `v`: `[B, H, S, D]`, `mask`: `[B, H, Q, S]` (`true` = masked; every row
///   keeps at least one position) → `[B, H, Q, D]`
pub(crate) fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
    scale: f64,
) -> Tensor<B, 4> {
    on_autodiff!(B, I => {
        let mask = Tensor::<I, 4, Bool>::from_primitive(cast(mask.into_primitive()));
        cast(attention_node::<I>(cast(q), cast(k), cast(v), mask, scale))
    });
    let options = AttentionModuleOptions {
        scale: Some(scale),
        softcap: None,
        is_causal: false,
    };
    module::attention(q, k, v, Some(mask), None, options)
}

/// What the backward needs: the inputs and the attention weights `p` (`[B, H, Q, S]`).
#[derive(Debug, Clone)]
struct AttentionState<B: Backend> {
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    weights: FloatTensor<B>,
    scale: f64,
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: Backend> Backward<B, 3> for AttentionBackward {
    type State = AttentionState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = float::<B, 4>(grads.consume::<B>(&ops.node));
        let state = ops.state;
        let (q, k, v) = (
            float::<B, 4>(state.q),
            float::<B, 4>(state.k),
            float::<B, 4>(state.v),
        );
        let weights = float::<B, 4>(state.weights);
        let grad_v = node_v
            .is_some()
            .then(|| weights.clone().swap_dims(2, 3).matmul(grad.clone()));
        // ∂z = p ⊙ (∂p − Σ_s p⊙∂p), the softmax backward; the scale goes on the narrower ∂q and ∂k.
        let grad_weights = grad.matmul(v.swap_dims(2, 3));
        let row_dot = (grad_weights.clone() * weights.clone()).sum_dim(3);
        let grad_scores = weights * (grad_weights - row_dot);
        let grad_q = node_q
            .is_some()
            .then(|| grad_scores.clone().matmul(k) * state.scale);
        let grad_k = node_k
            .is_some()
            .then(|| grad_scores.swap_dims(2, 3).matmul(q) * state.scale);
        register(grads, node_q, grad_q);
        register(grads, node_k, grad_k);
        register(grads, node_v, grad_v);
    }
}

/// The fused node on `Autodiff<I>`.
fn attention_node<I: Backend>(
    q: Tensor<Ad<I>, 4>,
    k: Tensor<Ad<I>, 4>,
    v: Tensor<Ad<I>, 4>,
    mask: Tensor<I, 4, Bool>,
    scale: f64,
) -> Tensor<Ad<I>, 4> {
    let (q, k, v) = (
        q.into_primitive().tensor(),
        k.into_primitive().tensor(),
        v.into_primitive().tensor(),
    );
    let (inner_q, inner_k, inner_v) = (
        float::<I, 4>(q.primitive.clone()),
        float::<I, 4>(k.primitive.clone()),
        float::<I, 4>(v.primitive.clone()),
    );
    let scores = (inner_q * scale).matmul(inner_k.swap_dims(2, 3));
    let weights = softmax(scores.mask_fill(mask, f32::NEG_INFINITY), 3);
    let output = primitive(weights.clone().matmul(inner_v));
    record!(
        AttentionBackward,
        [q, k, v],
        output,
        AttentionState {
            q: q.primitive,
            k: k.primitive,
            v: v.primitive,
            weights: primitive(weights),
            scale,
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::tests::{assert_close, random};
    use crate::TestBackend;

    /// Values and gradients of the fused node equal autodiff through the composition, with a causal
    /// mask and one query group longer than the keys (grouped heads folded into the query axis).
    #[test]
    fn fused_node_matches_composition() {
        check::<TestBackend>();
        #[cfg(feature = "flex")]
        check::<burn::backend::Flex>();
    }

    fn check<I: Backend>() {
        let (b, h, q_len, s, d, scale) = (2, 2, 6, 3, 4, 0.5);
        let q = random::<I, 4>([b, h, q_len, d], 1.0);
        let k = random::<I, 4>([b, h, s, d], 1.0);
        let v = random::<I, 4>([b, h, s, d], 1.0);
        let upstream = random::<I, 4>([b, h, q_len, d], 1.0);
        let device = Default::default();
        // Query row i sees keys 0..=i mod 3.
        let mask = Tensor::<I, 2, Int>::from_data(
            TensorData::new(
                (0..q_len * s)
                    .map(|i| i64::from(i % s > (i / s) % s))
                    .collect::<Vec<_>>(),
                [q_len, s],
            ),
            &device,
        )
        .equal_elem(1)
        .reshape([1, 1, q_len, s])
        .expand([b, h, q_len, s]);
        let run = |fused: bool| {
            let track = |x: &Tensor<I, 4>| Tensor::<Ad<I>, 4>::from_inner(x.clone()).require_grad();
            let (tq, tk, tv) = (track(&q), track(&k), track(&v));
            let y = if fused {
                attention_node(tq.clone(), tk.clone(), tv.clone(), mask.clone(), scale)
            } else {
                let scores = tq.clone().matmul(tk.clone().swap_dims(2, 3)) * scale;
                let mask = Tensor::<Ad<I>, 4, Bool>::from_inner(mask.clone());
                softmax(scores.mask_fill(mask, f32::NEG_INFINITY), 3).matmul(tv.clone())
            };
            let loss = (y.clone() * Tensor::from_inner(upstream.clone())).sum();
            let grads = loss.backward();
            (
                y.inner(),
                tq.grad(&grads).unwrap(),
                tk.grad(&grads).unwrap(),
                tv.grad(&grads).unwrap(),
            )
        };
        let (y0, gq0, gk0, gv0) = run(false);
        let (y1, gq1, gk1, gv1) = run(true);
        assert_close(y0, y1);
        assert_close(gq0, gq1);
        assert_close(gk0, gk1);
        assert_close(gv0, gv1);
    }
}
