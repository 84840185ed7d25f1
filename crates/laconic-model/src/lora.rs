//! LoRA adapters (Hu et al., arXiv 2106.09685) on a [`CausalLm`]'s projections, saved and loaded in
//! PEFT's format.
//!
//! An adapted projection computes `y = x·Wᵀ + b + s · (x·Aᵀ)·Bᵀ` with `A` `[r, d_in]`, `B` `[d_out, r]`
//! and `s = alpha / r`; `A` starts as PEFT's default (Kaiming-uniform, `U(±1/√d_in)`) and `B` at zero,
//! so a fresh adapter leaves the model unchanged. [`CausalLm::with_lora`] freezes every base parameter
//! (no gradient, hence no optimizer state) and attaches adapters to the target projections;
//! [`CausalLm::merged`] folds them into the weights (`W + s·B·A`) for fast decoding or a full checkpoint;
//! [`CausalLm::without_lora`] is the base model, sharing its tensors (the KL reference at no extra copy).
//!
//! On disk an adapter is PEFT's: `adapter_config.json` and `adapter_model.safetensors` with keys
//! `base_model.model.<module path>.lora_A.weight` / `.lora_B.weight`, loadable by
//! `peft.PeftModel.from_pretrained` on the base model; [`load_model`](crate::load_model) on such a
//! folder loads the base it names and applies the adapter. Loading checks each tensor's shape against
//! `adapter_config.json` before reading it and samples nothing, so a bad `r` costs no allocation; a
//! base that is itself an adapter folder (a stack, or a cycle such as `"."`) is refused naming the
//! folders.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layer::FeedForward;
use crate::linear::{project, Linear};
use crate::load::{host_f32, read_checked};
use crate::model::CausalLm;
use crate::safetensors::{write_tensors, SafetensorsIndex, TensorSource};
use crate::seed::{splitmix64, GOLDEN_GAMMA};

/// The projections an adapter may target, by their Hugging Face names.
pub const LORA_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// The adapter's configuration file in a PEFT adapter folder.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// The adapter's weights in a PEFT adapter folder.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// PEFT's prefix of every adapter key.
const PEFT_PREFIX: &str = "base_model.model.";

/// The `[model.lora]` section: rank, scale, dropout and target projections (PEFT's `r`,
/// `lora_alpha`, `lora_dropout`, `target_modules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r`. Default 16.
    pub rank: usize,
    /// `alpha`; the update is scaled by `alpha / r`. Default 32.
    pub alpha: f64,
    /// Dropout on the adapter's input during the update (not during rollouts, evaluation or the
    /// reference). Default 0: with dropout the update's log-probs differ from the rollouts', so the
    /// on-policy ratio is no longer 1.
    pub dropout: f64,
    /// Projections to adapt, HF names ([`LORA_TARGETS`]). Default all seven (TRL's `all-linear`
    /// without the LM head).
    pub target_modules: Vec<String>,
    /// Seed of `A`'s initialisation; default the run's `train.seed`.
    pub seed: Option<u64>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 32.0,
            dropout: 0.0,
            target_modules: LORA_TARGETS.iter().map(|t| t.to_string()).collect(),
            seed: None,
        }
    }
}

impl LoraConfig {
    /// Checks the knobs.
    ///
    /// # Errors
    /// A message naming the key (`rank`, `alpha`, `dropout`, `target_modules`).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.rank == 0 {
            return Err("`rank` must be positive".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(format!(
                "`alpha` must be a finite positive number, found `{}`",
                self.alpha
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "`dropout` must be in [0, 1), found `{}`",
                self.dropout
            ));
        }
        if self.target_modules.is_empty() {
            return Err("`target_modules` must name at least one projection".into());
        }
        if let Some(bad) = self
            .target_modules
            .iter()
            .find(|t| !LORA_TARGETS.contains(&t.as_str()))
        {
            return Err(format!(
                "`target_modules`: `{bad}` is not a projection of the model (one of {})",
                LORA_TARGETS.join(", ")
            ));
        }
        Ok(())
    }

    /// `alpha / r`.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    fn targets(&self, name: &str) -> bool {
        self.target_modules.iter().any(|t| t == name)
    }
}

