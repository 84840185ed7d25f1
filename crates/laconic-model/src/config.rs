//! `DecoderConfig`: a mirror of Hugging Face `config.json` for the decoder families laconic runs: Qwen3
//! (dense and MoE), Qwen2 (Qwen2.5, DeepSeek-R1-Distill-Qwen) and Llama (Llama-3.x, SmolLM2, TinyLlama).
//!
//! Field names are the JSON keys verbatim, so a checkpoint's `config.json` deserialises with no glue.
//! Unknown keys are ignored (HF adds keys freely). [`DecoderConfig::validate`] runs once after loading
//! and rejects what the model cannot run, so inner code can assume a consistent config.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rope_scaling::RopeScaling;

/// The architecture family named by `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `qwen3`: per-head q/k RMSNorm, `head_dim` from the config, optional biases on every projection.
    Qwen3,
    /// `qwen2` (Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen): q/k/v biases, no q/k norm, `head_dim = hidden/heads`.
    Qwen2,
    /// `qwen3_moe`: Qwen3 attention with sparse mixture-of-experts MLPs.
    Qwen3Moe,
    /// `llama` (Llama-2/3.x, SmolLM2, TinyLlama): no q/k norm, optional biases on every attention
    /// projection (`attention_bias`) and on the MLP (`mlp_bias`).
    Llama,
}

/// `eos_token_id` is an integer in some checkpoints and a list in others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a vector.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// Model hyper-parameters, read from a Hugging Face `config.json`.
///
/// Qwen3 dense (`model_type = "qwen3"`), Qwen2 (`"qwen2"`), Qwen3-MoE (`"qwen3_moe"`) and Llama
/// (`"llama"`) share this struct; keys a family does not use are absent or ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    /// `qwen3`, `qwen2`, `qwen3_moe` or `llama`.
    pub model_type: String,
    /// Rows of the embedding matrix (padded; larger than the tokenizer's vocabulary).
    pub vocab_size: usize,
    /// Model width `d`.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA); defaults to `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width. Qwen3 sets it (128 at every size); Qwen2 derives `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Longest position the checkpoint was trained for (informational; RoPE tables are computed on demand).
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RoPE scaling: `null`, or `rope_type` (or `type`) `default`, `linear`, `llama3` or `yarn` with its
    /// keys ([`RopeScaling`]); kept as written so a saved config equals the loaded one.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// Whether the LM head reuses the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Qwen3 and Llama: biases on q/k/v/o projections. Qwen2 always has q/k/v biases and ignores this
    /// key.
    #[serde(default)]
    pub attention_bias: bool,
    /// Llama: biases on the MLP's gate/up/down projections (absent elsewhere).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mlp_bias: bool,
    /// Activation of the MLP; only `silu` is supported.
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Sliding-window attention; not supported (Qwen2 checkpoints ship `false`).
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Attention kind per layer (recent transformers); only `full_attention` is supported.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// Beginning-of-sequence id (Qwen prepends none; informational).
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// The dtype the checkpoint was saved in (informational).
    #[serde(default)]
    pub torch_dtype: Option<String>,

    // Mixture-of-experts keys (`qwen3_moe`). `None` = absent from the file; the accessors of the same
    // name apply HF `Qwen3MoeConfig`'s defaults, and absent keys stay absent when the config is saved.
    /// Number of routed experts per MoE layer (HF default 128, see [`DecoderConfig::num_experts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_experts: Option<usize>,
    /// Experts chosen per token (HF default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_experts_per_tok: Option<usize>,
    /// Width of each expert's SwiGLU MLP (HF default 768).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe_intermediate_size: Option<usize>,
    /// Renormalise the top-k routing weights to sum to one (HF default `false`; the released Qwen3-MoE
    /// checkpoints set `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm_topk_prob: Option<bool>,
    /// Layer `l` is sparse when `(l + 1) % decoder_sparse_step == 0` (HF default 1: every layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder_sparse_step: Option<usize>,
    /// Layers that keep a dense MLP of width `intermediate_size` (HF default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp_only_layers: Option<Vec<usize>>,
    /// Weight of the router load-balancing loss in the training loss (HF default 0.001).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_aux_loss_coef: Option<f64>,
}

