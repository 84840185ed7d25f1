//! The RL loop of laconic and its supervised warm start: what a user runs.
//!
//! Last in the data flow (model → rollout → reward → optimizer → **train**/eval): sample a prompt batch
//! → rollouts (`N` per prompt, `L_R`) → decode → judge → shape rewards → advantages → update → metrics
//! → periodic evaluation → checkpoint.

pub mod config;
pub mod curate;
pub mod data;
pub mod distributed;
mod error;
pub mod html;
pub mod lab;
pub mod layers;
pub mod progress;
pub mod report;
pub mod rl;
pub mod run;
pub mod sft;
pub mod source;
mod step_batch;
pub mod stop;
pub mod task;

pub use config::{AlgorithmConfig, InvalidConfig, RunConfig};
pub use error::{Error, Result};
pub use rl::{load_policy, Phase, RlTrainer, RolloutRecord, TrainObserver};
pub use run::{export_merged, unique_run_name, Metrics, RunDir, TrainerState};
pub use source::Task;
