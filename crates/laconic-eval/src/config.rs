//! `EvalConfig`: budgets, samples per question, sampling, metric and scoring knobs.

use laconic_rollout::{EngineConfig, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a sample that has not finished within budget `B` scores.
///
/// Both choices give the same numbers as separate runs capped at `B` (each is a function of the first
/// `B` tokens alone); they differ only on samples that wrote an answer and then kept going past `B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum TruncatedScoring {
    /// Judge the text cut at `B`: correct only if its final answer is already there. With think-aware
    /// extraction (the default judge), an unclosed `<think>` has no answer, so a thinking model cut
    /// mid-thought is incorrect. The paper's rule: "output cut at B before a final answer = incorrect".
    /// Default.
    #[default]
    Judge,
    /// Every sample without its stop token within `B` is incorrect, even with a `\boxed{}` answer
    /// already written (stricter, for non-thinking models that answer and then ramble).
    Incorrect,
}

/// Everything an evaluation needs besides the model, the data and the judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Token budgets `B` scored, any order (the paper: 2k, 4k, 8k, 16k, 32k). One generation capped at the
    /// largest is scored at all of them. Default `[2048, 4096, 8192, 16384, 32768]`.
    pub budgets: Vec<usize>,
    /// Samples per question (`k` of Mean@k; the paper uses 8). Default 8.
    pub samples: usize,
    /// Sampling temperature. Unspecified in the paper; default 0.6 (Qwen3's thinking-mode recommendation).
    pub temperature: f32,
    /// Nucleus mass. Unspecified in the paper; default 0.95 (Qwen3's recommendation).
    pub top_p: f32,
    /// Top-k, 0 = off. Unspecified in the paper; default 20 (Qwen3's recommendation).
    pub top_k: usize,
    /// Min-p, 0 = off. Default 0.
    pub min_p: f32,
    /// Seed of the per-sample random streams. Default 0.
    pub seed: u64,
    /// The `k`s of the reported Pass@k, each ≤ `samples`; empty = `[1, samples]`. Default empty.
    pub pass_k: Vec<usize>,
    /// Quantiles of the length distributions, in [0, 1]. Default p10, p25, p50, p75, p90.
    pub quantiles: Vec<f64>,
    /// Equal-width bins of the length histograms over `[0, B]` at each budget. Default 32.
    pub histogram_bins: usize,
    /// How a sample not finished within `B` is scored. Default [`TruncatedScoring::Judge`].
    pub truncated: TruncatedScoring,
    /// Ids that end a response; empty = the tokenizer's `<|im_end|>`/`<|endoftext|>` plus the model's
    /// `eos_token_id`. Default empty.
    pub stop_ids: Vec<u32>,
    /// Batching of the generation engine (speed and memory only).
    pub engine: EngineConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            budgets: vec![2048, 4096, 8192, 16384, 32768],
            samples: 8,
            temperature: 0.6,
            top_p: 0.95,
            top_k: 20,
            min_p: 0.0,
            seed: 0,
            pass_k: Vec::new(),
            quantiles: vec![0.1, 0.25, 0.5, 0.75, 0.9],
            histogram_bins: 32,
            truncated: TruncatedScoring::Judge,
            stop_ids: Vec::new(),
            engine: EngineConfig::default(),
        }
    }
}

