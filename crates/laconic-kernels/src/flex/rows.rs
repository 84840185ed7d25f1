//! Elementwise and row kernels for the flex backend with a SIMD `exp`: the log-prob/entropy statistics
//! of a logits block and their gradient (the LM-head loss), and SwiGLU forward and backward.
//!
//! burn-flex computes `exp` one lane at a time through libm and runs each op of a composition as its
//! own pass over memory; these kernels make one to three passes and exponentiate eight or sixteen lanes
//! at a time. Rows (or blocks of elements) are spread over rayon's threads.

use burn::prelude::*;
use burn::tensor::DType;
use burn_flex::FlexTensor;
use pulp::{Simd, WithSimd};

use crate::simd;
use rayon::prelude::*;

use super::{from_flex, into_flex, zeros_f32};

/// Elements per rayon task in the elementwise kernels.
const BLOCK: usize = 1 << 14;

/// `ln 2` split in two for the range reduction `r = x − n·ln 2` (the high part has few mantissa bits,
/// so `n·LN2_HI` is exact for the `n` that occur).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Above this `e^x` overflows f32; below [`EXP_MIN`] it is subnormal and taken as 0.
const EXP_MAX: f32 = 88.376_26;
const EXP_MIN: f32 = -87.336_54;

/// `e^x` on every lane, within 2 ulp of the correctly rounded value on `[EXP_MIN, EXP_MAX]`, 0 below.
///
/// `x = n·ln 2 + r` with `n = round(x/ln 2)`, `|r| ≤ ln 2 / 2`; `e^r` by a degree-7 Taylor-like
/// minimax polynomial, and `2^n` built in the exponent bits. `n` is rounded by adding `1.5·2²³`, which
/// also leaves `n` in the low mantissa bits of the sum.
#[inline(always)]
fn exp<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let f = |v: f32| simd.splat_f32s(v);
    let clamped = simd.max_f32s(simd.min_f32s(x, f(EXP_MAX)), f(EXP_MIN));
    let magic = f(12_582_912.0);
    let shifted = simd.mul_add_f32s(clamped, f(std::f32::consts::LOG2_E), magic);
    let n = simd.sub_f32s(shifted, magic);
    let r = simd.negate_mul_add_f32s(n, f(LN2_HI), clamped);
    let r = simd.negate_mul_add_f32s(n, f(LN2_LO), r);
    let mut p = f(1.987_569_2e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        p = simd.mul_add_f32s(p, r, f(c));
    }
    let one_plus_r = simd.add_f32s(r, f(1.0));
    let e_r = simd.mul_add_f32s(p, simd.mul_f32s(r, r), one_plus_r);
    // bits(shifted) = bits(1.5·2²³) + n, so (bits − bits(1.5·2²³) + 127) << 23 is 2^n.
    let biased = simd.sub_u32s(
        simd.transmute_u32s_f32s(shifted),
        simd.splat_u32s(0x4B40_0000 - 127),
    );
    let pow2 = simd.transmute_f32s_u32s(simd.wrapping_dyn_shl_u32s(biased, simd.splat_u32s(23)));
    let value = simd.mul_f32s(e_r, pow2);
    simd.select_f32s(simd.less_than_f32s(x, f(EXP_MIN)), f(0.0), value)
}

/// The scalar `e^x` of the same accuracy, for slice tails.
#[inline(always)]
fn exp_scalar(x: f32) -> f32 {
    if x < EXP_MIN {
        0.0
    } else {
        x.min(EXP_MAX).exp()
    }
}

/// The flex tensor behind `tensor` as f32 data covering its whole buffer (copied when strided, offset or
/// not f32), or `None` when the backend is not flex or the tensor not f32.
/// [`contiguous_f32`], as a buffer this code may write: the tensor's own when nothing else holds it,
/// else a copy.
pub(super) fn owned_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Option<FlexTensor> {
    let mut flex = contiguous_f32(tensor)?;
    if flex.try_storage_mut::<f32>().is_none() {
        let mut copy = zeros_f32(flex.layout().shape().clone());
        copy.storage_mut::<f32>()
            .copy_from_slice(flex.storage::<f32>());
        flex = copy;
    }
    Some(flex)
}

pub(super) fn contiguous_f32<B: Backend, const D: usize>(
    tensor: Tensor<B, D>,
) -> Option<FlexTensor> {
    let tensor = into_flex(tensor).ok()?;
    if tensor.dtype() != DType::F32 {
        return None;
    }
    let contiguous = tensor.to_contiguous();
    drop(tensor); // the buffer stays unshared when it was
    Some(contiguous)
}

