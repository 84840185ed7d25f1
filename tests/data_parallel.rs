//! Data-parallel RL end to end over MPI (feature `mpi`; `mpirun` on the PATH): two ranks (this test
//! binary started again under `mpirun`, one flex thread each) train the tiny demo-task run and end
//! where one process does; a run resumes with another number of ranks; a rank that dies, or stalls,
//! ends the job with a message naming it.
//!
//! Why the comparisons hold to these tolerances: every worker samples its share of the prompts with
//! the whole batch's random streams, so the tokens (lengths, rewards, accuracies) are identical; the
//! gradients are sums over the same sequences in another order (per worker, then across workers), so
//! float metrics and parameters differ by summation-order rounding alone (≈ 1e-7 relative per step).

#![cfg(feature = "mpi")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::rl::{
    assert_same_metrics, checkpoint_rel_diff, example_binary, resume_here, scratch, tiny_config,
    tiny_config_toml, train_here,
};
use laconic::backend::{self, Autodiff};
use laconic::optim::LossAggMode;
use laconic::train::distributed::{join_run, mpirun, World, ENV_TIMEOUT, STALLED_EXIT};
use laconic::train::RunDir;

/// The run folder of the ranks the tests start.
const RUN: &str = "LACONIC_TEST_RUN";
/// Stop a worker after this many steps (as if the run were killed there).
const STOP_AFTER: &str = "LACONIC_TEST_STOP_AFTER";
/// Make this worker abort (a crash) after one step.
const CRASH_RANK: &str = "LACONIC_TEST_CRASH_RANK";
/// Make this worker stop itself (SIGSTOP: a suspended or hung process) after one step.
const STALL_RANK: &str = "LACONIC_TEST_STALL_RANK";

/// Metrics that depend on how the rollouts were laid out, not on what was sampled: the KV-cache peak
/// is the largest of the workers' engines, each holding its share of the batch.
const LAYOUT: &[&str] = &["rollout/kv_cache_peak_tokens"];

/// Under ZeRO the optimizer state is also laid out by worker: each holds its share of it.
const ZERO_LAYOUT: &[&str] = &[
    "rollout/kv_cache_peak_tokens",
    "memory/optimizer_state_bytes",
];

/// Largest relative parameter difference between a data-parallel run and one process.
const MAX_PARAM_DIFF: f32 = 1e-5;

/// The body of a rank the tests start under `mpirun` (this binary again): join the run and train.
/// Not a test of its own, so ignored in a plain run.
#[test]
#[ignore = "run by the data-parallel tests as an MPI rank"]
fn rank_process() {
    let world = World::init().unwrap();
    let run = std::env::var(RUN).expect("started by the data-parallel tests");
    let (run, mut trainer) =
        join_run::<Autodiff>(&world, Path::new(&run), &backend::device().unwrap())
            .unwrap_or_else(|e| world.end(&format!("error: {e}"), 1));
    let env = |key: &str| std::env::var(key).ok().map(|v| v.parse::<usize>().unwrap());
    if env(CRASH_RANK) == Some(world.rank()) {
        trainer.train_until(&run, 1, &mut ()).unwrap();
        std::process::abort();
    }
    if env(STALL_RANK) == Some(world.rank()) {
        trainer.train_until(&run, 1, &mut ()).unwrap();
        // Raised here, not by a `kill` child: a child's exit could continue this process (the
        // kernel continues a stopped member of a process group that becomes orphaned).
        signal_hook::low_level::raise(signal_hook::consts::SIGSTOP).unwrap();
        // Only a SIGCONT gets here; the job's end sends SIGKILL.
        std::process::exit(1);
    }
    let last = env(STOP_AFTER).map_or(trainer.config().train.steps, |s| s as u64);
    if let Err(e) = trainer.train_until(&run, last, &mut ()) {
        world.end(&format!("error: {e}"), 1);
    }
}

/// Runs `ranks` ranks of this binary under `mpirun` on the run folder `run`; what `mpirun` printed
/// on standard error, or its failure.
fn launch_ranks(run: &Path, ranks: usize, env: &[(&str, String)]) -> Result<String, String> {
    // One launch at a time: the ranks of two runs would share the cores, and a slow collective
    // could then pass the stall test's short time limit.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut command = mpirun(ranks).unwrap();
    command
        .arg(std::env::current_exe().unwrap())
        .args(["rank_process", "--exact", "--ignored", "--nocapture"])
        .env(RUN, run)
        .env("RAYON_NUM_THREADS", "1")
        .envs(env.iter().map(|(k, v)| (k, v)));
    allow_root(&mut command);
    // `mpirun` and its ranks in a process group of their own, under this process: a group that
    // holds a stopped rank (the stall test) and no process with a parent outside it is orphaned,
    // and the kernel then continues its members whenever another process of the group exits.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(stderr)
    } else {
        Err(format!("{}\n{stderr}", out.status))
    }
}

