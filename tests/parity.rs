//! Parity with Hugging Face transformers on tiny random Qwen3, Qwen2 and Llama checkpoints
//! (`tests/fixtures/parity/`, made by
//! `tests/fixtures/make_parity.py`): logits, padded batches, cached decoding, greedy ids, save/reload and
//! load errors — on ndarray and on flex; logits and greedy ids of one long (3000-token) prompt on flex.

mod common;

use std::path::PathBuf;

use burn::prelude::*;
use common::{
    greedy, parity_fixture, read_expected, rel_err, row_logits, tokens, values, Expected,
    MAX_REL_ERR,
};
use laconic::model::{load_model, save_pretrained, AttentionLayout, Error};

/// Qwen3 tied and untied (bf16, sharded), Qwen2 with biases (f16), Llama tied (SmolLM2-like), Llama-3
/// with `llama3` rope scaling and attention/MLP biases (bf16), Qwen3 with YaRN.
const FIXTURES: [&str; 6] = [
    "qwen3_tied",
    "qwen3_untied",
    "qwen2_bias",
    "llama_tied",
    "llama3_scaled",
    "qwen3_yarn",
];

/// One prompt of 3000 tokens (8 greedy tokens after it): positions far beyond the short fixtures'.
const LONG: [&str; 1] = ["qwen3_long"];

fn fixture_dir(name: &str) -> PathBuf {
    parity_fixture(name)
}

fn expected(name: &str) -> Expected {
    read_expected(&fixture_dir(name))
}

/// The `[T, V]` logits of one prompt run alone.
fn prompt_logits<B: Backend>(model: &laconic::model::CausalLm<B>, prompt: &[u32]) -> Vec<f32> {
    let device = model.model.norm.weight.device();
    let layout = AttentionLayout::left_padded(&[prompt.len()], prompt.len()).unwrap();
    let batch = tokens::<B>(&[prompt.to_vec()], prompt.len(), true, &device);
    values(model.forward(batch, &layout).unwrap())
}

fn logits_match_transformers<B: Backend>(fixtures: &[&str]) {
    let device = Default::default();
    for &name in fixtures {
        let model = load_model::<B>(fixture_dir(name), &device).unwrap();
        let expected = expected(name);
        for (prompt, reference) in expected.prompts.iter().zip(&expected.logits) {
            let err = rel_err(&prompt_logits(&model, prompt), reference);
            assert!(err <= MAX_REL_ERR, "{name}: relative error {err:e}");
        }
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
            let logits = values(
                model
                    .forward(
                        tokens::<B>(&expected.prompts, width, left, &device),
                        &layout,
                    )
                    .unwrap(),
            );
            for (b, len) in lengths.iter().enumerate() {
                let cols = if left { width - len..width } else { 0..*len };
                let err = rel_err(
                    &row_logits(&logits, b, width, vocab, cols),
                    &expected.logits[b],
                );
                assert!(
                    err <= MAX_REL_ERR,
                    "{name} (left padding: {left}) row {b}: relative error {err:e}"
                );
            }
        }
    }
}

