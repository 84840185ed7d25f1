//! The launcher of a data-parallel run: a [`LaunchPlan`] (workers per machine, machines, addresses),
//! the worker processes and their supervision.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::tcp::{coordinator_port, time_limits, DEFAULT_TIMEOUT_SECS, ENV_TIMEOUT};
use super::Topology;
use crate::error::{Error, Result};
use crate::run::remove_unstarted_run;

/// How to lay out the workers of a run over machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// Workers on this machine.
    pub workers: usize,
    /// Machines.
    pub nodes: usize,
    /// This machine's index; machine 0 runs worker 0, which gathers the others.
    pub node_rank: usize,
    /// `host:port` of machine 0 where worker 0 gathers the others; a free loopback port when
    /// `None` (one machine).
    pub coordinator: Option<String>,
    /// Host this machine is reached at (worker 0 listens there on machine 0). Default loopback.
    pub host: String,
}

impl LaunchPlan {
    /// `workers` on this machine alone, on loopback.
    pub fn local(workers: usize) -> Self {
        Self {
            workers,
            nodes: 1,
            node_rank: 0,
            coordinator: None,
            host: "127.0.0.1".into(),
        }
    }

    /// Workers of the whole run.
    pub fn world(&self) -> usize {
        self.workers * self.nodes
    }

    fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(Error::Distributed(m));
        if self.workers == 0 || self.nodes == 0 {
            return fail("`--workers` and `--nodes` must be at least 1".into());
        }
        if self.node_rank >= self.nodes {
            return fail(format!(
                "`--node-rank` {} is not below `--nodes` {}",
                self.node_rank, self.nodes
            ));
        }
        match &self.coordinator {
            Some(c) if self.nodes == 1 => {
                coordinator_port(c).and_then(|port| self.check_host(c, port))
            }
            Some(c) => coordinator_port(c).map(|_| ()),
            None if self.nodes > 1 => fail(
                "a run over several machines needs `--coordinator HOST:PORT` (machine 0's address)"
                    .into(),
            ),
            None => Ok(()),
        }
    }

    /// On one machine worker 0 listens at `--host`, so a coordinator elsewhere would leave the
    /// others waiting the whole join time-out: its host must resolve to an address of `--host`
    /// (or `--host` be an unspecified address such as `0.0.0.0`, which listens on every one).
    fn check_host(&self, coordinator: &str, port: u16) -> Result<()> {
        let host_ips = resolve(&self.host, port);
        if host_ips.iter().any(std::net::IpAddr::is_unspecified) {
            return Ok(());
        }
        let coordinator_ips = resolve(coordinator, port);
        if coordinator_ips.iter().any(|ip| host_ips.contains(ip)) {
            return Ok(());
        }
        Err(Error::Distributed(format!(
            "`--coordinator` `{coordinator}` is not on `--host` `{}`: with one machine, worker 0 \
             listens at `--host`, so give the coordinator there (e.g. `{}:{port}`)",
            self.host, self.host
        )))
    }
}

/// The IP addresses `host` (a name, an address, or `HOST:PORT`) resolves to; none when it does not.
fn resolve(host: &str, port: u16) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let addrs = match host.to_socket_addrs() {
        Ok(addrs) => addrs.collect::<Vec<_>>(),
        Err(_) => (host, port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default(),
    };
    addrs.into_iter().map(|a| a.ip()).collect()
}

