//! Qwen3-MoE parity with Hugging Face transformers on tiny random checkpoints
//! (`tests/fixtures/parity/qwen3_moe/`, made by `tests/fixtures/make_moe.py`): logits, padded batches,
//! cached greedy decoding, the router load-balancing loss, save/reload with HF's parameter names, and
//! the grouped expert dispatch against the all-experts reference (values and gradients) — on ndarray
//! and on flex.

mod common;

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::prelude::*;
use common::{
    alone_layout, greedy, parity_fixture, read_expected, rel_err, tokens, values, Expected,
    MAX_REL_ERR,
};
use laconic::model::safetensors::SafetensorsIndex;
use laconic::model::seed::Stream;
use laconic::model::{
    load_model, normal_tensor, save_pretrained, AttentionLayout, CausalLm, DecoderConfig,
    FeedForward, SparseMoeBlock,
};

/// `norm_topk`: 8 experts, top-2, renormalised weights, layer 0 dense (`mlp_only_layers`), untied head.
/// `sparse_step2`: 16 experts, top-3, raw softmax weights, `decoder_sparse_step = 2`, tied embeddings.
const FIXTURES: [&str; 2] = ["norm_topk", "sparse_step2"];

fn fixture_dir(name: &str) -> PathBuf {
    parity_fixture(&format!("qwen3_moe/{name}"))
}

fn expected(name: &str) -> Expected {
    read_expected(&fixture_dir(name))
}

/// HF's `load_balancing_loss_func` of each prompt alone.
fn aux_loss(expected: &Expected) -> Vec<f64> {
    serde_json::from_value(expected.json["aux_loss"].clone()).unwrap()
}

/// The same over all prompts as one left-padded batch (padding masked).
fn aux_loss_batch(expected: &Expected) -> f64 {
    expected.json["aux_loss_batch"].as_f64().unwrap()
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()[0]
}

fn logits_and_aux_match_transformers<B: Backend>(backend: &str) {
    let device = Default::default();
    for name in FIXTURES {
        let model = load_model::<B>(fixture_dir(name), &device).unwrap();
        let expected = expected(name);
        let mut worst = 0f32;
        for (i, prompt) in expected.prompts.iter().enumerate() {
            let ids = tokens::<B>(std::slice::from_ref(prompt), prompt.len(), true, &device);
            let (logits, aux) = model
                .forward_with_aux(ids, &alone_layout(prompt.len()))
                .unwrap();
            let err = rel_err(&values(logits), &expected.logits[i]);
            assert!(err <= MAX_REL_ERR, "{name}: relative error {err:e}");
            worst = worst.max(err);
            let aux = scalar(
                aux.expect("a MoE model returns router statistics")
                    .load_balancing_loss(),
            );
            let reference = aux_loss(&expected)[i];
            assert!(
                (aux - reference).abs() <= 1e-5 * reference.abs(),
                "{name} prompt {i}: aux loss {aux} vs transformers {reference}"
            );
        }
        println!("{backend} {name}: max relative logit error vs transformers {worst:.2e}");
    }
}

fn padded_batches_equal_each_sequence_alone<B: Backend>() {
    let device = Default::default();
    for name in FIXTURES {
        let model = load_model::<B>(fixture_dir(name), &device).unwrap();
        let vocab = model.config().vocab_size;
        let expected = expected(name);
        let lengths: Vec<usize> = expected.prompts.iter().map(Vec::len).collect();
        let width = *lengths.iter().max().unwrap();
        for left in [true, false] {
            let layout = if left {
                AttentionLayout::left_padded(&lengths, width).unwrap()
            } else {
                AttentionLayout::right_padded(&lengths, width).unwrap()
            };
            let (logits, aux) = model
                .forward_with_aux(
                    tokens::<B>(&expected.prompts, width, left, &device),
                    &layout,
                )
                .unwrap();
            let logits = values(logits);
            for (b, len) in lengths.iter().enumerate() {
                let cols = if left { width - len..width } else { 0..*len };
                let start = (b * width + cols.start) * vocab;
                let row = &logits[start..start + len * vocab];
                let err = rel_err(row, &expected.logits[b]);
                assert!(
                    err <= MAX_REL_ERR,
                    "{name} (left padding: {left}) row {b}: relative error {err:e}"
                );
            }
            // Padding is left out of the router statistics, as HF's attention-masked loss does.
            let aux = aux.unwrap();
            assert_eq!(
                aux.routed_tokens(),
                lengths.iter().sum::<usize>() * sparse_layers(model.config())
            );
            let (ours, reference) = (scalar(aux.load_balancing_loss()), aux_loss_batch(&expected));
            assert!(
                (ours - reference).abs() <= 1e-5 * reference,
                "{name}: batch aux loss {ours} vs transformers {reference}"
            );
        }
    }
}

