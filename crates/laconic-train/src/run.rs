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
//! moment leaves only complete checkpoints. One process at a time owns a run folder: [`RunDir::create`]
//! and [`RunDir::open`] take an exclusive OS lock on `RUN/.lock` before reading or writing anything, held
//! until the `RunDir` (and its clones) are dropped; the OS releases it when the process dies.
//!
//! laconic never deletes what it did not write. [`RunDir::create`] marks the folder it makes (or an
//! empty one it is given) with a `RUN/.laconic-run` file and refuses any other folder that is not
//! empty, naming it. Reusing a marked folder whose run stopped before its first checkpoint removes
//! only the files a run writes, by name ([`RunDir::create`]); nothing else in it is touched.

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
/// Name of the lock file a run's owner holds.
pub const LOCK: &str = ".lock";
/// Name of the optimizer state inside a checkpoint.
pub const OPTIMIZER_STATE: &str = "optimizer.safetensors";
/// Name of the file that marks a folder as a laconic run folder: written when the folder is claimed
/// for a run, it is what allows laconic to remove the run's own files from it later.
pub const RUN_MARKER: &str = ".laconic-run";
/// What the marker file says.
const RUN_MARKER_TEXT: &str = "This folder is a laconic run folder. laconic removes from it only the files a run writes \
     (config.resolved.toml, metrics.jsonl, rollouts/step_N.jsonl, eval/step_N/, checkpoints/step_N/, report/).\n";

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

/// A run folder, locked for this process while the value (or a clone) lives.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The folder.
    pub path: PathBuf,
    /// The locked `RUN/.lock` (the lock goes with the last clone); `None` for a data-parallel
    /// worker's view of a folder its launcher holds ([`RunDir::attach`]).
    _lock: Option<Arc<File>>,
}

/// A default run name: `stem`, the Unix time and the process id, so two runs started in the same
/// second get two folders.
pub fn unique_run_name(stem: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{stem}-{secs}-{}", std::process::id())
}

/// Takes the exclusive lock of the run folder `path` (which must exist).
fn lock(path: &Path) -> Result<Arc<File>> {
    let lock_path = path.join(LOCK);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Arc::new(file)),
        Err(TryLockError::WouldBlock) => Err(Error::RunInUse {
            path: path.to_path_buf(),
            lock: LOCK,
        }),
        Err(TryLockError::Error(e)) => Err(Error::io(&lock_path, e)),
    }
}

/// Makes `path` a run folder: creates and marks it when missing, marks it when empty, accepts it when
/// marked already.
///
/// # Errors
/// A folder that holds files but no marker ([`Error::NotARunFolder`]), or one that cannot be read or
/// written.
fn claim(path: &Path) -> Result<()> {
    let mut entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
            return write_marker(path);
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if is_run_folder(path) {
        return Ok(());
    }
    match entries.next() {
        None => write_marker(path),
        Some(_) => Err(Error::NotARunFolder {
            path: path.to_path_buf(),
            marker: RUN_MARKER,
        }),
    }
}

fn write_marker(path: &Path) -> Result<()> {
    let marker = path.join(RUN_MARKER);
    std::fs::write(&marker, RUN_MARKER_TEXT).map_err(|e| Error::io(&marker, e))
}

/// Whether `path` is a folder laconic marked as a run folder.
pub fn is_run_folder(path: &Path) -> bool {
    path.join(RUN_MARKER).is_file()
}

/// How much of an entry of a run folder the run wrote.
enum Written {
    /// All of it: a file, or a folder and everything in it.
    Whole,
    /// A folder's entries whose names pass the test.
    Entries(fn(&str) -> bool),
}

/// What a run writes in its folder, by name. The marker and the lock are not listed: they belong
/// to the folder, not to a run.
const RUN_FILES: &[(&str, Written)] = &[
    (RESOLVED_CONFIG, Written::Whole),
    ("config.resolved.tmp", Written::Whole),
    (METRICS, Written::Whole),
    ("metrics.tmp", Written::Whole),
    ("rollouts", Written::Entries(is_rollout_file)),
    ("eval", Written::Entries(is_step_folder)),
    ("checkpoints", Written::Entries(is_checkpoint_folder)),
    ("report", Written::Entries(is_report_file)),
    (crate::rl::BASE_MODEL, Written::Whole),
];