/// Log-softmax statistics of one row: `(max, ln Σ e^(z−max), Σ p·(z − max))`.
struct RowStats {
    max: f32,
    log_sum: f32,
    mean_shifted: f32,
}

impl RowStats {
    /// The statistics behind a known log-prob `log_p` of a logit `z` and entropy `entropy`:
    /// `lse = z − log p`, stored with a zero shift.
    fn from_forward(z: f32, log_p: f32, entropy: f32) -> Self {
        let log_sum = z - log_p;
        Self {
            max: 0.0,
            log_sum,
            mean_shifted: log_sum - entropy,
        }
    }

    /// `log p` of logit `z`.
    fn log_prob(&self, z: f32) -> f32 {
        z - self.max - self.log_sum
    }

    /// The entropy `−Σ p log p = ln Σ e^(z−max) − Σ p·(z − max)`.
    fn entropy(&self) -> f32 {
        self.log_sum - self.mean_shifted
    }
}

/// Two passes over `row`: its maximum, then `Σ e^(z−max)` and `Σ e^(z−max)·(z−max)`. NaN statistics
/// when the row holds a NaN or an infinity.
struct StatsKernel<'a> {
    row: &'a [f32],
}

impl WithSimd for StatsKernel<'_> {
    type Output = RowStats;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> RowStats {
        let (body, tail) = S::as_simd_f32s(self.row);
        let mut max = simd.splat_f32s(f32::NEG_INFINITY);
        let mut total = simd.splat_f32s(0.0);
        for &z in body {
            max = simd.max_f32s(max, z);
            total = simd.add_f32s(total, z);
        }
        let mut row_max = simd.reduce_max_f32s(max);
        let mut finite_check = simd.reduce_sum_f32s(total);
        for &z in tail {
            row_max = row_max.max(z);
            finite_check += z;
        }
        if !finite_check.is_finite() {
            return RowStats {
                max: f32::NAN,
                log_sum: f32::NAN,
                mean_shifted: f32::NAN,
            };
        }
        let shift = simd.splat_f32s(row_max);
        let (mut sum, mut weighted) = (simd.splat_f32s(0.0), simd.splat_f32s(0.0));
        for &z in body {
            let shifted = simd.sub_f32s(z, shift);
            let e = exp(simd, shifted);
            sum = simd.add_f32s(sum, e);
            weighted = simd.mul_add_f32s(e, shifted, weighted);
        }
        let (mut sum, mut weighted) = (simd.reduce_sum_f32s(sum), simd.reduce_sum_f32s(weighted));
        for &z in tail {
            let e = exp_scalar(z - row_max);
            sum += e;
            weighted += e * (z - row_max);
        }
        RowStats {
            max: row_max,
            log_sum: sum.ln(),
            mean_shifted: weighted / sum,
        }
    }
}

fn row_stats(row: &[f32]) -> RowStats {
    simd::arch().dispatch(StatsKernel { row })
}

/// Per row of `logits` (`[c, V]`, temperature already applied): the log-prob of its target and the
/// entropy of its softmax, as `[c, 2]`; the logits back when they are not a contiguous f32 flex tensor.
pub(crate) fn logprob_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[usize],
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let [c, v] = logits.dims();
    if !super::is_flex_f32(&logits) {
        return Err(logits);
    }
    let flex = contiguous_f32(logits).expect("checked flex f32");
    let z = flex.storage::<f32>();
    let mut out = zeros_f32([c, 2]);
    out.storage_mut::<f32>()
        .par_chunks_mut(2)
        .zip(z.par_chunks(v.max(1)))
        .zip(targets.par_iter())
        .for_each(|((out, row), &target)| {
            let stats = row_stats(row);
            out[0] = stats.log_prob(row[target]);
            out[1] = stats.entropy();
        });
    Ok(from_flex(out))
}

/// Overwrites one row of logits with `∂L/∂z = −p⊙(g_logp + g_H·(log p + H)) + g_logp·onehot(target)`.
struct GradKernel<'a> {
    row: &'a mut [f32],
    stats: RowStats,
    grad_logp: f32,
    grad_entropy: f32,
}

