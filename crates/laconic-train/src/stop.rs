//! Preemption-safe runs: a signal asks the trainer to stop between steps with its work saved.
//!
//! Clusters send `SIGTERM` (Slurm: `--signal=USR1@…` for `SIGUSR1`) some time before they take a
//! job's machines back; a user sends `SIGINT` with Ctrl-C. After [`install`], the first of these
//! signals only sets a flag: the trainer finishes the step it is in (or the evaluation), writes a
//! checkpoint and stops with [`crate::Error::Stopped`], and the command exits with [`STOPPED_EXIT`]
//! after printing the folder and the command that resumes it. A second signal ends the process at
//! once, as the signal's default action does (exit status `128 + signal`: 130 for `SIGINT`, 143 for
//! `SIGTERM`, 138 for `SIGUSR1`); the checkpoints already written stay loadable (they are renamed
//! into place whole).
//!
//! ```no_run
//! laconic_train::stop::install().expect("signal handlers install");
//! // … RlTrainer::train stops between steps with `Error::Stopped` once a signal came.
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};

/// Exit status of a command whose run a signal stopped after its checkpoint was written:
/// `EX_TEMPFAIL` of `sysexits.h` ("try again later"), so a job script can tell it from a failure
/// (1) and requeue the run with `--resume`.
pub const STOPPED_EXIT: i32 = 75;

/// The flags the signal handlers set.
struct Flags {
    /// A stop was requested (arms the immediate exit on the next signal).
    requested: Arc<AtomicBool>,
    /// The number of the last signal that came.
    signal: Arc<AtomicUsize>,
}

static FLAGS: OnceLock<Flags> = OnceLock::new();

/// The signals that stop a run: `(number, name)`.
#[cfg(unix)]
const SIGNALS: [(i32, &str); 3] = [
    (signal_hook::consts::SIGTERM, "SIGTERM"),
    (signal_hook::consts::SIGUSR1, "SIGUSR1"),
    (signal_hook::consts::SIGINT, "SIGINT"),
];
#[cfg(not(unix))]
const SIGNALS: [(i32, &str); 2] = [
    (signal_hook::consts::SIGTERM, "SIGTERM"),
    (signal_hook::consts::SIGINT, "SIGINT"),
];

/// Installs the handlers of `SIGTERM`, `SIGUSR1` and `SIGINT` for this process (once; later calls do
/// nothing): the first signal requests a stop ([`requested`]), the next one ends the process.
///
/// # Errors
/// When the operating system refuses a handler ([`Error::Signal`]).
pub fn install() -> Result<()> {
    if FLAGS.get().is_some() {
        return Ok(());
    }
    let flags = Flags {
        requested: Arc::new(AtomicBool::new(false)),
        signal: Arc::new(AtomicUsize::new(0)),
    };
    for (number, name) in SIGNALS {
        let fail = |source| Error::Signal {
            signal: name,
            source,
        };
        // Registered first, so it sees the flag as the previous signal left it: a second signal
        // takes the default action (the process ends), the first only sets the flags below.
        signal_hook::flag::register_conditional_default(number, flags.requested.clone())
            .map_err(fail)?;
        signal_hook::flag::register_usize(number, flags.signal.clone(), number as usize)
            .map_err(fail)?;
        signal_hook::flag::register(number, flags.requested.clone()).map_err(fail)?;
    }
    // Two threads racing here would register twice; the handlers only set flags, so that is harmless.
    let _ = FLAGS.set(flags);
    Ok(())
}

/// The name of the signal that asked this process to stop, if one came since [`install`] (never
/// without it).
pub fn requested() -> Option<&'static str> {
    let flags = FLAGS.get()?;
    if !flags.requested.load(Ordering::SeqCst) {
        return None;
    }
    let number = flags.signal.load(Ordering::SeqCst);
    let name = SIGNALS
        .iter()
        .find(|(n, _)| *n as usize == number)
        .map_or("a signal", |(_, name)| name);
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_stop_is_requested_before_a_signal() {
        assert_eq!(requested(), None, "no handler installed yet");
        install().unwrap();
        install().unwrap();
        assert_eq!(requested(), None);
    }
}