/// The low-rank update of one projection.
///
/// # Shapes
/// - `lora_a`: `[r, d_in]`, `lora_b`: `[d_out, r]`; input `[..., d_in]` → `[..., d_out]`
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// `A`, `[r, d_in]`.
    pub lora_a: Param<Tensor<B, 2>>,
    /// `B`, `[d_out, r]`.
    pub lora_b: Param<Tensor<B, 2>>,
    /// `alpha / r`.
    pub scaling: f64,
    /// Dropout on the input (active only under autodiff).
    pub dropout: Dropout,
}

impl<B: Backend> LoraAdapter<B> {
    /// `s · (dropout(x)·Aᵀ)·Bᵀ`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let x = self.dropout.forward(x);
        let low = project(x, self.lora_a.val(), None);
        project(low, self.lora_b.val(), None).mul_scalar(self.scaling)
    }

    /// `s · B·A`, `[d_out, d_in]`: the update folded into a weight.
    pub fn delta(&self) -> Tensor<B, 2> {
        self.lora_b
            .val()
            .matmul(self.lora_a.val())
            .mul_scalar(self.scaling)
    }
}

/// The adapted projections of a model: `(module path, projection)`, e.g.
/// `model.layers.0.self_attn.q_proj`.
fn projections_mut<B: Backend>(model: &mut CausalLm<B>) -> Vec<(String, &mut Linear<B>)> {
    let mut out = Vec::new();
    for (i, layer) in model.model.layers.iter_mut().enumerate() {
        let attn = &mut layer.self_attn;
        let prefix = format!("model.layers.{i}");
        for (name, linear) in [
            ("q_proj", &mut attn.q_proj),
            ("k_proj", &mut attn.k_proj),
            ("v_proj", &mut attn.v_proj),
            ("o_proj", &mut attn.o_proj),
        ] {
            out.push((format!("{prefix}.self_attn.{name}"), linear));
        }
        if let FeedForward::Dense(mlp) = &mut layer.mlp {
            for (name, linear) in [
                ("gate_proj", &mut mlp.gate_proj),
                ("up_proj", &mut mlp.up_proj),
                ("down_proj", &mut mlp.down_proj),
            ] {
                out.push((format!("{prefix}.mlp.{name}"), linear));
            }
        }
    }
    out
}

/// The HF name of a projection path's last segment (`…q_proj` → `q_proj`).
fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// `n` values of `U(−bound, bound)` from `seed` (SplitMix64): the same on every backend and worker.
fn uniform(seed: u64, n: usize, bound: f64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let z = splitmix64(seed.wrapping_add(i.wrapping_mul(GOLDEN_GAMMA)));
            let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
            ((2.0 * unit - 1.0) * bound) as f32
        })
        .collect()
}

