//! The lab: the paper's ablations in miniature — one command, several seeds, figures and a verdict
//! per finding computed from the runs.
//!
//! ```text
//! cargo run --release --example lab                    # every experiment in configs/lab, 3 seeds
//! cargo run --release --example lab -- --quick         # one seed, half the steps
//! cargo run --release --example lab -- --only easy_vs_hard,masking --seeds 5 --set rollout.n=16
//! cargo run --release --example lab -- --resume runs/lab-1764180000-4242
//! ```
//! Each experiment (`configs/lab/NAME.toml`) is a base config, arms that override it, and checks. Arms
//! run as parallel processes (one per core by default); arms with identical configs are trained once.
//! Writes `runs/lab-<time>/`: the run folders, `report.md`, `summary.json` and `figures/*.svg`.
//! `--resume` keeps finished runs and continues unfinished ones from their last checkpoint.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Parser;
use laconic::backend::{self, Autodiff};
use laconic::train::lab::report::{self, ExperimentResult, LabRun};
use laconic::train::lab::runner::watch_parent;
use laconic::train::lab::{self, experiment, runner, Lab, LabOptions, Plan};
use laconic::train::unique_run_name;

/// Run the paper's ablations in miniature.
#[derive(Parser, Debug)]
struct Args {
    /// One seed and half the steps per run (unless `--seeds` says otherwise).
    #[arg(long)]
    quick: bool,
    /// Only these experiments (comma-separated names of files in the experiments folder).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Seeds per arm (default 3; 1 with `--quick`).
    #[arg(long)]
    seeds: Option<u64>,
    /// Override a config value in every arm, e.g. `--set rollout.n=16` (an arm's own overrides win).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Folder of experiment files.
    #[arg(long, default_value = "configs/lab")]
    experiments: PathBuf,
    /// Lab folder (default `runs/lab-<time>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the lab in this folder: finished runs are kept, unfinished ones resume.
    #[arg(long, conflicts_with_all = ["quick", "only", "seeds", "sets", "out"])]
    resume: Option<PathBuf>,
    /// Runs trained at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Internal: train this run folder (a child of the lab).
    #[arg(long, hide = true)]
    arm: Option<PathBuf>,
}

fn main() {
    laconic_harness::exit_on_error(run(Args::parse()), |_| 1);
}

fn run(args: Args) -> Result<()> {
    if let Some(dir) = &args.arm {
        watch_parent();
        return Ok(lab::train_arm::<Autodiff>(dir, &backend::device()?)?);
    }
    let start = Instant::now();
    let lab = open_or_create(&args)?;
    let plan = lab.plan()?;
    let jobs = lab.pending_jobs(&plan)?;
    let parallel = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!(
        "laconic lab on {}: {} experiment(s), {} seed(s), {} distinct runs ({} to train, {} at a time) — {}",
        backend::NAME,
        lab.experiments.len(),
        lab.options.seeds,
        plan.runs.len(),
        jobs.len(),
        parallel.min(jobs.len().max(1)),
        lab.dir.display()
    );
    let exe = std::env::current_exe()?;
    let mut failed = Vec::new();
    runner::run_jobs(
        jobs,
        parallel,
        |job| {
            let mut c = Command::new(&exe);
            c.arg("--arm").arg(&job.dir);
            c
        },
        |outcome, done, total| {
            let label = &outcome.job.label;
            match &outcome.result {
                Ok(()) => match lab::mark_done(&outcome.job.dir, outcome.seconds) {
                    Ok(()) => println!("[{done}/{total}] {label}: {:.0} s", outcome.seconds),
                    Err(e) => failed.push((label.clone(), e.to_string(), outcome.job.dir.clone())),
                },
                Err(status) => {
                    let log = runner::log_path(&outcome.job);
                    println!(
                        "[{done}/{total}] {label}: FAILED ({status}); log {}",
                        log.display()
                    );
                    failed.push((label.clone(), status.clone(), log));
                }
            }
        },
    )?;
    let path = write_report(&lab, &plan, start, &failed)?;
    println!("report: {}", path.display());
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|(l, _, _)| l.as_str()).collect();
        bail!(
            "{} run(s) failed: {} (see their lab.log); `--resume {}` retries them",
            failed.len(),
            names.join(", "),
            lab.dir.display()
        );
    }
    Ok(())
}

/// The lab `--resume` names, or a new one from the experiment files.
fn open_or_create(args: &Args) -> Result<Lab> {
    if let Some(dir) = &args.resume {
        return Ok(Lab::open(dir.clone())?);
    }
    let experiments = experiment::select(experiment::load_dir(&args.experiments)?, &args.only)?;
    let options = LabOptions {
        seeds: args.seeds.unwrap_or(if args.quick { 1 } else { 3 }),
        sets: args.sets.clone(),
        quick: args.quick,
    };
    if options.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(unique_run_name("lab")));
    Ok(Lab::create(dir, experiments, options)?)
}

/// Decides every experiment on its finished runs and writes the report; prints the summary table.
fn write_report(
    lab: &Lab,
    plan: &Plan,
    start: Instant,
    failed: &[(String, String, PathBuf)],
) -> Result<PathBuf> {
    let runs = lab.results(plan)?;
    let results: Vec<ExperimentResult<'_>> = lab
        .experiments
        .iter()
        .zip(runs)
        .map(|(e, arm_runs)| ExperimentResult::decide(e, arm_runs, plan.shared_arms(e)))
        .collect();
    let info = LabRun {
        command: format!(
            "cargo run --release --example lab -- --resume {}",
            lab.dir.display()
        ),
        seeds: lab.options.seeds,
        quick: lab.options.quick,
        runs: plan.runs.len(),
        run_seconds: plan
            .runs
            .iter()
            .filter_map(|r| lab::run_seconds(&r.dir))
            .sum(),
        wall_seconds: start.elapsed().as_secs_f64(),
        failed: failed.to_vec(),
    };
    let path = report::write(&lab.dir, &info, &results)?;
    println!("\n{}", report::summary_table(&results));
    Ok(path)
}
