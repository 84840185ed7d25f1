//! The instruction set laconic's own SIMD kernels run with, chosen once per process.
//!
//! By default every kernel takes the widest level the CPU has (AVX-512, then AVX2 with FMA, then
//! scalar code on x86-64; NEON on aarch64). `LACONIC_SIMD=scalar|avx2|avx512` forces a level, so one
//! machine can exercise the narrower code paths too: CI runs the kernel, node and parity tests once per
//! level the machine supports. A level the CPU lacks is refused ([`SimdLevel::from_env`]); a binary
//! checks it before any work (`laconic::backend::device`).
//!
//! What the variable does not reach: burn-flex's own GEMM (the `gemm` crate) and its elementwise ops
//! (`macerator`) detect the CPU themselves and always take its widest level; neither can be forced from
//! outside. On an AVX-512 machine `LACONIC_SIMD=avx2` therefore tests laconic's kernels at AVX2, while
//! the matrix products around them still run AVX-512 code.

use std::fmt;
use std::sync::OnceLock;

use pulp::Arch;

/// The environment variable that forces a level.
pub const ENV: &str = "LACONIC_SIMD";

/// An instruction-set level of laconic's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    /// Plain scalar code: every CPU.
    Scalar,
    /// AVX2 with FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F/BW/CD/DQ/VL (x86-64-v4).
    Avx512,
    /// The widest level a non-x86 CPU has (NEON on aarch64).
    Native,
}

/// Why `LACONIC_SIMD` cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimdError {
    /// The value names no level.
    #[error("{ENV}={value:?} names no SIMD level; use scalar, avx2 or avx512 (or leave it unset for the best this CPU has: {best})")]
    Unknown {
        /// The value as given (cut to 40 characters).
        value: String,
        /// The level the CPU would get by default.
        best: SimdLevel,
    },
    /// The CPU lacks the level.
    #[error("{ENV}={level} asks for instructions this CPU lacks; it supports {supported}")]
    Unsupported {
        /// The level asked for.
        level: SimdLevel,
        /// The levels this CPU runs, comma-separated.
        supported: String,
    },
}

impl fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl SimdLevel {
    /// Every level `LACONIC_SIMD` can name, narrowest first.
    pub const NAMED: [SimdLevel; 3] = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512];

    /// The level's name, as `LACONIC_SIMD` takes it.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Native => "native",
        }
    }

    /// The widest level this CPU has.
    pub fn best() -> Self {
        let arch = Arch::new();
        Self::of(arch)
    }

    /// Every level this CPU runs, narrowest first.
    pub fn supported() -> Vec<SimdLevel> {
        let mut levels = vec![SimdLevel::Scalar];
        levels.extend(
            [SimdLevel::Avx2, SimdLevel::Avx512, SimdLevel::Native]
                .into_iter()
                .filter(|level| level.arch().is_some()),
        );
        levels
    }

    /// The level `LACONIC_SIMD` asks for: the best this CPU has when unset or empty.
    ///
    /// # Errors
    /// [`SimdError::Unknown`] for a value that names no level, [`SimdError::Unsupported`] for a level
    /// this CPU lacks.
    pub fn from_env() -> Result<Self, SimdError> {
        match std::env::var(ENV) {
            Ok(value) if !value.trim().is_empty() => Self::parse(&value),
            _ => Ok(Self::best()),
        }
    }

    /// The level `value` names, if this CPU has it.
    ///
    /// # Errors
    /// As [`SimdLevel::from_env`].
    pub fn parse(value: &str) -> Result<Self, SimdError> {
        let level = Self::NAMED
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(value.trim()))
            .ok_or_else(|| SimdError::Unknown {
                value: value.chars().take(40).collect(),
                best: Self::best(),
            })?;
        match level.arch() {
            Some(_) => Ok(level),
            None => Err(SimdError::Unsupported {
                level,
                supported: Self::supported()
                    .iter()
                    .map(|level| level.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// pulp's dispatcher for this level, or `None` when the CPU lacks it.
    fn arch(self) -> Option<Arch> {
        match self {
            SimdLevel::Scalar => Some(Arch::Scalar),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => pulp::x86::V3::try_new().map(Arch::V3),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => pulp::x86::V4::try_new().map(Arch::V4),
            #[cfg(not(target_arch = "x86_64"))]
            SimdLevel::Native => Some(Arch::new()).filter(|arch| Self::of(*arch) == Self::Native),
            _ => None,
        }
    }

    /// The level of one of pulp's dispatchers.
    fn of(arch: Arch) -> Self {
        match arch {
            Arch::Scalar => SimdLevel::Scalar,
            #[cfg(target_arch = "x86_64")]
            Arch::V3(_) => SimdLevel::Avx2,
            #[cfg(target_arch = "x86_64")]
            Arch::V4(_) => SimdLevel::Avx512,
            #[allow(unreachable_patterns)]
            _ => SimdLevel::Native,
        }
    }
}

/// The level this process's kernels run at, decided on first use from `LACONIC_SIMD`. A value the CPU
/// cannot honour falls back to the best level with one warning on stderr (binaries refuse it before
/// that, through [`SimdLevel::from_env`]).
pub fn level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        SimdLevel::from_env().unwrap_or_else(|err| {
            let best = SimdLevel::best();
            eprintln!("warning: {err}; the kernels use {best}");
            best
        })
    })
}

/// pulp's dispatcher at [`level`]: every kernel of this crate dispatches through it.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
pub(crate) fn arch() -> Arch {
    level().arch().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        assert_eq!(SimdLevel::parse("scalar"), Ok(SimdLevel::Scalar));
        assert_eq!(SimdLevel::parse(" Scalar "), Ok(SimdLevel::Scalar));
        let err = SimdLevel::parse("sse9").unwrap_err();
        assert!(matches!(err, SimdError::Unknown { .. }));
        assert!(err.to_string().contains("LACONIC_SIMD=\"sse9\""), "{err}");
    }

    #[test]
    fn supported_levels_parse_and_the_others_are_refused_by_name() {
        let supported = SimdLevel::supported();
        assert!(supported.contains(&SimdLevel::best()));
        for level in SimdLevel::NAMED {
            match SimdLevel::parse(level.name()) {
                Ok(parsed) => {
                    assert_eq!(parsed, level);
                    assert!(supported.contains(&level));
                }
                Err(err) => {
                    assert!(!supported.contains(&level));
                    let text = err.to_string();
                    assert!(text.contains("lacks") && text.contains("scalar"), "{text}");
                }
            }
        }
    }

    /// Under `LACONIC_SIMD=<level>` (CI runs the kernel tests once per level) the kernels really ran at
    /// that level: a level the tests cannot honour fails here instead of passing at another one.
    #[test]
    fn the_process_level_is_the_requested_one_and_the_cpu_has_it() {
        assert!(SimdLevel::supported().contains(&level()));
        assert_eq!(SimdLevel::of(arch()), level());
        match std::env::var(ENV) {
            Ok(requested) if !requested.trim().is_empty() => {
                assert_eq!(level().name(), requested.trim().to_ascii_lowercase())
            }
            _ => assert_eq!(level(), SimdLevel::best()),
        }
    }
}
