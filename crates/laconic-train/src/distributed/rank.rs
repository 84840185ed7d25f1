//! What a rank of a data-parallel run does with the run folder: attach to it (rank 0 made or opened
//! it), start or resume its trainer there, and join the others.

use std::path::Path;

use laconic_optim::LogprobBackend;

use super::World;
use crate::error::Result;
use crate::rl::{load_policy, RlTrainer};
use crate::run::RunDir;

/// This rank's trainer on the run folder `path` that rank 0 made or opened: the policy from the
/// run's config, or from the last checkpoint that loads when the folder has one (any number of
/// ranks may resume any run), summing through `world`'s collective. Rank 0 alone trims the
/// metrics of a resumed run.
///
/// # Errors
/// The run folder, the policy or a checkpoint does not load.
pub fn join_run<B: LogprobBackend>(
    world: &World,
    path: &Path,
    device: &B::Device,
) -> Result<(RunDir, RlTrainer<B>)> {
    let (run, config) = RunDir::attach(path)?;
    let trainer = if run.list_checkpoints().is_empty() {
        let (model, tokenizer) = load_policy::<B>(&config, device)?;
        RlTrainer::new(config, model, tokenizer)?
    } else if world.rank() == 0 {
        RlTrainer::resume(&run, config, device)?
    } else {
        RlTrainer::load_latest(&run, config, device)?
    };
    Ok((run, trainer.with_collective(world.collective())))
}
