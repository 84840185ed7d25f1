//! `SamplingParams` and the per-row sampler: temperature, top-k, top-p, min-p, greedy, log-probs.
//!
//! Order of the filters, as HF transformers applies its logits warpers: temperature → top-k → top-p →
//! min-p. Top-p is taken over the distribution renormalised after top-k; min-p keeps tokens whose
//! probability is at least `min_p` times the most likely one's.
//!
//! **Log-prob convention.** The log-prob returned for a sampled token is `log_softmax(logits / T)` over
//! the *whole* vocabulary, before top-k/top-p/min-p truncation: exactly what a trainer recomputes with
//! `log_softmax(logits / T)`, so on-policy importance ratios are 1. Greedy decoding (`T = 0`) reports
//! `log_softmax(logits)`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How tokens are drawn and when a rollout stops. As a table (part of [`crate::RolloutConfig`]) it holds
/// the sampling knobs only: the stop ids, seed and stream offset are the caller's, per call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// Softmax temperature; 0 = greedy, else at least [`MIN_TEMPERATURE`]. Default 1.0 (the paper's
    /// rollouts).
    pub temperature: f32,
    /// Nucleus mass in (0, 1]; 1 = off. Default 1.0.
    pub top_p: f32,
    /// Keep the `top_k` most likely tokens; 0 = off. Default 0.
    pub top_k: usize,
    /// Keep tokens with probability ≥ `min_p · p_max`, in [0, 1); 0 = off. Default 0.
    pub min_p: f32,
    /// Most tokens generated per rollout (the paper's `L_R`); a rollout that reaches it finishes with
    /// [`Finish::Length`]. Default 8192.
    pub max_tokens: usize,
    /// Ids that end a rollout (included in the response). Default: none (callers add the tokenizer's).
    #[serde(skip)]
    pub stop_ids: Vec<u32>,
    /// Seed of the per-sequence random streams. Default 0.
    #[serde(skip)]
    pub seed: u64,
    /// Position of the first prompt among the streams: prompt `p` of a call samples from stream
    /// `(seed, first_prompt + p, s)`. A shard of a larger batch (one data-parallel worker's prompts)
    /// passes its offset and samples exactly what the whole batch would. Default 0.
    #[serde(skip)]
    pub first_prompt: usize,
}

/// The prompts of a batch of `prompts` that data-parallel worker `rank` of `world` samples: a
/// contiguous share, the shares differing by one prompt at most (a share may be empty). Sampling it
/// with [`SamplingParams::first_prompt`] = its start gives exactly the whole batch's samples.
pub fn shard_range(prompts: usize, world: usize, rank: usize) -> std::ops::Range<usize> {
    let start = |r: usize| r * prompts / world;
    start(rank)..start(rank + 1)
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            max_tokens: 8192,
            stop_ids: Vec::new(),
            seed: 0,
            first_prompt: 0,
        }
    }
}

/// Why a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finish {
    /// It emitted a stop id (the id is the last response token).
    Stop,
    /// It reached `max_tokens` without a stop id (cut at `L_R`).
    Length,
}

impl SamplingParams {
    /// Greedy decoding up to `max_tokens`.
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            max_tokens,
            ..Self::default()
        }
    }

    /// Checks every parameter is in range.
    ///
    /// # Errors
    /// The first parameter out of range, naming it.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, expected, found: String| {
            Err(Error::InvalidParam {
                name,
                expected,
                found,
            })
        };
        let t = self.temperature;
        if !(t.is_finite() && (t == 0.0 || t >= MIN_TEMPERATURE)) {
            return bad(
                "temperature",
                "0 (greedy) or a finite value ≥ 1e-6",
                t.to_string(),
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", "a value in (0, 1]", self.top_p.to_string());
        }
        if !(self.min_p >= 0.0 && self.min_p < 1.0) {
            return bad("min_p", "a value in [0, 1)", self.min_p.to_string());
        }
        if self.max_tokens == 0 {
            return bad("max_tokens", "a positive integer", "0".to_string());
        }
        Ok(())
    }

    /// Whether `token` ends a rollout.
    pub fn is_stop(&self, token: u32) -> bool {
        self.stop_ids.contains(&token)
    }
}

