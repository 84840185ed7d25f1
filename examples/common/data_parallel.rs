//! The data-parallel flags of the `train` and `demo` examples and what their launcher does with them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use laconic::train::distributed::LaunchPlan;
use laconic::train::RunDir;

/// How many workers train the run, and where (`--workers 2`; `--nodes 2 --node-rank R --coordinator
/// HOST:PORT --host HOST` on each machine of a multi-machine run).
#[derive(clap::Args, Debug, Clone)]
pub struct DataParallelArgs {
    /// Worker processes on this machine, one device each (CPU threads are split between them).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Machines in the run; each runs the same command with its own `--node-rank`.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// This machine's index in `0..nodes`; machine 0 runs worker 0 (which gathers the others) and writes the run folder.
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// `HOST:PORT` of machine 0, where worker 0 gathers the others (needed with `--nodes` > 1;
    /// default a free loopback port).
    #[arg(long)]
    pub coordinator: Option<String>,
    /// Address the other machines reach this one at; worker 0 listens there (default loopback).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

impl DataParallelArgs {
    /// The launch plan these flags describe.
    pub fn plan(&self) -> LaunchPlan {
        LaunchPlan {
            workers: self.workers,
            nodes: self.nodes,
            node_rank: self.node_rank,
            coordinator: self.coordinator.clone(),
            host: self.host.clone(),
        }
    }
}

impl DataParallelArgs {
    /// The flags as given, those left at their defaults omitted (`--workers 2`): what a command
    /// that repeats this one passes on.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut push = |flag: &str, value: String, default: bool| {
            if !default {
                flags.extend([flag.to_string(), value]);
            }
        };
        push("--workers", self.workers.to_string(), self.workers == 1);
        push("--nodes", self.nodes.to_string(), self.nodes == 1);
        push(
            "--node-rank",
            self.node_rank.to_string(),
            self.node_rank == 0,
        );
        let coordinator = self.coordinator.clone().unwrap_or_default();
        push("--coordinator", coordinator, self.coordinator.is_none());
        push("--host", self.host.clone(), self.host == "127.0.0.1");
        flags
    }
}

/// On a machine other than 0, the run folder machine 0 creates (on a shared file system): waits up to
/// two minutes for its resolved config.
pub fn wait_for_run(path: &Path) -> Result<RunDir> {
    let start = Instant::now();
    loop {
        match RunDir::attach(path) {
            Ok((run, _)) => return Ok(run),
            Err(e) if start.elapsed() > Duration::from_secs(120) => {
                return Err(e).with_context(|| {
                    format!(
                        "machine 0 did not create `{}` within 2 minutes (a run over several \
                         machines needs a file system they share)",
                        path.display()
                    )
                })
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// The run folder of a multi-machine run must be named the same on every machine.
pub fn require_shared_name(plan: &LaunchPlan, named: bool, flag: &str) -> Result<()> {
    if plan.nodes > 1 && !named {
        bail!("a run over several machines needs the same run folder on each: give {flag}");
    }
    Ok(())
}
