//! The AdamW update of one flattened parameter, in PyTorch's order of operations
//! (`torch.optim.AdamW`'s single-tensor path); laconic-optim's `AdamW` keeps the state and the
//! schedule and calls [`adamw_step`] once per parameter.

use burn::prelude::*;

/// The scalars of one AdamW update. Those PyTorch computes in Python floats are f64 here; on f32
/// tensors every scalar rounds to f32 before it meets an element, as in PyTorch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWCoefficients {
    /// `1 − lr·λ`, the decoupled weight decay factor.
    pub decay: f64,
    /// `β1`.
    pub beta1: f32,
    /// `β2`.
    pub beta2: f32,
    /// `√(1 − β2^t)`.
    pub bias2_sqrt: f64,
    /// `ε`.
    pub eps: f32,
    /// `lr / (1 − β1^t)`.
    pub step_size: f64,
}

/// One AdamW update: `θ·decay − step_size·m / (√v / bias2_sqrt + ε)` with `m ← β1·m + (1 − β1)·g` and
/// `v ← β2·v + (1 − β2)·g²`. Returns `[θ, m, v]`. On flex (f32) one pass, in the moments' own buffers
/// when nothing else holds them; burn ops elsewhere.
///
/// # Shapes
/// - `param`, `grad`, `exp_avg`, `exp_avg_sq`: `[n]` → three `[n]`
///
/// # Panics
/// When the four lengths differ.
pub fn adamw_step<B: Backend>(
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    exp_avg: Tensor<B, 1>,
    exp_avg_sq: Tensor<B, 1>,
    coefficients: &AdamWCoefficients,
) -> [Tensor<B, 1>; 3] {
    let n = param.dims()[0];
    assert!(
        grad.dims()[0] == n && exp_avg.dims()[0] == n && exp_avg_sq.dims()[0] == n,
        "a parameter, its gradient and its moments have one length"
    );
    #[cfg(feature = "flex")]
    if [&param, &grad, &exp_avg, &exp_avg_sq]
        .iter()
        .all(|t| crate::flex::is_flex_f32(*t))
    {
        return crate::flex::adamw_step(param, grad, exp_avg, exp_avg_sq, coefficients);
    }
    composed(param, grad, exp_avg, exp_avg_sq, coefficients)
}

/// [`adamw_step`] as burn ops.
fn composed<B: Backend>(
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    exp_avg: Tensor<B, 1>,
    exp_avg_sq: Tensor<B, 1>,
    c: &AdamWCoefficients,
) -> [Tensor<B, 1>; 3] {
    // θ ← θ·(1 − lr·λ)
    let param = param.mul_scalar(c.decay);
    // m ← β1·m + (1 − β1)·g ;  v ← β2·v + (1 − β2)·g²
    let exp_avg = exp_avg.mul_scalar(c.beta1) + grad.clone().mul_scalar(1.0 - c.beta1);
    let exp_avg_sq = exp_avg_sq.mul_scalar(c.beta2) + grad.square().mul_scalar(1.0 - c.beta2);
    // θ ← θ − step_size·m / (√v / √bias2 + ε)
    let denom = exp_avg_sq
        .clone()
        .sqrt()
        .div_scalar(c.bias2_sqrt)
        .add_scalar(c.eps);
    let param = param - (exp_avg.clone() / denom).mul_scalar(c.step_size);
    [param, exp_avg, exp_avg_sq]
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::tests::values;
    use burn::backend::{Flex, NdArray};

    /// The flex pass and the composition (on ndarray) give the same update, to f32 rounding of the
    /// square root and division.
    #[test]
    fn flex_pass_matches_the_composition() {
        let n = 70_001; // several rayon blocks and a tail
        let series = |scale: f32, phase: f32| -> Vec<f32> {
            (0..n)
                .map(|i| scale * ((i as f32 * 0.618_034 + phase).fract() - 0.5))
                .collect()
        };
        let (param, grad, m) = (series(2.0, 0.1), series(0.2, 0.3), series(0.01, 0.7));
        let v: Vec<f32> = series(1e-3, 0.9).iter().map(|x| x.abs()).collect();
        let coefficients = AdamWCoefficients {
            decay: 1.0 - 1e-3 * 0.01,
            beta1: 0.9,
            beta2: 0.999,
            bias2_sqrt: (1.0f64 - 0.999f64.powi(3)).sqrt(),
            eps: 1e-8,
            step_size: 1e-3 / (1.0 - 0.9f64.powi(3)),
        };
        fn run<B: Backend>(inputs: [&[f32]; 4], c: &AdamWCoefficients) -> Vec<Vec<f32>> {
            let device = Default::default();
            let t = |x: &[f32]| Tensor::<B, 1>::from_floats(x, &device);
            let [p, g, m, v] = inputs.map(t);
            adamw_step(p, g, m, v, c).map(values).to_vec()
        }
        let inputs = [&param[..], &grad, &m, &v];
        let fast = run::<Flex>(inputs, &coefficients);
        let plain = run::<NdArray>(inputs, &coefficients);
        for (which, (a, b)) in fast.iter().zip(&plain).enumerate() {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-6 * y.abs().max(1e-3),
                    "output {which} element {i}: {x} vs {y}"
                );
            }
        }
    }
}
