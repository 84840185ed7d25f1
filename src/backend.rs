//! The one place a concrete burn backend is chosen, by cargo feature.
//!
//! Precedence when several backend features are on: `cuda` > `wgpu` > `flex` > `ndarray`. The crates of
//! the workspace stay generic over `B: Backend`; binaries and examples use [`Backend`] and [`device`].

#[cfg(feature = "cuda")]
mod chosen {
    /// NVIDIA GPUs through CUDA.
    pub type Backend = burn::backend::Cuda;
    /// Human-readable backend name.
    pub const NAME: &str = "cuda";
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod chosen {
    /// GPUs through wgpu (Vulkan/Metal/DX12).
    pub type Backend = burn::backend::Wgpu;
    /// Human-readable backend name.
    pub const NAME: &str = "wgpu";
}

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
mod chosen {
    /// The pure-Rust SIMD CPU backend.
    pub type Backend = burn::backend::Flex;
    /// Human-readable backend name.
    pub const NAME: &str = "flex";
}

#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
mod chosen {
    /// The ndarray CPU backend.
    pub type Backend = burn::backend::NdArray;
    /// Human-readable backend name.
    pub const NAME: &str = "ndarray";
}

#[cfg(not(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
)))]
compile_error!("laconic needs one backend feature: `flex` (default), `ndarray`, `wgpu` or `cuda`");

pub use chosen::{Backend, NAME};

/// [`Backend`] with automatic differentiation, for training.
pub type Autodiff = burn::backend::Autodiff<Backend>;

/// The default device of [`Backend`], once the CPU is known to have the SIMD level `LACONIC_SIMD`
/// asks for (unset: the best it has; see [`laconic_kernels::simd`]). Binaries call it before any work.
///
/// # Errors
/// When `LACONIC_SIMD` names no level or one this CPU lacks.
pub fn device() -> Result<burn::tensor::Device<Backend>, laconic_kernels::simd::SimdError> {
    rank_device(0)
}

/// The device of the data-parallel rank whose index among its machine's ranks is `local_rank`
/// (`laconic_train::distributed::World::local_rank`): GPU `local_rank` with `cuda` (one process per
/// GPU), the default device elsewhere (the CPU's ranks share it, each with its share of the cores).
///
/// # Errors
/// As [`device`].
pub fn rank_device(
    local_rank: usize,
) -> Result<burn::tensor::Device<Backend>, laconic_kernels::simd::SimdError> {
    laconic_kernels::simd::SimdLevel::from_env()?;
    Ok(local_device(local_rank))
}

#[cfg(feature = "cuda")]
fn local_device(local_rank: usize) -> burn::tensor::Device<Backend> {
    burn::backend::cuda::CudaDevice::new(local_rank)
}

#[cfg(not(feature = "cuda"))]
fn local_device(_local_rank: usize) -> burn::tensor::Device<Backend> {
    Default::default()
}