/// Open MPI refuses to run as root unless told twice (CI containers run as root).
fn allow_root(command: &mut Command) {
    command
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
}

fn last_checkpoint(run: &RunDir) -> std::path::PathBuf {
    run.list_checkpoints().last().unwrap().1.clone()
}

#[test]
fn two_workers_train_like_one_and_resume_with_either_count() {
    // One flex thread for the reference, as each of two workers gets on two cores.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let mut config = tiny_config(4, 4);
    config.train.checksum_every = 1;

    // The reference: one process, 4 steps.
    let one = train_here::<Autodiff>(&scratch("dp-one"), &config, 4);

    // Two workers, 4 steps: every step's metrics and the final parameters match; the workers'
    // parameters are compared (a hash of every bit) after every step, so they are identical.
    let two = RunDir::create(scratch("dp-two"), &config).unwrap();
    launch_ranks(&two.path, 2, &[]).unwrap();
    assert_same_metrics(&one, &two, LAYOUT, "2 workers vs 1");
    // The logged rollouts (16: both workers' shares, joined on worker 0) are the same records.
    for step in 1..=4 {
        let read = |run: &RunDir| {
            std::fs::read_to_string(run.path.join(format!("rollouts/step_{step}.jsonl"))).unwrap()
        };
        assert_eq!(read(&two).lines().count(), 16);
        assert_eq!(read(&one), read(&two), "rollouts of step {step}");
    }
    let diff = checkpoint_rel_diff(&last_checkpoint(&one), &last_checkpoint(&two));
    println!("2 workers vs 1 after 4 steps: max |Δθ| / max |θ| = {diff:e}");
    assert!(diff <= MAX_PARAM_DIFF, "2 workers vs 1: {diff:e}");

    // Two workers stopped after step 3 (checkpoint at 2), resumed by one process.
    let two_then_one = RunDir::create(scratch("dp-2to1"), &config).unwrap();
    launch_ranks(&two_then_one.path, 2, &[(STOP_AFTER, "3".into())]).unwrap();
    let dir = two_then_one.path.clone();
    drop(two_then_one);
    let (two_then_one, _) = resume_here::<Autodiff>(&dir);
    assert_same_metrics(&one, &two_then_one, LAYOUT, "2 workers, then 1");

    // One process stopped after step 3, resumed by two workers.
    let dir = train_here::<Autodiff>(&scratch("dp-1to2"), &config, 3).path;
    let (one_then_two, _) = RunDir::open(&dir).unwrap();
    launch_ranks(&one_then_two.path, 2, &[]).unwrap();
    assert_same_metrics(&one, &one_then_two, LAYOUT, "1 worker, then 2");
    for run in [&two_then_one, &one_then_two] {
        let diff = checkpoint_rel_diff(&last_checkpoint(&one), &last_checkpoint(run));
        assert!(diff <= MAX_PARAM_DIFF, "{}: {diff:e}", run.path.display());
    }
    for run in [one, two, two_then_one, one_then_two] {
        std::fs::remove_dir_all(&run.path).unwrap();
    }
}

