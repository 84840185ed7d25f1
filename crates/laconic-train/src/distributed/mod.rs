//! Data-parallel runs: who this process is in a run ([`Topology`], read from the environment its
//! launcher sets), the [`Collective`](laconic_optim::Collective) it sums through ([`TcpCollective`]),
//! the launcher that starts this machine's workers and supervises them ([`launch`], [`Role`]), and
//! what a worker process runs ([`work`]).
//!
//! Every worker is one process with one device, so the same code serves workers on one machine and
//! on many. The transport has no authentication: worker 0 listens at the address the user gives
//! (loopback by default); run it over machines on a trusted network only.

mod launch;
mod tcp;
mod worker;

use crate::error::{Error, Result};

pub use laconic_rollout::shard_range;
pub use launch::{exit_code, launch, relaunch, watch_launcher, LaunchPlan, Role, PEER_LOST_EXIT};
pub use tcp::{TcpCollective, ENV_JOIN_TIMEOUT, ENV_TIMEOUT};
pub use worker::{join_run, work};

/// Global rank of this worker.
pub const ENV_RANK: &str = "LACONIC_DP_RANK";
/// Number of workers of the run.
pub const ENV_WORLD: &str = "LACONIC_DP_WORLD";
/// `host:port` where worker 0 gathers the others.
pub const ENV_COORDINATOR: &str = "LACONIC_DP_COORDINATOR";
/// Host (name or address) this worker's machine is reached at; worker 0 listens there.
pub const ENV_HOST: &str = "LACONIC_DP_HOST";
/// The run folder the launcher holds.
pub const ENV_RUN: &str = "LACONIC_DP_RUN";
/// This worker's place in a data-parallel run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Global rank, `0..world`; worker 0 writes the run folder.
    pub rank: usize,
    /// Number of workers.
    pub world: usize,
    /// `host:port` where worker 0 gathers the others (on machine 0).
    pub coordinator: String,
    /// Host (name or address) this worker's machine is reached at; worker 0 listens there.
    pub host: String,
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
            (ENV_RUN, self.run.display().to_string()),
        ]
    }
}
