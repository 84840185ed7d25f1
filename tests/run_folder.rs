//! Run folders from the command line (the `demo` example on the tiny demo-task run), issue 32:
//! laconic never deletes what it did not write, refuses bad lengths before it makes a folder, and a
//! run stopped by a signal saves its work and resumes to the run it would have been.
//!
//! The commands run the example binaries that `cargo build --release --example demo` (or `cargo
//! test`) builds beside the test binaries. Unix only: the signal test sends signals with `kill`.
#![cfg(unix)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::rl::{
    assert_same_metrics, checkpoint_rel_diff, example_binary, scratch, tiny_config_toml,
};
use laconic::train::stop::STOPPED_EXIT;
use laconic::train::RunDir;

/// Steps of the runs that a signal stops: enough that the run is still going when the test sees
/// its first metrics line and sends the signal.
const STEPS: u64 = 12;

/// A scratch folder holding `tiny.toml` ([`tiny_config_toml`] with `steps` steps).
fn workspace(tag: &str, steps: u64) -> std::path::PathBuf {
    let dir = scratch(tag);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tiny.toml"), tiny_config_toml(steps, 3)).unwrap();
    dir
}

/// `demo --config tiny.toml --quiet ARGS` in `dir`.
fn demo(dir: &Path, args: &[&str]) -> Command {
    demo_in(dir, Path::new("tiny.toml"), args)
}