/// Starts this machine's workers, one process each from `worker(topology)` with the topology in its
/// environment, and waits for them. Threads are split evenly (`RAYON_NUM_THREADS`), and each local
/// worker sees its own GPU ([`worker_gpu`]). When a worker fails, the others are killed and the
/// error names it; a worker whose launcher dies stops on its own ([`watch_launcher`]).
///
/// # Errors
/// A bad plan or time-limit variable (the workers inherit them), or a worker that failed.
pub fn launch(
    plan: &LaunchPlan,
    run: &Path,
    mut worker: impl FnMut(&Topology) -> Command,
) -> Result<()> {
    plan.validate()?;
    time_limits()?;
    let coordinator = match &plan.coordinator {
        Some(c) => c.clone(),
        None => format!("127.0.0.1:{}", free_port()?),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_worker = (threads / plan.workers).max(1);
    let visible = std::env::var(CUDA_VISIBLE_DEVICES).ok();
    let mut children: Vec<(usize, Child)> = Vec::with_capacity(plan.workers);
    for local in 0..plan.workers {
        let topology = Topology {
            rank: plan.node_rank * plan.workers + local,
            world: plan.world(),
            coordinator: coordinator.clone(),
            host: plan.host.clone(),
            run: run.to_path_buf(),
        };
        let mut command = worker(&topology);
        command
            .envs(topology.to_env())
            .env("RAYON_NUM_THREADS", per_worker.to_string())
            .env(
                CUDA_VISIBLE_DEVICES,
                worker_gpu(local, plan.workers, visible.as_deref())?,
            )
            .stdin(Stdio::piped());
        match command.spawn() {
            Ok(child) => children.push((topology.rank, child)),
            Err(e) => {
                stop_all(&mut children);
                return Err(Error::Distributed(format!(
                    "could not start worker {}: {e}",
                    topology.rank
                )));
            }
        }
    }
    supervise(children)
}

/// The variable that gives each local worker its own GPU (its device 0).
const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

/// The GPU local worker `local` of `workers` sees as its only one: the `local`-th entry of the
/// launcher's `CUDA_VISIBLE_DEVICES` when it is set, else GPU `local`.
fn worker_gpu(local: usize, workers: usize, visible: Option<&str>) -> Result<String> {
    let Some(list) = visible.filter(|v| !v.trim().is_empty()) else {
        return Ok(local.to_string());
    };
    let gpus: Vec<&str> = list.split(',').map(str::trim).collect();
    if gpus.len() < workers {
        return Err(Error::Distributed(format!(
            "{workers} workers on this machine but `{CUDA_VISIBLE_DEVICES}` = `{list}` names {} \
             device(s): one device per worker",
            gpus.len()
        )));
    }
    Ok(gpus[local].to_string())
}

/// What this process is in a run laid out by a [`LaunchPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The whole run in this process (one worker, no collective).
    Single,
    /// The launcher of this machine's workers (the plan has more than one worker in all).
    Launcher(LaunchPlan),
    /// A worker that a launcher started (its topology in the environment).
    Worker(Topology),
}

impl Role {
    /// A worker when the launcher's variables are set, else the launcher of `plan` (or the whole
    /// run when it has one worker).
    ///
    /// # Errors
    /// A malformed launcher variable, or a bad plan.
    pub fn of(plan: LaunchPlan) -> Result<Self> {
        if let Some(topology) = Topology::from_env()? {
            return Ok(Self::Worker(topology));
        }
        plan.validate()?;
        Ok(if plan.world() == 1 {
            Self::Single
        } else {
            Self::Launcher(plan)
        })
    }
}

/// Runs this program again, with the same arguments, as this machine's workers of the run folder
/// `run` ([`launch`]), and waits for them. When the launcher made the run (`fresh`) and the
/// workers failed before writing a metrics line, the run's files are removed, and the folder when
/// nothing else is in it ([`remove_unstarted_run`]): a bad input leaves no run, and nothing that
/// laconic did not write is removed.
///
/// # Errors
/// As [`launch`].
pub fn relaunch(plan: &LaunchPlan, run: &Path, fresh: bool) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| {
        Error::Distributed(format!("cannot find this program to start workers: {e}"))
    })?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let result = launch(plan, run, |_| {
        let mut command = Command::new(&exe);
        command.args(&args);
        command
    });
    if result.is_err() && fresh && !run.join(crate::run::METRICS).exists() {
        if let Err(e) = remove_unstarted_run(run) {
            eprintln!(
                "warning: could not remove the unstarted run in `{}`: {e}",
                run.display()
            );
        }
    }
    result
}

/// The exit status of a worker that stopped because another one did ([`exit_code`]): the launcher
/// blames the other.
pub const PEER_LOST_EXIT: i32 = 3;

