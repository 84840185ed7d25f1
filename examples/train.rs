//! RL training from a config: any Hugging Face Qwen3/Qwen2 checkpoint, any backend feature.
//!
//! ```text
//! cargo run --release --example train -- --config configs/qwen3-0.6b.toml --model path/to/Qwen3-0.6B
//! cargo run --release --features cuda --example train -- --config configs/qwen3-0.6b.toml --model …
//! cargo run --release --example train -- --resume runs/qwen3-0.6b-1764180000
//! ```
//! Writes the run folder (resolved config, metrics.jsonl, rollouts, checkpoints, evaluations, report).
//! `--resume RUN_DIR` continues from the run's last checkpoint with its resolved config.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use laconic::backend::{self, Autodiff};
use laconic::train::progress::ProgressBars;
use laconic::train::report::{write_report, RunSummary};
use laconic::train::{load_policy, unique_run_name, RlTrainer, RunConfig, RunDir};

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
}

fn main() {
    if let Err(err) = run(Args::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let device = backend::device();
    let (run, mut trainer) = match (&args.resume, &args.config) {
        (Some(dir), _) => {
            let (run, config) = RunDir::open(dir)?;
            let trainer = RlTrainer::<Autodiff>::resume(&run, config, &device)?;
            println!(
                "resuming {} at step {}",
                run.path.display(),
                trainer.step_count()
            );
            (run, trainer)
        }
        (None, Some(path)) => {
            let mut sets = args.sets.clone();
            if let Some(model) = &args.model {
                sets.push(format!("model.path=\"{}\"", model.display()));
            }
            let config = RunConfig::load(path, &sets)?;
            let name = config.train.run_name.clone().unwrap_or_else(|| {
                let stem = path
                    .file_stem()
                    .map_or("run".into(), |s| s.to_string_lossy().into_owned());
                unique_run_name(&stem)
            });
            // Model, tokenizer and task are loaded before the run folder is made: a bad input
            // leaves none.
            let (model, tokenizer) = load_policy::<Autodiff>(&config, &device)?;
            let trainer = RlTrainer::<Autodiff>::new(config.clone(), model, tokenizer)?;
            let run = RunDir::create(config.train.out_dir.join(name), &config)?;
            (run, trainer)
        }
        (None, None) => bail!("give --config FILE or --resume RUN_DIR"),
    };
    println!(
        "training on {} — run folder {}",
        backend::NAME,
        run.path.display()
    );
    let steps = trainer.config().train.steps;
    let mut bars = ProgressBars::new(steps, trainer.step_count(), args.quiet);
    trainer.train(&run, &mut bars)?;
    bars.finish();
    let evals = |step: u64| {
        laconic::eval::EvalReport::read(run.path.join(format!("eval/step_{step}"))).ok()
    };
    let summary = match (evals(0), evals(steps)) {
        (Some(before), Some(after)) => after.benchmarks.first().and_then(|b| {
            RunSummary::new(
                &b.name,
                &run.read_metrics().unwrap_or_default(),
                &before,
                &after,
            )
        }),
        _ => None,
    };
    write_report(&run, summary.as_ref())?;
    if let Some(summary) = &summary {
        println!("\n{}", summary.markdown());
    }
    println!("done: {}", run.path.display());
    Ok(())
}
