//! The actor objective of one micro-batch: policy surrogate + KL penalty − entropy bonus, aggregated
//! with global weights.
//!
//! `L = Σ_t w_t · (l^pg_t + β·kl_t − α·H_t)` with `w_t` from [`crate::agg`] (normalised by the whole
//! mini-batch's counts), `β = kl_loss_coef`, `α = entropy_coeff` (verl's actor loss). Summing the
//! partial losses of a mini-batch's micro-batches gives the mini-batch loss, so accumulating their
//! gradients gives the mini-batch gradient whatever the split.

use burn::prelude::*;

use crate::kl::KlLossType;
use crate::policy_loss::{
    clipped_surrogate, gspo_log_ratio, gspo_shift, token_log_ratio, ClipRange, PolicyLoss,
};

/// Host-side data of the response tokens of one micro-batch, sequence-major (the tokens of the first
/// sequence, then the second, …). Only unmasked rollouts with at least one response token appear.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenBatch {
    /// Response length of each sequence (all > 0).
    pub lengths: Vec<usize>,
    /// Rollout-time log-probs `log π_old(y_t)`, `[n_tok]`.
    pub old_logprobs: Vec<f32>,
    /// The sequence's advantage repeated over its tokens, `[n_tok]`.
    pub advantages: Vec<f32>,
    /// Reference-policy log-probs, `[n_tok]`, when a KL is computed.
    pub ref_logprobs: Option<Vec<f32>>,
    /// Aggregation weight `w_t` of every token, `[n_tok]`.
    pub weights: Vec<f32>,
}

impl TokenBatch {
    /// Tokens in the micro-batch.
    pub fn num_tokens(&self) -> usize {
        self.old_logprobs.len()
    }
}

/// The loss terms and their settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossSettings {
    /// Token or sequence importance ratio.
    pub policy_loss: PolicyLoss,
    /// Clip range.
    pub clip: ClipRange,
    /// KL estimator.
    pub kl_type: KlLossType,
    /// `β`; 0 leaves the KL out of the loss (it is still reported when reference log-probs are given).
    pub kl_coef: f32,
    /// `α`, the entropy bonus.
    pub entropy_coeff: f32,
}

/// Partial sums of one micro-batch; summed over micro-batches they give the mini-batch's values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ObjectiveSums {
    /// `Σ w (l^pg + β·kl − α·H)`: the loss that is back-propagated.
    pub loss: f64,
    /// `Σ w l^pg` (`actor/pg_loss`).
    pub pg_loss: f64,
    /// `Σ w kl` (`actor/kl_loss`), when reference log-probs are given.
    pub kl_loss: Option<f64>,
    /// `Σ w H`: the aggregated entropy that enters the loss.
    pub entropy_loss: f64,
    /// `Σ H` over tokens (`actor/entropy` is this over the token count).
    pub entropy_sum: f64,
    /// Tokens where the clipped branch is active.
    pub clipped: f64,
    /// Tokens where the dual-clip bound is active.
    pub clipped_lower: f64,
    /// `Σ (old − logp)` over tokens (`actor/ppo_kl` is this over the token count).
    pub ppo_kl_sum: f64,
    /// Tokens.
    pub tokens: f64,
    /// MoE policies: the router load-balancing loss, each micro-batch's weighted by its share of the
    /// mini-batch (`actor/router_aux_loss`); `None` for dense policies.
    pub router_aux: Option<f64>,
}

impl ObjectiveSums {
    /// Adds another micro-batch's sums.
    pub fn add(&mut self, other: &ObjectiveSums) {
        self.loss += other.loss;
        self.pg_loss += other.pg_loss;
        self.kl_loss = match (self.kl_loss, other.kl_loss) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        self.entropy_loss += other.entropy_loss;
        self.entropy_sum += other.entropy_sum;
        self.clipped += other.clipped;
        self.clipped_lower += other.clipped_lower;
        self.ppo_kl_sum += other.ppo_kl_sum;
        self.tokens += other.tokens;
        self.router_aux = match (self.router_aux, other.router_aux) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    }
}

