//! RL training from a config: any Hugging Face Qwen3/Qwen2/Llama checkpoint, any backend feature.
//!
//! ```text
//! cargo run --release --example train -- --config configs/qwen3-0.6b.toml --model path/to/Qwen3-0.6B
//! cargo run --release --features cuda --example train -- --config configs/qwen3-0.6b.toml --model …
//! cargo run --release --example train -- --resume runs/qwen3-0.6b-1764180000
//! cargo run --release --features mpi --example train -- --config configs/demo.toml --workers 2
//! cargo run --release --example train -- --config configs/demo.toml --set model.lora.rank=16 --merge
//! ```
//! Writes the run folder (resolved config, metrics.jsonl, rollouts, checkpoints, evaluations, report).
//! `--resume RUN_DIR` continues from the run's last checkpoint with its resolved config (with any
//! number of ranks). Data-parallel runs need the `mpi` feature: `mpirun -np N …/train --config …`
//! or `srun --mpi=pmix …` on a cluster, `--workers N` on one machine (it starts `mpirun`); rank 0
//! writes the run folder (docs/design.md, "Data-parallel runs"). On SIGTERM, SIGUSR1 or Ctrl-C the
//! run finishes its step, writes a checkpoint, prints the command that resumes it and exits with 75;
//! a second signal ends it at once (under `mpirun`, send SIGUSR1: it reaches every rank).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use laconic::backend::{self, Autodiff};
use laconic::train::distributed::World;
use laconic::train::report::finish_report;
use laconic::train::{export_merged, load_policy, RlTrainer, RunConfig, RunDir};

mod common;
use common::data_parallel::{on_every_rank, ranks_note, run_on_this_rank, DataParallelArgs};
use common::resume::{reopen, train_to_end};

/// Train a policy with length-aware RL.
#[derive(Parser, Debug)]
struct Args {
    /// Run config (TOML).
    #[arg(long, required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Hugging Face checkpoint folder (overrides `model.path`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Override a config value, e.g. `--set rollout.n=16` (repeatable).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long, conflicts_with = "config")]
    resume: Option<PathBuf>,
    /// No progress bars or per-step lines.
    #[arg(long)]
    quiet: bool,
    /// After training, write the final policy as a full Hugging Face checkpoint in `<run>/merged`
    /// (LoRA adapters folded into the weights; checkpoints of a LoRA run hold the adapter alone).
    #[arg(long)]
    merge: bool,
    #[command(flatten)]
    data_parallel: DataParallelArgs,
}

fn main() {
    let args = Args::parse();
    run_on_this_rank(&args.data_parallel, |world| run(&args, world));
}

fn run(args: &Args, world: &World) -> Result<()> {
    let device = backend::rank_device(world.local_rank())?;
    laconic::train::stop::install()?;
    let (run, trainer) = on_every_rank(world, &device, || start_run(args, world, &device))?;
    train_to_end(
        trainer,
        &run,
        args.quiet,
        "train",
        world,
        &args.data_parallel,
    )?;
    if world.rank() > 0 {
        return Ok(());
    }
    if let (Some(summary), _) = finish_report(&run)? {
        println!("\n{}", summary.markdown());
    }
    if args.merge {
        let Some((_, last)) = run.list_checkpoints().pop() else {
            bail!("--merge: `{}` has no checkpoint", run.path.display());
        };
        let out = run.path.join("merged");
        export_merged::<backend::Backend>(&last, &out, &device)?;
        println!("merged checkpoint: {}", out.display());
    }
    println!("done: {}", run.path.display());
    Ok(())
}

/// The config `--config` and its overrides (`--set`, `--model`) describe.
fn load_config(args: &Args, path: &std::path::Path) -> Result<RunConfig> {
    let mut sets = args.sets.clone();
    if let Some(model) = &args.model {
        sets.push(format!("model.path=\"{}\"", model.display()));
    }
    Ok(RunConfig::load(path, &sets)?)
}

/// The run folder (new, or `--resume`d) and its trainer, on rank 0 (or the one process).
fn start_run(
    args: &Args,
    world: &World,
    device: &burn::tensor::Device<backend::Backend>,
) -> Result<(RunDir, RlTrainer<Autodiff>)> {
    let (run, trainer) = match (&args.resume, &args.config) {
        (Some(dir), _) => reopen(dir, device)?,
        (None, Some(path)) => {
            let config = load_config(args, path)?;
            // Model, tokenizer and task are loaded before the run folder is made: a bad input
            // leaves none.
            let (model, tokenizer) = load_policy::<Autodiff>(&config, device)?;
            let trainer = RlTrainer::<Autodiff>::new(config.clone(), model, tokenizer)?;
            let run = RunDir::create(config.new_run_dir(path), &config)?;
            (run, trainer)
        }
        (None, None) => bail!("give --config FILE or --resume RUN_DIR"),
    };
    let ranks = ranks_note(world);
    println!(
        "training on {}{ranks} — run folder {}",
        backend::NAME,
        run.path.display()
    );
    Ok((run, trainer))
}
