//! Turning a question into prompt text and token ids: the paper's instruction suffix, the checkpoint's
//! own chat template (or a template file the config names), thinking on or off.

use std::borrow::Cow;
use std::path::PathBuf;

use laconic_model::{ChatTemplate, Message, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The instruction the paper appends to every question (arXiv 2602.20945, "Data"; the DeepScaleR prompt).
pub const PAPER_SUFFIX: &str =
    "Let's think step by step and output the final answer within \\boxed{}.";

/// How a question becomes a prompt: `question + separator + suffix`, then, with `chat`, a user turn of the
/// chat template (after an optional system turn) followed by the assistant header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptConfig {
    /// Appended to every question; empty = nothing appended. Default [`PAPER_SUFFIX`].
    pub suffix: String,
    /// Between the question and the suffix. Default a space (as DeepScaleR writes it).
    pub separator: String,
    /// Wrap in the chat template. Default true (the paper's checkpoints are chat models).
    pub chat: bool,
    /// With `chat`: the template, a `.jinja` file or a `tokenizer_config.json`. Default none: the
    /// tokenizer's folder's own (`chat_template.jinja` or `tokenizer_config.json`'s
    /// `chat_template`), which a folder without one makes an error naming it.
    pub template: Option<PathBuf>,
    /// With `chat`: `enable_thinking`, passed to the template. Qwen3's answers directly when it is
    /// false (an empty `<think>\n\n</think>\n\n` after the assistant header). Default true.
    pub thinking: bool,
    /// With `chat`: a system turn before the question. Default none (the template's own default,
    /// if it has one, such as Qwen2.5's "You are Qwen, created by Alibaba Cloud…").
    pub system: Option<String>,
}

impl Default for PromptConfig {
    fn default() -> Self {
        Self {
            suffix: PAPER_SUFFIX.to_string(),
            separator: " ".to_string(),
            chat: true,
            template: None,
            thinking: true,
            system: None,
        }
    }
}

impl PromptConfig {
    /// Raw text, no template and no suffix: the question is the whole prompt (synthetic tasks).
    pub fn raw() -> Self {
        Self {
            suffix: String::new(),
            chat: false,
            ..Self::default()
        }
    }

    /// The user's message: `question`, then `separator + suffix` when the suffix is not empty.
    pub fn user_text(&self, question: &str) -> String {
        if self.suffix.is_empty() {
            question.to_string()
        } else {
            format!("{question}{}{}", self.separator, self.suffix)
        }
    }

    /// This config with its template resolved against `tokenizer`: what builds many prompts.
    ///
    /// # Errors
    /// With `chat`: a template file that cannot be read or parsed, or no template at all (the
    /// tokenizer's folder has none and the config names none).
    pub fn prompter<'a>(&'a self, tokenizer: &'a Tokenizer) -> Result<Prompter<'a>> {
        let template = match (&self.template, self.chat) {
            (_, false) => None,
            (Some(path), true) => Some(Cow::Owned(ChatTemplate::from_file(path)?)),
            (None, true) => Some(Cow::Borrowed(tokenizer.chat_template().ok_or_else(
                || laconic_model::Error::NoChatTemplate {
                    tokenizer: tokenizer.path().to_path_buf(),
                },
            )?)),
        };
        Ok(Prompter {
            config: self,
            template,
            tokenizer,
        })
    }

    /// The full prompt text of `question` ([`Prompter::text`]).
    ///
    /// # Errors
    /// As [`PromptConfig::prompter`] and [`Prompter::text`].
    pub fn text(&self, question: &str, tokenizer: &Tokenizer) -> Result<String> {
        self.prompter(tokenizer)?.text(question)
    }

    /// The prompt's token ids ([`Prompter::encode`]).
    ///
    /// # Errors
    /// As [`PromptConfig::prompter`] and [`Prompter::encode`].
    pub fn encode(&self, question: &str, tokenizer: &Tokenizer) -> Result<Vec<u32>> {
        self.prompter(tokenizer)?.encode(question)
    }
}

