//! One AdamW update of a parameter on the flex backend in a single pass over its four arrays, in the
//! moments' own buffers (burn ops take about a dozen passes and as many fresh buffers).

use burn::prelude::*;
use rayon::prelude::*;

use super::{contiguous_f32, from_flex, owned_f32};
use crate::AdamWCoefficients;

/// Elements per rayon task.
const BLOCK: usize = 1 << 14;

/// `[param, exp_avg, exp_avg_sq]` after one update, each in its own buffer when nothing else holds it.
/// The caller has checked that all four are flex f32 ([`super::is_flex_f32`]).
pub(crate) fn adamw_step<B: Backend>(
    param: Tensor<B, 1>,
    grad: Tensor<B, 1>,
    exp_avg: Tensor<B, 1>,
    exp_avg_sq: Tensor<B, 1>,
    c: &AdamWCoefficients,
) -> [Tensor<B, 1>; 3] {
    let grad = contiguous_f32(grad).expect("checked flex f32");
    let mut param = owned_f32(param).expect("checked flex f32");
    let mut m = owned_f32(exp_avg).expect("checked flex f32");
    let mut v = owned_f32(exp_avg_sq).expect("checked flex f32");
    let grad = grad.storage::<f32>();
    param
        .storage_mut::<f32>()
        .par_chunks_mut(BLOCK)
        .zip(m.storage_mut::<f32>().par_chunks_mut(BLOCK))
        .zip(v.storage_mut::<f32>().par_chunks_mut(BLOCK))
        .zip(grad.par_chunks(BLOCK))
        .for_each(|(((p, m), v), g)| update(p, m, v, g, c));
    [from_flex(param), from_flex(m), from_flex(v)]
}

/// The update of one block, in PyTorch's order of operations (`_single_tensor_adamw`).
fn update(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &AdamWCoefficients) {
    let (one_minus_beta1, one_minus_beta2) = (1.0 - c.beta1, 1.0 - c.beta2);
    let (decay, bias2_sqrt, step_size) = (c.decay as f32, c.bias2_sqrt as f32, c.step_size as f32);
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        let decayed = *p * decay;
        *m = *m * c.beta1 + g * one_minus_beta1;
        *v = *v * c.beta2 + g * g * one_minus_beta2;
        let denom = v.sqrt() / bias2_sqrt + c.eps;
        *p = decayed - (*m / denom) * step_size;
    }
}
