#![doc = include_str!("../README.md")]

pub mod error;
pub mod verify;

pub use error::{Error, Result};
pub use verify::{verify, verify_with, VerifyOptions};
