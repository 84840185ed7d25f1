//! `RunConfig`: one TOML file describes a run, section per crate, every knob explicit.
//!
//! Sources, later wins: the TOML file (`configs/*.toml`), environment variables
//! `LACONIC__SECTION__KEY=value` (e.g. `LACONIC__ROLLOUT__N=16`), then `--set section.key=value` pairs
//! (merged in [`crate::layers`]). Values from the environment and `--set` are read as TOML literals
//! (`0.2`, `true`, `[1, 2]`), falling back to plain strings, and are never coerced: a float where an
//! integer belongs is an error. An unknown key anywhere is an error that names its dotted path: a typo
//! in a knob would silently change the experiment. Every knob is range-checked here, before a model is
//! loaded or a run folder made.

use std::path::{Path, PathBuf};

use laconic_eval::{DatasetSpec, EvalConfig, OverlongPrompts, PromptConfig};
use laconic_model::{AttentionBlocks, LoraConfig};
use laconic_optim::OptimConfig;
use laconic_reward::{FilterGroups, RewardSection};
use laconic_rollout::RolloutConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layers::{cap_quoted, parse_key, Layered};
use crate::task::DigitSumConfig;

/// Why a run config is refused: the dotted key at fault (or the first of the keys that disagree) and
/// the whole message, which names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidConfig {
    /// The dotted key, e.g. `rollout.top_p`.
    pub key: String,
    /// What is wrong, naming the key.
    pub message: String,
}

impl InvalidConfig {
    /// An error about `key`.
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// An error whose message names its key in backticks (the first dotted one), as the sections'
    /// own validations write them.
    fn from_message(message: impl Into<String>) -> Self {
        let message = message.into();
        let key = first_dotted_key(&message).unwrap_or_default();
        Self { key, message }
    }
}

/// Everything a training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// The policy to start from.
    pub model: ModelConfig,
    /// Training prompts.
    pub data: DataConfig,
    /// How many rollouts of how many prompts per step, sampled and batched how (laconic-rollout's
    /// table).
    pub rollout: RolloutConfig,
    /// How rollouts are rewarded (laconic-reward's `kind` + knobs) and answers extracted (`extract`).
    pub reward: RewardSection,
    /// Loop-level algorithm choices (verl's `[algorithm]`): dynamic sampling.
    pub algorithm: AlgorithmConfig,
    /// How the policy is updated (laconic-optim's knobs, verl's names).
    pub optim: OptimConfig,
    /// Loop, checkpoint and logging knobs.
    pub train: TrainConfig,
    /// Periodic evaluation (laconic-eval's knobs: budgets, samples, sampling).
    pub eval: EvalConfig,
    /// Supervised warm start (used by the `sft` example and the demo's warm start).
    pub sft: SftConfig,
}

/// The `[algorithm]` section: choices of the RL loop itself, verl's names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AlgorithmConfig {
    /// DAPO's dynamic sampling: drop groups whose rollouts all earned the same value and draw more
    /// batches until `rollout.prompts_per_step` informative groups are collected (laconic-reward's
    /// [`FilterGroups`]). Default off.
    pub filter_groups: FilterGroups,
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
    /// LoRA (`[model.lora] rank, alpha, dropout, target_modules`): when present the base is frozen,
    /// adapters train, and checkpoints hold the adapter alone in PEFT's format. Default: absent (full
    /// fine-tuning).
    pub lora: Option<LoraConfig>,
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
    /// Most prompt tokens (default: what the model's positions leave after `rollout.max_tokens`).
    #[serde(default)]
    pub max_prompt_tokens: Option<usize>,
    /// A longer prompt (training data and `train.eval_benchmarks`): `"error"` (default: stop, naming
    /// the file, line and both lengths) or `"drop"` (leave it out, with a count on stderr).
    #[serde(default)]
    pub overlong_prompts: OverlongPrompts,
}

