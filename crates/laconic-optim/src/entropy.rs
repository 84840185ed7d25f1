//! Per-token entropy of the policy, `H = −Σ_v p_v log p_v`, from one block of log-probabilities.
//!
//! The entropy of the whole vocabulary needs the whole softmax; the callers in [`crate::logprob`] and
//! [`crate::head`] feed it one `[tokens_chunk, V]` block at a time, so no `[B, T, V]` tensor exists.
//! It is always reported (`actor/entropy`, the token mean over the mini-batch) and enters the loss as
//! `− entropy_coeff · agg(H)` (an entropy bonus; `entropy_coeff` unspecified in the paper, default 0).

pub use laconic_kernels::{entropy_from_log_probs, entropy_logit_grad};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::prelude::*;
    use burn::tensor::activation::log_softmax;

    #[test]
    fn uniform_and_peaked_distributions() {
        let device = Default::default();
        let logits = Tensor::<TestBackend, 2>::from_floats(
            [[0.0, 0.0, 0.0, 0.0], [30.0, 0.0, 0.0, 0.0]],
            &device,
        );
        let h = entropy_from_log_probs(log_softmax(logits, 1))
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        assert!((h[0] - 4f32.ln()).abs() < 1e-6);
        assert!(h[1].abs() < 1e-6);
    }

    #[test]
    fn logit_gradient_matches_finite_differences() {
        let device = Default::default();
        let z = [0.3f64, -1.2, 0.8, 0.1];
        let entropy = |z: &[f64]| {
            let m = z.iter().cloned().fold(f64::MIN, f64::max);
            let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
            z.iter()
                .map(|v| {
                    let lp = v - m - s.ln();
                    -lp.exp() * lp
                })
                .sum::<f64>()
        };
        let zt = Tensor::<TestBackend, 2>::from_floats([[0.3f32, -1.2, 0.8, 0.1]], &device);
        let lp = log_softmax(zt, 1);
        let h = entropy_from_log_probs(lp.clone());
        let g = entropy_logit_grad(lp, h)
            .into_data()
            .into_vec::<f32>()
            .unwrap();
        for v in 0..4 {
            let (mut up, mut down) = (z, z);
            up[v] += 1e-5;
            down[v] -= 1e-5;
            let fd = (entropy(&up) - entropy(&down)) / 2e-5;
            assert!((f64::from(g[v]) - fd).abs() < 1e-4, "{v}: {} vs {fd}", g[v]);
        }
    }
}