fn sparse_layers(config: &DecoderConfig) -> usize {
    (0..config.num_hidden_layers)
        .filter(|&l| config.is_moe_layer(l))
        .count()
}

fn cached_greedy_matches_transformers_and_full_forward<B: Backend>() {
    let device = Default::default();
    for name in FIXTURES {
        let model = load_model::<B>(fixture_dir(name), &device).unwrap();
        let expected = expected(name);
        for (prompt, reference) in expected.prompts.iter().zip(&expected.greedy) {
            let (ids, last_logits) = greedy(&model, prompt, reference.len(), &device);
            assert_eq!(
                &ids, reference,
                "{name}: greedy ids differ from transformers"
            );
            // The cached logits of the last step equal a full forward over prompt + continuation.
            let full: Vec<u32> = prompt
                .iter()
                .chain(&ids[..ids.len() - 1])
                .copied()
                .collect();
            let logits = model
                .forward(
                    tokens::<B>(std::slice::from_ref(&full), full.len(), true, &device),
                    &alone_layout(full.len()),
                )
                .unwrap();
            let [_, t, v] = logits.dims();
            let err = rel_err(&last_logits, &values(logits.slice([0..1, t - 1..t, 0..v])));
            assert!(
                err <= MAX_REL_ERR,
                "{name}: cached vs full forward relative error {err:e}"
            );
        }
    }
}

#[test]
fn ndarray_logits_and_aux_loss_match_transformers() {
    logits_and_aux_match_transformers::<burn::backend::NdArray>("ndarray");
}

#[test]
fn flex_logits_and_aux_loss_match_transformers() {
    logits_and_aux_match_transformers::<burn::backend::Flex>("flex");
}

#[test]
fn ndarray_padded_batches_equal_each_sequence_alone() {
    padded_batches_equal_each_sequence_alone::<burn::backend::NdArray>();
}

#[test]
fn flex_padded_batches_equal_each_sequence_alone() {
    padded_batches_equal_each_sequence_alone::<burn::backend::Flex>();
}

#[test]
fn ndarray_cached_greedy_matches_transformers_and_full_forward() {
    cached_greedy_matches_transformers_and_full_forward::<burn::backend::NdArray>();
}

#[test]
fn flex_cached_greedy_matches_transformers_and_full_forward() {
    cached_greedy_matches_transformers_and_full_forward::<burn::backend::Flex>();
}

#[test]
fn layers_follow_mlp_only_layers_and_the_sparse_step() {
    type B = burn::backend::NdArray;
    let device = Default::default();
    for (name, sparse) in [
        ("norm_topk", vec![false, true, true]),
        ("sparse_step2", vec![false, true, false, true]),
    ] {
        let model = load_model::<B>(fixture_dir(name), &device).unwrap();
        let kinds: Vec<bool> = model
            .model
            .layers
            .iter()
            .map(|layer| matches!(layer.mlp, FeedForward::Sparse(_)))
            .collect();
        assert_eq!(kinds, sparse, "{name}");
    }
}

#[test]
fn saved_checkpoints_keep_hf_names_and_reload_identically() {
    type B = burn::backend::NdArray;
    let device = Default::default();
    for name in FIXTURES {
        let model = load_model::<B>(fixture_dir(name), &device).unwrap();
        let out =
            std::env::temp_dir().join(format!("laconic-moe-save-{name}-{}", std::process::id()));
        save_pretrained(&model, &out).unwrap();
        // Same tensor names as the transformers checkpoint (no `Sparse`/`Dense` variant in the path).
        let names = |dir: &Path| {
            let index = SafetensorsIndex::from_dir(dir).unwrap();
            let mut names: Vec<String> = index.names().iter().map(|n| n.to_string()).collect();
            names.sort();
            names
        };
        let saved = names(&out);
        assert_eq!(saved, names(&fixture_dir(name)), "{name}");
        assert!(saved.contains(&"model.layers.1.mlp.gate.weight".to_string()));
        assert!(saved.contains(&"model.layers.1.mlp.experts.7.down_proj.weight".to_string()));
        assert!(saved.contains(&"model.layers.0.mlp.gate_proj.weight".to_string()));
        // The MoE keys survive the round trip.
        let reloaded = load_model::<B>(&out, &device).unwrap();
        assert_eq!(reloaded.config(), model.config());
        let prompt = vec![vec![5u32, 9, 13, 2]];
        let a = values(
            model
                .forward(tokens::<B>(&prompt, 4, true, &device), &alone_layout(4))
                .unwrap(),
        );
        let b = values(
            reloaded
                .forward(tokens::<B>(&prompt, 4, true, &device), &alone_layout(4))
                .unwrap(),
        );
        assert_eq!(a, b, "{name}");
        std::fs::remove_dir_all(out).unwrap();
    }
}

