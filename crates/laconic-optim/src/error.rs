//! Errors of the optimiser crate: invalid configs, inconsistent batches, non-finite losses, state files.

use std::path::PathBuf;

/// Everything that can go wrong while computing advantages or updating a policy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config value is out of its valid range.
    #[error("invalid optim config: `{key}` {expected}, found `{found}`")]
    Config {
        /// The knob, as written in the config file (`clip_ratio_low`).
        key: &'static str,
        /// What a valid value looks like (`expected a value in [0, 1)`).
        expected: &'static str,
        /// The value found.
        found: String,
    },
    /// Inputs that disagree with each other (lengths, counts).
    #[error("invalid input: {0}")]
    Input(String),
    /// A data-parallel all-reduce failed (the workers disagree, or the transport broke).
    #[error("data-parallel all-reduce: {0}")]
    Collective(String),
    /// One sequence of an update batch is malformed.
    #[error("sequence {index} of the update batch: {message}")]
    Sequence {
        /// Position of the sequence in the batch.
        index: usize,
        /// What is wrong (`has 3 old log-probs for 4 response tokens`).
        message: String,
    },
    /// A loss or gradient norm is NaN or infinite: the update is refused, the parameters are untouched
    /// by this mini-batch (earlier mini-batches of the same `step` may have been applied).
    #[error("non-finite {what} (`{value}`) at optimizer step {step}: update refused")]
    NonFinite {
        /// `loss` or `grad_norm`.
        what: &'static str,
        /// The value (NaN or ±inf).
        value: f64,
        /// The optimizer step (number of updates applied before this one).
        step: u64,
    },
    /// The model failed (shape mismatch between tokens and layout, …).
    #[error(transparent)]
    Model(#[from] laconic_model::Error),
    /// The optimizer state file could not be written, read or matched to the model.
    #[error("optimizer state `{path}`: {message}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A filesystem call failed.
    #[error("failed to access `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Result type of the optimiser crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(key: &'static str, expected: &'static str, found: impl ToString) -> Self {
        Error::Config {
            key,
            expected,
            found: found.to_string(),
        }
    }
}
