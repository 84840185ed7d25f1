//! RoPE kernels for the flex backend that rotate and change layout in one pass: queries and keys go
//! from the projections' `[B, T, H, D]` to attention's heads-first `[B, H, T, D]`, and their gradients
//! come back the other way, each row of `D` read and written once, contiguous on both sides.

use burn::prelude::*;
use pulp::{Simd, WithSimd};

use crate::simd;
use rayon::prelude::*;

use super::{contiguous_f32, from_flex, zeros_f32};

/// `out = x·cos + rotate_half(x)·sin` for one row, where `sin` holds the signed table (`[−s, s]`), so
/// `rotate_half(x)·sin = [x₂, x₁]·[−s, s]`. With the sine negated this is the inverse rotation.
struct RotateRow<'a> {
    x: &'a [f32],
    cos: &'a [f32],
    sin: &'a [f32],
    out: &'a mut [f32],
    negate_sin: bool,
}

impl WithSimd for RotateRow<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let half = self.x.len() / 2;
        let (x1, x2) = self.x.split_at(half);
        let (out1, out2) = self.out.split_at_mut(half);
        let (c1, c2) = self.cos.split_at(half);
        let (s1, s2) = self.sin.split_at(half);
        let sign = if self.negate_sin { -1.0 } else { 1.0 };
        // First half: x₁·c − x₂·s (s₁ = −s); second half: x₂·c + x₁·s (s₂ = s).
        for (out, own, other, c, s) in [(out1, x1, x2, c1, s1), (out2, x2, x1, c2, s2)] {
            let (out_v, out_t) = S::as_mut_simd_f32s(out);
            let (own_v, own_t) = S::as_simd_f32s(own);
            let (other_v, other_t) = S::as_simd_f32s(other);
            let (c_v, c_t) = S::as_simd_f32s(c);
            let (s_v, s_t) = S::as_simd_f32s(s);
            let signed = simd.splat_f32s(sign);
            for i in 0..out_v.len() {
                let rotated = simd.mul_f32s(simd.mul_f32s(other_v[i], s_v[i]), signed);
                out_v[i] = simd.mul_add_f32s(own_v[i], c_v[i], rotated);
            }
            for i in 0..out_t.len() {
                out_t[i] = own_t[i] * c_t[i] + sign * other_t[i] * s_t[i];
            }
        }
    }
}

/// Rotates `x` (`[B, T, H, D]`) and lays it out heads-first (`[B, H, T, D]`, contiguous); `cos` and
/// `sin` are `[B, T, 1, D]`. `None` when the backend is not flex or a tensor is not f32.
pub fn rotate_heads_first<B: Backend>(
    x: &Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Option<Tensor<B, 4>> {
    let [b, t, h, d] = x.dims();
    let (x, cos, sin) = (
        contiguous_f32(x.clone())?,
        contiguous_f32(cos.clone())?,
        contiguous_f32(sin.clone())?,
    );
    let (x, cos, sin) = (
        x.storage::<f32>(),
        cos.storage::<f32>(),
        sin.storage::<f32>(),
    );
    let mut out = zeros_f32([b, h, t, d]);
    // One [T, D] plane per (batch row, head).
    out.storage_mut::<f32>()
        .par_chunks_mut((t * d).max(1))
        .enumerate()
        .for_each(|(plane, out)| {
            let (row, head) = (plane / h, plane % h);
            for (step, out) in out.chunks_exact_mut(d).enumerate() {
                let token = row * t + step;
                let table = token * d..(token + 1) * d;
                let start = (token * h + head) * d;
                simd::arch().dispatch(RotateRow {
                    x: &x[start..start + d],
                    cos: &cos[table.clone()],
                    sin: &sin[table],
                    out,
                    negate_sin: false,
                });
            }
        });
    Some(from_flex(out))
}

/// The gradient of [`rotate_heads_first`]: rotates `grad` (`[B, H, T, D]`) back by the inverse angles
/// into `[B, T, H, D]` (contiguous). `None` when the backend is not flex or a tensor is not f32.
pub fn unrotate_heads_last<B: Backend>(
    grad: &Tensor<B, 4>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
) -> Option<Tensor<B, 4>> {
    let [b, h, t, d] = grad.dims();
    let (grad, cos, sin) = (
        contiguous_f32(grad.clone())?,
        contiguous_f32(cos.clone())?,
        contiguous_f32(sin.clone())?,
    );
    let (grad, cos, sin) = (
        grad.storage::<f32>(),
        cos.storage::<f32>(),
        sin.storage::<f32>(),
    );
    let mut out = zeros_f32([b, t, h, d]);
    // One [H, D] block per token.
    out.storage_mut::<f32>()
        .par_chunks_mut((h * d).max(1))
        .enumerate()
        .for_each(|(token, out)| {
            let (row, step) = (token / t, token % t);
            let table = token * d..(token + 1) * d;
            for (head, out) in out.chunks_exact_mut(d).enumerate() {
                let start = ((row * h + head) * t + step) * d;
                simd::arch().dispatch(RotateRow {
                    x: &grad[start..start + d],
                    cos: &cos[table.clone()],
                    sin: &sin[table.clone()],
                    out,
                    negate_sin: true,
                });
            }
        });
    Some(from_flex(out))
}

/// Swaps the two middle axes of `x` (`[A, M, N, D]` → `[A, N, M, D]`, contiguous), moving rows of `D`
/// whole: the heads-first ↔ positions-first change of attention's layout. `None` when the backend is
/// not flex or the tensor not f32.
pub fn swap_middle<B: Backend>(x: &Tensor<B, 4>) -> Option<Tensor<B, 4>> {
    let [a, m, n, d] = x.dims();
    let x = contiguous_f32(x.clone())?;
    let x = x.storage::<f32>();
    let mut out = zeros_f32([a, n, m, d]);
    // One [M, D] block of the output per (outer index, middle-N index).
    out.storage_mut::<f32>()
        .par_chunks_mut((m * d).max(1))
        .enumerate()
        .for_each(|(block, out)| {
            let (outer, j) = (block / n, block % n);
            for (i, row) in out.chunks_exact_mut(d).enumerate() {
                let start = ((outer * m + i) * n + j) * d;
                row.copy_from_slice(&x[start..start + d]);
            }
        });
    Some(from_flex(out))
}