/// The first sparse block of a fixture model.
fn first_sparse<B: Backend>(model: &CausalLm<B>) -> &SparseMoeBlock<B> {
    model
        .model
        .layers
        .iter()
        .find_map(|layer| match &layer.mlp {
            FeedForward::Sparse(moe) => Some(moe),
            FeedForward::Dense(_) => None,
        })
        .expect("fixture has a sparse layer")
}

fn grouped_equals_all_experts<B: Backend>() {
    let device = Default::default();
    for name in FIXTURES {
        let model = load_model::<B>(fixture_dir(name), &device).unwrap();
        let block = first_sparse(&model);
        let d = model.config().hidden_size;
        let x = normal_tensor::<B, 3>(&mut Stream::new(3), [3, 7, d], 1.0, &device);
        let valid: Vec<bool> = (0..21).map(|i| i % 7 >= i / 7).collect();
        for valid in [None, Some(valid.as_slice())] {
            let grouped = values(block.forward(x.clone(), valid).0);
            let naive = values(block.forward_all_experts(x.clone(), valid));
            let err = rel_err(&grouped, &naive);
            assert!(err <= 1e-5, "{name}: grouped vs all experts {err:e}");
        }
    }
}

#[test]
fn ndarray_grouped_dispatch_equals_all_experts() {
    grouped_equals_all_experts::<burn::backend::NdArray>();
}

#[test]
fn flex_grouped_dispatch_equals_all_experts() {
    grouped_equals_all_experts::<burn::backend::Flex>();
}

/// Gradients of a training loss through the whole model (logits + weighted load-balancing loss) agree
/// between the grouped dispatch and the all-experts reference for the router and expert weights.
#[test]
fn flex_grouped_dispatch_gradients_equal_all_experts() {
    type AD = Autodiff<burn::backend::Flex>;
    let device = Default::default();
    let model = load_model::<AD>(fixture_dir("norm_topk"), &device).unwrap();
    let block = first_sparse(&model);
    let d = model.config().hidden_size;
    let mut stream = Stream::new(4);
    let x = normal_tensor::<AD, 3>(&mut stream, [2, 6, d], 1.0, &device).require_grad();
    let target = normal_tensor::<AD, 3>(&mut stream, [2, 6, d], 1.0, &device);
    let grads_of = |y: Tensor<AD, 3>| {
        let grads = (y * target.clone()).sum().backward();
        let mut out = values(x.grad(&grads).unwrap());
        out.extend(values(block.gate.weight.grad(&grads).unwrap()));
        for expert in &block.experts {
            match expert.up_proj.weight.grad(&grads) {
                Some(g) => out.extend(values(g)),
                None => out.extend(vec![0.0; expert.up_proj.weight.dims().iter().product()]),
            }
        }
        out
    };
    let grouped = grads_of(block.forward(x.clone(), None).0);
    let naive = grads_of(block.forward_all_experts(x.clone(), None));
    let err = rel_err(&grouped, &naive);
    assert!(err <= 1e-5, "gradient grouped vs all experts {err:e}");
}

#[test]
fn training_forward_backpropagates_the_load_balancing_loss_to_every_router() {
    type AD = Autodiff<burn::backend::Flex>;
    let device = Default::default();
    let model = load_model::<AD>(fixture_dir("sparse_step2"), &device).unwrap();
    let expected = expected("sparse_step2");
    let lengths: Vec<usize> = expected.prompts.iter().map(Vec::len).collect();
    let width = *lengths.iter().max().unwrap();
    let layout = AttentionLayout::left_padded(&lengths, width).unwrap();
    let (logits, aux) = model
        .forward_with_aux(
            tokens::<AD>(&expected.prompts, width, true, &device),
            &layout,
        )
        .unwrap();
    let aux = aux.unwrap();
    let metrics = aux.metrics();
    assert!((metrics["moe/aux_loss"] - aux_loss_batch(&expected)).abs() < 1e-4);
    assert!(metrics["moe/expert_load_max"] >= 1.0 && metrics["moe/expert_load_min"] <= 1.0);
    let coef = model.config().router_aux_loss_coef();
    let loss = logits.mean() + aux.load_balancing_loss() * coef;
    let grads = loss.backward();
    for (i, layer) in model.model.layers.iter().enumerate() {
        if let FeedForward::Sparse(moe) = &layer.mlp {
            let g = moe.gate.weight.grad(&grads).expect("router gradient");
            assert!(g.abs().sum().into_scalar() > 0.0, "layer {i}");
        }
    }
    // A dense model reports no router statistics.
    let dense = DecoderConfig::from_json_str(
        r#"{"model_type": "qwen3", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 4}"#,
        "dense",
    )
    .unwrap();
    let dense = CausalLm::<AD>::init(&dense, &device).unwrap();
    let (_, aux) = dense
        .forward_with_aux(
            tokens::<AD>(&[vec![1, 2]], 2, true, &device),
            &alone_layout(2),
        )
        .unwrap();
    assert!(aux.is_none());
}
