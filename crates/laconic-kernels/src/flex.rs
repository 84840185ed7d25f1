//! Kernels for the flex backend, taken at run time when the backend is flex and the operands are f32;
//! each returns `None` (or hands its input back) otherwise, and its caller — the one total op that owns
//! the math, in this crate or in laconic-model — runs its composition of burn ops. Safe code: tensors
//! are downcast by type id ([`crate::downcast`]), SIMD goes through `pulp` with run-time dispatch.
//!
//! - **Skinny products** `X·Wᵀ` with a few rows of `X` (decoding at small batch). Decoding a handful of
//!   sequences streams every weight once per step, so its speed is the memory bandwidth those products
//!   draw. burn-flex hands a one-row product to its GEMM's matrix–vector kernel, which reads one weight
//!   row at a time on one thread (~10 GB/s here), and packs the weight for a few-row one.
//!   [`skinny_product`] reads eight weight rows side by side on all threads, with the widest SIMD the CPU
//!   has (chosen at run time): ~2× the bandwidth at one row.
//! - **In-place cache writes.** burn-flex's `slice_assign` copies the whole destination on every call
//!   (it keeps a second handle to it while writing), so appending one token to a KV cache would copy the
//!   cache. [`write_columns`] writes the new columns into the buffer itself when nothing else holds it.
//! - **Row and elementwise kernels**: a SIMD `exp` (burn-flex calls libm one lane at a time) behind the
//!   LM-head log-prob/entropy statistics and their gradient and SwiGLU (`rows.rs`), RoPE fused with the
//!   heads-first layout change and the layout swap itself (`rope.rs`), RMSNorm (`norm.rs`) and the AdamW
//!   update (`adamw.rs`), each one to three passes where burn ops take up to a dozen.

mod adamw;
mod norm;
mod rope;
mod rows;

use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use burn_flex::FlexTensor;
use pulp::{Simd, WithSimd};

use crate::simd;
use rayon::prelude::*;

pub(crate) use adamw::adamw_step;
pub use norm::{rms_norm, rms_norm_grad};
pub use rope::{rotate_heads_first, swap_middle, unrotate_heads_last};
use rows::{contiguous_f32, owned_f32};
pub(crate) use rows::{logprob_entropy, logprob_entropy_grad};
pub use rows::{swiglu, swiglu_grad};

use crate::downcast::{cast, same_type};

/// The most rows of `X` the kernel takes; taller products go to the GEMM, which is compute-bound there.
pub const MAX_ROWS: usize = 16;

/// Most weight rows one task reads. Smaller products are cut into about four tasks per thread (at least
/// [`MIN_TASK_ROWS`] rows each), so every thread gets work and stealing evens out the load.
const TASK_ROWS: usize = 256;

/// Fewest weight rows one task reads: one tile of the one-row kernel.
const MIN_TASK_ROWS: usize = 8;

/// The flex primitive of a float tensor, or the tensor back when the backend is not flex.
fn into_flex<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<FlexTensor, Tensor<B, D>> {
    if !is_flex::<B>() {
        return Err(tensor);
    }
    Ok(cast(tensor.into_primitive().tensor()))
}

/// A zeroed contiguous f32 flex tensor of `shape`, in one allocation. (burn-flex's `FlexTensor::empty`
/// zero-fills a byte vector and then copies it into a second, 16-byte-aligned allocation, so every
/// output built through it costs a fill, a copy and two allocations.)
fn zeros_f32(shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::filled_typed(shape.into(), DType::F32, 0.0f32)
}

/// Whether `B` is the flex backend.
pub fn is_flex<B: Backend>() -> bool {
    same_type::<B::FloatTensorPrimitive, FlexTensor>()
}

/// Whether `tensor` is an f32 tensor of the flex backend.
pub(crate) fn is_flex_f32<B: Backend, const D: usize>(tensor: &Tensor<B, D>) -> bool {
    is_flex::<B>() && tensor.dtype() == DType::F32
}

