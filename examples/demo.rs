//! The main job: the paper's phenomenon on a 2-core CPU in minutes.
//!
//! ```text
//! cargo run --release --example demo                      # configs/demo.toml
//! cargo run --release --example demo -- --set train.steps=40
//! cargo run --release --example demo -- --workers 2     # two data-parallel worker processes
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
use laconic::train::distributed::{relaunch, work, LaunchPlan, Role};
use laconic::train::report::finish_report;
use laconic::train::{load_policy, RlTrainer, RunConfig, RunDir};

mod common;
use common::data_parallel::{require_shared_name, wait_for_run, DataParallelArgs};
use common::resume::{cargo_run, finish, reopen, shell_quote, train_to_end, with_resume_command};

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
    // A stopped run exits with `STOPPED_EXIT`, a data-parallel failure with its own code.
    finish(run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let device = backend::device()?;
    laconic::train::stop::install()?;
    let role = Role::of(args.data_parallel.plan())?;
    if let Role::Worker(topology) = &role {
        let run = topology.run.clone();
        let worked = work::<Autodiff>(topology, &device, args.quiet);
        return with_resume_command(worked, "demo", &run, &args.data_parallel);
    }
    let run = match role {
        Role::Launcher(plan) => match launch_workers(&args, &plan)? {
            Some(run) => run,
            None => return Ok(()),
        },
        _ => train_here(&args, &device)?,
    };

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
        rerun_command(&args)
    );
    Ok(())
}

/// The config `--config` and `--set` describe.
fn load_config(args: &Args) -> Result<RunConfig> {
    Ok(RunConfig::load(&args.config, &args.sets)?)
}

/// The whole run in this process (a new one, or `--resume`); returns its folder once trained.
fn train_here(args: &Args, device: &burn::tensor::Device<backend::Backend>) -> Result<RunDir> {
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
    println!(
        "laconic demo on {} — run folder {}",
        backend::NAME,
        run.path.display()
    );
    train_to_end(trainer, &run, args.quiet, "demo", &args.data_parallel)?;
    Ok(run)
}

/// `--out`, or a new folder under `train.out_dir`.
fn new_run_dir(args: &Args, config: &RunConfig) -> PathBuf {
    args.out
        .clone()
        .unwrap_or_else(|| config.new_run_dir(&args.config))
}

/// Starts this machine's workers on the run folder (made or opened here on machine 0, waited for
/// on the others) and waits for them; returns the folder on machine 0, which writes the report.
fn launch_workers(args: &Args, plan: &LaunchPlan) -> Result<Option<RunDir>> {
    let (run, fresh) = match &args.resume {
        Some(dir) if plan.node_rank == 0 => (RunDir::open(dir)?.0, false),
        Some(dir) => (wait_for_run(dir)?, false),
        None => {
            let config = load_config(args)?;
            require_shared_name(plan, args.out.is_some(), "--out RUN_DIR")?;
            let dir = new_run_dir(args, &config);
            if plan.node_rank == 0 {
                (RunDir::create(&dir, &config)?, true)
            } else {
                (wait_for_run(&dir)?, false)
            }
        }
    };
    println!(
        "laconic demo on {} with {} workers — run folder {}",
        backend::NAME,
        plan.world(),
        run.path.display()
    );
    relaunch(plan, &run.path, fresh)?;
    Ok((plan.node_rank == 0).then_some(run))
}

/// The command that runs this demo again: the config (a resumed run's resolved one), every `--set`
/// and the data-parallel flags (not `--out`, whose folder now holds this run).
fn rerun_command(args: &Args) -> String {
    let config = match &args.resume {
        Some(dir) => dir.join(laconic::train::run::RESOLVED_CONFIG),
        None => args.config.clone(),
    };
    let mut words = vec!["--config".to_string(), path_word(&config)];
    for set in &args.sets {
        words.extend(["--set".to_string(), shell_quote(set)]);
    }
    words.extend(args.data_parallel.flags().iter().map(|w| shell_quote(w)));
    format!("{} -- {}", cargo_run("demo"), words.join(" "))
}

fn path_word(path: &Path) -> String {
    shell_quote(&path.display().to_string())
}
