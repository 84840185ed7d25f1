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
    /// A data-parallel rank could not join the run, or the ranks disagree.
    #[error("data-parallel run: {0}")]
    Distributed(String),
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
    /// A length the run asks for does not fit the model's positions.
    #[error("`{key}` = {value} does not fit the model's max_position_embeddings = {positions} ({detail}); lower `{key}`")]
    ExceedsPositions {
        /// The dotted key.
        key: &'static str,
        /// Its value (the largest, for a list).
        value: usize,
        /// The model's `max_position_embeddings`.
        positions: usize,
        /// Why it does not fit.
        detail: String,
    },
    /// A run config names no model to start from.
    #[error("`model.path` or `model.init_config` is required")]
    NoModel,
    /// Neither the model folder nor the config gives a tokenizer.
    #[error("no tokenizer: the model folder has no tokenizer.json; set `model.tokenizer`")]
    NoTokenizer,
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
    /// A new run's folder holds files and was not made by laconic for a run.
    #[error("`{path}` is not empty and is not a laconic run folder (it has no `{marker}`); laconic writes a new run only into a missing or empty folder, so that it never clears files it did not write: choose another run folder")]
    NotARunFolder {
        /// The folder.
        path: PathBuf,
        /// The marker file's name.
        marker: &'static str,
    },
    /// A new run's folder already holds a run with checkpoints.
    #[error("`{path}` already holds a run; resume it with --resume or choose another run name")]
    RunExists {
        /// The run folder.
        path: PathBuf,
    },
    /// A signal asked the run to stop; it stopped between steps with a checkpoint written.
    #[error("stopped by {signal} after step {step}; the run is saved in `{checkpoint}`")]
    Stopped {
        /// The signal's name (`SIGTERM`), or what asked for the stop.
        signal: String,
        /// Steps completed.
        step: u64,
        /// The checkpoint of that step.
        checkpoint: PathBuf,
    },
    /// A signal handler could not be installed.
    #[error("failed to install the handler of {signal}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
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
