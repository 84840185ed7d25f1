//! RL training from a config: any Hugging Face Qwen3/Qwen2 checkpoint, any backend feature.
//!
//! ```text
//! cargo run --release --example train -- --config configs/qwen3-0.6b.toml --model path/to/Qwen3-0.6B
//! cargo run --release --features cuda --example train -- --config configs/qwen3-0.6b.toml --model …
//! cargo run --release --example train -- --resume runs/qwen3-0.6b-1764180000
//! cargo run --release --example train -- --config configs/demo.toml --workers 2   # data-parallel
//! cargo run --release --example train -- --config configs/demo.toml --set model.lora.rank=16 --merge
//! ```
//! Writes the run folder (resolved config, metrics.jsonl, rollouts, checkpoints, evaluations, report).
//! `--resume RUN_DIR` continues from the run's last checkpoint with its resolved config (with any
//! worker count). `--workers N` runs N data-parallel worker processes on this machine; `--nodes M
//! --node-rank R --coordinator HOST:PORT --host HOST` spreads them over machines
//! (docs/design.md, "Data-parallel runs"). On SIGTERM, SIGUSR1 or Ctrl-C the run finishes its step,
//! writes a checkpoint, prints the command that resumes it and exits with 75; a second signal ends
//! it at once.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use laconic::backend::{self, Autodiff};
use laconic::train::distributed::{relaunch, work, LaunchPlan, Role};
use laconic::train::report::finish_report;
use laconic::train::{export_merged, load_policy, RlTrainer, RunConfig, RunDir};

mod common;
use common::data_parallel::{require_shared_name, wait_for_run, DataParallelArgs};
use common::resume::{finish, reopen, train_to_end, with_resume_command};

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
    // A stopped run exits with `STOPPED_EXIT`, a data-parallel failure with its own code (a
    // worker, a peer, a timeout).
    finish(run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    let device = backend::device()?;
    laconic::train::stop::install()?;
    let run = match Role::of(args.data_parallel.plan())? {
        Role::Worker(topology) => {
            let worked = work::<Autodiff>(&topology, &device, args.quiet);
            return with_resume_command(worked, "train", &topology.run, &args.data_parallel);
        }
        Role::Launcher(plan) => match launch_workers(&args, &plan)? {
            Some(run) => run,
            None => return Ok(()),
        },
        Role::Single => train_here(&args, &device)?,
    };
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

/// The whole run in this process; returns its folder once trained.
fn train_here(args: &Args, device: &burn::tensor::Device<backend::Backend>) -> Result<RunDir> {
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
    println!(
        "training on {} — run folder {}",
        backend::NAME,
        run.path.display()
    );
    train_to_end(trainer, &run, args.quiet, "train", &args.data_parallel)?;
    Ok(run)
}

/// Starts this machine's workers on the run folder (made or opened here on machine 0, waited for on
/// the others) and waits for them; returns the folder on machine 0, which writes the report.
fn launch_workers(args: &Args, plan: &LaunchPlan) -> Result<Option<RunDir>> {
    let (run, fresh) = match (&args.resume, &args.config) {
        (Some(dir), _) if plan.node_rank == 0 => (RunDir::open(dir)?.0, false),
        (Some(dir), _) => (wait_for_run(dir)?, false),
        (None, Some(path)) => {
            let config = load_config(args, path)?;
            require_shared_name(
                plan,
                config.train.run_name.is_some(),
                "--set train.run_name=NAME",
            )?;
            let dir = config.new_run_dir(path);
            if plan.node_rank == 0 {
                (RunDir::create(dir, &config)?, true)
            } else {
                (wait_for_run(&dir)?, false)
            }
        }
        (None, None) => bail!("give --config FILE or --resume RUN_DIR"),
    };
    println!(
        "training on {} with {} workers ({} on this machine) — run folder {}",
        backend::NAME,
        plan.world(),
        plan.workers,
        run.path.display()
    );
    relaunch(plan, &run.path, fresh)?;
    Ok((plan.node_rank == 0).then_some(run))
}