/// The smallest temperature other than 0 (greedy): logits are divided by it in f32, and below
/// it `logit / T` overflows to infinity for ordinary logits (`1e-45` made every row "non-finite").
pub const MIN_TEMPERATURE: f32 = 1e-6;

/// A sampled token and its log-prob (see the module docs for the convention).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The token id.
    pub token: u32,
    /// `log_softmax(logits / T)[token]` over the full vocabulary (`T = 1` when greedy).
    pub logprob: f32,
}

/// Draws one token from a row of logits. Returns `None` when the logits hold NaN or are all −∞.
pub fn sample(logits: &[f32], params: &SamplingParams, rng: &mut ChaCha8Rng) -> Option<Sample> {
    if logits.iter().any(|v| v.is_nan()) {
        return None;
    }
    let temperature = if params.temperature == 0.0 {
        1.0
    } else {
        params.temperature
    };
    let inv_t = 1.0 / temperature;
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * inv_t;
    if !max.is_finite() {
        return None;
    }
    let log_z = max
        + logits
            .iter()
            .map(|&v| (v * inv_t - max).exp())
            .sum::<f32>()
            .ln();
    let logprob = |token: usize| logits[token] * inv_t - log_z;
    if params.temperature == 0.0 {
        let token = argmax(logits);
        return Some(Sample {
            token: token as u32,
            logprob: logprob(token),
        });
    }
    let kept = truncated_support(logits, params, inv_t, max);
    // Draw from the kept tokens with weights exp(s − max), sorted by descending score.
    let total: f32 = kept.iter().map(|&(_, w)| w).sum();
    let mut u = rng.random::<f32>() * total;
    let mut token = kept.last().map(|&(t, _)| t)?;
    for &(t, w) in &kept {
        if u < w {
            token = t;
            break;
        }
        u -= w;
    }
    Some(Sample {
        token: token as u32,
        logprob: logprob(token),
    })
}

