//! `OptimConfig`: every knob of the actor update (the `[optim]` section of a run config), verl's names.

use laconic_model::ActivationCheckpointing;
use serde::{Deserialize, Serialize};

use crate::adamw::AdamWSettings;
use crate::advantage::{AdvEstimator, AdvantageOptions};
use crate::agg::LossAggMode;
use crate::error::{Error, Result};
use crate::kl::KlLossType;
use crate::logprob::LogprobOptions;
use crate::objective::LossSettings;
use crate::policy_loss::{ClipRange, PolicyLoss};
use crate::schedule::{LrSchedule, Schedule};
use crate::zero::ZeroStage;

/// The optimiser's configuration. Missing keys take their defaults; unknown keys are an error (a typo
/// in a knob would silently change the experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    // advantages
    /// Advantage estimator. Paper: GRPO; default `grpo`.
    pub adv_estimator: AdvEstimator,
    /// `ε` of `(r − mean)/(std + ε)`. Unspecified in the paper; default 1e-6 (verl).
    pub adv_epsilon: f32,
    /// Bessel-corrected group std. Unspecified in the paper; default `true` (verl's `torch.std`).
    pub adv_unbiased_std: bool,
    /// Whether masked rollouts count in the group mean/std. Unspecified in the paper; default `false`.
    pub masked_in_group_stats: bool,

    // policy loss
    /// `vanilla` (token ratio) or `gspo` (sequence ratio). Paper: GRPO; default `vanilla`.
    pub policy_loss: PolicyLoss,
    /// `ε_low`. Unstated in the paper; default 0.2 (DAPO).
    pub clip_ratio_low: f32,
    /// `ε_high` (clip-higher). Paper: 0.28; default 0.28.
    pub clip_ratio_high: f32,
    /// Dual-clip bound `c > 1` for negative advantages (3.0 in verl when on). Unspecified in the
    /// paper; default off.
    pub clip_ratio_c: Option<f32>,
    /// Loss aggregation. Unspecified in the paper; default `token-mean` (verl, DAPO).
    pub loss_agg_mode: LossAggMode,
    /// `L_norm` of `seq-mean-token-sum-norm` (set it to the rollout limit `L_R`); default: the longest
    /// response of each mini-batch.
    pub loss_scale_factor: Option<f32>,

    // KL and entropy
    /// KL estimator when the KL loss is on. Unspecified in the paper; default `k3`.
    pub kl_loss_type: KlLossType,
    /// KL coefficient `β`; `0` turns the KL loss off (`use_kl_loss` is `β > 0`). Unspecified in the
    /// paper; default 0 (off).
    pub kl_loss_coef: f32,
    /// Entropy bonus `α` (`loss −= α·agg(H)`). Unspecified in the paper; default 0.
    pub entropy_coeff: f32,
    /// MoE policies: weight `c` of the router load-balancing loss (`loss += c · L_aux`, each micro-batch's
    /// `L_aux` weighted by its share of the mini-batch's sequences). Default 0 (off, as in verl and in HF
    /// Qwen3-MoE without `output_router_logits`); `actor/router_aux_loss` is logged for MoE policies either
    /// way.
    pub router_aux_loss_coef: f32,

    // batching
    /// Prompts (groups) per optimizer update; `None` = the whole rollout batch, one update (on-policy,
    /// the paper's recommendation). Staleness S = groups per batch / this.
    pub ppo_mini_batch_size: Option<usize>,
    /// Passes over the rollout batch. Default 1.
    pub ppo_epochs: usize,
    /// Sequences per forward/backward (gradient accumulation); does not change the gradient.
    /// Default 4.
    pub ppo_micro_batch_size: usize,
    /// Shuffle the groups before splitting mini-batches (seeded). Default `false` (verl).
    pub shuffle: bool,
    /// Seed of the mini-batch shuffle. Default 42.
    pub seed: u64,

    // optimizer
    /// Peak learning rate. Paper: 1e-6.
    pub lr: f64,
    /// AdamW's decoupled weight decay `λ`. Unspecified in the paper; default 0.01 (PyTorch, verl).
    pub weight_decay: f32,
    /// AdamW `(β1, β2)`. Unspecified in the paper; default `[0.9, 0.999]` (PyTorch).
    pub betas: [f32; 2],
    /// AdamW `ε`. Unspecified in the paper; default 1e-8 (PyTorch).
    pub eps: f32,
    /// Global gradient-norm clip; `0` only measures the norm. Unspecified in the paper; default 1.0 (verl).
    pub grad_clip: f32,
    /// `constant` or `cosine` after warmup. Unspecified in the paper; default `constant` (verl).
    pub lr_schedule: LrSchedule,
    /// Linear-warmup updates. Unspecified in the paper; default 0.
    pub warmup_steps: u64,
    /// Cosine floor as a fraction of `lr`. Default 0.
    pub min_lr_ratio: f64,
    /// Total updates of the run, required by `cosine`.
    pub total_steps: Option<u64>,

    // log-probs
    /// Tokens per LM-head chunk (one `[chunk, V]` block of logits at a time; 311 MB in f32 at
    /// V = 151,936). Default 512.
    pub logprob_chunk_size: usize,
    /// The LM head keeps a micro-batch's `[tokens, V]` f32 logits from forward to backward when they fit
    /// in this many MiB, and the backward then skips recomputing them (one `h·Wᵀ` per token); above it,
    /// or at 0, the backward recomputes them chunk by chunk and head memory stays a few chunks. Not
    /// in the paper. Default 256 (a 0.6B model's 151,936-token vocabulary passes it at ~440 tokens).
    pub logprob_keep_logits_mib: usize,
    /// The temperature log-probs are recomputed at (`log_softmax(logits / temperature)`): the rollout
    /// temperature, which the trainer takes from `rollout.temperature`. Not a config key (one knob,
    /// owned by `[rollout]`); programs that build a config set it. Default 1.0.
    #[serde(skip)]
    pub temperature: f32,

    // memory
    /// What the update's forward keeps of each decoder layer for the backward: `"none"` (everything,
    /// fastest) or `"layer"` (each layer's input only; the backward recomputes the layer — verl's
    /// `enable_gradient_checkpointing`). Same gradients either way. Default `"none"`.
    pub activation_checkpointing: ActivationCheckpointing,

    // data-parallel
    /// Data-parallel runs sum the gradients across workers in buckets of this many MiB of f32 (one
    /// all-reduce per bucket; PyTorch DDP's `bucket_cap_mb` is the same idea, default 25). Ignored
    /// with one worker. Default 25.
    pub allreduce_bucket_mib: usize,
    /// Sharded optimizer state in data-parallel runs, DeepSpeed's `zero_optimization.stage`
    /// ([`crate::zero`]): 0 every worker holds all of AdamW's moments; 1 each holds the moments of
    /// 1/W of the trainable values (gradients all-reduced, parameters all-gathered after the
    /// update); 2 also reduce-scatters the gradients, so each keeps only its shard of them. The
    /// update is stage 0's up to summation order. Ignored with one worker. Default 0.
    pub zero_stage: u8,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            adv_estimator: AdvEstimator::Grpo,
            adv_epsilon: 1e-6,
            adv_unbiased_std: true,
            masked_in_group_stats: false,
            policy_loss: PolicyLoss::Vanilla,
            clip_ratio_low: 0.2,
            clip_ratio_high: 0.28,
            clip_ratio_c: None,
            loss_agg_mode: LossAggMode::TokenMean,
            loss_scale_factor: None,
            kl_loss_type: KlLossType::K3,
            kl_loss_coef: 0.0,
            entropy_coeff: 0.0,
            router_aux_loss_coef: 0.0,
            ppo_mini_batch_size: None,
            ppo_epochs: 1,
            ppo_micro_batch_size: 4,
            shuffle: false,
            seed: 42,
            lr: 1e-6,
            weight_decay: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
            grad_clip: 1.0,
            lr_schedule: LrSchedule::Constant,
            warmup_steps: 0,
            min_lr_ratio: 0.0,
            total_steps: None,
            logprob_chunk_size: 512,
            logprob_keep_logits_mib: 256,
            temperature: 1.0,
            activation_checkpointing: ActivationCheckpointing::None,
            allreduce_bucket_mib: 25,
            zero_stage: 0,
        }
    }
}

