//! The NCCL engine (features `mpi` and `cuda`): [`NcclCollective`], the [`Collective`] of one rank of
//! a run on CUDA GPUs. Its float operations (all-reduce, gather, reduce-scatter) run on the rank's
//! GPU through NCCL, so a gradient never crosses to the host; its small host messages (integers,
//! bytes) go through the rank's [`MpiCollective`]. [`World::collective`](super::World::collective)
//! gives it to every trainer on `burn::backend::Cuda` in a build with both features.
//!
//! One process per GPU. The communicator starts at the first float operation, on that tensor's GPU:
//! every rank says over MPI whether it can run NCCL, rank 0 makes the unique id and broadcasts it
//! over MPI, and every rank joins (`ncclCommInitRank`). When some rank has no NCCL library, all of
//! them keep to MPI on the host (rank 0 warns once).
//!
//! Each operation:
//! 1. Its operands become CUDA buffers ([`buffer`]), and burn's queue is synchronised.
//! 2. The ranks agree over MPI on every rank's length and float type: MPI's time limit and stall
//!    report cover a rank that never arrives, and a disagreement fails every rank instead of hanging
//!    NCCL.
//! 3. NCCL runs on the engine's own stream ([`ffi`]), waited for within the same time limit
//!    ([`super::ENV_TIMEOUT`]). Parts of unequal sizes take grouped broadcasts (a gather) or reduces
//!    (a reduce-scatter), which write each part in its place.
//!
//! Sums are in the tensor's own float type (f32, f64, f16 or bf16).

mod buffer;
mod engine;
mod ffi;

use std::cell::OnceCell;
use std::fmt::Display;
use std::time::Instant;

use burn::backend::cuda::CudaDevice;
use burn::backend::Cuda;
use burn::prelude::*;
use cudarc::driver::CudaStream;
use laconic_kernels::downcast::{cast, same_type};
use laconic_optim::{Collective, Error, Result};

use self::buffer::{prepare, Operands};
use self::engine::Engine;
use self::ffi::{Call, Kind};
use super::MpiCollective;

/// Polls of a running operation that spin before each poll yields the core.
const SPINS: u32 = 4096;

/// `host`, or the NCCL collective over it when `B` is burn's CUDA backend: what an MPI rank's
/// [`World::collective`](super::World::collective) gives.
pub(super) fn for_backend<B: Backend>(host: MpiCollective) -> Box<dyn Collective<B>> {
    if !same_type::<B, Cuda>() {
        return Box::new(host);
    }
    let nccl: Box<dyn Collective<Cuda>> = Box::new(NcclCollective::new(host));
    cast::<Box<dyn Collective<Cuda>>, Box<dyn Collective<B>>>(nccl)
}

/// The [`Collective`] of one rank of a CUDA run: float operations through NCCL on the GPU, the rest
/// through MPI (see the module docs).
pub struct NcclCollective {
    host: MpiCollective,
    rank: usize,
    world: usize,
    /// Set by the first float operation: NCCL on that tensor's GPU, or `None` (MPI on the host)
    /// when some rank has no NCCL library.
    engine: OnceCell<Option<Engine>>,
}

impl NcclCollective {
    /// The collective of the rank `host` belongs to; NCCL operations wait as long as `host`'s
    /// (`LACONIC_DP_TIMEOUT`).
    pub fn new(host: MpiCollective) -> Self {
        let (rank, world) = {
            let host: &dyn Collective<Cuda> = &host;
            (host.rank(), host.world_size())
        };
        Self {
            host,
            rank,
            world,
            engine: OnceCell::new(),
        }
    }

    /// The MPI collective: host messages, and the agreement before each NCCL operation.
    fn host(&self) -> &dyn Collective<Cuda> {
        &self.host
    }

    /// An error of this rank in NCCL operation `what`.
    fn error(&self, what: &str, message: impl Display) -> Error {
        let (rank, world) = (self.rank, self.world);
        Error::Collective(format!("rank {rank} of {world}: NCCL {what}: {message}"))
    }

