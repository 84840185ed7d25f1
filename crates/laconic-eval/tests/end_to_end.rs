//! End to end on a tiny random model with the real Qwen3 tokenizer and a few GSM8K and MATH-500 items:
//! every file is written, and eval.json, eval.md and samples.jsonl agree with one another.

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::tensor::backend::Backend;
use laconic_eval::markdown::{percent, tokens};
use laconic_eval::{
    evaluate, read_samples, write_comparison, Benchmark, BuiltIn, DatasetSpec, EvalConfig,
    EvalReport, PromptConfig, SampleRecord, COMPARE_MD, EVAL_JSON, EVAL_MD, SAMPLES_JSONL,
};
use laconic_model::{CausalLm, DecoderConfig, Tokenizer};
use laconic_reward::{Judge, Judgement, MathJudge};
use laconic_rollout::Finish;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The math judge, plus "correct" for any response of an even number of bytes: a random model never gets
/// a GSM8K answer right, and the test needs a mix of correct and incorrect samples (15 samples judged at
/// 3 budgets: all of one parity is vanishingly unlikely whatever the random weights).
struct MathOrEven;

impl Judge for MathOrEven {
    fn judge(&self, response: &str, gold: &str) -> Judgement {
        let math = MathJudge::default().judge(response, gold);
        Judgement {
            correct: Some(math.is_correct() || response.len().is_multiple_of(2)),
            extracted: math.extracted,
        }
    }
}

fn benchmarks(tokenizer: &Tokenizer) -> Vec<Benchmark> {
    let data = repo().join("assets/data");
    let prompt = PromptConfig::default();
    [(BuiltIn::Gsm8kTest, 3), (BuiltIn::Math500, 2)]
        .into_iter()
        .map(|(builtin, n)| {
            let spec = DatasetSpec {
                limit: Some(n),
                ..builtin.spec(&data)
            };
            Benchmark::load(&spec, &prompt, tokenizer).unwrap()
        })
        .collect()
}

fn eval_config(tokenizer: &Tokenizer, seed: u64) -> EvalConfig {
    // Random weights never sample <|im_end|>: also stop at tokens holding an `x`, so some samples finish.
    let vocab = tokenizer.inner().get_vocab(true);
    let stop_ids = vocab
        .iter()
        .filter(|(t, _)| t.contains('x'))
        .map(|(_, &id)| id)
        .collect();
    EvalConfig {
        budgets: vec![16, 4, 8],
        samples: 3,
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        seed,
        histogram_bins: 4,
        stop_ids,
        ..EvalConfig::default()
    }
}

/// The rows of the Markdown table under `## {heading}`: budget → cells.
fn table(md: &str, heading: &str) -> Vec<(usize, Vec<String>)> {
    let start = md
        .find(&format!("## {heading}\n"))
        .unwrap_or_else(|| panic!("no `{heading}` in\n{md}"));
    md[start..]
        .lines()
        .skip(4)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            (cells[0].parse().unwrap(), cells[1..].to_vec())
        })
        .collect()
}

/// Mean@k, mean length and truncation rate recomputed from the per-sample records.
fn recompute(samples: &[SampleRecord], bench: &str, at: usize) -> (f64, f64, f64) {
    let mine: Vec<&SampleRecord> = samples.iter().filter(|s| s.benchmark == bench).collect();
    let questions: std::collections::BTreeSet<usize> =
        mine.iter().map(|s| s.question_idx).collect();
    let mean_at_k = questions
        .iter()
        .map(|&q| {
            let of_q: Vec<_> = mine.iter().filter(|s| s.question_idx == q).collect();
            of_q.iter().filter(|s| s.budgets[at].correct).count() as f64 / of_q.len() as f64
        })
        .sum::<f64>()
        / questions.len() as f64;
    let n = mine.len() as f64;
    let length = mine
        .iter()
        .map(|s| s.budgets[at].length as f64)
        .sum::<f64>()
        / n;
    let truncated = mine.iter().filter(|s| !s.budgets[at].finished).count() as f64 / n;
    (mean_at_k, length, truncated)
}

