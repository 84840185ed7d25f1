//! Micro-batch invariance of the gradient, on f64 autodiff where the only differences left are f64
//! rounding: accumulating 1, 2, 4 or 7 micro-batches gives the same gradient of every parameter of a
//! tiny Qwen3 (tied and untied head), in every `loss_agg_mode`, for vanilla and GSPO ratios, with the
//! dual clip, the k3 KL and an entropy bonus on.
//!
//! Its own test binary: burn 0.21 keeps one default float dtype per device and process, so f64 and f32
//! ndarray tests must not share a process.

mod common;

use burn::backend::{Autodiff, NdArray};
use common::micro_batch_spread;

type AD64 = Autodiff<NdArray<f64>>;

#[test]
fn gradient_does_not_depend_on_the_micro_batch_size() {
    for tied in [true, false] {
        let (worst, scale) = micro_batch_spread::<AD64>(tied);
        println!(
            "f64, tied={tied}: micro-batch 1 vs 2/4/7, every loss_agg_mode, vanilla+GSPO: max |Δgrad| = {worst:.3e} (max |grad| {scale:.3e})"
        );
        assert!(worst <= 1e-6 && worst <= 1e-12 * scale.max(1.0), "{worst}");
    }
}
