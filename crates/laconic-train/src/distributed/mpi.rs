//! The MPI engine (feature `mpi`): [`MpiWorld`], this process's MPI session (started by `mpirun`,
//! `srun --mpi=pmix` or any launcher of the system's MPI), and [`MpiCollective`], the
//! [`Collective`] a rank's trainer sums through, with MPI's native operations.
//!
//! MPI collectives have no deadline of their own, so every operation here is MPI's non-blocking
//! form, polled (never sleeping: each test is a step of MPI's progress; a version that slept 200 µs
//! between tests moved 0.31 GB/s where this moves several) until it completes or the time limit
//! ([`super::ENV_TIMEOUT`]) passes. A rank whose
//! limit passes asks the others, on a communicator kept for this, where they are: a rank waiting in
//! a collective answers from its polling loop, so the ranks that do not answer within a grace are
//! the ones that stalled (stopped, hung, on a dead node, or slower than the limit). The rank prints
//! which, and ends the job (`MPI_Abort`). A rank that dies is MPI's to notice: the launcher ends the
//! job and names it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::prelude::*;
use burn::tensor::DType;
use laconic_optim::Collective;
use mpi::collective::SystemOperation;
use mpi::datatype::{Equivalence, PartitionMut};
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::request::{Request, Scope};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};
use mpi::Threading;

use crate::error::{Error, Result};

/// Exit status of a job ended because a rank stalled.
pub const STALLED_EXIT: i32 = 4;

/// How long a rank whose time limit passed waits for the others to say where they are.
const GRACE: Duration = Duration::from_secs(2);
/// Tag of "where are you?" on the blame communicator.
const ASK: i32 = 1;
/// Tag of "waiting in collective number N" on the blame communicator.
const HERE: i32 = 2;

/// This process's MPI session: MPI is finalised when it drops.
pub struct MpiWorld {
    // Fields drop in order: the communicators before the universe finalises MPI.
    world: SimpleCommunicator,
    node: SimpleCommunicator,
    timeout: Duration,
    _universe: Universe,
}

impl MpiWorld {
    /// Starts MPI (the main thread alone calls it).
    ///
    /// # Errors
    /// MPI was already started, or could not start.
    pub fn init(timeout: Duration) -> Result<Self> {
        let (universe, _) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or_else(|| {
                Error::Distributed("MPI could not start (or was started twice)".into())
            })?;
        let world = universe.world();
        let node = world.split_shared(world.rank());
        Ok(Self {
            world,
            node,
            timeout,
            _universe: universe,
        })
    }

    /// This rank, `0..size`.
    pub fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    /// Ranks in the world.
    pub fn size(&self) -> usize {
        self.world.size() as usize
    }

    /// This rank's index among the ranks on its machine (its GPU, when there are several).
    pub fn local_rank(&self) -> usize {
        self.node.rank() as usize
    }

    /// Ranks on this machine.
    pub fn local_size(&self) -> usize {
        self.node.size() as usize
    }

    /// A collective on a communicator of its own (every rank must call this alike).
    pub fn collective(&self) -> MpiCollective {
        MpiCollective {
            comm: self.world.duplicate(),
            blame: self.world.duplicate(),
            timeout: self.timeout,
            operations: std::cell::Cell::new(0),
        }
    }

    /// Rank 0's `path` on every rank (the others pass `None`): the run folder rank 0 made.
    ///
    /// # Errors
    /// The path is not UTF-8, or a rank stalled.
    pub fn share_path(&self, path: Option<&Path>) -> Result<PathBuf> {
        let bytes = match path {
            Some(p) if self.rank() == 0 => p
                .to_str()
                .ok_or_else(|| {
                    Error::Distributed(format!("run folder `{}` is not UTF-8", p.display()))
                })?
                .as_bytes()
                .to_vec(),
            _ => Vec::new(),
        };
        let collective = self.collective();
        let shared = collective.broadcast(&bytes, 0)?;
        String::from_utf8(shared)
            .map(PathBuf::from)
            .map_err(|_| Error::Distributed("rank 0 sent a run folder that is not UTF-8".into()))
    }

    /// Ends every rank of the job with `code` (`MPI_Abort`).
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// The [`Collective`] of one rank of an MPI world. Tensors cross on the host, in their own float
/// type (f32 or f64); integers and bytes exactly.
pub struct MpiCollective {
    comm: SimpleCommunicator,
    blame: SimpleCommunicator,
    timeout: Duration,
    /// Collectives begun on this communicator, for the messages.
    operations: std::cell::Cell<u64>,
}

impl MpiCollective {
    /// The most one collective waits for the other ranks (`LACONIC_DP_TIMEOUT`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn size(&self) -> usize {
        self.comm.size() as usize
    }

