//! Data-parallel runs on burn-collective: who this process is in a run ([`Topology`], read from the
//! environment its launcher sets), the [`Collective`] it sums through ([`BurnCollective`]), and
//! the launcher that starts the orchestrator and this machine's workers and supervises them
//! ([`launch`]).
//!
//! Every worker is one process with one device (a burn-collective *node* of one device), so the
//! same code serves workers on one machine and on many. The collective has no authentication and
//! burn-collective 0.21 binds its listening sockets to every interface (`0.0.0.0`), whatever
//! address is given: run it on a trusted network only.

use std::ops::Range;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_collective::{
    all_reduce, finish_collective, register, CollectiveConfig, PeerId, ReduceOperation,
};
use burn_communication::Address;
use laconic_optim::Collective;

use crate::error::{Error, Result};

/// Global rank of this worker.
pub const ENV_RANK: &str = "LACONIC_DP_RANK";
/// Number of workers of the run.
pub const ENV_WORLD: &str = "LACONIC_DP_WORLD";
/// `host:port` of the orchestrator.
pub const ENV_COORDINATOR: &str = "LACONIC_DP_COORDINATOR";
/// Host the other workers reach this one at.
pub const ENV_HOST: &str = "LACONIC_DP_HOST";
/// Port of this worker's data service.
pub const ENV_DATA_PORT: &str = "LACONIC_DP_DATA_PORT";
/// The run folder the launcher holds.
pub const ENV_RUN: &str = "LACONIC_DP_RUN";

/// This worker's place in a data-parallel run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Global rank, `0..world`; worker 0 writes the run folder.
    pub rank: usize,
    /// Number of workers.
    pub world: usize,
    /// `host:port` of the global orchestrator.
    pub coordinator: String,
    /// Host (name or address) the other workers reach this one at.
    pub host: String,
    /// Port of this worker's data service (tensors between workers).
    pub data_port: u16,
    /// The run folder (created or opened by the launcher).
    pub run: std::path::PathBuf,
}

impl Topology {
    /// The topology the launcher put in the environment, or `None` outside a data-parallel run.
    ///
    /// # Errors
    /// A variable that is missing or malformed, named.
    pub fn from_env() -> Result<Option<Self>> {
        let Some(rank) = std::env::var_os(ENV_RANK) else {
            return Ok(None);
        };
        let text = |key: &str, value: Option<std::ffi::OsString>| {
            value
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| Error::Distributed(format!("`{key}` is not set (or not UTF-8)")))
        };
        let number = |key: &str, value: String| {
            value.parse::<usize>().map_err(|_| {
                Error::Distributed(format!("`{key}` expected an integer, found `{value}`"))
            })
        };
        let get = |key: &str| text(key, std::env::var_os(key));
        let topology = Self {
            rank: number(ENV_RANK, text(ENV_RANK, Some(rank))?)?,
            world: number(ENV_WORLD, get(ENV_WORLD)?)?,
            coordinator: get(ENV_COORDINATOR)?,
            host: get(ENV_HOST)?,
            data_port: u16::try_from(number(ENV_DATA_PORT, get(ENV_DATA_PORT)?)?)
                .map_err(|_| Error::Distributed(format!("`{ENV_DATA_PORT}` is not a port")))?,
            run: get(ENV_RUN)?.into(),
        };
        if topology.world == 0 || topology.rank >= topology.world {
            return Err(Error::Distributed(format!(
                "`{ENV_RANK}` = {} is not below `{ENV_WORLD}` = {}",
                topology.rank, topology.world
            )));
        }
        Ok(Some(topology))
    }

    /// The environment that makes a process this worker.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (ENV_RANK, self.rank.to_string()),
            (ENV_WORLD, self.world.to_string()),
            (ENV_COORDINATOR, self.coordinator.clone()),
            (ENV_HOST, self.host.clone()),
            (ENV_DATA_PORT, self.data_port.to_string()),
            (ENV_RUN, self.run.display().to_string()),
        ]
    }
}

/// The prompts of a step that worker `rank` of `world` samples: a contiguous share, the first
/// shares differing by one prompt at most (a share may be empty).
pub fn shard_range(prompts: usize, world: usize, rank: usize) -> Range<usize> {
    let start = |r: usize| r * prompts / world;
    start(rank)..start(rank + 1)
}

/// A worker's all-reduce through burn-collective's global level (one device per worker process);
/// it leaves the collective when dropped.
pub struct BurnCollective<B: Backend> {
    rank: usize,
    world: usize,
    peer: PeerId,
    device: B::Device,
}

impl<B: Backend> std::fmt::Debug for BurnCollective<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BurnCollective(worker {} of {})", self.rank, self.world)
    }
}

impl<B: Backend> BurnCollective<B> {
    /// Registers this worker with the orchestrator; returns once every worker has.
    ///
    /// # Errors
    /// When the orchestrator cannot be reached or the workers' registrations disagree.
    pub fn join(topology: &Topology, device: &B::Device) -> Result<Self> {
        let address = |host_port: String| {
            Address::from_str(&format!("ws://{host_port}")).map_err(Error::Distributed)
        };
        let config = CollectiveConfig::default()
            .with_num_devices(1)
            .with_num_nodes(topology.world as u32)
            .with_global_address(address(topology.coordinator.clone())?)
            .with_node_address(address(format!(
                "{}:{}",
                topology.host, topology.data_port
            ))?)
            .with_data_service_port(topology.data_port);
        let peer = PeerId(topology.rank as u32);
        register::<B>(peer, device.clone(), config).map_err(|e| {
            Error::Distributed(format!(
                "worker {} could not join the run through `{}`: {e:?}",
                topology.rank, topology.coordinator
            ))
        })?;
        Ok(Self {
            rank: topology.rank,
            world: topology.world,
            peer,
            device: device.clone(),
        })
    }
}

