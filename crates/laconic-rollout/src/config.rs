//! `RolloutConfig`: the `[rollout]` table of a training run — how many prompts a step rolls out, how
//! many rollouts each, how tokens are drawn ([`SamplingParams`]) and how the engine batches them
//! ([`EngineConfig`]). Each knob is declared once, on the type that uses it; this table gathers them
//! under one flat set of keys:
//!
//! ```toml
//! [rollout]
//! n = 8                 # rollouts per prompt
//! prompts_per_step = 16
//! max_tokens = 54       # SamplingParams: temperature, top_p, top_k, min_p, max_tokens
//! temperature = 1.0
//! max_batch = 128       # EngineConfig: max_batch, prefill_batch, share_prefix, compact, kv_cache_tokens
//! ```

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::sampling::SamplingParams;

/// The `[rollout]` table. Its sampling and engine keys are those of [`SamplingParams`] (less the
/// per-call stop ids, seed and stream offset) and [`EngineConfig`], with their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutConfig {
    /// Rollouts per prompt `N` (the paper recommends 24; 8 in its ablations). Default 8.
    pub n: usize,
    /// Prompts per step (the paper: 128, 32 for 4B models). Default 128.
    pub prompts_per_step: usize,
    /// How tokens are drawn; the trainer adds the tokenizer's stop ids and each step's seed.
    #[serde(flatten)]
    pub sampling: SamplingParams,
    /// How the engine batches (speed and memory only: the rollouts do not depend on it).
    #[serde(flatten)]
    pub engine: EngineConfig,
    /// Keys of the table that no setting has, reported by [`RolloutConfig::validate`] (serde cannot
    /// refuse them itself where tables are flattened).
    #[serde(flatten, skip_serializing)]
    unknown: BTreeMap<String, IgnoredAny>,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            n: 8,
            prompts_per_step: 128,
            sampling: SamplingParams::default(),
            engine: EngineConfig::default(),
            unknown: BTreeMap::new(),
        }
    }
}

impl RolloutConfig {
    /// The sampling parameters of one call: the table's knobs with these stop ids and seed.
    pub fn sampling_params(&self, stop_ids: Vec<u32>, seed: u64) -> SamplingParams {
        SamplingParams {
            stop_ids,
            seed,
            first_prompt: 0,
            ..self.sampling.clone()
        }
    }

    /// The temperature at which a trainer recomputes the rollouts' log-probs: the sampling
    /// temperature, or 1 for greedy rollouts (whose log-probs the engine reports at temperature 1).
    pub fn logprob_temperature(&self) -> f32 {
        let temperature = self.sampling.temperature;
        if temperature > 0.0 {
            temperature
        } else {
            1.0
        }
    }

    /// Checks every key is a setting and every setting is in range.
    ///
    /// # Errors
    /// [`Error::UnknownSetting`] for a key no setting has, [`Error::InvalidParam`] naming the first
    /// count or sampling parameter out of range, [`Error::InvalidEngine`] naming an engine setting.
    pub fn validate(&self) -> Result<()> {
        if let Some(key) = self.unknown.keys().next() {
            return Err(Error::UnknownSetting { key: key.clone() });
        }
        for (name, value) in [("n", self.n), ("prompts_per_step", self.prompts_per_step)] {
            if value == 0 {
                return Err(Error::InvalidParam {
                    name,
                    expected: "a positive integer",
                    found: "0".into(),
                });
            }
        }
        self.sampling.validate()?;
        self.engine.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat table fills each part; the per-call fields are not keys; unknown keys are named.
    #[test]
    fn one_flat_table_fills_every_part() {
        let config: RolloutConfig = serde_json::from_str(
            r#"{"n": 4, "prompts_per_step": 3, "temperature": 0.5, "max_tokens": 7,
                "max_batch": 2, "kv_cache_tokens": 99}"#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!((config.n, config.prompts_per_step), (4, 3));
        assert_eq!(
            (config.sampling.temperature, config.sampling.max_tokens),
            (0.5, 7)
        );
        assert_eq!(config.sampling.top_p, SamplingParams::default().top_p);
        assert_eq!(
            (config.engine.max_batch, config.engine.kv_cache_tokens),
            (2, Some(99))
        );
        let params = config.sampling_params(vec![5], 11);
        assert_eq!(
            (params.stop_ids, params.seed, params.max_tokens),
            (vec![5], 11, 7)
        );

        for key in ["seed", "stop_ids", "max_batchh"] {
            let config: RolloutConfig =
                serde_json::from_str(&format!(r#"{{"{key}": 1}}"#)).unwrap();
            let err = config.validate().unwrap_err();
            assert!(
                matches!(&err, Error::UnknownSetting { key: k } if k == key),
                "{err}"
            );
        }
    }

    /// Serialised, the table holds the knobs and reads back equal.
    #[test]
    fn round_trips() {
        let config = RolloutConfig {
            n: 24,
            ..RolloutConfig::default()
        };
        let text = serde_json::to_string(&config).unwrap();
        assert!(!text.contains("seed") && !text.contains("stop_ids") && !text.contains("unknown"));
        let back: RolloutConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn counts_must_be_positive_and_greedy_recomputes_at_one() {
        let config = RolloutConfig {
            prompts_per_step: 0,
            ..RolloutConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(Error::InvalidParam {
                name: "prompts_per_step",
                ..
            })
        ));
        let mut greedy = RolloutConfig::default();
        greedy.sampling.temperature = 0.0;
        assert_eq!(greedy.logprob_temperature(), 1.0);
        greedy.sampling.temperature = 0.7;
        assert_eq!(greedy.logprob_temperature(), 0.7);
    }
}