impl WithSimd for GradKernel<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let entropy = self.stats.entropy();
        let lse = self.stats.max + self.stats.log_sum;
        // −p·(g_l + g_H·(lp + H)) = p·(a + b·lp) with a = −(g_l + g_H·H), b = −g_H.
        let a = -(self.grad_logp + self.grad_entropy * entropy);
        let b = -self.grad_entropy;
        let (body, tail) = S::as_mut_simd_f32s(self.row);
        let (lse_s, a_s, b_s) = (simd.splat_f32s(lse), simd.splat_f32s(a), simd.splat_f32s(b));
        for z in body.iter_mut() {
            let log_p = simd.sub_f32s(*z, lse_s);
            let weight = simd.mul_add_f32s(b_s, log_p, a_s);
            *z = simd.mul_f32s(exp(simd, log_p), weight);
        }
        for z in tail {
            let log_p = *z - lse;
            *z = exp_scalar(log_p) * (a + b * log_p);
        }
    }
}

/// The gradient of `Σ g_logp·logp + g_H·H` with respect to the logits (`[c, V]`), written over the
/// logits buffer when nothing else holds it; the logits back when they are not contiguous f32 flex.
/// `grad_entropy` is `None` when no gradient flows through the entropy; `forward` holds the rows'
/// `(log p(target), H)` when known, which spares recomputing their statistics.
pub(crate) fn logprob_entropy_grad<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[usize],
    grad_logp: &[f32],
    grad_entropy: Option<&[f32]>,
    forward: Option<&[f32]>,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let [_, v] = logits.dims();
    if !super::is_flex_f32(&logits) {
        return Err(logits);
    }
    let mut flex = owned_f32(logits).expect("checked flex f32");
    let z = flex.storage_mut::<f32>();
    z.par_chunks_mut(v.max(1)).enumerate().for_each(|(i, row)| {
        let stats = match forward {
            Some(rows) => RowStats::from_forward(row[targets[i]], rows[2 * i], rows[2 * i + 1]),
            None => row_stats(row),
        };
        let grad_logp = grad_logp[i];
        simd::arch().dispatch(GradKernel {
            row,
            stats,
            grad_logp,
            grad_entropy: grad_entropy.map_or(0.0, |g| g[i]),
        });
        row[targets[i]] += grad_logp;
    });
    Ok(from_flex(flex))
}

/// `σ(a) = 1 / (1 + e^(−a))` on every lane.
#[inline(always)]
fn sigmoid<S: Simd>(simd: S, a: S::f32s) -> S::f32s {
    let one = simd.splat_f32s(1.0);
    simd.div_f32s(one, simd.add_f32s(one, exp(simd, simd.neg_f32s(a))))
}

fn sigmoid_scalar(a: f32) -> f32 {
    1.0 / (1.0 + exp_scalar(-a))
}

/// `out = silu(gate)⊙up` over one block.
struct SwigluKernel<'a> {
    gate: &'a [f32],
    up: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for SwigluKernel<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (gate, gate_tail) = S::as_simd_f32s(self.gate);
        let (up, up_tail) = S::as_simd_f32s(self.up);
        let (out, out_tail) = S::as_mut_simd_f32s(self.out);
        for ((o, &a), &b) in out.iter_mut().zip(gate).zip(up) {
            *o = simd.mul_f32s(simd.mul_f32s(a, sigmoid(simd, a)), b);
        }
        for ((o, &a), &b) in out_tail.iter_mut().zip(gate_tail).zip(up_tail) {
            *o = a * sigmoid_scalar(a) * b;
        }
    }
}

/// `∂gate = g⊙up⊙σ(a)(1 + a(1 − σ(a)))` and `∂up = g⊙silu(a)` over one block.
struct SwigluGradKernel<'a> {
    grad: &'a [f32],
    gate: &'a [f32],
    up: &'a [f32],
    grad_gate: &'a mut [f32],
    grad_up: &'a mut [f32],
}

impl WithSimd for SwigluGradKernel<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let one = simd.splat_f32s(1.0);
        let (grad, grad_tail) = S::as_simd_f32s(self.grad);
        let (gate, gate_tail) = S::as_simd_f32s(self.gate);
        let (up, up_tail) = S::as_simd_f32s(self.up);
        let (grad_gate, grad_gate_tail) = S::as_mut_simd_f32s(self.grad_gate);
        let (grad_up, grad_up_tail) = S::as_mut_simd_f32s(self.grad_up);
        let body = grad_gate.iter_mut().zip(grad_up.iter_mut());
        for ((((ga, gb), &g), &a), &b) in body.zip(grad).zip(gate).zip(up) {
            let s = sigmoid(simd, a);
            let silu = simd.mul_f32s(a, s);
            *gb = simd.mul_f32s(g, silu);
            // σ(a)(1 + a(1 − σ(a))) = σ(a) + silu(a)·(1 − σ(a))
            let dsilu = simd.mul_add_f32s(silu, simd.sub_f32s(one, s), s);
            *ga = simd.mul_f32s(simd.mul_f32s(g, b), dsilu);
        }
        let tail = grad_gate_tail.iter_mut().zip(grad_up_tail.iter_mut());
        for ((((ga, gb), &g), &a), &b) in tail.zip(grad_tail).zip(gate_tail).zip(up_tail) {
            let s = sigmoid_scalar(a);
            let silu = a * s;
            *gb = g * silu;
            *ga = g * b * (s + silu * (1.0 - s));
        }
    }
}

