//! The Qwen3 chat template (hybrid thinking), rendered in Rust.
//!
//! Mirrors the Jinja template shipped in Qwen3's `tokenizer_config.json` for conversations without
//! tool definitions: an optional leading system turn, user/assistant/tool turns, earlier assistant
//! turns stripped of their `<think>` block, and a generation prompt that, with thinking disabled, ends
//! in an empty `<think>\n\n</think>\n\n`. Checked against `apply_chat_template` output in
//! `tests/fixtures/chat/`.

use serde::{Deserialize, Serialize};

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
}
