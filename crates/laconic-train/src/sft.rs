//! Supervised fine-tuning: cross-entropy on response tokens, the warm start before RL.
//!
//! Loss per batch: `−(1/N) Σ log p(y_t | y_<t, prompt)` over the `N` response tokens of the batch
//! (token-mean), through the memory-bounded LM-head op of laconic-optim; AdamW with PyTorch defaults,
//! global gradient clipping, linear warm-up then constant learning rate.

use burn::optim::GradientsParams;
use burn::prelude::*;
use laconic_model::CausalLm;
use laconic_optim::clip::clip_grad_norm;
use laconic_optim::head::{head_logprobs_grad, HeadOptions};
use laconic_optim::logprob::{head_weight, response_hidden, PackedSequences};
use laconic_optim::{AdamW, AdamWSettings, LogprobBackend};

use crate::config::SftConfig;
use crate::error::{Error, Result};

/// One supervised example: the prompt is context, the response is learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftExample {
    /// Context ids (no loss).
    pub prompt_ids: Vec<u32>,
    /// Target ids (loss on each).
    pub response_ids: Vec<u32>,
}

/// What one SFT step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SftStep {
    /// Step index (from 0).
    pub step: u64,
    /// Mean cross-entropy per response token.
    pub loss: f64,
    /// Pre-clip global gradient norm.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// An SFT optimizer: AdamW state and the step counter.
pub struct SftTrainer<B: LogprobBackend> {
    config: SftConfig,
    optimizer: AdamW<B::InnerBackend>,
    step: u64,
}

/// Chunk of response tokens whose logits exist at once in the LM-head op.
const LOGIT_CHUNK: usize = 1024;

/// The LM-head op keeps a batch's logits for its backward up to this size (as the RL updater's
/// default `logprob_keep_logits_mib`); larger batches recompute them chunk by chunk.
const KEEP_LOGITS_BYTES: usize = 256 << 20;

impl<B: LogprobBackend> SftTrainer<B> {
    /// A trainer with fresh AdamW moments.
    pub fn new(config: SftConfig) -> Self {
        let settings = AdamWSettings {
            weight_decay: config.weight_decay,
            ..AdamWSettings::default()
        };
        Self {
            config,
            optimizer: AdamW::new(settings),
            step: 0,
        }
    }

    /// The learning rate of step `step`: linear warm-up to `lr`, then constant.
    pub fn lr_at(&self, step: u64) -> f64 {
        let warmup = self.config.warmup_steps;
        if step < warmup {
            self.config.lr * (step + 1) as f64 / warmup as f64
        } else {
            self.config.lr
        }
    }

    /// One optimizer step on `batch`; returns the updated model and what the step measured.
    ///
    /// # Errors
    /// Empty responses, a model that rejects the batch, or a non-finite loss or gradient (the model is
    /// not updated then).
    pub fn step(
        &mut self,
        model: CausalLm<B>,
        batch: &[SftExample],
    ) -> Result<(CausalLm<B>, SftStep)> {
        let device = model.model.embed_tokens.weight.device();
        let pairs: Vec<(&[u32], &[u32])> = batch
            .iter()
            .map(|e| (e.prompt_ids.as_slice(), e.response_ids.as_slice()))
            .collect();
        let packed = PackedSequences::new(&pairs)?;
        let hidden = response_hidden(&model, &packed, &device)?;
        let targets = packed.targets_tensor::<B>(&device);
        let options = HeadOptions {
            temperature: 1.0,
            chunk_size: LOGIT_CHUNK,
            entropy_grad: false,
            keep_logits_bytes: KEEP_LOGITS_BYTES,
        };
        let (logp, _entropy) = head_logprobs_grad(hidden, head_weight(&model), targets, options);
        let loss = logp.mean().neg();
        let loss_value: f64 = loss.clone().into_scalar().elem();
        if !loss_value.is_finite() {
            return Err(Error::NonFinite {
                step: self.step,
                message: format!("SFT loss is {loss_value}"),
            });
        }
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        let grad_norm = clip_grad_norm(&model, &mut grads, self.config.grad_clip);
        if !grad_norm.is_finite() {
            return Err(Error::NonFinite {
                step: self.step,
                message: format!("SFT gradient norm is {grad_norm}"),
            });
        }
        let lr = self.lr_at(self.step);
        let model = self.optimizer.step(model, grads, lr);
        let record = SftStep {
            step: self.step,
            loss: loss_value,
            grad_norm,
            lr,
        };
        self.step += 1;
        Ok((model, record))
    }
}

