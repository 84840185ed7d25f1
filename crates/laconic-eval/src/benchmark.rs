//! `Benchmark`: named, pre-tokenised prompts with gold answers — what [`crate::evaluate`] consumes.
//!
//! Build one from a JSONL dataset ([`Benchmark::load`]), from records ([`Benchmark::from_records`]) or
//! directly from prompts a caller tokenised itself (the trainer's synthetic task: [`Benchmark::new`]).

use std::path::PathBuf;

use laconic_model::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetSpec, Record};
use crate::error::{Error, Result};
use crate::prompt::PromptConfig;

/// One question, ready to generate from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalItem {
    /// The prompt's token ids (template and suffix applied).
    pub prompt_ids: Vec<u32>,
    /// The gold answer handed to the judge.
    pub gold: String,
    /// The question as shown in reports (not fed to the model).
    pub question: String,
}

/// A named set of questions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Benchmark {
    /// The name shown in reports (a column of `eval.md`).
    pub name: String,
    /// The questions.
    pub items: Vec<EvalItem>,
    /// Where the questions were read from, for messages (`None` for questions made in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceLines>,
}

/// The file and 1-based line of each question of a benchmark read from a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLines {
    /// The file (empty when only the lines are known).
    pub path: PathBuf,
    /// One line per item, in order.
    pub lines: Vec<usize>,
}

/// What to do with a prompt longer than a [`PromptLimit`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum OverlongPrompts {
    /// Stop with an error naming the file, line and both lengths (default).
    #[default]
    Error,
    /// Leave the prompt out, counting it.
    Drop,
}

/// The most prompt tokens that fit, why, and the policy for longer prompts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptLimit {
    /// Most prompt tokens.
    pub max_tokens: usize,
    /// Where the limit comes from, with its numbers (for the error).
    pub why: String,
    /// Error or drop.
    pub policy: OverlongPrompts,
    /// The setting a user changes to drop such prompts (for the error).
    pub drop_hint: &'static str,
}

impl PromptLimit {
    /// The limit of a model with `positions` positions generating up to `max_new_tokens` after the
    /// prompt; `max_prompt_tokens` lowers it further when given. Saturates at 0.
    pub fn for_model(
        positions: usize,
        max_new_tokens: usize,
        max_prompt_tokens: Option<usize>,
        policy: OverlongPrompts,
        drop_hint: &'static str,
    ) -> Self {
        let fit = positions.saturating_sub(max_new_tokens);
        let (max_tokens, why) = match max_prompt_tokens {
            Some(max) if max < fit => (max, format!("max_prompt_tokens = {max}")),
            _ => (
                fit,
                format!(
                    "max_position_embeddings {positions} − {max_new_tokens} generated tokens = {fit}"
                ),
            ),
        };
        Self {
            max_tokens,
            why,
            policy,
            drop_hint,
        }
    }
}

impl Benchmark {
    /// A benchmark of pre-tokenised items.
    pub fn new(name: impl Into<String>, items: Vec<EvalItem>) -> Self {
        Self {
            name: name.into(),
            items,
            source: None,
        }
    }