/// A float tensor of backend `B` from a flex primitive; `B` must be flex (checked by [`into_flex`]).
fn from_flex<B: Backend, const D: usize>(tensor: FlexTensor) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(cast(tensor)))
}

/// `X·Wᵀ` on the flex backend, or `None` when `B` is not flex, `X` has more than [`MAX_ROWS`] rows or an
/// operand is not contiguous f32.
///
/// # Shapes
/// - `x`: `[m, d_in]`, `weight`: `[d_out, d_in]` → `[m, d_out]`
pub fn skinny_product<B: Backend>(x: &Tensor<B, 2>, weight: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    let [m, d_in] = x.dims();
    let [d_out, w_in] = weight.dims();
    if m == 0 || m > MAX_ROWS || d_in == 0 || d_in != w_in {
        return None;
    }
    let x = into_flex(x.clone()).ok()?;
    let weight = into_flex(weight.clone()).ok()?;
    let (x, w) = (x.as_slice::<f32>()?, weight.as_slice::<f32>()?);

    let mut out = zeros_f32([m, d_out]);
    product(x, w, d_in, out.storage_mut::<f32>());
    Some(from_flex(out))
}

/// Writes `value` (`[B, H, T, D]`) into columns `start..start + T` of `buffer` (`[B, H, S, D]`) in place
/// and returns the buffer, or gives both back when `B` is not flex, the buffer is shared or not
/// contiguous, or the dtypes differ or are not floats.
#[allow(clippy::type_complexity)]
pub fn write_columns<B: Backend>(
    buffer: Tensor<B, 4>,
    start: usize,
    value: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
    let [b, h, columns, d] = buffer.dims();
    let [vb, vh, t, vd] = value.dims();
    if (vb, vh, vd) != (b, h, d) || start + t > columns {
        return Err((buffer, value));
    }
    let mut buffer = match into_flex(buffer) {
        Ok(buffer) => buffer,
        Err(buffer) => return Err((buffer, value)),
    };
    let value = into_flex::<B, 4>(value)
        .expect("value has the buffer's backend")
        .to_contiguous();
    let shape = [b, h, columns, d];
    let written = buffer.is_contiguous()
        && buffer.layout().start_offset() == 0
        && buffer.dtype() == value.dtype()
        && match buffer.dtype() {
            DType::F32 => copy_columns::<f32>(&mut buffer, &value, shape, start, t),
            DType::F16 => copy_columns::<half::f16>(&mut buffer, &value, shape, start, t),
            DType::BF16 => copy_columns::<half::bf16>(&mut buffer, &value, shape, start, t),
            _ => false,
        };
    if written {
        Ok(from_flex(buffer))
    } else {
        Err((from_flex(buffer), from_flex(value)))
    }
}

/// The copy behind [`write_columns`]: each `[t, D]` block of `value` lands at column `start` of its
/// `[S, D]` block of `buffer` (of shape `[B, H, S, D]`). `false` (nothing written) when the buffer is
/// shared or its storage is larger than its shape.
fn copy_columns<E: burn::tensor::Element + bytemuck::Pod>(
    buffer: &mut FlexTensor,
    value: &FlexTensor,
    [b, h, columns, d]: [usize; 4],
    start: usize,
    t: usize,
) -> bool {
    let source = value.storage::<E>();
    let Some(target) = buffer.try_storage_mut::<E>() else {
        return false;
    };
    if target.len() != b * h * columns * d || source.len() != b * h * t * d {
        return false;
    }
    let block = t * d;
    for (target, source) in target
        .chunks_exact_mut(columns * d)
        .zip(source.chunks_exact(block))
    {
        target[start * d..start * d + block].copy_from_slice(source);
    }
    true
}

