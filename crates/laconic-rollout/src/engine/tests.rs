//! Engine tests on a tiny random model: batching invariance, finish boundaries, log-probs, sampling
//! frequencies, input errors.

use super::*;
use crate::TestBackend;
use burn::tensor::activation::log_softmax;
use laconic_model::DecoderConfig;

fn tiny_model(vocab: usize) -> CausalLm<TestBackend> {
    let config = DecoderConfig::from_json_str(
        &format!(
            r#"{{"model_type": "qwen3", "vocab_size": {vocab}, "hidden_size": 32, "intermediate_size": 48,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
            "tie_word_embeddings": true}}"#
        ),
        "tiny",
    )
    .unwrap();
    // HF's 0.02 init makes near-uniform logits; a spread-out embedding gives a peaked distribution.
    let model = CausalLm::<TestBackend>::init_seeded(&config, 7, &Default::default()).unwrap();
    let mut model = model;
    model.model.embed_tokens.weight = model.model.embed_tokens.weight.map(|w| w * 6.0);
    model
}

fn prompts() -> Vec<Vec<u32>> {
    vec![vec![3, 7, 1, 9, 4], vec![5], vec![2, 8, 6]]
}

/// Sampling with temperature, top-k, two stop ids and a length cut, so rollouts differ in length.
fn varied_params() -> SamplingParams {
    SamplingParams {
        temperature: 0.9,
        top_k: 12,
        max_tokens: 9,
        stop_ids: vec![0, 1],
        seed: 3,
        ..Default::default()
    }
}

#[test]
fn rollouts_do_not_depend_on_batching() {
    let model = tiny_model(24);
    let params = varied_params();
    let run = |config: EngineConfig| {
        Engine::new(&model, config)
            .unwrap()
            .generate(&prompts(), 5, &params, &mut ())
            .unwrap()
    };
    let reference = run(EngineConfig::default());
    assert_eq!(reference.len(), 15);
    for config in [
        EngineConfig {
            max_batch: 2,
            prefill_batch: 1,
            ..Default::default()
        },
        EngineConfig {
            max_batch: 7,
            prefill_batch: 2,
            ..Default::default()
        },
        EngineConfig {
            share_prefix: false,
            ..Default::default()
        },
        EngineConfig::naive(4),
    ] {
        assert_same_rollouts(&run(config.clone()), &reference, &format!("{config:?}"));
    }
    // Different seeds give different rollouts.
    let other = Engine::new(&model, EngineConfig::default())
        .unwrap()
        .generate(
            &prompts(),
            5,
            &SamplingParams {
                seed: 4,
                ..params.clone()
            },
            &mut (),
        )
        .unwrap();
    assert_ne!(other, reference);
}

/// Same ids and finish reasons; log-probs equal up to float rounding (matrix-product reductions
/// depend on the batch shape, so bitwise equality of log-probs across batchings is not promised).
fn assert_same_rollouts(a: &[Rollout], b: &[Rollout], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (x.prompt_idx, x.sample_idx, &x.response_ids, x.finish),
            (y.prompt_idx, y.sample_idx, &y.response_ids, y.finish),
            "{what}"
        );
        for (p, q) in x.logprobs.iter().zip(&y.logprobs) {
            assert!(
                (p - q).abs() <= 1e-4 * p.abs().max(1.0),
                "{what}: logprob {p} vs {q}"
            );
        }
    }
}

#[test]
fn finish_reasons_at_the_boundaries() {
    let model = tiny_model(24);
    let engine = Engine::new(&model, EngineConfig::default()).unwrap();
    // No stop ids: every rollout is cut at exactly max_tokens.
    let cut = engine
        .generate(&prompts(), 2, &SamplingParams::greedy(4), &mut ())
        .unwrap();
    assert!(cut
        .iter()
        .all(|r| r.finish == Finish::Length && r.len() == 4));
    // The 4th greedy token of prompt 0 as the only stop id: it ends as Stop with exactly 4 tokens.
    let ids = &cut[0].response_ids;
    let stop = ids[3];
    if !ids[..3].contains(&stop) {
        let params = SamplingParams {
            stop_ids: vec![stop],
            ..SamplingParams::greedy(4)
        };
        let out = engine
            .generate(&prompts()[..1], 1, &params, &mut ())
            .unwrap();
        assert_eq!(out[0].finish, Finish::Stop);
        assert_eq!(&out[0].response_ids, ids);
    }
    // A stop on the very first token.
    let params = SamplingParams {
        stop_ids: vec![ids[0]],
        ..SamplingParams::greedy(4)
    };
    let out = engine
        .generate(&prompts()[..1], 2, &params, &mut ())
        .unwrap();
    assert!(out
        .iter()
        .all(|r| r.finish == Finish::Stop && r.response_ids == vec![ids[0]]));
}

