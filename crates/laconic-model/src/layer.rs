//! One pre-norm decoder layer: attention and a feed-forward block (dense or mixture-of-experts), each
//! wrapped in a residual.

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::attention::Attention;
use crate::cache::KvCache;
use crate::config::DecoderConfig;
use crate::mask::ForwardMask;
use crate::mlp::Mlp;
use crate::moe::{RouterAux, SparseMoeBlock};
use crate::norm::RmsNorm;
use crate::rope::RopeTables;

/// The feed-forward block of a layer: a dense SwiGLU MLP, or a sparse MoE block on the sparse layers of
/// a `qwen3_moe` model ([`DecoderConfig::is_moe_layer`]).
///
/// The variant name is not part of a parameter's name: the loader and saver skip burn's `Enum:`
/// containers, so both variants read HF's `mlp.*` keys (`mlp.gate_proj.weight`, `mlp.gate.weight`).
// One per layer, so the size gap between the variants (three projections inline vs a `Vec` of experts)
// costs nothing worth a `Box`, which burn's `Module` derive would also have to see through.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum FeedForward<B: Backend> {
    /// `down_proj(silu(gate_proj(x)) · up_proj(x))` of width `intermediate_size`.
    Dense(Mlp<B>),
    /// Top-k routing over `num_experts` experts of width `moe_intermediate_size`.
    Sparse(SparseMoeBlock<B>),
}

impl<B: Backend> FeedForward<B> {
    /// Applies the block; padding tokens (`valid` false) skip the experts of a sparse block.
    ///
    /// # Shapes
    /// - `x`: `[B, T, d]`, `valid`: row-major `[B, T]` → `[B, T, d]`
    pub fn forward(&self, x: Tensor<B, 3>, valid: &[bool]) -> (Tensor<B, 3>, Option<RouterAux<B>>) {
        match self {
            FeedForward::Dense(mlp) => (mlp.forward(x), None),
            FeedForward::Sparse(moe) => {
                let valid = (!valid.iter().all(|v| *v)).then_some(valid);
                let (y, aux) = moe.forward(x, valid);
                (y, Some(aux))
            }
        }
    }
}

/// What a training forward keeps of each decoder layer for the backward (verl's and Hugging Face's
/// `gradient_checkpointing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationCheckpointing {
    /// Every intermediate the backward needs: the fastest step, activations growing with the layers.
    #[default]
    None,
    /// Only each dense layer's input; the backward recomputes the layer. About one more forward per
    /// step, and activation memory of `d` floats per token per layer instead of `~12·d + 3·I`.
    /// Engaged on the autodiff backends with fused nodes (flex, ndarray, and CUDA / wgpu when built
    /// with those features); elsewhere, and on sparse (MoE) layers, the layer runs as under `None`.
    Layer,
}

/// `h = x + attn(norm₁(x)); y = h + mlp(norm₂(h))`.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// Feed-forward block, dense or sparse.
    pub mlp: FeedForward<B>,
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
}

impl<B: Backend> DecoderLayer<B> {
    /// A randomly initialised layer; `layer` is its index (it decides dense or sparse).
    pub fn init(config: &DecoderConfig, layer: usize, std: f64, device: &B::Device) -> Self {
        let (d, eps) = (config.hidden_size, config.rms_norm_eps);
        let mlp = if config.is_moe_layer(layer) {
            FeedForward::Sparse(SparseMoeBlock::init(config, std, device))
        } else {
            FeedForward::Dense(Mlp::init(
                d,
                config.intermediate_size,
                config.mlp_bias(),
                std,
                device,
            ))
        };
        Self {
            self_attn: Attention::init(config, std, device),
            mlp,
            input_layernorm: RmsNorm::init(d, eps, device),
            post_attention_layernorm: RmsNorm::init(d, eps, device),
        }
    }

    /// Applies the layer, returning the router statistics of a sparse layer.
    ///
    /// # Shapes
    /// - `x`: `[B, T, d]` → `[B, T, d]`; `valid`: row-major `[B, T]`, `false` on padding
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: &ForwardMask<B>,
        cache: &mut KvCache<B>,
        layer: usize,
        valid: &[bool],
    ) -> (Tensor<B, 3>, Option<RouterAux<B>>) {
        let h = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), rope, mask, cache, layer);
        let (y, aux) = self
            .mlp
            .forward(self.post_attention_layernorm.forward(h.clone()), valid);
        (h + y, aux)
    }

    /// [`Self::forward`] for a call that starts from an empty cache and keeps no cache afterwards,
    /// keeping only `x` for the backward when the backend allows it ([`ActivationCheckpointing::Layer`]);
    /// otherwise the plain forward, appending to `cache`.
    ///
    /// # Shapes
    /// - as [`Self::forward`]
    pub(crate) fn forward_checkpointed(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: &ForwardMask<B>,
        cache: &mut KvCache<B>,
        layer: usize,
        valid: &[bool],
    ) -> (Tensor<B, 3>, Option<RouterAux<B>>) {
        if mask.decode.is_none() {
            if let Some(y) = crate::fused::checkpointed_layer(self, &x, rope, &mask.blocked) {
                return (y, None);
            }
        }
        self.forward(x, rope, mask, cache, layer, valid)
    }
}