impl EvalConfig {
    /// Checks every knob.
    ///
    /// # Errors
    /// The first knob out of range, naming it.
    pub fn validate(&self) -> Result<()> {
        let bad = |key, expected: &str, found: String| {
            Err(Error::InvalidConfig {
                key,
                expected: expected.to_string(),
                found,
            })
        };
        if self.budgets.is_empty() || self.budgets.contains(&0) {
            return bad(
                "eval.budgets",
                "a non-empty list of positive token counts",
                format!("{:?}", self.budgets),
            );
        }
        if self.samples == 0 {
            return bad("eval.samples", "a positive integer", "0".into());
        }
        if let Some(&k) = self.pass_k.iter().find(|&&k| k == 0 || k > self.samples) {
            return bad(
                "eval.pass_k",
                &format!("values in 1..={} (eval.samples)", self.samples),
                k.to_string(),
            );
        }
        if let Some(q) = self.quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return bad("eval.quantiles", "values in [0, 1]", q.to_string());
        }
        if self.histogram_bins == 0 {
            return bad("eval.histogram_bins", "a positive integer", "0".into());
        }
        self.sampling_params(Vec::new()).validate()?;
        Ok(())
    }

    /// The budgets, ascending, without duplicates.
    pub fn sorted_budgets(&self) -> Vec<usize> {
        let mut budgets = self.budgets.clone();
        budgets.sort_unstable();
        budgets.dedup();
        budgets
    }

    /// The largest budget: the generation cap of the one-pass sweep.
    pub fn max_budget(&self) -> usize {
        self.budgets.iter().copied().max().unwrap_or(0)
    }

    /// The `k`s of Pass@k, ascending: `pass_k`, or `[1, samples]` when it is empty.
    pub fn pass_ks(&self) -> Vec<usize> {
        let mut ks = if self.pass_k.is_empty() {
            vec![1, self.samples]
        } else {
            self.pass_k.clone()
        };
        ks.sort_unstable();
        ks.dedup();
        ks
    }

    /// Sampling parameters of the generation: capped at the largest budget.
    pub fn sampling_params(&self, stop_ids: Vec<u32>) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            max_tokens: self.max_budget(),
            stop_ids,
            seed: self.seed,
            first_prompt: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_knob() {
        assert!(EvalConfig::default().validate().is_ok());
        let cases = [
            (
                EvalConfig {
                    budgets: vec![],
                    ..Default::default()
                },
                "eval.budgets",
            ),
            (
                EvalConfig {
                    budgets: vec![16, 0],
                    ..Default::default()
                },
                "eval.budgets",
            ),
            (
                EvalConfig {
                    samples: 0,
                    ..Default::default()
                },
                "eval.samples",
            ),
            (
                EvalConfig {
                    pass_k: vec![1, 9],
                    ..Default::default()
                },
                "eval.pass_k",
            ),
            (
                EvalConfig {
                    quantiles: vec![1.5],
                    ..Default::default()
                },
                "eval.quantiles",
            ),
            (
                EvalConfig {
                    histogram_bins: 0,
                    ..Default::default()
                },
                "eval.histogram_bins",
            ),
            (
                EvalConfig {
                    top_p: 0.0,
                    ..Default::default()
                },
                "top_p",
            ),
        ];
        for (config, key) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{err}");
        }
    }

    #[test]
    fn derived_values() {
        let c = EvalConfig {
            budgets: vec![64, 16, 64, 32],
            samples: 4,
            ..Default::default()
        };
        assert_eq!(c.sorted_budgets(), [16, 32, 64]);
        assert_eq!(c.max_budget(), 64);
        assert_eq!(c.pass_ks(), [1, 4]);
        assert_eq!(
            EvalConfig {
                pass_k: vec![4, 2, 2],
                ..c.clone()
            }
            .pass_ks(),
            [2, 4]
        );
        assert_eq!(c.sampling_params(vec![7]).max_tokens, 64);
    }

    #[test]
    fn knob_names_round_trip() {
        for (v, name) in [
            (TruncatedScoring::Judge, "\"judge\""),
            (TruncatedScoring::Incorrect, "\"incorrect\""),
        ] {
            assert_eq!(serde_json::to_string(&v).unwrap(), name);
            assert_eq!(serde_json::from_str::<TruncatedScoring>(name).unwrap(), v);
        }
        let err = serde_json::from_str::<EvalConfig>(r#"{"budget": [1]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `budget`"), "{err}");
    }
}
