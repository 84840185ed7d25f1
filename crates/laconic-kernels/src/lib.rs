//! laconic's performance layer: ops whose plain composition of burn ops is the truth and which run
//! faster on some backends, each as one total, backend-generic function.
//!
//! Callers see one function per op and never learn whether a kernel ran. Inside, an op checks whether
//! a kernel applies (today: the flex backend with f32 operands, with the `flex` feature) and otherwise
//! runs its composition of burn ops, which computes the same values on every backend.
//!
//! | op | used by | composition | flex kernel |
//! |---|---|---|---|
//! | [`logprob_entropy`] | the LM-head loss (laconic-optim) | log-softmax, gather, `−Σ p log p` | one SIMD pass per row |
//! | [`logprob_entropy_grad`] | its backward | softmax, scatter | one pass per row, over the logits' own buffer |
//! | [`adamw_step`] | AdamW (laconic-optim) | about a dozen elementwise ops | one pass in the moments' own buffers |
//!
//! The model's layers (RMSNorm, SwiGLU, RoPE, the heads-layout swap, skinny products, KV-cache writes)
//! keep their math in laconic-model, each in its op's own file, and call the flex fast paths of
//! [`flex`] from there. [`downcast`] holds the one set of type-id helpers both crates route with, and
//! `simd` the instruction-set level every flex kernel dispatches at (`LACONIC_SIMD`).

pub mod downcast;
#[cfg(feature = "flex")]
pub mod flex;
mod logprob;
mod optimizer;
pub mod simd;

pub use logprob::{
    entropy_from_log_probs, entropy_logit_grad, logprob_entropy, logprob_entropy_grad,
};
pub use optimizer::{adamw_step, AdamWCoefficients};

#[cfg(test)]
pub(crate) mod tests {
    use burn::prelude::*;

    /// `[c, V]` logits with a spread of about ±8 and a vocabulary that leaves a tail after the SIMD body;
    /// a fixed formula, so every run and machine checks the same numbers.
    pub(crate) fn logits(c: usize, v: usize) -> TensorData {
        let values = (0..c * v)
            .map(|i| 8.0 * ((i as f32 * 0.618_034).fract() * 2.0 - 1.0) * (i as f32 * 0.37).sin())
            .collect::<Vec<f32>>();
        TensorData::new(values, [c, v])
    }

    /// The values of a float tensor.
    pub(crate) fn values<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
        tensor.into_data().convert::<f32>().to_vec().unwrap()
    }
}
