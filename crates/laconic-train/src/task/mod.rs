//! Synthetic tasks with verifiable answers, for the demo and for experiments without a dataset.

pub mod digit_sum;

pub use digit_sum::{DigitSumConfig, DigitSumJudge, Problem};
