//! Experiments of the lab: a base run config, arms that differ from it by `--set` overrides, and the
//! checks that decide the finding. One TOML file per experiment under `configs/lab/`:
//!
//! ```toml
//! finding = "F3: hard-only prompts collapse; easy prompts keep positive rewards dense"
//! base = "configs/demo.toml"
//! set = ["train.steps=60"]                 # shared by every arm
//!
//! [[arms]]
//! name = "easy"
//! set = ["data.min_digits=4", "data.max_digits=5"]
//!
//! [[arms]]
//! name = "hard"
//! set = ["data.min_digits=8", "data.max_digits=9"]
//!
//! [[checks]]
//! kind = "compare"
//! claim = "hard-only prompts end with lower top-budget accuracy"
//! metric = "top_accuracy"
//! higher = "easy"
//! lower = "hard"
//! ```
//!
//! Overrides apply in this order, later wins: the base file, the experiment's `set`, the lab's own
//! `--set` (every experiment), the arm's `set`, then the seed (`train.seed`) and, with `--quick`, the
//! shorter run. An arm's overrides come last because they are what the experiment is about.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::verdict::Check;
use crate::config::RunConfig;
use crate::error::{Error, Result};

/// One experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// The experiment's name: the file stem (`--only NAME`).
    #[serde(skip)]
    pub name: String,
    /// The finding it tests, in a sentence (the report's heading).
    pub finding: String,
    /// The run config every arm starts from, relative to the working directory.
    pub base: PathBuf,
    /// Overrides shared by every arm.
    #[serde(default)]
    pub set: Vec<String>,
    /// The arms, in report order.
    pub arms: Vec<Arm>,
    /// The checks whose outcomes decide the verdict (none: figures and tables only).
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// One arm: a name and its overrides of the experiment's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arm {
    /// Name, unique in the experiment (a folder name: letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Overrides, e.g. `["rollout.n=24"]`.
    #[serde(default)]
    pub set: Vec<String>,
}

/// How the lab is run: which experiments, how many seeds, shared overrides, the short mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabOptions {
    /// Seeds per arm (`train.seed` = 0, 1, …).
    pub seeds: u64,
    /// Overrides applied to every experiment (after the experiment's own, before the arm's).
    pub sets: Vec<String>,
    /// Halve every run's steps (kept a multiple of `train.eval_every`).
    pub quick: bool,
}

impl Experiment {
    /// Reads one experiment file; its name is the file stem.
    ///
    /// # Errors
    /// An unreadable or malformed file, an unknown key, no arms, a repeated or unusable arm name, or a
    /// check naming an arm the experiment does not have — each naming the file.
    pub fn load(path: &Path) -> Result<Self> {
        let fail = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut experiment: Experiment =
            toml::from_str(&text).map_err(|e: toml::de::Error| fail(e.to_string()))?;
        experiment.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        experiment.validate().map_err(fail)?;
        Ok(experiment)
    }

    /// Checks names and the arms the checks refer to.
    fn validate(&self) -> std::result::Result<(), String> {
        if self.arms.is_empty() {
            return Err("an experiment needs at least one `[[arms]]`".into());
        }
        for (i, arm) in self.arms.iter().enumerate() {
            if !is_folder_name(&arm.name) {
                return Err(format!(
                    "arm name `{}` must be letters, digits, `_`, `-` or `.`",
                    arm.name
                ));
            }
            if self.arms[..i].iter().any(|a| a.name == arm.name) {
                return Err(format!("arm `{}` is declared twice", arm.name));
            }
        }
        for check in &self.checks {
            for arm in check.arms() {
                if !self.arms.iter().any(|a| a.name == arm) {
                    return Err(format!(
                        "check `{}` names arm `{arm}`, which is not among the experiment's arms",
                        check.claim()
                    ));
                }
            }
            check.validate()?;
        }
        Ok(())
    }

