//! `RunConfig`: one TOML file describes a run, section per crate, every knob explicit.
//!
//! Sources, later wins: the TOML file (`configs/*.toml`), environment variables
//! `LACONIC__SECTION__KEY=value` (e.g. `LACONIC__ROLLOUT__N=16`), then `--set section.key=value` pairs.
//! Values from the environment and `--set` are read as TOML literals (`0.2`, `true`, `[1, 2]`), falling
//! back to plain strings. An unknown key anywhere is an error that names its dotted path: a typo in a
//! knob would silently change the experiment.

use std::path::{Path, PathBuf};

use laconic_eval::{DatasetSpec, EvalConfig, PromptConfig};
use laconic_model::AttentionBlocks;
use laconic_optim::OptimConfig;
use laconic_reward::RewardConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::task::DigitSumConfig;

/// Everything a training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// The policy to start from.
    pub model: ModelConfig,
    /// Training prompts.
    pub data: DataConfig,
    /// How rollouts are sampled.
    pub rollout: RolloutConfig,
    /// How rollouts are rewarded (laconic-reward's `kind` + knobs).
    pub reward: RewardConfig,
    /// How the policy is updated (laconic-optim's knobs, verl's names).
    pub optim: OptimConfig,
    /// Loop, checkpoint and logging knobs.
    pub train: TrainConfig,
    /// Periodic evaluation (laconic-eval's knobs: budgets, samples, sampling).
    pub eval: EvalConfig,
    /// Supervised warm start (used by the `sft` example and the demo's warm start).
    pub sft: SftConfig,
}

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// A Hugging Face checkpoint folder (config.json + safetensors [+ tokenizer.json]).
    pub path: Option<PathBuf>,
    /// Instead of `path`: a `config.json` to build a randomly initialised model from (SFT from scratch).
    pub init_config: Option<PathBuf>,
    /// Tokenizer file when the folder has none.
    pub tokenizer: Option<PathBuf>,
    /// Tile sizes of the blocked attention (`[model.attention] query_block, key_block`).
    pub attention: AttentionBlocks,
}

/// Training prompts: a JSONL dataset or the synthetic digit-sum task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// Prompts from a JSONL file.
    Jsonl(JsonlData),
    /// The demo's synthetic task.
    DigitSum(DigitSumConfig),
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig::Jsonl(JsonlData::default())
    }
}

/// A JSONL prompt dataset and how its records become prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlData {
    /// The file, its field names (e.g. `problem`/`question`, `answer`) and gold normalisation.
    pub dataset: DatasetSpec,
    /// The paper's suffix, chat template on/off, thinking on/off.
    #[serde(default)]
    pub prompt: PromptConfig,
}

impl Default for JsonlData {
    fn default() -> Self {
        Self {
            dataset: DatasetSpec::from_path("assets/data/gsm8k/train.jsonl"),
            prompt: PromptConfig::default(),
        }
    }
}

/// Rollout sampling: the paper's `N`, `L_R`, batch of prompts, temperature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// Rollouts per prompt `N` (the paper recommends 24; 8 in its ablations). Default 8.
    pub n: usize,
    /// Prompts per step (the paper: 128, 32 for 4B models). Default 128.
    pub prompts_per_step: usize,
    /// Rollout limit `L_R` in tokens. Default 8192.
    pub max_tokens: usize,
    /// Sampling temperature (unspecified in the paper; default 1.0). The optimizer recomputes log-probs at
    /// the same temperature.
    pub temperature: f32,
    /// Nucleus mass (unspecified; default 1.0 = off).
    pub top_p: f32,
    /// Top-k (unspecified; default 0 = off).
    pub top_k: usize,
    /// Min-p (default 0 = off).
    pub min_p: f32,
    /// Most sequences decoded together (memory bound). Default 256.
    pub max_batch: usize,
    /// Prompts prefilled per forward. Default 16.
    pub prefill_batch: usize,
    /// KV-cache budget of the rollout engine in slots (rows × cached columns; laconic-rollout's
    /// `EngineConfig::kv_cache_tokens`). Unset: a quarter of the memory the OS reports available.
    pub kv_cache_tokens: Option<usize>,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            n: 8,
            prompts_per_step: 128,
            max_tokens: 8192,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            max_batch: 256,
            prefill_batch: 16,
            kv_cache_tokens: None,
        }
    }
}

/// Loop, checkpoints and logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// RL steps (rollout batches). Default 100.
    pub steps: u64,
    /// Seed of prompt order, sampling and updates. Default 0.
    pub seed: u64,
    /// Evaluate every this many steps (0 = only before and after). Default 10.
    pub eval_every: u64,
    /// Checkpoint every this many steps (0 = only at the end). Default 10.
    pub save_every: u64,
    /// Checkpoints kept (oldest removed first; 0 = keep all). Default 2.
    pub keep_checkpoints: usize,
    /// Rollouts written per step to `rollouts/step_N.jsonl` (0 = none). Default 16.
    pub log_rollouts: usize,
    /// Folder holding run folders. Default `runs`.
    pub out_dir: PathBuf,
    /// Run folder name (default: the config file's stem and a timestamp).
    pub run_name: Option<String>,
    /// JSONL benchmarks evaluated every `eval_every` steps with the data section's prompt settings
    /// (empty: held-out problems of the synthetic task, or no evaluation for JSONL data).
    pub eval_benchmarks: Vec<DatasetSpec>,
    /// Held-out problems evaluated when the data is synthetic. Default 100.
    pub eval_problems: usize,
    /// Compute the KL to the initial policy every step (a reference forward pass; the paper tracks it).
    /// Always on when `optim.kl_loss_coef > 0`. Default true.
    pub track_kl: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            seed: 0,
            eval_every: 10,
            save_every: 10,
            keep_checkpoints: 2,
            log_rollouts: 16,
            out_dir: PathBuf::from("runs"),
            run_name: None,
            eval_benchmarks: Vec::new(),
            eval_problems: 100,
            track_kl: true,
        }
    }
}

