//! Runs the lab's arms as child processes, several at a time, and waits for them.
//!
//! Each child trains one run folder to its end and writes its output to `lab.log` there. The most
//! expensive runs start first (they bound the wall time), the machine's threads are split evenly
//! between the children (`RAYON_NUM_THREADS`), and a child's standard input is a pipe from the lab,
//! so a child stops when the lab is killed ([`watch_parent`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often the runner looks at its children.
const POLL: Duration = Duration::from_millis(100);

/// One run to train.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The run folder.
    pub dir: PathBuf,
    /// Its name in progress lines (`experiment/arm/seed`).
    pub label: String,
    /// Relative cost (rollout tokens × updates): the order of starting.
    pub cost: f64,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// The job.
    pub job: Job,
    /// Wall time of the child.
    pub seconds: f64,
    /// `Err(status)` when the child failed.
    pub result: std::result::Result<(), String>,
}

/// The child's log in its run folder.
pub fn log_path(job: &Job) -> PathBuf {
    job.dir.join("lab.log")
}

/// Runs `jobs` with at most `parallel` children at a time, each started by `command(job)` with its
/// share of the threads; `on_done` hears of every job as it ends. Returns every outcome (failures
/// included: the other jobs go on).
///
/// # Errors
/// A log file that cannot be made, or a child that cannot be started or waited for (the running ones
/// are stopped).
pub fn run_jobs(
    mut jobs: Vec<Job>,
    parallel: usize,
    command: impl Fn(&Job) -> Command,
    mut on_done: impl FnMut(&JobOutcome, usize, usize),
) -> Result<Vec<JobOutcome>> {
    let parallel = parallel.max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_child = (threads / parallel.min(jobs.len()).max(1)).max(1);
    jobs.sort_by(|a, b| b.cost.total_cmp(&a.cost));
    let total = jobs.len();
    let mut pending = jobs.into_iter();
    let mut running: Vec<(Job, Child, Instant)> = Vec::new();
    let mut outcomes = Vec::with_capacity(total);
    loop {
        while running.len() < parallel {
            let Some(job) = pending.next() else { break };
            match start(&job, &command, per_child) {
                Ok(child) => running.push((job, child, Instant::now())),
                Err(e) => {
                    stop(&mut running);
                    return Err(e);
                }
            }
        }
        if running.is_empty() {
            return Ok(outcomes);
        }
        let mut i = 0;
        while i < running.len() {
            let status = match running[i].1.try_wait() {
                Ok(status) => status,
                Err(e) => {
                    let dir = running[i].0.dir.clone();
                    stop(&mut running);
                    return Err(Error::io(dir, e));
                }
            };
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let (job, _, started) = running.swap_remove(i);
            let result = if status.success() {
                Ok(())
            } else {
                Err(status.to_string())
            };
            let outcome = JobOutcome {
                job,
                seconds: started.elapsed().as_secs_f64(),
                result,
            };
            on_done(&outcome, outcomes.len() + 1, total);
            outcomes.push(outcome);
        }
        std::thread::sleep(POLL);
    }
}

fn start(job: &Job, command: &impl Fn(&Job) -> Command, threads: usize) -> Result<Child> {
    let log = log_path(job);
    let file = std::fs::File::create(&log).map_err(|e| Error::io(&log, e))?;
    let err = file.try_clone().map_err(|e| Error::io(&log, e))?;
    command(job)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|source| Error::Spawn {
            label: job.label.clone(),
            source,
        })
}

fn stop(running: &mut [(Job, Child, Instant)]) {
    for (_, child, _) in running.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Makes this process (a lab child) exit when its parent goes away: its standard input, a pipe
/// from the lab, closes. No child outlives a killed lab.
pub fn watch_parent() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        eprintln!("error: the lab that started this run is gone; stopping");
        std::process::exit(1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_costliest_first_and_failures_are_reported() {
        let dir = std::env::temp_dir().join(format!("laconic-lab-runner-{}", std::process::id()));
        let jobs: Vec<Job> = [("cheap", 1.0), ("fails", 2.0), ("dear", 3.0)]
            .iter()
            .map(|&(label, cost)| {
                let dir = dir.join(label);
                std::fs::create_dir_all(&dir).unwrap();
                Job {
                    dir,
                    label: label.into(),
                    cost,
                }
            })
            .collect();
        let mut order = Vec::new();
        let outcomes = run_jobs(
            jobs,
            1,
            |job| {
                let mut c = Command::new("sh");
                let script = if job.label == "fails" {
                    "echo broken; exit 3"
                } else {
                    "echo threads=$RAYON_NUM_THREADS"
                };
                c.args(["-c", script]);
                c
            },
            |o, done, total| order.push((o.job.label.clone(), done, total)),
        )
        .unwrap();
        let labels: Vec<&str> = order.iter().map(|(l, _, _)| l.as_str()).collect();
        assert_eq!(labels, ["dear", "fails", "cheap"]);
        assert_eq!(order[2].1..=order[2].2, 3..=3);
        let failed = outcomes.iter().find(|o| o.job.label == "fails").unwrap();
        assert!(failed.result.as_ref().unwrap_err().contains('3'));
        let log = std::fs::read_to_string(dir.join("fails/lab.log")).unwrap();
        assert_eq!(log.trim(), "broken");
        let log = std::fs::read_to_string(dir.join("dear/lab.log")).unwrap();
        assert!(log.starts_with("threads="), "{log}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
