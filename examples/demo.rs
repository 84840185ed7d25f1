//! The main job: the paper's phenomenon on a 2-core CPU in minutes.
//!
//! ```text
//! cargo run --release --example demo                      # configs/demo.toml
//! cargo run --release --example demo -- --set train.steps=40
//! cargo run --release --example demo -- --workers 2     # two data-parallel worker processes
//! ```
//! A tiny Qwen3 warm-started on verbose chain-of-thought traces (assets/demo/model) is trained with GRPO
//! and the truncation reward at L_R = L_T. Prints the evaluation before and after at several token
//! budgets, the mean length of correct and incorrect answers, and the trajectory (length falls first:
//! stage I; accuracy recovers after: stage II). Writes everything into `runs/demo-<time>/`.
//! About 2 minutes on 2 cores (training and both evaluations).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use laconic::backend::{self, Autodiff};
use laconic::train::distributed::{self, relaunch, work, Role};
use laconic::train::progress::ProgressBars;
use laconic::train::report::finish_report;
use laconic::train::{load_policy, RlTrainer, RunConfig, RunDir};

mod common;
use common::data_parallel::{require_shared_name, wait_for_run, DataParallelArgs};

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
    /// No progress bars or per-step lines.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    data_parallel: DataParallelArgs,
}

fn main() {
    // A data-parallel failure exits with its own code (a worker, a peer, a timeout).
    laconic_harness::exit_on_error(run(Args::parse()), |err| {
        err.downcast_ref().map_or(1, distributed::exit_code)
    });
}

fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let device = backend::device()?;
    let role = Role::of(args.data_parallel.plan())?;
    if let Role::Worker(topology) = &role {
        return Ok(work::<Autodiff>(topology, &device, args.quiet)?);
    }
    let config = RunConfig::load(&args.config, &args.sets)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| config.new_run_dir(&args.config));
    let run = match role {
        Role::Launcher(plan) => {
            require_shared_name(&plan, args.out.is_some(), "--out RUN_DIR")?;
            let run = if plan.node_rank == 0 {
                RunDir::create(&out, &config)?
            } else {
                wait_for_run(&out)?
            };
            println!(
                "laconic demo on {} with {} workers — run folder {}",
                backend::NAME,
                plan.world(),
                run.path.display()
            );
            relaunch(&plan, &run.path, plan.node_rank == 0)?;
            if plan.node_rank > 0 {
                return Ok(());
            }
            run
        }
        _ => {
            // Model, tokenizer and task are loaded before the run folder is made: a bad input
            // leaves none.
            let (model, tokenizer) = load_policy::<Autodiff>(&config, &device)?;
            let mut trainer = RlTrainer::<Autodiff>::new(config.clone(), model, tokenizer)?;
            let run = RunDir::create(&out, &config)?;
            println!(
                "laconic demo on {} — run folder {}",
                backend::NAME,
                run.path.display()
            );
            let mut bars = ProgressBars::new(config.train.steps, 0, args.quiet);
            trainer.train(&run, &mut bars)?;
            bars.finish();
            run
        }
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
        "Total time {:.0} s. Rerun: cargo run --release --example demo -- --config {}",
        start.elapsed().as_secs_f64(),
        args.config.display()
    );
    Ok(())
}
