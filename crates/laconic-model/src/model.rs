//! `CausalLm`: the decoder stack and its LM head (`Qwen3ForCausalLM`, `Qwen2ForCausalLM`,
//! `LlamaForCausalLM` in Hugging Face terms).
//!
//! Field names mirror HF's parameter names (`model.layers.0.self_attn.q_proj.weight`), so a checkpoint
//! maps onto the module tree without a renaming table.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::prelude::*;

use crate::cache::KvCache;
use crate::config::DecoderConfig;
use crate::error::{Error, Result};
use crate::flash::AttentionBlocks;
use crate::layer::{ActivationCheckpointing, DecoderLayer};
use crate::layout::AttentionLayout;
use crate::linear::{project, Linear};
use crate::mask::ForwardMask;
use crate::moe::RouterAux;
use crate::norm::RmsNorm;
use crate::rope::Rope;

/// Standard deviation of HF's weight initialisation (`initializer_range`).
pub const INITIALIZER_RANGE: f64 = 0.02;

/// The decoder stack without the LM head (HF's `Qwen3Model`, `LlamaModel`).
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// Token embeddings `[V, d]`.
    pub embed_tokens: Embedding<B>,
    /// Decoder layers.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final norm.
    pub norm: RmsNorm<B>,
}

/// A decoder-only causal language model: Qwen3 (dense or mixture-of-experts), Qwen2 or Llama.
#[derive(Module, Debug)]
pub struct CausalLm<B: Backend> {
    /// The decoder stack.
    pub model: Decoder<B>,
    /// The LM head `[V, d]`; `None` when tied to `model.embed_tokens` (logits use the embedding matrix
    /// itself, so gradients reach it from both ends).
    pub lm_head: Option<Linear<B>>,
    #[module(skip)]
    config: DecoderConfig,
    /// The adapters' configuration when LoRA adapters are attached ([`crate::lora`]).
    #[module(skip)]
    pub(crate) lora: Option<crate::lora::LoraConfig>,
    /// Tile sizes of the blocked attention (a run setting, not part of the checkpoint).
    #[module(skip)]
    attention_blocks: AttentionBlocks,
    /// The rotary frequencies of `config` (its `rope_scaling` applied), computed once.
    #[module(skip)]
    rope: Rope,
}

impl<B: Backend> CausalLm<B> {
    /// A randomly initialised model (HF's scheme: `N(0, 0.02²)` weights, unit norms, zero biases), with
    /// every parameter sampled now (clones and `valid()` copies then share the same values).
    ///
    /// # Errors
    /// When the config is invalid.
    pub fn init(config: &DecoderConfig, device: &B::Device) -> Result<Self> {
        Ok(Self::init_lazy(config, device)?.map(&mut Materialize))
    }

    /// Like [`CausalLm::init`], but every random parameter is drawn from the SplitMix64 stream of `seed`
    /// ([`crate::seed::Stream`]) in the module's visiting order instead of the backend's global
    /// generator: the same weights on every backend, machine and thread interleaving. Tests and
    /// fixtures build their random models with it, so a failure reproduces from its seed.
    ///
    /// # Errors
    /// When the config is invalid.
    pub fn init_seeded(config: &DecoderConfig, seed: u64, device: &B::Device) -> Result<Self> {
        Ok(init_seeded(
            Self::init_lazy(config, device)?,
            seed,
            INITIALIZER_RANGE,
        ))
    }

    /// Like [`CausalLm::init`] but with lazily initialised parameters, for loaders that overwrite every
    /// parameter without sampling. A lazy parameter that is cloned before it is read initialises each
    /// clone independently (burn 0.21), so don't use such a model before loading.
    pub(crate) fn init_lazy(config: &DecoderConfig, device: &B::Device) -> Result<Self> {
        Self::init_lazy_layers(config, config.num_hidden_layers, device)
    }

