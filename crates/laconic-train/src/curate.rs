//! Difficulty curation: the pass rate of each prompt over `k` samples of a model, and the Easy / Hard
//! split the paper built DeepScaleR-Easy with (Easy: pass rate > 0.5; Hard: ≤ 0.5).

use std::path::Path;

use burn::prelude::*;
use laconic_eval::{evaluate, Benchmark, DatasetSpec, EvalConfig, EvalReport, PromptConfig};
use laconic_model::{CausalLm, Tokenizer};
use laconic_reward::Judge;
use laconic_rollout::Observer;

use crate::error::{Error, Result};
use crate::run::write_atomic;

/// The paper's threshold: Easy prompts have a pass rate above one half.
pub const EASY_THRESHOLD: f64 = 0.5;

/// What curating a dataset measured: each record's pass rate, and the evaluation it was counted from
/// (its length quantiles by correctness are the model's natural lengths, which an `L_T` is set below).
#[derive(Debug, Clone)]
pub struct PassRates {
    /// Per record of the dataset, in record order: the fraction of samples judged correct.
    pub rates: Vec<f64>,
    /// The evaluation of every sample at the largest budget.
    pub report: EvalReport,
}

/// Pass rates per record of `dataset`: the fraction of `config.samples` samples judged correct within the
/// largest budget of `config`, in record order, with the evaluation they come from.
///
/// # Errors
/// An unreadable dataset, a tokenizer or generation failure.
pub fn pass_rates<B: Backend>(
    model: &CausalLm<B>,
    tokenizer: &Tokenizer,
    dataset: &DatasetSpec,
    prompt: &PromptConfig,
    config: &EvalConfig,
    judge: &dyn Judge,
    observer: &mut dyn Observer,
) -> Result<PassRates> {
    let records = dataset.load()?;
    let bench = Benchmark::from_records(&dataset.name, &records, prompt, tokenizer)?;
    let mut config = config.clone();
    config.budgets = vec![config.max_budget()];
    let report = evaluate(model, tokenizer, &[bench], &config, judge, observer)?;
    let mut correct = vec![0usize; records.len()];
    for sample in &report.samples {
        if sample.budgets.last().is_some_and(|b| b.correct) {
            correct[sample.question_idx] += 1;
        }
    }
    let rates = correct
        .into_iter()
        .map(|c| c as f64 / config.samples as f64)
        .collect();
    Ok(PassRates { rates, report })
}

/// Writes `easy.jsonl` (pass rate > `threshold`) and `hard.jsonl` (the rest) into `out_dir`: each record
/// of `dataset` that [`pass_rates`] read (its file's first [`DatasetSpec::limit`] records) unchanged plus
/// a `pass_rate` field. Returns the two counts.
///
/// # Errors
/// When the dataset cannot be read, a line is not a JSON object (naming it), the rates do not match the
/// records, or the output cannot be written.
pub fn write_split(
    dataset: &DatasetSpec,
    rates: &[f64],
    threshold: f64,
    out_dir: &Path,
) -> Result<(usize, usize)> {
    let (dataset, limit) = (dataset.path.as_path(), dataset.limit);
    let text = std::fs::read_to_string(dataset).map_err(|e| Error::io(dataset, e))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    if lines.len() != rates.len() {
        return Err(Error::RatesMismatch {
            path: dataset.to_path_buf(),
            records: lines.len(),
            rates: rates.len(),
        });
    }
    let (mut easy, mut hard) = (String::new(), String::new());
    let (mut n_easy, mut n_hard) = (0, 0);
    for ((i, line), &rate) in lines.into_iter().zip(rates) {
        let mut record: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| Error::Data {
                path: dataset.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })?;
        record.insert("pass_rate".into(), rate.into());
        let out = serde_json::to_string(&record).expect("a JSON object serialises");
        let (buf, n) = if rate > threshold {
            (&mut easy, &mut n_easy)
        } else {
            (&mut hard, &mut n_hard)
        };
        buf.push_str(&out);
        buf.push('\n');
        *n += 1;
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    write_atomic(&out_dir.join("easy.jsonl"), easy.as_bytes())?;
    write_atomic(&out_dir.join("hard.jsonl"), hard.as_bytes())?;
    Ok((n_easy, n_hard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_records_and_adds_pass_rates() {
        let dir = std::env::temp_dir().join(format!("laconic-curate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("d.jsonl");
        std::fs::write(
            &data,
            "{\"q\": \"a\", \"x\": 1}\n\n{\"q\": \"b\"}\n{\"q\": \"c\"}\n",
        )
        .unwrap();
        let mut spec = DatasetSpec::from_path(&data);
        let (easy, hard) = write_split(&spec, &[0.75, 0.5, 0.0], EASY_THRESHOLD, &dir).unwrap();
        assert_eq!((easy, hard), (1, 2));
        let easy = std::fs::read_to_string(dir.join("easy.jsonl")).unwrap();
        assert_eq!(easy, "{\"pass_rate\":0.75,\"q\":\"a\",\"x\":1}\n");
        let hard = std::fs::read_to_string(dir.join("hard.jsonl")).unwrap();
        assert!(hard.contains("\"b\"") && hard.contains("\"pass_rate\":0.5"));
        assert!(write_split(&spec, &[0.1], EASY_THRESHOLD, &dir).is_err());
        spec.limit = Some(2);
        let (easy, hard) = write_split(&spec, &[0.1, 0.9], EASY_THRESHOLD, &dir).unwrap();
        assert_eq!((easy, hard), (1, 1), "only the first two records are split");
        let easy = std::fs::read_to_string(dir.join("easy.jsonl")).unwrap();
        assert_eq!(easy, "{\"pass_rate\":0.9,\"q\":\"b\"}\n");
        std::fs::write(&data, "{\"q\": 1}\nnot json\n").unwrap();
        spec.limit = None;
        let err = write_split(&spec, &[0.1, 0.2], EASY_THRESHOLD, &dir)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
