//! Data-parallel runs over MPI: one process per device (a rank), started by the cluster's launcher
//! (`mpirun -np N`, `srun --mpi=pmix`) or, on one machine, by the `--workers N` shortcut that starts
//! `mpirun` ([`launch_local`]). Every rank runs the same program; [`World`] says which one this is,
//! rank 0 alone writes the run folder, and each rank's trainer sums through the
//! [`Collective`](laconic_optim::Collective) its world gives.
//!
//! The engine needs the `mpi` feature (and an MPI library at build time); a build without it runs
//! one process, and refuses a launcher that started several with what to install. Every collective
//! has a time limit ([`ENV_TIMEOUT`]); a rank that stalls past it is named and the job ends. With
//! `cuda` as well, a trainer on burn's CUDA backend sums its tensors on the GPU through NCCL
//! (`NcclCollective`, loaded at run time), its host messages still through MPI.

#[cfg(feature = "mpi")]
mod mpi;
mod mpirun;
#[cfg(all(feature = "mpi", feature = "cuda"))]
mod nccl;
mod rank;
mod world;

#[cfg(feature = "mpi")]
pub use self::mpi::{stall_message, MpiCollective, MpiWorld, STALLED_EXIT};
#[cfg(all(feature = "mpi", feature = "cuda"))]
pub use self::nccl::NcclCollective;
pub use laconic_rollout::shard_range;
pub use mpirun::{launch_local, launcher_world_size, mpirun, MPI_INSTALL};
pub use rank::join_run;
pub use world::World;

use std::time::Duration;

use crate::error::{Error, Result};

/// Seconds a rank waits in one collective for the others (default [`DEFAULT_TIMEOUT_SECS`]).
pub const ENV_TIMEOUT: &str = "LACONIC_DP_TIMEOUT";
/// Default of [`ENV_TIMEOUT`]: ten minutes. Raise it when the ranks' shares of a step can take
/// longer apart than that (very uneven rollouts, a long evaluation on one rank).
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;
/// Largest time limit: one week.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// The collective time limit [`ENV_TIMEOUT`] sets.
///
/// # Errors
/// A value that is not whole seconds from 1 to [`MAX_TIMEOUT_SECS`], naming the variable.
pub fn collective_timeout() -> Result<Duration> {
    match std::env::var(ENV_TIMEOUT) {
        Err(std::env::VarError::NotPresent) => Ok(Duration::from_secs(DEFAULT_TIMEOUT_SECS)),
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::Distributed(format!(
            "`{ENV_TIMEOUT}` expected whole seconds, found `{}`",
            v.to_string_lossy()
        ))),
        Ok(v) => parse_seconds(ENV_TIMEOUT, &v),
    }
}

/// Whole seconds from 1 to [`MAX_TIMEOUT_SECS`], the value of the variable `key`.
///
/// # Errors
/// Another value, naming `key` and the range.
pub fn parse_seconds(key: &str, value: &str) -> Result<Duration> {
    match value.trim().parse::<u64>().ok() {
        Some(secs @ 1..=MAX_TIMEOUT_SECS) => Ok(Duration::from_secs(secs)),
        _ => Err(Error::Distributed(format!(
            "`{key}` expected whole seconds from 1 to {MAX_TIMEOUT_SECS} (one week), found `{value}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits_are_bounded_and_errors_name_the_variable() {
        for bad in ["18446744073709551615", "0", "-1", "1.5", "", "604801"] {
            let err = parse_seconds(ENV_TIMEOUT, bad).unwrap_err().to_string();
            assert!(
                err.contains("`LACONIC_DP_TIMEOUT`") && err.contains(&format!("`{bad}`")),
                "{err}"
            );
        }
        assert_eq!(
            parse_seconds(ENV_TIMEOUT, " 5 ").unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            parse_seconds(ENV_TIMEOUT, "604800").unwrap(),
            Duration::from_secs(MAX_TIMEOUT_SECS)
        );
    }
}
