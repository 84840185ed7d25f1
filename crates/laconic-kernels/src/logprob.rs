//! The per-token statistics of a block of logits that the LM-head loss needs — the log-prob of the
//! target and the entropy `H = −Σ p log p` — and their gradient with respect to the logits.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::IndexingUpdateOp;

/// `H = −Σ_v exp(lp_v) · lp_v` per row.
///
/// # Shapes
/// - `log_probs`: `[c, V]` (a log-softmax); returns `[c, 1]`
pub fn entropy_from_log_probs<B: Backend>(log_probs: Tensor<B, 2>) -> Tensor<B, 2> {
    (log_probs.clone().exp() * log_probs).sum_dim(1).neg()
}

/// `∂H/∂z_v = −p_v (log p_v + H)`: the gradient of the entropy with respect to the logits `z`.
///
/// # Shapes
/// - `log_probs`: `[c, V]`, `entropy`: `[c, 1]`; returns `[c, V]`
pub fn entropy_logit_grad<B: Backend>(
    log_probs: Tensor<B, 2>,
    entropy: Tensor<B, 2>,
) -> Tensor<B, 2> {
    (log_probs.clone().exp() * (log_probs + entropy)).neg()
}

/// Per row of `logits` (temperature already applied): `[log p(target), H]`. On flex (f32) one SIMD
/// pass per row; log-softmax, gather and [`entropy_from_log_probs`] elsewhere.
///
/// # Shapes
/// - `logits`: `[c, V]`, `targets`: `[c]` → `[c, 2]`
///
/// # Panics
/// When `targets` does not hold one id per row.
pub fn logprob_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Tensor<B, 2> {
    let c = logits.dims()[0];
    assert_eq!(c, targets.dims()[0], "one target per logits row");
    #[cfg(feature = "flex")]
    let logits = if crate::flex::is_flex_f32(&logits) {
        match crate::flex::logprob_entropy(logits, &host_ids(&targets)) {
            Ok(rows) => return rows,
            Err(logits) => logits,
        }
    } else {
        logits
    };
    let log_probs = log_softmax(logits, 1);
    let logp = log_probs.clone().gather(1, targets.reshape([c, 1]));
    Tensor::cat(vec![logp, entropy_from_log_probs(log_probs)], 1)
}

/// `∂L/∂z` of `L = Σ_rows g_logp·log p(target) + g_H·H` for the logits `z`, with the upstream
/// gradients `grad = [g_logp, g_H]` per row; `with_entropy = false` leaves the entropy term out
/// (no gradient flows through it). `forward`, the rows [`logprob_entropy`] returned for these same
/// logits, spares the flex kernel the passes that recompute each row's log-sum-exp. On flex (f32)
/// one pass per row over the logits' own buffer when nothing else holds it; burn ops elsewhere:
/// `∂L/∂z = −p ⊙ (g_logp + g_H·(log p + H)) + g_logp·onehot(target)`.
///
/// # Shapes
/// - `logits`: `[c, V]`, `targets`: `[c]`, `grad`: `[c, 2]`, `forward`: `[c, 2]` → `[c, V]`
///
/// # Panics
/// When `targets`, `grad` or `forward` do not hold one row per logits row.
pub fn logprob_entropy_grad<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    grad: Tensor<B, 2>,
    with_entropy: bool,
    forward: Option<Tensor<B, 2>>,
) -> Tensor<B, 2> {
    let c = logits.dims()[0];
    assert!(
        targets.dims()[0] == c
            && grad.dims() == [c, 2]
            && forward.as_ref().is_none_or(|f| f.dims() == [c, 2]),
        "one target, one gradient row and one forward row per logits row"
    );
    #[cfg(feature = "flex")]
    let logits = if crate::flex::is_flex_f32(&logits) {
        let rows = host_f32(grad.clone());
        let grad_logp: Vec<f32> = rows.iter().step_by(2).copied().collect();
        let grad_entropy: Option<Vec<f32>> =
            with_entropy.then(|| rows.iter().skip(1).step_by(2).copied().collect());
        let forward = forward.map(host_f32);
        match crate::flex::logprob_entropy_grad(
            logits,
            &host_ids(&targets),
            &grad_logp,
            grad_entropy.as_deref(),
            forward.as_deref(),
        ) {
            Ok(grad_logits) => return grad_logits,
            Err(logits) => logits,
        }
    } else {
        logits
    };
    #[cfg(not(feature = "flex"))]
    let _ = forward;
    let log_probs = log_softmax(logits, 1);
    let g_logp = grad.clone().slice([0..c, 0..1]);
    let probs = log_probs.clone().exp();
    // −p ⊙ w with w = g_logp + g_H·(log p + H), or just g_logp without the entropy term.
    let grad_logits = if with_entropy {
        let g_entropy = grad.slice([0..c, 1..2]);
        let entropy = entropy_from_log_probs(log_probs.clone());
        probs * ((log_probs + entropy) * g_entropy + g_logp.clone()).neg()
    } else {
        probs * g_logp.clone().neg()
    };
    grad_logits.scatter(1, targets.reshape([c, 1]), g_logp, IndexingUpdateOp::Add)
}