/// Supervised warm start: cross-entropy on response tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// Optimizer steps. Default 500.
    pub steps: u64,
    /// Sequences per step. Default 64.
    pub batch_size: usize,
    /// Peak learning rate. Default 1e-3.
    pub lr: f64,
    /// AdamW weight decay. Default 0.01.
    pub weight_decay: f32,
    /// Linear warm-up steps. Default 20.
    pub warmup_steps: u64,
    /// Global gradient-norm clip. Default 1.0.
    pub grad_clip: f32,
    /// JSONL with `prompt` and `response` fields (ignored for the synthetic task, which makes its own
    /// verbose traces).
    pub data: Option<PathBuf>,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            steps: 500,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 0.01,
            warmup_steps: 20,
            grad_clip: 1.0,
            data: None,
        }
    }
}

impl RunConfig {
    /// Reads `path`, applies `LACONIC__…` environment overrides and `--set key=value` pairs, and checks
    /// the result.
    ///
    /// # Errors
    /// Unreadable or malformed TOML, an unknown key (named by its dotted path), a value of the wrong type,
    /// or an inconsistent combination of knobs.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("LACONIC")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            );
        for set in sets {
            let (key, value) = set.split_once('=').ok_or_else(|| Error::Config {
                path: path.to_path_buf(),
                message: format!("`--set {set}` is not of the form `section.key=value`"),
            })?;
            builder = builder
                .set_override(key.trim(), literal(value.trim()))
                .map_err(|e| Error::Config {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
        }
        let merged = builder.build().map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let config: RunConfig =
            serde_path_to_error::deserialize(merged).map_err(|e| Error::Config {
                path: path.to_path_buf(),
                message: format!("`{}`: {}", e.path(), e.inner()),
            })?;
        config.validate().map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Parses TOML text (no overrides), for tests and programs that build configs in memory.
    ///
    /// # Errors
    /// As [`RunConfig::load`].
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: RunConfig =
            serde_path_to_error::deserialize(toml::Deserializer::parse(text).map_err(|e| {
                Error::Config {
                    path: "<memory>".into(),
                    message: e.to_string(),
                }
            })?)
            .map_err(|e| Error::Config {
                path: "<memory>".into(),
                message: format!("`{}`: {}", e.path(), e.inner()),
            })?;
        config.validate().map_err(|message| Error::Config {
            path: "<memory>".into(),
            message,
        })?;
        Ok(config)
    }

    /// The config as TOML (what `config.resolved.toml` holds).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a run config serialises to TOML")
    }

    /// Checks the knobs that depend on each other.
    ///
    /// # Errors
    /// A message naming the keys that disagree.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let r = &self.rollout;
        if r.n == 0 || r.prompts_per_step == 0 {
            return Err("`rollout.n` and `rollout.prompts_per_step` must be positive".into());
        }
        if (self.optim.temperature - r.temperature).abs() > f32::EPSILON && r.temperature > 0.0 {
            return Err(format!(
                "`optim.temperature` ({}) must equal `rollout.temperature` ({}): log-probs are recomputed at the rollout temperature",
                self.optim.temperature, r.temperature
            ));
        }
        self.optim.validate().map_err(|e| e.to_string())?;
        self.reward.validate().map_err(|e| e.to_string())?;
        if self.model.path.is_none() && self.model.init_config.is_none() {
            return Err("`model.path` (a checkpoint folder) or `model.init_config` (a config.json) is required".into());
        }
        self.eval.validate().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A `--set` or environment value as a TOML literal, or the raw string when it is not one.
fn literal(text: &str) -> config::Value {
    match toml::from_str::<toml::Table>(&format!("v = {text}")) {
        Ok(mut table) => to_config_value(table.remove("v").expect("the key was just parsed")),
        Err(_) => config::Value::from(text.to_string()),
    }
}

fn to_config_value(value: toml::Value) -> config::Value {
    match value {
        toml::Value::String(s) => s.into(),
        toml::Value::Integer(i) => i.into(),
        toml::Value::Float(f) => f.into(),
        toml::Value::Boolean(b) => b.into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(items) => items
            .into_iter()
            .map(to_config_value)
            .collect::<Vec<_>>()
            .into(),
        toml::Value::Table(table) => {
            let map: std::collections::HashMap<String, config::Value> = table
                .into_iter()
                .map(|(k, v)| (k, to_config_value(v)))
                .collect();
            map.into()
        }
    }
}
