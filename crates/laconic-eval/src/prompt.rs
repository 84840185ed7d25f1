//! Turning a question into prompt text and token ids: the paper's instruction suffix, a chat template
//! (Qwen3's or DeepSeek-R1-Distill's), thinking on or off.

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
    /// Wrap in the chat template. Default true (Qwen3 checkpoints are chat models).
    pub chat: bool,
    /// With `chat`: which template, `qwen3` (default) or `deepseek_r1` (the R1-Distill checkpoints).
    pub template: ChatTemplate,
    /// With `chat`: let the model think. `false` appends the template's empty `<think>\n\n</think>\n\n`
    /// (Qwen3's `enable_thinking=False`). Default true.
    pub thinking: bool,
    /// With `chat`: a system turn before the question. Default none.
    pub system: Option<String>,
}

impl Default for PromptConfig {
    fn default() -> Self {
        Self {
            suffix: PAPER_SUFFIX.to_string(),
            separator: " ".to_string(),
            chat: true,
            template: ChatTemplate::Qwen3,
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

    /// The full prompt text fed to the model.
    ///
    /// ```
    /// use laconic_eval::PromptConfig;
    /// let p = PromptConfig { thinking: false, ..PromptConfig::default() };
    /// assert_eq!(
    ///     p.text("What is 12 * 7?"),
    ///     "<|im_start|>user\nWhat is 12 * 7? Let's think step by step and output the final answer \
    ///      within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    /// );
    /// ```
    pub fn text(&self, question: &str) -> String {
        let user = self.user_text(question);
        if !self.chat {
            return user;
        }
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &self.system {
            messages.push(Message::system(system.as_str()));
        }
        messages.push(Message::user(user));
        self.template
            .render(&messages, true, self.thinking)
            .expect("system and user turns render in every template")
    }

    /// The prompt's token ids.
    ///
    /// # Errors
    /// When the tokenizer fails.
    pub fn encode(&self, question: &str, tokenizer: &Tokenizer) -> Result<Vec<u32>> {
        Ok(tokenizer.encode(&self.text(question))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_template_and_thinking() {
        let default = PromptConfig::default();
        assert_eq!(
            default.text("1+1?"),
            format!("<|im_start|>user\n1+1? {PAPER_SUFFIX}<|im_end|>\n<|im_start|>assistant\n")
        );
        let plain = PromptConfig {
            chat: false,
            separator: "\n".into(),
            ..PromptConfig::default()
        };
        assert_eq!(plain.text("1+1?"), format!("1+1?\n{PAPER_SUFFIX}"));
        assert_eq!(PromptConfig::raw().text("38172="), "38172=");
        let system = PromptConfig {
            system: Some("Be brief.".into()),
            suffix: String::new(),
            ..PromptConfig::default()
        };
        assert_eq!(
            system.text("q"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn deepseek_r1_template() {
        let r1 = PromptConfig {
            template: ChatTemplate::DeepseekR1,
            ..PromptConfig::default()
        };
        assert_eq!(
            r1.text("1+1?"),
            format!("<｜begin▁of▁sentence｜><｜User｜>1+1? {PAPER_SUFFIX}<｜Assistant｜><think>\n")
        );
        let parsed: PromptConfig = serde_json::from_str(r#"{"template": "deepseek_r1"}"#).unwrap();
        assert_eq!(parsed, r1);
        assert!(serde_json::from_str::<PromptConfig>(r#"{"template": "llama"}"#).is_err());
    }

    #[test]
    fn encodes_with_the_qwen3_tokenizer() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/qwen3/tokenizer.json");
        let tokenizer = Tokenizer::from_file(path).unwrap();
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