    /// [`CausalLm::init_lazy`] with the first `layers` decoder layers only (none: the parts around them,
    /// which [`crate::load::check_checkpoint`] checks before it walks the layers one by one).
    pub(crate) fn init_lazy_layers(
        config: &DecoderConfig,
        layers: usize,
        device: &B::Device,
    ) -> Result<Self> {
        config.validate()?;
        let std = INITIALIZER_RANGE;
        let embed_tokens = EmbeddingConfig::new(config.vocab_size, config.hidden_size)
            .with_initializer(Initializer::Normal { mean: 0.0, std })
            .init(device);
        let layers = (0..layers)
            .map(|layer| DecoderLayer::init(config, layer, std, device))
            .collect();
        let lm_head = (!config.tie_word_embeddings)
            .then(|| Linear::init(config.hidden_size, config.vocab_size, false, std, device));
        Ok(Self {
            model: Decoder {
                embed_tokens,
                layers,
                norm: RmsNorm::init(config.hidden_size, config.rms_norm_eps, device),
            },
            lm_head,
            config: config.clone(),
            lora: None,
            attention_blocks: AttentionBlocks::default(),
            rope: Rope::for_config(config),
        })
    }

    /// The config the model was built from.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// The tile sizes of the blocked attention.
    pub fn attention_blocks(&self) -> AttentionBlocks {
        self.attention_blocks
    }

    /// Sets the tile sizes of the blocked attention (prefill and training forwards).
    ///
    /// # Errors
    /// When a size is zero.
    pub fn set_attention_blocks(&mut self, blocks: AttentionBlocks) -> Result<()> {
        blocks.validate()?;
        self.attention_blocks = blocks;
        Ok(())
    }

