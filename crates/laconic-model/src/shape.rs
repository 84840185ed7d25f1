//! `DenseShape`: the size of a dense Qwen3 decoder in the numbers of its `config.json`, for models
//! built from random weights — benchmarks, memory plans, tests at a published model's size. The
//! default is Qwen3-0.6B; [`DenseShape::paper_models`] lists the dense Qwen3 models the paper trains.

use crate::config::DecoderConfig;
use crate::error::Result;

/// The shape of a dense Qwen3 model (tied embeddings, RoPE θ = 1e6, RMSNorm ε = 1e-6, as the published
/// Qwen3 models). Every default is Qwen3-0.6B's (`config.json` of Qwen/Qwen3-0.6B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseShape {
    /// Decoder layers (`num_hidden_layers`).
    pub layers: usize,
    /// Vocabulary size (`vocab_size`).
    pub vocab: usize,
    /// Hidden size (`hidden_size`).
    pub hidden: usize,
    /// MLP width (`intermediate_size`).
    pub inter: usize,
    /// Query heads (`num_attention_heads`).
    pub heads: usize,
    /// Key/value heads (`num_key_value_heads`).
    pub kv_heads: usize,
    /// Head dimension (`head_dim`).
    pub head_dim: usize,
}

impl Default for DenseShape {
    fn default() -> Self {
        Self::QWEN3_0_6B
    }
}

impl DenseShape {
    /// Qwen3-0.6B: 596,049,920 parameters.
    pub const QWEN3_0_6B: Self = Self::qwen3(28, 1024, 3072, 16);
    /// Qwen3-1.7B.
    pub const QWEN3_1_7B: Self = Self::qwen3(28, 2048, 6144, 16);
    /// Qwen3-4B (the Instruct and Thinking checkpoints share it).
    pub const QWEN3_4B: Self = Self::qwen3(36, 2560, 9728, 32);

    /// A Qwen3 of the published family: 151,936 tokens, 8 key/value heads of 128.
    const fn qwen3(layers: usize, hidden: usize, inter: usize, heads: usize) -> Self {
        Self {
            layers,
            vocab: 151_936,
            hidden,
            inter,
            heads,
            kv_heads: 8,
            head_dim: 128,
        }
    }

    /// The dense Qwen3 models the paper trains, by name.
    pub fn paper_models() -> [(&'static str, Self); 3] {
        [
            ("Qwen3-0.6B", Self::QWEN3_0_6B),
            ("Qwen3-1.7B", Self::QWEN3_1_7B),
            ("Qwen3-4B", Self::QWEN3_4B),
        ]
    }

    /// This shape with `layers` decoder layers (a shorter model for a quick run).
    pub fn with_layers(self, layers: usize) -> Self {
        Self { layers, ..self }
    }

    /// The `config.json` of this shape.
    ///
    /// # Errors
    /// When the shape is invalid (e.g. query heads not a multiple of key/value heads).
    pub fn config(&self) -> Result<DecoderConfig> {
        let text = format!(
            r#"{{"model_type": "qwen3", "vocab_size": {}, "hidden_size": {}, "intermediate_size": {},
            "num_hidden_layers": {}, "num_attention_heads": {}, "num_key_value_heads": {}, "head_dim": {},
            "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": true}}"#,
            self.vocab,
            self.hidden,
            self.inter,
            self.layers,
            self.heads,
            self.kv_heads,
            self.head_dim
        );
        DecoderConfig::from_json_str(&text, "<dense shape>")
    }

    /// The length of every parameter of this shape, in the model's order (embeddings tied): what a
    /// gradient all-reduce moves.
    pub fn parameter_numels(&self) -> Vec<usize> {
        let (d, q, kv) = (
            self.hidden,
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
        );
        let layer = [
            d * q,
            d * kv,
            d * kv,
            q * d,
            self.head_dim,
            self.head_dim,
            d,
            d,
            d * self.inter,
            d * self.inter,
            self.inter * d,
        ];
        let mut numels = vec![self.vocab * d];
        for _ in 0..self.layers {
            numels.extend(layer);
        }
        numels.push(d);
        numels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Qwen3-0.6B's published count (`model.num_parameters()` in transformers), and the model built
    /// from the config holds the parameters `parameter_numels` lists.
    #[test]
    fn the_default_is_qwen3_0_6b() {
        let shape = DenseShape::default();
        assert_eq!(shape.parameter_numels().iter().sum::<usize>(), 596_049_920);
        let config = shape.config().unwrap();
        assert_eq!(
            (
                config.hidden_size,
                config.num_hidden_layers,
                config.vocab_size
            ),
            (1024, 28, 151_936)
        );
        let small = DenseShape {
            vocab: 32,
            hidden: 16,
            inter: 24,
            heads: 4,
            kv_heads: 2,
            head_dim: 8,
            ..shape.with_layers(2)
        };
        let model = crate::CausalLm::<crate::TestBackend>::init(
            &small.config().unwrap(),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            small.parameter_numels().iter().sum::<usize>(),
            burn::module::Module::num_params(&model)
        );
    }
}