impl Default for JsonlData {
    fn default() -> Self {
        Self {
            dataset: DatasetSpec::from_path("assets/data/gsm8k/train.jsonl"),
            prompt: PromptConfig::default(),
            max_prompt_tokens: None,
            overlong_prompts: OverlongPrompts::Error,
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
    /// Evaluate before the first step (verl's `val_before_train`); `false` skips it, which on a real
    /// checkpoint saves a full evaluation's time. Default true.
    pub val_before_train: bool,
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
    /// Data-parallel runs: compare a checksum of every worker's parameters every this many steps
    /// (and at the start), and stop with an error naming the workers that differ (0 = only at the
    /// start). Ignored with one worker. Default 10.
    pub checksum_every: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            seed: 0,
            eval_every: 10,
            val_before_train: true,
            save_every: 10,
            keep_checkpoints: 2,
            log_rollouts: 16,
            out_dir: PathBuf::from("runs"),
            run_name: None,
            eval_benchmarks: Vec::new(),
            eval_problems: 100,
            track_kl: true,
            checksum_every: 10,
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
    /// When an override switches `reward.kind`, the file's knobs of the old kind that the new one does
    /// not have are dropped, with a note on stderr (so `--set reward.kind="kimi"` works on a file
    /// written for the truncation reward).
    ///
    /// # Errors
    /// Unreadable or malformed TOML, an unknown key (named by its dotted path), a value of the wrong type
    /// (no coercion: `8.5` is no integer, `"yes"` no bool), a malformed `--set` key, or an inconsistent
    /// combination of knobs. A value an override wrote is named with its layer.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        // `vars_os`: `vars` panics on a variable that is not UTF-8 (only `LACONIC__…` ones matter).
        let env = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        Self::load_with_env(path, env, sets)
    }

    /// [`RunConfig::load`] with the environment given as `(name, value)` pairs.
    ///
    /// # Errors
    /// As [`RunConfig::load`].
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        sets: &[String],
    ) -> Result<Self> {
        let fail = |message: String| Error::Config {
            path: path.to_path_buf(),
            message: cap_quoted(&message),
        };
        let mut layered = Layered::from_file(path).map_err(fail)?;
        layered.apply_env(env).map_err(fail)?;
        for set in sets {
            layered.apply_set(set).map_err(fail)?;
        }
        drop_knobs_of_an_overridden_reward_kind(&mut layered, path);
        Self::from_layered(&layered).map_err(fail)
    }

    /// Parses TOML text (no overrides), for tests and programs that build configs in memory.
    ///
    /// # Errors
    /// As [`RunConfig::load`].
    pub fn from_toml(text: &str) -> Result<Self> {
        let fail = |message: String| Error::Config {
            path: "<memory>".into(),
            message: cap_quoted(&message),
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| fail(e.to_string()))?;
        Self::from_layered(&Layered::new(table)).map_err(fail)
    }

    /// Deserialises and validates a merged table; a message names the key and, where an override
    /// wrote it, the layer.
    fn from_layered(layered: &Layered) -> std::result::Result<Self, String> {
        let optim = layered.table.get("optim").and_then(toml::Value::as_table);
        if optim.is_some_and(|t| t.contains_key("temperature")) {
            let message =
                "`optim.temperature` is no longer a knob: the update recomputes log-probs at \
                           `rollout.temperature`, which sets both; delete `optim.temperature`";
            return Err(with_origin(message.into(), layered, "optim.temperature"));
        }
        let config: RunConfig = serde_path_to_error::deserialize(toml::Value::Table(
            layered.table.clone(),
        ))
        .map_err(|e| {
            let (key, message) = nested_key(e.path().to_string(), e.inner().to_string());
            let (key, message) = match failing_key(layered, &key) {
                // The deserialiser's own note of where it was (`in `rollout``) is the table's.
                Some(inner) => (
                    inner,
                    message.lines().next().unwrap_or_default().to_string(),
                ),
                None => (key, message),
            };
            with_origin(format!("`{key}`: {message}"), layered, &key)
        })?;
        config
            .validate()
            .map_err(|e| with_origin(e.message, layered, &e.key))?;
        Ok(config)
    }

