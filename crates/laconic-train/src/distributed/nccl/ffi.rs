//! The calls into NCCL, through cudarc's raw API: the crate's only unsafe code. (cudarc's safe `Comm`
//! takes cudarc's own device slices and hides its communicator, while burn's buffers are cubecl's;
//! these calls take device addresses, which their callers vouch for.)
#![allow(unsafe_code)]

use std::ffi::c_void;

use cudarc::nccl::{result, sys};

/// What an NCCL operation does (each that reduces, sums).
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    AllReduce,
    AllGather,
    ReduceScatter,
    Broadcast,
    Reduce,
}

/// One NCCL operation on device addresses, in bytes. `None` is an address NCCL ignores on this
/// rank: a broadcast's source or a reduce's destination off the root. `count` is in values, per rank
/// for a gather or a reduce-scatter.
pub(super) struct Call {
    pub(super) kind: Kind,
    pub(super) send: Option<u64>,
    pub(super) recv: Option<u64>,
    pub(super) count: usize,
    /// The root rank of a broadcast or a reduce.
    pub(super) root: usize,
}

impl Call {
    /// One rootless operation (an all-reduce, gather or reduce-scatter) of `count` values.
    pub(super) fn rootless(
        kind: Kind,
        send: Option<u64>,
        recv: Option<u64>,
        count: usize,
    ) -> Vec<Self> {
        vec![Self {
            kind,
            send,
            recv,
            count,
            root: 0,
        }]
    }
}

/// Whether the NCCL library loads (a call into NCCL without it panics).
pub(super) fn library_present() -> bool {
    // SAFETY: this only tries to open the library under its usual names.
    unsafe { sys::is_culib_present() }
}

/// A communicator, aborted on drop.
pub(super) struct Comm(sys::ncclComm_t);

impl Comm {
    /// Joins the communicator of `world` ranks named `id` as `rank`: a collective, on the GPU whose
    /// context is current on this thread.
    pub(super) fn init(world: usize, rank: usize, id: sys::ncclUniqueId) -> Result<Self, String> {
        let mut comm: sys::ncclComm_t = std::ptr::null_mut();
        // SAFETY: `comm` is a valid place for the new communicator. MPI's ranks are `int`s.
        unsafe { result::comm_init_rank(&mut comm, world as i32, id, rank as i32) }
            .map_err(nccl_error("ncclCommInitRank"))?;
        Ok(Self(comm))
    }

    /// Queues `calls` on `stream`, as one group when there are several.
    ///
    /// # Safety
    /// Every address is that of a buffer on this communicator's GPU with room for the values of type
    /// `ty` its call reads or writes, which nothing frees, reuses or writes until `stream` has run
    /// the calls; `None` only where NCCL ignores the address.
    pub(super) unsafe fn enqueue(
        &self,
        calls: &[Call],
        ty: sys::ncclDataType_t,
        stream: sys::cudaStream_t,
    ) -> Result<(), String> {
        if let [call] = calls {
            // SAFETY: the caller's.
            return unsafe { self.call(call, ty, stream) };
        }
        result::group_start().map_err(nccl_error("ncclGroupStart"))?;
        // SAFETY: the caller's.
        let queued = calls
            .iter()
            .try_for_each(|call| unsafe { self.call(call, ty, stream) });
        let ended = result::group_end()
            .map(drop)
            .map_err(nccl_error("ncclGroupEnd"));
        queued.and(ended)
    }

    /// Queues one call.
    ///
    /// # Safety
    /// As [`Comm::enqueue`].
    unsafe fn call(
        &self,
        call: &Call,
        ty: sys::ncclDataType_t,
        stream: sys::cudaStream_t,
    ) -> Result<(), String> {
        let (send, recv, n) = (source(call.send), destination(call.recv), call.count);
        let (comm, root, sum) = (self.0, call.root as i32, sys::ncclRedOp_t::ncclSum);
        // SAFETY: the caller's.
        let status = unsafe {
            match call.kind {
                Kind::AllReduce => result::all_reduce(send, recv, n, ty, sum, comm, stream),
                Kind::AllGather => result::all_gather(send, recv, n, ty, comm, stream),
                Kind::ReduceScatter => result::reduce_scatter(send, recv, n, ty, sum, comm, stream),
                Kind::Broadcast => result::broadcast(send, recv, n, ty, root, comm, stream),
                Kind::Reduce => result::reduce(send, recv, n, ty, sum, root, comm, stream),
            }
        };
        status
            .map(drop)
            .map_err(nccl_error(&format!("nccl{:?}", call.kind)))
    }
}

impl Drop for Comm {
    fn drop(&mut self) {
        // SAFETY: the communicator came from `ncclCommInitRank` and is released once, here.
        let _ = unsafe { result::comm_abort(self.0) };
    }
}

/// An NCCL error of `call`, with NCCL's result code (`ncclSystemError`).
fn nccl_error(call: &str) -> impl Fn(result::NcclError) -> String + '_ {
    move |e| format!("{call}: {:?}", e.0)
}

fn source(address: Option<u64>) -> *const c_void {
    address.map_or(std::ptr::null(), |a| a as usize as *const c_void)
}

fn destination(address: Option<u64>) -> *mut c_void {
    address.map_or(std::ptr::null_mut(), |a| a as usize as *mut c_void)
}
