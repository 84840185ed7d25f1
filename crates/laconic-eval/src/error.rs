//! Errors of the eval crate: bad dataset files, bad configurations, generation failures, unwritable reports.

use std::path::PathBuf;

/// Everything that can go wrong while loading data, evaluating a model or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("failed to read `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file or folder could not be written.
    #[error("failed to write `{path}`")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSONL line is not a JSON object.
    #[error("`{path}` line {line}: expected a JSON object")]
    JsonLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde said (it names the column).
        #[source]
        source: serde_json::Error,
    },
    /// A data file holds bytes that are not UTF-8.
    #[error("`{path}` line {line}: not UTF-8 (byte 0x{byte:02x} at column {column}); save the file as UTF-8")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based byte column of the first invalid byte.
        column: usize,
        /// The byte.
        byte: u8,
    },
    /// A prompt is longer than the model's positions (or the configured limit) allow.
    #[error("benchmark `{benchmark}`: {origin}: the prompt has {tokens} tokens, more than the {limit} that fit ({why}); drop such prompts with {drop_hint}")]
    PromptTooLong {
        /// The benchmark.
        benchmark: String,
        /// `` `file` line N `` or `question N`.
        origin: String,
        /// The prompt's length in tokens.
        tokens: usize,
        /// The most prompt tokens allowed.
        limit: usize,
        /// Where the limit comes from (both numbers).
        why: String,
        /// The setting that drops over-long prompts instead.
        drop_hint: &'static str,
    },
    /// A JSONL record lacks every accepted name of a field.
    #[error("`{path}` line {line}: no {role} field (looked for {wanted}; the record has {found})")]
    MissingField {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// `question` or `answer`.
        role: &'static str,
        /// The accepted names, in backticks.
        wanted: String,
        /// The record's keys, in backticks.
        found: String,
    },
    /// A JSONL field holds neither a string nor a number.
    #[error("`{path}` line {line}: field `{field}` expected a string or a number, found {found}")]
    FieldType {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The field.
        field: String,
        /// The JSON type found.
        found: &'static str,
    },
    /// A dataset file holds no record.
    #[error("`{path}` holds no record")]
    EmptyDataset {
        /// The file.
        path: PathBuf,
    },
    /// A built-in dataset name is unknown.
    #[error("unknown built-in dataset `{name}` (expected one of {known})")]
    UnknownDataset {
        /// The name given.
        name: String,
        /// The built-in names, in backticks.
        known: String,
    },
    /// An evaluation knob is out of range.
    #[error("invalid eval config: `{key}` expected {expected}, found `{found}`")]
    InvalidConfig {
        /// The knob, e.g. `eval.budgets`.
        key: &'static str,
        /// What is allowed.
        expected: String,
        /// The value given.
        found: String,
    },
    /// A rollout is shorter than a budget without having stopped: it was cut below that budget, so the
    /// budget cannot be scored from it.
    #[error(
        "question {question_idx} sample {sample_idx}: cut at {length} tokens, below budget {budget}; \
         generate with `max_tokens` ≥ the largest budget"
    )]
    BudgetAboveCap {
        /// Question index.
        question_idx: usize,
        /// Sample index.
        sample_idx: usize,
        /// Tokens generated.
        length: usize,
        /// The budget.
        budget: usize,
    },
    /// Rollouts do not match the benchmark they are scored against.
    #[error("benchmark `{benchmark}`: {message}")]
    Mismatch {
        /// The benchmark.
        benchmark: String,
        /// What does not match.
        message: String,
    },
    /// An `eval.json` could not be parsed.
    #[error("failed to parse `{path}`")]
    Report {
        /// The file.
        path: PathBuf,
        /// The cause (serde names the key, line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A plot could not be drawn.
    #[error("failed to draw `{path}`: {message}")]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
    /// The tokenizer or the model failed.
    #[error(transparent)]
    Model(#[from] laconic_model::Error),
    /// Generation failed.
    #[error(transparent)]
    Rollout(#[from] laconic_rollout::Error),
}

/// Result type of the eval crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Read {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Write {
            path: path.into(),
            source,
        }
    }
}

/// `a`, `b` → "`a`, `b`" for messages that list names.
pub(crate) fn backticked<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}
