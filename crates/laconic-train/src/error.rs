//! Errors of the training crate.

use std::path::PathBuf;

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A run config is unreadable, malformed or inconsistent.
    #[error("config `{path}`: {message}")]
    Config {
        /// The config file (or `<memory>`).
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A file could not be read or written.
    #[error("failed to access `{path}`")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A data file has a bad line.
    #[error("`{path}` line {line}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint folder is incomplete or inconsistent.
    #[error("checkpoint `{path}`: {message}")]
    Checkpoint {
        /// The checkpoint folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss or gradient became NaN/Inf; the last good checkpoint is kept.
    #[error("step {step}: {message}; stopping (the last good checkpoint is kept)")]
    NonFinite {
        /// The step that failed.
        step: u64,
        /// What was non-finite.
        message: String,
    },
    /// The model crate failed.
    #[error(transparent)]
    Model(#[from] laconic_model::Error),
    /// The rollout crate failed.
    #[error(transparent)]
    Rollout(#[from] laconic_rollout::Error),
    /// The optimizer failed.
    #[error(transparent)]
    Optim(#[from] laconic_optim::Error),
    /// The evaluation crate failed.
    #[error(transparent)]
    Eval(#[from] laconic_eval::Error),
    /// The reward crate failed.
    #[error(transparent)]
    Reward(#[from] laconic_reward::Error),
    /// A data-parallel worker could not join the run, or the workers disagree.
    #[error("data-parallel run: {0}")]
    Distributed(String),
    /// A data-parallel worker process failed; the launcher stopped the others.
    #[error("worker {rank} {status}; the other workers were stopped")]
    WorkerFailed {
        /// Global rank of the worker.
        rank: usize,
        /// How it ended.
        status: String,
    },
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

/// Result type of the training crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