/// A [`PromptConfig`] with its chat template in hand.
#[derive(Debug, Clone)]
pub struct Prompter<'a> {
    config: &'a PromptConfig,
    template: Option<Cow<'a, ChatTemplate>>,
    tokenizer: &'a Tokenizer,
}

impl Prompter<'_> {
    /// The full prompt text fed to the model.
    ///
    /// # Errors
    /// When the template refuses the conversation.
    pub fn text(&self, question: &str) -> Result<String> {
        let user = self.config.user_text(question);
        let Some(template) = &self.template else {
            return Ok(user);
        };
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &self.config.system {
            messages.push(Message::system(system.as_str()));
        }
        messages.push(Message::user(user));
        Ok(template.render(&messages, true, self.config.thinking)?)
    }

    /// The prompt's token ids.
    ///
    /// # Errors
    /// As [`Prompter::text`], or when the tokenizer fails.
    pub fn encode(&self, question: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode(&self.text(question)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen3() -> Tokenizer {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/qwen3/tokenizer.json");
        Tokenizer::from_file(path).unwrap()
    }

    #[test]
    fn suffix_template_and_thinking() {
        let tok = qwen3();
        let default = PromptConfig::default();
        assert_eq!(
            default.text("1+1?", &tok).unwrap(),
            format!("<|im_start|>user\n1+1? {PAPER_SUFFIX}<|im_end|>\n<|im_start|>assistant\n")
        );
        let plain = PromptConfig {
            chat: false,
            separator: "\n".into(),
            ..PromptConfig::default()
        };
        assert_eq!(
            plain.text("1+1?", &tok).unwrap(),
            format!("1+1?\n{PAPER_SUFFIX}")
        );
        assert_eq!(PromptConfig::raw().text("38172=", &tok).unwrap(), "38172=");
        let system = PromptConfig {
            system: Some("Be brief.".into()),
            suffix: String::new(),
            ..PromptConfig::default()
        };
        assert_eq!(
            system.text("q", &tok).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn a_named_template_file_wins_and_a_missing_template_is_named() {
        let tok = qwen3();
        let dir = std::env::temp_dir().join(format!("laconic-prompt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plain.jinja");
        std::fs::write(
            &file,
            "{% for m in messages %}[{{ m.content }}]{% endfor %}",
        )
        .unwrap();
        let named = PromptConfig {
            template: Some(file),
            suffix: String::new(),
            ..PromptConfig::default()
        };
        assert_eq!(named.text("q", &tok).unwrap(), "[q]");
        let parsed: PromptConfig =
            serde_json::from_str(r#"{"template": "chat_template.jinja"}"#).unwrap();
        assert_eq!(parsed.template, Some(PathBuf::from("chat_template.jinja")));
        // A tokenizer without a folder (or a folder without a template): one error naming it.
        let bare = Tokenizer::from_bytes(
            &std::fs::read(tok.path()).unwrap(),
            dir.join("tokenizer.json"),
        )
        .unwrap();
        let err = PromptConfig::default()
            .text("q", &bare)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tokenizer.json") && err.contains("prompt.template"),
            "{err}"
        );
        assert_eq!(PromptConfig::raw().text("q", &bare).unwrap(), "q");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn encodes_with_the_qwen3_tokenizer() {
        let tokenizer = qwen3();
        let p = PromptConfig {
            suffix: String::new(),
            thinking: false,
            ..PromptConfig::default()
        };
        // The reference ids are from ASSETS.md (HF transformers' apply_chat_template + encode).
        assert_eq!(
            p.encode("What is 12 * 7?", &tokenizer).unwrap(),
            [
                151644, 872, 198, 3838, 374, 220, 16, 17, 353, 220, 22, 30, 151645, 198, 151644,
                77091, 198, 151667, 271, 151668, 271
            ]
        );
    }
}
