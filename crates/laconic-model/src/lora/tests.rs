//! LoRA on a tiny model: a fresh adapter changes nothing, merging equals the unmerged sum, the base
//! is frozen, and adapters round-trip through PEFT's folder layout with clear errors for bad files.

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Param};

use super::*;
use crate::fused::tests::random;
use crate::seed::Stream;
use crate::{AttentionLayout, DecoderConfig, TestBackend};

type B = TestBackend;

fn tiny() -> DecoderConfig {
    DecoderConfig::from_json_str(
        r#"{"model_type": "qwen3", "vocab_size": 24, "hidden_size": 16, "intermediate_size": 24,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
            "tie_word_embeddings": false}"#,
        "tiny",
    )
    .unwrap()
}

fn logits<Bk: Backend>(model: &CausalLm<Bk>) -> Vec<f32> {
    let device = model.model.norm.weight.device();
    let tokens = Tensor::<Bk, 2, Int>::from_ints([[1, 5, 9, 2], [0, 3, 7, 11]], &device);
    let layout = AttentionLayout::left_padded(&[4, 3], 4).unwrap();
    model
        .forward(tokens, &layout)
        .unwrap()
        .into_data()
        .convert::<f32>()
        .into_vec()
        .unwrap()
}

fn config(rank: usize, targets: &[&str]) -> LoraConfig {
    LoraConfig {
        rank,
        alpha: 2.0 * rank as f64,
        target_modules: targets.iter().map(|t| t.to_string()).collect(),
        ..LoraConfig::default()
    }
}