    /// An empty KV cache sized for this model.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.model.layers.len())
    }

    /// Training forward over a padded batch: logits for every position.
    ///
    /// # Shapes
    /// - `tokens`: `[B, T]`, described by `layout` (padding anywhere, explicit positions)
    /// - returns: `[B, T, V]`
    ///
    /// # Errors
    /// When `tokens` and `layout` disagree on `[B, T]`.
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: &AttentionLayout,
    ) -> Result<Tensor<B, 3>> {
        let mut cache = self.new_cache();
        let hidden = self.forward_hidden(tokens, layout, &mut cache)?;
        Ok(self.logits(hidden))
    }

    /// Incremental forward: attends to everything in `cache`, appends the new tokens to it, and returns
    /// logits for the new positions.
    ///
    /// # Shapes
    /// - `tokens`: `[B, T]` (`B` must equal the cache's rows unless the cache is empty)
    /// - returns: `[B, T, V]`
    ///
    /// # Errors
    /// When shapes disagree with `layout` or the cache.
    pub fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: &AttentionLayout,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 3>> {
        let hidden = self.forward_hidden(tokens, layout, cache)?;
        Ok(self.logits(hidden))
    }

    /// The decoder stack without the head: final-norm hidden states. Use with [`CausalLm::logits`] to
    /// compute logits in chunks (a `[B, T, V]` block for a long batch does not fit in memory).
    ///
    /// # Shapes
    /// - `tokens`: `[B, T]`
    /// - returns: `[B, T, d]`
    ///
    /// # Errors
    /// When shapes disagree with `layout` or the cache.
    pub fn forward_hidden(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: &AttentionLayout,
        cache: &mut KvCache<B>,
    ) -> Result<Tensor<B, 3>> {
        Ok(self.forward_hidden_with_aux(tokens, layout, cache)?.0)
    }

    /// Training forward that also returns the router statistics of a mixture-of-experts model
    /// (`None` for a dense one), for the load-balancing loss and the `moe/*` metrics.
    ///
    /// The training loss of HF's `Qwen3MoeForCausalLM` is
    /// `loss + router_aux_loss_coef · aux.load_balancing_loss()`, with the coefficient from
    /// [`DecoderConfig::router_aux_loss_coef`].
    ///
    /// # Shapes
    /// - `tokens`: `[B, T]` → logits `[B, T, V]`
    ///
    /// # Errors
    /// When `tokens` and `layout` disagree on `[B, T]`.
    pub fn forward_with_aux(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: &AttentionLayout,
    ) -> Result<(Tensor<B, 3>, Option<RouterAux<B>>)> {
        let mut cache = self.new_cache();
        let (hidden, aux) = self.forward_hidden_with_aux(tokens, layout, &mut cache)?;
        Ok((self.logits(hidden), aux))
    }

    /// [`CausalLm::forward_hidden`] plus the router statistics of a mixture-of-experts model, pooled over
    /// its sparse layers and the real (non-padding) tokens of this call (`None` for a dense model).
    ///
    /// # Shapes
    /// - `tokens`: `[B, T]`
    /// - returns: `[B, T, d]`
    ///
    /// # Errors
    /// When shapes disagree with `layout` or the cache.
    pub fn forward_hidden_with_aux(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: &AttentionLayout,
        cache: &mut KvCache<B>,
    ) -> Result<(Tensor<B, 3>, Option<RouterAux<B>>)> {
        self.run_stack(tokens, layout, cache, ActivationCheckpointing::None)
    }

    /// [`CausalLm::forward_hidden_with_aux`] for training, from an empty cache that is dropped after the
    /// call; with [`ActivationCheckpointing::Layer`] each dense layer keeps only its input for the
    /// backward and is recomputed there (same values and gradients, less memory).
    ///
    /// # Shapes
    /// - `tokens`: `[B, T]`
    /// - returns: `[B, T, d]`
    ///
    /// # Errors
    /// When shapes disagree with `layout`.
    pub fn forward_hidden_checkpointed(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: &AttentionLayout,
        checkpointing: ActivationCheckpointing,
    ) -> Result<(Tensor<B, 3>, Option<RouterAux<B>>)> {
        self.run_stack(tokens, layout, &mut self.new_cache(), checkpointing)
    }

    /// Embeds `tokens` and runs the decoder stack, checkpointing each layer when asked (only with a
    /// cache that starts empty and is not read again).
    fn run_stack(
        &self,
        tokens: Tensor<B, 2, Int>,
        layout: &AttentionLayout,
        cache: &mut KvCache<B>,
        checkpointing: ActivationCheckpointing,
    ) -> Result<(Tensor<B, 3>, Option<RouterAux<B>>)> {
        let [b, t] = tokens.dims();
        if [b, t] != [layout.batch(), layout.seq()] {
            return Err(Error::Input(format!(
                "tokens have shape [{b}, {t}] but the attention layout describes [{}, {}]",
                layout.batch(),
                layout.seq()
            )));
        }
        if !cache.is_empty() && cache.batch() != b {
            return Err(Error::Input(format!(
                "tokens have {b} rows but the KV cache holds {} rows",
                cache.batch()
            )));
        }
        let device = tokens.device();
        let config = self.config();
        let n_rep = config.num_attention_heads / config.num_kv_heads();

        // 1. Shared per-call inputs: RoPE tables [B, T, 1, D] and the mask (column validity; dense only
        //    for a decode step).
        let rope = self.rope.tables(layout.positions(), b, t, &device);
        let kv_heads = config.num_kv_heads();
        let mask = ForwardMask::new(
            cache.extend_mask(layout.valid(), [b, t]),
            [kv_heads, n_rep, config.head_dim()],
            self.attention_blocks,
            &device,
        );

        // 2. Embed and run the stack: [B, T, d], pooling the sparse layers' router statistics.
        let mut x = self.model.embed_tokens.forward(tokens);
        let mut aux: Option<RouterAux<B>> = None;
        for (i, layer) in self.model.layers.iter().enumerate() {
            let (y, layer_aux) = match checkpointing {
                ActivationCheckpointing::None => {
                    layer.forward(x, &rope, &mask, cache, i, layout.valid())
                }
                ActivationCheckpointing::Layer => {
                    layer.forward_checkpointed(x, &rope, &mask, cache, i, layout.valid())
                }
            };
            x = y;
            aux = match (aux, layer_aux) {
                (Some(a), Some(l)) => Some(a.merge(l)),
                (a, l) => a.or(l),
            };
        }
        Ok((self.model.norm.forward(x), aux))
    }

    /// Projects hidden states to vocabulary logits with the LM head (or the tied embedding).
    ///
    /// # Shapes
    /// - `hidden`: `[..., d]` → `[..., V]`
    pub fn logits<const D: usize>(&self, hidden: Tensor<B, D>) -> Tensor<B, D> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => project(hidden, self.model.embed_tokens.weight.val(), None),
        }
    }

    /// The tensor the logits are computed with, `[V, d]` (the embedding when tied).
    pub fn lm_head_weight(&self) -> Param<Tensor<B, 2>> {
        match &self.lm_head {
            Some(head) => head.weight.clone(),
            None => self.model.embed_tokens.weight.clone(),
        }
    }
}