/// `silu(gate)⊙up`, or `None` when an operand is not a contiguous f32 flex tensor.
pub fn swiglu<B: Backend>(gate: &Tensor<B, 1>, up: &Tensor<B, 1>) -> Option<Tensor<B, 1>> {
    let (gate, up) = (contiguous_f32(gate.clone())?, contiguous_f32(up.clone())?);
    let (gate, up) = (gate.storage::<f32>(), up.storage::<f32>());
    let mut out = zeros_f32([gate.len()]);
    out.storage_mut::<f32>()
        .par_chunks_mut(BLOCK)
        .zip(gate.par_chunks(BLOCK).zip(up.par_chunks(BLOCK)))
        .for_each(|(out, (gate, up))| simd::arch().dispatch(SwigluKernel { gate, up, out }));
    Some(from_flex(out))
}

/// `(∂gate, ∂up)` of `silu(gate)⊙up` for upstream gradient `grad`, or `None` when an operand is not a
/// contiguous f32 flex tensor.
pub fn swiglu_grad<B: Backend>(
    grad: &Tensor<B, 1>,
    gate: &Tensor<B, 1>,
    up: &Tensor<B, 1>,
) -> Option<(Tensor<B, 1>, Tensor<B, 1>)> {
    let (grad, gate, up) = (
        contiguous_f32(grad.clone())?,
        contiguous_f32(gate.clone())?,
        contiguous_f32(up.clone())?,
    );
    let (grad, gate, up) = (
        grad.storage::<f32>(),
        gate.storage::<f32>(),
        up.storage::<f32>(),
    );
    let n = gate.len();
    let mut grad_gate = zeros_f32([n]);
    let mut grad_up = zeros_f32([n]);
    grad_gate
        .storage_mut::<f32>()
        .par_chunks_mut(BLOCK)
        .zip(grad_up.storage_mut::<f32>().par_chunks_mut(BLOCK))
        .zip(
            grad.par_chunks(BLOCK)
                .zip(gate.par_chunks(BLOCK))
                .zip(up.par_chunks(BLOCK)),
        )
        .for_each(|((grad_gate, grad_up), ((grad, gate), up))| {
            simd::arch().dispatch(SwigluGradKernel {
                grad,
                gate,
                up,
                grad_gate,
                grad_up,
            })
        });
    Some((from_flex(grad_gate), from_flex(grad_up)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SIMD `exp` against f64 `exp` over the whole f32 range that does not overflow, in ulps of the
    /// result, on both the SIMD body and the scalar tail.
    #[test]
    fn exp_is_within_two_ulp() {
        struct Exp<'a>(&'a [f32], &'a mut [f32]);
        impl WithSimd for Exp<'_> {
            type Output = ();
            fn with_simd<S: Simd>(self, simd: S) {
                let (x, _) = S::as_simd_f32s(self.0);
                let (y, _) = S::as_mut_simd_f32s(self.1);
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = exp(simd, x);
                }
            }
        }
        let xs: Vec<f32> = (0..=200_000)
            .map(|i| EXP_MIN + (EXP_MAX - EXP_MIN) * i as f32 / 200_000.0)
            .chain([0.0, -0.0, 1e-8, -1e-8, 1.0, -1.0])
            .collect();
        let mut ys = vec![f32::NAN; xs.len()];
        simd::arch().dispatch(Exp(&xs, &mut ys));
        let lanes = xs.len() - xs.len() % 16;
        for (i, &x) in xs.iter().enumerate() {
            let got = if i < lanes { ys[i] } else { exp_scalar(x) };
            let want = (x as f64).exp();
            let ulp = (want as f32).abs() * f32::EPSILON;
            assert!(
                ((got as f64) - want).abs() <= 2.0 * ulp as f64 + f32::MIN_POSITIVE as f64,
                "exp({x}) = {got}, want {want}"
            );
        }
        let mut below = [0.0f32; 16];
        below[..4].copy_from_slice(&[f32::NEG_INFINITY, -100.0, -1e30, -88.0]);
        let input = below;
        simd::arch().dispatch(Exp(&input, &mut below));
        assert_eq!(&below[..4], &[0.0; 4]);
    }
}