/// `out[i, j] = Σ_k x[i, k]·w[j, k]` for row-major `x` (`m` rows), `w` and `out`, split across the
/// thread pool by rows of `w`.
fn product(x: &[f32], w: &[f32], d_in: usize, out: &mut [f32]) {
    let m = x.len() / d_in;
    let d_out = w.len() / d_in;
    let tasks_wanted = 4 * rayon::current_num_threads();
    let task_rows = TASK_ROWS
        .min(d_out.div_ceil(tasks_wanted))
        .max(MIN_TASK_ROWS);
    if m == 1 {
        out.par_chunks_mut(task_rows)
            .zip(w.par_chunks(task_rows * d_in))
            .for_each(|(out, w)| product_serial(x, w, d_in, out));
        return;
    }
    // Each task writes its weight rows' outputs as `[rows, m]`, contiguous; transposed at the end.
    let mut out_t = vec![0.0f32; d_out * m];
    out_t
        .par_chunks_mut(task_rows * m)
        .zip(w.par_chunks(task_rows * d_in))
        .for_each(|(out_t, w)| product_serial(x, w, d_in, out_t));
    for (j, column) in out_t.chunks_exact(m).enumerate() {
        for (i, &value) in column.iter().enumerate() {
            out[i * d_out + j] = value;
        }
    }
}

/// [`product`] on one thread, writing `out_t[j, i]`, in the widest SIMD the CPU has.
fn product_serial(x: &[f32], w: &[f32], d_in: usize, out_t: &mut [f32]) {
    simd::arch().dispatch(ProductSerial { x, w, d_in, out_t });
}

/// The operands of [`product_serial`], as a `pulp` operation generic over the SIMD instruction set.
struct ProductSerial<'a> {
    x: &'a [f32],
    w: &'a [f32],
    d_in: usize,
    out_t: &'a mut [f32],
}

impl WithSimd for ProductSerial<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        // Eight weight rows (eight pages: eight memory streams in flight) by one or two rows of `x`;
        // sixteen running sums need AVX-512's 32 registers, so narrower SIMD takes four weight rows.
        let wide = std::mem::size_of::<S::f32s>() >= 64;
        match (self.x.len() / self.d_in, wide) {
            (1, _) => tile_loop::<S, 8, 1>(simd, self),
            (_, true) => tile_loop::<S, 8, 2>(simd, self),
            (_, false) => tile_loop::<S, 4, 2>(simd, self),
        }
    }
}

/// Walks `R` weight rows at a time (held in L1 while every group of `C` rows of `x` passes over them).
/// Short groups repeat their last row; only real outputs are written.
#[inline(always)]
fn tile_loop<S: Simd, const R: usize, const C: usize>(simd: S, op: ProductSerial<'_>) {
    let ProductSerial { x, w, d_in, out_t } = op;
    let m = x.len() / d_in;
    for (w_block, out_block) in w.chunks(R * d_in).zip(out_t.chunks_mut(R * m)) {
        let w_rows = w_block.len() / d_in;
        let w_tile: [&[f32]; R] = std::array::from_fn(|r| row(w_block, d_in, r.min(w_rows - 1)));
        for first in (0..m).step_by(C) {
            let x_rows = C.min(m - first);
            let x_tile: [&[f32]; C] =
                std::array::from_fn(|c| row(x, d_in, first + c.min(x_rows - 1)));
            let dots = tile::<S, R, C>(simd, w_tile, x_tile);
            for (r, dots) in dots.iter().enumerate().take(w_rows) {
                out_block[r * m + first..r * m + first + x_rows].copy_from_slice(&dots[..x_rows]);
            }
        }
    }
}

/// Row `i` of a row-major matrix with `d_in` columns.
#[inline(always)]
fn row(data: &[f32], d_in: usize, i: usize) -> &[f32] {
    &data[i * d_in..(i + 1) * d_in]
}

