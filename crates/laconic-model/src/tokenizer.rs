//! `Tokenizer`: a thin wrapper over Hugging Face `tokenizers` with errors that name the file.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Qwen's end-of-turn token.
pub const IM_END: &str = "<|im_end|>";
/// Qwen's end-of-text token.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A `tokenizer.json` tokenizer. Qwen prepends no BOS, so encoding adds no special tokens.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
}

impl Tokenizer {
    /// Loads a `tokenizer.json`.
    ///
    /// # Errors
    /// When the file is missing or malformed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses `tokenizer.json` bytes; `origin` names them in errors.
    ///
    /// # Errors
    /// When the bytes are not a valid tokenizer.
    pub fn from_bytes(bytes: &[u8], origin: impl AsRef<Path>) -> Result<Self> {
        let path = origin.as_ref().to_path_buf();
        let inner = tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| Error::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { inner, path })
    }

    /// Wraps an already-built `tokenizers::Tokenizer`.
    pub fn from_inner(inner: tokenizers::Tokenizer) -> Self {
        Self {
            inner,
            path: PathBuf::from("<memory>"),
        }
    }

    /// The underlying `tokenizers` object.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids of `text` (special-token strings such as `<|im_start|>` map to their ids).
    ///
    /// # Errors
    /// When the tokenizer fails (it names the file).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, false).map_err(|e| self.error(e))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens included.
    ///
    /// # Errors
    /// When an id is outside the vocabulary.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| self.error(e))
    }

    /// The id of a token string, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Ids that end a generation: `<|im_end|>` and `<|endoftext|>` when the vocabulary has them.
    pub fn stop_ids(&self) -> Vec<u32> {
        [IM_END, END_OF_TEXT]
            .iter()
            .filter_map(|t| self.token_id(t))
            .collect()
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn error(&self, e: impl std::fmt::Display) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}
