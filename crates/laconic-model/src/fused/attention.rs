//! Blocked (memory-efficient) attention as one autodiff node: the forward keeps q, k, v, the output
//! and the per-row log-sum-exp, and the backward recomputes the scores tile by tile ([`crate::flash`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;

use super::{cast, float, on_autodiff, primitive, record, register, Ad};
use crate::flash::{self, Blocked};

/// `softmax(q·kᵀ·scale, masked)·v` by blocks: one fused node under autodiff (see the
/// [module docs](super)), the blocked forward otherwise.
///
/// # Shapes
/// - `q`: `[B, H_kv, n_rep·T, D]` (folded, repeat-major), `k`, `v`: `[B, H_kv, S + T, D]` →
///   `[B, H_kv, n_rep·T, D]`
pub(crate) fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    attn: &Blocked,
) -> Tensor<B, 4> {
    on_autodiff!(B, I => cast(attention_node::<I>(cast(q), cast(k), cast(v), attn)));
    flash::forward(q, k, v, attn).0
}

/// What the backward needs: the inputs, the output and the per-row log-sum-exp (all `O(T)`).
#[derive(Debug, Clone)]
struct AttentionState<B: Backend> {
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    output: FloatTensor<B>,
    lse: FloatTensor<B>,
    attn: Blocked,
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: Backend> Backward<B, 3> for AttentionBackward {
    type State = AttentionState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = float::<B, 4>(grads.consume::<B>(&ops.node));
        let state = ops.state;
        let (grad_q, grad_k, grad_v) = flash::backward(
            float::<B, 4>(state.q),
            float::<B, 4>(state.k),
            float::<B, 4>(state.v),
            float::<B, 4>(state.output),
            float::<B, 4>(state.lse),
            grad,
            &state.attn,
        );
        register(grads, node_q, Some(grad_q));
        register(grads, node_k, Some(grad_k));
        register(grads, node_v, Some(grad_v));
    }
}

/// The fused node on `Autodiff<I>`.
fn attention_node<I: Backend>(
    q: Tensor<Ad<I>, 4>,
    k: Tensor<Ad<I>, 4>,
    v: Tensor<Ad<I>, 4>,
    attn: &Blocked,
) -> Tensor<Ad<I>, 4> {
    let (q, k, v) = (
        q.into_primitive().tensor(),
        k.into_primitive().tensor(),
        v.into_primitive().tensor(),
    );
    let (output, lse) = flash::forward(
        float::<I, 4>(q.primitive.clone()),
        float::<I, 4>(k.primitive.clone()),
        float::<I, 4>(v.primitive.clone()),
        attn,
    );
    let output = primitive(output);
    record!(
        AttentionBackward,
        [q, k, v],
        output.clone(),
        AttentionState {
            q: q.primitive,
            k: k.primitive,
            v: v.primitive,
            output,
            lse: primitive(lse),
            attn: attn.clone(),
        }
    )
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::softmax;

    use super::*;
    use crate::flash::AttentionBlocks;
    use burn::tensor::Tolerance;

    use crate::fused::tests::{assert_close, random};
    use crate::mask::AttentionMask;
    use crate::TestBackend;

    /// Values and gradients of the fused node equal autodiff through the composition, with causal and
    /// padding masks, two query heads per key/value head, and tiles that do not divide the sequence.
    #[test]
    fn fused_node_matches_composition() {
        check::<TestBackend>();
        #[cfg(feature = "flex")]
        check::<burn::backend::Flex>();
    }

    fn check<I: Backend>() {
        let (b, h_kv, n_rep, t, d) = (2, 2, 2, 7, 4);
        let valid: Vec<bool> = (0..b * t).map(|i| i < t || i % t < 5).collect();
        let attn = Blocked {
            mask: AttentionMask::new(valid, b, 0, t),
            n_rep,
            scale: 0.5,
            blocks: AttentionBlocks {
                query_block: 3,
                key_block: 2,
            },
        };
        let q = random::<I, 4>([b, h_kv, n_rep * t, d], 1.0);
        let k = random::<I, 4>([b, h_kv, t, d], 1.0);
        let v = random::<I, 4>([b, h_kv, t, d], 1.0);
        let upstream = random::<I, 4>([b, h_kv, n_rep * t, d], 1.0);
        let run = |fused: bool| {
            let track = |x: &Tensor<I, 4>| Tensor::<Ad<I>, 4>::from_inner(x.clone()).require_grad();
            let (tq, tk, tv) = (track(&q), track(&k), track(&v));
            let y = if fused {
                attention_node(tq.clone(), tk.clone(), tv.clone(), &attn)
            } else {
                let scores = tq.clone().matmul(tk.clone().swap_dims(2, 3)) * attn.scale;
                let mask = attn.mask.dense::<Ad<I>>([h_kv, n_rep], &Default::default());
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
        // The f32 composition itself rounds: src/flash/tests.rs checks the tiles against f64.
        let (y0, gq0, gk0, gv0) = run(false);
        let (y1, gq1, gk1, gv1) = run(true);
        assert_close(y0, y1);
        for (a, b) in [(gq0, gq1), (gk0, gk1), (gv0, gv1)] {
            a.into_data()
                .assert_approx_eq::<f32>(&b.into_data(), Tolerance::rel_abs(2e-4, 2e-4));
        }
    }
}
