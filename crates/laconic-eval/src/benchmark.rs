//! `Benchmark`: named, pre-tokenised prompts with gold answers — what [`crate::evaluate`] consumes.
//!
//! Build one from a JSONL dataset ([`Benchmark::load`]), from records ([`Benchmark::from_records`]) or
//! directly from prompts a caller tokenised itself (the trainer's synthetic task: [`Benchmark::new`]).

use laconic_model::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetSpec, Record};
use crate::error::Result;
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
}

impl Benchmark {
    /// A benchmark of pre-tokenised items.
    pub fn new(name: impl Into<String>, items: Vec<EvalItem>) -> Self {
        Self {
            name: name.into(),
            items,
        }
    }

    /// Prompts built from dataset records.
    ///
    /// # Errors
    /// When the tokenizer fails.
    pub fn from_records(
        name: impl Into<String>,
        records: &[Record],
        prompt: &PromptConfig,
        tokenizer: &Tokenizer,
    ) -> Result<Self> {
        let items = records
            .iter()
            .map(|r| {
                Ok(EvalItem {
                    prompt_ids: prompt.encode(&r.question, tokenizer)?,
                    gold: r.answer.clone(),
                    question: r.question.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::new(name, items))
    }

    /// Reads a dataset and builds its prompts.
    ///
    /// # Errors
    /// As [`crate::read_jsonl`], or when the tokenizer fails.
    pub fn load(spec: &DatasetSpec, prompt: &PromptConfig, tokenizer: &Tokenizer) -> Result<Self> {
        Self::from_records(spec.name.clone(), &spec.load()?, prompt, tokenizer)
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