/// The `R × C` dot products of `R` weight rows with `C` rows of `x`, one SIMD running sum each.
#[inline(always)]
fn tile<S: Simd, const R: usize, const C: usize>(
    simd: S,
    w: [&[f32]; R],
    x: [&[f32]; C],
) -> [[f32; C]; R] {
    let (x0_simd, x0_tail) = S::as_simd_f32s(x[0]);
    let lanes = x0_simd.len();
    let head = x[0].len() - x0_tail.len();
    // Sliced to one length so the compiler drops the bounds checks in the loop.
    let w_simd = w.map(|row| &S::as_simd_f32s(row).0[..lanes]);
    let x_simd = x.map(|row| &S::as_simd_f32s(row).0[..lanes]);
    let zero = simd.splat_f32s(0.0);
    let mut sums = [[zero; C]; R];
    for k in 0..lanes {
        let mut x_k = [zero; C];
        for c in 0..C {
            x_k[c] = x_simd[c][k];
        }
        for r in 0..R {
            let w_k = w_simd[r][k];
            for c in 0..C {
                sums[r][c] = simd.mul_add_f32s(w_k, x_k[c], sums[r][c]);
            }
        }
    }
    let mut dots = [[0.0f32; C]; R];
    for r in 0..R {
        for c in 0..C {
            let tail: f32 = w[r][head..]
                .iter()
                .zip(&x[c][head..])
                .map(|(a, b)| a * b)
                .sum();
            dots[r][c] = horizontal_sum::<S>(sums[r][c]) + tail;
        }
    }
    dots
}

/// The sum of a SIMD vector's lanes, through a store to the stack (pulp's own reduction is not inlined
/// into the dispatched code and costs more than the store).
#[inline(always)]
fn horizontal_sum<S: Simd>(value: S::f32s) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (slots, _) = S::as_mut_simd_f32s(&mut lanes);
    slots[0] = value;
    let width = 16 / slots.len().max(1);
    lanes[..width].iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unique buffer gets the new columns in place; a buffer with another handle is left alone (the
    /// caller falls back to `slice_assign`), so the other handle never sees the write.
    #[test]
    fn cache_columns_are_written_in_place_only_when_unshared() {
        type Flex = burn::backend::Flex;
        let device = Default::default();
        let buffer = Tensor::<Flex, 4>::zeros([2, 1, 3, 2], &device);
        let value = Tensor::<Flex, 4>::from_floats([[[[1.0, 2.0]]], [[[3.0, 4.0]]]], &device);

        let other = buffer.clone();
        let Err((buffer, value)) = write_columns(buffer, 1, value) else {
            panic!("a shared buffer was written in place");
        };
        assert_eq!(other.into_data().to_vec::<f32>().unwrap(), vec![0.0; 12]);

        let written =
            write_columns(buffer, 1, value).expect("an unshared buffer is written in place");
        let expected = [0., 0., 1., 2., 0., 0., 0., 0., 3., 4., 0., 0.];
        assert_eq!(written.into_data().to_vec::<f32>().unwrap(), expected);
    }

    /// The kernel against plain f64 dot products, on shapes with every kind of remainder: rows of `W` not
    /// a multiple of a tile or a task, rows of `X` not a multiple of a tile, columns not a multiple of
    /// the SIMD width.
    #[test]
    fn product_matches_f64_dot_products() {
        let shapes = [
            (1, 1, 1),
            (1, 3, 7),
            (2, 4, 8),
            (3, 13, 37),
            (5, 1030, 200),
            (16, 517, 64),
        ];
        for (m, d_out, d_in) in shapes {
            let w: Vec<f32> = (0..d_out * d_in)
                .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0)
                .collect();
            let x: Vec<f32> = (0..m * d_in)
                .map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 300.0)
                .collect();
            let mut out = vec![f32::NAN; m * d_out];
            product(&x, &w, d_in, &mut out);
            for i in 0..m {
                for j in 0..d_out {
                    let (x, w) = (&x[i * d_in..(i + 1) * d_in], &w[j * d_in..(j + 1) * d_in]);
                    let want: f64 = x.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let scale: f64 = x
                        .iter()
                        .zip(w)
                        .map(|(&a, &b)| (a as f64 * b as f64).abs())
                        .sum();
                    let got = out[i * d_out + j] as f64;
                    assert!(
                        (got - want).abs() <= 1e-6 * scale.max(1.0),
                        "{m}x{d_in} · ({d_out}x{d_in})ᵀ at [{i}, {j}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}