#[test]
fn every_file_is_written_and_the_numbers_agree() {
    let tokenizer = Tokenizer::from_file(repo().join("assets/qwen3/tokenizer.json")).unwrap();
    let config = DecoderConfig::from_json_str(
        r#"{"model_type": "qwen3", "vocab_size": 151936, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
            "tie_word_embeddings": true}"#,
        "config.json",
    )
    .unwrap();
    let device = burn::backend::ndarray::NdArrayDevice::default();
    // One test in this binary: seeding makes the random weights, and so every file, reproducible.
    <NdArray as Backend>::seed(&device, 11);
    let model = CausalLm::<NdArray>::init(&config, &device).unwrap();
    let benchmarks = benchmarks(&tokenizer);
    assert_eq!(benchmarks[0].items[0].gold, "18");
    let mut report = evaluate(
        &model,
        &tokenizer,
        &benchmarks,
        &eval_config(&tokenizer, 1),
        &MathOrEven,
        &mut (),
    )
    .unwrap();
    report.info.model = Some("tiny".into());
    let dir = std::env::temp_dir().join(format!("laconic-eval-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let written = report.write(&dir).unwrap();

    // 1. Every file.
    for name in [
        EVAL_JSON,
        EVAL_MD,
        SAMPLES_JSONL,
        "accuracy.svg",
        "lengths-gsm8k.svg",
        "lengths-math500.svg",
    ] {
        assert!(
            written.contains(&dir.join(name)),
            "{name} not in {written:?}"
        );
        assert!(
            std::fs::metadata(dir.join(name)).unwrap().len() > 0,
            "{name} is empty"
        );
    }

    // 2. eval.json round-trips, samples.jsonl holds every sample.
    let json = EvalReport::read(&dir).unwrap();
    assert_eq!(
        json,
        EvalReport {
            samples: Vec::new(),
            ..report.clone()
        }
    );
    let samples = read_samples(dir.join(SAMPLES_JSONL)).unwrap();
    assert_eq!(samples, report.samples);
    assert_eq!(samples.len(), (3 + 2) * 3);

    // 3. Each sample is consistent with itself at every budget.
    for s in &samples {
        assert_eq!(
            s.budgets.iter().map(|o| o.budget).collect::<Vec<_>>(),
            [4, 8, 16]
        );
        for o in &s.budgets {
            assert_eq!(o.length, s.length.min(o.budget));
            assert_eq!(o.finished, s.finish == Finish::Stop && s.length <= o.budget);
        }
        assert!(s
            .budgets
            .windows(2)
            .all(|w| !w[0].finished || w[1].finished));
    }

    // 4. eval.json's numbers are those of samples.jsonl, and eval.md prints them.
    let md = std::fs::read_to_string(dir.join(EVAL_MD)).unwrap();
    let mean_table = table(&md, "Mean@3 (%)");
    let pass_table = table(&md, "Pass@3 (%)");
    let length_table = table(&md, "Mean length, counted up to B (tokens)");
    let trunc_table = table(&md, "Truncation rate (no stop token within B) (%)");
    let (mut any_correct, mut any_incorrect) = (false, false);
    for (col, bench) in json.benchmarks.iter().enumerate() {
        for (at, m) in bench.budgets.iter().enumerate() {
            let (mean_at_k, length, truncated) = recompute(&samples, &bench.name, at);
            assert!(
                (m.mean_at_k - mean_at_k).abs() < 1e-12,
                "{} at {}",
                bench.name,
                m.budget
            );
            assert!((m.mean_length - length).abs() < 1e-12);
            assert!((m.truncation_rate - truncated).abs() < 1e-12);
            assert_eq!(
                m.lengths.correct.count + m.lengths.incorrect.count,
                3 * bench.questions
            );
            assert_eq!(
                m.lengths.all.histogram.counts.iter().sum::<usize>(),
                3 * bench.questions
            );
            assert_eq!(mean_table[at], (m.budget, mean_table[at].1.clone()));
            assert_eq!(mean_table[at].1[col], percent(m.mean_at_k));
            assert_eq!(pass_table[at].1[col], percent(m.pass_at_k[&3]));
            assert_eq!(length_table[at].1[col], tokens(m.mean_length));
            assert_eq!(trunc_table[at].1[col], percent(m.truncation_rate));
            any_correct |= m.lengths.correct.count > 0;
            any_incorrect |= m.lengths.incorrect.count > 0;
        }
    }
    assert!(
        any_correct && any_incorrect,
        "the judge should see both outcomes"
    );
    let svg = std::fs::read_to_string(dir.join("accuracy.svg")).unwrap();
    assert!(svg.contains("gsm8k Mean@3") && svg.contains("math500 Pass@3"));

    // 5. A comparison with another seed.
    let other = evaluate(
        &model,
        &tokenizer,
        &benchmarks,
        &eval_config(&tokenizer, 2),
        &MathOrEven,
        &mut (),
    )
    .unwrap();
    let compare_dir = dir.join("compare");
    let written = write_comparison(&other, &report, ["seed2", "seed1"], &compare_dir).unwrap();
    for name in [
        COMPARE_MD,
        "compare-accuracy.svg",
        "compare-lengths-gsm8k.svg",
        "compare-lengths-math500.svg",
    ] {
        assert!(written.contains(&compare_dir.join(name)), "{name}");
    }
    let compare = std::fs::read_to_string(compare_dir.join(COMPARE_MD)).unwrap();
    let rows = table(&compare, "Mean@3 (%)");
    let (x, y) = (
        other.benchmarks[0].budgets[0].mean_at_k,
        report.benchmarks[0].budgets[0].mean_at_k,
    );
    assert_eq!(rows[0].1[..2], [percent(x), percent(y)]);
    std::fs::remove_dir_all(&dir).unwrap();
}
