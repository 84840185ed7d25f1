#![doc = include_str!("../README.md")]

pub mod config;
pub mod error;
pub mod extract;
pub mod filter;
pub mod group;
pub mod judge;
pub mod metrics;
pub mod shapers;
pub mod verify;

pub use config::{BatchScores, RewardConfig, RewardSection};
pub use error::{Error, Result};
pub use extract::{extract_answer, gold_answer, ExtractMode, ExtractOptions};
pub use filter::{FilterGroups, FilterMetric};
pub use group::{Finish, GroupView, Scored};
pub use judge::{Judge, Judgement, MathJudge};
pub use metrics::BatchMetrics;
pub use shapers::RewardFn;
pub use verify::{verify, verify_with, VerifyOptions};
