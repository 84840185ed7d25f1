//! Chat templates rendered in Rust: Qwen3's (hybrid thinking) and DeepSeek-R1-Distill's.
//!
//! [`apply_chat_template`] mirrors the Jinja template shipped in Qwen3's `tokenizer_config.json` for
//! conversations without tool definitions: an optional leading system turn, user/assistant/tool turns,
//! earlier assistant turns stripped of their `<think>` block, and a generation prompt that, with thinking
//! disabled, ends in an empty `<think>\n\n</think>\n\n`. Checked against `apply_chat_template` output
//! in `tests/fixtures/chat/`.
//!
//! [`apply_deepseek_r1_template`] renders the template of the R1-Distill checkpoints (Qwen2 architecture)
//! for system/user/assistant turns; [`ChatTemplate`] picks one of the two by name in configs.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which chat template wraps a conversation (`template = "qwen3"` or `"deepseek_r1"` in configs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatTemplate {
    /// Qwen3's `<|im_start|>role\n…<|im_end|>` template ([`apply_chat_template`]).
    #[default]
    Qwen3,
    /// DeepSeek-R1-Distill's `<｜User｜>…<｜Assistant｜>` template ([`apply_deepseek_r1_template`]).
    DeepseekR1,
}

impl ChatTemplate {
    /// Renders `messages` with this template.
    ///
    /// # Errors
    /// When the template cannot express a turn (tool turns in the R1 template).
    pub fn render(
        self,
        messages: &[Message],
        add_generation_prompt: bool,
        enable_thinking: bool,
    ) -> Result<String> {
        match self {
            Self::Qwen3 => Ok(apply_chat_template(
                messages,
                add_generation_prompt,
                enable_thinking,
            )),
            Self::DeepseekR1 => {
                apply_deepseek_r1_template(messages, add_generation_prompt, enable_thinking)
            }
        }
    }
}

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool's response.
    Tool,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Text (an assistant turn may contain `<think>…</think>`).
    pub content: String,
    /// An assistant turn's reasoning given separately from `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

impl Message {
    /// A turn without separate reasoning.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            reasoning_content: None,
        }
    }

    /// A user turn.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// A system turn.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// An assistant turn.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// Renders a conversation with Qwen3's template.
///
/// `add_generation_prompt` appends the assistant header; with `enable_thinking = false` it also appends
/// an empty think block so the model answers directly.
pub fn apply_chat_template(
    messages: &[Message],
    add_generation_prompt: bool,
    enable_thinking: bool,
) -> String {
    let mut out = String::new();
    let first_is_system = messages.first().is_some_and(|m| m.role == Role::System);
    if let Some(first) = messages.first().filter(|_| first_is_system) {
        out.push_str(&format!(
            "<|im_start|>system\n{}<|im_end|>\n",
            first.content
        ));
    }
    let last_query = last_query_index(messages);
    for (i, message) in messages.iter().enumerate() {
        match message.role {
            Role::System if i == 0 => {}
            Role::User | Role::System => {
                out.push_str(&format!(
                    "<|im_start|>{}\n{}<|im_end|>\n",
                    message.role.as_str(),
                    message.content
                ));
            }
            Role::Assistant => {
                let (reasoning, content) = split_reasoning(message);
                let is_last = i + 1 == messages.len();
                if i > last_query && (is_last || !reasoning.is_empty()) {
                    out.push_str(&format!(
                        "<|im_start|>assistant\n<think>\n{}\n</think>\n\n{}",
                        reasoning.trim_matches('\n'),
                        content.trim_start_matches('\n')
                    ));
                } else {
                    out.push_str(&format!("<|im_start|>assistant\n{content}"));
                }
                out.push_str("<|im_end|>\n");
            }
            Role::Tool => {
                let previous_is_tool = i > 0 && messages[i - 1].role == Role::Tool;
                if !previous_is_tool {
                    out.push_str("<|im_start|>user");
                }
                out.push_str(&format!(
                    "\n<tool_response>\n{}\n</tool_response>",
                    message.content
                ));
                let next_is_tool = messages.get(i + 1).is_some_and(|m| m.role == Role::Tool);
                if !next_is_tool {
                    out.push_str("<|im_end|>\n");
                }
            }
        }
    }
    if add_generation_prompt {
        out.push_str("<|im_start|>assistant\n");
        if !enable_thinking {
            out.push_str("<think>\n\n</think>\n\n");
        }
    }
    out
}

/// The R1-Distill tokenizer's beginning-of-sentence token, which its template writes first.
pub const DEEPSEEK_BOS: &str = "<｜begin▁of▁sentence｜>";
/// The R1-Distill tokenizer's end-of-sentence token, which closes an assistant turn.
pub const DEEPSEEK_EOS: &str = "<｜end▁of▁sentence｜>";

