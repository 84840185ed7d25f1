//! What one actor update holds in memory, from the model's shape and the update's knobs: parameters,
//! gradients, optimizer state, the activations the forward keeps for the backward, and the working
//! set of the backward itself. The accounting follows what the code saves (the fused nodes of
//! `laconic_model::fused`, the layer recompute node, the LM-head op of [`crate::head`]); the memory
//! table in `docs/performance.md` comes from it (`examples/memory_plan.rs`), and the same example
//! checks it against the peak RSS the update benchmark measures.

use laconic_model::{ActivationCheckpointing, AttentionBlocks, DecoderConfig};

use crate::{OptimConfig, ZeroStage};

/// Bytes per element of each kind of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision {
    /// A weight (and the activations computed from it).
    pub weight: usize,
    /// A gradient, as accumulated over micro-batches.
    pub gradient: usize,
    /// The optimizer's state per parameter (AdamW: two moments).
    pub optimizer: usize,
}

impl Precision {
    /// Everything in f32, as the CPU backends train today: 4 B weights and gradients, 8 B of moments.
    pub const F32: Self = Self {
        weight: 4,
        gradient: 4,
        optimizer: 8,
    };
    /// bf16 weights and activations, f32 gradients and AdamW moments (no separate f32 master copy).
    pub const BF16_WEIGHTS: Self = Self {
        weight: 2,
        gradient: 4,
        optimizer: 8,
    };
}

/// The bytes of one update, by what holds them. Activations count one micro-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpdateMemory {
    /// The model's parameters.
    pub weights: u64,
    /// Their accumulated gradients.
    pub gradients: u64,
    /// AdamW's moments.
    pub optimizer: u64,
    /// What the forward keeps for the backward: every layer's saved tensors (or, with layer
    /// recompute, every layer's input) and the final norm's and head's inputs.
    pub activations: u64,
    /// The head's phase of the backward, on top of the activations: its kept logits (when they fit
    /// `logprob_keep_logits_mib`) and its chunk buffers.
    pub head: u64,
    /// A layer's phase of the backward, on top of the activations: the recomputed layer (with
    /// recompute), the layer's gradient buffers and one attention tile. The head's buffers are gone by
    /// then, so the peak takes the larger of the two phases.
    pub layer: u64,
}

impl UpdateMemory {
    /// What one worker of a data-parallel run of `world` workers holds at ZeRO `stage`
    /// ([`crate::zero`]): from stage 1 on, its `1/W` of AdamW's moments. The gradients count whole
    /// at every stage: burn's backward returns a micro-batch's gradients all at once, so stage 2
    /// keeps only its shard of them from the mini-batch's reduce-scatter on (through the optimizer
    /// step), not at the backward's peak.
    pub fn per_worker(self, world: usize, stage: ZeroStage) -> Self {
        if stage == ZeroStage::Replicated || world <= 1 {
            return self;
        }
        Self {
            optimizer: self.optimizer.div_ceil(world as u64),
            ..self
        }
    }

    /// The peak: the static state, the activations and the larger backward phase.
    pub fn total(&self) -> u64 {
        self.weights
            + self.gradients
            + self.optimizer
            + self.activations
            + self.head.max(self.layer)
    }
}

/// The parameters of a model of `config`'s shape (a sparse layer: its experts and router).
pub fn parameter_count(config: &DecoderConfig) -> u64 {
    let (d, layers) = (config.hidden_size as u64, config.num_hidden_layers as u64);
    let (q, kv) = layer_widths(config);
    let embeddings = config.vocab_size as u64 * d;
    let head = if config.tie_word_embeddings {
        0
    } else {
        embeddings
    };
    let bias = if config.qkv_bias() { q + 2 * kv } else { 0 };
    let head_norms = if config.qk_norm() {
        2 * config.head_dim() as u64
    } else {
        0
    };
    let o_bias = if config.o_bias() { d } else { 0 };
    let attention = d * q + 2 * d * kv + q * d + bias + o_bias + head_norms;
    let mlp: u64 = (0..config.num_hidden_layers)
        .map(|layer| 3 * d * mlp_width(config, layer) + d * router_width(config, layer))
        .sum();
    embeddings + head + layers * (attention + 2 * d) + mlp + d
}

/// Query and key/value projection widths, `H·D` and `H_kv·D`.
fn layer_widths(config: &DecoderConfig) -> (u64, u64) {
    let head_dim = config.head_dim() as u64;
    (
        config.num_attention_heads as u64 * head_dim,
        config.num_kv_heads() as u64 * head_dim,
    )
}

/// The MLP width of `layer`: all experts of a sparse layer.
fn mlp_width(config: &DecoderConfig, layer: usize) -> u64 {
    if config.is_moe_layer(layer) {
        (config.num_experts() * config.moe_intermediate_size()) as u64
    } else {
        config.intermediate_size as u64
    }
}

/// The router's outputs per token of `layer` (none on a dense layer).
fn router_width(config: &DecoderConfig, layer: usize) -> u64 {
    if config.is_moe_layer(layer) {
        config.num_experts() as u64
    } else {
        0
    }
}