/// Sharded optimizer state (ZeRO-1, ZeRO-2) over two ranks trains as one process does, each rank
/// holding half of the state; a ZeRO-2 run stopped by two ranks resumes in one process, and one
/// process's run resumes under two ZeRO-2 ranks (checkpoints hold the whole state).
#[test]
fn zero_sharded_workers_train_like_one_and_resume_with_either_count() {
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let state_bytes = |run: &RunDir| -> Vec<f64> {
        run.read_metrics()
            .unwrap()
            .iter()
            .filter_map(|m| m.get("memory/optimizer_state_bytes").copied())
            .collect()
    };
    for (stage, mode) in [
        (1, LossAggMode::TokenMean),
        (2, LossAggMode::SeqMeanTokenSum),
    ] {
        let mut config = tiny_config(4, 4);
        config.train.checksum_every = 1;
        config.optim.zero_stage = stage;
        config.optim.loss_agg_mode = mode;
        let context = format!("ZeRO-{stage}, {mode:?}");
        let one = train_here::<Autodiff>(&scratch(&format!("zero{stage}-one")), &config, 4);
        let two = RunDir::create(scratch(&format!("zero{stage}-two")), &config).unwrap();
        launch_ranks(&two.path, 2, &[]).unwrap();
        assert_same_metrics(
            &one,
            &two,
            ZERO_LAYOUT,
            &format!("{context}: 2 workers vs 1"),
        );
        let diff = checkpoint_rel_diff(&last_checkpoint(&one), &last_checkpoint(&two));
        println!("{context}, 2 workers vs 1 after 4 steps: max |Δθ| / max |θ| = {diff:e}");
        assert!(diff <= MAX_PARAM_DIFF, "{context}: {diff:e}");
        // Each rank holds half of the moments (and a step count per parameter it has a share of).
        let (whole, half) = (state_bytes(&one), state_bytes(&two));
        assert_eq!((whole.len(), half.len()), (4, 4));
        for (w, h) in whole.iter().zip(&half) {
            let share = h / w;
            println!("{context}: optimizer state per rank {h} of {w} bytes ({share:.3})");
            assert!((0.5..=0.51).contains(&share), "{context}: {h} of {w}");
        }
        if stage == 1 {
            for run in [one, two] {
                std::fs::remove_dir_all(&run.path).unwrap();
            }
            continue;
        }
        // Two ZeRO-2 ranks stopped after step 3 (checkpoint at 2), resumed by one process.
        let two_then_one = RunDir::create(scratch("zero-2to1"), &config).unwrap();
        launch_ranks(&two_then_one.path, 2, &[(STOP_AFTER, "3".into())]).unwrap();
        let dir = two_then_one.path.clone();
        drop(two_then_one);
        let (two_then_one, _) = resume_here::<Autodiff>(&dir);
        assert_same_metrics(
            &one,
            &two_then_one,
            ZERO_LAYOUT,
            "ZeRO-2: 2 workers, then 1",
        );
        // One process stopped after step 3, resumed by two ZeRO-2 ranks.
        let dir = train_here::<Autodiff>(&scratch("zero-1to2"), &config, 3).path;
        let (one_then_two, _) = RunDir::open(&dir).unwrap();
        launch_ranks(&one_then_two.path, 2, &[]).unwrap();
        assert_same_metrics(&one, &one_then_two, ZERO_LAYOUT, "ZeRO-2: 1 worker, then 2");
        for run in [&two_then_one, &one_then_two] {
            let diff = checkpoint_rel_diff(&last_checkpoint(&one), &last_checkpoint(run));
            assert!(diff <= MAX_PARAM_DIFF, "{}: {diff:e}", run.path.display());
        }
        for run in [one, two, two_then_one, one_then_two] {
            std::fs::remove_dir_all(&run.path).unwrap();
        }
    }
}

/// Dynamic sampling and LoRA with two workers: the workers agree on the informative groups of every
/// draw, each trains on its share of them (uneven, not contiguous), and the mini-batches (one group
/// each) take the groups in the order one process does; the adapters start alike on every worker
/// and their gradients alone are summed. The run ends where one process ends.
#[test]
fn two_workers_filter_groups_and_train_lora_like_one() {
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let mut config = tiny_config(3, 4);
    config.model.lora = Some(laconic::model::LoraConfig {
        rank: 4,
        alpha: 16.0,
        ..Default::default()
    });
    config.optim.lr = 1e-2;
    let filter = &mut config.algorithm.filter_groups;
    filter.enable = true;
    filter.max_num_gen_batches = 3;
    config.optim.ppo_mini_batch_size = Some(1);
    config.train.checksum_every = 1;
    let one = train_here::<Autodiff>(&scratch("dp-filter-one"), &config, 3);
    let metrics = one.read_metrics().unwrap();
    let drew_more = metrics
        .iter()
        .any(|m| m.get("filter/gen_batches").is_some_and(|&b| b > 1.0));
    let trained = metrics
        .iter()
        .any(|m| m.get("filter/groups_kept").is_some_and(|&k| k > 1.0));
    assert!(
        drew_more && trained,
        "the tiny run should drop groups and draw again"
    );
    let two = RunDir::create(scratch("dp-filter-two"), &config).unwrap();
    launch_ranks(&two.path, 2, &[]).unwrap();
    assert_same_metrics(&one, &two, LAYOUT, "dynamic sampling, 2 workers vs 1");
    let diff = checkpoint_rel_diff(&last_checkpoint(&one), &last_checkpoint(&two));
    assert!(
        diff <= MAX_PARAM_DIFF,
        "dynamic sampling, 2 workers vs 1: {diff:e}"
    );
    for run in [one, two] {
        std::fs::remove_dir_all(&run.path).unwrap();
    }
}

