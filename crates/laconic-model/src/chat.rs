//! Chat templates: a checkpoint's own Jinja `chat_template`, rendered as Hugging Face renders it.
//!
//! A checkpoint ships its template in `tokenizer_config.json` (`chat_template`: a string, or a list of
//! named templates of which `default` is used) or, in newer folders, in `chat_template.jinja`, with the
//! special tokens it refers to (`bos_token`, `eos_token`). [`ChatTemplate`] reads either and renders a
//! conversation with [minijinja] the way transformers' `apply_chat_template` does: `trim_blocks` and
//! `lstrip_blocks` on, Python's string and dict methods (`minijinja-contrib`'s `pycompat`), the
//! variables `messages`, `add_generation_prompt`, `enable_thinking`, `tools` and `documents` (none),
//! the special tokens the checkpoint sets (`bos_token`, `eos_token`; an unset one is undefined), and
//! the functions `raise_exception(message)` and `strftime_now(format)`. Checked against transformers'
//! renders of the Qwen3, Qwen2.5, DeepSeek-R1-Distill (both releases), Llama-3, Llama-3.1 and SmolLM2
//! templates in `tests/fixtures/chat/templates/` (`tests/tokenizer.rs`). Not yet covered: tool
//! definitions and tool calls (`tojson` here escapes `<`, `>`, `&` and `'`, where transformers'
//! does not).
//!
//! The renderer is minijinja (kept by the author of Jinja2's Rust port and used by the Rust serving
//! stacks for the same job) rather than laconic's own: a template is a program of its checkpoint's
//! authors, and only a Jinja engine runs every one of them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The file beside `tokenizer.json` that holds the template and its special tokens.
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
/// The file newer checkpoints keep the template in (it wins over `tokenizer_config.json`'s).
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";

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

/// A Jinja chat template and the special tokens it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    /// The file it came from, for errors.
    origin: PathBuf,
}

/// The fields of `tokenizer_config.json` a template needs.
#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    chat_template: Option<TemplateField>,
    #[serde(default)]
    bos_token: Option<SpecialToken>,
    #[serde(default)]
    eos_token: Option<SpecialToken>,
}

/// `chat_template`: one template, or named ones (`[{"name": "default", "template": …}, …]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

/// A special token: its string, or an `AddedToken` object (`{"content": …, …}`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Text(String),
    Added { content: String },
}

impl SpecialToken {
    fn into_text(self) -> String {
        match self {
            Self::Text(text) | Self::Added { content: text } => text,
        }
    }
}

impl ChatTemplate {
    /// A template from its Jinja `source`; `origin` names it in errors.
    ///
    /// # Errors
    /// When the source does not parse as a template.
    pub fn new(
        source: impl Into<String>,
        bos_token: Option<String>,
        eos_token: Option<String>,
        origin: impl Into<PathBuf>,
    ) -> Result<Self> {
        let template = Self {
            source: source.into(),
            bos_token,
            eos_token,
            origin: origin.into(),
        };
        environment()
            .template_from_str(&template.source)
            .map_err(|e| template.error(e))?;
        Ok(template)
    }

    /// The template of the checkpoint folder `dir`: `chat_template.jinja` when present, else
    /// `tokenizer_config.json`'s `chat_template`; the special tokens from `tokenizer_config.json`.
    /// `None` when the folder has neither.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, or a template that does not parse.
    pub fn from_folder(dir: impl AsRef<Path>) -> Result<Option<Self>> {
        let dir = dir.as_ref();
        let config_path = dir.join(TOKENIZER_CONFIG);
        let mut config = read_tokenizer_config_if_any(&config_path)?;
        let jinja = dir.join(CHAT_TEMPLATE_FILE);
        let (source, origin) = if jinja.is_file() {
            let source = std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?;
            (source, jinja)
        } else {
            match config.chat_template.take() {
                Some(field) => (pick_default(field, &config_path)?, config_path),
                None => return Ok(None),
            }
        };
        Self::with_tokens(source, config, &origin).map(Some)
    }

