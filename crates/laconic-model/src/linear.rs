//! `Linear`: a projection stored in Hugging Face layout (`weight` is `[d_out, d_in]`), so checkpoints load
//! and save without transposes.
//!
//! Under training the product `x·Wᵀ` is one autodiff node whose weight gradient comes out in `W`'s own
//! layout (see [`crate::fused`]); decoding's few-row products run laconic-kernels' skinny product on
//! flex.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;

use crate::fused::{cast, float, on_autodiff, primitive, record, register, Ad};
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

// The projection `x·Wᵀ` as one autodiff node. Through burn's ops, `x.matmul(w.transpose())` records a transpose node, so the weight's
// gradient is the transpose of a contiguous product: a strided view that gradient clipping and
// the optimizer then walk element by element or copy. This node computes `∂W = gᵀ·x` (`[d_out,
// d_in]`) directly.

/// `x·Wᵀ`: one fused node under autodiff, the skinny-product kernel or burn's product otherwise.
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `weight`: `[d_out, d_in]` → `[rows, d_out]`
fn matmul_transposed<B: Backend>(x: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
    on_autodiff!(B, I, C => cast(linear_node::<I, C>(cast(x), cast(weight))));
    product(x, weight)
}

/// `x·Wᵀ` on a plain backend.
pub(crate) fn product<B: Backend>(x: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
    #[cfg(feature = "flex")]
    if let Some(out) = laconic_kernels::flex::skinny_product(&x, &weight) {
        return out;
    }
    x.matmul(weight.transpose())
}

/// Both operands.
#[derive(Debug, Clone)]
struct LinearState<B: Backend> {
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
}

#[derive(Debug)]
struct LinearBackward;

impl<B: Backend> Backward<B, 2> for LinearBackward {
    type State = LinearState<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = float::<B, 2>(grads.consume::<B>(&ops.node));
        let (x, weight) = (float::<B, 2>(ops.state.x), float::<B, 2>(ops.state.weight));
        let (grad_x, grad_weight) =
            product_backward(x, weight, grad, (node_x.is_some(), node_weight.is_some()));
        register(grads, node_x, grad_x);
        register(grads, node_weight, grad_weight);
    }
}

/// `(∂x, ∂W)` of `y = x·Wᵀ` for the upstream gradient `g`: `∂x = g·W`, `∂W = gᵀ·x` (each only when
/// wanted).
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `weight`: `[d_out, d_in]`, `grad`: `[rows, d_out]`
pub(crate) fn product_backward<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    grad: Tensor<B, 2>,
    (want_x, want_weight): (bool, bool),
) -> (Option<Tensor<B, 2>>, Option<Tensor<B, 2>>) {
    let grad_weight = want_weight.then(|| grad.clone().transpose().matmul(x));
    let grad_x = want_x.then(|| grad.matmul(weight));
    (grad_x, grad_weight)
}

/// The fused node on `Autodiff<I, C>`.
fn linear_node<I: Backend, C: CheckpointStrategy>(
    x: Tensor<Ad<I, C>, 2>,
    weight: Tensor<Ad<I, C>, 2>,
) -> Tensor<Ad<I, C>, 2> {
    let x = x.into_primitive().tensor();
    let weight = weight.into_primitive().tensor();
    let output = primitive(product(
        float::<I, 2>(x.primitive.clone()),
        float::<I, 2>(weight.primitive.clone()),
    ));
    record!(
        C,
        LinearBackward,
        [x, weight],
        output,
        LinearState {
            x: x.primitive,
            weight: weight.primitive,
        }
    )
}

#[cfg(test)]
mod node_tests {
    use super::*;
    use crate::fused::tests::{assert_close, random};
    use crate::TestBackend;

    /// Values and gradients of the node equal autodiff through `x.matmul(w.transpose())`.
    #[test]
    fn fused_node_matches_composition() {
        check::<TestBackend>();
        #[cfg(feature = "flex")]
        check::<burn::backend::Flex>();
    }

    fn check<I: Backend>() {
        let mut stream = crate::seed::Stream::new(11);
        let x = random::<I, 2>(&mut stream, [5, 7], 1.0);
        let weight = random::<I, 2>(&mut stream, [3, 7], 1.0);
        let upstream = random::<I, 2>(&mut stream, [5, 3], 1.0);
        let run = |fused: bool| {
            let x = Tensor::<Ad<I>, 2>::from_inner(x.clone()).require_grad();
            let w = Tensor::<Ad<I>, 2>::from_inner(weight.clone()).require_grad();
            let y = if fused {
                linear_node(x.clone(), w.clone())
            } else {
                x.clone().matmul(w.clone().transpose())
            };
            let loss = (y.clone() * Tensor::from_inner(upstream.clone())).sum();
            let grads = loss.backward();
            (y.inner(), x.grad(&grads).unwrap(), w.grad(&grads).unwrap())
        };
        let (y0, gx0, gw0) = run(false);
        let (y1, gx1, gw1) = run(true);
        assert_close(y0, y1);
        assert_close(gx0, gx1);
        assert_close(gw0, gw1);
    }
}