/// Every adapter's `B` replaced by random values (a fixed stream), so the adapters change the outputs.
fn perturb<Bk: Backend>(mut model: CausalLm<Bk>) -> CausalLm<Bk> {
    let mut stream = Stream::new(40);
    for (_, linear) in projections_mut(&mut model) {
        if let Some(adapter) = linear.lora.as_mut() {
            let b = adapter.lora_b.val();
            let values = random::<Bk, 2>(&mut stream, b.dims(), 0.5);
            adapter.lora_b = Param::from_tensor(values);
        }
    }
    model
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_fresh_adapter_gives_the_base_logits_exactly() {
    let device = Default::default();
    let base = CausalLm::<B>::init_seeded(&tiny(), 41, &device).unwrap();
    let adapted = base.clone().with_lora(&LoraConfig::default(), 3).unwrap();
    assert_eq!(logits(&adapted), logits(&base));
    // A is PEFT's Kaiming-uniform: within ±1/√d_in and not zero.
    let a = adapted.model.layers[0]
        .self_attn
        .q_proj
        .lora
        .as_ref()
        .unwrap();
    let values: Vec<f32> = a.lora_a.val().into_data().into_vec().unwrap();
    let bound = 1.0 / (16f32).sqrt();
    assert!(values.iter().all(|v| v.abs() <= bound) && values.iter().any(|v| *v != 0.0));
    assert_eq!(a.lora_a.dims(), [16, 16]);
    assert_eq!(a.lora_b.dims(), [4 * 8, 16]);
}

#[test]
fn merged_weights_give_the_adapted_logits_and_without_lora_the_base() {
    let device = Default::default();
    let base = CausalLm::<B>::init_seeded(&tiny(), 42, &device).unwrap();
    let adapted = perturb(
        base.clone()
            .with_lora(&config(4, &LORA_TARGETS), 1)
            .unwrap(),
    );
    let (plain, unmerged) = (logits(&base), logits(&adapted));
    assert!(
        max_diff(&plain, &unmerged) > 1e-2,
        "the adapters change the logits"
    );
    let merged = adapted.merged();
    assert!(merged.lora().is_none());
    assert!(max_diff(&logits(&merged), &unmerged) < 1e-4);
    assert_eq!(logits(&adapted.without_lora()), plain);
}

#[test]
fn only_the_adapters_get_gradients() {
    type AD = Autodiff<B>;
    let device = Default::default();
    let model = CausalLm::<AD>::init_seeded(&tiny(), 43, &device)
        .unwrap()
        .with_lora(&config(2, &["q_proj", "down_proj"]), 0)
        .unwrap();
    let model = perturb(model);
    let tokens = Tensor::<AD, 2, Int>::from_ints([[1, 5, 9, 2]], &device);
    let layout = AttentionLayout::left_padded(&[4], 4).unwrap();
    let grads = model.forward(tokens, &layout).unwrap().sum().backward();
    let mut with_grad = Vec::new();
    struct Probe<'a> {
        grads: &'a <AD as burn::tensor::backend::AutodiffBackend>::Gradients,
        path: Vec<String>,
        found: &'a mut Vec<String>,
    }
    impl burn::module::ModuleVisitor<AD> for Probe<'_> {
        fn enter_module(&mut self, name: &str, container: &str) {
            if !container.starts_with("Enum:") {
                self.path.push(name.into());
            }
        }
        fn exit_module(&mut self, _: &str, container: &str) {
            if !container.starts_with("Enum:") {
                self.path.pop();
            }
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AD, D>>) {
            if param.val().grad(self.grads).is_some() {
                self.found.push(self.path.join("."));
            }
        }
    }
    model.visit(&mut Probe {
        grads: &grads,
        path: Vec::new(),
        found: &mut with_grad,
    });
    let expected: Vec<String> = (0..2)
        .flat_map(|l| {
            [
                format!("model.layers.{l}.self_attn.q_proj.lora.lora_a"),
                format!("model.layers.{l}.self_attn.q_proj.lora.lora_b"),
                format!("model.layers.{l}.mlp.down_proj.lora.lora_a"),
                format!("model.layers.{l}.mlp.down_proj.lora.lora_b"),
            ]
        })
        .collect();
    with_grad.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(with_grad, expected);
    // The inner model keeps the adapters (rollouts from the adapted policy).
    assert_eq!(logits(&model.valid()), logits(&model));
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("laconic-lora-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn adapters_round_trip_through_peft_folders() {
    let device = Default::default();
    let dir = scratch("round-trip");
    let base = CausalLm::<B>::init_seeded(&tiny(), 44, &device).unwrap();
    crate::save_pretrained(&base, dir.join("base")).unwrap();
    let adapted = perturb(
        base.clone()
            .with_lora(&config(4, &["q_proj", "v_proj", "up_proj"]), 5)
            .unwrap(),
    );
    adapted
        .save_adapter(dir.join("adapter"), "../base")
        .unwrap();

    let peft: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("adapter").join(ADAPTER_CONFIG)).unwrap(),
    )
    .unwrap();
    assert_eq!(peft["peft_type"], "LORA");
    assert_eq!(peft["r"], 4);
    assert_eq!(peft["lora_alpha"], 8.0);
    assert_eq!(peft["target_modules"][2], "up_proj");
    let index = SafetensorsIndex::from_files(&[dir.join("adapter").join(ADAPTER_WEIGHTS)]).unwrap();
    let names = index.names();
    assert_eq!(names.len(), 2 * 3 * 2);
    assert!(names.contains(&"base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"));
    assert_eq!(
        index
            .get("base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight")
            .unwrap()
            .shape,
        [4, 16]
    );

    // Loaded onto the base, or through `load_model` on the adapter folder alone.
    let loaded = base.clone().load_adapter(dir.join("adapter")).unwrap();
    assert_eq!(logits(&loaded), logits(&adapted));
    let from_folder = crate::load_model::<B>(dir.join("adapter"), &device).unwrap();
    assert_eq!(
        from_folder.lora(),
        adapted
            .lora()
            .map(|c| LoraConfig {
                seed: None,
                ..c.clone()
            })
            .as_ref()
    );
    assert!(max_diff(&logits(&from_folder), &logits(&adapted)) < 1e-6);
    // `save_pretrained` on an adapted model writes the merged weights.
    crate::save_pretrained(&adapted, dir.join("merged")).unwrap();
    let merged = crate::load_model::<B>(dir.join("merged"), &device).unwrap();
    assert!(max_diff(&logits(&merged), &logits(&adapted)) < 1e-4);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_adapter_folders_are_named() {
    let device = Default::default();
    let dir = scratch("bad");
    let base = CausalLm::<B>::init_seeded(&tiny(), 45, &device).unwrap();
    let adapted = base
        .clone()
        .with_lora(&config(2, &["q_proj", "v_proj"]), 0)
        .unwrap();
    adapted.save_adapter(&dir, "base").unwrap();
    let config_path = dir.join(ADAPTER_CONFIG);
    let original = std::fs::read_to_string(&config_path).unwrap();

    // More targets than the weights hold: the missing tensor is named.
    let more = original.replace("\"v_proj\"", "\"v_proj\", \"k_proj\"");
    std::fs::write(&config_path, &more).unwrap();
    let err = base.clone().load_adapter(&dir).unwrap_err().to_string();
    assert!(err.contains("k_proj.lora_A.weight"), "{err}");
    // Fewer targets than the weights hold: the extra tensor is named.
    let fewer = original.replace(",\n    \"v_proj\"", "");
    assert_ne!(fewer, original);
    std::fs::write(&config_path, &fewer).unwrap();
    let err = base.clone().load_adapter(&dir).unwrap_err().to_string();
    assert!(err.contains("v_proj.lora_A.weight"), "{err}");
    // A PEFT option laconic does not implement.
    let dora = original.replace("\"use_dora\": false", "\"use_dora\": true");
    std::fs::write(&config_path, &dora).unwrap();
    let err = base.clone().load_adapter(&dir).unwrap_err().to_string();
    assert!(
        err.contains("use_dora") && err.contains(ADAPTER_CONFIG),
        "{err}"
    );
    // A target that is no projection.
    let bad = original.replace("\"q_proj\"", "\"lm_head\"");
    std::fs::write(&config_path, &bad).unwrap();
    let err = base.clone().load_adapter(&dir).unwrap_err().to_string();
    assert!(err.contains("`lm_head` is not a projection"), "{err}");
    // Malformed JSON names the file.
    std::fs::write(&config_path, "{").unwrap();
    let err = base.load_adapter(&dir).unwrap_err().to_string();
    assert!(err.contains(ADAPTER_CONFIG), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 32: an adapter whose `r` the file's tensors do not have sampled a random `A` of `r` rows
/// (51 GB for `r` = 10⁸) before reading the file. The shapes are now checked first, naming the
/// tensor, the file and both shapes; a rank no allocation could hold shows it.
#[test]
fn an_adapter_rank_unlike_its_tensors_is_refused_before_allocating() {
    let device = Default::default();
    let dir = scratch("rank");
    let base = CausalLm::<B>::init(&tiny(), &device).unwrap();
    let adapted = base.clone().with_lora(&config(4, &["q_proj"]), 0).unwrap();
    adapted.save_adapter(&dir, "base").unwrap();
    let config_path = dir.join(ADAPTER_CONFIG);
    let original = std::fs::read_to_string(&config_path).unwrap();
    for rank in [1u64 << 62, 100_000_000] {
        let huge = original.replace("\"r\": 4", &format!("\"r\": {rank}"));
        assert_ne!(huge, original);
        std::fs::write(&config_path, &huge).unwrap();
        let err = base.clone().load_adapter(&dir).unwrap_err();
        let Error::ShapeMismatch {
            name,
            path,
            expected,
            found,
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(
            name,
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
        );
        assert_eq!(path, &dir.join(ADAPTER_WEIGHTS));
        assert_eq!(expected, &[rank as usize, 16]);
        assert_eq!(found, &[4, 16]);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 32: an adapter naming itself (`"."`) or another adapter as its base recursed until the
/// stack overflowed (an abort). A cycle is refused naming its folders; an acyclic stack of
/// adapters, which does not load either, is refused naming the adapter and its base.
#[test]
fn adapters_based_on_adapters_are_refused_naming_the_folders() {
    let device = Default::default();
    let dir = scratch("cycle");
    let base = CausalLm::<B>::init(&tiny(), &device).unwrap();
    crate::save_pretrained(&base, dir.join("base")).unwrap();
    let adapted = base.with_lora(&config(2, &["q_proj"]), 0).unwrap();
    let save = |name: &str, base: &str| adapted.save_adapter(dir.join(name), base).unwrap();
    let canonical = |name: &str| std::fs::canonicalize(dir.join(name)).unwrap();
    let load = |name: &str| crate::load_model::<B>(dir.join(name), &device).unwrap_err();

    save("itself", ".");
    let Error::AdapterCycle { folders } = load("itself") else {
        panic!("a self-based adapter is a cycle");
    };
    assert_eq!(folders, [canonical("itself"), canonical("itself")]);

    save("a", "../b");
    save("b", "../a/");
    let err = load("a");
    let Error::AdapterCycle { folders } = &err else {
        panic!("{err}");
    };
    assert_eq!(folders, &[canonical("a"), canonical("b"), canonical("a")]);
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "`{}` → `{}`",
            canonical("a").display(),
            canonical("b").display()
        )),
        "{message}"
    );

    save("top", "../middle");
    save("middle", "../base");
    let err = load("top");
    assert!(
        matches!(&err, Error::StackedAdapter { adapter, base }
            if *adapter == dir.join("top") && *base == dir.join("top").join("../middle")),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("stacked adapters are not supported"));
    // The middle adapter, on a full checkpoint, loads.
    crate::load_model::<B>(dir.join("middle"), &device).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn knobs_are_checked_by_name() {
    let bad = |c: LoraConfig| c.validate().unwrap_err();
    assert!(bad(LoraConfig {
        rank: 0,
        ..LoraConfig::default()
    })
    .contains("`rank`"));
    assert!(bad(LoraConfig {
        alpha: -1.0,
        ..LoraConfig::default()
    })
    .contains("`alpha`"));
    assert!(bad(LoraConfig {
        dropout: 1.0,
        ..LoraConfig::default()
    })
    .contains("`dropout`"));
    assert!(bad(config(2, &[])).contains("`target_modules`"));
    assert!(bad(config(2, &["qkv"])).contains("`qkv`"));
}
