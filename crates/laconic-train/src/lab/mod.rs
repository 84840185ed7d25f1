//! The lab: the paper's ablations in miniature, each a named set of arms run for several seeds, with
//! figures and a verdict per finding computed from the runs.
//!
//! - [`experiment`]: the experiment files (`configs/lab/*.toml`) and how an arm's config is resolved;
//! - [`curves`]: what is read back from a run: curves, evaluations, the stage detector, [`Metric`]s;
//! - [`verdict`]: the checks, their stated rules and verdicts;
//! - [`runner`]: arms as parallel child processes;
//! - [`report`]: `report.md`, `summary.json` and the SVG figures.
//!
//! A lab folder holds `lab.json` (the options), `experiments/` (copies of the experiment files, so a
//! resumed lab runs what it started with), `runs/<experiment>/<arm>/seed<k>/` (ordinary run folders)
//! and the report. Two arms whose resolved configs are identical (e.g. the truncation reward at
//! `L_R = L_T` is the base of several experiments) are trained once and shared. A finished run is
//! marked by `lab-done.json` and is not rerun; an unfinished one resumes from its last checkpoint.

pub mod curves;
pub mod experiment;
pub mod report;
pub mod runner;
pub mod verdict;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use laconic_optim::LogprobBackend;
use serde::{Deserialize, Serialize};

pub use curves::{detect_stages, EvalPoint, Metric, RunCurves, Stages};
pub use experiment::{Arm, Experiment, LabOptions};
pub use runner::{Job, JobOutcome};
pub use verdict::{ArmRuns, Check, CheckOutcome, Verdict};

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::progress::ProgressBars;
use crate::rl::{load_policy, RlTrainer};
use crate::run::{write_atomic, RunDir};

/// The lab's options file in its folder.
const LAB_JSON: &str = "lab.json";
/// The marker of a finished run (its wall time).
pub const DONE: &str = "lab-done.json";

/// A lab folder and what it runs.
#[derive(Debug, Clone)]
pub struct Lab {
    /// The folder.
    pub dir: PathBuf,
    /// The experiments, in report order.
    pub experiments: Vec<Experiment>,
    /// Seeds, shared overrides, quick mode.
    pub options: LabOptions,
}

/// What `lab.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct LabFile {
    options: LabOptions,
    experiments: Vec<String>,
}

/// One run of the plan and the `(experiment, arm, seed)`s that use it.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// Its folder.
    pub dir: PathBuf,
    /// Its resolved config.
    pub config: RunConfig,
    /// Who uses it.
    pub users: Vec<(String, String, u64)>,
}

/// Every run the lab needs, shared where configs are identical.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The runs.
    pub runs: Vec<PlannedRun>,
    /// `(experiment, arm, seed)` → index into `runs`.
    pub index: BTreeMap<(String, String, u64), usize>,
}

impl Plan {
    /// `(arm, "experiment/arm")` for each arm of `experiment` whose runs another experiment's arm
    /// (declared first) trains.
    pub fn shared_arms(&self, experiment: &Experiment) -> Vec<(String, String)> {
        experiment
            .arms
            .iter()
            .filter_map(|arm| {
                let key = (experiment.name.clone(), arm.name.clone(), 0);
                let (owner, owner_arm, _) = &self.runs[*self.index.get(&key)?].users[0];
                (owner != &experiment.name || owner_arm != &arm.name)
                    .then(|| (arm.name.clone(), format!("{owner}/{owner_arm}")))
            })
            .collect()
    }
}

impl Lab {
    /// Makes a new lab folder: writes the options and copies of the experiment files.
    ///
    /// # Errors
    /// A folder that already holds a lab, or one that cannot be written.
    pub fn create(dir: PathBuf, experiments: Vec<Experiment>, options: LabOptions) -> Result<Self> {
        if dir.join(LAB_JSON).exists() {
            return Err(Error::Lab(format!(
                "`{}` already holds a lab; continue it with --resume",
                dir.display()
            )));
        }
        let copies = dir.join("experiments");
        std::fs::create_dir_all(&copies).map_err(|e| Error::io(&copies, e))?;
        for e in &experiments {
            let text = toml::to_string_pretty(e).expect("an experiment serialises to TOML");
            write_atomic(&copies.join(format!("{}.toml", e.name)), text.as_bytes())?;
        }
        let file = LabFile {
            options: options.clone(),
            experiments: experiments.iter().map(|e| e.name.clone()).collect(),
        };
        let json = serde_json::to_string_pretty(&file).expect("lab options serialise");
        write_atomic(&dir.join(LAB_JSON), json.as_bytes())?;
        Ok(Self {
            dir,
            experiments,
            options,
        })
    }

    /// Opens a lab folder made by [`Lab::create`].
    ///
    /// # Errors
    /// A folder without `lab.json`, or experiment copies that do not load.
    pub fn open(dir: PathBuf) -> Result<Self> {
        let path = dir.join(LAB_JSON);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let file: LabFile = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let experiments = file
            .experiments
            .iter()
            .map(|name| Experiment::load(&dir.join("experiments").join(format!("{name}.toml"))))
            .collect::<Result<_>>()?;
        Ok(Self {
            dir,
            experiments,
            options: file.options,
        })
    }

