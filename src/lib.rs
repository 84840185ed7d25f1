#![doc = include_str!("../README.md")]

pub use laconic_eval as eval;
pub use laconic_kernels as kernels;
pub use laconic_model as model;
pub use laconic_optim as optim;
pub use laconic_reward as reward;
pub use laconic_rollout as rollout;
pub use laconic_train as train;

pub mod backend;

/// The types most programs need.
pub mod prelude {
    pub use crate::backend::{device, Autodiff, Backend};
    pub use crate::model::{
        load_pretrained, AttentionLayout, CausalLm, ChatTemplate, DecoderConfig, KvCache, Message,
        Tokenizer,
    };
}
