//! Writing a report folder: [`EvalReport::write`] puts the report's JSON and samples beside the
//! Markdown tables ([`crate::markdown`]) and plots ([`crate::plot`]) drawn from it. Apart from
//! `report.rs` so that the report types import neither renderer (both read the types).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::report::{write_file, write_samples, EvalReport, EVAL_JSON, EVAL_MD, SAMPLES_JSONL};
use crate::{markdown, plot};

impl EvalReport {
    /// Writes `eval.json`, `eval.md`, `samples.jsonl` and the SVG plots into `dir` (created if needed).
    /// Returns the files written.
    ///
    /// # Errors
    /// When a file cannot be written or a plot cannot be drawn.
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        let json = serde_json::to_string_pretty(self).expect("reports serialise to JSON");
        let mut written = vec![
            write_file(&dir.join(EVAL_JSON), &json)?,
            write_file(&dir.join(EVAL_MD), &markdown::report(self))?,
            write_samples(&dir.join(SAMPLES_JSONL), &self.samples)?,
        ];
        written.extend(plot::report_plots(self, dir)?);
        Ok(written)
    }
}
