//! The main job: the paper's phenomenon on a 2-core CPU in minutes.
//!
//! ```text
//! cargo run --release --example demo                      # configs/demo.toml
//! cargo run --release --example demo -- --set train.steps=40
//! cargo run --release --features mpi --example demo -- --workers 2   # two MPI ranks
//! cargo run --release --example demo -- --resume runs/demo-1764180000   # after a stop (SIGTERM, Ctrl-C)
//! ```
//! A tiny Qwen3 warm-started on verbose chain-of-thought traces (assets/demo/model) is trained with GRPO
//! and the truncation reward at L_R = L_T. Prints the evaluation before and after at several token
//! budgets, the mean length of correct and incorrect answers, and the trajectory (length falls first:
//! stage I; accuracy recovers after: stage II). Writes everything into `runs/demo-<time>/`.
//! About 2 minutes on 2 cores (training and both evaluations). On SIGTERM, SIGUSR1 or Ctrl-C it
//! finishes the step, writes a checkpoint, prints the command that resumes it and exits with 75.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use laconic::backend::{self, Autodiff};
use laconic::train::distributed::World;
use laconic::train::report::finish_report;
use laconic::train::{load_policy, RlTrainer, RunConfig, RunDir};

mod common;
use common::data_parallel::{on_every_rank, ranks_note, run_on_this_rank, DataParallelArgs};
use common::resume::{cargo_run, reopen, shell_quote, train_to_end};

/// Run the CPU demo.
#[derive(Parser, Debug)]
struct Args {
    /// Run config.
    #[arg(long, default_value = "configs/demo.toml")]
    config: PathBuf,
    /// Override a config value, e.g. `--set train.steps=40` (repeatable).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Run folder (default: `runs/demo-<unix time>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (with its own config).
    #[arg(long, conflicts_with_all = ["sets", "out"])]
    resume: Option<PathBuf>,
    /// No progress bars or per-step lines.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    data_parallel: DataParallelArgs,
}

fn main() {
    let args = Args::parse();
    run_on_this_rank(&args.data_parallel, |world| run(&args, world));
}

fn run(args: &Args, world: &World) -> Result<()> {
    let start = Instant::now();
    let device = backend::rank_device(world.local_rank())?;
    laconic::train::stop::install()?;
    let (run, trainer) = on_every_rank(world, &device, || start_run(args, world, &device))?;
    train_to_end(
        trainer,
        &run,
        args.quiet,
        "demo",
        world,
        &args.data_parallel,
    )?;
    if world.rank() > 0 {
        return Ok(());
    }
    let (summary, files) = finish_report(&run)?;
    let summary = summary.context("the run has no step-0 or final evaluation")?;
    println!("\n{}", summary.markdown());
    println!(
        "Wrote {} report files under {}; metrics in {}.",
        files.len(),
        run.path.join("report").display(),
        run.path.join("metrics.jsonl").display()
    );
    println!(
        "Total time {:.0} s. Rerun: {}",
        start.elapsed().as_secs_f64(),
        rerun_command(args, world)
    );
    Ok(())
}

/// The config `--config` and `--set` describe.
fn load_config(args: &Args) -> Result<RunConfig> {
    Ok(RunConfig::load(&args.config, &args.sets)?)
}

/// The run folder (new, or `--resume`d) and its trainer, on rank 0 (or the one process).
fn start_run(
    args: &Args,
    world: &World,
    device: &burn::tensor::Device<backend::Backend>,
) -> Result<(RunDir, RlTrainer<Autodiff>)> {
    let (run, trainer) = match &args.resume {
        Some(dir) => reopen(dir, device)?,
        None => {
            let config = load_config(args)?;
            // Model, tokenizer and task are loaded and checked before the run folder is made: a
            // bad input leaves none.
            let (model, tokenizer) = load_policy::<Autodiff>(&config, device)?;
            let trainer = RlTrainer::<Autodiff>::new(config.clone(), model, tokenizer)?;
            (
                RunDir::create(new_run_dir(args, &config), &config)?,
                trainer,
            )
        }
    };
    let ranks = ranks_note(world);
    println!(
        "laconic demo on {}{ranks} — run folder {}",
        backend::NAME,
        run.path.display()
    );
    Ok((run, trainer))
}

/// `--out`, or a new folder under `train.out_dir`.
fn new_run_dir(args: &Args, config: &RunConfig) -> PathBuf {
    args.out
        .clone()
        .unwrap_or_else(|| config.new_run_dir(&args.config))
}

/// The command that runs this demo again: the config (a resumed run's resolved one), every `--set`
/// and the data-parallel flags (not `--out`, whose folder now holds this run).
fn rerun_command(args: &Args, world: &World) -> String {
    let config = match &args.resume {
        Some(dir) => dir.join(laconic::train::run::RESOLVED_CONFIG),
        None => args.config.clone(),
    };
    let mut words = vec!["--config".to_string(), path_word(&config)];
    for set in &args.sets {
        words.extend(["--set".to_string(), shell_quote(set)]);
    }
    words.extend(
        args.data_parallel
            .flags(world)
            .iter()
            .map(|w| shell_quote(w)),
    );
    format!("{} -- {}", cargo_run("demo"), words.join(" "))
}

fn path_word(path: &Path) -> String {
    shell_quote(&path.display().to_string())
}
