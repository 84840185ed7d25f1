//! Errors of the model crate: bad `config.json`, bad checkpoint files, bad tokenizer files, bad inputs.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("failed to read `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (config.json, an index file) is malformed.
    #[error("failed to parse `{path}`")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause (serde names the key, line and column).
        #[source]
        source: serde_json::Error,
    },
    /// A LoRA adapter that cannot be attached, saved or loaded.
    #[error("LoRA: {0}")]
    Lora(String),
    /// `config.json` parsed but describes a model this crate cannot run.
    #[error("`{path}`: {message}")]
    Config {
        /// The file, or `<memory>` for configs built in code.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A safetensors file is malformed.
    #[error("failed to read safetensors file `{path}`: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the safetensors reader said.
        message: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error(
        "tensor `{name}` (expected shape {expected:?}) is missing from the checkpoint in `{dir}`"
    )]
    MissingTensor {
        /// The HF name of the tensor.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The checkpoint folder or file.
        dir: PathBuf,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` in `{path}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The HF name of the tensor.
        name: String,
        /// The file holding it.
        path: PathBuf,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor is stored with a dtype this crate cannot convert.
    #[error(
        "tensor `{name}` in `{path}` has unsupported dtype `{dtype}` (expected F32, F16 or BF16)"
    )]
    UnsupportedDtype {
        /// The HF name of the tensor.
        name: String,
        /// The file holding it.
        path: PathBuf,
        /// The dtype found.
        dtype: String,
    },
    /// A folder holds neither `model.safetensors` nor `model.safetensors.index.json`.
    #[error("no `model.safetensors` or `model.safetensors.index.json` in `{dir}`")]
    NoWeights {
        /// The folder.
        dir: PathBuf,
    },
    /// The tokenizer file could not be loaded or used.
    #[error("tokenizer `{path}`: {message}")]
    Tokenizer {
        /// The tokenizer file, or `<memory>`.
        path: PathBuf,
        /// What the tokenizers library said.
        message: String,
    },
    /// A caller passed inputs of inconsistent shapes.
    #[error("invalid input: {0}")]
    Input(String),
    /// Writing a checkpoint failed.
    #[error("failed to write `{path}`: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// Result type of the model crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
