//! The run folder: resolved config, `metrics.jsonl`, sampled rollouts, checkpoints, reports.
//!
//! ```text
//! RUN/config.resolved.toml     the config after file, environment and --set overrides
//! RUN/metrics.jsonl            one JSON object per step (and per evaluation)
//! RUN/rollouts/step_N.jsonl    sampled rollouts with their text, judgement and reward
//! RUN/checkpoints/step_N/      model (HF folder) + optimizer.safetensors + trainer_state.json
//! RUN/eval/step_N/             eval.json, eval.md, samples.jsonl, plots
//! RUN/report/                  SVG curves and summary.md
//! ```
//! A checkpoint is written to a hidden temporary folder and renamed into place, so a run killed at any
//! moment leaves only complete checkpoints.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::data::PromptSampler;
use crate::error::{Error, Result};

/// Name of the resolved config file in a run folder.
pub const RESOLVED_CONFIG: &str = "config.resolved.toml";
/// Name of the metrics file.
pub const METRICS: &str = "metrics.jsonl";
/// Name of the trainer state inside a checkpoint.
pub const TRAINER_STATE: &str = "trainer_state.json";
/// Name of the optimizer state inside a checkpoint.
pub const OPTIMIZER_STATE: &str = "optimizer.safetensors";

/// One step's numbers, as written to `metrics.jsonl`.
pub type Metrics = BTreeMap<String, f64>;

/// What a checkpoint records besides the model and the optimizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Steps completed.
    pub step: u64,
    /// The dataset cursor (`None` for synthetic prompts).
    pub sampler: Option<PromptSampler>,
}

/// A run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The folder.
    pub path: PathBuf,
}

impl RunDir {
    /// Creates `path` and writes the resolved config into it.
    ///
    /// # Errors
    /// When the folder exists with a run in it, or cannot be written.
    pub fn create(path: impl Into<PathBuf>, config: &RunConfig) -> Result<Self> {
        let path = path.into();
        if path.join(RESOLVED_CONFIG).exists() {
            return Err(Error::Other(format!(
                "`{}` already holds a run; resume it with --resume or choose another run name",
                path.display()
            )));
        }
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        let run = Self { path };
        write_atomic(&run.path.join(RESOLVED_CONFIG), config.to_toml().as_bytes())?;
        Ok(run)
    }

    /// Opens an existing run folder and reads its resolved config.
    ///
    /// # Errors
    /// When the folder has no resolved config or it does not parse.
    pub fn open(path: impl Into<PathBuf>) -> Result<(Self, RunConfig)> {
        let path = path.into();
        let config_path = path.join(RESOLVED_CONFIG);
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config = RunConfig::from_toml(&text).map_err(|e| match e {
            Error::Config { message, .. } => Error::Config {
                path: config_path.clone(),
                message,
            },
            other => other,
        })?;
        Ok((Self { path }, config))
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// The folder of the checkpoint after `step` steps.
    pub fn checkpoint(&self, step: u64) -> PathBuf {
        self.checkpoints().join(format!("step_{step}"))
    }

    /// Completed checkpoints, oldest first (temporary folders of interrupted writes are ignored).
    pub fn list_checkpoints(&self) -> Vec<(u64, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(self.checkpoints()) else {
            return Vec::new();
        };
        let mut found: Vec<(u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let step = name.strip_prefix("step_")?.parse().ok()?;
                e.path()
                    .join(TRAINER_STATE)
                    .is_file()
                    .then(|| (step, e.path()))
            })
            .collect();
        found.sort();
        found
    }

