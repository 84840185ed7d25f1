//! Per-response-token log-probs and entropies of a model, recomputed from token ids.
//!
//! **Temperature.** A rollout sampled at temperature `τ` draws from `softmax(z/τ)`, and the rollout
//! engine returns `log softmax(z/τ)[y]`. Recomputation uses the same convention,
//! `log_softmax(logits / temperature)`, so the ratio `π_θ/π_old` compares like with like (verl does
//! the same). Top-p/top-k truncation is not part of the distribution scored here.
//!
//! **Layout.** A sequence is `prompt ++ response`; the model reads it right-padded, without its last
//! token, and the response token `y_k` is scored at position `|prompt| − 1 + k`. Only those rows of
//! the final hidden states are gathered (`[n_tok, d]`, prompt and padding rows never reach the LM
//! head), and the head + log-softmax run over chunks of `chunk_size` tokens, so at most one
//! `[chunk_size, V]` block of logits exists at a time.

use burn::prelude::*;
use laconic_kernels::logprob_entropy;
use laconic_model::{ActivationCheckpointing, AttentionLayout, CausalLm, RouterAux};

use crate::batch::{UpdateBatch, UpdateSequence};
use crate::error::{Error, Result};

/// How log-probs are recomputed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogprobOptions {
    /// Sampling temperature `τ` of the rollouts: log-probs are `log_softmax(logits / τ)`.
    pub temperature: f32,
    /// Tokens per block of the LM head + log-softmax.
    pub chunk_size: usize,
    /// Sequences per forward pass.
    pub micro_batch_size: usize,
}

impl Default for LogprobOptions {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            chunk_size: 512,
            micro_batch_size: 8,
        }
    }
}

/// Log-probs and entropies of one sequence's response tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SequenceLogprobs {
    /// `log π(y_k | x, y_<k)` at the chosen temperature, one per response token.
    pub logprobs: Vec<f32>,
    /// Entropy of `π(· | x, y_<k)` at the chosen temperature, one per response token.
    pub entropy: Vec<f32>,
}

/// Sequences packed for one forward pass: right-padded inputs and where each response token is read.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedSequences {
    /// Input ids `[b, width]`, row-major, padded with 0.
    pub tokens: Vec<i64>,
    /// Rows.
    pub batch: usize,
    /// Columns: the longest `|prompt| + |response| − 1`.
    pub width: usize,
    /// Real tokens of each row.
    pub input_lengths: Vec<usize>,
    /// Response length of each row.
    pub response_lengths: Vec<usize>,
    /// For every response token (sequence-major), its row of the flattened `[b·width, d]` hidden states.
    pub rows: Vec<i64>,
    /// For every response token, its id (the target of the log-prob).
    pub targets: Vec<i64>,
}

impl PackedSequences {
    /// Packs `(prompt_ids, response_ids)` pairs.
    ///
    /// # Errors
    /// When a prompt is empty (the first response token would have no position to be predicted from)
    /// or a response is empty (it has nothing to score; leave it out).
    pub fn new(sequences: &[(&[u32], &[u32])]) -> Result<Self> {
        for (i, (prompt, response)) in sequences.iter().enumerate() {
            if prompt.is_empty() || response.is_empty() {
                return Err(Error::Sequence {
                    index: i,
                    message: format!(
                        "needs a non-empty prompt and response to be scored, found {} prompt and {} response tokens",
                        prompt.len(),
                        response.len()
                    ),
                });
            }
        }
        let input_lengths: Vec<usize> = sequences
            .iter()
            .map(|(p, r)| p.len() + r.len() - 1)
            .collect();
        let width = input_lengths.iter().copied().max().unwrap_or(0);
        let batch = sequences.len();
        let mut tokens = vec![0i64; batch * width];
        let (mut rows, mut targets) = (Vec::new(), Vec::new());
        for (b, (prompt, response)) in sequences.iter().enumerate() {
            let row = &mut tokens[b * width..b * width + input_lengths[b]];
            for (slot, &id) in row.iter_mut().zip(prompt.iter().chain(response.iter())) {
                *slot = i64::from(id);
            }
            for (k, &id) in response.iter().enumerate() {
                rows.push((b * width + prompt.len() - 1 + k) as i64);
                targets.push(i64::from(id));
            }
        }
        Ok(Self {
            tokens,
            batch,
            width,
            input_lengths,
            response_lengths: sequences.iter().map(|(_, r)| r.len()).collect(),
            rows,
            targets,
        })
    }

