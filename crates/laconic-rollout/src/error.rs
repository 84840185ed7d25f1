//! Errors of the rollout crate.

/// What can go wrong while generating rollouts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sampling parameter is out of range.
    #[error("invalid sampling parameter `{name}`: expected {expected}, found `{found}`")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// What is allowed.
        expected: &'static str,
        /// The value given.
        found: String,
    },
    /// An engine setting is out of range.
    #[error("invalid engine setting `{name}`: expected {expected}, found `{found}`")]
    InvalidEngine {
        /// The setting.
        name: &'static str,
        /// What is allowed.
        expected: &'static str,
        /// The value given.
        found: String,
    },
    /// A key of a `[rollout]` table that no rollout setting has.
    #[error("`{key}` is not a rollout setting (the table holds `n`, `prompts_per_step`, the sampling parameters and the engine settings)")]
    UnknownSetting {
        /// The key.
        key: String,
    },
    /// A prompt is empty or holds an id outside the vocabulary.
    #[error("prompt {index}: {message}")]
    InvalidPrompt {
        /// Index of the prompt in the request.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A prompt cannot run to `max_tokens` within the KV-cache budget even alone.
    #[error("prompt {index}: {prompt_tokens} prompt tokens + max_tokens {max_tokens} need {} KV-cache slots, more than kv_cache_tokens = {budget}", prompt_tokens + max_tokens)]
    KvCacheBudget {
        /// Index of the prompt in the request.
        index: usize,
        /// Its length.
        prompt_tokens: usize,
        /// The response budget.
        max_tokens: usize,
        /// The KV-cache budget in slots.
        budget: usize,
    },
    /// The model rejected its inputs.
    #[error(transparent)]
    Model(#[from] laconic_model::Error),
    /// The logits contain NaN or are all −∞.
    #[error("the model produced non-finite logits for prompt {prompt_idx} sample {sample_idx} at response token {step}")]
    NonFiniteLogits {
        /// Prompt index.
        prompt_idx: usize,
        /// Sample index within the group.
        sample_idx: usize,
        /// Response position.
        step: usize,
    },
}

/// Result type of the rollout crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
