//! The crate's error type.

/// Everything that can go wrong in `laconic-reward`: a reward configuration out of its domain,
/// or mismatched inputs. Grading itself never fails (an unreadable answer is judged "cannot
/// tell", not an error), and the library reads no files (the binary uses `anyhow`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reward knob has a value outside its domain.
    #[error("invalid reward config: `{key}` expected {expected}, found `{found}`")]
    InvalidConfig {
        /// Dotted key, e.g. `reward.l_t`.
        key: String,
        /// What was expected.
        expected: String,
        /// The offending value.
        found: String,
    },
    /// Per-group inputs of different lengths (e.g. scores for 7 of 8 rollouts).
    #[error("length mismatch: `{what}` has {found} entries, expected {expected}")]
    LengthMismatch {
        /// Which input.
        what: String,
        /// Expected count.
        expected: usize,
        /// Actual count.
        found: usize,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