/// Elements per token one dense layer's fused nodes save for the backward: the input and normed
/// input, q and k before their head norms and after rotation, v, the attention output and its merged
/// copy, the residual and its norm, the MLP's gate, up and product, the norms' `1/rms` and the
/// attention's log-sum-exp.
fn layer_elements_per_token(config: &DecoderConfig) -> u64 {
    let d = config.hidden_size as u64;
    let (q, kv) = layer_widths(config);
    let width = config.intermediate_size as u64;
    let heads = config.num_attention_heads as u64;
    let inverse_rms = 2 + heads + config.num_kv_heads() as u64;
    4 * d + 4 * q + 3 * kv + 3 * width + inverse_rms + heads
}

/// The memory of one update on micro-batches of `tokens` tokens (sequences × padded length) with
/// `optim`'s knobs and `blocks` attention tiles, at `precision`.
pub fn update_memory(
    config: &DecoderConfig,
    tokens: usize,
    optim: &OptimConfig,
    blocks: AttentionBlocks,
    precision: Precision,
) -> UpdateMemory {
    let params = parameter_count(config);
    let tokens = tokens as u64;
    let bytes = precision.weight as u64;
    let (d, layers) = (config.hidden_size as u64, config.num_hidden_layers as u64);
    let (vocab, width) = (config.vocab_size as u64, config.intermediate_size as u64);
    let layer = tokens * layer_elements_per_token(config) * bytes;
    let (kept_per_layer, recomputed) = match optim.activation_checkpointing {
        ActivationCheckpointing::None => (layer, 0),
        ActivationCheckpointing::Layer => (tokens * d * bytes, layer),
    };
    // The last layer's output, the final norm's output and the head's input rows.
    let stack_end = 3 * tokens * d * bytes;
    // The head keeps its f32 logits when they fit the budget (and writes their gradient over them a
    // chunk at a time), else recomputes them chunk by chunk (logits, probabilities, gradient).
    let logits = tokens * vocab * 4;
    let chunk = optim.logprob_chunk_size as u64 * vocab * 4;
    let head = if logits <= optim.logprob_keep_logits_mib as u64 * (1 << 20) {
        logits + chunk
    } else {
        4 * chunk
    };
    // A layer's backward holds a few gradients as wide as the MLP and the residual stream at once.
    let gradients = tokens * (2 * width + 4 * d) * bytes;
    // One tile of scores, probabilities and their gradient (f32) per key/value head group.
    let n_rep = (config.num_attention_heads / config.num_kv_heads()) as u64;
    let tile = 3
        * 4
        * config.num_kv_heads() as u64
        * n_rep
        * (blocks.query_block * blocks.key_block) as u64;
    UpdateMemory {
        weights: params * bytes,
        gradients: params * precision.gradient as u64,
        optimizer: params * precision.optimizer as u64,
        activations: layers * kept_per_layer + stack_end,
        head,
        layer: recomputed + gradients + tile,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> DecoderConfig {
        DecoderConfig::from_json_str(text, "config.json").unwrap()
    }

    /// Qwen3-0.6B has 596,049,920 parameters (0.6B with tied embeddings; `model.num_parameters()` in
    /// transformers) and R1-Distill-Qwen-1.5B 1,777,088,000.
    #[test]
    fn parameter_counts_match_the_published_models() {
        let qwen3 = laconic_model::DenseShape::QWEN3_0_6B.config().unwrap();
        assert_eq!(parameter_count(&qwen3), 596_049_920);
        let r1 = config(
            r#"{"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536,
            "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
            "num_key_value_heads": 2, "tie_word_embeddings": false}"#,
        );
        assert_eq!(parameter_count(&r1), 1_777_088_000);
    }

    #[test]
    fn zero_divides_the_optimizer_state_alone() {
        let qwen3 = laconic_model::DenseShape::QWEN3_0_6B.config().unwrap();
        let blocks = AttentionBlocks::default();
        let whole = update_memory(
            &qwen3,
            1024,
            &OptimConfig::default(),
            blocks,
            Precision::F32,
        );
        assert_eq!(whole.per_worker(4, ZeroStage::Replicated), whole);
        assert_eq!(whole.per_worker(1, ZeroStage::ShardedGradients), whole);
        for stage in [ZeroStage::ShardedState, ZeroStage::ShardedGradients] {
            let shard = whole.per_worker(4, stage);
            assert_eq!(shard.optimizer, 596_049_920 * 8 / 4);
            assert_eq!(
                UpdateMemory {
                    optimizer: whole.optimizer,
                    ..shard
                },
                whole
            );
        }
    }

    /// Recompute keeps one `d`-wide tensor per layer instead of the layer's saved set, and adds one
    /// recomputed layer to the backward.
    #[test]
    fn recompute_trades_saved_layers_for_one_recomputed_layer() {
        let qwen3 = config(
            r#"{"model_type": "qwen3", "vocab_size": 64, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 4}"#,
        );
        let blocks = AttentionBlocks::default();
        let plain = OptimConfig::default();
        let recompute = OptimConfig {
            activation_checkpointing: ActivationCheckpointing::Layer,
            ..OptimConfig::default()
        };
        let a = update_memory(&qwen3, 100, &plain, blocks, Precision::F32);
        let b = update_memory(&qwen3, 100, &recompute, blocks, Precision::F32);
        // Per token per layer: 4·8 + 4·8 + 3·4 + 3·16 + (2 + 2 + 1) + 2 = 131 elements.
        let layer = 100 * 131 * 4;
        assert_eq!(a.activations - b.activations, 3 * (layer - 100 * 8 * 4));
        assert_eq!(b.layer - a.layer, layer);
        assert_eq!(a.head, b.head);
        assert_eq!(a.weights, b.weights);
    }
}
