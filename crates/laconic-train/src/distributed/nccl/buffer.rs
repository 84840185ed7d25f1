//! burn's CUDA tensors as the device buffers NCCL reads and writes. An input is burn's fusion tensor
//! resolved to its cubecl tensor (burn's queue runs up to it), made contiguous, with its address
//! read from cubecl's storage; an output is a new burn tensor whose buffer NCCL fills.

use burn::backend::Cuda;
use burn::prelude::*;
use burn::tensor::DType;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeBackend;
use cubecl::cuda::CudaRuntime;
use cudarc::nccl::sys::ncclDataType_t;

/// The backend under `burn::backend::Cuda`'s fusion layer, whose float tensors are cubecl buffers.
type CubeCuda = CubeBackend<CudaRuntime, f32, i32, u8>;

/// One rank's operands of an NCCL operation, with burn's queue run up to them.
pub(super) struct Operands {
    /// The input's buffer; `None` when it is empty.
    pub(super) input: Option<Buffer>,
    /// The output's buffer; `None` when it is empty.
    pub(super) output: Option<Buffer>,
    /// The tensor that reads the output's buffer.
    pub(super) result: Tensor<Cuda, 1>,
    /// NCCL's name for the operands' float type.
    pub(super) nccl_type: ncclDataType_t,
}

/// A CUDA buffer NCCL reads or writes: the cubecl tensor that owns it (held, so cubecl neither frees
/// nor reuses it meanwhile) and its device address.
pub(super) struct Buffer {
    _owner: CubeTensor<CudaRuntime>,
    address: u64,
    elem_bytes: u64,
}

impl Buffer {
    /// The device address of value `index` of the buffer.
    pub(super) fn at(&self, index: usize) -> u64 {
        self.address + index as u64 * self.elem_bytes
    }
}

/// The operands of an operation that reads `input` and writes `out_len` values of its type.
///
/// # Errors
/// A type NCCL does not sum here, or a failure of burn's queue.
pub(super) fn prepare(input: Tensor<Cuda, 1>, out_len: usize) -> Result<Operands, String> {
    let (device, dtype) = (input.device(), input.dtype());
    let nccl_type = nccl_type(dtype)
        .ok_or_else(|| format!("tensors of {dtype:?} (NCCL sums f32, f64, f16 and bf16 here)"))?;
    let input = buffer(input)?;
    let result = Tensor::<Cuda, 1>::empty([out_len], (&device, dtype));
    // A clone is resolved, so burn keeps the tensor's handle and `result` reads what NCCL writes.
    let output = buffer(result.clone())?;
    <Cuda as Backend>::sync(&device).map_err(|e| format!("waiting for burn's queue: {e}"))?;
    Ok(Operands {
        input,
        output,
        result,
        nccl_type,
    })
}

/// The contiguous CUDA buffer of `tensor`, or `None` when it is empty.
fn buffer(tensor: Tensor<Cuda, 1>) -> Result<Option<Buffer>, String> {
    if tensor.dims()[0] == 0 {
        return Ok(None);
    }
    let elem_bytes = tensor.dtype().size() as u64;
    let fused = tensor.into_primitive().tensor();
    let client = fused.client.clone();
    let cube = client.resolve_tensor_float::<CubeCuda>(fused);
    let cube = burn_cubecl::kernel::into_contiguous(cube);
    let resource = cube
        .client
        .get_resource(cube.handle.clone())
        .map_err(|e| format!("the device address of a tensor: {e}"))?;
    let address = resource.resource().ptr;
    Ok(Some(Buffer {
        _owner: cube,
        address,
        elem_bytes,
    }))
}

/// NCCL's name for a float tensor's `dtype` (Flex32 is stored as f32).
fn nccl_type(dtype: DType) -> Option<ncclDataType_t> {
    match dtype {
        DType::F64 => Some(ncclDataType_t::ncclFloat64),
        DType::F32 | DType::Flex32 => Some(ncclDataType_t::ncclFloat32),
        DType::F16 => Some(ncclDataType_t::ncclFloat16),
        DType::BF16 => Some(ncclDataType_t::ncclBfloat16),
        _ => None,
    }
}