    /// Response tokens in the pack.
    pub fn num_tokens(&self) -> usize {
        self.targets.len()
    }

    /// The targets as a tensor `[n_tok]`.
    pub fn targets_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 1, Int> {
        Tensor::from_data(
            TensorData::new(self.targets.clone(), [self.num_tokens()]),
            device,
        )
    }
}

/// Final-norm hidden states at the positions that predict the response tokens.
///
/// # Shapes
/// - returns: `[n_tok, d]`, sequence-major
///
/// # Errors
/// When the model rejects the layout.
pub fn response_hidden<B: Backend>(
    model: &CausalLm<B>,
    packed: &PackedSequences,
    device: &B::Device,
) -> Result<Tensor<B, 2>> {
    Ok(response_hidden_with_aux(model, packed, ActivationCheckpointing::None, device)?.0)
}

/// [`response_hidden`] and, for MoE policies, the routers' statistics over the packed batch's real
/// tokens (for the load-balancing loss); under autodiff, `checkpointing` says what the decoder keeps
/// of each layer for the backward.
///
/// # Errors
/// When the model rejects the layout.
pub fn response_hidden_with_aux<B: Backend>(
    model: &CausalLm<B>,
    packed: &PackedSequences,
    checkpointing: ActivationCheckpointing,
    device: &B::Device,
) -> Result<(Tensor<B, 2>, Option<RouterAux<B>>)> {
    let tokens = Tensor::<B, 2, Int>::from_data(
        TensorData::new(packed.tokens.clone(), [packed.batch, packed.width]),
        device,
    );
    let layout = AttentionLayout::right_padded(&packed.input_lengths, packed.width)?;
    // [b, width, d]
    let (hidden, aux) = model.forward_hidden_checkpointed(tokens, &layout, checkpointing)?;
    let d = hidden.dims()[2];
    // [b·width, d] → [n_tok, d]
    let rows = Tensor::<B, 1, Int>::from_data(
        TensorData::new(packed.rows.clone(), [packed.num_tokens()]),
        device,
    );
    let hidden = hidden
        .reshape([packed.batch * packed.width, d])
        .select(0, rows);
    Ok((hidden, aux))
}

/// Log-probs and entropies from one block of logits: `lp = log_softmax(z/τ)`, `logp = lp[y]`,
/// `H = −Σ exp(lp)·lp`. Differentiable with plain autodiff (keeps the `[n, V]` block for backward).
///
/// # Shapes
/// - `logits`: `[n, V]`, `targets`: `[n]`; returns two `[n]`
pub fn logprobs_from_logits<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f32,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    split_rows(logprob_entropy(scale(logits, temperature), targets))
}

/// `[n, 2]` rows of `[log p, H]` as the two `[n]` columns.
fn split_rows<B: Backend>(rows: Tensor<B, 2>) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let n = rows.dims()[0];
    let logp = rows.clone().slice([0..n, 0..1]).reshape([n]);
    (logp, rows.slice([0..n, 1..2]).reshape([n]))
}

/// `x / τ`, skipped for `τ = 1`.
pub(crate) fn scale<B: Backend, const D: usize>(x: Tensor<B, D>, temperature: f32) -> Tensor<B, D> {
    if temperature == 1.0 {
        x
    } else {
        x.div_scalar(temperature)
    }
}

/// Log-probs and entropies through the LM head `W` (`[V, d]`), chunk by chunk: for each block of
/// `chunk_size` rows, `z = (h/τ)·Wᵀ` (the temperature is applied to the `[n, d]` hidden states, not to
/// the `[n, V]` logits), then [`logprobs_from_logits`]. The no-grad path (old/ref log-probs) and the
/// forward of [`crate::head`]'s autodiff op.
///
/// # Shapes
/// - `hidden`: `[n, d]`, `weight`: `[V, d]`, `targets`: `[n]`; returns two `[n]`
pub fn head_logprobs<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f32,
    chunk_size: usize,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let (logp, entropy, _) =
        head_logprobs_keeping(hidden, weight, targets, temperature, chunk_size, false);
    (logp, entropy)
}

