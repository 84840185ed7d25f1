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
    /// No prompt of a dataset is left to train on.
    #[error("dataset `{path}` has no prompt to train on (after its `limit` and the prompt limit of {max_prompt_tokens} tokens: {why})")]
    NoPrompts {
        /// The dataset file.
        path: PathBuf,
        /// The prompt limit in tokens.
        max_prompt_tokens: usize,
        /// Where the limit comes from.
        why: String,
    },
    /// A checkpoint's data cursor belongs to another kind of data than the run's.
    #[error("the checkpoint's prompt cursor does not match this run's data")]
    CursorMismatch,
    /// A run config names no model to start from.
    #[error("`model.path` or `model.init_config` is required")]
    NoModel,
    /// Neither the model folder nor the config gives a tokenizer.
    #[error("no tokenizer: the model folder has no tokenizer.json; set `model.tokenizer`")]
    NoTokenizer,
    /// The tokenizer could not be written into a checkpoint.
    #[error("failed to serialise the tokenizer into `{path}`: {message}")]
    TokenizerSave {
        /// The checkpoint folder.
        path: PathBuf,
        /// The tokenizers library's message.
        message: String,
    },
    /// A value could not be encoded as JSON for the workers' exchange.
    #[error("failed to encode {what} for the other workers")]
    Encode {
        /// What was being sent.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Another process holds the run folder.
    #[error("`{path}` is in use by another laconic process (it holds `{lock}`); wait for it to finish or choose another run name")]
    RunInUse {
        /// The run folder.
        path: PathBuf,
        /// The lock file's name.
        lock: &'static str,
    },
    /// A folder holds no run.
    #[error("`{path}` holds no run (no `{config}`)")]
    NoRun {
        /// The folder.
        path: PathBuf,
        /// The resolved config's file name.
        config: &'static str,
    },
    /// A new run's folder already holds a run with checkpoints.
    #[error("`{path}` already holds a run; resume it with --resume or choose another run name")]
    RunExists {
        /// The run folder.
        path: PathBuf,
    },
    /// A curation's pass rates do not line up with its dataset.
    #[error("`{path}` has {records} records but {rates} pass rates were computed")]
    RatesMismatch {
        /// The dataset.
        path: PathBuf,
        /// Its records.
        records: usize,
        /// Pass rates computed.
        rates: usize,
    },
    /// A lab folder, experiment or arm is not what the command expects.
    #[error("{0}")]
    Lab(String),
    /// A lab run could not be started.
    #[error("could not start the run `{label}`")]
    Spawn {
        /// The run's label.
        label: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
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
