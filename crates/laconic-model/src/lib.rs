//! Qwen3 (dense and mixture-of-experts), Qwen2 and Llama decoders in burn, loading Hugging Face
//! checkpoint folders unchanged.
//!
//! The first crate of laconic's data flow (**model** → rollout → reward → optimizer → train/eval): a
//! backend-generic [`CausalLm`] with a padded training forward and a KV-cached incremental forward,
//! HF `config.json` and safetensors loading (sharded, BF16/F16/F32), the `tokenizers` wrapper and the
//! checkpoints' own chat templates (Jinja, rendered as transformers renders them).
//!
//! Training under `Autodiff<I, C>` records RMSNorm, SwiGLU, RoPE, the heads-layout swaps, projections
//! and attention as fused autodiff nodes with closed-form backward passes (each in its op's own file;
//! the recording machinery in `src/fused/`), for every inner backend compiled in (flex, ndarray, CUDA,
//! wgpu through this crate's features) and either checkpointing strategy. With the `flex` feature, the
//! flex backend also runs laconic-kernels' SIMD kernels where burn-flex's generic ops are slow
//! (small-batch products for decoding, in-place KV-cache writes, RoPE, RMSNorm, SwiGLU). Every other
//! backend runs the same generic code.
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::prelude::*;
//! use laconic_model::{AttentionLayout, CausalLm, DecoderConfig};
//!
//! let config = DecoderConfig::from_json_str(
//!     r#"{"model_type": "qwen3", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
//!         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
//!         "tie_word_embeddings": true}"#,
//!     "config.json",
//! )?;
//! let device = Default::default();
//! let model = CausalLm::<NdArray>::init(&config, &device)?;
//! // Two prompts of lengths 2 and 3, left-padded to 3 columns.
//! let tokens = Tensor::<NdArray, 2, Int>::from_ints([[0, 5, 6], [7, 8, 9]], &device);
//! let layout = AttentionLayout::left_padded(&[2, 3], 3)?;
//! let logits = model.forward(tokens, &layout)?;
//! assert_eq!(logits.dims(), [2, 3, 32]);
//! # Ok::<(), laconic_model::Error>(())
//! ```

mod attention;
mod cache;
mod chat;
mod config;
mod error;
#[doc(hidden)]
pub mod flash;
mod fused;
mod layer;
mod layout;
mod linear;
mod load;
pub mod lora;
mod mask;
mod mlp;
mod model;
mod moe;
mod norm;
mod rope;
mod rope_scaling;
pub mod safetensors;
mod save;
/// SplitMix64 seed mixing (laconic-seed, which laconic-reward shares without depending on burn).
pub use laconic_seed as seed;
mod shape;
mod tokenizer;

pub use attention::Attention;
pub use cache::{KvCache, LayerKv};
pub use chat::{ChatTemplate, Message, Role, CHAT_TEMPLATE_FILE, TOKENIZER_CONFIG};
pub use config::{Arch, DecoderConfig, TokenIds};
pub use error::{Error, Result};
pub use flash::AttentionBlocks;
pub use layer::{ActivationCheckpointing, DecoderLayer, FeedForward};
pub use layout::AttentionLayout;
pub use linear::{project, Linear};
pub use load::{
    load_model, load_pretrained, load_weights, named_tensors, read_config, Pretrained,
    GENERATION_CONFIG,
};
pub use lora::{LoraAdapter, LoraConfig, LORA_TARGETS};
pub use mask::{AttentionMask, ForwardMask, Tile};
pub use mlp::Mlp;
pub use model::{init_seeded, normal_tensor, CausalLm, Decoder, INITIALIZER_RANGE};
pub use moe::{RouterAux, Routing, SparseMoeBlock};
pub use norm::RmsNorm;
pub use rope::{Rope, RopeScaling, RopeTables};
pub use save::{save_pretrained, save_pretrained_sharded, tensor_sources};
pub use shape::DenseShape;
pub use tokenizer::{Tokenizer, END_OF_TEXT, IM_END};

/// The backend of this crate's unit tests: ndarray, or wgpu/CUDA with `test-wgpu` / `test-cuda`.
#[cfg(all(test, not(any(feature = "test-wgpu", feature = "test-cuda"))))]
pub(crate) type TestBackend = burn::backend::NdArray;
#[cfg(all(test, feature = "test-wgpu", not(feature = "test-cuda")))]
pub(crate) type TestBackend = burn::backend::Wgpu;
#[cfg(all(test, feature = "test-cuda"))]
pub(crate) type TestBackend = burn::backend::Cuda;