    /// Elementwise sums of `values` over the ranks.
    fn sum<T: Equivalence + Copy + Default>(&self, values: &[T], what: &str) -> Result<Vec<T>> {
        count(values.len(), what)?;
        let mut out = vec![T::default(); values.len()];
        mpi::request::scope(|scope| {
            let request = self.comm.immediate_all_reduce_into(
                scope,
                values,
                &mut out[..],
                SystemOperation::sum(),
            );
            self.wait(request, what);
        });
        Ok(out)
    }

    /// Every rank's `values`, concatenated in rank order, given every rank's count.
    fn gather<T: Equivalence + Copy + Default>(
        &self,
        values: &[T],
        counts: &[usize],
        what: &str,
    ) -> Result<Vec<T>> {
        let total: usize = counts.iter().sum();
        count(total, what)?;
        let counts: Vec<i32> = counts.iter().map(|&c| c as i32).collect();
        let displs: Vec<i32> = counts
            .iter()
            .scan(0i32, |acc, &c| {
                let start = *acc;
                *acc += c;
                Some(start)
            })
            .collect();
        let mut out = vec![T::default(); total];
        {
            let mut partition = PartitionMut::new(&mut out[..], &counts[..], &displs[..]);
            mpi::request::scope(|scope| {
                let request =
                    self.comm
                        .immediate_all_gather_varcount_into(scope, values, &mut partition);
                self.wait(request, what);
            });
        }
        Ok(out)
    }

    /// This rank's part of the elementwise sum of `values` (every rank's `Σ counts` values), the
    /// `counts[rank]` after those of the ranks before it: one reduce-scatter of equal blocks, each
    /// part padded with zeros to the largest.
    fn sum_scatter<T: Equivalence + Copy + Default>(
        &self,
        values: &[T],
        counts: &[usize],
        what: &str,
    ) -> Result<Vec<T>> {
        let block = counts.iter().copied().max().unwrap_or(0);
        count(block * counts.len(), what)?;
        let mut padded = vec![T::default(); block * counts.len()];
        let mut start = 0;
        for (r, &n) in counts.iter().enumerate() {
            padded[r * block..r * block + n].copy_from_slice(&values[start..start + n]);
            start += n;
        }
        let mut out = vec![T::default(); block];
        mpi::request::scope(|scope| {
            let request = self.comm.immediate_reduce_scatter_block_into(
                scope,
                &padded[..],
                &mut out[..],
                SystemOperation::sum(),
            );
            self.wait(request, what);
        });
        out.truncate(counts[self.rank()]);
        Ok(out)
    }

    /// Root's `bytes` on every rank.
    fn broadcast(&self, bytes: &[u8], root: usize) -> Result<Vec<u8>> {
        if root >= self.size() {
            return Err(Error::Distributed(format!(
                "broadcast from rank {root} of {}",
                self.size()
            )));
        }
        let mut len = [bytes.len() as u64];
        let process = self.comm.process_at_rank(root as i32);
        mpi::request::scope(|scope| {
            let request = process.immediate_broadcast_into(scope, &mut len[..]);
            self.wait(request, "a broadcast's length");
        });
        let len = usize::try_from(len[0])
            .map_err(|_| Error::Distributed(format!("a broadcast of {} bytes", len[0])))?;
        count(len, "a broadcast")?;
        let mut out = if self.rank() == root {
            bytes.to_vec()
        } else {
            vec![0u8; len]
        };
        mpi::request::scope(|scope| {
            let request = process.immediate_broadcast_into(scope, &mut out[..]);
            self.wait(request, "a broadcast");
        });
        Ok(out)
    }