    /// The config as TOML (what `config.resolved.toml` holds).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a run config serialises to TOML")
    }

    /// Checks every knob's range and the knobs that depend on each other, before any model is loaded
    /// or run folder made.
    ///
    /// # Errors
    /// A message naming the dotted key (or the keys that disagree).
    pub fn validate(&self) -> std::result::Result<(), InvalidConfig> {
        self.rollout.validate().map_err(|e| match e {
            laconic_rollout::Error::InvalidParam {
                name,
                expected,
                found,
            }
            | laconic_rollout::Error::InvalidEngine {
                name,
                expected,
                found,
            } => InvalidConfig::new(
                format!("rollout.{name}"),
                format!("`rollout.{name}`: expected {expected}, found `{found}`"),
            ),
            laconic_rollout::Error::UnknownSetting { key } => InvalidConfig::new(
                format!("rollout.{key}"),
                format!("`rollout.{key}`: unknown key (the table holds `n`, `prompts_per_step`, the sampling parameters and the engine settings)"),
            ),
            other => InvalidConfig::new("rollout", other.to_string()),
        })?;
        self.optim.validate().map_err(|e| match &e {
            laconic_optim::Error::Config {
                key,
                expected,
                found,
            } => InvalidConfig::new(
                format!("optim.{key}"),
                format!("`optim.{key}` {expected}, found `{found}`"),
            ),
            _ => InvalidConfig::from_message(e.to_string()),
        })?;
        self.reward.shaper.validate().map_err(|e| match &e {
            laconic_reward::Error::InvalidConfig { key, .. } => {
                InvalidConfig::new(key.clone(), e.to_string())
            }
            _ => InvalidConfig::from_message(e.to_string()),
        })?;
        self.algorithm
            .filter_groups
            .validate()
            .map_err(|e| InvalidConfig::from_message(within("algorithm.filter_groups", &e)))?;
        if self.model.path.is_none() && self.model.init_config.is_none() {
            return Err(InvalidConfig::new(
                "model.path",
                "`model.path` (a checkpoint folder) or `model.init_config` (a config.json) is required",
            ));
        }
        self.model.attention.validate().map_err(|e| {
            InvalidConfig::new("model.attention", format!("`model.attention`: {e}"))
        })?;
        if let Some(lora) = &self.model.lora {
            lora.validate()
                .map_err(|e| InvalidConfig::from_message(within("model.lora", &e)))?;
        }
        if let DataConfig::DigitSum(task) = &self.data {
            task.validate().map_err(InvalidConfig::from_message)?;
            if self.train.eval_problems == 0 {
                return Err(InvalidConfig::new(
                    "train.eval_problems",
                    "`train.eval_problems` must be positive (the synthetic task's held-out problems)",
                ));
            }
            if self.reward.extract != laconic_reward::ExtractMode::default() {
                return Err(InvalidConfig::new(
                    "reward.extract",
                    "`reward.extract` applies to math answers (JSONL data); the digit-sum task \
                     has its own judge",
                ));
            }
        }
        self.eval
            .validate()
            .map_err(|e| InvalidConfig::from_message(e.to_string()))?;
        if let Some(name) = &self.train.run_name {
            check_run_name(name)?;
        }
        self.sft.validate()
    }

    /// The config with every relative input path (model, tokenizer, datasets, SFT data) joined onto
    /// `base`: what a run folder records, so that resuming does not depend on the directory it is
    /// started from.
    pub fn with_absolute_paths(mut self, base: &Path) -> Self {
        let absolute = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let m = &mut self.model;
        m.path.iter_mut().for_each(absolute);
        m.init_config.iter_mut().for_each(absolute);
        m.tokenizer.iter_mut().for_each(absolute);
        if let DataConfig::Jsonl(data) = &mut self.data {
            absolute(&mut data.dataset.path);
        }
        for spec in &mut self.train.eval_benchmarks {
            absolute(&mut spec.path);
        }
        self.sft.data.iter_mut().for_each(absolute);
        self
    }

    /// The folder of a new run of this config read from `config_path`: `train.out_dir/train.run_name`,
    /// or, with no name set, the file's stem made unique (`demo-<seconds>-<pid>`).
    pub fn new_run_dir(&self, config_path: &Path) -> PathBuf {
        let name = self.train.run_name.clone().unwrap_or_else(|| {
            let stem = config_path
                .file_stem()
                .map_or("run".into(), |s| s.to_string_lossy().into_owned());
            crate::run::unique_run_name(&stem)
        });
        self.train.out_dir.join(name)
    }

    /// The optimizer's settings: `[optim]` with the log-prob temperature of `[rollout]` (1 for greedy
    /// rollouts, whose log-probs the engine reports at temperature 1).
    pub fn optim_config(&self) -> OptimConfig {
        OptimConfig {
            temperature: self.rollout.logprob_temperature(),
            ..self.optim.clone()
        }
    }
}

/// A run name is one plain folder name: not empty, not `.` or `..`, no path separator (so the run
/// folder is a new folder inside `train.out_dir`, never `out_dir` itself or a folder outside it).
fn check_run_name(name: &str) -> std::result::Result<(), InvalidConfig> {
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if plain {
        return Ok(());
    }
    Err(InvalidConfig::new(
        "train.run_name",
        format!(
            "`train.run_name` = `{}` is not a plain folder name: give one path component (not \
             empty, not `.` or `..`, no `/` or `\\`)",
            crate::layers::excerpt(name)
        ),
    ))
}

