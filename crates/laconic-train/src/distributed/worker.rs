//! What a worker process of a data-parallel run does: attach to the run folder its launcher holds,
//! start or resume the trainer there, join the collective, and train.

use laconic_optim::LogprobBackend;

use super::{watch_launcher, TcpCollective, Topology};
use crate::error::Result;
use crate::progress::ProgressBars;
use crate::rl::{load_policy, RlTrainer};
use crate::run::RunDir;

/// The trainer of worker `topology.rank`: the run folder attached (the launcher holds its lock), the
/// policy from the run's config, or from the last checkpoint that loads when the folder has one (any
/// worker count may resume any run), joined to the other workers. Worker 0 alone trims the metrics
/// of a resumed run.
///
/// # Errors
/// The run folder, the policy or a checkpoint does not load; the workers cannot join.
pub fn join_run<B: LogprobBackend>(
    topology: &Topology,
    device: &B::Device,
) -> Result<(RunDir, RlTrainer<B>)> {
    let (run, config) = RunDir::attach(&topology.run)?;
    let trainer = if run.list_checkpoints().is_empty() {
        let (model, tokenizer) = load_policy::<B>(&config, device)?;
        RlTrainer::new(config, model, tokenizer)?
    } else if topology.rank == 0 {
        RlTrainer::resume(&run, config, device)?
    } else {
        RlTrainer::load_latest(&run, config, device)?
    };
    let collective = TcpCollective::join(topology)?;
    Ok((run, trainer.with_collective(Box::new(collective))))
}

/// The whole life of a worker process: stop when the launcher goes away, [`join_run`], train to
/// `train.steps`. Only worker 0 draws progress (unless `quiet`).
///
/// # Errors
/// As [`join_run`] and [`RlTrainer::train`].
pub fn work<B: LogprobBackend>(topology: &Topology, device: &B::Device, quiet: bool) -> Result<()> {
    watch_launcher();
    let (run, mut trainer) = join_run::<B>(topology, device)?;
    let steps = trainer.config().train.steps;
    let mut bars = ProgressBars::new(steps, trainer.step_count(), quiet || topology.rank > 0);
    trainer.train(&run, &mut bars)?;
    bars.finish();
    Ok(())
}