impl OptimConfig {
    /// Checks every range once, so inner code can assume a valid config.
    ///
    /// # Errors
    /// The first knob out of range, naming it and what was expected.
    pub fn validate(&self) -> Result<()> {
        let c = self;
        // GRPO divides by `std + adv_epsilon`: 0 makes a group of equal rewards a NaN advantage.
        positive("adv_epsilon", c.adv_epsilon)?;
        check(
            (0.0..1.0).contains(&c.clip_ratio_low),
            "clip_ratio_low",
            "expected a value in [0, 1)",
            c.clip_ratio_low,
        )?;
        non_negative("clip_ratio_high", c.clip_ratio_high)?;
        if let Some(v) = c.clip_ratio_c {
            check(
                v > 1.0 && v.is_finite(),
                "clip_ratio_c",
                "expected a finite value > 1",
                v,
            )?;
        }
        if let Some(v) = c.loss_scale_factor {
            positive("loss_scale_factor", v)?;
        }
        non_negative("kl_loss_coef", c.kl_loss_coef)?;
        check(
            c.entropy_coeff.is_finite(),
            "entropy_coeff",
            "expected a finite value",
            c.entropy_coeff,
        )?;
        non_negative("router_aux_loss_coef", c.router_aux_loss_coef)?;
        if let Some(v) = c.ppo_mini_batch_size {
            check(
                v >= 1,
                "ppo_mini_batch_size",
                "expected a positive number of prompts",
                v,
            )?;
        }
        at_least_one("ppo_epochs", c.ppo_epochs)?;
        at_least_one("ppo_micro_batch_size", c.ppo_micro_batch_size)?;
        positive("lr", c.lr)?;
        non_negative("weight_decay", c.weight_decay)?;
        check(
            c.betas.iter().all(|b| (0.0..1.0).contains(b)),
            "betas",
            "expected two values in [0, 1)",
            format!("{:?}", c.betas),
        )?;
        positive("eps", c.eps)?;
        check(
            c.grad_clip >= 0.0 && c.grad_clip.is_finite(),
            "grad_clip",
            "expected a finite value ≥ 0 (0 = off)",
            c.grad_clip,
        )?;
        check(
            (0.0..=1.0).contains(&c.min_lr_ratio),
            "min_lr_ratio",
            "expected a value in [0, 1]",
            c.min_lr_ratio,
        )?;
        if c.lr_schedule == LrSchedule::Cosine {
            check(
                c.total_steps.is_some_and(|s| s > c.warmup_steps),
                "total_steps",
                "expected a number of updates > warmup_steps (required by `cosine`)",
                format!("{:?}", c.total_steps),
            )?;
        }
        at_least_one("logprob_chunk_size", c.logprob_chunk_size)?;
        positive("temperature", c.temperature)?;
        at_least_one("allreduce_bucket_mib", c.allreduce_bucket_mib)?;
        check(
            c.zero_stage <= 2,
            "zero_stage",
            "expected 0, 1 or 2",
            c.zero_stage,
        )
    }