/// `demo --config CONFIG --quiet ARGS` in `cwd`.
fn demo_in(cwd: &Path, config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(example_binary("demo"));
    command
        .current_dir(cwd)
        .arg("--config")
        .arg(config)
        .arg("--quiet")
        .args(args)
        .env("RAYON_NUM_THREADS", "1");
    command
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Issue 32: `demo --out .` (or a parent folder) reused "a run that stopped before its first
/// checkpoint" and deleted everything in it; with `--workers 2` the launcher (since replaced by
/// MPI, where rank 0 makes the folder as one process does) removed `--out` recursively when the
/// workers failed. A folder with the user's files is now refused before anything is written,
/// naming it, and a run whose inputs do not load makes no folder.
#[test]
fn a_folder_of_the_users_is_never_cleared() {
    let dir = workspace("users-folder", 2);
    let mine = dir.join("mine");
    std::fs::create_dir_all(mine.join("src")).unwrap();
    std::fs::write(mine.join("precious.txt"), "x").unwrap();
    std::fs::write(mine.join("config.resolved.toml"), "").unwrap();
    for (cwd, out) in [(&dir, "mine"), (&mine, ".")] {
        let output = demo_in(cwd, &dir.join("tiny.toml"), &["--out", out])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{}", text(&output));
        assert!(
            stderr.contains("is not a laconic run folder") && stderr.contains(out),
            "{}",
            text(&output)
        );
        assert_eq!(
            entries(&mine),
            ["config.resolved.toml", "precious.txt", "src"],
            "--out {out}: nothing written or removed"
        );
    }
    // A model that does not load: the run stops before its folder is made.
    let output = demo(&dir, &["--out", "fresh"])
        .args(["--set", "model.path=\"BROKEN\""])
        .output()
        .unwrap();
    assert!(!output.status.success(), "{}", text(&output));
    assert!(!dir.join("fresh").exists(), "{}", text(&output));
    std::fs::remove_dir_all(dir).unwrap();
}

/// Issue 32: `rollout.max_tokens` beyond the model's positions was refused after the step-0
/// evaluation had written `eval/` and `metrics.jsonl`; `eval.budgets = [100000]` after the run
/// folder was made. Both are refused now, naming the key, before any folder exists.
#[test]
fn lengths_beyond_the_model_are_refused_before_any_file() {
    let dir = workspace("lengths", 2);
    for (set, key) in [
        ("rollout.max_tokens=300", "`rollout.max_tokens` = 300"),
        // 3-digit prompts (`999=`, 4 tokens) leave 252 positions.
        ("rollout.max_tokens=254", "longest training prompt"),
        ("eval.budgets=[4, 100000]", "`eval.budgets` = 100000"),
    ] {
        let output = demo(&dir, &["--out", "run", "--set", set])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{set}: {}", text(&output));
        assert!(
            stderr.contains(key) && stderr.contains("max_position_embeddings = 256"),
            "{set}: {}",
            text(&output)
        );
        assert!(!dir.join("run").exists(), "{set}: a run folder was made");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Waits until `run`'s `metrics.jsonl` has `lines` lines (or `child` ended).
fn wait_for_metrics(child: &mut Child, run: &Path, lines: usize) {
    let start = Instant::now();
    loop {
        let seen =
            std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().count());
        if seen >= lines || child.try_wait().unwrap().is_some() {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no metrics");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `signal` (`TERM`) to `child`.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Issue 32: SIGINT/SIGTERM ended a run at once with no message, losing the work since its last
/// checkpoint. A run signalled mid-step finishes the step, writes a checkpoint, prints the
/// command that resumes it and exits with `STOPPED_EXIT`; that command ends where an
/// uninterrupted run does (metrics and final weights). A second signal ends it at once.
#[test]
fn a_signal_stops_the_run_with_its_work_saved_and_resume_matches() {
    let dir = workspace("signal", STEPS);
    let set = ["--set", "train.save_every=5"];

    let whole = demo(&dir, &["--out", "whole"]).args(set).output().unwrap();
    assert!(whole.status.success(), "{}", text(&whole));
    // The "Rerun:" line repeats the config and every --set (shell-quoted).
    let stdout = String::from_utf8_lossy(&whole.stdout);
    assert!(
        stdout.contains("Rerun: cargo run --release --example demo -- --config tiny.toml --set train.save_every=5"),
        "{stdout}"
    );

    // SIGTERM once the step-0 evaluation is written, while step 1 runs.
    let mut child = demo(&dir, &["--out", "stopped"])
        .args(set)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_metrics(&mut child, &dir.join("stopped"), 1);
    signal(&child, "TERM");
    let stopped = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(
        stopped.status.code(),
        Some(STOPPED_EXIT),
        "{}",
        text(&stopped)
    );
    assert!(
        stderr.contains("stopped by SIGTERM after step")
            && stderr.contains(
                "; resume it with: cargo run --release --example demo -- --resume stopped\n"
            ),
        "{stderr}"
    );
    let (run, _) = RunDir::open(dir.join("stopped")).unwrap();
    let (step, _) = run
        .list_checkpoints()
        .pop()
        .expect("a checkpoint was written");
    assert!(step < STEPS, "stopped at step {step}, before the end");
    drop(run);

    let resumed = demo(&dir, &["--resume", "stopped"]).output().unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    let (whole, _) = RunDir::open(dir.join("whole")).unwrap();
    let (stopped, _) = RunDir::open(dir.join("stopped")).unwrap();
    assert_same_metrics(&whole, &stopped, &[], "stopped by SIGTERM, resumed");
    let last = |run: &RunDir| run.list_checkpoints().pop().unwrap();
    assert_eq!(last(&whole).0, STEPS);
    assert_eq!(last(&stopped).0, STEPS);
    let diff = checkpoint_rel_diff(&last(&whole).1, &last(&stopped).1);
    assert!(diff <= 1e-6, "final weights differ by {diff}");
    drop((whole, stopped));

    // Two signals: the second ends the process at once, as the signal's default action does. (Two
    // kinds: the kernel merges a second SIGTERM into one still pending.)
    let mut child = demo(&dir, &["--out", "killed"]).args(set).spawn().unwrap();
    wait_for_metrics(&mut child, &dir.join("killed"), 1);
    signal(&child, "TERM");
    signal(&child, "INT");
    let status = child.wait().unwrap();
    assert!(
        matches!(status.signal(), Some(2 | 15)),
        "ended by a signal, not {status:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
