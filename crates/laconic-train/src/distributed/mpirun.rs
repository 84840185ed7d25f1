//! Where MPI ranks come from: the variables a launcher sets ([`launcher_world_size`]) and the
//! `--workers N` shortcut that starts `mpirun` on this machine ([`launch_local`]).

use std::ffi::OsString;
use std::process::Command;

use crate::error::{Error, Result};

/// What a user without MPI installs (Debian/Ubuntu names), and the build flag.
pub const MPI_INSTALL: &str = "install an MPI (Debian/Ubuntu: `apt-get install libopenmpi-dev \
     openmpi-bin libclang-dev`) and build with `--features mpi`";

/// Variables an MPI launcher sets to the number of ranks: Open MPI's `mpirun`, MPICH's and Intel's
/// `mpiexec` (PMI), MVAPICH, and Slurm's `srun`.
const SIZE_VARIABLES: [&str; 4] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "SLURM_STEP_NUM_TASKS",
];

/// The number of ranks the launcher that started this process started, when it is more than one
/// (`None`: this process is the whole run).
///
/// # Errors
/// A launcher variable that is not a positive integer, named.
pub fn launcher_world_size() -> Result<Option<usize>> {
    for key in SIZE_VARIABLES {
        let Some(value) = std::env::var_os(key) else {
            continue;
        };
        let text = value.to_string_lossy();
        let size = text.trim().parse::<usize>().ok().filter(|&n| n > 0);
        return match size {
            Some(1) => Ok(None),
            Some(n) => Ok(Some(n)),
            None => Err(Error::Distributed(format!(
                "`{key}` (set by the MPI launcher) expected a positive integer, found `{text}`"
            ))),
        };
    }
    Ok(None)
}

/// Runs this program again as `workers` ranks of one machine under `mpirun` (the `--workers N`
/// shortcut), in place of this process, so signals sent to it reach `mpirun`, which passes
/// SIGUSR1 and SIGUSR2 on to the ranks. `--workers` is taken out of the arguments the ranks get.
///
/// # Errors
/// A build without MPI, or no `mpirun`, each saying what to install; `workers` = 0.
pub fn launch_local(workers: usize) -> Result<std::convert::Infallible> {
    if workers == 0 {
        return Err(Error::Distributed("`--workers` must be at least 1".into()));
    }
    if !cfg!(feature = "mpi") {
        return Err(Error::Distributed(format!(
            "`--workers {workers}` runs {workers} ranks under MPI, which this build lacks: {MPI_INSTALL}"
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Distributed(format!("cannot find this program to start ranks: {e}")))?;
    let mut command = mpirun(workers)?;
    command
        .arg(exe)
        .args(without_workers(std::env::args_os().skip(1)));
    let err = std::os::unix::process::CommandExt::exec(&mut command);
    Err(Error::Distributed(format!(
        "could not start `mpirun`: {err}"
    )))
}

/// `mpirun -np RANKS` on this machine, ready for the program and its arguments. With Open MPI, more
/// ranks than cores are allowed (a laptop test) and each rank keeps every core its threads may use
/// (Open MPI binds two ranks to one core each by default).
///
/// # Errors
/// No `mpirun` on the `PATH`, saying what to install.
pub fn mpirun(ranks: usize) -> Result<Command> {
    let mut command = Command::new("mpirun");
    if is_open_mpi()? {
        command.args(["--oversubscribe", "--bind-to", "none"]);
    }
    command.args(["-np", &ranks.to_string()]);
    Ok(command)
}

/// Whether `mpirun` is Open MPI's.
///
/// # Errors
/// No `mpirun` on the `PATH`.
fn is_open_mpi() -> Result<bool> {
    let out = Command::new("mpirun")
        .arg("--version")
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Distributed(format!(
                "data-parallel ranks start with `mpirun`, which is not on the PATH: {MPI_INSTALL}"
            )),
            _ => Error::Distributed(format!("could not run `mpirun --version`: {e}")),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.contains("Open MPI") || text.contains("OpenRTE"))
}

/// `args` without `--workers N` / `--workers=N`.
fn without_workers(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--workers" {
            args.next();
        } else if !arg.to_string_lossy().starts_with("--workers=") {
            out.push(arg);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranks_get_every_argument_but_workers() {
        let args = [
            "--config",
            "a.toml",
            "--workers",
            "2",
            "--set",
            "x=1",
            "--workers=3",
        ];
        let kept = without_workers(args.iter().map(OsString::from));
        assert_eq!(kept, ["--config", "a.toml", "--set", "x=1"]);
    }
}