/// Mean cross-entropy per response token of `batch` under `model` (no gradient).
///
/// # Errors
/// When the model rejects the batch.
pub fn sft_loss<B: Backend>(model: &CausalLm<B>, batch: &[SftExample]) -> Result<f64> {
    let device = model.model.embed_tokens.weight.device();
    let pairs: Vec<(&[u32], &[u32])> = batch
        .iter()
        .map(|e| (e.prompt_ids.as_slice(), e.response_ids.as_slice()))
        .collect();
    let packed = PackedSequences::new(&pairs)?;
    let hidden = response_hidden(model, &packed, &device)?;
    let targets = packed.targets_tensor::<B>(&device);
    let (logp, _) = laconic_optim::logprob::head_logprobs(
        hidden,
        head_weight(model),
        targets,
        1.0,
        LOGIT_CHUNK,
    );
    Ok(-logp.mean().into_scalar().elem::<f64>())
}

/// Where SFT batches come from.
pub enum SftData {
    /// Fresh verbose digit-sum traces each step (seeded by `(seed, step)`).
    DigitSum {
        /// Task knobs (digits, re-checks).
        config: crate::task::DigitSumConfig,
        /// Seed.
        seed: u64,
    },
    /// A fixed list, cycled in order.
    Examples(Vec<SftExample>),
}

impl SftData {
    /// The examples of step `step`.
    ///
    /// # Errors
    /// When the tokenizer fails.
    pub fn batch(
        &self,
        step: u64,
        size: usize,
        tokenizer: &laconic_model::Tokenizer,
    ) -> Result<Vec<SftExample>> {
        match self {
            SftData::DigitSum { config, seed } => {
                use rand::{Rng, SeedableRng};
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                    laconic_model::seed::stream_seed(*seed, step),
                );
                (0..size)
                    .map(|_| {
                        let problem = crate::task::Problem::sample(config, &mut rng);
                        let rechecks = rng.random_range(0..=config.max_rechecks);
                        Ok(SftExample {
                            prompt_ids: tokenizer.encode(&problem.prompt())?,
                            response_ids: tokenizer.encode(&problem.trace(rechecks))?,
                        })
                    })
                    .collect()
            }
            SftData::Examples(all) => {
                if all.is_empty() {
                    return Ok(Vec::new());
                }
                let start = (step as usize * size) % all.len();
                Ok((0..size)
                    .map(|i| all[(start + i) % all.len()].clone())
                    .collect())
            }
        }
    }

    /// Reads a JSONL file of `{"prompt": …, "response": …}` objects (text, tokenised as written).
    ///
    /// # Errors
    /// An unreadable file, or a line that is not such an object (naming the line).
    pub fn from_jsonl(
        path: &std::path::Path,
        tokenizer: &laconic_model::Tokenizer,
    ) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Line {
            prompt: String,
            response: String,
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut examples = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let fail = |message: String| Error::Data {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let parsed: Line = serde_json::from_str(line).map_err(|e| fail(e.to_string()))?;
            let response_ids = tokenizer.encode(&parsed.response)?;
            if response_ids.is_empty() {
                return Err(fail("`response` is empty".into()));
            }
            examples.push(SftExample {
                prompt_ids: tokenizer.encode(&parsed.prompt)?,
                response_ids,
            });
        }
        Ok(SftData::Examples(examples))
    }
}
