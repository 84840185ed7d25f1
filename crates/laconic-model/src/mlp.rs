//! The SwiGLU feed-forward block.

use burn::module::Module;
use burn::prelude::*;

use crate::linear::Linear;

/// `down_proj(silu(gate_proj(x)) · up_proj(x))`.
///
/// # Shapes
/// - input/output: `[..., d]`
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[I, d]`.
    pub gate_proj: Linear<B>,
    /// `[I, d]`.
    pub up_proj: Linear<B>,
    /// `[d, I]`.
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// A randomly initialised block of width `intermediate` (HF's init, no biases).
    pub fn init(hidden: usize, intermediate: usize, std: f64, device: &B::Device) -> Self {
        Self {
            gate_proj: Linear::init(hidden, intermediate, false, std, device),
            up_proj: Linear::init(hidden, intermediate, false, std, device),
            down_proj: Linear::init(intermediate, hidden, false, std, device),
        }
    }

    /// Applies the block.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let gate = self.gate_proj.forward(x.clone());
        let up = self.up_proj.forward(x);
        self.down_proj.forward(crate::fused::swiglu(gate, up))
    }
}
