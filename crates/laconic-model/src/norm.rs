//! `RmsNorm` with Hugging Face's parameter name (`weight`), computed as Qwen does.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::prelude::*;

/// Root-mean-square normalisation: `y = x / sqrt(mean(x²) + eps) · weight`.
///
/// # Shapes
/// - input: `[..., d]`
/// - output: `[..., d]`
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// Per-feature scale `[d]`, initialised to ones.
    pub weight: Param<Tensor<B, 1>>,
    /// Added to the mean square for numerical stability.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// A norm over `d` features with unit scale.
    pub fn init(d: usize, eps: f64, device: &B::Device) -> Self {
        Self {
            weight: Initializer::Ones.init([d], device),
            eps,
        }
    }

    /// Normalises the last dimension (one fused node under autodiff, see [`crate::fused`]).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        crate::fused::rms_norm(x, self.weight.val(), self.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    #[test]
    fn normalises_by_root_mean_square() {
        let device = Default::default();
        let norm = RmsNorm::<TestBackend>::init(2, 0.0, &device);
        // rms([3, 4]) = sqrt((9 + 16) / 2) = 3.5355…; 3 / 3.5355 = 0.8485, 4 / 3.5355 = 1.1314.
        let y = norm.forward(Tensor::<TestBackend, 2>::from_floats([[3.0, 4.0]], &device));
        y.into_data().assert_approx_eq::<f32>(
            &TensorData::from([[0.848_528, 1.131_371]]),
            Default::default(),
        );
    }
}
