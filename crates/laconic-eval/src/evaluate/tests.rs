//! The one-pass equivalence: a generation capped at 128 tokens, scored at 32, equals a run capped at 32.

use laconic_model::DecoderConfig;
use laconic_reward::Judgement;
use laconic_rollout::{EngineConfig, Finish, SamplingParams};

use super::*;
use crate::benchmark::EvalItem;
use crate::config::TruncatedScoring;
use crate::TestBackend;

/// Words of the test vocabulary: id 0 ends a response, `w1` … `w31` are plain words.
const VOCAB: usize = 32;

fn tokenizer() -> Tokenizer {
    let vocab: Vec<String> = (0..VOCAB)
        .map(|i| match i {
            0 => "\"<end>\": 0".to_string(),
            i => format!("\"w{i}\": {i}"),
        })
        .collect();
    let json = format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
            "pre_tokenizer": {{"type": "WhitespaceSplit"}}, "post_processor": null, "decoder": null,
            "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "w1"}}}}"#,
        vocab.join(", ")
    );
    Tokenizer::from_bytes(json.as_bytes(), "words.json").unwrap()
}

fn model() -> CausalLm<TestBackend> {
    let config = DecoderConfig::from_json_str(
        &format!(
            r#"{{"model_type": "qwen3", "vocab_size": {VOCAB}, "hidden_size": 16, "intermediate_size": 32,
                "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8}}"#
        ),
        "config.json",
    )
    .unwrap();
    CausalLm::init_seeded(&config, 7, &Default::default()).unwrap()
}

/// Correct when the response says the gold word; the extracted answer is the response's last word.
struct SaysGold;

impl Judge for SaysGold {
    fn judge(&self, response: &str, gold: &str) -> Judgement {
        let words: Vec<&str> = response.split_whitespace().collect();
        Judgement {
            correct: Some(words.contains(&gold)),
            extracted: words.last().map(|w| w.to_string()),
        }
    }
}

fn benchmark() -> Benchmark {
    let items = (0..6)
        .map(|i| EvalItem {
            prompt_ids: vec![1 + i, 7, 2 * i + 3],
            gold: format!("w{}", 5 + i),
            question: format!("question {i}"),
        })
        .collect();
    Benchmark::new("words", items)
}

fn config(budgets: Vec<usize>) -> EvalConfig {
    EvalConfig {
        budgets,
        samples: 4,
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        seed: 11,
        histogram_bins: 8,
        stop_ids: vec![0],
        ..EvalConfig::default()
    }
}

#[test]
fn capped_runs_share_their_token_prefixes() {
    let model = model();
    let prompts: Vec<Vec<u32>> = benchmark()
        .items
        .into_iter()
        .map(|i| i.prompt_ids)
        .collect();
    let params = |max_tokens| SamplingParams {
        max_tokens,
        temperature: 1.0,
        stop_ids: vec![0],
        seed: 11,
        ..SamplingParams::default()
    };
    let long = Engine::new(&model, EngineConfig::default())
        .unwrap()
        .generate(&prompts, 4, &params(128), &mut ())
        .unwrap();
    // A different batch size too: the streams depend on neither.
    let short_engine = EngineConfig {
        max_batch: 5,
        ..EngineConfig::default()
    };
    let short = Engine::new(&model, short_engine)
        .unwrap()
        .generate(&prompts, 4, &params(32), &mut ())
        .unwrap();
    assert_eq!(long.len(), short.len());
    let (mut stopped_early, mut cut) = (0, 0);
    for (l, s) in long.iter().zip(&short) {
        assert_eq!((l.prompt_idx, l.sample_idx), (s.prompt_idx, s.sample_idx));
        let prefix = &l.response_ids[..l.len().min(32)];
        assert_eq!(
            s.response_ids, prefix,
            "prompt {} sample {}",
            s.prompt_idx, s.sample_idx
        );
        let finished_within = l.finish == Finish::Stop && l.len() <= 32;
        assert_eq!(s.finish == Finish::Stop, finished_within);
        stopped_early += usize::from(finished_within);
        cut += usize::from(!finished_within);
    }
    // Both cases occur, so the comparison is not vacuous.
    assert!(
        stopped_early > 0 && cut > 0,
        "stopped {stopped_early}, cut {cut}"
    );

    // Scoring the long run at 32 equals scoring the short run, under both truncation rules.
    let bench = benchmark();
    for truncated in [TruncatedScoring::Judge, TruncatedScoring::Incorrect] {
        let decode = |ids: &[u32]| tokenizer().decode(ids);
        let c = EvalConfig {
            truncated,
            ..config(vec![32])
        };
        let (from_long, long_records) =
            score_benchmark(&bench, &long, &c, &SaysGold, &decode).unwrap();
        let (from_short, short_records) =
            score_benchmark(&bench, &short, &c, &SaysGold, &decode).unwrap();
        assert_eq!(from_long.budgets, from_short.budgets);
        let outcomes = |r: &[SampleRecord]| r.iter().map(|s| s.budgets.clone()).collect::<Vec<_>>();
        assert_eq!(outcomes(&long_records), outcomes(&short_records));
    }
}

