//! `Linear`: a projection stored in Hugging Face layout (`weight` is `[d_out, d_in]`), so checkpoints load
//! and save without transposes.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::prelude::*;

use crate::lora::LoraAdapter;

/// A linear projection `y = x·Wᵀ + b` with `W` stored as `[d_out, d_in]` (PyTorch's layout).
///
/// # Shapes
/// - input: `[..., d_in]`
/// - output: `[..., d_out]`
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_out, d_in]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_out]`, when the projection has a bias.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// A LoRA adapter added to the output ([`crate::lora`]), when the model has one here.
    pub lora: Option<LoraAdapter<B>>,
}

impl<B: Backend> Linear<B> {
    /// A projection initialised like Hugging Face's `_init_weights`: weights `N(0, std²)`, bias zero.
    pub fn init(d_in: usize, d_out: usize, bias: bool, std: f64, device: &B::Device) -> Self {
        let weight = Initializer::Normal { mean: 0.0, std }.init_with(
            [d_out, d_in],
            Some(d_in),
            Some(d_out),
            device,
        );
        let bias = bias.then(|| Initializer::Zeros.init([d_out], device));
        Self {
            weight,
            bias,
            lora: None,
        }
    }

    /// Applies the projection (and its adapter, if any) to the last dimension.
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        let bias = self.bias.as_ref().map(Param::val);
        match &self.lora {
            None => project(input, self.weight.val(), bias),
            Some(adapter) => {
                project(input.clone(), self.weight.val(), bias) + adapter.forward(input)
            }
        }
    }

    /// `d_out`, the width of the output.
    pub fn d_out(&self) -> usize {
        self.weight.lazy_shape()[0]
    }
}

/// `x·Wᵀ + b` over the last dimension of `x`, with `W` in `[d_out, d_in]` layout.
///
/// Flattens the leading dimensions into one matrix product: CPU backends run a 2-D product with a
/// transposed (strided) right-hand side several times faster than a broadcast batched product.
/// On the flex backend (with the `flex` feature) a product of at most 16 rows — decoding at small batch,
/// where the time is the read of `W` — runs on this crate's own kernel ([`crate::flex`]), which draws
/// about twice the memory bandwidth of the GEMM's matrix–vector path.
///
/// # Shapes
/// - `input`: `[..., d_in]`, `weight`: `[d_out, d_in]`, `bias`: `[d_out]` → `[..., d_out]`
pub fn project<B: Backend, const D: usize>(
    input: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    let dims = input.dims();
    let d_in = dims[D - 1];
    let d_out = weight.dims()[0];
    let rows = dims[..D - 1].iter().product::<usize>();
    let out = matmul_transposed(input.reshape([rows, d_in]), weight);
    let out = match bias {
        Some(bias) => out + bias.unsqueeze(),
        None => out,
    };
    let mut out_dims = dims;
    out_dims[D - 1] = d_out;
    out.reshape(out_dims)
}

/// `x·Wᵀ`: one fused node under autodiff (contiguous weight gradient), the skinny-product kernel
/// where it applies.
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `weight`: `[d_out, d_in]` → `[rows, d_out]`
fn matmul_transposed<B: Backend>(x: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
    crate::fused::matmul_transposed(x, weight)
}