    /// The ZeRO stage (`zero_stage`).
    pub fn zero(&self) -> ZeroStage {
        match self.zero_stage {
            0 => ZeroStage::Replicated,
            1 => ZeroStage::ShardedState,
            _ => ZeroStage::ShardedGradients,
        }
    }

    /// f32 values per gradient all-reduce bucket (`allreduce_bucket_mib`).
    pub fn allreduce_bucket_elems(&self) -> usize {
        self.allreduce_bucket_mib.saturating_mul(1 << 20) / 4
    }

    /// The advantage options of this config.
    pub fn advantage_options(&self) -> AdvantageOptions {
        AdvantageOptions {
            epsilon: self.adv_epsilon,
            unbiased_std: self.adv_unbiased_std,
            masked_in_group_stats: self.masked_in_group_stats,
        }
    }

    /// Advantages of a rollout batch with the configured estimator (see [`AdvEstimator::compute`]).
    ///
    /// # Errors
    /// When the slices differ in length or an unmasked reward is not finite.
    pub fn advantages(
        &self,
        rewards: &[f32],
        groups: &[usize],
        masked: &[bool],
    ) -> Result<Vec<f32>> {
        self.adv_estimator
            .compute(rewards, groups, masked, &self.advantage_options())
    }

    /// The loss settings of this config.
    pub fn loss_settings(&self) -> LossSettings {
        LossSettings {
            policy_loss: self.policy_loss,
            clip: ClipRange {
                low: self.clip_ratio_low,
                high: self.clip_ratio_high,
                dual_c: self.clip_ratio_c,
            },
            kl_type: self.kl_loss_type,
            kl_coef: self.kl_loss_coef,
            entropy_coeff: self.entropy_coeff,
        }
    }

    /// AdamW's hyper-parameters.
    pub fn adamw(&self) -> AdamWSettings {
        AdamWSettings {
            betas: (self.betas[0], self.betas[1]),
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }

    /// The learning-rate schedule.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            lr: self.lr,
            kind: self.lr_schedule,
            warmup_steps: self.warmup_steps,
            min_lr_ratio: self.min_lr_ratio,
            total_steps: self.total_steps.unwrap_or(0),
        }
    }

    /// Log-prob recomputation options (for old/reference log-probs outside the update).
    pub fn logprob_options(&self) -> LogprobOptions {
        LogprobOptions {
            temperature: self.temperature,
            chunk_size: self.logprob_chunk_size,
            micro_batch_size: self.ppo_micro_batch_size,
        }
    }
}