/// A seed per projection path (FNV-1a of the path, mixed with `seed`).
fn path_seed(seed: u64, path: &str) -> u64 {
    path.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl<B: Backend> CausalLm<B> {
    /// This model with every base parameter frozen and a fresh adapter (PEFT's initialisation, `B =
    /// 0`: the outputs are unchanged) on each target projection of every layer. A mixture-of-experts
    /// layer's experts are not adapted (their projections are stacked, not [`Linear`]s).
    ///
    /// # Errors
    /// An invalid `config`, or a model that already has adapters.
    pub fn with_lora(self, config: &LoraConfig, seed: u64) -> Result<Self> {
        let seed = config.seed.unwrap_or(seed);
        self.with_adapters(config, |path, [d_out, d_in], device| {
            let values = uniform(
                path_seed(seed, path),
                config.rank * d_in,
                1.0 / (d_in as f64).sqrt(),
            );
            let a = Tensor::from_data(TensorData::new(values, [config.rank, d_in]), device);
            let b = Tensor::zeros([d_out, config.rank], device);
            Ok((a, b))
        })
    }

    /// This model with every base parameter frozen and an adapter on each target projection of
    /// every layer, its `(A, B)` from `make(path, [d_out, d_in], device)`.
    ///
    /// # Errors
    /// An invalid `config`, a model that already has adapters, or an error of `make`.
    fn with_adapters(
        self,
        config: &LoraConfig,
        mut make: impl FnMut(&str, [usize; 2], &B::Device) -> Result<(Tensor<B, 2>, Tensor<B, 2>)>,
    ) -> Result<Self> {
        config.validate().map_err(Error::Lora)?;
        if self.lora().is_some() {
            return Err(Error::Lora("the model already has LoRA adapters".into()));
        }
        let mut model = self.no_grad();
        for (path, linear) in projections_mut(&mut model) {
            if !config.targets(leaf(&path)) {
                continue;
            }
            let (a, b) = make(&path, linear.weight.dims(), &linear.weight.device())?;
            linear.lora = Some(adapter(a, b, config));
        }
        model.lora = Some(config.clone());
        Ok(model)
    }

    /// The adapters' configuration, when the model has adapters.
    pub fn lora(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// The model with every adapter folded into its projection (`W + s·B·A`) and none left: plain
    /// weights for fast decoding or a full HF checkpoint. A model without adapters comes back as is.
    pub fn merged(&self) -> Self {
        let mut model = self.clone();
        for (_, linear) in projections_mut(&mut model) {
            if let Some(adapter) = linear.lora.take() {
                let weight = linear.weight.val() + adapter.delta();
                linear.weight = Param::from_tensor(weight);
            }
        }
        model.lora = None;
        model
    }

    /// The base model: this one without its adapters, sharing the base tensors.
    pub fn without_lora(&self) -> Self {
        let mut model = self.clone();
        for (_, linear) in projections_mut(&mut model) {
            linear.lora = None;
        }
        model.lora = None;
        model
    }

    /// The adapters' tensors under PEFT's keys (`base_model.model.<path>.lora_A.weight`), f32.
    pub fn adapter_tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        self.adapter_params()
            .into_iter()
            .map(|(name, tensor)| {
                let (shape, values) = host_f32(tensor);
                (name, shape, values)
            })
            .collect()
    }

    /// The adapters' matrices under PEFT's keys, on the device.
    fn adapter_params(&self) -> Vec<(String, Tensor<B, 2>)> {
        let mut model = self.clone();
        let mut out = Vec::new();
        for (path, linear) in projections_mut(&mut model) {
            let Some(adapter) = &linear.lora else {
                continue;
            };
            for (which, param) in [("lora_A", &adapter.lora_a), ("lora_B", &adapter.lora_b)] {
                out.push((format!("{PEFT_PREFIX}{path}.{which}.weight"), param.val()));
            }
        }
        out
    }

    /// Writes the adapters alone as a PEFT adapter folder (`adapter_config.json`,
    /// `adapter_model.safetensors`); `base` is recorded as `base_model_name_or_path`.
    ///
    /// # Errors
    /// A model without adapters, or a file that cannot be written.
    pub fn save_adapter(&self, dir: impl AsRef<Path>, base: &str) -> Result<()> {
        let dir = dir.as_ref();
        let config = self
            .lora()
            .ok_or_else(|| Error::Lora("the model has no LoRA adapters to save".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(ADAPTER_CONFIG);
        let text =
            serde_json::to_string_pretty(&PeftConfig::of(config, base)).map_err(|source| {
                Error::Json {
                    path: path.clone(),
                    source,
                }
            })?;
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        let tensors: Vec<_> = self
            .adapter_params()
            .into_iter()
            .map(|(name, tensor)| (name, TensorSource::from_tensor(tensor)))
            .collect();
        write_tensors(&dir.join(ADAPTER_WEIGHTS), &tensors)
    }

    /// This model (without adapters) with the PEFT adapter of `dir` applied, base frozen.
    ///
    /// # Errors
    /// A missing or malformed adapter folder, an unsupported PEFT option, a tensor missing, extra or of
    /// the wrong shape (named with the file).
    pub fn load_adapter(self, dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        self.apply_adapter(dir, &PeftConfig::read(dir)?)
    }

    /// [`CausalLm::load_adapter`] with the folder's `adapter_config.json` already read. Each tensor's
    /// shape is checked against the config (from the file's header) before its data is read, and
    /// nothing is sampled, so what loading allocates is bounded by the file's size whatever `r` says.
    fn apply_adapter(self, dir: &Path, peft: &PeftConfig) -> Result<Self> {
        let config = peft.lora_config(&dir.join(ADAPTER_CONFIG))?;
        let index = SafetensorsIndex::from_files(&[dir.join(ADAPTER_WEIGHTS)])?;
        let mut expected = BTreeSet::new();
        let model = self.with_adapters(&config, |path, [d_out, d_in], device| {
            let mut read = |which: &str, shape: [usize; 2]| -> Result<Tensor<B, 2>> {
                let name = format!("{PEFT_PREFIX}{path}.{which}.weight");
                let values = read_checked(&index, dir, &name, &shape)?;
                expected.insert(name);
                Ok(Tensor::from_data(TensorData::new(values, shape), device))
            };
            let a = read("lora_A", [config.rank, d_in])?;
            Ok((a, read("lora_B", [d_out, config.rank])?))
        })?;
        if let Some(extra) = index.names().into_iter().find(|n| !expected.contains(*n)) {
            return Err(Error::Lora(format!(
                "`{}` holds `{extra}`, which no target projection of this model has (target_modules: {})",
                dir.join(ADAPTER_WEIGHTS).display(),
                config.target_modules.join(", ")
            )));
        }
        Ok(model)
    }
}

/// A trainable adapter from `A` and `B`.
fn adapter<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>, config: &LoraConfig) -> LoraAdapter<B> {
    LoraAdapter {
        lora_a: Param::from_tensor(a),
        lora_b: Param::from_tensor(b),
        scaling: config.scaling(),
        dropout: DropoutConfig::new(config.dropout).init(),
    }
}

/// Whether `dir` is a PEFT adapter folder.
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
}

/// Adapter folders followed, from the one loaded, to tell a cycle from a stack of adapters in an
/// error (neither loads; the cap bounds the walk on a long chain).
const MAX_ADAPTER_CHAIN: usize = 16;

/// The model of a PEFT adapter folder: the base it names (`base_model_name_or_path`, a relative path
/// taken from the adapter folder) with the adapter applied. The base must be a full checkpoint:
/// an adapter folder as the base (a stack of adapters, or a cycle such as `"."` or two folders naming
/// each other) is refused before anything is loaded, naming the folders.
///
/// # Errors
/// A missing or malformed `adapter_config.json`, no base named, a base that is an adapter folder
/// ([`Error::AdapterCycle`], [`Error::StackedAdapter`]), or a base or adapter that does not load.
pub(crate) fn load_adapted<B: Backend>(dir: &Path, device: &B::Device) -> Result<CausalLm<B>> {
    let peft = PeftConfig::read(dir)?;
    let base = peft.base_dir(dir)?;
    if is_adapter_dir(&base) {
        return Err(adapter_chain_error(dir));
    }
    crate::load_model::<B>(&base, device)?.apply_adapter(dir, &peft)
}

/// Why the adapter folder `dir`, whose base is an adapter folder too, does not load: the folders of
/// a cycle, found by following bases (compared as canonical paths) up to [`MAX_ADAPTER_CHAIN`]
/// folders, or else a stack of adapters.
fn adapter_chain_error(dir: &Path) -> Error {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut current = dir.to_path_buf();
    while seen.len() < MAX_ADAPTER_CHAIN && is_adapter_dir(&current) {
        let Ok(canonical) = std::fs::canonicalize(&current) else {
            break;
        };
        if seen.contains(&canonical) {
            seen.push(canonical);
            return Error::AdapterCycle { folders: seen };
        }
        seen.push(canonical);
        match PeftConfig::read(&current).and_then(|peft| peft.base_dir(&current)) {
            Ok(base) => current = base,
            Err(_) => break,
        }
    }
    Error::StackedAdapter {
        adapter: dir.to_path_buf(),
        base: PeftConfig::read(dir)
            .and_then(|peft| peft.base_dir(dir))
            .unwrap_or_default(),
    }
}

/// The subset of PEFT's `LoraConfig` that laconic writes and reads.
#[derive(Debug, Serialize, Deserialize)]
struct PeftConfig {
    peft_type: String,
    task_type: Option<String>,
    base_model_name_or_path: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f64,
    target_modules: TargetModules,
    #[serde(default = "none")]
    bias: String,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    layers_to_transform: Option<serde_json::Value>,
    #[serde(default)]
    rank_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    alpha_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    inference_mode: bool,
}

/// PEFT writes `target_modules` as a list, or as one regular expression string.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

fn none() -> String {
    "none".into()
}

impl PeftConfig {
    fn of(config: &LoraConfig, base: &str) -> Self {
        Self {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            base_model_name_or_path: Some(base.into()),
            r: config.rank,
            lora_alpha: config.alpha,
            lora_dropout: config.dropout,
            target_modules: TargetModules::List(config.target_modules.clone()),
            bias: none(),
            fan_in_fan_out: false,
            use_rslora: false,
            use_dora: false,
            modules_to_save: None,
            layers_to_transform: None,
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
            inference_mode: true,
        }
    }

    /// The folder of `base_model_name_or_path`, taken from the adapter folder `dir`.
    ///
    /// # Errors
    /// No base named.
    fn base_dir(&self, dir: &Path) -> Result<PathBuf> {
        let base = self
            .base_model_name_or_path
            .as_deref()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                Error::Lora(format!(
                    "`{}` names no `base_model_name_or_path`",
                    dir.join(ADAPTER_CONFIG).display()
                ))
            })?;
        Ok(dir.join(base))
    }

    fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|source| Error::Json { path, source })
    }

    /// The adapter as a [`LoraConfig`]; PEFT options laconic does not implement are refused.
    fn lora_config(&self, path: &Path) -> Result<LoraConfig> {
        let refuse = |what: &str| {
            Err(Error::Lora(format!(
                "`{}`: {what} is not supported",
                path.display()
            )))
        };
        if self.peft_type != "LORA" {
            return refuse(&format!("`peft_type` `{}`", self.peft_type));
        }
        if self.bias != "none" {
            return refuse(&format!("`bias` `{}`", self.bias));
        }
        if self.fan_in_fan_out || self.use_rslora || self.use_dora {
            return refuse("`fan_in_fan_out`, `use_rslora` or `use_dora`");
        }
        if self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty())
            || self
                .layers_to_transform
                .as_ref()
                .is_some_and(|l| !l.is_null())
            || !self.rank_pattern.is_empty()
            || !self.alpha_pattern.is_empty()
        {
            return refuse(
                "`modules_to_save`, `layers_to_transform`, `rank_pattern` or `alpha_pattern`",
            );
        }
        let TargetModules::List(targets) = &self.target_modules else {
            return refuse("a regular-expression `target_modules`");
        };
        let config = LoraConfig {
            rank: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            target_modules: targets.clone(),
            seed: None,
        };
        config
            .validate()
            .map_err(|e| Error::Lora(format!("`{}`: {e}", path.display())))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
