//! One pre-norm decoder layer: attention and MLP, each wrapped in a residual.

use burn::module::Module;
use burn::prelude::*;

use crate::attention::Attention;
use crate::cache::KvCache;
use crate::config::Qwen3Config;
use crate::mlp::Mlp;
use crate::norm::RmsNorm;
use crate::rope::RopeTables;

/// `h = x + attn(norm₁(x)); y = h + mlp(norm₂(h))`.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// Feed-forward block.
    pub mlp: Mlp<B>,
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
}

impl<B: Backend> DecoderLayer<B> {
    /// A randomly initialised layer.
    pub fn init(config: &Qwen3Config, std: f64, device: &B::Device) -> Self {
        let (d, eps) = (config.hidden_size, config.rms_norm_eps);
        Self {
            self_attn: Attention::init(config, std, device),
            mlp: Mlp::init(d, config.intermediate_size, std, device),
            input_layernorm: RmsNorm::init(d, eps, device),
            post_attention_layernorm: RmsNorm::init(d, eps, device),
        }
    }

    /// Applies the layer.
    ///
    /// # Shapes
    /// - `x`: `[B, T, d]` → `[B, T, d]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: Tensor<B, 4, Bool>,
        cache: &mut KvCache<B>,
        layer: usize,
    ) -> Tensor<B, 3> {
        let h = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), rope, mask, cache, layer);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}
