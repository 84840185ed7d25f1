//! Grouped-query self-attention of Qwen3 (per-head q/k RMSNorm) and Qwen2 (q/k/v biases).

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::cache::KvCache;
use crate::config::Qwen3Config;
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
    pub fn init(config: &Qwen3Config, std: f64, device: &B::Device) -> Self {
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
        let v = crate::fused::swap_heads(v);

        // 4. Append to the cache: [B, H_kv, S + T, D].
        let kv = cache.append(layer, k, v);

        // 5. Fold each group's query heads into the query axis: [B, H_kv, n_rep·T, D].
        let q = q.reshape([b, h_kv, n_rep * t, hd]);
        let out = match &mask.decode {
            // Decode: read the cache through strided views, no copy of the keys.
            Some(dense) => attend_by_matmul(q, kv.k, kv.v, dense.clone(), mask.blocked.scale),
            // Prefill and training: blocked attention, memory linear in S + T.
            None => crate::fused::attention(q, kv.k, kv.v, &mask.blocked),
        };

        // 6. Unfold and merge heads: [B, H, T, D] → [B, T, H·D] → [B, T, d].
        let out = crate::fused::swap_heads(out.reshape([b, h, t, hd])).reshape([b, t, h * hd]);
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
