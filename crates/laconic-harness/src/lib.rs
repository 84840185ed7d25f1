//! Glue shared by laconic's examples, benchmarks (root examples and crate examples) and tests: one home
//! for what every benchmark needs to report a measurement — summary statistics and the process's own
//! peak memory and CPU time — synthetic token ids, and the end of every command's `main`. No
//! dependency by default, so any crate of the workspace (laconic-reward included, which stays free of
//! burn) can take it as a dev-dependency; with the `parity` feature, [`parity`] reads transformers'
//! reference outputs (which needs laconic-model).

#[cfg(feature = "parity")]
pub mod parity;

/// The end of a command's `main`: on an error, prints `error: {error:#}` to stderr (with anyhow, the
/// chain of causes on one line) and exits with `code(&error)`.
///
/// ```no_run
/// fn run() -> Result<(), String> {
///     Err("no config".into())
/// }
/// laconic_harness::exit_on_error(run(), |_| 1);
/// ```
pub fn exit_on_error<E: std::fmt::Display>(result: Result<(), E>, code: impl FnOnce(&E) -> i32) {
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(code(&error));
    }
}

/// `len` token ids of synthetic sequence `seq`: `(seq·7919 + t·104729 + salt) mod vocab` for
/// `t < len`. The benchmarks and their Python references (`benches/reference/`) share the formula,
/// so both sides feed identical ids.
///
/// ```
/// assert_eq!(laconic_harness::synthetic_ids(1, 3, 1000, 0), vec![919, 648, 377]);
/// ```
pub fn synthetic_ids(seq: usize, len: usize, vocab: usize, salt: usize) -> Vec<u32> {
    (0..len)
        .map(|t| ((seq * 7919 + t * 104_729 + salt) % vocab) as u32)
        .collect()
}

/// Mean and sample standard deviation (`n − 1`; 0 for fewer than two values).
///
/// ```
/// let (mean, std) = laconic_harness::mean_std(&[1.0, 2.0, 3.0]);
/// assert_eq!((mean, std), (2.0, 1.0));
/// ```
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// This process's peak resident set in bytes: `VmHWM` of `/proc/self/status`, the kernel's
/// `ru_maxrss` (Linux; 0 where unavailable).
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// CPU seconds (user + system) this process used so far, from `/proc/self/stat` (Linux; 0 elsewhere).
/// On a machine shared with other jobs, single-threaded CPU time is the load-independent measure.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_has_no_spread() {
        assert_eq!(mean_std(&[4.0]), (4.0, 0.0));
        assert_eq!(mean_std(&[]), (0.0, 0.0));
    }

    #[test]
    fn probes_read_this_process() {
        if cfg!(target_os = "linux") {
            let bytes = std::hint::black_box(vec![1u8; 8 << 20]);
            assert!(peak_rss_bytes() >= bytes.len() as u64);
            // About a fifth of a second of work: at least one 10 ms tick of CPU time.
            let mut x = 0u64;
            for i in 0..200_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            assert!(x != 1 && cpu_seconds() > 0.0);
        }
    }
}