    /// A template file named by a config: a `.jinja` file (special tokens from a
    /// `tokenizer_config.json` beside it, if any) or a `tokenizer_config.json`.
    ///
    /// # Errors
    /// A missing or unreadable file, a `tokenizer_config.json` without `chat_template`, or a template
    /// that does not parse.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.extension().is_some_and(|e| e == "json") {
            let mut config = read_tokenizer_config(path)?;
            let field = config.chat_template.take().ok_or_else(|| Error::Config {
                path: path.to_path_buf(),
                message: "has no `chat_template`".into(),
            })?;
            return Self::with_tokens(pick_default(field, path)?, config, path);
        }
        let source = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config = read_tokenizer_config_if_any(&path.with_file_name(TOKENIZER_CONFIG))?;
        Self::with_tokens(source, config, path)
    }

    /// A template of `source` with the special tokens of `config`.
    fn with_tokens(source: String, config: TokenizerConfig, origin: &Path) -> Result<Self> {
        let text = |token: Option<SpecialToken>| token.map(SpecialToken::into_text);
        Self::new(
            source,
            text(config.bos_token),
            text(config.eos_token),
            origin,
        )
    }

    /// Writes the template into `dir` as a `tokenizer_config.json` holding `chat_template` and the
    /// special tokens it was read with: what [`ChatTemplate::from_folder`] and transformers'
    /// `AutoTokenizer` read back. A checkpoint folder carries it beside its `tokenizer.json`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_tokenizer_config(&self, dir: impl AsRef<Path>) -> Result<PathBuf> {
        let mut config = serde_json::Map::new();
        config.insert("chat_template".into(), self.source.clone().into());
        for (key, token) in [
            ("bos_token", &self.bos_token),
            ("eos_token", &self.eos_token),
        ] {
            if let Some(token) = token {
                config.insert(key.into(), token.clone().into());
            }
        }
        let path = dir.as_ref().join(TOKENIZER_CONFIG);
        let text = serde_json::to_string_pretty(&config).expect("a JSON object serialises");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    /// The template's end-of-sequence token (`eos_token`), which ends an assistant turn in most
    /// templates.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// The file the template came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Renders `messages`: `add_generation_prompt` appends the assistant's header; `enable_thinking`
    /// is passed to the template (Qwen3's, for one, answers directly when it is false).
    ///
    /// # Errors
    /// When the template fails or calls `raise_exception` (a conversation it refuses).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        enable_thinking: bool,
    ) -> Result<String> {
        // What transformers passes: `tools` and `documents` as none (so they are defined), the special
        // tokens the checkpoint sets (an unset one stays undefined), and the keyword arguments.
        let mut context = std::collections::BTreeMap::from([
            ("messages", minijinja::Value::from_serialize(messages)),
            ("add_generation_prompt", add_generation_prompt.into()),
            ("enable_thinking", enable_thinking.into()),
            ("tools", ().into()),
            ("documents", ().into()),
        ]);
        for (name, token) in [
            ("bos_token", &self.bos_token),
            ("eos_token", &self.eos_token),
        ] {
            if let Some(token) = token {
                context.insert(name, token.as_str().into());
            }
        }
        environment()
            .render_str(&self.source, context)
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: minijinja::Error) -> Error {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(inner) = source {
            message.push_str(&format!(": {inner}"));
            source = inner.source();
        }
        Error::ChatTemplate {
            path: self.origin.clone(),
            message,
        }
    }
}

/// A Jinja environment set up as transformers sets up its own for chat templates.
fn environment<'a>() -> minijinja::Environment<'a> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env
}

/// `tokenizer_config.json` at `path`, or an empty one when there is no such file.
fn read_tokenizer_config_if_any(path: &Path) -> Result<TokenizerConfig> {
    if path.is_file() {
        read_tokenizer_config(path)
    } else {
        Ok(TokenizerConfig::default())
    }
}

fn read_tokenizer_config(path: &Path) -> Result<TokenizerConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The template of a `chat_template` field: the one, or the one named `default`.
fn pick_default(field: TemplateField, path: &Path) -> Result<String> {
    match field {
        TemplateField::One(source) => Ok(source),
        TemplateField::Named(named) => named
            .into_iter()
            .find(|t| t.name == "default")
            .map(|t| t.template)
            .ok_or_else(|| Error::Config {
                path: path.to_path_buf(),
                message: "`chat_template` lists named templates but none named `default`".into(),
            }),
    }
}

/// `raise_exception(message)`: a template's way to refuse a conversation.
fn raise_exception(message: String) -> std::result::Result<minijinja::Value, minijinja::Error> {
    Err(minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        message,
    ))
}

/// `strftime_now(format)`: today's date (UTC) in `format`, for the templates that print it (Llama
/// 3.x's "Today Date"). Supports `%d`, `%-d`, `%b`, `%B`, `%m`, `%Y`, `%y` and `%%`.
fn strftime_now(format: String) -> std::result::Result<String, minijinja::Error> {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let (year, month, day) = civil_date(days as i64);
    format_date(&format, year, month, day)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))
}

