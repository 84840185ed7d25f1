//! Data-parallel scaling on this machine, each side measured in the same run:
//!
//! ```text
//! cargo run --release --features mpi --example bench_data_parallel              # both parts
//! cargo run --release --features mpi --example bench_data_parallel -- --part steps --steps 8
//! cargo run --release --features mpi --example bench_data_parallel -- --part allreduce --layers 7
//! ```
//! 1. **Step time** of the demo config (`configs/demo.toml`: 16 prompts × 8 rollouts a step) with one
//!    process on one thread against two MPI ranks on one thread each, at ZeRO stages 0, 1 and 2.
//!    Scaling efficiency = t₁ / (2 · t₂) for the same global batch; the median of the steps after
//!    the first. With each, the optimizer state one rank holds (`memory/optimizer_state_bytes`).
//! 2. **Gradient all-reduce** of a Qwen3-0.6B-sized gradient (every parameter's length, 596 M f32
//!    by default; the shape flags shrink it) between two MPI ranks on this machine:
//!    `optim.allreduce_bucket_mib` buckets (laconic's path) against one all-reduce per parameter.
//!    Throughput = gradient bytes / seconds; a ring all-reduce moves 2(W−1)/W of them per rank.
//!
//! Needs the `mpi` feature: the ranks are this program started again under `mpirun`, as
//! `train --workers` does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use burn::prelude::*;
use clap::{Parser, ValueEnum};
use laconic::backend::{self, Autodiff};
use laconic::optim::collective::{all_reduce_bucketed, Entry};
use laconic::train::distributed::{join_run, mpirun, World};
use laconic::train::{load_policy, RlTrainer, RunConfig, RunDir};

mod common;
use common::Shape;
use laconic_harness::mean_std;

type Inner = <Autodiff as burn::tensor::backend::AutodiffBackend>::InnerBackend;

/// Which measurement.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Both.
    All,
    /// Demo-config step time, 1 vs 2 workers.
    Steps,
    /// Gradient all-reduce, bucketed vs per parameter.
    Allreduce,
}

/// What a process started by this benchmark does.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The benchmark itself.
    Bench,
    /// The one-process reference run (on `--run`).
    Single,
    /// A rank of the two-rank run (on `--run`).
    Rank,
    /// A rank of the all-reduce measurement.
    Reducer,
}

#[derive(Parser, Debug)]
struct Args {
    /// Which measurement.
    #[arg(long, value_enum, default_value_t = Part::All)]
    part: Part,
    /// RL steps per run (the first is not counted).
    #[arg(long, default_value_t = 6)]
    steps: u64,
    /// Timed all-reduces per method.
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Bucket size of the bucketed all-reduce (`optim.allreduce_bucket_mib`).
    #[arg(long, default_value_t = 25)]
    bucket_mib: usize,
    #[command(flatten)]
    shape: Shape,
    /// Set by the benchmark for the processes it starts.
    #[arg(long, value_enum, default_value_t = Role::Bench, hide = true)]
    role: Role,
    /// Set by the benchmark: the run folder of a `single` process.
    #[arg(long, hide = true)]
    run: Option<PathBuf>,
}

fn main() {
    let result = World::init()
        .map_err(anyhow::Error::from)
        .and_then(|world| run(Args::parse(), &world));
    laconic_harness::exit_on_error(result, |_| 1);
}

fn run(args: Args, world: &World) -> Result<()> {
    let device = backend::device()?;
    match args.role {
        Role::Single => {
            let (run, config) = RunDir::attach(args.run.as_ref().context("--run")?)?;
            let (model, tokenizer) = load_policy::<Autodiff>(&config, &device)?;
            RlTrainer::<Autodiff>::new(config, model, tokenizer)?.train(&run, &mut ())?;
            Ok(())
        }
        Role::Rank => {
            let run = args.run.as_ref().context("--run")?;
            let (run, mut trainer) = join_run::<Autodiff>(world, run, &device)?;
            trainer.train(&run, &mut ())?;
            Ok(())
        }
        Role::Reducer => reduce(&args, world),
        Role::Bench => {
            println!("bench_data_parallel on {}", backend::NAME);
            if args.part != Part::Allreduce {
                steps(&args)?;
            }
            if args.part != Part::Steps {
                allreduce(&args)?;
            }
            Ok(())
        }
    }
}