/// The objective of one micro-batch from the current policy's per-token log-probs and entropies.
/// Returns the loss to back-propagate (`[1]`) and its partial sums (one device→host transfer).
///
/// # Shapes
/// - `logp`, `entropy`: `[n_tok]`, in the order of `batch`
pub fn objective<B: Backend>(
    logp: Tensor<B, 1>,
    entropy: Tensor<B, 1>,
    batch: &TokenBatch,
    settings: &LossSettings,
) -> (Tensor<B, 1>, ObjectiveSums) {
    let device = logp.device();
    let n = batch.num_tokens();
    let upload =
        |values: &[f32]| Tensor::<B, 1>::from_data(TensorData::new(values.to_vec(), [n]), &device);
    let old = upload(&batch.old_logprobs);
    let weights = upload(&batch.weights);

    // 1. Importance ratio (log space): token-level, or GSPO's sequence-level with per-token gradient.
    let log_ratio = match settings.policy_loss {
        PolicyLoss::Vanilla => token_log_ratio(logp.clone(), old.clone()),
        PolicyLoss::Gspo => {
            let host: Vec<f32> = logp
                .clone()
                .detach()
                .into_data()
                .convert::<f32>()
                .into_vec()
                .expect("a float tensor converted to f32 yields f32 values");
            let shift = gspo_shift(&host, &batch.old_logprobs, &batch.lengths);
            gspo_log_ratio(logp.clone(), upload(&shift))
        }
    };

    // 2. Clipped surrogate per token.
    let surrogate = clipped_surrogate(log_ratio, upload(&batch.advantages), &settings.clip);
    let pg_loss = (surrogate.loss.clone() * weights.clone()).sum();

    // 3. KL to the reference, per token.
    let kl_loss = batch.ref_logprobs.as_ref().map(|reference| {
        let kl = settings.kl_type.per_token(logp.clone(), upload(reference));
        (kl * weights.clone()).sum()
    });

    // 4. Entropy bonus.
    let entropy_loss = (entropy.clone() * weights).sum();

    // 5. Total: pg + β·kl − α·H.
    let mut loss = pg_loss.clone() - entropy_loss.clone().mul_scalar(settings.entropy_coeff);
    if let (Some(kl), true) = (&kl_loss, settings.kl_coef > 0.0) {
        loss = loss + kl.clone().mul_scalar(settings.kl_coef);
    }

    // 6. Metrics, fetched in one transfer.
    let ppo_kl = (old - logp.detach()).sum();
    let zero = || Tensor::<B, 1>::zeros([1], &device);
    let stats = Tensor::cat(
        vec![
            loss.clone().detach(),
            pg_loss.detach(),
            kl_loss.clone().map_or_else(zero, |kl| kl.detach()),
            entropy_loss.detach(),
            entropy.detach().sum(),
            surrogate.clipped.sum(),
            surrogate.clipped_lower.sum(),
            ppo_kl,
        ],
        0,
    )
    .into_data()
    .convert::<f64>()
    .into_vec::<f64>()
    .expect("a float tensor converted to f64 yields f64 values");
    let sums = ObjectiveSums {
        loss: stats[0],
        pg_loss: stats[1],
        kl_loss: kl_loss.map(|_| stats[2]),
        entropy_loss: stats[3],
        entropy_sum: stats[4],
        clipped: stats[5],
        clipped_lower: stats[6],
        ppo_kl_sum: stats[7],
        tokens: n as f64,
        router_aux: None,
    };
    (loss, sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::{AggCounts, LossAggMode};
    use crate::TestBackend;

    fn batch() -> TokenBatch {
        let lengths = vec![2, 1];
        let counts = AggCounts::from_lengths(&lengths, None);
        TokenBatch {
            weights: LossAggMode::TokenMean.token_weights(&lengths, &counts),
            lengths,
            old_logprobs: vec![-1.0, -2.0, -0.5],
            advantages: vec![1.0, 1.0, -1.0],
            ref_logprobs: Some(vec![-1.5, -2.0, -0.25]),
        }
    }

    fn settings(kl_coef: f32, entropy_coeff: f32) -> LossSettings {
        LossSettings {
            policy_loss: PolicyLoss::Vanilla,
            clip: ClipRange {
                low: 0.2,
                high: 0.28,
                dual_c: None,
            },
            kl_type: KlLossType::K1,
            kl_coef,
            entropy_coeff,
        }
    }

    #[test]
    fn on_policy_loss_is_minus_the_mean_advantage_and_terms_add_up() {
        let device = Default::default();
        let logp = || Tensor::<TestBackend, 1>::from_floats([-1.0, -2.0, -0.5], &device);
        let entropy = || Tensor::<TestBackend, 1>::from_floats([0.5, 1.0, 1.5], &device);
        // On-policy: ρ = 1, pg = −A, token mean = −(1 + 1 − 1)/3.
        let (_, plain) = objective(logp(), entropy(), &batch(), &settings(0.0, 0.0));
        assert!(
            (plain.pg_loss + 1.0 / 3.0).abs() < 1e-6 && (plain.loss - plain.pg_loss).abs() < 1e-7
        );
        // KL is reported with coefficient 0 but enters the loss only with a positive one.
        let kl = plain.kl_loss.unwrap();
        assert!((kl - (0.5 + 0.0 - 0.25) / 3.0).abs() < 1e-6, "{kl}");
        let (_, with) = objective(logp(), entropy(), &batch(), &settings(0.1, 0.2));
        assert!(
            (with.loss - (with.pg_loss + 0.1 * kl - 0.2 * 1.0)).abs() < 1e-6,
            "{with:?}"
        );
        assert_eq!(
            (plain.tokens, plain.clipped, plain.ppo_kl_sum),
            (3.0, 0.0, 0.0)
        );
    }
}
