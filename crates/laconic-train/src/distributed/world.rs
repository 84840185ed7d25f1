//! [`World`]: whether this process is the whole run or one rank of an MPI world, and what a rank
//! needs from it (its collective, rank 0's run folder, the end of the job on an error).

use std::path::{Path, PathBuf};

use burn::prelude::Backend;
use laconic_optim::{Collective, SingleWorker};

use super::mpirun::launcher_world_size;
#[cfg(feature = "mpi")]
use super::MpiWorld;
use crate::error::{Error, Result};

/// This process's place in a run: the whole run, or one rank of an MPI world. MPI is finalised when
/// it drops.
pub struct World {
    engine: Engine,
}

enum Engine {
    Single,
    #[cfg(feature = "mpi")]
    Mpi(MpiWorld),
}

impl World {
    /// The whole run in this process.
    pub fn single() -> Self {
        Self {
            engine: Engine::Single,
        }
    }

    /// The MPI world when an MPI launcher started this process as one of several ranks, else the
    /// whole run. The ranks on one machine split its cores (`RAYON_NUM_THREADS`, unless set).
    /// Call it first, before any thread pool starts.
    ///
    /// # Errors
    /// Several ranks in a build without MPI (naming what to install), MPI that does not start, a
    /// launcher and MPI that disagree on the world size, or a bad [`super::ENV_TIMEOUT`].
    pub fn init() -> Result<Self> {
        let timeout = super::collective_timeout()?;
        let Some(launched) = launcher_world_size()? else {
            return Ok(Self::single());
        };
        Self::init_mpi(launched, timeout)
    }

    #[cfg(feature = "mpi")]
    fn init_mpi(launched: usize, timeout: std::time::Duration) -> Result<Self> {
        let world = MpiWorld::init(timeout)?;
        if world.size() != launched {
            return Err(Error::Distributed(format!(
                "the launcher started {launched} ranks but MPI sees a world of {} (under Slurm, \
                 start the job with `srun --mpi=pmix`)",
                world.size()
            )));
        }
        split_threads(world.local_size());
        Ok(Self {
            engine: Engine::Mpi(world),
        })
    }

    #[cfg(not(feature = "mpi"))]
    fn init_mpi(launched: usize, _timeout: std::time::Duration) -> Result<Self> {
        Err(Error::Distributed(format!(
            "an MPI launcher started this program as one of {launched} ranks, but it was built \
             without MPI: {}",
            super::MPI_INSTALL
        )))
    }

    /// This process's rank, `0..size`.
    pub fn rank(&self) -> usize {
        match &self.engine {
            Engine::Single => 0,
            #[cfg(feature = "mpi")]
            Engine::Mpi(world) => world.rank(),
        }
    }

    /// Ranks in the run.
    pub fn size(&self) -> usize {
        match &self.engine {
            Engine::Single => 1,
            #[cfg(feature = "mpi")]
            Engine::Mpi(world) => world.size(),
        }
    }

    /// This rank's index among the ranks of its machine: the GPU it takes.
    pub fn local_rank(&self) -> usize {
        match &self.engine {
            Engine::Single => 0,
            #[cfg(feature = "mpi")]
            Engine::Mpi(world) => world.local_rank(),
        }
    }

    /// The collective this rank's trainer sums through (every rank calls this alike): with `cuda`,
    /// NCCL for burn's CUDA backend.
    pub fn collective<B: Backend>(&self) -> Box<dyn Collective<B>> {
        match &self.engine {
            Engine::Single => Box::new(SingleWorker),
            #[cfg(feature = "mpi")]
            Engine::Mpi(world) => rank_collective(world),
        }
    }

    /// Rank 0's `path` (the run folder it made or opened) on every rank; the others pass `None`.
    ///
    /// # Errors
    /// A path that is not UTF-8, a rank that stalled, or rank 0 passing `None`.
    pub fn share_path(&self, path: Option<&Path>) -> Result<PathBuf> {
        match &self.engine {
            Engine::Single => path
                .map(Path::to_path_buf)
                .ok_or_else(|| Error::Distributed("no run folder to share".into())),
            #[cfg(feature = "mpi")]
            Engine::Mpi(world) => world.share_path(path),
        }
    }

    /// Ends this process's part in the world: MPI is finalised (every rank must get here, as after
    /// a finished or stopped run); nothing to do for one process.
    pub fn finalize(self) {
        match self.engine {
            Engine::Single => {}
            #[cfg(feature = "mpi")]
            Engine::Mpi(world) => drop(world),
        }
    }

    /// Ends the run after `message` (an error of this rank): the whole job when there are several
    /// ranks (`MPI_Abort`, so none waits on this one), else this process. Exits with `code`.
    pub fn end(&self, message: &str, code: i32) -> ! {
        match &self.engine {
            Engine::Single => {
                eprintln!("{message}");
                std::process::exit(code)
            }
            #[cfg(feature = "mpi")]
            Engine::Mpi(world) => {
                eprintln!("rank {} of {}: {message}", world.rank(), world.size());
                world.abort(code)
            }
        }
    }
}

/// An MPI rank's collective: MPI's own.
#[cfg(all(feature = "mpi", not(feature = "cuda")))]
fn rank_collective<B: Backend>(world: &MpiWorld) -> Box<dyn Collective<B>> {
    Box::new(world.collective())
}

/// An MPI rank's collective: NCCL over MPI's when `B` is burn's CUDA backend, else MPI's own.
#[cfg(all(feature = "mpi", feature = "cuda"))]
fn rank_collective<B: Backend>(world: &MpiWorld) -> Box<dyn Collective<B>> {
    super::nccl::for_backend(world.collective())
}

/// Lets each of the `ranks` on this machine use its share of the cores, unless the user set
/// `RAYON_NUM_THREADS`.
#[cfg(feature = "mpi")]
fn split_threads(ranks: usize) {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() || ranks <= 1 {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    std::env::set_var("RAYON_NUM_THREADS", (cores / ranks).max(1).to_string());
}
