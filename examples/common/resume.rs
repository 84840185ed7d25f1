//! How `train` and `demo` end: a run that a signal stopped (laconic-train's `stop`) prints where it
//! is saved and the exact command that resumes it, and exits with `STOPPED_EXIT`; other errors
//! print as every example's do, with a data-parallel failure's own exit code.

use std::path::Path;

use laconic::backend::{self, Autodiff};
use laconic::train::distributed;
use laconic::train::progress::ProgressBars;
use laconic::train::stop::STOPPED_EXIT;
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

/// The end of `main` for an example that trains: a stopped run's note (where it is saved and how
/// to resume it) and [`STOPPED_EXIT`]; any other error printed (`{:#}`) with its exit status.
pub fn finish(result: anyhow::Result<()>) {
    if let Err(err) = &result {
        if let Some(stopped) = err.downcast_ref::<Stopped>() {
            eprintln!("{stopped}");
            std::process::exit(STOPPED_EXIT);
        }
    }
    laconic_harness::exit_on_error(result, |err| {
        err.downcast_ref().map_or(1, distributed::exit_code)
    });
}

/// `result`, with the command that resumes `run` (`example --resume RUN` and the data-parallel
/// flags) attached when a signal stopped it.
pub fn with_resume_command<T>(
    result: laconic::train::Result<T>,
    example: &str,
    run: &Path,
    data_parallel: &DataParallelArgs,
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
pub fn resume_command(example: &str, run: &Path, data_parallel: &DataParallelArgs) -> String {
    let mut words = vec![
        "--resume".to_string(),
        shell_quote(&run.display().to_string()),
    ];
    words.extend(data_parallel.flags().iter().map(|w| shell_quote(w)));
    format!("{} -- {}", cargo_run(example), words.join(" "))
}

/// `cargo run --release [--features BACKEND] --example EXAMPLE` for the backend this program was
/// built with.
pub fn cargo_run(example: &str) -> String {
    // The default build (`flex`) needs no flag; any other backend is the feature of its name.
    let features = match laconic::backend::NAME {
        "flex" => String::new(),
        "ndarray" => " --no-default-features --features ndarray".to_string(),
        name => format!(" --features {name}"),
    };
    format!("cargo run --release{features} --example {example}")
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

/// Trains `trainer` in `run` to its last step with progress bars (none when `quiet`); a stop by
/// signal comes back with the command that resumes `example`'s run ([`with_resume_command`]).
pub fn train_to_end(
    mut trainer: RlTrainer<Autodiff>,
    run: &RunDir,
    quiet: bool,
    example: &str,
    data_parallel: &DataParallelArgs,
) -> anyhow::Result<()> {
    let steps = trainer.config().train.steps;
    let mut bars = ProgressBars::new(steps, trainer.step_count(), quiet);
    let trained = trainer.train(run, &mut bars);
    bars.finish();
    with_resume_command(trained, example, &run.path, data_parallel)
}
