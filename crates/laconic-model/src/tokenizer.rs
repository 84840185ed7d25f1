//! `Tokenizer`: a thin wrapper over Hugging Face `tokenizers` with errors that name the file, and the
//! chat template of its folder ([`crate::chat`]), as a Hugging Face tokenizer carries its own.

use std::path::{Path, PathBuf};

use crate::chat::ChatTemplate;
use crate::error::{Error, Result};

/// Qwen's end-of-turn token.
pub const IM_END: &str = "<|im_end|>";
/// Qwen's end-of-text token.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A `tokenizer.json` tokenizer and its folder's chat template. Encoding adds no special tokens: a
/// template writes the ones its model expects (Llama's `<|begin_of_text|>`, for one).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    chat_template: Option<ChatTemplate>,
}

impl Tokenizer {
    /// Loads a `tokenizer.json`, with the chat template of its folder when it has one
    /// (`chat_template.jinja`, or `tokenizer_config.json`'s `chat_template`).
    ///
    /// # Errors
    /// When the file is missing or malformed, or the folder's template does not parse.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut tokenizer = Self::from_bytes(&bytes, path)?;
        let folder = path.parent().unwrap_or(Path::new("."));
        tokenizer.chat_template = ChatTemplate::from_folder(folder)?;
        Ok(tokenizer)
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
        Ok(Self {
            inner,
            path,
            chat_template: None,
        })
    }

    /// Wraps an already-built `tokenizers::Tokenizer`.
    pub fn from_inner(inner: tokenizers::Tokenizer) -> Self {
        Self {
            inner,
            path: PathBuf::from("<memory>"),
            chat_template: None,
        }
    }

    /// The tokenizer file (`<memory>` for one built in code).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The chat template of the tokenizer's folder, if it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// This tokenizer with `template` as its chat template.
    pub fn with_chat_template(mut self, template: ChatTemplate) -> Self {
        self.chat_template = Some(template);
        self
    }

    /// Writes `tokenizer.json` into `dir`, and the chat template as `tokenizer_config.json` when the
    /// tokenizer has one ([`ChatTemplate::write_tokenizer_config`]): a checkpoint folder that
    /// [`Tokenizer::from_file`] loads with the same template.
    ///
    /// # Errors
    /// When the tokenizer does not serialise or a file cannot be written.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let path = dir.join("tokenizer.json");
        let text = self.inner.to_string(false).map_err(|e| Error::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        if let Some(template) = &self.chat_template {
            template.write_tokenizer_config(dir)?;
        }
        Ok(())
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

    /// Ids that end a generation on the tokenizer's side: the chat template's `eos_token` (the end of
    /// an assistant turn) when its folder names one, else Qwen's `<|im_end|>` and `<|endoftext|>`
    /// when the vocabulary has them. The model's own (`config.json`, `generation_config.json`) are
    /// added by the caller.
    pub fn stop_ids(&self) -> Vec<u32> {
        if let Some(eos) = self
            .chat_template
            .as_ref()
            .and_then(ChatTemplate::eos_token)
        {
            return self.token_id(eos).into_iter().collect();
        }
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