    /// Polls `request` to completion; past the time limit, names the ranks that stalled and ends
    /// the job. Meanwhile answers the other ranks' "where are you?".
    fn wait<'a, D: ?Sized, S: Scope<'a>>(&self, mut request: Request<'a, D, S>, what: &str) {
        let number = self.operations.get() + 1;
        self.operations.set(number);
        let start = Instant::now();
        let mut polls = 0u64;
        loop {
            request = match request.test() {
                Ok(_) => return,
                Err(pending) => pending,
            };
            polls += 1;
            if polls.is_multiple_of(64) {
                self.answer(number);
                if start.elapsed() > self.timeout {
                    self.stalled(number, what, start.elapsed());
                }
            }
            // Each test moves the operation on (MPI progresses inside its calls), so polling never
            // sleeps: a large transfer needs many steps. After a moment the core is offered to
            // anything else runnable between tests, as MPI's own blocking wait does when idle.
            if polls < 4096 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Answers every pending "where are you?" with this rank's collective number.
    fn answer(&self, number: u64) {
        while let Some(status) = self.blame.any_process().immediate_probe_with_tag(ASK) {
            let source = status.source_rank();
            let (_asked, _): (u64, _) = self.blame.process_at_rank(source).receive_with_tag(ASK);
            self.blame
                .process_at_rank(source)
                .send_with_tag(&number, HERE);
        }
    }

    /// The time limit passed in collective `number`: asks every rank where it is, names those that
    /// do not answer within [`GRACE`], and ends the job.
    fn stalled(&self, number: u64, what: &str, waited: Duration) -> ! {
        let (rank, size) = (self.rank(), self.size());
        mpi::request::scope(|scope| {
            let asks: Vec<_> = (0..size)
                .filter(|&r| r != rank)
                .map(|r| {
                    self.blame
                        .process_at_rank(r as i32)
                        .immediate_send_with_tag(scope, &number, ASK)
                })
                .collect();
            let mut answers: Vec<Option<u64>> = vec![None; size];
            answers[rank] = Some(number);
            let start = Instant::now();
            while start.elapsed() < GRACE && answers.iter().any(Option::is_none) {
                self.answer(number);
                if let Some(status) = self.blame.any_process().immediate_probe_with_tag(HERE) {
                    let source = status.source_rank();
                    let (at, _): (u64, _) =
                        self.blame.process_at_rank(source).receive_with_tag(HERE);
                    answers[source as usize] = Some(at);
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            eprintln!(
                "error: rank {rank}: {}",
                stall_message(number, what, waited, &answers)
            );
            // The job ends here: the pending sends are never waited for.
            std::mem::forget(asks);
            self.comm.abort(STALLED_EXIT)
        })
    }
}

/// What a rank whose time limit passed in collective `number` says, given the collective each rank
/// answered it is in (`None`: no answer).
pub fn stall_message(number: u64, what: &str, waited: Duration, answers: &[Option<u64>]) -> String {
    let silent: Vec<String> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.is_none())
        .map(|(r, _)| r.to_string())
        .collect();
    let elsewhere: Vec<String> = answers
        .iter()
        .enumerate()
        .filter_map(|(r, a)| {
            a.filter(|&n| n != number)
                .map(|n| format!("rank {r} is in #{n}"))
        })
        .collect();
    let limit = format!(
        "{} s (`{}` sets the limit)",
        waited.as_secs(),
        super::ENV_TIMEOUT
    );
    let mut message = if silent.is_empty() {
        format!(
            "collective #{number} ({what}) did not complete within {limit}, though every rank is \
             waiting in one"
        )
    } else {
        let ranks = if silent.len() == 1 {
            format!("rank {}", silent[0])
        } else {
            format!("ranks {}", silent.join(", "))
        };
        format!(
            "{ranks} stalled: collective #{number} ({what}) waited {limit} and {ranks} did not \
             answer (stopped, hung, on a lost machine, or slower than the limit)"
        )
    };
    if !elsewhere.is_empty() {
        message.push_str(&format!("; {}", elsewhere.join(", ")));
    }
    message.push_str("; ending the job");
    message
}

/// MPI counts are `int`: refuses a message of more elements.
fn count(n: usize, what: &str) -> Result<()> {
    if i32::try_from(n).is_ok() {
        Ok(())
    } else {
        Err(Error::Distributed(format!(
            "{what}: {n} elements exceed one MPI message (2^31 - 1); lower the bucket size"
        )))
    }
}

fn to_optim(error: Error) -> laconic_optim::Error {
    laconic_optim::Error::Collective(error.to_string())
}

impl<B: Backend> Collective<B> for MpiCollective {
    fn rank(&self) -> usize {
        MpiCollective::rank(self)
    }

    fn world_size(&self) -> usize {
        self.size()
    }

    fn all_reduce_sum(&self, tensor: Tensor<B, 1>) -> laconic_optim::Result<Tensor<B, 1>> {
        let device = tensor.device();
        let data = tensor.into_data();
        let n = data.shape[0];
        let summed = if data.dtype == DType::F64 {
            let values = host::<f64>(data)?;
            TensorData::new(self.sum(&values, "an all-reduce").map_err(to_optim)?, [n])
        } else {
            let values = host::<f32>(data)?;
            TensorData::new(self.sum(&values, "an all-reduce").map_err(to_optim)?, [n])
        };
        Ok(Tensor::from_data(summed, &device))
    }

    fn all_reduce_u64(
        &self,
        values: &[u64],
        _device: &B::Device,
    ) -> laconic_optim::Result<Vec<u64>> {
        self.sum(values, "an integer all-reduce").map_err(to_optim)
    }

    fn all_gather_bytes(
        &self,
        bytes: &[u8],
        _device: &B::Device,
    ) -> laconic_optim::Result<Vec<Vec<u8>>> {
        let lengths = self
            .gather(
                &[bytes.len() as u64],
                &vec![1; self.size()],
                "the lengths of a gather",
            )
            .map_err(to_optim)?;
        let counts: Vec<usize> = lengths.iter().map(|&l| l as usize).collect();
        let all = self
            .gather(bytes, &counts, "a byte gather")
            .map_err(to_optim)?;
        let mut start = 0;
        Ok(counts
            .iter()
            .map(|&c| {
                start += c;
                all[start - c..start].to_vec()
            })
            .collect())
    }

    fn broadcast_bytes(
        &self,
        bytes: &[u8],
        root: usize,
        _device: &B::Device,
    ) -> laconic_optim::Result<Vec<u8>> {
        self.broadcast(bytes, root).map_err(to_optim)
    }

    fn all_gather(
        &self,
        part: Tensor<B, 1>,
        counts: &[usize],
    ) -> laconic_optim::Result<Tensor<B, 1>> {
        check_parts(
            counts,
            MpiCollective::rank(self),
            self.size(),
            part.dims()[0],
        )?;
        let device = part.device();
        let data = part.into_data();
        let total: usize = counts.iter().sum();
        let gathered = if data.dtype == DType::F64 {
            let values = host::<f64>(data)?;
            TensorData::new(
                self.gather(&values, counts, "a gather").map_err(to_optim)?,
                [total],
            )
        } else {
            let values = host::<f32>(data)?;
            TensorData::new(
                self.gather(&values, counts, "a gather").map_err(to_optim)?,
                [total],
            )
        };
        Ok(Tensor::from_data(gathered, &device))
    }

    fn reduce_scatter(
        &self,
        tensor: Tensor<B, 1>,
        counts: &[usize],
    ) -> laconic_optim::Result<Tensor<B, 1>> {
        let rank = MpiCollective::rank(self);
        let total = tensor.dims()[0];
        if counts.iter().sum::<usize>() != total {
            return Err(laconic_optim::Error::Collective(format!(
                "reduce-scatter of {total} values into parts of {counts:?}"
            )));
        }
        check_parts(
            counts,
            rank,
            self.size(),
            counts.get(rank).copied().unwrap_or(0),
        )?;
        let device = tensor.device();
        let data = tensor.into_data();
        let what = "a reduce-scatter";
        let mine = if data.dtype == DType::F64 {
            let values = host::<f64>(data)?;
            TensorData::new(
                self.sum_scatter(&values, counts, what).map_err(to_optim)?,
                [counts[rank]],
            )
        } else {
            let values = host::<f32>(data)?;
            TensorData::new(
                self.sum_scatter(&values, counts, what).map_err(to_optim)?,
                [counts[rank]],
            )
        };
        Ok(Tensor::from_data(mine, &device))
    }
}

/// The start of every rank's part, after checking there is one count per rank and this rank's is `len`.
fn check_parts(
    counts: &[usize],
    rank: usize,
    size: usize,
    len: usize,
) -> laconic_optim::Result<()> {
    if counts.len() == size && counts[rank] == len {
        Ok(())
    } else {
        Err(laconic_optim::Error::Collective(format!(
            "rank {rank} of {size} has {len} values for part sizes {counts:?}"
        )))
    }
}

/// A host copy of `data` as `T`.
fn host<T: burn::tensor::Element>(data: TensorData) -> laconic_optim::Result<Vec<T>> {
    data.convert::<T>()
        .into_vec::<T>()
        .map_err(|e| laconic_optim::Error::Collective(format!("reading a tensor: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_names_the_silent_rank() {
        let m = stall_message(7, "an all-reduce", Duration::from_secs(5), &[Some(7), None]);
        assert!(
            m.starts_with("rank 1 stalled: collective #7 (an all-reduce) waited 5 s"),
            "{m}"
        );
        let m = stall_message(
            7,
            "a gather",
            Duration::from_secs(5),
            &[Some(7), Some(6), None, None],
        );
        assert!(
            m.starts_with("ranks 2, 3 stalled") && m.contains("rank 1 is in #6"),
            "{m}"
        );
        let m = stall_message(3, "a gather", Duration::from_secs(9), &[Some(3), Some(3)]);
        assert!(m.contains("every rank is waiting"), "{m}");
    }
}