#[test]
fn one_pass_metrics_equal_a_separate_run() {
    let (model, tokenizer) = (model(), tokenizer());
    let mut steps = Vec::new();
    let mut observer = |p: &Progress| steps.push(*p);
    let one_pass = evaluate(
        &model,
        &tokenizer,
        &[benchmark()],
        &config(vec![128, 32]),
        &SaysGold,
        &mut observer,
    )
    .unwrap();
    let separate = evaluate(
        &model,
        &tokenizer,
        &[benchmark()],
        &config(vec![32]),
        &SaysGold,
        &mut (),
    )
    .unwrap();
    let at = |r: &EvalReport, b| r.benchmarks[0].at(b).unwrap().clone();
    assert_eq!(at(&one_pass, 32), at(&separate, 32));
    // Not vacuous: some samples are correct at 32, more by 128; some finish within 32, not all.
    let (m32, m128) = (at(&one_pass, 32), at(&one_pass, 128));
    assert!(
        m32.mean_at_k > 0.0 && m128.mean_at_k > m32.mean_at_k,
        "{} {}",
        m32.mean_at_k,
        m128.mean_at_k
    );
    assert!(m32.truncation_rate > 0.0 && m32.truncation_rate < 1.0);
    assert!(m128.mean_length > m32.mean_length);
    // Budgets come back ascending; every sample is scored at both.
    assert_eq!(one_pass.budgets(), [32, 128]);
    assert_eq!(one_pass.samples.len(), 6 * 4);
    assert!(one_pass
        .samples
        .iter()
        .all(|s| s.budgets.len() == 2 && s.budgets[0].length <= 32));
    assert_eq!(one_pass.info.max_tokens, 128);
    assert_eq!(
        one_pass.info.tokens_generated,
        one_pass.samples.iter().map(|s| s.length).sum::<usize>()
    );
    // The observer saw the whole generation.
    let last = steps.last().unwrap();
    assert_eq!((last.total, last.finished), (24, 24));
}