/// Renders a conversation with the DeepSeek-R1-Distill template: `BOS`, the system text (every system
/// turn's content, the last one winning, as the Jinja template keeps one `system_prompt`), then
/// `<｜User｜>question` and `<｜Assistant｜>answer<｜end▁of▁sentence｜>` turns, where an assistant turn
/// keeps only what follows its last `</think>`.
///
/// `add_generation_prompt` appends `<｜Assistant｜><think>\n` (the checkpoints' updated template opens
/// the reasoning block). With `enable_thinking = false` it appends `<｜Assistant｜><think>\n\n</think>\n\n`
/// instead: an empty, closed reasoning block — laconic's convention, R1-Distill has no official
/// non-thinking mode.
///
/// # Errors
/// On a tool turn: the plain-chat subset rendered here has no tool-output markers.
pub fn apply_deepseek_r1_template(
    messages: &[Message],
    add_generation_prompt: bool,
    enable_thinking: bool,
) -> Result<String> {
    let mut out = String::from(DEEPSEEK_BOS);
    if let Some(system) = messages.iter().rev().find(|m| m.role == Role::System) {
        out.push_str(&system.content);
    }
    for message in messages {
        match message.role {
            Role::System => {}
            Role::User => {
                out.push_str("<｜User｜>");
                out.push_str(&message.content);
            }
            Role::Assistant => {
                let content = &message.content;
                let answer = content
                    .rfind("</think>")
                    .map_or(content.as_str(), |i| &content[i + "</think>".len()..]);
                out.push_str("<｜Assistant｜>");
                out.push_str(answer);
                out.push_str(DEEPSEEK_EOS);
            }
            Role::Tool => {
                return Err(Error::Input(
                    "the DeepSeek-R1 chat template here renders system/user/assistant turns; \
                     a tool turn cannot be expressed"
                        .into(),
                ))
            }
        }
    }
    if add_generation_prompt {
        out.push_str(if enable_thinking {
            "<｜Assistant｜><think>\n"
        } else {
            "<｜Assistant｜><think>\n\n</think>\n\n"
        });
    }
    Ok(out)
}

/// Index of the last user turn that is not a wrapped tool response (the template's `last_query_index`).
fn last_query_index(messages: &[Message]) -> usize {
    messages
        .iter()
        .rposition(|m| {
            m.role == Role::User
                && !(m.content.starts_with("<tool_response>")
                    && m.content.ends_with("</tool_response>"))
        })
        .unwrap_or(messages.len().saturating_sub(1))
}

/// Splits an assistant turn into (reasoning, answer) as the template does.
fn split_reasoning(message: &Message) -> (String, String) {
    if let Some(reasoning) = &message.reasoning_content {
        return (reasoning.clone(), message.content.clone());
    }
    let content = &message.content;
    match content.find("</think>") {
        None => (String::new(), content.clone()),
        Some(first_close) => {
            let after_last_close =
                &content[content.rfind("</think>").unwrap_or(first_close) + "</think>".len()..];
            let before_first_close = content[..first_close].trim_end_matches('\n');
            let reasoning = before_first_close
                .rsplit("<think>")
                .next()
                .unwrap_or_default()
                .trim_start_matches('\n');
            (
                reasoning.to_string(),
                after_last_close.trim_start_matches('\n').to_string(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_prompt_with_and_without_thinking() {
        let messages = [Message::user("What is 12 * 7?")];
        assert_eq!(
            apply_chat_template(&messages, true, true),
            "<|im_start|>user\nWhat is 12 * 7?<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            apply_chat_template(&messages, true, false),
            "<|im_start|>user\nWhat is 12 * 7?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        );
    }

    #[test]
    fn earlier_assistant_turns_lose_their_think_block() {
        let messages = [
            Message::system("Be brief."),
            Message::user("1+1?"),
            Message::assistant("<think>\nadd\n</think>\n\n2"),
            Message::user("2+2?"),
        ];
        let text = apply_chat_template(&messages, true, true);
        assert!(
            text.contains("<|im_start|>assistant\n2<|im_end|>"),
            "{text}"
        );
        assert!(!text.contains("add"), "{text}");
    }

    #[test]
    fn deepseek_r1_template() {
        // Hand-rendered from the R1-Distill checkpoints' Jinja template.
        let messages = [
            Message::system("Be brief."),
            Message::user("1+1?"),
            Message::assistant("<think>\nadd\n</think>\n\n2"),
            Message::user("2+2?"),
        ];
        assert_eq!(
            apply_deepseek_r1_template(&messages, true, true).unwrap(),
            "<｜begin▁of▁sentence｜>Be brief.<｜User｜>1+1?<｜Assistant｜>\n\n2<｜end▁of▁sentence｜>\
             <｜User｜>2+2?<｜Assistant｜><think>\n"
        );
        assert_eq!(
            ChatTemplate::DeepseekR1
                .render(&[Message::user("q")], true, false)
                .unwrap(),
            "<｜begin▁of▁sentence｜><｜User｜>q<｜Assistant｜><think>\n\n</think>\n\n"
        );
        let tool = [Message::user("q"), Message::new(Role::Tool, "42")];
        let err = apply_deepseek_r1_template(&tool, true, true).unwrap_err();
        assert!(err.to_string().contains("tool turn"), "{err}");
        assert_eq!(
            ChatTemplate::Qwen3.render(&tool[..1], true, true).unwrap(),
            apply_chat_template(&tool[..1], true, true)
        );
    }
}