/// The tokens surviving top-k → top-p → min-p, with unnormalised weights `exp(l/T − max)`, sorted by
/// descending weight.
pub fn truncated_support(
    logits: &[f32],
    params: &SamplingParams,
    inv_t: f32,
    max: f32,
) -> Vec<(usize, f32)> {
    let mut candidates: Vec<usize> = (0..logits.len()).collect();
    let by_score_desc = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]);
    if params.top_k > 0 && params.top_k < candidates.len() {
        candidates.select_nth_unstable_by(params.top_k - 1, by_score_desc);
        candidates.truncate(params.top_k);
    }
    if params.top_p < 1.0 || params.min_p > 0.0 || params.top_k > 0 {
        candidates.sort_unstable_by(by_score_desc);
    }
    let mut kept: Vec<(usize, f32)> = candidates
        .into_iter()
        .map(|t| (t, (logits[t] * inv_t - max).exp()))
        .filter(|&(_, w)| w > 0.0)
        .collect();
    if params.top_p < 1.0 {
        let total: f32 = kept.iter().map(|&(_, w)| w).sum();
        let mut mass = 0.0;
        let mut keep = kept.len();
        for (i, &(_, w)) in kept.iter().enumerate() {
            mass += w / total;
            if mass >= params.top_p {
                keep = i + 1;
                break;
            }
        }
        kept.truncate(keep.max(1));
    }
    if params.min_p > 0.0 {
        // p_i / p_max = w_i / w_max, independent of normalisation.
        let w_max = kept.first().map_or(0.0, |&(_, w)| w);
        let threshold = params.min_p * w_max;
        kept.retain(|&(_, w)| w >= threshold);
    }
    kept
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_contiguous_cover_every_prompt_and_differ_by_one_at_most() {
        for prompts in 0..12 {
            for world in 1..6 {
                let shards: Vec<_> = (0..world).map(|r| shard_range(prompts, world, r)).collect();
                assert_eq!(shards[0].start, 0);
                assert_eq!(shards[world - 1].end, prompts);
                for pair in shards.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                let (min, max) = shards.iter().fold((usize::MAX, 0), |(lo, hi), s| {
                    (lo.min(s.len()), hi.max(s.len()))
                });
                assert!(max - min <= 1, "{prompts} over {world}: {shards:?}");
            }
        }
    }
    use rand::SeedableRng;

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    #[test]
    fn validation_names_the_parameter() {
        for (params, name) in [
            (
                SamplingParams {
                    temperature: -1.0,
                    ..Default::default()
                },
                "temperature",
            ),
            // Issue 32: `1e-45` passed and every row's logits became non-finite, blamed on the model.
            (
                SamplingParams {
                    temperature: 1e-45,
                    ..Default::default()
                },
                "temperature",
            ),
            (
                SamplingParams {
                    top_p: 0.0,
                    ..Default::default()
                },
                "top_p",
            ),
            (
                SamplingParams {
                    min_p: 1.0,
                    ..Default::default()
                },
                "min_p",
            ),
            (
                SamplingParams {
                    max_tokens: 0,
                    ..Default::default()
                },
                "max_tokens",
            ),
        ] {
            let err = params.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
        SamplingParams::default().validate().unwrap();
    }

    #[test]
    fn greedy_takes_argmax_with_untempered_logprob() {
        let logits = [0.0, 2.0, 1.0];
        let s = sample(&logits, &SamplingParams::greedy(4), &mut rng()).unwrap();
        assert_eq!(s.token, 1);
        // log_softmax: 2 − ln(e⁰ + e² + e¹) = 2 − 2.40761 = −0.40761.
        assert!((s.logprob + 0.407_606).abs() < 1e-5);
    }

    #[test]
    fn filters_follow_top_k_then_top_p_then_min_p() {
        // Probabilities ∝ [8, 4, 2, 1, 1] (logits ln of those).
        let logits: Vec<f32> = [8f32, 4.0, 2.0, 1.0, 1.0].iter().map(|w| w.ln()).collect();
        let support = |params: SamplingParams| -> Vec<usize> {
            let max = 8f32.ln();
            truncated_support(&logits, &params, 1.0, max)
                .into_iter()
                .map(|(t, _)| t)
                .collect()
        };
        // top-k 3 keeps {0, 1, 2}.
        assert_eq!(
            support(SamplingParams {
                top_k: 3,
                ..Default::default()
            }),
            [0, 1, 2]
        );
        // top-p 0.75 over [8,4,2,1,1]/16: cumulative 0.5, 0.75 → keeps 2 tokens.
        assert_eq!(
            support(SamplingParams {
                top_p: 0.75,
                ..Default::default()
            }),
            [0, 1]
        );
        // top-k 3 then top-p 0.6 over renormalised [8,4,2]/14: 0.571, 0.857 → 2 tokens.
        assert_eq!(
            support(SamplingParams {
                top_k: 3,
                top_p: 0.6,
                ..Default::default()
            }),
            [0, 1]
        );
        // min-p 0.2: keep p ≥ 0.2·8/16, i.e. weights ≥ 1.6 → {0, 1, 2}.
        assert_eq!(
            support(SamplingParams {
                min_p: 0.2,
                ..Default::default()
            }),
            [0, 1, 2]
        );
    }

    #[test]
    fn non_finite_logits_are_reported() {
        assert!(sample(&[f32::NAN, 1.0], &SamplingParams::default(), &mut rng()).is_none());
        assert!(sample(
            &[f32::NEG_INFINITY; 3],
            &SamplingParams::default(),
            &mut rng()
        )
        .is_none());
    }
}