/// [`head_logprobs`], also returning each chunk's logits `z = (h/τ)·Wᵀ` (`[c, V]`) when `keep_logits`
/// (empty otherwise), for a backward that reuses them instead of recomputing.
pub(crate) fn head_logprobs_keeping<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f32,
    chunk_size: usize,
    keep_logits: bool,
) -> (Tensor<B, 1>, Tensor<B, 1>, Vec<Tensor<B, 2>>) {
    let [n, d] = hidden.dims();
    let hidden = scale(hidden, temperature);
    let weight_t = weight.transpose();
    let (mut logps, mut entropies, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    for start in (0..n).step_by(chunk_size.max(1)) {
        let end = (start + chunk_size.max(1)).min(n);
        // [c, d] · [d, V] → [c, V]: the only vocabulary-sized block alive (unless kept).
        let logits = hidden
            .clone()
            .slice([start..end, 0..d])
            .matmul(weight_t.clone());
        if keep_logits {
            kept.push(logits.clone());
        }
        let rows = targets.clone().narrow(0, start, end - start);
        let (logp, entropy) = split_rows(logprob_entropy(logits, rows));
        logps.push(logp);
        entropies.push(entropy);
    }
    if logps.is_empty() {
        let device = hidden.device();
        return (
            Tensor::zeros([0], &device),
            Tensor::zeros([0], &device),
            kept,
        );
    }
    (Tensor::cat(logps, 0), Tensor::cat(entropies, 0), kept)
}

/// Recomputes response log-probs and entropies without gradients (old or reference log-probs).
/// Pass an inference model (`model.valid()` of a training model, or a model on a plain backend).
///
/// # Errors
/// When a sequence has an empty prompt, the LM head has a bias, or the model rejects the input.
pub fn compute_logprobs<B: Backend>(
    model: &CausalLm<B>,
    sequences: &[(&[u32], &[u32])],
    options: &LogprobOptions,
) -> Result<Vec<SequenceLogprobs>> {
    check_head(model)?;
    let weight = head_weight(model);
    let device = weight.device();
    let mut out = vec![SequenceLogprobs::default(); sequences.len()];
    let scored: Vec<usize> = (0..sequences.len())
        .filter(|&i| !sequences[i].1.is_empty())
        .collect();
    for chunk in scored.chunks(options.micro_batch_size.max(1)) {
        let pairs: Vec<(&[u32], &[u32])> = chunk.iter().map(|&i| sequences[i]).collect();
        let packed = PackedSequences::new(&pairs).map_err(|e| match e {
            Error::Sequence { index, message } => Error::Sequence {
                index: chunk[index],
                message,
            },
            other => other,
        })?;
        let hidden = response_hidden(model, &packed, &device)?;
        let (logp, entropy) = head_logprobs(
            hidden,
            weight.clone(),
            packed.targets_tensor(&device),
            options.temperature,
            options.chunk_size,
        );
        let (logp, entropy) = (to_vec(logp), to_vec(entropy));
        let mut start = 0;
        for (&i, &len) in chunk.iter().zip(&packed.response_lengths) {
            out[i] = SequenceLogprobs {
                logprobs: logp[start..start + len].to_vec(),
                entropy: entropy[start..start + len].to_vec(),
            };
            start += len;
        }
    }
    Ok(out)
}

/// Rejects an LM head with a bias: the chunked head computes `h·Wᵀ` only (Qwen heads have none).
pub(crate) fn check_head<B: Backend>(model: &CausalLm<B>) -> Result<()> {
    if model
        .lm_head
        .as_ref()
        .is_some_and(|head| head.bias.is_some())
    {
        return Err(Error::Input(
            "an LM head with a bias is not supported by the chunked log-prob head".into(),
        ));
    }
    Ok(())
}

/// The `[V, d]` matrix the logits are computed with (the embedding when tied), read from the model's
/// own parameter: `CausalLm::lm_head_weight` clones the `Param`, and a clone of a lazily initialised
/// parameter that was never read initialises independently (burn 0.21), i.e. differs from the model's.
pub fn head_weight<B: Backend>(model: &CausalLm<B>) -> Tensor<B, 2> {
    match &model.lm_head {
        Some(head) => head.weight.val(),
        None => model.model.embed_tokens.weight.val(),
    }
}

/// A float tensor's values as `f32` on the host.
pub(crate) fn to_vec<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("a float tensor converted to f32 yields f32 values")
}