fn cached_greedy_matches_transformers_and_full_forward<B: Backend>(fixtures: &[&str]) {
    let device = Default::default();
    for &name in fixtures {
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
            let layout = AttentionLayout::left_padded(&[full.len()], full.len()).unwrap();
            let logits = model
                .forward(
                    tokens::<B>(std::slice::from_ref(&full), full.len(), true, &device),
                    &layout,
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
fn ndarray_logits_match_transformers() {
    logits_match_transformers::<burn::backend::NdArray>(&FIXTURES);
}

#[test]
fn flex_logits_match_transformers() {
    logits_match_transformers::<burn::backend::Flex>(&FIXTURES);
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
    cached_greedy_matches_transformers_and_full_forward::<burn::backend::NdArray>(&FIXTURES);
}

#[test]
fn flex_cached_greedy_matches_transformers_and_full_forward() {
    cached_greedy_matches_transformers_and_full_forward::<burn::backend::Flex>(&FIXTURES);
}

#[test]
fn flex_long_prompt_logits_match_transformers() {
    logits_match_transformers::<burn::backend::Flex>(&LONG);
}

#[test]
fn flex_long_prompt_cached_greedy_matches_transformers_and_full_forward() {
    cached_greedy_matches_transformers_and_full_forward::<burn::backend::Flex>(&LONG);
}

#[test]
fn saved_checkpoints_reload_identically() {
    type B = burn::backend::NdArray;
    let device = Default::default();
    let model = load_model::<B>(fixture_dir("qwen3_untied"), &device).unwrap();
    let out = std::env::temp_dir().join(format!("laconic-save-{}", std::process::id()));
    save_pretrained(&model, &out).unwrap();
    let reloaded = load_model::<B>(&out, &device).unwrap();
    let prompt = vec![vec![5u32, 9, 13, 2]];
    let layout = AttentionLayout::left_padded(&[4], 4).unwrap();
    let a = values(
        model
            .forward(tokens::<B>(&prompt, 4, true, &device), &layout)
            .unwrap(),
    );
    let b = values(
        reloaded
            .forward(tokens::<B>(&prompt, 4, true, &device), &layout)
            .unwrap(),
    );
    assert_eq!(a, b);
    std::fs::remove_dir_all(out).unwrap();
}

/// A copy of a fixture folder to corrupt.
fn scratch_copy(name: &str, tag: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("laconic-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, out.join(path.file_name().unwrap())).unwrap();
    }
    out
}

#[test]
fn load_errors_name_the_tensor_file_and_shapes() {
    type B = burn::backend::NdArray;
    let device = Default::default();

    // A config whose MLP is wider than the stored tensors: shape mismatch.
    let dir = scratch_copy("qwen3_tied", "shape");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"intermediate_size\": 96", "\"intermediate_size\": 100"),
    )
    .unwrap();
    let err = load_model::<B>(&dir, &device).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("mlp.gate_proj.weight") && msg.contains("model.safetensors"),
        "{msg}"
    );
    assert!(
        msg.contains("[96, 64]") && msg.contains("[100, 64]"),
        "{msg}"
    );

    // Untied head expected but absent from a tied checkpoint: missing tensor.
    std::fs::write(
        dir.join("config.json"),
        config.replace(
            "\"tie_word_embeddings\": true",
            "\"tie_word_embeddings\": false",
        ),
    )
    .unwrap();
    let err = load_model::<B>(&dir, &device).unwrap_err().to_string();
    assert!(
        err.contains("lm_head.weight") && err.contains("missing"),
        "{err}"
    );

    // A truncated weights file.
    std::fs::write(dir.join("config.json"), &config).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = load_model::<B>(&dir, &device).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    // Malformed config.json names the file.
    std::fs::write(dir.join("config.json"), "{\"model_type\": \"qwen3\",").unwrap();
    let err = format!(
        "{:#}",
        anyhow::Error::from(load_model::<B>(&dir, &device).unwrap_err())
    );
    assert!(err.contains("config.json"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_logits_and_greedy_match_transformers() {
    logits_match_transformers::<burn::backend::Wgpu>(&FIXTURES);
    cached_greedy_matches_transformers_and_full_forward::<burn::backend::Wgpu>(&FIXTURES);
}

/// `tests/fixtures/lora/`: an adapter laconic saved for `qwen3_tied` and PEFT's logits with it
/// (made by `tests/fixtures/make_lora.py`).
fn lora_fixture() -> PathBuf {
    parity_fixture("../lora")
}

/// `qwen3_tied` with adapters on all seven projections of both layers (rank 4, alpha 8: scale 2,
/// `A` from PEFT's initialisation with seed 3) and every `B` set to small deterministic values, so the
/// adapters move the logits.
fn adapted_qwen3_tied() -> laconic::model::CausalLm<burn::backend::NdArray> {
    use burn::module::Param;
    use laconic::model::{FeedForward, LoraConfig};
    let device = Default::default();
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        ..LoraConfig::default()
    };
    let mut model = load_model::<burn::backend::NdArray>(fixture_dir("qwen3_tied"), &device)
        .unwrap()
        .with_lora(&lora, 3)
        .unwrap();
    let mut k = 0.0f32;
    for layer in &mut model.model.layers {
        let attn = &mut layer.self_attn;
        let FeedForward::Dense(mlp) = &mut layer.mlp else {
            unreachable!("a dense fixture")
        };
        for linear in [
            &mut attn.q_proj,
            &mut attn.k_proj,
            &mut attn.v_proj,
            &mut attn.o_proj,
            &mut mlp.gate_proj,
            &mut mlp.up_proj,
            &mut mlp.down_proj,
        ] {
            let adapter = linear.lora.as_mut().unwrap();
            let [d_out, r] = adapter.lora_b.dims();
            k += 1.0;
            let values: Vec<f32> = (0..d_out * r)
                .map(|i| 0.05 * (k + 0.37 * i as f32).sin())
                .collect();
            adapter.lora_b = Param::from_tensor(Tensor::from_data(
                TensorData::new(values, [d_out, r]),
                &device,
            ));
        }
    }
    model
}

/// An adapter saved by laconic is PEFT's: the committed fixture adapter is byte for byte what
/// `save_adapter` writes, and `PeftModel.from_pretrained` on the base gave these logits, which the
/// adapted model (unmerged), the adapter folder loaded alone and the merged weights all match.
/// `LACONIC_WRITE_LORA_FIXTURE=1` rewrites the fixture adapter instead of comparing.
#[test]
fn lora_adapter_saved_by_laconic_matches_peft() {
    let model = adapted_qwen3_tied();
    let fixture = lora_fixture();
    let committed = fixture.join("adapter");
    let base = "../../parity/qwen3_tied";
    if std::env::var_os("LACONIC_WRITE_LORA_FIXTURE").is_some() {
        model.save_adapter(&committed, base).unwrap();
        return;
    }
    let written = std::env::temp_dir().join(format!("laconic-lora-fixture-{}", std::process::id()));
    model.save_adapter(&written, base).unwrap();
    for file in ["adapter_config.json", "adapter_model.safetensors"] {
        assert!(
            std::fs::read(written.join(file)).unwrap()
                == std::fs::read(committed.join(file)).unwrap(),
            "{file} differs from the committed fixture"
        );
    }
    std::fs::remove_dir_all(&written).unwrap();

    let device = Default::default();
    let expected = read_expected(&fixture);
    let from_folder = load_model::<burn::backend::NdArray>(&committed, &device).unwrap();
    let merged = model.merged();
    for (i, (prompt, reference)) in expected.prompts.iter().zip(&expected.logits).enumerate() {
        for (what, m) in [
            ("adapted", &model),
            ("loaded", &from_folder),
            ("merged", &merged),
        ] {
            let ours = prompt_logits(m, prompt);
            let err = rel_err(&ours, reference);
            assert!(err < MAX_REL_ERR, "{what}, prompt {i}: rel err {err:e}");
        }
    }
    // The adapters matter: the base's logits are far from PEFT's.
    let plain = prompt_logits(&model.without_lora(), &expected.prompts[0]);
    assert!(rel_err(&plain, &expected.logits[0]) > 1e-2);
}