/// A rank that dies is MPI's to notice: `mpirun` ends the job within seconds and names it.
#[test]
fn a_rank_that_dies_ends_the_job_naming_it() {
    let config = tiny_config(4, 4);
    let run = RunDir::create(scratch("dp-crash"), &config).unwrap();
    let start = Instant::now();
    let message = launch_ranks(&run.path, 2, &[(CRASH_RANK, "1".into())]).unwrap_err();
    let elapsed = start.elapsed();
    println!("a dead rank, after {elapsed:?}:\n{message}");
    assert!(message.contains("rank 1"), "{message}");
    assert!(elapsed < Duration::from_secs(120), "took {elapsed:?}");
    std::fs::remove_dir_all(&run.path).unwrap();
}

/// MPI collectives have no deadline: a stopped rank would hold the others forever. With the limit at
/// 5 s, rank 0 asks the others where they are, names rank 1 (which does not answer) and ends the
/// job.
#[test]
fn a_rank_that_stalls_ends_the_job_within_the_time_limit_naming_it() {
    let config = tiny_config(4, 4);
    let run = RunDir::create(scratch("dp-stall"), &config).unwrap();
    let start = Instant::now();
    let env = [
        (STALL_RANK, "1".to_string()),
        (ENV_TIMEOUT, "5".to_string()),
    ];
    let message = launch_ranks(&run.path, 2, &env).unwrap_err();
    let elapsed = start.elapsed();
    println!("a stalled rank, after {elapsed:?}:\n{message}");
    assert!(
        message.contains("error: rank 0: rank 1 stalled: collective #")
            && message.contains("`LACONIC_DP_TIMEOUT`"),
        "{message}"
    );
    // mpirun ends with the code of `MPI_Abort` (its own banner saying so is not always printed).
    assert!(
        message.starts_with(&format!("exit status: {STALLED_EXIT}"))
            || message.contains(&format!("errorcode {STALLED_EXIT}")),
        "{message}"
    );
    assert!(elapsed < Duration::from_secs(120), "took {elapsed:?}");
    std::fs::remove_dir_all(&run.path).unwrap();
}

/// `train --workers 2` from the command line to the run folder (the shortcut starts `mpirun`): rank 0
/// writes metrics, rollouts, the sharded evaluations, checkpoints and the report.
#[test]
fn the_train_example_runs_two_ranks() {
    let train = example_binary("train");
    let dir = scratch("dp-cli");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tiny.toml"), tiny_config_toml(2, 4)).unwrap();
    let run = |extra: &[&str]| {
        let mut command = Command::new(&train);
        allow_root(&mut command);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
            .current_dir(&dir)
            .args(["--config", "tiny.toml", "--quiet"])
            .args([
                "--set",
                "train.out_dir=\"runs\"",
                "--set",
                "train.run_name=\"dp\"",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--workers", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("with 2 ranks"), "{stdout}");
    let (run_dir, _) = RunDir::open(dir.join("runs/dp")).unwrap();
    let steps: Vec<f64> = run_dir
        .read_metrics()
        .unwrap()
        .iter()
        .map(|m| m["step"])
        .collect();
    assert_eq!(steps, vec![0.0, 1.0, 2.0]);
    for path in [
        "rollouts/step_2.jsonl",
        "eval/step_2/eval.json",
        "eval/step_2/samples.jsonl",
        "checkpoints/step_2/model.safetensors",
        "report/summary.md",
        "report/report.html",
    ] {
        assert!(run_dir.path.join(path).exists(), "missing {path}");
    }
    // Every question of the sharded evaluation is in the joined report, each with its samples.
    let samples = std::fs::read_to_string(run_dir.path.join("eval/step_2/samples.jsonl")).unwrap();
    assert_eq!(samples.lines().count(), 6 * 2, "6 questions × 2 samples");
    drop(run_dir);
    std::fs::remove_dir_all(dir).unwrap();
}
