//! Global gradient-norm clipping (`grad_clip`).
//!
//! `‖g‖ = sqrt(Σ_p ‖g_p‖²)` over **all** parameters, then every gradient is scaled by
//! `min(1, max_norm / (‖g‖ + 1e-6))` (`torch.nn.utils.clip_grad_norm_`). burn's
//! `GradientClipping::Norm` clips each tensor by its own norm instead, which changes the update's
//! direction; it is not used. The pre-clip norm is reported as `actor/grad_norm`.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// Added to the norm in the scale, as PyTorch does, so a zero gradient divides safely.
pub const CLIP_EPSILON: f64 = 1e-6;

/// `sqrt(Σ_p ‖g_p‖²)` over the parameters of `module` that have a gradient in `grads` (one
/// device→host transfer).
pub fn global_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> f64 {
    let mut visitor = SquaredNorms::<B> {
        grads,
        squares: Vec::new(),
    };
    module.visit(&mut visitor);
    sum_of_squares(visitor.squares).sqrt()
}

/// `Σ_t ‖t‖²` given each tensor's `‖t‖²` (as `[1]` tensors), summed on the device in the given
/// order: one device→host transfer. ZeRO ([`crate::zero`]) sums the same way as stage 0.
pub(crate) fn sum_of_squares<B: Backend>(squares: Vec<Tensor<B, 1>>) -> f64 {
    if squares.is_empty() {
        return 0.0;
    }
    summed(squares).into_scalar().elem::<f64>()
}

/// The sum of `[1]` tensors as a `[1]` tensor, on the device (`squares` not empty).
pub(crate) fn summed<B: Backend>(squares: Vec<Tensor<B, 1>>) -> Tensor<B, 1> {
    Tensor::cat(squares, 0).sum()
}

/// The factor that brings a gradient of global norm `norm` to at most `max_norm`, when it must
/// shrink (`None`: leave the gradients as they are).
pub(crate) fn clip_scale(norm: f64, max_norm: f32) -> Option<f64> {
    let scale = f64::from(max_norm) / (norm + CLIP_EPSILON);
    (max_norm > 0.0 && norm.is_finite() && scale < 1.0).then_some(scale)
}

/// Clips the gradients of `module` in place to a global norm of at most `max_norm` and returns the
/// pre-clip norm. `max_norm = 0` only measures. A non-finite norm leaves the gradients untouched
/// (the caller refuses the update).
pub fn clip_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f32,
) -> f64 {
    let norm = global_grad_norm(module, grads);
    if let Some(scale) = clip_scale(norm, max_norm) {
        let mut visitor = Scale::<B> {
            grads,
            scale,
            phantom: std::marker::PhantomData,
        };
        module.visit(&mut visitor);
    }
    norm
}

struct SquaredNorms<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    squares: Vec<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorms<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            self.squares.push(grad.square().sum());
        }
    }
}

struct Scale<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    scale: f64,
    phantom: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads
                .register::<B::InnerBackend, D>(param.id, grad.mul_scalar(self.scale));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::backend::Autodiff;
    use burn::module::Module;

    type AD = Autodiff<TestBackend>;

    #[derive(Module, Debug)]
    struct Two<B: Backend> {
        a: Param<Tensor<B, 2>>,
        b: Param<Tensor<B, 1>>,
    }

    /// A module with gradients `g_a = [[3, 0], [0, 0]]`, `g_b = [4, 0]`: global norm 5, while each
    /// tensor's own norm (3 and 4) is below a threshold of 4.5.
    fn module_and_grads() -> (Two<AD>, GradientsParams) {
        let device = Default::default();
        let module = Two::<AD> {
            a: Param::from_tensor(Tensor::zeros([2, 2], &device)),
            b: Param::from_tensor(Tensor::zeros([2], &device)),
        };
        let mut grads = GradientsParams::new();
        grads.register::<TestBackend, 2>(
            module.a.id,
            Tensor::from_floats([[3.0, 0.0], [0.0, 0.0]], &device),
        );
        grads.register::<TestBackend, 1>(module.b.id, Tensor::from_floats([4.0, 0.0], &device));
        (module, grads)
    }

    fn grad_values(module: &Two<AD>, grads: &GradientsParams) -> (Vec<f32>, Vec<f32>) {
        let a = grads.get::<TestBackend, 2>(module.a.id).unwrap();
        let b = grads.get::<TestBackend, 1>(module.b.id).unwrap();
        (
            a.into_data().into_vec().unwrap(),
            b.into_data().into_vec().unwrap(),
        )
    }

    #[test]
    fn clips_to_the_global_norm_keeping_the_direction() {
        let (module, mut grads) = module_and_grads();
        let norm = clip_grad_norm(&module, &mut grads, 4.5);
        assert!((norm - 5.0).abs() < 1e-6);
        // Post-clip global norm equals the threshold.
        assert!((global_grad_norm(&module, &grads) - 4.5).abs() < 1e-5);
        // Direction unchanged: both tensors scaled by the same 4.5/5 (per-tensor clipping would not
        // touch either, since 3 and 4 are below 4.5).
        let (a, b) = grad_values(&module, &grads);
        assert!(
            (a[0] - 2.7).abs() < 1e-5 && (b[0] - 3.6).abs() < 1e-5,
            "{a:?} {b:?}"
        );
    }

    #[test]
    fn no_op_below_the_threshold_or_when_off() {
        for max_norm in [5.5, 0.0] {
            let (module, mut grads) = module_and_grads();
            let norm = clip_grad_norm(&module, &mut grads, max_norm);
            assert!((norm - 5.0).abs() < 1e-6);
            let (a, b) = grad_values(&module, &grads);
            assert_eq!((a[0], b[0]), (3.0, 4.0));
        }
    }

    #[test]
    fn non_finite_norm_is_reported_not_applied() {
        let (module, mut grads) = module_and_grads();
        let device = Default::default();
        grads
            .register::<TestBackend, 1>(module.b.id, Tensor::from_floats([f32::NAN, 0.0], &device));
        assert!(clip_grad_norm(&module, &mut grads, 1.0).is_nan());
        assert_eq!(grad_values(&module, &grads).0[0], 3.0);
    }
}
