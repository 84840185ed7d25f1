//! The data-parallel side of `train` and `demo`: the `--workers N` shortcut (it starts `mpirun`),
//! the rank that this process is ([`start`]), the run folder rank 0 makes and the others join
//! ([`on_every_rank`]), and how a rank ends ([`finish`]).

use anyhow::{bail, Result};
use laconic::backend::{self, Autodiff};
use laconic::train::distributed::{join_run, launch_local, World};
use laconic::train::stop::STOPPED_EXIT;
use laconic::train::{RlTrainer, RunDir};

use super::resume::Stopped;

/// How many ranks train the run on this machine (`--workers 2`: `mpirun -np 2` of this command).
/// Over several machines, start the command with the cluster's launcher instead (`mpirun -np N
/// --hostfile …`, `srun --mpi=pmix …`).
#[derive(clap::Args, Debug, Clone)]
pub struct DataParallelArgs {
    /// Ranks on this machine, one device each, started with `mpirun` (needs the `mpi` feature).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

impl DataParallelArgs {
    /// The flags as given, those left at their defaults omitted (`--workers 2`): what a command
    /// that repeats this one passes on.
    pub fn flags(&self, world: &World) -> Vec<String> {
        let workers = self.workers.max(world.size());
        if workers == 1 {
            Vec::new()
        } else {
            vec!["--workers".into(), workers.to_string()]
        }
    }
}

/// This process's world, first thing in `main`: the MPI rank a launcher started, the whole run,
/// or (with `--workers N` and no launcher) `mpirun` started in this process's place.
///
/// # Errors
/// As [`World::init`] and [`launch_local`]; `--workers` under a launcher.
pub fn start(args: &DataParallelArgs) -> Result<World> {
    let world = World::init()?;
    if args.workers > 1 || args.workers == 0 {
        if world.size() > 1 {
            bail!(
                "`--workers` starts ranks under `mpirun`; this process already is rank {} of {} \
                 (leave `--workers` out under a launcher)",
                world.rank(),
                world.size()
            );
        }
        match launch_local(args.workers)? {}
    }
    Ok(world)
}

/// The whole `main` of an example that trains: [`start`] first (under `--workers N` this process
/// becomes `mpirun`; a rank splits the cores before any thread pool starts), then `run` on this
/// rank, then [`finish`] (a stopped run exits with `STOPPED_EXIT`; an error on any rank ends every
/// rank).
pub fn run_on_this_rank(args: &DataParallelArgs, run: impl FnOnce(&World) -> Result<()>) {
    match start(args) {
        Ok(world) => {
            let result = run(&world);
            finish(world, result);
        }
        Err(e) => finish(World::single(), Err(e)),
    }
}

/// ` with N ranks` in a data-parallel run, else nothing: for the line that names the run folder.
pub fn ranks_note(world: &World) -> String {
    match world.size() {
        1 => String::new(),
        n => format!(" with {n} ranks"),
    }
}

/// The run folder and this rank's trainer: rank 0's from `rank0` (the folder made or opened
/// there), the others' joined to it. One process is rank 0 of one.
///
/// # Errors
/// `rank0`'s error, or as [`join_run`].
pub fn on_every_rank(
    world: &World,
    device: &burn::tensor::Device<backend::Backend>,
    rank0: impl FnOnce() -> Result<(RunDir, RlTrainer<Autodiff>)>,
) -> Result<(RunDir, RlTrainer<Autodiff>)> {
    if world.size() == 1 {
        return rank0();
    }
    if world.rank() == 0 {
        let (run, trainer) = rank0()?;
        world.share_path(Some(&run.path))?;
        Ok((run, trainer.with_collective(world.collective())))
    } else {
        let path = world.share_path(None)?;
        Ok(join_run(world, &path, device)?)
    }
}

/// The end of `main` for an example that trains: a stopped run's note (where it is saved and how
/// to resume it, from rank 0) and [`STOPPED_EXIT`]; any other error printed with the rank that
/// met it, ending every rank of the job.
pub fn finish(world: World, result: Result<()>) {
    let error = match result {
        Ok(()) => return world.finalize(),
        Err(error) => error,
    };
    if let Some(stopped) = error.downcast_ref::<Stopped>() {
        if world.rank() == 0 {
            eprintln!("{stopped}");
        }
        world.finalize();
        std::process::exit(STOPPED_EXIT);
    }
    world.end(&format!("error: {error:#}"), 1)
}