impl SftConfig {
    fn validate(&self) -> std::result::Result<(), InvalidConfig> {
        let positive = |key: &str, ok: bool, found: String| {
            if ok {
                Ok(())
            } else {
                Err(InvalidConfig::new(
                    key,
                    format!("`{key}` must be a finite positive number, found `{found}`"),
                ))
            }
        };
        if self.batch_size == 0 {
            return Err(InvalidConfig::new(
                "sft.batch_size",
                "`sft.batch_size` must be positive",
            ));
        }
        let (lr, clip) = (self.lr, self.grad_clip);
        positive("sft.lr", lr.is_finite() && lr > 0.0, lr.to_string())?;
        positive(
            "sft.grad_clip",
            clip.is_finite() && clip > 0.0,
            clip.to_string(),
        )?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(InvalidConfig::new(
                "sft.weight_decay",
                format!(
                    "`sft.weight_decay` must be a finite number ≥ 0, found `{}`",
                    self.weight_decay
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// Drops the file's `[reward]` knobs that an overridden `reward.kind` does not have, with a note.
fn drop_knobs_of_an_overridden_reward_kind(layered: &mut Layered, path: &Path) {
    let Some(layer) = layered.origin("reward.kind").cloned() else {
        return;
    };
    let Some(reward) = layered.table.get("reward").and_then(toml::Value::as_table) else {
        return;
    };
    let Some(kind) = reward
        .get("kind")
        .and_then(toml::Value::as_str)
        .map(str::to_string)
    else {
        return;
    };
    let Some(keys) = RewardSection::keys(&kind) else {
        return;
    };
    let stale: Vec<String> = reward
        .keys()
        .filter(|k| *k != "kind" && !keys.contains(k))
        .filter(|k| layered.origin(&format!("reward.{k}")).is_none())
        .cloned()
        .collect();
    for key in stale {
        layered.remove("reward", &key);
        eprintln!(
            "note: `reward.{key}` in `{}` is not a knob of reward `{kind}` (`reward.kind` {layer}); dropped",
            path.display()
        );
    }
}

/// Folds a key that a hand-written `Deserialize` put at the start of its message (`` `l_t`: … ``
/// under `reward`) into the dotted path.
fn nested_key(path: String, message: String) -> (String, String) {
    let inner = message
        .strip_prefix('`')
        .and_then(|rest| rest.split_once("`: "))
        .filter(|(key, _)| parse_key(key).is_ok());
    match inner {
        Some((key, rest)) if path != "." => (format!("{path}.{key}"), rest.to_string()),
        _ => (path, message),
    }
}

/// The key of table `path` whose value alone fails to deserialise, when exactly one does: serde
/// reports an error inside a flattened table (`[rollout]`'s sampling and engine keys) at the table.
fn failing_key(layered: &Layered, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let (Some(section), None) = (parts.next(), parts.next()) else {
        return None;
    };
    let table = layered.table.get(section)?.as_table()?;
    let alone_fails = |key: &String, value: &toml::Value| {
        let one = toml::Table::from_iter([(key.clone(), value.clone())]);
        let run = toml::Table::from_iter([(section.to_string(), toml::Value::Table(one))]);
        serde_path_to_error::deserialize::<_, RunConfig>(toml::Value::Table(run)).is_err()
    };
    let mut failing = table.iter().filter(|(key, value)| alone_fails(key, value));
    match (failing.next(), failing.next()) {
        (Some((key, _)), None) => Some(format!("{section}.{key}")),
        _ => None,
    }
}

/// The first backticked dotted key of a message (`` `rollout.n` must … `` → `rollout.n`).
fn first_dotted_key(message: &str) -> Option<String> {
    message
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|part| part.contains('.') && parse_key(part).is_ok())
        .map(str::to_string)
}

/// A table's message (`` `rank` must … ``) with its first key under `section` (`` `model.lora.rank` ``).
fn within(section: &str, message: &str) -> String {
    message.replacen('`', &format!("`{section}."), 1)
}

/// `message`, naming the override layer that wrote `key` when one did.
fn with_origin(message: String, layered: &Layered, key: &str) -> String {
    match layered.origin(key) {
        Some(layer) => format!("{message} ({layer})"),
        None => message,
    }
}