/// This program again, in `role`, with the benchmark's own flags: one process, or `ranks` MPI
/// ranks.
fn child(role: &str, ranks: usize) -> Result<Command> {
    let exe = std::env::current_exe().context("this program's path")?;
    let mut command = if ranks == 1 {
        Command::new(&exe)
    } else {
        let mut command = mpirun(ranks)?;
        command.arg(&exe);
        command
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    args.extend(["--role".into(), role.into()]);
    command.args(args);
    Ok(command)
}

/// Runs `command` to its end.
fn wait(mut command: Command, what: &str) -> Result<()> {
    let status = command.status()?;
    ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

/// Part 1: the demo config's step time with one worker against two.
fn steps(args: &Args) -> Result<()> {
    ensure!(
        args.steps >= 2,
        "--steps must be at least 2 (the first is not counted)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = RunConfig::load(
        &root.join("configs/demo.toml"),
        &[
            format!("train.steps={}", args.steps),
            "train.save_every=0".into(),
            "train.eval_every=0".into(),
        ],
    )?;
    let scratch = std::env::temp_dir().join(format!("laconic-bench-dp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);

    let one = RunDir::create(scratch.join("one"), &config)?;
    let mut single = child("single", 1)?;
    single
        .args(["--run".into(), one.path.display().to_string()])
        .env("RAYON_NUM_THREADS", "1");
    wait(single, "the one-process run")?;

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 {
        println!("note: {threads} thread available; two ranks share it");
    }
    let mut two = Vec::new();
    for stage in 0..=2u8 {
        let mut config = config.clone();
        config.optim.zero_stage = stage;
        let run = RunDir::create(scratch.join(format!("two-zero{stage}")), &config)?;
        let mut ranks = child("rank", 2)?;
        ranks
            .args(["--run".into(), run.path.display().to_string()])
            .env("RAYON_NUM_THREADS", "1");
        wait(ranks, &format!("the two-rank run at ZeRO-{stage}"))?;
        two.push(run);
    }

    let t1 = step_times(&one)?;
    println!(
        "\ndemo config, {} prompts × {} rollouts a step, median of steps 2..={} (1 thread per worker):",
        config.rollout.prompts_per_step, config.rollout.n, args.steps
    );
    println!("| ranks | ZeRO | step s | rollout s | update s | efficiency t1 / (2·t2) | optimizer state per rank |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| 1 | – | {:.3} | {:.3} | {:.3} | – | {} B |",
        t1.step, t1.rollout, t1.update, t1.optimizer_bytes
    );
    let stage0_bytes = step_times(&two[0])?.optimizer_bytes;
    for (stage, run) in two.iter().enumerate() {
        let t2 = step_times(run)?;
        println!(
            "| 2 | {stage} | {:.3} | {:.3} | {:.3} | {:.0} % | {} B ({:.3}× stage 0) |",
            t2.step,
            t2.rollout,
            t2.update,
            100.0 * t1.step / (2.0 * t2.step),
            t2.optimizer_bytes,
            t2.optimizer_bytes as f64 / stage0_bytes as f64
        );
    }
    drop((one, two));
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// Median phase times of a run's steps after the first.
struct StepTimes {
    step: f64,
    rollout: f64,
    update: f64,
    /// `memory/optimizer_state_bytes`: the largest rank's.
    optimizer_bytes: u64,
}

fn step_times(run: &RunDir) -> Result<StepTimes> {
    let metrics = run.read_metrics()?;
    let median = |key: &str| -> Result<f64> {
        let mut xs: Vec<f64> = metrics
            .iter()
            .filter(|m| m.get("step").is_some_and(|&s| s >= 2.0))
            .filter_map(|m| m.get(key).copied())
            .collect();
        if xs.is_empty() {
            bail!("{}: no `{key}` after step 1", run.path.display());
        }
        xs.sort_by(f64::total_cmp);
        Ok(xs[xs.len() / 2])
    };
    Ok(StepTimes {
        step: median("timing/step_s")?,
        rollout: median("timing/rollout_s")?,
        update: median("timing/update_s")?,
        optimizer_bytes: median("memory/optimizer_state_bytes")? as u64,
    })
}

/// Part 2: two reducer processes all-reduce the gradient both ways; worker 0 prints.
fn allreduce(args: &Args) -> Result<()> {
    let numels = args.shape.dense().parameter_numels();
    let floats: usize = numels.iter().sum();
    let expected = laconic::optim::memory::parameter_count(&args.shape.config()?);
    ensure!(
        floats as u64 == expected,
        "the shape's parameter lengths sum to {floats}, the model has {expected}"
    );
    println!(
        "\ngradient all-reduce through MPI, 2 ranks on this machine: {} parameters, {:.1} M f32 ({:.2} GB), {} timed each",
        numels.len(),
        floats as f64 / 1e6,
        floats as f64 * 4.0 / 1e9,
        args.repeats
    );
    wait(child("reducer", 2)?, "the all-reduce ranks")
}

/// A reducer rank: times both methods on a gradient of ones (the sum is checked), and on rank 0
/// prints the table.
fn reduce(args: &Args, world: &World) -> Result<()> {
    let device: burn::tensor::Device<Inner> = Default::default();
    let collective = world.collective::<Inner>();
    let numels = args.shape.dense().parameter_numels();
    let bytes = numels.iter().sum::<usize>() as f64 * 4.0;
    let methods = [
        (
            format!("bucketed ({} MiB)", args.bucket_mib),
            args.bucket_mib * (1 << 20) / 4,
        ),
        ("per parameter".to_string(), 0),
    ];
    let mut rows = Vec::new();
    for (label, bucket_elems) in &methods {
        let mut seconds = Vec::new();
        for _ in 0..args.repeats {
            let entries: Vec<Entry<Inner>> = numels
                .iter()
                .map(|&numel| Entry {
                    numel,
                    grad: Some(Tensor::ones([numel], &device)),
                })
                .collect();
            // Start together: a one-value all-reduce is the barrier.
            collective.all_reduce_u64(&[1], &device)?;
            let start = Instant::now();
            let reduced =
                all_reduce_bucketed::<Inner>(collective.as_ref(), entries, *bucket_elems, &device)?;
            let first = reduced
                .first()
                .and_then(|t| t.clone())
                .context("nothing reduced")?
                .narrow(0, 0, 1)
                .into_scalar()
                .elem::<f32>();
            seconds.push(start.elapsed().as_secs_f64());
            ensure!(first == world.size() as f32, "the sum of ones is {first}");
        }
        rows.push((label.clone(), mean_std(&seconds)));
    }
    if world.rank() == 0 {
        println!("| method | all-reduces | seconds (mean ± std) | GB/s of gradient |");
        println!("|---|---:|---:|---:|");
        let buckets = |elems: usize| {
            if elems == 0 {
                numels.len()
            } else {
                bucket_count(&numels, elems)
            }
        };
        for ((label, (mean, std)), (_, elems)) in rows.iter().zip(&methods) {
            println!(
                "| {label} | {} | {mean:.2} ± {std:.2} | {:.2} |",
                buckets(*elems),
                bytes / mean / 1e9
            );
        }
        println!(
            "bucketed / per parameter: {:.2}× the throughput",
            rows[1].1 .0 / rows[0].1 .0
        );
    }
    Ok(())
}

/// How many all-reduces the bucketing makes of `numels` with buckets of `elems` values.
fn bucket_count(numels: &[usize], elems: usize) -> usize {
    let (mut count, mut filled) = (0, 0);
    for &n in numels {
        filled += n;
        if filled >= elems {
            count += 1;
            filled = 0;
        }
    }
    count + usize::from(filled > 0)
}
