//! Kernels the other crates call in their hot loops: the per-token log-prob/entropy statistics of a
//! logits block and their gradient, which the LM-head loss computes for every response token, and the
//! AdamW update of one parameter.
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
    return crate::flex::is_flex::<B>();
    #[cfg(not(feature = "flex"))]
    false
}

/// The scalars of one AdamW update, in f32 as the update applies them (see [`adamw_step`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWCoefficients {
    /// `1 − lr·λ`, the decoupled weight decay factor.
    pub decay: f32,
    /// `β1`.
    pub beta1: f32,
    /// `β2`.
    pub beta2: f32,
    /// `√(1 − β2^t)`.
    pub bias2_sqrt: f32,
    /// `ε`.
    pub eps: f32,
    /// `lr / (1 − β1^t)`.
    pub step_size: f32,
}

/// A parameter's AdamW moments `(exp_avg, exp_avg_sq)`.
pub type AdamWMoments<B> = (Tensor<B, 1>, Tensor<B, 1>);

/// One AdamW update of a flattened parameter, in PyTorch's order of operations:
/// `θ·decay − step_size·m / (√v / bias2_sqrt + ε)` with `m ← β1·m + (1 − β1)·g` and
/// `v ← β2·v + (1 − β2)·g²`. Returns `[θ, m, v]`; gives the moments back (`Err`) when no kernel applies
/// (a single pass on flex, in the moments' own buffers).
pub fn adamw_step<B: Backend>(
    param: &Tensor<B, 1>,
    grad: &Tensor<B, 1>,
    exp_avg: Tensor<B, 1>,
    exp_avg_sq: Tensor<B, 1>,
    coefficients: &AdamWCoefficients,
) -> Result<[Tensor<B, 1>; 3], AdamWMoments<B>> {
    let n = param.dims()[0];
    assert!(
        grad.dims()[0] == n && exp_avg.dims()[0] == n && exp_avg_sq.dims()[0] == n,
        "a parameter, its gradient and its moments have one length"
    );
    #[cfg(feature = "flex")]
    return crate::flex::adamw_step(param, grad, exp_avg, exp_avg_sq, coefficients);
    #[cfg(not(feature = "flex"))]
    {
        let _ = coefficients;
        Err((exp_avg, exp_avg_sq))
    }
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
/// through the entropy. `forward`, the `[c, 2]` rows [`logprob_entropy`] returned for these same
/// logits (flattened), saves the two passes that recompute each row's log-sum-exp. The logits back
/// (`Err`) when no row kernel applies.
pub fn logprob_entropy_grad<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[usize],
    grad_logp: &[f32],
    grad_entropy: Option<&[f32]>,
    forward: Option<&[f32]>,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let rows = logits.dims()[0];
    assert!(
        targets.len() == rows
            && grad_logp.len() == rows
            && grad_entropy.is_none_or(|g| g.len() == rows)
            && forward.is_none_or(|f| f.len() == 2 * rows),
        "one target, one gradient and one forward row per logits row"
    );
    #[cfg(feature = "flex")]
    return crate::flex::logprob_entropy_grad(logits, targets, grad_logp, grad_entropy, forward);
    #[cfg(not(feature = "flex"))]
    Err(logits)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex, NdArray};
    use burn::tensor::activation::log_softmax;
    use burn::tensor::Tolerance;

    /// The reference is f32 too: an f64 ndarray in this binary would share the default float dtype
    /// with the f32 ndarray tests (one per device and process in burn 0.21), so the f64 checks of
    /// this crate live in their own test binaries. The inputs are fixed, so both sides round the
    /// same way on every run.
    type Reference = Autodiff<NdArray>;

    /// `[c, V]` logits with a spread of about ±8 and a vocabulary that leaves a tail after the SIMD body;
    /// a fixed formula, so every run and machine checks the same numbers.
    fn logits(c: usize, v: usize) -> TensorData {
        let values = (0..c * v)
            .map(|i| 8.0 * ((i as f32 * 0.618_034).fract() * 2.0 - 1.0) * (i as f32 * 0.37).sin())
            .collect::<Vec<f32>>();
        TensorData::new(values, [c, v])
    }

    /// Log-probs, entropies and `∂(Σ a·logp + b·H)/∂z` by autodiff through burn's log-softmax.
    fn reference(
        data: &TensorData,
        targets: &[usize],
        a: &[f32],
        b: &[f32],
    ) -> (Vec<f32>, Vec<f32>, TensorData) {
        let device = Default::default();
        let c = targets.len();
        let z = Tensor::<Reference, 2>::from_data(data.clone(), &device).require_grad();
        let log_probs = log_softmax(z.clone(), 1);
        let ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
        let ids = Tensor::<Reference, 2, Int>::from_data(TensorData::new(ids, [c, 1]), &device);
        let logp = log_probs.clone().gather(1, ids).reshape([c]);
        let entropy = (log_probs.clone().exp() * log_probs)
            .sum_dim(1)
            .neg()
            .reshape([c]);
        let weights = |w: &[f32]| Tensor::<Reference, 1>::from_floats(w, &device);
        let loss = (logp.clone() * weights(a)).sum() + (entropy.clone() * weights(b)).sum();
        let grads = loss.backward();
        let grad = z.grad(&grads).unwrap().into_data();
        let host = |t: Tensor<Reference, 1>| t.into_data().to_vec::<f32>().unwrap();
        (host(logp), host(entropy), grad)
    }

    /// The flex row kernels against autodiff through the composition, with and without the entropy
    /// gradient.
    #[test]
    fn row_kernels_match_autodiff() {
        let (c, v) = (5, 1003);
        let data = logits(c, v);
        let targets = [0, 17, 1002, 500, 999];
        let a = [1.0, -0.5, 0.25, 2.0, -1.0];
        let b = [0.3, 0.0, -0.7, 0.1, 1.5];
        let (logp, entropy, grad) = reference(&data, &targets, &a, &b);
        let device = Default::default();
        let z = || Tensor::<Flex, 2>::from_data(data.clone(), &device);
        assert!(has_row_kernels::<Flex>());

        let both = logprob_entropy(z(), &targets).expect("flex runs the row kernel");
        let both = both.into_data().to_vec::<f32>().unwrap();
        for i in 0..c {
            // Relative: both sides recover log-probs of magnitude ~10 from f32 sums.
            let close = |x: f32, y: f32| (x - y).abs() <= 1e-5 * y.abs().max(1.0);
            assert!(close(both[2 * i], logp[i]), "logp row {i}");
            assert!(close(both[2 * i + 1], entropy[i]), "entropy row {i}");
        }
        let got = logprob_entropy_grad(z(), &targets, &a, Some(&b), None).expect("row kernel");
        got.into_data()
            .assert_approx_eq::<f32>(&grad, Tolerance::rel_abs(1e-5, 1e-6));
        // The same gradient from the forward's statistics instead of recomputed ones.
        let got =
            logprob_entropy_grad(z(), &targets, &a, Some(&b), Some(&both)).expect("row kernel");
        got.into_data()
            .assert_approx_eq::<f32>(&grad, Tolerance::rel_abs(1e-5, 1e-6));

        let (_, _, grad_logp_only) = reference(&data, &targets, &a, &[0.0; 5]);
        let got = logprob_entropy_grad(z(), &targets, &a, None, None).expect("row kernel");
        got.into_data()
            .assert_approx_eq::<f32>(&grad_logp_only, Tolerance::rel_abs(1e-5, 1e-6));
    }

    /// A row holding a NaN gives NaN statistics (the loss's NaN check then names the step), and leaves
    /// the other rows alone.
    #[test]
    fn nan_logits_give_nan_statistics() {
        let device = Default::default();
        let z = Tensor::<Flex, 2>::from_floats([[0.0, f32::NAN, 1.0], [0.0, 0.0, 0.0]], &device);
        let both = logprob_entropy(z, &[0, 1]).expect("row kernel");
        let both = both.into_data().to_vec::<f32>().unwrap();
        assert!(both[0].is_nan() && both[1].is_nan());
        assert!((both[2] + 3f32.ln()).abs() < 1e-6 && (both[3] - 3f32.ln()).abs() < 1e-6);
    }

    /// Without the row kernels the logits come back untouched.
    #[test]
    fn other_backends_get_their_logits_back() {
        let z = Tensor::<NdArray, 2>::from_floats([[1.0, 2.0]], &Default::default());
        assert!(!has_row_kernels::<NdArray>());
        let back = logprob_entropy(z, &[1]).expect_err("ndarray has no row kernel");
        assert_eq!(back.into_data().to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
    }
}
