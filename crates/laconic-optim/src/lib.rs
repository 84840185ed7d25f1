//! The policy update of laconic's RL loop: scored rollouts → advantages → one or more AdamW updates
//! of a Qwen3 policy.
//!
//! Fourth crate of the data flow (model → rollout → reward → **optimizer** → train/eval). It depends on
//! `laconic-model` only; the trainer turns rewards into advantages with
//! [`OptimConfig::advantages`], builds an [`UpdateBatch`] and calls [`PolicyUpdater::step`].
//!
//! - [`advantage`]: `grpo`, `dr_grpo`, `rloo`, `reinforce_pp_baseline`, masked rollouts;
//! - [`policy_loss`]: clipped surrogate (clip-higher, dual clip), token (`vanilla`) or sequence
//!   (`gspo`) importance ratio;
//! - [`agg`]: `loss_agg_mode` normalised by global mini-batch counts (micro-batch invariant);
//! - [`kl`], [`entropy`]: k1/k2/k3 KL to a reference, entropy bonus and metric;
//! - [`logprob`], [`head`]: log-probs at the rollout temperature, chunked LM head, and a custom
//!   autodiff op that recomputes logits in backward so no `[tokens, V]` block is kept;
//! - [`clip`], [`adamw`], [`schedule`]: global-norm clipping, PyTorch-exact AdamW, LR schedules;
//! - [`update`]: [`PolicyUpdater`] (micro-batching, accumulation, checkpointable state).
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use laconic_model::{CausalLm, DecoderConfig};
//! use laconic_optim::{OptimConfig, PolicyUpdater, UpdateBatch, UpdateSequence};
//!
//! let config = DecoderConfig::from_json_str(
//!     r#"{"model_type": "qwen3", "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
//!         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
//!         "tie_word_embeddings": true}"#,
//!     "config.json",
//! )?;
//! let model = CausalLm::<Autodiff<NdArray>>::init(&config, &Default::default())?;
//! let optim = OptimConfig { lr: 1e-3, ..OptimConfig::default() };
//! // Two rollouts of one prompt: rewards → advantages.
//! let advantages = optim.advantages(&[1.0, 0.0], &[0, 0], &[false, false])?;
//! let batch = UpdateBatch {
//!     sequences: (0..2)
//!         .map(|i| UpdateSequence {
//!             prompt_ids: vec![1, 2, 3],
//!             response_ids: vec![4 + i as u32, 5],
//!             old_logprobs: vec![-3.4, -3.5],
//!             advantage: advantages[i],
//!             masked: false,
//!             group: 0,
//!         })
//!         .collect(),
//! };
//! let mut updater = PolicyUpdater::new(optim, &model)?;
//! let (model, metrics) = updater.step(model, &batch, None)?;
//! assert_eq!(metrics.num_updates, 1);
//! assert!(metrics.to_map().contains_key("actor/grad_norm"));
//! # let _ = model;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod adamw;
pub mod advantage;
pub mod agg;
mod batch;
pub mod clip;
pub mod collective;
mod config;
pub mod entropy;
mod error;
pub mod head;
pub mod kl;
pub mod logprob;
pub mod memory;
pub mod objective;
pub mod policy_loss;
pub mod schedule;
pub mod update;
pub mod zero;

pub use adamw::{AdamW, AdamWSettings};
pub use advantage::{AdvEstimator, AdvantageOptions};
pub use agg::{AggCounts, LossAggMode};
pub use batch::{UpdateBatch, UpdateSequence};
pub use collective::{Collective, SingleWorker};
pub use config::OptimConfig;
pub use error::{Error, Result};
pub use head::LogprobBackend;
pub use kl::KlLossType;
pub use logprob::{compute_logprobs, LogprobOptions, SequenceLogprobs};
pub use policy_loss::PolicyLoss;
pub use schedule::LrSchedule;
pub use update::{OptimizerState, PolicyUpdater, UpdateMetrics};
pub use zero::ZeroStage;

/// The backend of this crate's unit tests: ndarray, or wgpu/CUDA with `test-wgpu` / `test-cuda`.
#[cfg(all(test, not(any(feature = "test-wgpu", feature = "test-cuda"))))]
pub(crate) type TestBackend = burn::backend::NdArray;
#[cfg(all(test, feature = "test-wgpu", not(feature = "test-cuda")))]
pub(crate) type TestBackend = burn::backend::Wgpu;
#[cfg(all(test, feature = "test-cuda"))]
pub(crate) type TestBackend = burn::backend::Cuda;