    /// Every rank's length for `what`, once every rank has said whether its `prepared` operands are
    /// ready and of which type: a rank that is not, or types that differ, fail it on every rank.
    fn agree(
        &self,
        what: &str,
        len: usize,
        prepared: std::result::Result<Operands, String>,
        device: &CudaDevice,
    ) -> Result<(Operands, Vec<usize>)> {
        let code = prepared.as_ref().map_or(0, |o| o.nccl_type as u64);
        let failed = u64::from(prepared.is_err());
        let mut slots = vec![0u64; 3 * self.world];
        slots[3 * self.rank..3 * self.rank + 3].copy_from_slice(&[len as u64, code, failed]);
        let slots = self.host().all_reduce_u64(&slots, device)?;
        let operands = prepared.map_err(|message| self.error(what, message))?;
        let ranks: Vec<&[u64]> = slots.chunks(3).collect();
        if let Some(unready) = ranks_where(ranks.iter().map(|s| s[2] != 0)) {
            return Err(self.error(what, format!("{unready} could not ready its operands")));
        }
        if let Some(other) = ranks_where(ranks.iter().map(|s| s[1] != code)) {
            return Err(self.error(what, format!("{other} sums another float type")));
        }
        Ok((operands, ranks.iter().map(|s| s[0] as usize).collect()))
    }

    /// Runs `calls` on `ops` (one NCCL group when several) and waits for them within the time limit:
    /// the result tensor. On an error NCCL may still be using the buffers, so they are leaked rather
    /// than handed back to cubecl (the job ends on the error).
    #[allow(unsafe_code)]
    fn run(
        &self,
        engine: &Engine,
        what: &str,
        calls: &[Call],
        ops: Operands,
    ) -> Result<Tensor<Cuda, 1>> {
        let Operands {
            input,
            output,
            result,
            nccl_type,
        } = ops;
        let stream = engine.stream.cu_stream() as cudarc::nccl::sys::cudaStream_t;
        let finished = engine
            .stream
            .context()
            .bind_to_thread()
            .map_err(|e| e.to_string())
            // SAFETY: every address of `calls` is in `input` or `output`, with room for the values
            // its call moves (the ranks agreed on the lengths). The buffers hold their cubecl
            // tensors until the stream has run the calls (or are leaked), so cubecl neither frees
            // nor reuses them, and burn, which has synced, writes to neither meanwhile: it writes in
            // place only to a buffer nothing else holds, and `result` is not yet returned.
            .and_then(|()| unsafe { engine.comm.enqueue(calls, nccl_type, stream) })
            .and_then(|()| self.wait(&engine.stream));
        match finished {
            Ok(()) => Ok(result),
            Err(message) => {
                std::mem::forget((input, output));
                Err(self.error(what, message))
            }
        }
    }