fn default_max_position_embeddings() -> usize {
    40_960
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    1_000_000.0
}
fn default_hidden_act() -> String {
    "silu".to_string()
}

impl DecoderConfig {
    /// Reads and validates a `config.json`.
    ///
    /// # Errors
    /// The file cannot be read, is not valid JSON, misses a required key, or describes an unsupported model.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses and validates `config.json` text; `origin` names the file in errors.
    ///
    /// # Errors
    /// As [`DecoderConfig::from_file`].
    pub fn from_json_str(text: &str, origin: impl AsRef<Path>) -> Result<Self> {
        let origin = origin.as_ref();
        let config: Self = serde_json::from_str(text).map_err(|source| Error::Json {
            path: origin.to_path_buf(),
            source,
        })?;
        config.validate_at(origin)?;
        Ok(config)
    }

    /// The architecture family.
    ///
    /// # Panics
    /// On an unknown `model_type`; [`DecoderConfig::validate`] rejects those first.
    pub fn arch(&self) -> Arch {
        arch_of(&self.model_type).expect("model_type is validated when the config is loaded")
    }

    /// Per-head width: `head_dim` when present, else `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Key/value heads.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Whether q/k/v projections carry a bias.
    pub fn qkv_bias(&self) -> bool {
        match self.arch() {
            Arch::Qwen2 => true,
            Arch::Qwen3 | Arch::Qwen3Moe | Arch::Llama => self.attention_bias,
        }
    }

    /// Whether the output projection carries a bias.
    pub fn o_bias(&self) -> bool {
        match self.arch() {
            Arch::Qwen2 => false,
            Arch::Qwen3 | Arch::Qwen3Moe | Arch::Llama => self.attention_bias,
        }
    }

    /// Whether the dense MLP's projections carry biases (Llama's `mlp_bias`).
    pub fn mlp_bias(&self) -> bool {
        self.arch() == Arch::Llama && self.mlp_bias
    }

    /// Whether attention applies a per-head RMSNorm to q and k (Qwen3 and Qwen3-MoE).
    pub fn qk_norm(&self) -> bool {
        matches!(self.arch(), Arch::Qwen3 | Arch::Qwen3Moe)
    }

    /// The parsed `rope_scaling`; `None` when absent, `null` or `default`.
    ///
    /// # Panics
    /// On an entry [`DecoderConfig::validate`] refuses (a loaded config has passed it).
    pub fn rope_scaling_kind(&self) -> Option<RopeScaling> {
        let value = self.rope_scaling.as_ref()?;
        RopeScaling::parse(value, self.max_position_embeddings)
            .expect("rope_scaling is validated when the config is loaded")
    }

    /// End-of-sequence ids from the config (may be empty).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// Routed experts per sparse layer `E`: `num_experts`, else HF's default 128.
    pub fn num_experts(&self) -> usize {
        self.num_experts.unwrap_or(128)
    }

    /// Experts per token `k`: `num_experts_per_tok`, else HF's default 8.
    pub fn num_experts_per_tok(&self) -> usize {
        self.num_experts_per_tok.unwrap_or(8)
    }

    /// Width of each expert's SwiGLU MLP: `moe_intermediate_size`, else HF's default 768.
    pub fn moe_intermediate_size(&self) -> usize {
        self.moe_intermediate_size.unwrap_or(768)
    }

    /// Whether the top-k routing weights are renormalised to sum to one: `norm_topk_prob`, else `false`.
    pub fn norm_topk_prob(&self) -> bool {
        self.norm_topk_prob.unwrap_or(false)
    }

    /// `decoder_sparse_step`, else HF's default 1 (every layer sparse).
    pub fn decoder_sparse_step(&self) -> usize {
        self.decoder_sparse_step.unwrap_or(1)
    }

    /// Layers kept dense: `mlp_only_layers`, else none.
    pub fn mlp_only_layers(&self) -> &[usize] {
        self.mlp_only_layers.as_deref().unwrap_or(&[])
    }

