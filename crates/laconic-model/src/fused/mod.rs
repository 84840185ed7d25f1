//! The machinery of the fused autodiff nodes: RMSNorm, SwiGLU, RoPE, the heads-layout swap, projections
//! and attention recorded as single autodiff nodes with hand-written backward passes, each defined in
//! its op's own file beside the module that calls it (`norm.rs`, `mlp.rs`, `rope.rs`, `attention.rs`,
//! `linear.rs`, `flash.rs`), plus the per-layer recompute node here (`layer.rs`).
//!
//! Written as compositions of burn ops, each of these layers puts a dozen nodes on the autodiff tape,
//! and every node's backward is one or more full passes over an activation, several of them broadcast
//! reductions over strided gradients. As one node each, the forward saves only what the backward needs
//! and the backward is the few passes of the closed-form gradient:
//!
//! | op | backward |
//! |---|---|
//! | `linear::matmul_transposed` `y = x·Wᵀ` | `∂x = g·W`, `∂W = gᵀ·x` (in `W`'s layout, not a transposed view) |
//! | `norm::rms_norm` `y = x·r·w`, `r = 1/√(mean(x²)+ε)` | `∂x = r·(g⊙w) − x·r³·⟨g⊙w, x⟩/d`, `∂w = Σ_rows g⊙x·r` |
//! | `mlp::swiglu` `y = silu(a)⊙b` | `∂a = g⊙b⊙σ(a)(1 + a(1 − σ(a)))`, `∂b = g⊙silu(a)` |
//! | `rope::rotate_heads_first` `y = rope(x)`, `[B,T,H,D]` → `[B,H,T,D]` | `∂x = rope⁻¹(g)` (sine negated), back to `[B,T,H,D]` |
//! | `attention::swap_heads` `[B,T,H,D]` ↔ `[B,H,T,D]`, contiguous both ways | the same swap of `g` |
//! | `flash::attention` `o = softmax(q·kᵀ·s, masked)·v`, by tiles (saves `o` and the row log-sum-exp, not `p`) | per tile: `p = exp(s − lse)`, `∂v = pᵀg`, `∂s = p⊙(g·vᵀ − Σ g⊙o)`, `∂q = ∂s·k·s`, `∂k = ∂sᵀq·s` |
//! | [`checkpointed_layer`] a whole dense decoder layer, saving only its input | the layer's forward rerun on the inner backend, then the rows above chained by hand |
//!
//! The model code stays generic over `B: Backend`: each op checks at run time ([`on_autodiff`])
//! whether `B` is `Autodiff<I, C>` for an inner backend `I` compiled in (flex with the `flex` feature,
//! ndarray with `ndarray`, CUDA with `cuda`, wgpu with `wgpu`) and either checkpointing strategy `C`,
//! and records its node there; on any other backend — inference — it runs the plain composition, which
//! computes the same values. The backward formulas are plain burn code, so a node runs wherever its
//! inner backend runs; the flex SIMD kernels (laconic-kernels) are an inner detail of the forward and
//! backward functions. Each op's tests check values and gradients of its node against autodiff through
//! the composition, on the crate's test backend (ndarray, or wgpu / CUDA with `test-wgpu` /
//! `test-cuda`) and on flex.

mod layer;

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::TensorPrimitive;

pub(crate) use laconic_kernels::downcast::{cast, cast_ref, same_type};
pub(crate) use layer::checkpointed_layer;

/// The autodiff backend the fused nodes are recorded on, over inner backend `I` with checkpointing
/// strategy `C` (the tests' default: none).
pub(crate) type Ad<I, C = NoCheckpointing> = Autodiff<I, C>;

/// Runs `$fused` with `$I` bound to the inner backend and `$C` to the checkpointing strategy when `$B`
/// is `Autodiff<$I, $C>` for one of the inner backends compiled in and either strategy, returning its
/// value from the enclosing function.
macro_rules! on_autodiff {
    ($B:ty, $I:ident, $C:ident => $fused:expr) => {
        #[cfg(feature = "flex")]
        $crate::fused::on_autodiff!(@inner $B, burn::backend::Flex, $I, $C => $fused);
        #[cfg(feature = "ndarray")]
        $crate::fused::on_autodiff!(@inner $B, burn::backend::NdArray, $I, $C => $fused);
        #[cfg(feature = "cuda")]
        $crate::fused::on_autodiff!(@inner $B, burn::backend::Cuda, $I, $C => $fused);
        #[cfg(feature = "wgpu")]
        $crate::fused::on_autodiff!(@inner $B, burn::backend::Wgpu, $I, $C => $fused);
    };
    (@inner $B:ty, $inner:ty, $I:ident, $C:ident => $fused:expr) => {
        $crate::fused::on_autodiff!(@strategy $B, $inner, $I, $C,
            burn::backend::autodiff::checkpoint::strategy::NoCheckpointing => $fused);
        $crate::fused::on_autodiff!(@strategy $B, $inner, $I, $C,
            burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing => $fused);
    };
    (@strategy $B:ty, $inner:ty, $I:ident, $C:ident, $strategy:ty => $fused:expr) => {{
        type $I = $inner;
        type $C = $strategy;
        if $crate::fused::same_type::<$B, burn::backend::Autodiff<$I, $C>>() {
            return $fused;
        }
    }};
}
pub(crate) use on_autodiff;

/// Records `$output` (a primitive of the inner backend) as one autodiff node, under checkpointing
/// strategy `$C`, whose backward is
/// `$backward` and whose parents are the autodiff primitives listed; `$state` is evaluated (and kept for
/// the backward) only when a parent tracks gradients. Evaluates to the node's tensor.
macro_rules! record {
    ($C:ty, $backward:expr, [$($parent:expr),+], $output:expr, $state:expr) => {{
        use burn::backend::autodiff::ops::{Backward as _, OpsKind};
        let output = $output;
        let node = match $backward
            .prepare::<$C>([$($parent.node.clone()),+])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish($state, output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        $crate::fused::float(node)
    }};
}
pub(crate) use record;

/// A float tensor from its primitive.
pub(crate) fn float<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// The primitive of a float tensor.
pub(crate) fn primitive<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> FloatTensor<B> {
    tensor.into_primitive().tensor()
}

/// Stores `gradient` for the parent `node`, when that parent takes gradients and one was computed.
pub(crate) fn register<B: Backend, const D: usize>(
    grads: &mut burn::backend::autodiff::grads::Gradients,
    node: Option<NodeId>,
    gradient: Option<Tensor<B, D>>,
) {
    if let (Some(node), Some(gradient)) = (node, gradient) {
        grads.register::<B>(node, primitive(gradient));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use burn::prelude::*;
    use burn::tensor::Tolerance;

    use crate::seed::Stream;

    /// A tensor of `N(0, std²)` samples, the next draws of `stream`: every run and machine tests the
    /// same numbers for a seed.
    pub(crate) fn random<B: Backend, const D: usize>(
        stream: &mut Stream,
        shape: [usize; D],
        std: f64,
    ) -> Tensor<B, D> {
        crate::normal_tensor(stream, shape, std, &Default::default())
    }

    /// `a` and `b` agree to 1e-5 (absolute and relative).
    pub(crate) fn assert_close<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) {
        a.into_data()
            .assert_approx_eq::<f32>(&b.into_data(), Tolerance::rel_abs(1e-5, 1e-5));
    }
}
