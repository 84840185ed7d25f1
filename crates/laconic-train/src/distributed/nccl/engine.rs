//! Starting NCCL on a rank, at its first float operation ([`NcclCollective::engine`]): every rank
//! opens a stream on its GPU and says over MPI whether it could, rank 0 makes the unique id and
//! broadcasts it over MPI, and every rank joins the communicator (`ncclCommInitRank`). When some
//! rank has no NCCL library, all of them keep to MPI on the host (rank 0 warns once).

use std::ffi::c_char;
use std::fmt::Display;
use std::sync::Arc;

use burn::backend::cuda::CudaDevice;
use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::sys::ncclUniqueId;
use laconic_optim::Result;

use super::{ffi, ranks_where, NcclCollective};

/// Bytes of an NCCL unique id.
const ID_BYTES: usize = 128;

/// A communicator on one GPU and the stream its operations run on.
pub(super) struct Engine {
    // Fields drop in order: the communicator before its stream.
    pub(super) comm: ffi::Comm,
    pub(super) stream: Arc<CudaStream>,
    ordinal: usize,
}

/// Why a rank cannot run NCCL.
enum Unready {
    NoLibrary,
    Cuda(String),
}

impl NcclCollective {
    /// The engine on `device`, started by the first call (every rank's first float operation), or
    /// `None` when the ranks sum on the host.
    pub(super) fn engine(&self, device: &CudaDevice) -> Result<Option<&Engine>> {
        if self.engine.get().is_none() {
            let started = self.start(device)?;
            let _ = self.engine.set(started);
        }
        match self.engine.get().and_then(Option::as_ref) {
            Some(engine) if engine.ordinal != device.index => {
                let (tensor, comm) = (device.index, engine.ordinal);
                let message = format!("a tensor on GPU {tensor}, the communicator on GPU {comm}");
                Err(self.error("start", message))
            }
            engine => Ok(engine),
        }
    }

    /// Starts NCCL on `device` on every rank (a collective): each rank opens a stream on its GPU and
    /// says whether it could, rank 0 broadcasts a unique id, and every rank joins the communicator.
    fn start(&self, device: &CudaDevice) -> Result<Option<Engine>> {
        const READY: u64 = 0;
        const NO_LIBRARY: u64 = 1;
        const FAILED: u64 = 2;
        let opened = open_stream(device.index);
        let mut states = vec![READY; self.world];
        states[self.rank] = match &opened {
            Ok(_) => READY,
            Err(Unready::NoLibrary) => NO_LIBRARY,
            Err(Unready::Cuda(_)) => FAILED,
        };
        let states = self.host().all_reduce_u64(&states, device)?;
        let with = |state: u64| ranks_where(states.iter().map(|&s| s == state));
        if let Some(ranks) = with(NO_LIBRARY) {
            if self.rank == 0 {
                eprintln!(
                    "warning: no NCCL library (libnccl.so.2) on {ranks}; the ranks sum their \
                     tensors through MPI on the host"
                );
            }
            return Ok(None);
        }
        let stream = match opened {
            Ok(stream) => stream,
            Err(Unready::Cuda(message)) => return Err(self.error("start", message)),
            Err(Unready::NoLibrary) => unreachable!("no rank lacks the library"),
        };
        if let Some(ranks) = with(FAILED) {
            return Err(self.error("start", format!("{ranks} could not open a CUDA stream")));
        }
        let id = self.share_id(device)?;
        let fail = |e: &dyn Display| self.error("start", e);
        stream.context().bind_to_thread().map_err(|e| fail(&e))?;
        let comm = ffi::Comm::init(self.world, self.rank, id).map_err(|e| fail(&e))?;
        Ok(Some(Engine {
            comm,
            stream,
            ordinal: device.index,
        }))
    }

    /// Rank 0's NCCL unique id on every rank, broadcast over MPI.
    fn share_id(&self, device: &CudaDevice) -> Result<ncclUniqueId> {
        let made = (self.rank == 0).then(cudarc::nccl::result::get_uniqueid);
        let mine = match &made {
            Some(Ok(id)) => id.internal.map(|c| c as u8).to_vec(),
            _ => Vec::new(),
        };
        let bytes = self.host().broadcast_bytes(&mine, 0, device)?;
        if let Some(Err(e)) = made {
            return Err(self.error("start", format!("ncclGetUniqueId: {:?}", e.0)));
        }
        let internal: [u8; ID_BYTES] = bytes
            .try_into()
            .map_err(|_| self.error("start", "rank 0 could not make a unique id"))?;
        Ok(ncclUniqueId {
            internal: internal.map(|b| b as c_char),
        })
    }
}

/// A stream on GPU `ordinal` for NCCL, when the NCCL library loads and the GPU opens.
fn open_stream(ordinal: usize) -> std::result::Result<Arc<CudaStream>, Unready> {
    if !ffi::library_present() {
        return Err(Unready::NoLibrary);
    }
    let context = CudaContext::new(ordinal)
        .map_err(|e| Unready::Cuda(format!("CUDA device {ordinal}: {e}")))?;
    context
        .new_stream()
        .map_err(|e| Unready::Cuda(format!("a stream on CUDA device {ordinal}: {e}")))
}