/// `step_N` (an evaluation).
fn is_step_folder(name: &str) -> bool {
    step_number(name, "step_", "")
}

/// `step_N.jsonl` or its temporary `step_N.tmp`.
fn is_rollout_file(name: &str) -> bool {
    step_number(name, "step_", ".jsonl") || step_number(name, "step_", ".tmp")
}

/// `step_N` or an interrupted write's `.step_N.tmp`.
fn is_checkpoint_folder(name: &str) -> bool {
    step_number(name, "step_", "") || step_number(name, ".step_", ".tmp")
}

/// `summary.md` or a curve (`*.svg`).
fn is_report_file(name: &str) -> bool {
    name == "summary.md" || name.ends_with(".svg")
}

/// Whether `name` is `prefix`, a step number, then `suffix`.
fn step_number(name: &str, prefix: &str, suffix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the files a run wrote in the run folder `path` ([`RUN_FILES`]), and the run's folders
/// once empty; anything else is left where it is.
///
/// # Errors
/// When an entry cannot be removed.
fn remove_run_files(path: &Path) -> Result<()> {
    for (name, written) in RUN_FILES {
        let entry = path.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&entry) else {
            continue;
        };
        match written {
            Written::Whole => remove(&entry, meta.is_dir())?,
            // A run writes a folder here; a file of that name is someone else's.
            Written::Entries(_) if !meta.is_dir() => {}
            Written::Entries(ours) => {
                let children = std::fs::read_dir(&entry).map_err(|e| Error::io(&entry, e))?;
                for child in children.flatten() {
                    if child.file_name().to_str().is_some_and(*ours) {
                        let is_dir = child.file_type().is_ok_and(|t| t.is_dir());
                        remove(&child.path(), is_dir)?;
                    }
                }
                // Left in place when it holds something the run did not write.
                let _ = std::fs::remove_dir(&entry);
            }
        }
    }
    Ok(())
}