#[test]
fn logprobs_equal_a_fresh_forward_pass() {
    let model = tiny_model(24);
    let params = SamplingParams {
        temperature: 0.7,
        top_p: 0.9,
        max_tokens: 6,
        seed: 11,
        ..Default::default()
    };
    let engine = Engine::new(
        &model,
        EngineConfig {
            max_batch: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let rollouts = engine.generate(&prompts(), 3, &params, &mut ()).unwrap();
    let device = Default::default();
    for r in &rollouts {
        let prompt = &prompts()[r.prompt_idx];
        let ids: Vec<i64> = prompt
            .iter()
            .chain(&r.response_ids)
            .map(|&t| t as i64)
            .collect();
        let len = ids.len();
        let tokens =
            Tensor::<TestBackend, 2, Int>::from_data(TensorData::new(ids, [1, len]), &device);
        let layout = AttentionLayout::left_padded(&[len], len).unwrap();
        let logp = log_softmax(model.forward(tokens, &layout).unwrap() / 0.7, 2);
        let logp: Vec<f32> = logp.into_data().convert::<f32>().into_vec().unwrap();
        let vocab = 24;
        for (i, (&token, &got)) in r.response_ids.iter().zip(&r.logprobs).enumerate() {
            let position = prompt.len() + i - 1;
            let expected = logp[position * vocab + token as usize];
            assert!(
                (got - expected).abs() < 1e-4,
                "token {i}: {got} vs {expected}"
            );
        }
    }
}

/// Probabilities of the first token under temperature → top-k → top-p → min-p, computed directly.
fn reference_distribution(
    logits: &[f32],
    t: f32,
    top_k: usize,
    top_p: f32,
    min_p: f32,
) -> Vec<f64> {
    let scaled: Vec<f64> = logits.iter().map(|&l| l as f64 / t as f64).collect();
    let mut order: Vec<usize> = (0..scaled.len()).collect();
    order.sort_by(|&a, &b| scaled[b].partial_cmp(&scaled[a]).unwrap());
    let k = if top_k == 0 { order.len() } else { top_k };
    let mut kept: Vec<usize> = order[..k].to_vec();
    let weight = |i: usize| (scaled[i] - scaled[order[0]]).exp();
    let z: f64 = kept.iter().map(|&i| weight(i)).sum();
    let mut mass = 0.0;
    let mut n = kept.len();
    for (j, &i) in kept.iter().enumerate() {
        mass += weight(i) / z;
        if mass >= top_p as f64 {
            n = j + 1;
            break;
        }
    }
    kept.truncate(n);
    kept.retain(|&i| weight(i) >= min_p as f64 * weight(kept_first(&order)));
    let z: f64 = kept.iter().map(|&i| weight(i)).sum();
    let mut p = vec![0.0; scaled.len()];
    for i in kept {
        p[i] = weight(i) / z;
    }
    p
}

fn kept_first(order: &[usize]) -> usize {
    order[0]
}

#[test]
fn sampled_frequencies_match_the_truncated_softmax() {
    let model = tiny_model(16);
    let prompt = vec![vec![3u32, 5, 7]];
    let device = Default::default();
    let tokens = Tensor::<TestBackend, 2, Int>::from_ints([[3, 5, 7]], &device);
    let layout = AttentionLayout::left_padded(&[3], 3).unwrap();
    let logits: Vec<f32> = model
        .forward(tokens, &layout)
        .unwrap()
        .into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap();
    let last = &logits[2 * 16..3 * 16];
    let engine = Engine::new(
        &model,
        EngineConfig {
            max_batch: 4096,
            ..Default::default()
        },
    )
    .unwrap();
    let n = 4000;
    for (t, top_k, top_p, min_p) in [
        (1.0, 0, 1.0, 0.0),
        (0.7, 5, 1.0, 0.0),
        (1.3, 0, 0.8, 0.0),
        (1.0, 8, 0.9, 0.1),
    ] {
        let params = SamplingParams {
            temperature: t,
            top_k,
            top_p,
            min_p,
            max_tokens: 1,
            seed: 99,
            ..Default::default()
        };
        let out = engine.generate(&prompt, n, &params, &mut ()).unwrap();
        let mut counts = [0usize; 16];
        for r in &out {
            counts[r.response_ids[0] as usize] += 1;
        }
        let p = reference_distribution(last, t, top_k, top_p, min_p);
        // Pearson chi-square over tokens with nonzero expected probability; none outside the support.
        let mut chi2 = 0.0;
        let mut dof = 0;
        for (token, &c) in counts.iter().enumerate() {
            if p[token] == 0.0 {
                assert_eq!(c, 0, "token {token} sampled outside the truncated support ({t}, {top_k}, {top_p}, {min_p})");
                continue;
            }
            let expected = p[token] * n as f64;
            chi2 += (c as f64 - expected).powi(2) / expected;
            dof += 1;
        }
        let dof = (dof - 1).max(1) as f64;
        // Mean + 6 standard deviations of the chi-square distribution (a fixed seed makes this exact).
        let bound = dof + 6.0 * (2.0 * dof).sqrt();
        assert!(
            chi2 < bound,
            "chi2 {chi2:.1} ≥ {bound:.1} for ({t}, {top_k}, {top_p}, {min_p})"
        );
    }
}

#[test]
fn rejects_bad_prompts() {
    let model = tiny_model(24);
    let engine = Engine::new(&model, EngineConfig::default()).unwrap();
    let err = engine
        .generate(&[vec![1], vec![]], 1, &SamplingParams::greedy(2), &mut ())
        .unwrap_err();
    assert!(err.to_string().contains("prompt 1"), "{err}");
    let err = engine
        .generate(&[vec![99]], 1, &SamplingParams::greedy(2), &mut ())
        .unwrap_err();
    assert!(err.to_string().contains("`99`"), "{err}");
    assert!(Engine::new(
        &model,
        EngineConfig {
            max_batch: 0,
            ..Default::default()
        }
    )
    .is_err());
}

/// A KV-cache budget far below what the batch wants forces preemptions; the preempted sequences are
/// recomputed later and come out as in an unbounded run, and the cache never holds more than the budget.
#[test]
fn preempted_sequences_come_out_the_same() {
    let model = tiny_model(24);
    let params = varied_params();
    let reference = Engine::new(&model, EngineConfig::default())
        .unwrap()
        .generate(&prompts(), 5, &params, &mut ())
        .unwrap();
    for budget in [14, 30, 45] {
        let mut last = Progress::default();
        let mut peak = 0;
        let mut watch = |p: &Progress| {
            peak = peak.max(p.kv_cache_peak).max(p.kv_cache_tokens);
            last = *p;
        };
        let config = EngineConfig {
            kv_cache_tokens: Some(budget),
            ..Default::default()
        };
        let bounded = Engine::new(&model, config)
            .unwrap()
            .generate(&prompts(), 5, &params, &mut watch)
            .unwrap();
        assert_same_rollouts(&bounded, &reference, &format!("budget {budget}"));
        assert!(peak <= budget, "peak {peak} slots over the budget {budget}");
        assert!(last.preemptions > 0, "budget {budget} preempted nothing");
    }
}

#[test]
fn a_prompt_that_cannot_fit_the_budget_alone_is_an_error() {
    let model = tiny_model(24);
    let params = SamplingParams {
        max_tokens: 9,
        seed: 1,
        ..Default::default()
    };
    let config = EngineConfig {
        kv_cache_tokens: Some(12),
        ..Default::default()
    };
    let err = Engine::new(&model, config)
        .unwrap()
        .generate(&prompts(), 2, &params, &mut ())
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("prompt 0") && text.contains("kv_cache_tokens = 12") && text.contains("14"),
        "{text}"
    );
}

#[test]
fn a_budget_beyond_the_model_positions_is_an_error() {
    let model = tiny_model(24);
    let positions = model.config().max_position_embeddings;
    let params = SamplingParams {
        max_tokens: positions,
        seed: 1,
        ..Default::default()
    };
    let err = Engine::new(&model, EngineConfig::default())
        .unwrap()
        .generate(&prompts(), 1, &params, &mut ())
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("prompt 0")
            && text.contains(&format!("max_position_embeddings = {positions}"))
            && text.contains(&format!("max_tokens {positions}")),
        "{text}"
    );
}