    /// Waits for the work queued on `stream`, within the time limit.
    fn wait(&self, stream: &CudaStream) -> std::result::Result<(), String> {
        let done = stream.record_event(None).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut polls = 0u32;
        while !done.try_is_complete().map_err(|e| e.to_string())? {
            if start.elapsed() > self.host.timeout() {
                return Err(format!(
                    "did not complete within {} s (`{}` sets the limit)",
                    self.host.timeout().as_secs(),
                    super::ENV_TIMEOUT
                ));
            }
            polls = polls.saturating_add(1);
            if polls < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        Ok(())
    }
}

impl Collective<Cuda> for NcclCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&self, tensor: Tensor<Cuda, 1>) -> Result<Tensor<Cuda, 1>> {
        let what = "all-reduce";
        let device = tensor.device();
        let Some(engine) = self.engine(&device)? else {
            return self.host().all_reduce_sum(tensor);
        };
        let n = tensor.dims()[0];
        let (ops, lengths) = self.agree(what, n, prepare(tensor, n), &device)?;
        if lengths.iter().any(|&len| len != n) {
            return Err(self.error(what, format!("the ranks hold {lengths:?} values")));
        }
        if n == 0 {
            return Ok(ops.result);
        }
        let calls = Call::rootless(
            Kind::AllReduce,
            ops.input.as_ref().map(|b| b.at(0)),
            ops.output.as_ref().map(|b| b.at(0)),
            n,
        );
        self.run(engine, what, &calls, ops)
    }

    fn all_reduce_u64(&self, values: &[u64], device: &CudaDevice) -> Result<Vec<u64>> {
        self.host().all_reduce_u64(values, device)
    }

    fn all_gather_bytes(&self, bytes: &[u8], device: &CudaDevice) -> Result<Vec<Vec<u8>>> {
        self.host().all_gather_bytes(bytes, device)
    }

    fn broadcast_bytes(&self, bytes: &[u8], root: usize, device: &CudaDevice) -> Result<Vec<u8>> {
        self.host().broadcast_bytes(bytes, root, device)
    }

    fn all_gather(&self, part: Tensor<Cuda, 1>, counts: &[usize]) -> Result<Tensor<Cuda, 1>> {
        let what = "gather";
        check_parts(counts, self.rank, self.world, part.dims()[0])?;
        let device = part.device();
        let Some(engine) = self.engine(&device)? else {
            return self.host().all_gather(part, counts);
        };
        let total: usize = counts.iter().sum();
        let (ops, lengths) = self.agree(what, counts[self.rank], prepare(part, total), &device)?;
        if lengths != counts {
            let message = format!("the ranks hold {lengths:?} values for parts of {counts:?}");
            return Err(self.error(what, message));
        }
        let Some(output) = &ops.output else {
            return Ok(ops.result);
        };
        let send = ops.input.as_ref().map(|b| b.at(0));
        let calls: Vec<Call> = if equal(counts) {
            Call::rootless(Kind::AllGather, send, Some(output.at(0)), counts[0])
        } else {
            // Each rank broadcasts its part into its place in every rank's output.
            parts(counts)
                .map(|(root, start, count)| Call {
                    kind: Kind::Broadcast,
                    send: send.filter(|_| root == self.rank),
                    recv: Some(output.at(start)),
                    count,
                    root,
                })
                .collect()
        };
        self.run(engine, what, &calls, ops)
    }

    fn reduce_scatter(&self, tensor: Tensor<Cuda, 1>, counts: &[usize]) -> Result<Tensor<Cuda, 1>> {
        let what = "reduce-scatter";
        let total = tensor.dims()[0];
        if counts.iter().sum::<usize>() != total {
            return Err(self.error(what, format!("{total} values into parts of {counts:?}")));
        }
        let mine = counts.get(self.rank).copied().unwrap_or(0);
        check_parts(counts, self.rank, self.world, mine)?;
        let device = tensor.device();
        let Some(engine) = self.engine(&device)? else {
            return self.host().reduce_scatter(tensor, counts);
        };
        let (ops, lengths) = self.agree(what, total, prepare(tensor, mine), &device)?;
        if lengths.iter().any(|&len| len != total) {
            return Err(self.error(what, format!("the ranks hold {lengths:?} values")));
        }
        let Some(input) = &ops.input else {
            return Ok(ops.result);
        };
        let recv = ops.output.as_ref().map(|b| b.at(0));
        let calls: Vec<Call> = if equal(counts) {
            Call::rootless(Kind::ReduceScatter, Some(input.at(0)), recv, counts[0])
        } else {
            // The sum of each rank's part lands on that rank alone.
            parts(counts)
                .map(|(root, start, count)| Call {
                    kind: Kind::Reduce,
                    send: Some(input.at(start)),
                    recv: recv.filter(|_| root == self.rank),
                    count,
                    root,
                })
                .collect()
        };
        self.run(engine, what, &calls, ops)
    }
}

/// Whether every part has the same size (NCCL's own gather and reduce-scatter).
fn equal(counts: &[usize]) -> bool {
    counts.iter().all(|&c| c == counts[0])
}

/// Each non-empty part of `counts`: its rank, its start and its length.
fn parts(counts: &[usize]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    counts
        .iter()
        .enumerate()
        .scan(0usize, |start, (rank, &count)| {
            *start += count;
            Some((rank, *start - count, count))
        })
        .filter(|&(_, _, count)| count > 0)
}

/// `rank 2` or `ranks 0, 3`: the ranks whose flag is set, or `None`.
fn ranks_where(flags: impl Iterator<Item = bool>) -> Option<String> {
    let ranks: Vec<String> = flags
        .enumerate()
        .filter(|&(_, set)| set)
        .map(|(r, _)| r.to_string())
        .collect();
    match ranks.len() {
        0 => None,
        1 => Some(format!("rank {}", ranks[0])),
        _ => Some(format!("ranks {}", ranks.join(", "))),
    }
}

/// Checks that there is one count per rank and that this rank's is `len`.
fn check_parts(counts: &[usize], rank: usize, world: usize, len: usize) -> Result<()> {
    if counts.len() == world && counts[rank] == len {
        Ok(())
    } else {
        Err(Error::Collective(format!(
            "rank {rank} of {world} has {len} values for part sizes {counts:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_skip_empty_ranks_and_keep_their_places() {
        let found: Vec<_> = parts(&[2, 0, 3, 1]).collect();
        assert_eq!(found, [(0, 0, 2), (2, 2, 3), (3, 5, 1)]);
        assert!(equal(&[4, 4, 4]) && !equal(&[4, 0, 4]));
    }

    #[test]
    fn ranks_are_named_in_order() {
        assert_eq!(ranks_where([false, false].into_iter()), None);
        assert_eq!(ranks_where([false, true].into_iter()).unwrap(), "rank 1");
        let many = ranks_where([true, false, true].into_iter()).unwrap();
        assert_eq!(many, "ranks 0, 2");
    }
}
