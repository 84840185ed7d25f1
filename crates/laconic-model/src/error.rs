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
    /// Adapter folders that name each other (or themselves) as `base_model_name_or_path`.
    #[error(
        "adapter folders form a cycle through `base_model_name_or_path`: {}",
        chain(.folders)
    )]
    AdapterCycle {
        /// The folders followed, canonical, the last one repeating an earlier one.
        folders: Vec<PathBuf>,
    },
    /// An adapter folder whose base is an adapter folder too.
    #[error(
        "adapter folder `{}` names `{}` as its base, which is an adapter folder too: stacked adapters \
         are not supported (merge the base's adapter into a full checkpoint first, e.g. with `--merge`)",
        .adapter.display(),
        .base.display()
    )]
    StackedAdapter {
        /// The adapter folder loaded.
        adapter: PathBuf,
        /// Its base, an adapter folder.
        base: PathBuf,
    },
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
    #[error("tensor `{name}` in `{path}` has unsupported dtype `{dtype}` (expected {expected})")]
    UnsupportedDtype {
        /// The HF name of the tensor.
        name: String,
        /// The file holding it.
        path: PathBuf,
        /// The dtype found.
        dtype: String,
        /// The dtypes the reader takes (`F32, F16 or BF16`).
        expected: &'static str,
    },
    /// A folder holds neither `model.safetensors` nor `model.safetensors.index.json`.
    #[error("no `model.safetensors` or `model.safetensors.index.json` in `{dir}`")]
    NoWeights {
        /// The folder.
        dir: PathBuf,
    },
    /// A chat template that does not parse, or fails (or refuses) to render a conversation.
    #[error("chat template `{path}`: {message}")]
    ChatTemplate {
        /// The file the template came from.
        path: PathBuf,
        /// What the template engine said.
        message: String,
    },
    /// A chat prompt asked of a tokenizer whose folder has no chat template.
    #[error(
        "no chat template for the tokenizer `{tokenizer}`: its folder has no `chat_template.jinja` and no `chat_template` in `tokenizer_config.json`; name a template file in `prompt.template`, or set `prompt.chat = false`"
    )]
    NoChatTemplate {
        /// The tokenizer file.
        tokenizer: PathBuf,
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

/// Folders as `` `a` → `b` → `a` ``.
fn chain(folders: &[PathBuf]) -> String {
    folders
        .iter()
        .map(|f| format!("`{}`", f.display()))
        .collect::<Vec<_>>()
        .join(" → ")
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