/// `Ok` when `ok`, else [`Error::Config`] naming `key`, what it expects and the value found.
fn check(ok: bool, key: &'static str, expected: &'static str, found: impl ToString) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(key, expected, found))
    }
}

/// A count of at least one.
fn at_least_one(key: &'static str, v: usize) -> Result<()> {
    check(v >= 1, key, "expected a positive integer", v)
}

/// A finite value ≥ 0.
fn non_negative(key: &'static str, v: impl Into<f64> + ToString + Copy) -> Result<()> {
    let x: f64 = v.into();
    check(
        x >= 0.0 && x.is_finite(),
        key,
        "expected a finite value ≥ 0",
        v,
    )
}

/// A finite value > 0.
fn positive(key: &'static str, v: impl Into<f64> + ToString + Copy) -> Result<()> {
    let x: f64 = v.into();
    check(
        x > 0.0 && x.is_finite(),
        key,
        "expected a finite value > 0",
        v,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config documented in `docs/optim.md` parses to the defaults.
    const DOC_TOML: &str = r#"
adv_estimator = "grpo"
adv_epsilon = 1e-6
adv_unbiased_std = true
masked_in_group_stats = false
policy_loss = "vanilla"
clip_ratio_low = 0.2
clip_ratio_high = 0.28
# clip_ratio_c = 3.0
loss_agg_mode = "token-mean"
# loss_scale_factor = 8192
kl_loss_type = "k3"
kl_loss_coef = 0.0
entropy_coeff = 0.0
router_aux_loss_coef = 0.0
# ppo_mini_batch_size = 32
ppo_epochs = 1
ppo_micro_batch_size = 4
shuffle = false
seed = 42
lr = 1e-6
weight_decay = 0.01
betas = [0.9, 0.999]
eps = 1e-8
grad_clip = 1.0
lr_schedule = "constant"
warmup_steps = 0
min_lr_ratio = 0.0
# total_steps = 800
logprob_chunk_size = 512
logprob_keep_logits_mib = 256
activation_checkpointing = "none"
allreduce_bucket_mib = 25
zero_stage = 0
"#;

    #[test]
    fn documented_defaults_parse_and_validate() {
        let parsed: OptimConfig = toml::from_str(DOC_TOML).unwrap();
        assert_eq!(parsed, OptimConfig::default());
        parsed.validate().unwrap();
        let empty: OptimConfig = toml::from_str("").unwrap();
        assert_eq!(empty, OptimConfig::default());
    }

    #[test]
    fn every_enum_knob_round_trips_through_toml() {
        let mut config = OptimConfig::default();
        for adv in AdvEstimator::ALL {
            for agg in LossAggMode::ALL {
                for kl in KlLossType::ALL {
                    for loss in PolicyLoss::ALL {
                        for schedule in LrSchedule::ALL {
                            config.adv_estimator = adv;
                            config.loss_agg_mode = agg;
                            config.kl_loss_type = kl;
                            config.policy_loss = loss;
                            config.lr_schedule = schedule;
                            let text = toml::to_string(&config).unwrap();
                            assert_eq!(toml::from_str::<OptimConfig>(&text).unwrap(), config);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_keys_and_names_are_errors_listing_the_valid_ones() {
        let err = toml::from_str::<OptimConfig>("clip_ratio = 0.2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clip_ratio") && err.contains("clip_ratio_low"),
            "{err}"
        );
        let err = toml::from_str::<OptimConfig>("loss_agg_mode = \"mean\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("token-mean") && err.contains("seq-mean-token-sum-norm"),
            "{err}"
        );
        let err = toml::from_str::<OptimConfig>("adv_estimator = \"ppo\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("reinforce_pp_baseline"), "{err}");
    }

    #[test]
    fn validation_names_the_knob() {
        let bad = OptimConfig {
            clip_ratio_c: Some(0.5),
            ..OptimConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("`clip_ratio_c`") && err.contains("0.5"),
            "{err}"
        );
        let cosine = OptimConfig {
            lr_schedule: LrSchedule::Cosine,
            ..OptimConfig::default()
        };
        assert!(cosine
            .validate()
            .unwrap_err()
            .to_string()
            .contains("total_steps"));
        for bad in [
            OptimConfig {
                ppo_micro_batch_size: 0,
                ..OptimConfig::default()
            },
            OptimConfig {
                lr: f64::NAN,
                ..OptimConfig::default()
            },
            OptimConfig {
                betas: [0.9, 1.0],
                ..OptimConfig::default()
            },
            OptimConfig {
                temperature: 0.0,
                ..OptimConfig::default()
            },
            OptimConfig {
                clip_ratio_low: 1.0,
                ..OptimConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