    /// Resolves every `(experiment, arm, seed)` to a run, sharing identical configs.
    ///
    /// # Errors
    /// A base config or override that does not load (naming the experiment and arm).
    pub fn plan(&self) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut by_config: BTreeMap<String, usize> = BTreeMap::new();
        for e in &self.experiments {
            for arm in &e.arms {
                for seed in 0..self.options.seeds {
                    let config = e.config(arm, seed, &self.options)?;
                    let user = (e.name.clone(), arm.name.clone(), seed);
                    let index = *by_config.entry(identity(&config)).or_insert_with(|| {
                        plan.runs.push(PlannedRun {
                            dir: self
                                .dir
                                .join("runs")
                                .join(&e.name)
                                .join(&arm.name)
                                .join(format!("seed{seed}")),
                            config,
                            users: Vec::new(),
                        });
                        plan.runs.len() - 1
                    });
                    plan.runs[index].users.push(user.clone());
                    plan.index.insert(user, index);
                }
            }
        }
        Ok(plan)
    }

    /// Makes the folders of the runs still to train and returns them as jobs; finished runs are
    /// kept. A run folder trained with another config than the plan's is an error.
    ///
    /// # Errors
    /// A folder that cannot be made, or one that holds a different run.
    pub fn pending_jobs(&self, plan: &Plan) -> Result<Vec<Job>> {
        let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
        let mut jobs = Vec::new();
        for run in &plan.runs {
            let (e, a, s) = &run.users[0];
            let label = format!("{e}/{a}/seed{s}");
            if run.dir.join("config.resolved.toml").exists() {
                let (dir, on_disk) = RunDir::attach(&run.dir)?;
                if identity(&on_disk) != identity(&run.config.clone().with_absolute_paths(&cwd)) {
                    return Err(Error::Lab(format!(
                        "`{}` was trained with another config than this lab now resolves for \
                         {label} (did its base config change?); start a new lab",
                        run.dir.display()
                    )));
                }
                if run.dir.join(DONE).exists() {
                    continue;
                }
                if dir.list_checkpoints().is_empty() {
                    drop(RunDir::create(&run.dir, &run.config)?);
                }
            } else {
                drop(RunDir::create(&run.dir, &run.config)?);
            }
            jobs.push(Job {
                dir: run.dir.clone(),
                label,
                cost: cost(&run.config),
            });
        }
        Ok(jobs)
    }

    /// Each experiment's arms' runs, read back (runs not finished are left out).
    ///
    /// # Errors
    /// A finished run whose metrics or evaluations do not read.
    pub fn results(&self, plan: &Plan) -> Result<Vec<ArmRuns>> {
        let mut read: BTreeMap<usize, RunCurves> = BTreeMap::new();
        let mut all = Vec::new();
        for e in &self.experiments {
            let mut arms = ArmRuns::new();
            for arm in &e.arms {
                let mut runs = Vec::new();
                for seed in 0..self.options.seeds {
                    let index = plan.index[&(e.name.clone(), arm.name.clone(), seed)];
                    let dir = &plan.runs[index].dir;
                    if !dir.join(DONE).exists() {
                        continue;
                    }
                    if let std::collections::btree_map::Entry::Vacant(slot) = read.entry(index) {
                        slot.insert(RunCurves::read(dir)?);
                    }
                    runs.push(read[&index].clone());
                }
                arms.insert(arm.name.clone(), runs);
            }
            all.push(arms);
        }
        Ok(all)
    }
}

/// Marks a run finished, with the wall time it took.
///
/// # Errors
/// When the marker cannot be written.
pub fn mark_done(dir: &Path, seconds: f64) -> Result<()> {
    let json = serde_json::json!({ "seconds": seconds }).to_string();
    write_atomic(&dir.join(DONE), json.as_bytes())
}

/// The wall time a finished run took (from its marker).
pub fn run_seconds(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(DONE)).ok()?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()?
        .get("seconds")?
        .as_f64()
}

/// Trains the run folder `dir` to its last step (a lab child): from its last checkpoint when it has
/// one, else from the config's model.
///
/// # Errors
/// As [`RlTrainer::train`].
pub fn train_arm<B: LogprobBackend>(dir: &Path, device: &B::Device) -> Result<()> {
    let (run, config) = RunDir::open(dir)?;
    let mut trainer = if run.list_checkpoints().is_empty() {
        let (model, tokenizer) = load_policy::<B>(&config, device)?;
        RlTrainer::<B>::new(config, model, tokenizer)?
    } else {
        RlTrainer::<B>::resume(&run, config, device)?
    };
    let steps = trainer.config().train.steps;
    let mut bars = ProgressBars::new(steps, trainer.step_count(), true);
    trainer.train(&run, &mut bars)?;
    Ok(())
}

/// A config's identity for sharing runs: its TOML without the run's name and folder.
fn identity(config: &RunConfig) -> String {
    let mut c = config.clone();
    c.train.run_name = None;
    c.train.out_dir = PathBuf::new();
    c.to_toml()
}

/// Relative cost of a run: rollout tokens times (1 + a third per extra update per step).
fn cost(c: &RunConfig) -> f64 {
    let groups = c.rollout.prompts_per_step;
    let updates = groups.div_ceil(c.optim.ppo_mini_batch_size.unwrap_or(groups).max(1))
        * c.optim.ppo_epochs.max(1);
    let tokens =
        (c.train.steps as usize * groups * c.rollout.n * c.rollout.sampling.max_tokens) as f64;
    tokens * (1.0 + (updates as f64 - 1.0) / 3.0)
}
