//! RMSNorm forward and backward on the flex backend, one row at a time in one (forward) or two
//! (backward) passes, against about ten whole-tensor passes as burn ops.

use burn::prelude::*;
use pulp::{Simd, WithSimd};

use crate::simd;
use rayon::prelude::*;

use super::{contiguous_f32, from_flex, is_flex_f32, zeros_f32};

/// Rows per rayon task.
const ROWS_PER_TASK: usize = 64;

/// `Σ a⊙b` over a row.
struct Dot<'a>(&'a [f32], &'a [f32]);

impl WithSimd for Dot<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        let (a, a_tail) = S::as_simd_f32s(self.0);
        let (b, b_tail) = S::as_simd_f32s(self.1);
        let mut sum = simd.splat_f32s(0.0);
        for (&a, &b) in a.iter().zip(b) {
            sum = simd.mul_add_f32s(a, b, sum);
        }
        let tail: f32 = a_tail.iter().zip(b_tail).map(|(a, b)| a * b).sum();
        simd.reduce_sum_f32s(sum) + tail
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    simd::arch().dispatch(Dot(a, b))
}

/// `(y, 1/rms)` of `y = x·r·w` with `r = 1/√(mean(x²) + eps)` per row, or `None` when the backend is
/// not flex or a tensor not f32.
///
/// # Shapes
/// - `x`: `[n, d]`, `weight`: `[d]` → `([n, d], [n, 1])`
pub fn rms_norm<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 1>,
    eps: f64,
) -> Option<(Tensor<B, 2>, Tensor<B, 2>)> {
    if !is_flex_f32(x) || !is_flex_f32(weight) {
        return None;
    }
    let [n, d] = x.dims();
    let (x, w) = (contiguous_f32(x.clone())?, contiguous_f32(weight.clone())?);
    let (x, w) = (x.storage::<f32>(), w.storage::<f32>());
    let mut y = zeros_f32([n, d]);
    let mut inv_rms = zeros_f32([n, 1]);
    let task = ROWS_PER_TASK * d.max(1);
    y.storage_mut::<f32>()
        .par_chunks_mut(task)
        .zip(inv_rms.storage_mut::<f32>().par_chunks_mut(ROWS_PER_TASK))
        .zip(x.par_chunks(task))
        .for_each(|((y, r), x)| {
            for ((y, r), x) in y.chunks_exact_mut(d).zip(r).zip(x.chunks_exact(d)) {
                *r = (dot(x, x) / d as f32 + eps as f32).sqrt().recip();
                for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                    *y = x * *r * w;
                }
            }
        });
    Some((from_flex(y), from_flex(inv_rms)))
}

/// `(∂x, ∂w)` of [`rms_norm`] for upstream `grad`: `∂x = r·(g⊙w) − x·r³·⟨g⊙w, x⟩/d` and, when
/// `want_weight`, `∂w = Σ_rows g⊙x·r`. `None` when the backend is not flex or a tensor not f32.
///
/// # Shapes
/// - `x`, `grad`: `[n, d]`, `weight`: `[d]`, `inv_rms`: `[n, 1]` → `([n, d], [d])`
#[allow(clippy::type_complexity)]
pub fn rms_norm_grad<B: Backend>(
    x: &Tensor<B, 2>,
    weight: &Tensor<B, 1>,
    inv_rms: &Tensor<B, 2>,
    grad: &Tensor<B, 2>,
    want_weight: bool,
) -> Option<(Tensor<B, 2>, Option<Tensor<B, 1>>)> {
    if ![x, inv_rms, grad].into_iter().all(is_flex_f32) || !is_flex_f32(weight) {
        return None;
    }
    let [n, d] = x.dims();
    let (x, w) = (contiguous_f32(x.clone())?, contiguous_f32(weight.clone())?);
    let (r, g) = (
        contiguous_f32(inv_rms.clone())?,
        contiguous_f32(grad.clone())?,
    );
    let (x, w, r, g) = (
        x.storage::<f32>(),
        w.storage::<f32>(),
        r.storage::<f32>(),
        g.storage::<f32>(),
    );
    let mut grad_x = zeros_f32([n, d]);
    let task = ROWS_PER_TASK * d.max(1);
    // Each task returns its rows' share of ∂w; the shares are summed after.
    let partials: Vec<Vec<f32>> = grad_x
        .storage_mut::<f32>()
        .par_chunks_mut(task)
        .zip(x.par_chunks(task))
        .zip(g.par_chunks(task))
        .zip(r.par_chunks(ROWS_PER_TASK))
        .map(|(((dx, x), g), r)| {
            let mut dw = if want_weight {
                vec![0.0f32; d]
            } else {
                Vec::new()
            };
            let mut scaled = vec![0.0f32; d];
            let rows = dx
                .chunks_exact_mut(d)
                .zip(x.chunks_exact(d))
                .zip(g.chunks_exact(d));
            for (((dx, x), g), &r) in rows.zip(r) {
                for ((s, &g), &w) in scaled.iter_mut().zip(g).zip(w) {
                    *s = g * w;
                }
                let coef = r * r * r * dot(&scaled, x) / d as f32;
                for ((dx, &s), &x) in dx.iter_mut().zip(&scaled).zip(x) {
                    *dx = s * r - x * coef;
                }
                if want_weight {
                    for ((dw, &g), &x) in dw.iter_mut().zip(g).zip(x) {
                        *dw += g * x * r;
                    }
                }
            }
            dw
        })
        .collect();
    let grad_weight = want_weight.then(|| {
        let mut dw = zeros_f32([d]);
        let sum = dw.storage_mut::<f32>();
        for part in &partials {
            for (s, p) in sum.iter_mut().zip(part) {
                *s += p;
            }
        }
        from_flex(dw)
    });
    Some((from_flex(grad_x), grad_weight))
}