    /// Prompts built from dataset records.
    ///
    /// # Errors
    /// When the chat template is missing or refuses a prompt, or the tokenizer fails.
    pub fn from_records(
        name: impl Into<String>,
        records: &[Record],
        prompt: &PromptConfig,
        tokenizer: &Tokenizer,
    ) -> Result<Self> {
        let prompter = prompt.prompter(tokenizer)?;
        let items = records
            .iter()
            .map(|r| {
                Ok(EvalItem {
                    prompt_ids: prompter.encode(&r.question)?,
                    gold: r.answer.clone(),
                    question: r.question.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            source: Some(SourceLines {
                path: PathBuf::new(),
                lines: records.iter().map(|r| r.line).collect(),
            }),
            ..Self::new(name, items)
        })
    }

    /// Reads a dataset and builds its prompts.
    ///
    /// # Errors
    /// As [`crate::read_jsonl`], or when the tokenizer fails.
    pub fn load(spec: &DatasetSpec, prompt: &PromptConfig, tokenizer: &Tokenizer) -> Result<Self> {
        let mut bench = Self::from_records(spec.name.clone(), &spec.load()?, prompt, tokenizer)?;
        if let Some(source) = &mut bench.source {
            source.path.clone_from(&spec.path);
        }
        Ok(bench)
    }

    /// Where question `i` came from: `` `file` line N ``, `line N`, or `question N` (1-based).
    pub fn origin(&self, i: usize) -> String {
        match &self.source {
            Some(SourceLines { path, lines }) if i < lines.len() => {
                if path.as_os_str().is_empty() {
                    format!("line {}", lines[i])
                } else {
                    format!("`{}` line {}", path.display(), lines[i])
                }
            }
            _ => format!("question {}", i + 1),
        }
    }

    /// Checks every prompt against `limit` (whatever its policy).
    ///
    /// # Errors
    /// [`Error::PromptTooLong`] for the first longer prompt, naming its file, line and both lengths.
    pub fn check_prompts(&self, limit: &PromptLimit) -> Result<()> {
        match self
            .items
            .iter()
            .position(|item| item.prompt_ids.len() > limit.max_tokens)
        {
            Some(i) => Err(Error::PromptTooLong {
                benchmark: self.name.clone(),
                origin: self.origin(i),
                tokens: self.items[i].prompt_ids.len(),
                limit: limit.max_tokens,
                why: limit.why.clone(),
                drop_hint: limit.drop_hint,
            }),
            None => Ok(()),
        }
    }

    /// Applies `limit` to every prompt: under [`OverlongPrompts::Drop`] leaves the longer ones out,
    /// notes how many on stderr and returns the count; by default stops at the first, as
    /// [`Benchmark::check_prompts`].
    ///
    /// # Errors
    /// As [`Benchmark::check_prompts`], under [`OverlongPrompts::Error`].
    pub fn limit_prompts(&mut self, limit: &PromptLimit) -> Result<usize> {
        if limit.policy == OverlongPrompts::Error {
            self.check_prompts(limit)?;
            return Ok(0);
        }
        let fits: Vec<bool> = self
            .items
            .iter()
            .map(|item| item.prompt_ids.len() <= limit.max_tokens)
            .collect();
        let mut keep = fits.iter();
        self.items.retain(|_| keep.next().copied().unwrap_or(true));
        if let Some(source) = &mut self.source {
            let mut keep = fits.iter();
            source
                .lines
                .retain(|_| keep.next().copied().unwrap_or(true));
        }
        let dropped = fits.iter().filter(|&&fit| !fit).count();
        if dropped > 0 {
            eprintln!(
                "note: `{}`: dropped {dropped} of {} prompts longer than {} tokens ({})",
                self.name,
                fits.len(),
                limit.max_tokens,
                limit.why
            );
        }
        Ok(dropped)
    }

    /// Number of questions.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is no question.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench(lengths: &[usize]) -> Benchmark {
        let items = lengths
            .iter()
            .map(|&n| EvalItem {
                prompt_ids: vec![1; n],
                gold: "1".into(),
                question: "q".into(),
            })
            .collect();
        Benchmark {
            source: Some(SourceLines {
                path: "data/x.jsonl".into(),
                lines: vec![1, 2, 4],
            }),
            ..Benchmark::new("x", items)
        }
    }

    /// A prompt past the model's positions is an error naming the file, line and both lengths, or
    /// is dropped and counted when the user asks for it.
    #[test]
    fn overlong_prompts_are_named_or_dropped() {
        let limit = PromptLimit::for_model(256, 16, None, OverlongPrompts::Error, "`drop it`");
        assert_eq!(limit.max_tokens, 240);
        let mut b = bench(&[10, 100_002, 241]);
        let err = b.limit_prompts(&limit).unwrap_err().to_string();
        assert_eq!(
            err,
            "benchmark `x`: `data/x.jsonl` line 2: the prompt has 100002 tokens, more than the 240 that \
             fit (max_position_embeddings 256 − 16 generated tokens = 240); drop such prompts with `drop it`"
        );
        let drop = PromptLimit {
            policy: OverlongPrompts::Drop,
            ..limit
        };
        assert_eq!(b.limit_prompts(&drop).unwrap(), 2);
        assert_eq!(b.len(), 1);
        assert_eq!(b.source.as_ref().unwrap().lines, [1]);
        // A configured limit below what fits wins; one above it does not.
        let tight = PromptLimit::for_model(256, 16, Some(8), OverlongPrompts::Error, "");
        assert_eq!(
            (tight.max_tokens, tight.why.as_str()),
            (8, "max_prompt_tokens = 8")
        );
        assert!(b
            .check_prompts(&tight)
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        let loose = PromptLimit::for_model(256, 16, Some(1000), OverlongPrompts::Error, "");
        assert_eq!(loose.max_tokens, 240);
        // Budgets past the positions leave room for no prompt at all.
        assert_eq!(
            PromptLimit::for_model(16, 32, None, OverlongPrompts::Error, "").max_tokens,
            0
        );
    }
}