/// The ids of an int tensor, on the host.
#[cfg(feature = "flex")]
fn host_ids<B: Backend>(ids: &Tensor<B, 1, Int>) -> Vec<usize> {
    ids.to_data()
        .convert::<i64>()
        .iter::<i64>()
        .map(|id| id as usize)
        .collect()
}

/// The values of a float tensor, on the host.
#[cfg(feature = "flex")]
fn host_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec()
        .expect("a float tensor converted to f32 yields f32 values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{logits, values};
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Tolerance;

    /// The reference is f32 too: an f64 ndarray in this binary would share the default float dtype
    /// with the f32 ndarray tests (one per device and process in burn 0.21). The inputs are fixed, so
    /// both sides round the same way on every run.
    type Reference = Autodiff<NdArray>;

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
        (values(logp), values(entropy), grad)
    }

    /// Both ops on backend `B` against autodiff through the composition, with and without the
    /// entropy gradient and with and without the forward's rows.
    fn check<B: Backend>() {
        let (c, v) = (5, 1003);
        let data = logits(c, v);
        let targets = [0usize, 17, 1002, 500, 999];
        let a = [1.0, -0.5, 0.25, 2.0, -1.0];
        let b = [0.3, 0.0, -0.7, 0.1, 1.5];
        let (logp, entropy, grad) = reference(&data, &targets, &a, &b);
        let device = Default::default();
        let z = || Tensor::<B, 2>::from_data(data.clone(), &device);
        let ids = || {
            let ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
            Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [c]), &device)
        };
        let upstream = |b: &[f32]| {
            let rows: Vec<f32> = a.iter().zip(b).flat_map(|(&x, &y)| [x, y]).collect();
            Tensor::<B, 2>::from_data(TensorData::new(rows, [c, 2]), &device)
        };

        let both = logprob_entropy(z(), ids());
        let rows = values(both.clone());
        for i in 0..c {
            // Relative: both sides recover log-probs of magnitude ~10 from f32 sums.
            let close = |x: f32, y: f32| (x - y).abs() <= 1e-5 * y.abs().max(1.0);
            assert!(close(rows[2 * i], logp[i]), "logp row {i}");
            assert!(close(rows[2 * i + 1], entropy[i]), "entropy row {i}");
        }
        let tolerance = Tolerance::rel_abs(1e-5, 1e-6);
        for forward in [None, Some(both)] {
            let got = logprob_entropy_grad(z(), ids(), upstream(&b), true, forward);
            got.into_data().assert_approx_eq::<f32>(&grad, tolerance);
        }
        let (_, _, grad_logp_only) = reference(&data, &targets, &a, &[0.0; 5]);
        let got = logprob_entropy_grad(z(), ids(), upstream(&b), false, None);
        got.into_data()
            .assert_approx_eq::<f32>(&grad_logp_only, tolerance);
    }

    /// The composition (ndarray) against autodiff.
    #[test]
    fn composition_matches_autodiff() {
        check::<NdArray>();
    }

    /// The flex row kernels against autodiff.
    #[cfg(feature = "flex")]
    #[test]
    fn row_kernels_match_autodiff() {
        check::<burn::backend::Flex>();
    }

    /// A row holding a NaN gives NaN statistics (the loss's NaN check then names the step), and leaves
    /// the other rows alone, with and without the kernel.
    #[test]
    fn nan_logits_give_nan_statistics() {
        fn check<B: Backend>() {
            let device = Default::default();
            let z = Tensor::<B, 2>::from_floats([[0.0, f32::NAN, 1.0], [0.0, 0.0, 0.0]], &device);
            let ids = Tensor::<B, 1, Int>::from_ints([0, 1], &device);
            let both = values(logprob_entropy(z, ids));
            assert!(both[0].is_nan() && both[1].is_nan());
            assert!((both[2] + 3f32.ln()).abs() < 1e-6 && (both[3] - 3f32.ln()).abs() < 1e-6);
        }
        check::<NdArray>();
        #[cfg(feature = "flex")]
        check::<burn::backend::Flex>();
    }
}
