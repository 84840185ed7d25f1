//! Batched group sampling for RL: the raw material of every RL step and every evaluation.
//!
//! Second in laconic's data flow (model → **rollout** → reward → optimizer → train/eval): an [`Engine`]
//! turns prompts into groups of `n` [`Rollout`]s with their per-token log-probs and finish reasons,
//! prefilling each prompt once, decoding all live sequences as one KV-cached batch, dropping finished
//! ones and refilling their slots.
//!
//! ```
//! use burn::backend::NdArray;
//! use laconic_model::{CausalLm, DecoderConfig};
//! use laconic_rollout::{Engine, EngineConfig, SamplingParams};
//!
//! let config = DecoderConfig::from_json_str(
//!     r#"{"model_type": "qwen3", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
//!         "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 8}"#,
//!     "config.json",
//! )?;
//! let model = CausalLm::<NdArray>::init(&config, &Default::default())?;
//! let engine = Engine::new(&model, EngineConfig::default())?;
//! let params = SamplingParams { max_tokens: 5, stop_ids: vec![0], seed: 1, ..Default::default() };
//! let rollouts = engine.generate(&[vec![1, 2, 3], vec![4]], 3, &params, &mut ())?;
//! assert_eq!(rollouts.len(), 6);
//! assert!(rollouts.iter().all(|r| r.len() <= 5 && r.logprobs.len() == r.len()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod engine;
mod error;
mod rollout;
pub mod sampling;

pub use config::RolloutConfig;
pub use engine::{sequence_rng, slot_bytes, Engine, EngineConfig, DEFAULT_MEMORY_FRACTION};
pub use error::{Error, Result};
pub use rollout::{Observer, Progress, Rollout};
pub use sampling::{shard_range, Finish, Sample, SamplingParams};

/// The backend of this crate's unit tests: ndarray, or wgpu/CUDA with `test-wgpu` / `test-cuda`.
#[cfg(all(test, not(any(feature = "test-wgpu", feature = "test-cuda"))))]
pub(crate) type TestBackend = burn::backend::NdArray;
#[cfg(all(test, feature = "test-wgpu", not(feature = "test-cuda")))]
pub(crate) type TestBackend = burn::backend::Wgpu;
#[cfg(all(test, feature = "test-cuda"))]
pub(crate) type TestBackend = burn::backend::Cuda;
