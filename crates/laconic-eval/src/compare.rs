//! Side-by-side comparison of two evaluations (before/after training, two checkpoints).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::report::{write_file, EvalReport};
use crate::{markdown, plot};

/// The comparison's Markdown file.
pub const COMPARE_MD: &str = "compare.md";

/// Writes `compare.md` (each metric's table with `before`, `after` and Δ columns per benchmark),
/// `compare-accuracy.svg` and `compare-lengths-<benchmark>.svg` into `dir`. `labels` name the two runs.
/// Benchmarks and budgets are matched by name and value; one missing from a run shows as `—`.
///
/// # Errors
/// When a file cannot be written.
pub fn write_comparison(
    before: &EvalReport,
    after: &EvalReport,
    labels: [&str; 2],
    dir: impl AsRef<Path>,
) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let mut written = vec![write_file(
        &dir.join(COMPARE_MD),
        &markdown::comparison(before, after, labels),
    )?];
    written.extend(plot::comparison_plots(before, after, labels, dir)?);
    Ok(written)
}
