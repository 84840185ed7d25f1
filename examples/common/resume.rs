//! How `train` and `demo` resume and train to the end: a run that a signal stopped (laconic-train's
//! `stop`) comes back as [`Stopped`], with where it is saved and the exact command that resumes it
//! (`data_parallel::finish` prints it and exits with `STOPPED_EXIT`).

use std::path::Path;

use laconic::backend::{self, Autodiff};
use laconic::train::distributed::World;
use laconic::train::progress::ProgressBars;
use laconic::train::{RlTrainer, RunDir};

use super::data_parallel::DataParallelArgs;

/// A run that a signal stopped, with the command that resumes it.
#[derive(Debug)]
pub struct Stopped {
    /// Where it stopped ([`laconic::train::Error::Stopped`]).
    stopped: laconic::train::Error,
    /// The command that resumes it.
    command: String,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; resume it with: {}", self.stopped, self.command)
    }
}

impl std::error::Error for Stopped {}

/// `result`, with the command that resumes `run` (`example --resume RUN` and the data-parallel
/// flags) attached when a signal stopped it.
pub fn with_resume_command<T>(
    result: laconic::train::Result<T>,
    example: &str,
    run: &Path,
    data_parallel: &[String],
) -> anyhow::Result<T> {
    result.map_err(|err| match err {
        laconic::train::Error::Stopped { .. } => anyhow::Error::new(Stopped {
            stopped: err,
            command: resume_command(example, run, data_parallel),
        }),
        err => anyhow::Error::new(err),
    })
}

/// `cargo run --release [--features …] --example EXAMPLE -- --resume RUN [data-parallel flags]`.
pub fn resume_command(example: &str, run: &Path, data_parallel: &[String]) -> String {
    let mut words = vec![
        "--resume".to_string(),
        shell_quote(&run.display().to_string()),
    ];
    words.extend(data_parallel.iter().map(|w| shell_quote(w)));
    format!("{} -- {}", cargo_run(example), words.join(" "))
}

/// `cargo run --release [--features …] --example EXAMPLE` for the backend (and MPI) this program
/// was built with.
pub fn cargo_run(example: &str) -> String {
    // The default build (`flex`) needs no flag; any other backend is the feature of its name.
    let (default, mut features) = match laconic::backend::NAME {
        "flex" => ("", vec![]),
        "ndarray" => (" --no-default-features", vec!["ndarray"]),
        name => ("", vec![name]),
    };
    if cfg!(feature = "mpi") {
        features.push("mpi");
    }
    let features = match features.as_slice() {
        [] => String::new(),
        list => format!(" --features {}", list.join(",")),
    };
    format!("cargo run --release{default}{features} --example {example}")
}

/// `word` as a POSIX shell reads it back: unchanged when it holds only safe characters, else in
/// single quotes.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The run in `dir` and its trainer at the last checkpoint, said on stdout (`--resume`).
pub fn reopen(
    dir: &Path,
    device: &burn::tensor::Device<backend::Backend>,
) -> anyhow::Result<(RunDir, RlTrainer<Autodiff>)> {
    let (run, config) = RunDir::open(dir)?;
    let trainer = RlTrainer::<Autodiff>::resume(&run, config, device)?;
    println!(
        "resuming {} at step {}",
        run.path.display(),
        trainer.step_count()
    );
    Ok((run, trainer))
}

/// Trains `trainer` in `run` to its last step with progress bars (rank 0's, unless `quiet`); a stop
/// by signal comes back with the command that resumes `example`'s run ([`with_resume_command`]).
pub fn train_to_end(
    mut trainer: RlTrainer<Autodiff>,
    run: &RunDir,
    quiet: bool,
    example: &str,
    world: &World,
    data_parallel: &DataParallelArgs,
) -> anyhow::Result<()> {
    let steps = trainer.config().train.steps;
    let mut bars = ProgressBars::new(steps, trainer.step_count(), quiet || world.rank() > 0);
    let trained = trainer.train(run, &mut bars);
    bars.finish();
    with_resume_command(trained, example, &run.path, &data_parallel.flags(world))
}