impl<B: Backend> Collective<B> for BurnCollective<B> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&self, tensor: Tensor<B, 1>) -> laconic_optim::Result<Tensor<B, 1>> {
        // The ring all-reduce cuts a tensor into one slice per worker: pad short ones.
        let n = tensor.dims()[0];
        let padded = if n < self.world {
            Tensor::cat(
                vec![tensor, Tensor::zeros([self.world - n], &self.device)],
                0,
            )
        } else {
            tensor
        };
        let summed = all_reduce::<B>(
            self.peer,
            padded.into_primitive().tensor(),
            ReduceOperation::Sum,
        )
        .map_err(|e| {
            laconic_optim::Error::Collective(format!(
                "worker {} of {}: {e:?} (did another worker stop?)",
                self.rank, self.world
            ))
        })?;
        let summed = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(summed));
        Ok(if n < self.world {
            summed.slice([0..n])
        } else {
            summed
        })
    }
}

impl<B: Backend> Drop for BurnCollective<B> {
    fn drop(&mut self) {
        let _ = finish_collective::<B>(self.peer);
    }
}

/// How to lay out the workers of a run over machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// Workers on this machine.
    pub workers: usize,
    /// Machines.
    pub nodes: usize,
    /// This machine's index; machine 0 runs the orchestrator.
    pub node_rank: usize,
    /// `host:port` of the orchestrator (machine 0); a free loopback port when `None` (one machine).
    pub coordinator: Option<String>,
    /// Host the other machines reach this one at. Default loopback.
    pub host: String,
    /// First data port of this machine's workers (worker `i` listens on `data_port + i`); free
    /// ports when `None`.
    pub data_port: Option<u16>,
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
            data_port: None,
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
        if self.nodes > 1 && (self.coordinator.is_none() || self.data_port.is_none()) {
            return fail(
                "a run over several machines needs `--coordinator HOST:PORT` and `--data-port`"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Starts the orchestrator (on machine 0) and this machine's workers, one process each from
/// `worker(topology)` with the topology in its environment, and waits for them. Threads are split
/// evenly (`RAYON_NUM_THREADS`). When a worker fails, the others are killed and the error names it;
/// a worker whose launcher dies stops on its own ([`watch_launcher`]).
///
/// # Errors
/// A bad plan, a port in use, or a worker that failed.
pub fn launch(
    plan: &LaunchPlan,
    run: &std::path::Path,
    mut worker: impl FnMut(&Topology) -> Command,
) -> Result<()> {
    plan.validate()?;
    let coordinator = match &plan.coordinator {
        Some(c) => c.clone(),
        None => format!("127.0.0.1:{}", free_port()?),
    };
    if plan.node_rank == 0 {
        let port = coordinator
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| {
                Error::Distributed(format!(
                    "`{coordinator}` is not HOST:PORT (the coordinator)"
                ))
            })?;
        start_orchestrator(port)?;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_worker = (threads / plan.workers).max(1);
    let mut children: Vec<(usize, Child)> = Vec::with_capacity(plan.workers);
    for local in 0..plan.workers {
        let topology = Topology {
            rank: plan.node_rank * plan.workers + local,
            world: plan.world(),
            coordinator: coordinator.clone(),
            host: plan.host.clone(),
            data_port: match plan.data_port {
                Some(base) => base + local as u16,
                None => free_port()?,
            },
            run: run.to_path_buf(),
        };
        let mut command = worker(&topology);
        command
            .envs(topology.to_env())
            .env("RAYON_NUM_THREADS", per_worker.to_string())
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

/// Waits for every worker; the first that fails stops the others.
fn supervise(mut children: Vec<(usize, Child)>) -> Result<()> {
    loop {
        let mut running = 0;
        for i in 0..children.len() {
            let (rank, child) = &mut children[i];
            let rank = *rank;
            match child.try_wait() {
                Ok(Some(status)) if status.success() => {}
                Ok(Some(status)) => {
                    stop_all(&mut children);
                    return Err(Error::WorkerFailed {
                        rank,
                        status: format!("exited with {status}"),
                    });
                }
                Ok(None) => running += 1,
                Err(e) => {
                    stop_all(&mut children);
                    return Err(Error::WorkerFailed {
                        rank,
                        status: format!("could not be waited for ({e})"),
                    });
                }
            }
        }
        if running == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
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

/// Runs burn-collective's orchestrator on `port` in a background thread of this process.
fn start_orchestrator(port: u16) -> Result<()> {
    // The orchestrator logs and returns when it cannot bind: check the port first.
    std::net::TcpListener::bind(("0.0.0.0", port)).map_err(|e| {
        Error::Distributed(format!("the orchestrator's port {port} is not free: {e}"))
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::Distributed(format!("could not start the orchestrator: {e}")))?;
    std::thread::spawn(move || runtime.block_on(burn_collective::start_global_orchestrator(port)));
    Ok(())
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
    fn shards_are_contiguous_cover_every_prompt_and_differ_by_one_at_most() {
        for prompts in 0..12 {
            for world in 1..6 {
                let shards: Vec<_> = (0..world).map(|r| shard_range(prompts, world, r)).collect();
                assert_eq!(shards[0].start, 0);
                assert_eq!(shards[world - 1].end, prompts);
                for pair in shards.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                let (min, max) = shards.iter().fold((usize::MAX, 0), |(lo, hi), s| {
                    (lo.min(s.len()), hi.max(s.len()))
                });
                assert!(max - min <= 1, "{prompts} over {world}: {shards:?}");
            }
        }
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