impl UpdateBatch {
    /// An on-policy batch: `sequences` with their `old_logprobs` replaced by `model`'s own (as if `model`
    /// had sampled them), for benchmarks and tests that make up rollouts.
    ///
    /// # Errors
    /// As [`compute_logprobs`].
    pub fn on_policy<B: Backend>(
        model: &CausalLm<B>,
        mut sequences: Vec<UpdateSequence>,
        options: &LogprobOptions,
    ) -> Result<Self> {
        let pairs: Vec<(&[u32], &[u32])> = sequences
            .iter()
            .map(|s| (s.prompt_ids.as_slice(), s.response_ids.as_slice()))
            .collect();
        let old = compute_logprobs(model, &pairs, options)?;
        for (sequence, lp) in sequences.iter_mut().zip(old) {
            sequence.old_logprobs = lp.logprobs;
        }
        Ok(Self { sequences })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::tensor::activation::log_softmax;
    use laconic_model::DecoderConfig;

    pub(crate) fn tiny_model(tied: bool) -> CausalLm<TestBackend> {
        let config = DecoderConfig::from_json_str(
            &format!(
                r#"{{"model_type": "qwen3", "vocab_size": 48, "hidden_size": 16, "intermediate_size": 24,
                "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
                "tie_word_embeddings": {tied}}}"#
            ),
            "<tiny>",
        )
        .unwrap();
        CausalLm::init_seeded(&config, 7, &Default::default()).unwrap()
    }

    #[test]
    fn packing_reads_each_response_token_from_the_previous_position() {
        let a: (&[u32], &[u32]) = (&[5, 6], &[7, 8, 9]);
        let b: (&[u32], &[u32]) = (&[1, 2, 3], &[4]);
        let packed = PackedSequences::new(&[a, b]).unwrap();
        assert_eq!(packed.width, 4);
        assert_eq!(packed.tokens, [5, 6, 7, 8, 1, 2, 3, 0]);
        assert_eq!(packed.input_lengths, [4, 3]);
        assert_eq!(packed.rows, [1, 2, 3, 6]);
        assert_eq!(packed.targets, [7, 8, 9, 4]);
        assert!(PackedSequences::new(&[(&[], &[1])]).is_err());
    }

    #[test]
    fn chunked_recomputation_matches_full_logits() {
        let model = tiny_model(false);
        let sequences: [(&[u32], &[u32]); 3] = [
            (&[3, 4, 5], &[6, 7]),
            (&[9], &[10, 11, 12, 13]),
            (&[1, 2], &[]),
        ];
        let options = LogprobOptions {
            temperature: 0.7,
            chunk_size: 2,
            micro_batch_size: 2,
        };
        let got = compute_logprobs(&model, &sequences, &options).unwrap();
        assert!(got[2].logprobs.is_empty());
        let device = Default::default();
        for (i, (prompt, response)) in sequences.iter().enumerate().take(2) {
            // Reference: the full sequence alone, all logits, log_softmax(z / τ).
            let ids: Vec<i64> = prompt
                .iter()
                .chain(response.iter())
                .map(|&t| t as i64)
                .collect();
            let len = ids.len();
            let tokens =
                Tensor::<TestBackend, 2, Int>::from_data(TensorData::new(ids, [1, len]), &device);
            let layout = AttentionLayout::right_padded(&[len], len).unwrap();
            let logits = model.forward(tokens, &layout).unwrap().reshape([len, 48]);
            let lp = to_vec(log_softmax(logits.div_scalar(0.7), 1));
            for (k, &y) in response.iter().enumerate() {
                let pos = prompt.len() - 1 + k;
                let expected = lp[pos * 48 + y as usize];
                assert!(
                    (got[i].logprobs[k] - expected).abs() < 1e-5,
                    "seq {i} token {k}"
                );
                let h: f32 = (0..48)
                    .map(|v| -lp[pos * 48 + v].exp() * lp[pos * 48 + v])
                    .sum();
                assert!((got[i].entropy[k] - h).abs() < 1e-5);
            }
        }
    }
}
