//! Kernels the other crates call in their hot loops: the per-token log-prob/entropy statistics of a
//! logits block and their gradient, which the LM-head loss computes for every response token.
//!
//! With the `flex` feature, on the flex backend, each runs as one SIMD row kernel (`src/flex/rows.rs`);
//! elsewhere the functions hand their input back (`Err`) and the caller runs its own composition of
//! burn ops. [`has_row_kernels`] says beforehand whether they apply, so callers only read targets and
//! gradients to the host when they will be used.

use burn::prelude::*;

/// Whether [`logprob_entropy`] and [`logprob_entropy_grad`] run on backend `B` (flex, with the `flex`
/// feature).
pub fn has_row_kernels<B: Backend>() -> bool {
    #[cfg(feature = "flex")]
    if std::any::TypeId::of::<B::FloatTensorPrimitive>()
        == std::any::TypeId::of::<burn_flex::FlexTensor>()
    {
        return true;
    }
    false
}

/// Per row of `logits` (`[c, V]`, temperature already applied): `[log p(target), H]` as `[c, 2]`,
/// with `H = −Σ p log p`. The logits back (`Err`) when no row kernel applies.
pub fn logprob_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[usize],
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    assert_eq!(logits.dims()[0], targets.len(), "one target per logits row");
    #[cfg(feature = "flex")]
    return crate::flex::logprob_entropy(logits, targets);
    #[cfg(not(feature = "flex"))]
    Err(logits)
}

/// `∂L/∂z` (`[c, V]`) of `L = Σ_rows g_logp·log p(target) + g_H·H` for the `logits` `z`, computed over
/// the logits' own buffer when nothing else holds it. `grad_entropy` is `None` when no gradient flows
/// through the entropy. The logits back (`Err`) when no row kernel applies.
pub fn logprob_entropy_grad<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[usize],
    grad_logp: &[f32],
    grad_entropy: Option<&[f32]>,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let rows = logits.dims()[0];
    assert!(
        targets.len() == rows
            && grad_logp.len() == rows
            && grad_entropy.is_none_or(|g| g.len() == rows),
        "one target and one gradient per logits row"
    );
    #[cfg(feature = "flex")]
    return crate::flex::logprob_entropy_grad(logits, targets, grad_logp, grad_entropy);
    #[cfg(not(feature = "flex"))]
    Err(logits)
}