/// Forces every lazily initialised parameter to take its value now.
struct Materialize;

impl<B: Backend> burn::module::ModuleMapper<B> for Materialize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let id = param.id;
        let value = param.val();
        param.transform_for_load(value, id)
    }
}

/// `module` with every parameter materialised and the random ones (those not initialised to a
/// constant, like norms' ones and biases' zeros) redrawn from the SplitMix64 stream of `seed` as
/// `N(0, std²)`, in the module's visiting order: the same values on every backend and machine.
pub fn init_seeded<B: Backend, M: Module<B>>(module: M, seed: u64, std: f64) -> M {
    module.map(&mut SeededMaterialize {
        stream: crate::seed::Stream::new(seed),
        std,
    })
}

/// A tensor of `N(0, std²)` draws, the next ones of `stream`, in the device's float dtype: seeded
/// random inputs for tests and benchmarks, the same on every backend and machine.
pub fn normal_tensor<B: Backend, const D: usize>(
    stream: &mut crate::seed::Stream,
    shape: [usize; D],
    std: f64,
    device: &B::Device,
) -> Tensor<B, D> {
    let len = shape.iter().product();
    Tensor::from_data(TensorData::new(stream.normals(len, std), shape), device)
}

/// Materialises every parameter, drawing the random ones (those not initialised to a constant, like
/// norms' ones and biases' zeros) from a seeded stream as `N(0, std²)`.
struct SeededMaterialize {
    stream: crate::seed::Stream,
    std: f64,
}

impl<B: Backend> burn::module::ModuleMapper<B> for SeededMaterialize {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let id = param.id;
        let value = param.val();
        let values = value
            .to_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default();
        let constant = values.windows(2).all(|pair| pair[0] == pair[1]);
        if constant {
            return param.transform_for_load(value, id);
        }
        let drawn = TensorData::new(self.stream.normals(values.len(), self.std), value.shape());
        let value = Tensor::from_data(drawn.convert_dtype(value.dtype()), &value.device());
        param.transform_for_load(value, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn seeded_models_repeat_and_keep_constant_parameters() {
        let config = DecoderConfig::from_json_str(
            r#"{"model_type": "qwen3", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
                "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 4}"#,
            "tiny",
        )
        .unwrap();
        let device = Default::default();
        let weights = |seed| {
            let model = CausalLm::<TestBackend>::init_seeded(&config, seed, &device).unwrap();
            let norm = model.model.norm.weight.val().into_data();
            let embed = model.model.embed_tokens.weight.val().into_data();
            (norm, embed.to_vec::<f32>().unwrap())
        };
        let (norm, embed) = weights(3);
        assert_eq!(norm.to_vec::<f32>().unwrap(), vec![1.0; 8]);
        assert_eq!(embed, weights(3).1, "the same seed, the same weights");
        assert_ne!(embed, weights(4).1);
        let std = (embed.iter().map(|x| x * x).sum::<f32>() / embed.len() as f32).sqrt();
        assert!((std - 0.02).abs() < 0.005, "std {std}");
    }

    #[test]
    fn random_models_are_materialised_so_copies_agree() {
        let config = DecoderConfig::from_json_str(
            r#"{"model_type": "qwen3", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
                "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 4, "tie_word_embeddings": true}"#,
            "tiny",
        )
        .unwrap();
        let device = Default::default();
        let model = CausalLm::<TestBackend>::init(&config, &device).unwrap();
        let copy = model.clone();
        let tokens = Tensor::<TestBackend, 2, Int>::from_ints([[1, 2, 3]], &device);
        let layout = AttentionLayout::left_padded(&[3], 3).unwrap();
        let a = model.forward(tokens.clone(), &layout).unwrap().into_data();
        let b = copy.forward(tokens, &layout).unwrap().into_data();
        assert_eq!(a, b);
        let e1 = model.model.embed_tokens.weight.val().into_data();
        let e2 = model.model.embed_tokens.weight.val().into_data();
        assert_eq!(e1, e2, "embedding read twice");
        assert!(model.model.embed_tokens.weight.is_initialized());
        assert_eq!(model.lm_head_weight().val().into_data(), e1);
    }
}