    /// Writes a checkpoint atomically: `write` fills a temporary folder, which is then renamed to
    /// `checkpoints/step_N`. Removes the oldest checkpoints beyond `keep` (0 = keep all).
    ///
    /// # Errors
    /// When writing or renaming fails.
    pub fn save_checkpoint(
        &self,
        state: &TrainerState,
        keep: usize,
        write: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let final_dir = self.checkpoint(state.step);
        let tmp = self.checkpoints().join(format!(".step_{}.tmp", state.step));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        write(&tmp)?;
        let json = serde_json::to_string_pretty(state).expect("trainer state serialises");
        write_atomic(&tmp.join(TRAINER_STATE), json.as_bytes())?;
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        if keep > 0 {
            let all = self.list_checkpoints();
            for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
                let _ = std::fs::remove_dir_all(old);
            }
        }
        Ok(final_dir)
    }

    /// Reads a checkpoint's trainer state.
    ///
    /// # Errors
    /// When the file is missing or malformed.
    pub fn read_state(checkpoint: &Path) -> Result<TrainerState> {
        let path = checkpoint.join(TRAINER_STATE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: checkpoint.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Appends one line to `metrics.jsonl`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn append_metrics(&self, metrics: &Metrics) -> Result<()> {
        let path = self.path.join(METRICS);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let line = serde_json::to_string(metrics).expect("metrics serialise");
        writeln!(file, "{line}").map_err(|e| Error::io(&path, e))
    }

    /// Every line of `metrics.jsonl`.
    ///
    /// # Errors
    /// When the file cannot be read or a line is not a metrics object (naming the line).
    pub fn read_metrics(&self) -> Result<Vec<Metrics>> {
        let path = self.path.join(METRICS);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(Vec::new());
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| Error::Data {
                    path: path.clone(),
                    line: i + 1,
                    message: e.to_string(),
                })
            })
            .collect()
    }

    /// Drops metric lines of steps after `step` (written by a run killed after its last checkpoint).
    ///
    /// # Errors
    /// When the file cannot be rewritten.
    pub fn truncate_metrics_after(&self, step: u64) -> Result<()> {
        let kept: Vec<Metrics> = self
            .read_metrics()?
            .into_iter()
            .filter(|m| m.get("step").is_none_or(|&s| s <= step as f64))
            .collect();
        let mut text = String::new();
        for m in &kept {
            text.push_str(&serde_json::to_string(m).expect("metrics serialise"));
            text.push('\n');
        }
        write_atomic(&self.path.join(METRICS), text.as_bytes())
    }

    /// Writes `rollouts/step_N.jsonl`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_rollouts<T: Serialize>(&self, step: u64, records: &[T]) -> Result<()> {
        let dir = self.path.join("rollouts");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r).expect("rollout records serialise"));
            text.push('\n');
        }
        write_atomic(&dir.join(format!("step_{step}.jsonl")), text.as_bytes())
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
///
/// # Errors
/// When writing or renaming fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("laconic-run-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn checkpoints_are_atomic_and_pruned() {
        let dir = scratch("ckpt");
        let run = RunDir { path: dir.clone() };
        for step in 1..=3 {
            run.save_checkpoint(
                &TrainerState {
                    step,
                    sampler: None,
                },
                2,
                |tmp| {
                    std::fs::write(tmp.join("model.safetensors"), b"x")
                        .map_err(|e| Error::io(tmp, e))
                },
            )
            .unwrap();
        }
        // An interrupted write leaves a temporary folder that is not a checkpoint.
        std::fs::create_dir_all(run.checkpoints().join(".step_4.tmp")).unwrap();
        let steps: Vec<u64> = run.list_checkpoints().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![2, 3]);
        assert_eq!(RunDir::read_state(&run.checkpoint(3)).unwrap().step, 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn metrics_after_the_checkpoint_are_dropped_on_resume() {
        let dir = scratch("metrics");
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir { path: dir.clone() };
        for step in 1..=4 {
            run.append_metrics(&Metrics::from([("step".to_string(), step as f64)]))
                .unwrap();
        }
        run.truncate_metrics_after(2).unwrap();
        let steps: Vec<f64> = run
            .read_metrics()
            .unwrap()
            .iter()
            .map(|m| m["step"])
            .collect();
        assert_eq!(steps, vec![1.0, 2.0]);
        std::fs::write(dir.join(METRICS), "{\"step\": 1}\nnot json\n").unwrap();
        let err = run.read_metrics().unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
