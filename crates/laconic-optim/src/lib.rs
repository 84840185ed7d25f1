//! laconic-optim (wip)

pub mod advantage;
pub mod agg;
pub mod entropy;
mod error;
pub mod head;
pub mod kl;
pub mod logprob;
pub mod objective;
pub mod policy_loss;

pub use error::{Error, Result};

/// The backend of this crate's unit tests: ndarray, or wgpu/CUDA with `test-wgpu` / `test-cuda`.
#[cfg(all(test, not(any(feature = "test-wgpu", feature = "test-cuda"))))]
pub(crate) type TestBackend = burn::backend::NdArray;
#[cfg(all(test, feature = "test-wgpu", not(feature = "test-cuda")))]
pub(crate) type TestBackend = burn::backend::Wgpu;
#[cfg(all(test, feature = "test-cuda"))]
pub(crate) type TestBackend = burn::backend::Cuda;
