//! The rollout engine on the HF parity fixtures: greedy rollouts of a mixed-length batch equal
//! transformers' greedy ids, whatever the batching.

use std::path::Path;

use laconic::model::load_model;
use laconic::rollout::{Engine, EngineConfig, Finish, SamplingParams};

type B = burn::backend::NdArray;

#[test]
fn greedy_batched_rollouts_equal_transformers() {
    let device = Default::default();
    for name in ["qwen3_tied", "qwen3_untied", "qwen2_bias"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/parity")
            .join(name);
        let model = load_model::<B>(&dir, &device).unwrap();
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let prompts: Vec<Vec<u32>> = serde_json::from_value(expected["prompts"].clone()).unwrap();
        let greedy: Vec<Vec<u32>> = serde_json::from_value(expected["greedy"].clone()).unwrap();
        let params = SamplingParams::greedy(greedy[0].len());
        for config in [
            EngineConfig::default(),
            EngineConfig {
                max_batch: 2,
                prefill_batch: 2,
                ..Default::default()
            },
        ] {
            let engine = Engine::new(&model, config).unwrap();
            let rollouts = engine.generate(&prompts, 2, &params, &mut ()).unwrap();
            for r in &rollouts {
                assert_eq!(
                    r.response_ids, greedy[r.prompt_idx],
                    "{name} prompt {}",
                    r.prompt_idx
                );
                assert_eq!(r.finish, Finish::Length);
            }
        }
    }
}