/// `format` with the date filled in (the directives of [`strftime_now`]).
fn format_date(
    format: &str,
    year: i64,
    month: u32,
    day: u32,
) -> std::result::Result<String, String> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let name = MONTHS[month as usize - 1];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut directive = chars.next().ok_or("a format that ends in `%`")?;
        let unpadded = directive == '-';
        if unpadded {
            directive = chars.next().ok_or("a format that ends in `%-`")?;
        }
        match (directive, unpadded) {
            ('d', false) => out.push_str(&format!("{day:02}")),
            ('d', true) => out.push_str(&day.to_string()),
            ('m', false) => out.push_str(&format!("{month:02}")),
            ('m', true) => out.push_str(&month.to_string()),
            ('b', _) => out.push_str(&name[..3]),
            ('B', _) => out.push_str(name),
            ('Y', _) => out.push_str(&year.to_string()),
            ('y', _) => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            ('%', _) => out.push('%'),
            (other, _) => return Err(format!("strftime_now: unsupported directive `%{other}`")),
        }
    }
    Ok(out)
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(source: &str) -> ChatTemplate {
        ChatTemplate::new(
            source,
            Some("<s>".into()),
            Some("</s>".into()),
            "test.jinja",
        )
        .unwrap()
    }

    #[test]
    fn renders_with_transformers_whitespace_and_python_methods() {
        // trim_blocks drops the newline after a block tag, lstrip_blocks the indentation before it;
        // `.strip()` and `.startswith()` are Python's.
        let t = template(
            "{{ bos_token }}\n  {% for m in messages %}\n[{{ m.role }}] {{ m.content.strip() }}\n  {% endfor %}\n{% if add_generation_prompt and messages[0].content.startswith(' q') %}A:{% endif %}",
        );
        let text = t
            .render(
                &[Message::user(" q1 "), Message::assistant("a")],
                true,
                true,
            )
            .unwrap();
        assert_eq!(text, "<s>\n[user] q1\n[assistant] a\nA:");
    }

    #[test]
    fn a_refusal_names_the_template_file() {
        let t = template("{% if messages[0].role == 'system' %}{{ raise_exception('no system turns') }}{% endif %}ok");
        assert_eq!(t.render(&[Message::user("q")], true, true).unwrap(), "ok");
        let err = t
            .render(&[Message::system("s")], true, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test.jinja") && err.contains("no system turns"),
            "{err}"
        );
        let broken = ChatTemplate::new("{% if %}", None, None, "broken.jinja").unwrap_err();
        assert!(broken.to_string().contains("broken.jinja"), "{broken}");
    }

    #[test]
    fn dates_follow_the_gregorian_calendar() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(19_930), (2024, 7, 26));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(format_date("%d %b %Y", 2024, 7, 26).unwrap(), "26 Jul 2024");
        assert_eq!(
            format_date("%-d %B %y, 100%%", 2024, 7, 6).unwrap(),
            "6 July 24, 100%"
        );
        assert!(format_date("%H", 2024, 7, 6).is_err());
    }

    #[test]
    fn reads_a_folder_s_template_and_tokens() {
        let dir = std::env::temp_dir().join(format!("laconic-chat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(ChatTemplate::from_folder(&dir).unwrap(), None);
        std::fs::write(
            dir.join(TOKENIZER_CONFIG),
            r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ eos_token }}"}],
                "eos_token": {"content": "<|end|>", "lstrip": false}, "bos_token": null}"#,
        )
        .unwrap();
        let t = ChatTemplate::from_folder(&dir).unwrap().unwrap();
        assert_eq!(t.render(&[], false, true).unwrap(), "<|end|>");
        assert_eq!(t.eos_token(), Some("<|end|>"));
        std::fs::write(dir.join(CHAT_TEMPLATE_FILE), "J{{ eos_token }}").unwrap();
        let t = ChatTemplate::from_folder(&dir).unwrap().unwrap();
        assert_eq!(t.render(&[], false, true).unwrap(), "J<|end|>");
        assert_eq!(t.origin(), dir.join(CHAT_TEMPLATE_FILE));
        std::fs::write(dir.join(TOKENIZER_CONFIG), "{}").unwrap();
        let err = ChatTemplate::from_file(dir.join(TOKENIZER_CONFIG)).unwrap_err();
        assert!(err.to_string().contains("chat_template"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