/// Removes a file, or a folder and its contents.
fn remove(path: &Path, folder: bool) -> Result<()> {
    let removed = if folder {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    removed.map_err(|e| Error::io(path, e))
}

/// Undoes [`RunDir::create`] for a run that never started (one that failed before its first metrics
/// line): removes that run's files, then the marker and the lock,
/// then the folder itself if nothing else is left in it. A folder that is not a run folder is left
/// untouched.
///
/// # Errors
/// When a file of the run cannot be removed.
pub fn remove_unstarted_run(path: &Path) -> Result<()> {
    if !is_run_folder(path) {
        return Ok(());
    }
    remove_run_files(path)?;
    let _ = std::fs::remove_file(path.join(LOCK));
    let marker = path.join(RUN_MARKER);
    std::fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
    // Not empty: the folder held the user's files before the run (or got some since); they stay.
    let _ = std::fs::remove_dir(path);
    Ok(())
}

/// `RUN/config.resolved.toml`, which must exist.
fn resolved_config_path(path: &Path) -> Result<PathBuf> {
    let config_path = path.join(RESOLVED_CONFIG);
    if config_path.is_file() {
        Ok(config_path)
    } else {
        Err(Error::NoRun {
            path: path.to_path_buf(),
            config: RESOLVED_CONFIG,
        })
    }
}

fn read_resolved_config(config_path: &Path) -> Result<RunConfig> {
    let text = std::fs::read_to_string(config_path).map_err(|e| Error::io(config_path, e))?;
    RunConfig::from_toml(&text).map_err(|e| match e {
        Error::Config { message, .. } => Error::Config {
            path: config_path.to_path_buf(),
            message,
        },
        other => other,
    })
}

impl RunDir {
    /// Creates `path` and writes the resolved config into it.
    ///
    /// The folder must be missing, empty or a laconic run folder (one marked by an earlier
    /// `create`); a folder holding anything else is refused, so no run writes into (or later clears)
    /// a folder of the user's. The resolved config is written with absolute paths (relative ones are
    /// taken from the working directory), so `--resume` works from anywhere. A run folder whose run
    /// stopped before its first checkpoint is reused: the files that run wrote are removed by name,
    /// anything else in the folder is left alone.
    ///
    /// # Errors
    /// When the folder holds files and is not a run folder, holds a run with a checkpoint, another
    /// process holds it, or it cannot be written.
    pub fn create(path: impl Into<PathBuf>, config: &RunConfig) -> Result<Self> {
        let path = path.into();
        claim(&path)?;
        let run = Self {
            _lock: Some(lock(&path)?),
            path,
        };
        if run.path.join(RESOLVED_CONFIG).exists() {
            if !run.list_checkpoints().is_empty() {
                return Err(Error::RunExists {
                    path: run.path.clone(),
                });
            }
            remove_run_files(&run.path)?;
            eprintln!(
                "note: `{}` held a run that stopped before its first checkpoint; starting it anew \
                 (only that run's files were removed)",
                run.path.display()
            );
        }
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        let resolved = config.clone().with_absolute_paths(&cwd);
        write_atomic(
            &run.path.join(RESOLVED_CONFIG),
            resolved.to_toml().as_bytes(),
        )?;
        Ok(run)
    }

    /// Opens an existing run folder and reads its resolved config.
    ///
    /// # Errors
    /// When the folder has no resolved config or it does not parse, or another process holds it.
    pub fn open(path: impl Into<PathBuf>) -> Result<(Self, RunConfig)> {
        let path = path.into();
        let config_path = resolved_config_path(&path)?;
        let lock = lock(&path)?;
        let config = read_resolved_config(&config_path)?;
        Ok((
            Self {
                path,
                _lock: Some(lock),
            },
            config,
        ))
    }

    /// Opens a run folder that rank 0 of this data-parallel run has created or opened and holds
    /// locked, without taking the lock. Only rank 0 writes into it (the trainer sees to that); the
    /// others read its config and checkpoints.
    ///
    /// # Errors
    /// As [`RunDir::open`], but never for the lock.
    pub fn attach(path: impl Into<PathBuf>) -> Result<(Self, RunConfig)> {
        let path = path.into();
        let config = read_resolved_config(&resolved_config_path(&path)?)?;
        Ok((Self { path, _lock: None }, config))
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
        let state: TrainerState = serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: checkpoint.to_path_buf(),
            message: e.to_string(),
        })?;
        let folder_step = checkpoint
            .file_name()
            .and_then(|name| name.to_str()?.strip_prefix("step_")?.parse::<u64>().ok());
        match folder_step {
            Some(step) if step != state.step => Err(Error::Checkpoint {
                path: checkpoint.to_path_buf(),
                message: format!(
                    "`{TRAINER_STATE}` says step {} but the folder is step {step}",
                    state.step
                ),
            }),
            _ => Ok(state),
        }
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
        // A run killed mid-append leaves a last line without its newline: dropped, with a warning.
        let torn_tail = !text.is_empty() && !text.ends_with('\n');
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        let mut metrics = Vec::with_capacity(lines.len());
        for (k, &(i, line)) in lines.iter().enumerate() {
            match serde_json::from_str(line) {
                Ok(m) => metrics.push(m),
                Err(_) if torn_tail && k + 1 == lines.len() => eprintln!(
                    "warning: `{}` line {}: dropping a torn last line (the run stopped while writing it)",
                    path.display(),
                    i + 1
                ),
                Err(e) => {
                    return Err(Error::Data {
                        path: path.clone(),
                        line: i + 1,
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(metrics)
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

/// Writes the policy of `checkpoint` (a full checkpoint, or a LoRA adapter folder with its base) as a
/// full Hugging Face checkpoint in `out`, adapters folded into the weights, with the checkpoint's
/// tokenizer and chat template ([`laconic_model::Tokenizer::save`], as checkpoints are written): what
/// `train --merge` writes.
///
/// # Errors
/// A checkpoint that does not load, or a file that cannot be written.
pub fn export_merged<B: burn::prelude::Backend>(
    checkpoint: &Path,
    out: &Path,
    device: &B::Device,
) -> Result<()> {
    let model = laconic_model::load_model::<B>(checkpoint, device)?;
    laconic_model::save_pretrained(&model, out)?;
    let tokenizer = checkpoint.join("tokenizer.json");
    if tokenizer.is_file() {
        laconic_model::Tokenizer::from_file(&tokenizer)?.save(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("laconic-run-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// One process owns a run folder: a second create or a resume while it is held is refused, naming
    /// the folder; once the owner is gone (dropped here, dead in practice) the folder opens again.
    fn valid_config() -> RunConfig {
        let mut config = RunConfig::default();
        config.model.init_config = Some("config.json".into());
        config
    }

    #[test]
    fn a_run_folder_has_one_owner() {
        let dir = scratch("lock");
        let config = valid_config();
        let run = RunDir::create(&dir, &config).unwrap();
        let clone = run.clone();
        for err in [
            RunDir::create(&dir, &config).unwrap_err(),
            RunDir::open(&dir).unwrap_err(),
        ] {
            let err = err.to_string();
            assert!(
                err.contains("in use by another laconic process")
                    && err.contains(&*dir.to_string_lossy()),
                "{err}"
            );
        }
        drop(run);
        assert!(RunDir::open(&dir).is_err(), "a clone still holds the lock");
        drop(clone);
        let (reopened, _) = RunDir::open(&dir).unwrap();
        reopened
            .save_checkpoint(
                &TrainerState {
                    step: 1,
                    sampler: None,
                },
                0,
                |_| Ok(()),
            )
            .unwrap();
        drop(reopened);
        let err = RunDir::create(&dir, &config).unwrap_err().to_string();
        assert!(err.contains("already holds a run"), "{err}");
        assert!(RunDir::open(scratch("empty")).is_err());
        let name = unique_run_name("demo");
        assert!(name.starts_with("demo-") && name.ends_with(&format!("-{}", std::process::id())));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A run that stopped before its first checkpoint (a bad knob, a crash in the first steps) leaves
    /// a folder that the same command reuses, and the resolved config records absolute input paths.
    /// Issue 32: reusing it removes only what the run wrote; the user's files beside it stay.
    #[test]
    fn a_folder_without_checkpoints_is_reused() {
        let dir = scratch("reuse");
        let config = valid_config();
        let run = RunDir::create(&dir, &config).unwrap();
        run.append_metrics(&Metrics::from([("step".to_string(), 0.0)]))
            .unwrap();
        run.write_rollouts(1, &["x"]).unwrap();
        std::fs::create_dir_all(dir.join("eval/step_0")).unwrap();
        std::fs::create_dir_all(dir.join("checkpoints/.step_2.tmp")).unwrap();
        // The user's files, put into the run folder after laconic made it.
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        std::fs::write(dir.join("rollouts/picked.jsonl"), "mine").unwrap();
        drop(run);
        let run = RunDir::create(&dir, &config).unwrap();
        assert!(run.read_metrics().unwrap().is_empty());
        assert!(!dir.join("eval").exists() && !dir.join("checkpoints").exists());
        assert!(!dir.join("rollouts/step_1.jsonl").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
            "mine"
        );
        assert!(dir.join("rollouts/picked.jsonl").is_file());
        drop(run);
        let (_, resolved) = RunDir::open(&dir).unwrap();
        let init = resolved.model.init_config.unwrap();
        assert!(
            init.is_absolute() && init.ends_with("config.json"),
            "{init:?}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Issue 32: `--out .` or `--out runs` reused as a run folder deleted a repository or sibling
    /// runs. A folder that holds anything and was not made by laconic for a run is refused, naming
    /// it, before anything is written into it; an empty folder is taken.
    #[test]
    fn a_folder_of_the_users_is_refused_untouched() {
        let dir = scratch("users");
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("precious.txt"), "x").unwrap();
        // Also a run folder of an earlier laconic, which left no marker: refused, not cleared.
        std::fs::write(dir.join(RESOLVED_CONFIG), "").unwrap();
        let err = RunDir::create(&dir, &valid_config()).unwrap_err();
        assert!(matches!(err, Error::NotARunFolder { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&*dir.to_string_lossy())
                && message.contains("not a laconic run folder"),
            "{message}"
        );
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [RESOLVED_CONFIG, "precious.txt", "src"],
            "nothing written or removed"
        );

        let empty = scratch("empty-given");
        std::fs::create_dir_all(&empty).unwrap();
        drop(RunDir::create(&empty, &valid_config()).unwrap());
        assert!(is_run_folder(&empty) && empty.join(RESOLVED_CONFIG).is_file());
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(empty).unwrap();
    }

    /// Issue 32: the data-parallel launcher removed `--out` recursively when its workers failed
    /// before their first metrics line. It now removes the run's files, and the folder only when
    /// nothing else is left in it; a folder that is no run folder is never touched.
    #[test]
    fn an_unstarted_run_is_removed_without_the_users_files() {
        let config = valid_config();
        let fresh = scratch("unstarted-fresh");
        let run = RunDir::create(&fresh, &config).unwrap();
        remove_unstarted_run(&fresh).unwrap();
        drop(run);
        assert!(
            !fresh.exists(),
            "a folder laconic made and filled alone is gone"
        );

        let shared = scratch("unstarted-shared");
        let run = RunDir::create(&shared, &config).unwrap();
        std::fs::write(shared.join("precious.txt"), "x").unwrap();
        remove_unstarted_run(&shared).unwrap();
        drop(run);
        let left: Vec<_> = std::fs::read_dir(&shared).unwrap().collect();
        assert_eq!(left.len(), 1, "only the user's file is left");
        assert!(shared.join("precious.txt").is_file());

        // Not a run folder (no marker): left as it is.
        remove_unstarted_run(&shared).unwrap();
        assert!(shared.join("precious.txt").is_file());
        std::fs::remove_dir_all(shared).unwrap();
    }

    #[test]
    fn run_file_names_are_matched_exactly() {
        assert!(is_checkpoint_folder("step_12") && is_checkpoint_folder(".step_3.tmp"));
        assert!(!is_checkpoint_folder("step_") && !is_checkpoint_folder("step_1b"));
        assert!(is_rollout_file("step_4.jsonl") && !is_rollout_file("step_4.jsonl.bak"));
        assert!(is_step_folder("step_0") && !is_step_folder("steps"));
        assert!(is_report_file("summary.md") && !is_report_file("notes.md"));
    }

    #[test]
    fn checkpoints_are_atomic_and_pruned() {
        let dir = scratch("ckpt");
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir {
            path: dir.clone(),
            _lock: Some(lock(&dir).unwrap()),
        };
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
        // A state whose step disagrees with its folder is refused, naming both.
        std::fs::write(
            run.checkpoint(3).join(TRAINER_STATE),
            r#"{"step": 2, "sampler": null}"#,
        )
        .unwrap();
        let err = RunDir::read_state(&run.checkpoint(3))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("says step 2 but the folder is step 3"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn metrics_after_the_checkpoint_are_dropped_on_resume() {
        let dir = scratch("metrics");
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir {
            path: dir.clone(),
            _lock: Some(lock(&dir).unwrap()),
        };
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
        // A torn last line (no newline: the run died writing it) is dropped; a bad line before the
        // last, or a bad last line that was completed, is still an error.
        std::fs::write(dir.join(METRICS), "{\"step\": 1}\n{\"step\": 2}\n{\"ste").unwrap();
        assert_eq!(run.read_metrics().unwrap().len(), 2);
        run.truncate_metrics_after(2).unwrap();
        let text = std::fs::read_to_string(dir.join(METRICS)).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        std::fs::write(dir.join(METRICS), "{\"ste\n{\"step\": 2}").unwrap();
        assert!(run
            .read_metrics()
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
