//! Grouped-query self-attention of Qwen3 (per-head q/k RMSNorm), Qwen2 (q/k/v biases) and Llama
//! (optional biases on every projection), and the
//! change between the heads-first and positions-first layouts as one autodiff node (see
//! [`crate::fused`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::cache::KvCache;
use crate::config::DecoderConfig;
use crate::fused::{cast, float, on_autodiff, primitive, record, register, Ad};
use crate::linear::Linear;
use crate::mask::ForwardMask;
use crate::norm::RmsNorm;
use crate::rope::RopeTables;

/// Self-attention with `num_attention_heads` query heads sharing `num_key_value_heads` key/value heads.
///
/// Grouped-query attention without copying keys: the `n_rep = H / H_kv` query heads of a group are
/// folded into the query axis (`[B, H_kv, n_rep·T, D]`), so each cached key is read once per group.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    // projections
    /// `[H·D, d]`.
    pub q_proj: Linear<B>,
    /// `[H_kv·D, d]`.
    pub k_proj: Linear<B>,
    /// `[H_kv·D, d]`.
    pub v_proj: Linear<B>,
    /// `[d, H·D]`.
    pub o_proj: Linear<B>,
    // norms (Qwen3 only)
    /// Per-head RMSNorm over `D` applied to queries before RoPE.
    pub q_norm: Option<RmsNorm<B>>,
    /// Per-head RMSNorm over `D` applied to keys before RoPE.
    pub k_norm: Option<RmsNorm<B>>,
    /// Query heads `H`.
    pub num_heads: usize,
    /// Key/value heads `H_kv`.
    pub num_kv_heads: usize,
    /// Head width `D`.
    pub head_dim: usize,
}

impl<B: Backend> Attention<B> {
    /// Randomly initialised attention for `config` (HF's init: `N(0, 0.02²)` weights, zero biases).
    pub fn init(config: &DecoderConfig, std: f64, device: &B::Device) -> Self {
        let (d, h, h_kv, hd) = (
            config.hidden_size,
            config.num_attention_heads,
            config.num_kv_heads(),
            config.head_dim(),
        );
        let qkv_bias = config.qkv_bias();
        let norm = || {
            config
                .qk_norm()
                .then(|| RmsNorm::init(hd, config.rms_norm_eps, device))
        };
        Self {
            q_proj: Linear::init(d, h * hd, qkv_bias, std, device),
            k_proj: Linear::init(d, h_kv * hd, qkv_bias, std, device),
            v_proj: Linear::init(d, h_kv * hd, qkv_bias, std, device),
            o_proj: Linear::init(h * hd, d, config.o_bias(), std, device),
            q_norm: norm(),
            k_norm: norm(),
            num_heads: h,
            num_kv_heads: h_kv,
            head_dim: hd,
        }
    }

    /// Query heads per key/value head.
    pub fn n_rep(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// Attends `x` to the cached keys of `layer` plus its own, appending its keys/values to the cache.
    ///
    /// # Shapes
    /// - `x`: `[B, T, d]`
    /// - returns: `[B, T, d]`
    ///
    /// `mask` says which cached and new columns each new token sees (built by the model per call).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: &ForwardMask<B>,
        cache: &mut KvCache<B>,
        layer: usize,
    ) -> Tensor<B, 3> {
        let [b, t, _] = x.dims();
        let (h, h_kv, hd, n_rep) = (
            self.num_heads,
            self.num_kv_heads,
            self.head_dim,
            self.n_rep(),
        );

        // 1. Project: [B, T, H·D] and [B, T, H_kv·D], split into heads.
        let q = self.q_proj.forward(x.clone()).reshape([b, t, h, hd]);
        let k = self.k_proj.forward(x.clone()).reshape([b, t, h_kv, hd]);
        let v = self.v_proj.forward(x).reshape([b, t, h_kv, hd]);

        // 2. Per-head RMSNorm over D (Qwen3).
        let q = match &self.q_norm {
            Some(norm) => norm.forward(q),
            None => q,
        };
        let k = match &self.k_norm {
            Some(norm) => norm.forward(k),
            None => k,
        };

        // 3. Rotate q and k and lay them out heads first: [B, H, T, D].
        let q = rope.heads_first(q);
        let k = rope.heads_first(k);
        let v = swap_heads(v);

        // 4. Append to the cache: [B, H_kv, S + T, D].
        let kv = cache.append(layer, k, v);

        // 5. Fold each group's query heads into the query axis: [B, H_kv, n_rep·T, D].
        let q = q.reshape([b, h_kv, n_rep * t, hd]);
        let out = match &mask.decode {
            // Decode: read the cache through strided views, no copy of the keys.
            Some(dense) => attend_by_matmul(q, kv.k, kv.v, dense.clone(), mask.blocked.scale),
            // Prefill and training: blocked attention, memory linear in S + T.
            None => crate::flash::attention(q, kv.k, kv.v, &mask.blocked),
        };

        // 6. Unfold and merge heads: [B, H, T, D] → [B, T, H·D] → [B, T, d].
        let out = swap_heads(out.reshape([b, h, t, hd])).reshape([b, t, h * hd]);
        self.o_proj.forward(out)
    }
}

/// `softmax(q·kᵀ·scale, masked) · v` with plain matrix products, which accept strided (cache-view) inputs.
///
/// # Shapes
/// - `q`: `[B, H_kv, Q, D]`, `k`, `v`: `[B, H_kv, S, D]`, `mask`: `[B, H_kv, Q, S]` → `[B, H_kv, Q, D]`
fn attend_by_matmul<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
    scale: f64,
) -> Tensor<B, 4> {
    let scores = q.matmul(k.swap_dims(2, 3)) * scale;
    let scores = scores.mask_fill(mask, f32::NEG_INFINITY);
    softmax(scores, 3).matmul(v)
}

// The change between attention's heads-first layout and the projections' positions-first one as
// one autodiff node that leaves contiguous tensors on both sides (forward and backward).  As a
// view (`swap_dims`), the swap costs nothing in the forward but hands every later op — and, in
// the backward, every gradient — a strided tensor, which CPU backends copy or walk element by
// element. On flex this node copies rows of `D` once instead, in both directions.

/// Swaps axes 1 and 2 (`[B, T, H, D]` ↔ `[B, H, T, D]`): one node under autodiff, a contiguous copy on
/// flex, a strided view elsewhere.
pub(crate) fn swap_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    on_autodiff!(B, I, C => cast(swap_node::<I, C>(cast(x))));
    swap_layout(x)
}

/// The swap on a plain backend.
pub(crate) fn swap_layout<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    if let Some(out) = laconic_kernels::flex::swap_middle(&x) {
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
        register(grads, node_x, node_x.is_some().then(|| swap_layout(grad)));
    }
}

/// The fused node on `Autodiff<I, C>`.
fn swap_node<I: Backend, C: CheckpointStrategy>(x: Tensor<Ad<I, C>, 4>) -> Tensor<Ad<I, C>, 4> {
    let x = x.into_primitive().tensor();
    let output = primitive(swap_layout(float::<I, 4>(x.primitive.clone())));
    record!(C, SwapBackward, [x], output, ())
}

#[cfg(test)]
mod node_tests {
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
        let mut stream = crate::seed::Stream::new(12);
        let x = random::<I, 4>(&mut stream, [2, 3, 4, 5], 1.0);
        let upstream = random::<I, 4>(&mut stream, [2, 4, 3, 5], 1.0);
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