#[test]
fn progress_spans_every_benchmark() {
    let (model, tokenizer) = (model(), tokenizer());
    let mut steps = Vec::new();
    let mut observer = |p: &Progress| steps.push(*p);
    let two = [
        benchmark(),
        Benchmark::new("second", benchmark().items[..2].to_vec()),
    ];
    let report = evaluate(
        &model,
        &tokenizer,
        &two,
        &config(vec![8]),
        &SaysGold,
        &mut observer,
    )
    .unwrap();
    assert_eq!(report.benchmarks.len(), 2);
    assert_eq!(report.benchmarks[1].questions, 2);
    assert!(steps.iter().all(|p| p.total == (6 + 2) * 4));
    assert!(steps.windows(2).all(|w| w[0].finished <= w[1].finished));
    assert_eq!(steps.last().unwrap().finished, 32);
    // The second benchmark's questions are the first two of the first: same prompts, same samples.
    assert_eq!(report.benchmarks[1].budgets[0].questions, 2);
    assert_eq!(
        report.samples[..8]
            .iter()
            .map(|s| &s.response)
            .collect::<Vec<_>>(),
        report.samples[24..]
            .iter()
            .map(|s| &s.response)
            .collect::<Vec<_>>()
    );
}

#[test]
fn rejects_empty_benchmarks_and_bad_configs() {
    let (model, tokenizer) = (model(), tokenizer());
    let empty = Benchmark::new("none", Vec::new());
    let err = evaluate(
        &model,
        &tokenizer,
        &[empty],
        &config(vec![8]),
        &SaysGold,
        &mut (),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "benchmark `none`: no questions");
    let err = evaluate(
        &model,
        &tokenizer,
        &[benchmark(), benchmark()],
        &config(vec![8]),
        &SaysGold,
        &mut (),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("benchmark `words`: benchmark 2 has the name of an earlier one"),
        "{err}"
    );
    let err = evaluate(
        &model,
        &tokenizer,
        &[benchmark()],
        &config(vec![]),
        &SaysGold,
        &mut (),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`eval.budgets`"), "{err}");
    // A budget past the model's positions names both numbers before any generation.
    let positions = model.config().max_position_embeddings;
    let err = evaluate(
        &model,
        &tokenizer,
        &[benchmark()],
        &config(vec![8, positions + 1]),
        &SaysGold,
        &mut (),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`eval.budgets`")
            && err.contains(&format!("max_position_embeddings = {positions}"))
            && err.contains(&(positions + 1).to_string()),
        "{err}"
    );
}

#[test]
fn scoring_needs_enough_samples_per_question() {
    let (model, bench) = (model(), benchmark());
    let prompts: Vec<Vec<u32>> = bench.items.iter().map(|i| i.prompt_ids.clone()).collect();
    let params = SamplingParams {
        max_tokens: 8,
        stop_ids: vec![0],
        ..SamplingParams::default()
    };
    let mut rollouts = Engine::new(&model, EngineConfig::default())
        .unwrap()
        .generate(&prompts, 4, &params, &mut ())
        .unwrap();
    let decode = |ids: &[u32]| tokenizer().decode(ids);
    assert!(score_benchmark(&bench, &rollouts, &config(vec![8]), &SaysGold, &decode).is_ok());
    rollouts.retain(|r| !(r.prompt_idx == 2 && r.sample_idx == 3));
    let err = score_benchmark(&bench, &rollouts, &config(vec![8]), &SaysGold, &decode).unwrap_err();
    assert_eq!(
        err.to_string(),
        "benchmark `words`: question 2 has 3 samples, fewer than 4 (the largest Pass@k k)"
    );
    // A budget above the generation cap cannot be scored.
    let err = score_benchmark(
        &bench,
        &rollouts,
        &EvalConfig {
            pass_k: vec![1],
            ..config(vec![16])
        },
        &SaysGold,
        &decode,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::BudgetAboveCap { budget: 16, .. }),
        "{err}"
    );
}

#[test]
fn stop_ids_default_to_the_tokenizer_and_model() {
    let model = model();
    let qwen = Tokenizer::from_file(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/qwen3/tokenizer.json"),
    )
    .unwrap();
    assert_eq!(
        stop_ids(&EvalConfig::default(), &qwen, &model),
        [151643, 151645]
    );
    let explicit = EvalConfig {
        stop_ids: vec![3],
        ..EvalConfig::default()
    };
    assert_eq!(stop_ids(&explicit, &qwen, &model), [3]);
}