    /// The resolved config of `arm` at `seed`.
    ///
    /// # Errors
    /// A base file or override that does not load, named by [`RunConfig::load`].
    pub fn config(&self, arm: &Arm, seed: u64, options: &LabOptions) -> Result<RunConfig> {
        let mut sets = self.set.clone();
        sets.extend(options.sets.iter().cloned());
        sets.extend(arm.set.iter().cloned());
        sets.push(format!("train.seed={seed}"));
        let mut config = RunConfig::load(&self.base, &sets).map_err(|e| match e {
            Error::Config { path, message } => Error::Config {
                path,
                message: format!("experiment `{}`, arm `{}`: {message}", self.name, arm.name),
            },
            other => other,
        })?;
        if options.quick {
            config.train.steps = quick_steps(config.train.steps, config.train.eval_every);
        }
        Ok(config)
    }
}

/// Half of `steps`, rounded up to a multiple of `eval_every` (so the last step is evaluated).
pub fn quick_steps(steps: u64, eval_every: u64) -> u64 {
    let half = steps.div_ceil(2).max(1);
    match eval_every {
        0 => half,
        every => half.div_ceil(every) * every,
    }
}

/// Every experiment file (`*.toml`) in `dir`, sorted by name.
///
/// # Errors
/// An unreadable folder or any experiment that does not load.
pub fn load_dir(dir: &Path) -> Result<Vec<Experiment>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Experiment::load(p)).collect()
}

/// The experiments `only` names (all when empty), in the order of `all`.
///
/// # Errors
/// A name that matches no experiment, listing the ones there are.
pub fn select(all: Vec<Experiment>, only: &[String]) -> Result<Vec<Experiment>> {
    if let Some(missing) = only.iter().find(|n| !all.iter().any(|e| &e.name == *n)) {
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        return Err(Error::Lab(format!(
            "no lab experiment named `{missing}` (there are: {})",
            names.join(", ")
        )));
    }
    Ok(all
        .into_iter()
        .filter(|e| only.is_empty() || only.contains(&e.name))
        .collect())
}

fn is_folder_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_runs_are_half_as_long_and_end_on_an_evaluation() {
        assert_eq!(quick_steps(80, 10), 40);
        assert_eq!(quick_steps(60, 20), 40);
        assert_eq!(quick_steps(7, 0), 4);
        assert_eq!(quick_steps(1, 10), 10);
    }

    #[test]
    fn experiment_files_name_their_mistakes() {
        let dir = std::env::temp_dir().join(format!("laconic-lab-exp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let good = write(
            "pair.toml",
            r#"
finding = "F0"
base = "configs/demo.toml"
[[arms]]
name = "a"
[[arms]]
name = "b"
set = ["rollout.n=4"]
[[checks]]
kind = "compare"
claim = "a beats b"
metric = "top_accuracy"
higher = "a"
lower = "b"
"#,
        );
        let e = Experiment::load(&good).unwrap();
        assert_eq!(e.name, "pair");
        assert_eq!(e.arms[1].set, vec!["rollout.n=4".to_string()]);

        let unknown_arm = write(
            "bad.toml",
            r#"
finding = "F0"
base = "configs/demo.toml"
[[arms]]
name = "a"
[[checks]]
kind = "compare"
claim = "a beats c"
metric = "top_accuracy"
higher = "a"
lower = "c"
"#,
        );
        let message = Experiment::load(&unknown_arm).unwrap_err().to_string();
        assert!(
            message.contains("bad.toml") && message.contains("arm `c`"),
            "{message}"
        );

        let twice = write(
            "twice.toml",
            "finding = \"F0\"\nbase = \"x.toml\"\n[[arms]]\nname = \"a\"\n[[arms]]\nname = \"a\"\n",
        );
        let message = Experiment::load(&twice).unwrap_err().to_string();
        assert!(message.contains("declared twice"), "{message}");

        let typo = write(
            "typo.toml",
            "finding = \"F0\"\nbase = \"x.toml\"\nsets = []\n[[arms]]\nname = \"a\"\n",
        );
        let message = Experiment::load(&typo).unwrap_err().to_string();
        assert!(message.contains("sets"), "{message}");

        let all = vec![Experiment::load(&good).unwrap()];
        let message = select(all, &["nope".into()]).unwrap_err().to_string();
        assert!(
            message.contains("`nope`") && message.contains("pair"),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