/// The exit status a worker process ends with on `error`: [`PEER_LOST_EXIT`] when another worker
/// stopped first, else 1.
pub fn exit_code(error: &Error) -> i32 {
    match error {
        Error::Optim(laconic_optim::Error::PeerLost { .. }) => PEER_LOST_EXIT,
        _ => 1,
    }
}

/// How long the launcher lets the other workers fail after the first one did, before it stops them.
const GRACE: Duration = Duration::from_secs(2);

/// Waits for every worker. When one fails, the others get [`GRACE`] to fail too (those that lost it
/// exit with [`PEER_LOST_EXIT`]), then the rest are stopped, and the error names the worker to blame
/// ([`culprit`]).
fn supervise(mut children: Vec<(usize, Child)>) -> Result<()> {
    let mut failed: Vec<(usize, std::process::ExitStatus)> = Vec::new();
    let mut grace: Option<std::time::Instant> = None;
    loop {
        let mut running = Vec::new();
        for (rank, child) in children.iter_mut() {
            if failed.iter().any(|(r, _)| r == rank) {
                continue;
            }
            match child.try_wait() {
                Ok(Some(status)) if status.success() => {}
                Ok(Some(status)) => failed.push((*rank, status)),
                Ok(None) => running.push(*rank),
                Err(e) => {
                    let rank = *rank;
                    stop_all(&mut children);
                    return Err(Error::WorkerFailed {
                        rank,
                        status: format!("could not be waited for ({e})"),
                    });
                }
            }
        }
        if !failed.is_empty() {
            let since = *grace.get_or_insert_with(std::time::Instant::now);
            if running.is_empty() || since.elapsed() > GRACE {
                stop_all(&mut children);
                return Err(culprit(&failed, &running));
            }
        } else if running.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The worker to blame once [`GRACE`] has passed since the first failure, from the workers that
/// `failed` (in the order they were seen to end) and those still `running` then:
/// 1. the lowest rank of those that failed on their own (not [`PEER_LOST_EXIT`]);
/// 2. else one still running while its peers gave up on it: it stalled (stopped, hung, or slower
///    than `LACONIC_DP_TIMEOUT`), the lowest rank;
/// 3. else the last to give up: the first ones to time out were waiting on it.
fn culprit(failed: &[(usize, std::process::ExitStatus)], running: &[usize]) -> Error {
    let peer_lost = |status: &std::process::ExitStatus| status.code() == Some(PEER_LOST_EXIT);
    if let Some((rank, status)) = failed
        .iter()
        .filter(|(_, status)| !peer_lost(status))
        .min_by_key(|(rank, _)| *rank)
    {
        return Error::WorkerFailed {
            rank: *rank,
            status: format!("exited with {status}"),
        };
    }
    if let Some(rank) = running.iter().min() {
        return Error::WorkerFailed {
            rank: *rank,
            status: format!(
                "stalled: its peers gave up waiting for it (`{ENV_TIMEOUT}`, default \
                 {DEFAULT_TIMEOUT_SECS} s) while it still ran, so it was stopped"
            ),
        };
    }
    let (rank, status) = failed
        .last()
        .expect("a failure is what ends the supervision");
    Error::WorkerFailed {
        rank: *rank,
        status: format!(
            "exited with {status} last, after its peers had given up waiting for it (`{ENV_TIMEOUT}`)"
        ),
    }
}

fn stop_all(children: &mut [(usize, Child)]) {
    for (_, child) in children.iter_mut() {
        let _ = child.kill();
    }
    for (_, child) in children.iter_mut() {
        let _ = child.wait();
    }
}

/// A port that is free on loopback now.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Distributed(format!("no free port: {e}")))
}

/// Makes this worker exit when its launcher goes away (its standard input, a pipe from the
/// launcher, closes), so no worker outlives a killed launcher waiting on its peers.
pub fn watch_launcher() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        eprintln!("error: the launcher of this data-parallel worker is gone; stopping");
        std::process::exit(1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_local_worker_sees_its_own_gpu() {
        assert_eq!(worker_gpu(1, 2, None).unwrap(), "1");
        assert_eq!(worker_gpu(1, 2, Some("4, 6,7")).unwrap(), "6");
        let err = worker_gpu(0, 3, Some("4,6")).unwrap_err().to_string();
        assert!(err.contains("3 workers") && err.contains("`4,6`"), "{err}");
    }

    /// A plan whose workers are `commands[rank]`, run by `sh -c`, on one machine.
    fn launch_shell(commands: &[&str]) -> Result<()> {
        let commands: Vec<String> = commands.iter().map(|c| c.to_string()).collect();
        launch(
            &LaunchPlan::local(commands.len()),
            Path::new("unused"),
            |topology| {
                let mut command = Command::new("sh");
                command.args(["-c", &commands[topology.rank]]);
                // A group of its own under the test process, never orphaned: the kernel would
                // continue a stopped member of an orphaned group when another member exits.
                std::os::unix::process::CommandExt::process_group(&mut command, 0);
                command
            },
        )
    }

    /// Issue 32: a stopped worker was noticed only after the collective time-out, and then the
    /// launcher blamed the healthy worker that gave up on it (`worker 0 exited with exit status:
    /// 3`). The stopped worker is now named, and stopped, within the grace after its peer gave up.
    #[test]
    fn a_stopped_worker_is_named_not_the_peer_that_gave_up_on_it() {
        let start = std::time::Instant::now();
        let err = launch_shell(&["sleep 0.2; exit 3", "kill -STOP $$"]).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, Error::WorkerFailed { rank: 1, .. }) && message.contains("stalled"),
            "{message}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{:?}",
            start.elapsed()
        );
    }

    /// A worker that fails on its own is blamed over those that gave up on it, whatever the ranks
    /// and order; when every one gave up, the last to do so is blamed (the others waited on it).
    #[test]
    fn the_worker_that_failed_first_is_named() {
        let err = launch_shell(&["sleep 0.3; exit 3", "exit 7"]).unwrap_err();
        assert!(matches!(err, Error::WorkerFailed { rank: 1, .. }), "{err}");
        assert!(err.to_string().contains("exit status: 7"), "{err}");
        let err = launch_shell(&["exit 3", "sleep 0.5; exit 3"]).unwrap_err();
        assert!(matches!(err, Error::WorkerFailed { rank: 1, .. }), "{err}");
        launch_shell(&["exit 0", "exit 0"]).unwrap();
    }

    /// Issue 32: port 0 and, on one machine, a coordinator that is not `--host` waited the whole
    /// join time-out; both are refused at once.
    #[test]
    fn a_coordinator_workers_cannot_reach_is_refused_at_once() {
        let mut plan = LaunchPlan::local(2);
        plan.coordinator = Some("127.0.0.1:0".into());
        let err = plan.validate().unwrap_err().to_string();
        assert!(
            err.contains("`127.0.0.1:0`") && err.contains("not 0"),
            "{err}"
        );
        plan.coordinator = Some("127.0.0.2:29500".into());
        let err = plan.validate().unwrap_err().to_string();
        assert!(
            err.contains("`127.0.0.2:29500` is not on `--host` `127.0.0.1`"),
            "{err}"
        );
        for fine in ["127.0.0.1:29500", "localhost:29500"] {
            plan.coordinator = Some(fine.into());
            plan.validate().unwrap();
        }
        plan.host = "0.0.0.0".into();
        plan.coordinator = Some("127.0.0.2:29500".into());
        plan.validate().unwrap();
        // Over machines the coordinator is machine 0's address, elsewhere.
        plan.host = "127.0.0.1".into();
        plan.nodes = 2;
        plan.validate().unwrap();
    }

    #[test]
    fn a_plan_over_machines_needs_its_addresses() {
        let mut plan = LaunchPlan::local(2);
        plan.validate().unwrap();
        plan.nodes = 2;
        let err = plan.validate().unwrap_err().to_string();
        assert!(err.contains("--coordinator"), "{err}");
        plan.node_rank = 2;
        assert!(plan
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--node-rank"));
    }
}
