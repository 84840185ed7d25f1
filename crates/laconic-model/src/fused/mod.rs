//! Fused autodiff ops: RMSNorm, SwiGLU and masked attention as single autodiff nodes with hand-written
//! backward passes, taken when the model runs under `Autodiff<I>`.
//!
//! Written as compositions of burn ops, each of these layers puts a dozen nodes on the autodiff tape,
//! and every node's backward is one or more full passes over an activation, several of them broadcast
//! reductions over strided gradients. As one node each, the forward saves only what the backward needs
//! and the backward is the few passes of the closed-form gradient:
//!
//! | op | backward |
//! |---|---|
//! | [`matmul_transposed`] `y = x·Wᵀ` | `∂x = g·W`, `∂W = gᵀ·x` (in `W`'s layout, not a transposed view) |
//! | [`rms_norm`] `y = x·r·w`, `r = 1/√(mean(x²)+ε)` | `∂x = r·(g⊙w) − x·r³·⟨g⊙w, x⟩/d`, `∂w = Σ_rows g⊙x·r` |
//! | [`swiglu`] `y = silu(a)⊙b` | `∂a = g⊙b⊙σ(a)(1 + a(1 − σ(a)))`, `∂b = g⊙silu(a)` |
//! | [`rotate_heads_first`] `y = rope(x)`, `[B,T,H,D]` → `[B,H,T,D]` | `∂x = rope⁻¹(g)` (sine negated), back to `[B,T,H,D]` |
//! | [`swap_heads`] `[B,T,H,D]` ↔ `[B,H,T,D]`, contiguous both ways | the same swap of `g` |
//! | [`attention`] `o = softmax(q·kᵀ·s, masked)·v`, by tiles (saves `o` and the row log-sum-exp, not `p`) | per tile: `p = exp(s − lse)`, `∂v = pᵀg`, `∂s = p⊙(g·vᵀ − Σ g⊙o)`, `∂q = ∂s·k·s`, `∂k = ∂sᵀq·s` ([`crate::flash`]) |
//! | [`checkpointed_layer`] a whole dense decoder layer, saving only its input | the layer's forward rerun on the inner backend, then the rows above chained by hand |
//!
//! The model code stays generic over `B: Backend`: each function here checks at run time whether `B` is
//! `Autodiff<I>` for an inner backend `I` compiled in (flex with the `flex` feature, ndarray with
//! `ndarray`, CUDA with `cuda`, wgpu with `wgpu`), and runs the fused node there; on any other backend — inference, or an autodiff backend
//! not listed — it runs the plain composition, which computes the same values. The unit tests check
//! values and gradients of each fused node against autodiff through the composition.

// Without an inner backend to route to, the fused nodes are only reached by their tests.
#![cfg_attr(
    not(any(
        feature = "flex",
        feature = "ndarray",
        feature = "cuda",
        feature = "wgpu"
    )),
    allow(unused)
)]

mod attention;
mod heads;
mod layer;
mod linear;
mod norm;
mod rope;
mod swiglu;

use std::any::{Any, TypeId};

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use burn::tensor::TensorPrimitive;

pub(crate) use attention::attention;
pub(crate) use heads::swap_heads;
pub(crate) use layer::checkpointed_layer;
pub(crate) use linear::matmul_transposed;
pub(crate) use norm::rms_norm;
pub(crate) use rope::rotate_heads_first;
pub(crate) use swiglu::swiglu;

/// The autodiff backend the fused nodes are recorded on, over inner backend `I`.
pub(crate) type Ad<I> = Autodiff<I, NoCheckpointing>;

/// Whether `A` and `B` are the same type.
pub(crate) fn same_type<A: 'static, B: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<B>()
}

/// `value` as type `U`, which must be its own type (checked with [`same_type`] before).
pub(crate) fn cast<T: 'static, U: 'static>(value: T) -> U {
    let boxed: Box<dyn Any> = Box::new(value);
    *boxed
        .downcast::<U>()
        .expect("cast between one type under two names (checked with same_type)")
}

/// `value` as type `U`, which must be its own type (checked with [`same_type`] before).
pub(crate) fn cast_ref<T: 'static, U: 'static>(value: &T) -> &U {
    (value as &dyn Any)
        .downcast_ref::<U>()
        .expect("cast between one type under two names (checked with same_type)")
}

/// Runs `$fused` with `$I` bound to the inner backend when `$B` is `Autodiff<$I>` for one of the inner
/// backends compiled in, returning its value from the enclosing function.
macro_rules! on_autodiff {
    ($B:ty, $I:ident => $fused:expr) => {
        #[cfg(feature = "flex")]
        {
            type $I = burn::backend::Flex;
            if $crate::fused::same_type::<$B, $crate::fused::Ad<$I>>() {
                return $fused;
            }
        }
        #[cfg(feature = "ndarray")]
        {
            type $I = burn::backend::NdArray;
            if $crate::fused::same_type::<$B, $crate::fused::Ad<$I>>() {
                return $fused;
            }
        }
        #[cfg(feature = "cuda")]
        {
            type $I = burn::backend::Cuda;
            if $crate::fused::same_type::<$B, $crate::fused::Ad<$I>>() {
                return $fused;
            }
        }
        #[cfg(feature = "wgpu")]
        {
            type $I = burn::backend::Wgpu;
            if $crate::fused::same_type::<$B, $crate::fused::Ad<$I>>() {
                return $fused;
            }
        }
    };
}
pub(crate) use on_autodiff;

/// Records `$output` (a primitive of the inner backend) as one autodiff node whose backward is
/// `$backward` and whose parents are the autodiff primitives listed; `$state` is evaluated (and kept for
/// the backward) only when a parent tracks gradients. Evaluates to the node's tensor.
macro_rules! record {
    ($backward:expr, [$($parent:expr),+], $output:expr, $state:expr) => {{
        use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
        use burn::backend::autodiff::ops::{Backward as _, OpsKind};
        let output = $output;
        let node = match $backward
            .prepare::<NoCheckpointing>([$($parent.node.clone()),+])
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
    use burn::tensor::{Distribution, Tolerance};

    /// A tensor of normal samples with standard deviation `std`.
    pub(crate) fn random<B: Backend, const D: usize>(shape: [usize; D], std: f64) -> Tensor<B, D> {
        Tensor::random(shape, Distribution::Normal(0.0, std), &Default::default())
    }

    /// `a` and `b` agree to 1e-5 (absolute and relative).
    pub(crate) fn assert_close<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) {
        a.into_data()
            .assert_approx_eq::<f32>(&b.into_data(), Tolerance::rel_abs(1e-5, 1e-5));
    }
}