    /// Weight of the router load-balancing loss: `router_aux_loss_coef`, else HF's default 0.001.
    pub fn router_aux_loss_coef(&self) -> f64 {
        self.router_aux_loss_coef.unwrap_or(0.001)
    }

    /// Whether layer `layer` uses a sparse MoE block instead of a dense MLP: a `qwen3_moe` model, the
    /// layer not in `mlp_only_layers`, `num_experts > 0` and `(layer + 1) % decoder_sparse_step == 0`
    /// (HF's `Qwen3MoeDecoderLayer`).
    pub fn is_moe_layer(&self, layer: usize) -> bool {
        if self.arch() != Arch::Qwen3Moe {
            return false;
        }
        let step = self.decoder_sparse_step().max(1);
        !self.mlp_only_layers().contains(&layer)
            && self.num_experts() > 0
            && (layer + 1).is_multiple_of(step)
    }

    /// Checks the config describes a model this crate can run.
    ///
    /// # Errors
    /// Unsupported `model_type`, activation, RoPE scaling or sliding window; zero or inconsistent sizes.
    pub fn validate(&self) -> Result<()> {
        self.validate_at("<memory>")
    }

    fn validate_at(&self, origin: impl AsRef<Path>) -> Result<()> {
        let fail = |message: String| Error::Config {
            path: PathBuf::from(origin.as_ref()),
            message,
        };
        let Some(arch) = arch_of(&self.model_type) else {
            return Err(fail(format!(
                "unsupported `model_type` `{}` (supported: `qwen3`, `qwen2`, `qwen3_moe`, `llama`)",
                self.model_type
            )));
        };
        for (key, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_kv_heads()),
            ("head_dim", self.head_dim()),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return Err(fail(format!("`{key}` must be positive, found `0`")));
            }
        }
        if let Some(id) = self
            .eos_token_ids()
            .into_iter()
            .find(|&id| id as usize >= self.vocab_size)
        {
            return Err(fail(format!(
                "`eos_token_id` {id} is outside the vocabulary (`vocab_size` = {})",
                self.vocab_size
            )));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return Err(fail(format!(
                "`num_attention_heads` ({}) must be a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads,
                self.num_kv_heads()
            )));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(fail(format!(
                "`hidden_size` ({}) is not divisible by `num_attention_heads` ({}) and no `head_dim` is given",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(fail(format!(
                "`head_dim` must be even for rotary embeddings, found `{}`",
                self.head_dim()
            )));
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return Err(fail(format!(
                "`rms_norm_eps` must be positive, found `{}`",
                self.rms_norm_eps
            )));
        }
        if !(self.rope_theta > 0.0 && self.rope_theta.is_finite()) {
            return Err(fail(format!(
                "`rope_theta` must be positive, found `{}`",
                self.rope_theta
            )));
        }
        if self.hidden_act != "silu" {
            return Err(fail(format!(
                "unsupported `hidden_act` `{}` (only `silu` is supported)",
                self.hidden_act
            )));
        }
        if let Some(value) = &self.rope_scaling {
            RopeScaling::parse(value, self.max_position_embeddings).map_err(fail)?;
        }
        if self.use_sliding_window {
            return Err(fail(
                "sliding-window attention (`use_sliding_window = true`) is not supported"
                    .to_string(),
            ));
        }
        if let Some(kind) = self
            .layer_types
            .iter()
            .flatten()
            .find(|kind| kind.as_str() != "full_attention")
        {
            return Err(fail(format!(
                "`layer_types` entry `{kind}` is not supported (only `full_attention`)"
            )));
        }
        if arch == Arch::Qwen3Moe {
            for (key, value) in [
                ("num_experts", self.num_experts()),
                ("num_experts_per_tok", self.num_experts_per_tok()),
                ("moe_intermediate_size", self.moe_intermediate_size()),
                ("decoder_sparse_step", self.decoder_sparse_step()),
            ] {
                if value == 0 {
                    return Err(fail(format!(
                        "`{key}` must be positive for `qwen3_moe`, found `0`"
                    )));
                }
            }
            let (experts, top_k) = (self.num_experts(), self.num_experts_per_tok());
            if top_k > experts {
                return Err(fail(format!(
                    "`num_experts_per_tok` ({top_k}) exceeds `num_experts` ({experts})"
                )));
            }
        }
        Ok(())
    }
}

fn arch_of(model_type: &str) -> Option<Arch> {
    match model_type {
        "qwen3" => Some(Arch::Qwen3),
        "qwen2" => Some(Arch::Qwen2),
        "qwen3_moe" => Some(Arch::Qwen3Moe),
        "llama" => Some(Arch::Llama),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `config.json` of Qwen/Qwen3-0.6B, abridged to the keys that matter plus a few unknown ones.
    const QWEN3_06B: &str = r#"{
      "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
      "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
      "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
      "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
      "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
      "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
      "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
      "use_cache": true, "use_sliding_window": false, "vocab_size": 151936
    }"#;

    #[test]
    fn reads_qwen3_config() {
        let c = DecoderConfig::from_json_str(QWEN3_06B, "config.json").unwrap();
        assert_eq!(c.arch(), Arch::Qwen3);
        // head_dim comes from the file, not hidden/heads (1024/16 = 64).
        assert_eq!(c.head_dim(), 128);
        assert_eq!(c.num_kv_heads(), 8);
        assert!(c.tie_word_embeddings && c.qk_norm() && !c.qkv_bias());
        assert_eq!(c.eos_token_ids(), vec![151645]);
        assert_eq!(c.rope_theta, 1e6);
    }

    #[test]
    fn qwen2_derives_head_dim_and_has_qkv_bias() {
        let text = r#"{"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536,
            "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
            "num_key_value_heads": 2, "rope_theta": 10000, "eos_token_id": [151643, 151645],
            "use_sliding_window": false, "sliding_window": 4096}"#;
        let c = DecoderConfig::from_json_str(text, "config.json").unwrap();
        assert_eq!(c.arch(), Arch::Qwen2);
        assert_eq!(c.head_dim(), 128);
        assert!(c.qkv_bias() && !c.o_bias() && !c.qk_norm());
        assert_eq!(c.eos_token_ids(), vec![151643, 151645]);
    }

    /// SmolLM2-135M-Instruct's `config.json`, abridged, and Llama-3.2's rope scaling.
    #[test]
    fn reads_llama_configs() {
        let text = r#"{"architectures": ["LlamaForCausalLM"], "attention_bias": false,
            "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 576,
            "intermediate_size": 1536, "max_position_embeddings": 8192, "mlp_bias": false,
            "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30,
            "num_key_value_heads": 3, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
            "rope_scaling": null, "rope_theta": 100000, "tie_word_embeddings": true,
            "vocab_size": 49152}"#;
        let c = DecoderConfig::from_json_str(text, "config.json").unwrap();
        assert_eq!(c.arch(), Arch::Llama);
        assert_eq!((c.head_dim(), c.num_kv_heads()), (64, 3));
        assert!(!c.qk_norm() && !c.qkv_bias() && !c.o_bias() && !c.mlp_bias());
        assert_eq!(c.rope_scaling_kind(), None);

        let llama32 = text
            .replace(r#""attention_bias": false"#, r#""attention_bias": true"#)
            .replace(r#""mlp_bias": false"#, r#""mlp_bias": true"#)
            .replace(
                r#""rope_scaling": null"#,
                r#""rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                    "original_max_position_embeddings": 8192, "rope_type": "llama3"}"#,
            );
        let c = DecoderConfig::from_json_str(&llama32, "config.json").unwrap();
        assert!(c.qkv_bias() && c.o_bias() && c.mlp_bias());
        assert!(matches!(
            c.rope_scaling_kind(),
            Some(RopeScaling::Llama3 { factor, .. }) if factor == 32.0
        ));
        // Saved as read: the scaling entry and `mlp_bias` survive a round trip.
        let saved: DecoderConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(saved, c);
    }

    #[test]
    fn rejects_unsupported_and_inconsistent_configs() {
        let bad_type = QWEN3_06B.replace(r#""model_type": "qwen3""#, r#""model_type": "gemma3""#);
        let err = DecoderConfig::from_json_str(&bad_type, "m/config.json").unwrap_err();
        assert!(
            err.to_string()
                .contains("unsupported `model_type` `gemma3`"),
            "{err}"
        );
        assert!(err.to_string().contains("m/config.json"), "{err}");

        let bad_heads =
            QWEN3_06B.replace(r#""num_key_value_heads": 8"#, r#""num_key_value_heads": 5"#);
        let err = DecoderConfig::from_json_str(&bad_heads, "config.json").unwrap_err();
        assert!(
            err.to_string()
                .contains("multiple of `num_key_value_heads`"),
            "{err}"
        );

        let missing = QWEN3_06B.replace(r#""hidden_size": 1024,"#, "");
        let err = DecoderConfig::from_json_str(&missing, "config.json").unwrap_err();
        assert!(format!("{err:#?}").contains("hidden_size"), "{err:#?}");

        let scaled = QWEN3_06B.replace(
            r#""rope_scaling": null"#,
            r#""rope_scaling": {"type": "dynamic", "factor": 2.0}"#,
        );
        let err = DecoderConfig::from_json_str(&scaled, "m/config.json").unwrap_err();
        assert!(
            err.to_string().contains("m/config.json")
                && err.to_string().contains("type `dynamic` is not supported"),
            "{err}"
        );

        let no_positions = QWEN3_06B.replace(
            r#""max_position_embeddings": 40960"#,
            r#""max_position_embeddings": 0"#,
        );
        let err = DecoderConfig::from_json_str(&no_positions, "config.json").unwrap_err();
        assert!(
            err.to_string()
                .contains("`max_position_embeddings` must be positive"),
            "{err}"
        );
        let eos_outside =
            QWEN3_06B.replace(r#""eos_token_id": 151645"#, r#""eos_token_id": 151936"#);
        let err = DecoderConfig::from_json_str(&eos_outside, "config.json").unwrap_err();
        assert!(
            err.to_string().contains(
                "`eos_token_id` 151936 is outside the vocabulary (`vocab_size` = 151936)"
            ),
            "{err}"
        );
    }

    #[test]
    fn moe_keys_default_to_hf_qwen3moeconfig() {
        // Defaults of transformers 4.57 `Qwen3MoeConfig.__init__`.
        let text = r#"{"model_type": "qwen3_moe", "vocab_size": 64, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "head_dim": 8}"#;
        let c = DecoderConfig::from_json_str(text, "config.json").unwrap();
        assert_eq!(
            (
                c.num_experts(),
                c.num_experts_per_tok(),
                c.moe_intermediate_size(),
                c.norm_topk_prob(),
                c.decoder_sparse_step(),
                c.mlp_only_layers(),
                c.router_aux_loss_coef(),
            ),
            (128, 8, 768, false, 1, &[][..], 0.001)
        );
        assert!(c.is_moe_layer(0) && c.is_moe_layer(1));
        // Absent keys stay absent when saved (transformers then applies the same defaults).
        let saved = serde_json::to_string(&c).unwrap();
        assert!(!saved.contains("num_experts"), "{saved}");

        let zero_step = text.replace(
            r#""head_dim": 8"#,
            r#""head_dim": 8, "decoder_sparse_step": 0"#,
        );
        let err = DecoderConfig::from_json_str(&zero_step, "config.json").unwrap_err();
        assert!(err.to_string().contains("decoder_sparse_step"), "{err}");
        let too_many = text.replace(
            r#""head_dim": 8"#,
            r#""head_dim": 8, "num_experts": 4, "num_experts_per_tok": 5"#,
        );
        let err = DecoderConfig::from_json_str(&too_many, "config.json").unwrap_err();
        assert!(err.to_string().contains("exceeds `num_experts`"), "{err}");
    }

    #[test]
    fn moe_layer_selection() {
        let text = r#"{"model_type": "qwen3_moe", "vocab_size": 64, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "head_dim": 8,
            "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8,
            "decoder_sparse_step": 1, "mlp_only_layers": [0]}"#;
        let c = DecoderConfig::from_json_str(text, "config.json").unwrap();
        assert_eq!(
            (0..4).map(|l| c.is_moe_layer(l)).collect::<Vec<_>>(),
            [false, true, true, true]
        );
    }
}
