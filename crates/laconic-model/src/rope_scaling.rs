//! RoPE frequency scaling: a checkpoint's `rope_scaling` (`linear`, Llama-3.x's `llama3`, YaRN) turned
//! into the inverse frequencies and the attention factor the rotary tables use, as Hugging Face's
//! `modeling_rope_utils` computes them (transformers 4.57), in f64.
//!
//! `dynamic` and `longrope` depend on the sequence length at run time and are refused when the config
//! is read.

use serde_json::{Map, Value};

/// A parsed `rope_scaling` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// `linear`: every frequency divided by `factor` (position interpolation).
    Linear {
        /// The interpolation factor.
        factor: f64,
    },
    /// `llama3`: long wavelengths divided by `factor`, short ones kept, a smooth ramp between.
    Llama3 {
        /// Division of the low frequencies.
        factor: f64,
        /// Wavelengths above `original / low_freq_factor` are divided by `factor`.
        low_freq_factor: f64,
        /// Wavelengths below `original / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length the checkpoint was pretrained at.
        original_max_position_embeddings: f64,
    },
    /// `yarn`: interpolation for low frequencies, extrapolation for high ones, a linear ramp between
    /// (over dimensions), and the cos/sin tables multiplied by `attention_factor`.
    Yarn {
        /// The context extension factor.
        factor: f64,
        /// The context length the ramp is computed for.
        original_max_position_embeddings: f64,
        /// The factor applied to cos and sin.
        attention_factor: f64,
        /// Rotations at which the ramp starts (default 32).
        beta_fast: f64,
        /// Rotations at which the ramp ends (default 1).
        beta_slow: f64,
        /// Whether the ramp's bounds are rounded outwards to whole dimensions (default true).
        truncate: bool,
    },
}

impl RopeScaling {
    /// Parses `rope_scaling` (`null`, or an object with `rope_type` or the older `type`);
    /// `max_position_embeddings` is the config's, which YaRN uses as its original length when the entry
    /// names none. `None` for `null` and for the `default` type.
    ///
    /// # Errors
    /// A message naming the unsupported type or the missing or invalid key.
    pub fn parse(value: &Value, max_position_embeddings: usize) -> Result<Option<Self>, String> {
        let entry = match value {
            Value::Null => return Ok(None),
            Value::Object(entry) => entry,
            other => {
                return Err(format!(
                    "`rope_scaling` must be an object or null, found `{other}`"
                ))
            }
        };
        let kind = ["rope_type", "type"]
            .iter()
            .find_map(|key| entry.get(*key))
            .and_then(Value::as_str)
            .ok_or("`rope_scaling` names no `rope_type`")?;
        let scaling = match kind {
            "default" => return Ok(None),
            "linear" => RopeScaling::Linear {
                factor: positive(entry, "factor")?,
            },
            "llama3" => {
                let scaling = RopeScaling::Llama3 {
                    factor: positive(entry, "factor")?,
                    low_freq_factor: positive(entry, "low_freq_factor")?,
                    high_freq_factor: positive(entry, "high_freq_factor")?,
                    original_max_position_embeddings: positive(
                        entry,
                        "original_max_position_embeddings",
                    )?,
                };
                if let RopeScaling::Llama3 {
                    low_freq_factor,
                    high_freq_factor,
                    ..
                } = scaling
                {
                    if high_freq_factor <= low_freq_factor {
                        return Err(format!(
                            "`rope_scaling.high_freq_factor` ({high_freq_factor}) must exceed `low_freq_factor` ({low_freq_factor})"
                        ));
                    }
                }
                scaling
            }
            "yarn" => yarn(entry, max_position_embeddings)?,
            other => {
                return Err(format!(
                    "`rope_scaling` type `{other}` is not supported (supported: `default`, `linear`, `llama3`, `yarn`)"
                ))
            }
        };
        Ok(Some(scaling))
    }

    /// The scaled inverse frequencies (from the unscaled `θ^(−2i/D)`) and the factor the cos/sin
    /// tables are multiplied by.
    pub fn apply(&self, inv_freq: &[f64], head_dim: usize, theta: f64) -> (Vec<f64>, f64) {
        match *self {
            RopeScaling::Linear { factor } => (inv_freq.iter().map(|f| f / factor).collect(), 1.0),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: original,
            } => {
                let low_wavelen = original / low_freq_factor;
                let high_wavelen = original / high_freq_factor;
                let scaled = inv_freq.iter().map(|&freq| {
                    let wavelen = 2.0 * std::f64::consts::PI / freq;
                    if wavelen < high_wavelen {
                        freq
                    } else if wavelen > low_wavelen {
                        freq / factor
                    } else {
                        let smooth = (original / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * freq / factor + smooth * freq
                    }
                });
                (scaled.collect(), 1.0)
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: original,
                attention_factor,
                beta_fast,
                beta_slow,
                truncate,
            } => {
                let dim = head_dim as f64;
                // The dimension at which a wavelength completes `rotations` turns over `original`.
                let correction = |rotations: f64| {
                    dim * (original / (rotations * 2.0 * std::f64::consts::PI)).ln()
                        / (2.0 * theta.ln())
                };
                let (mut low, mut high) = (correction(beta_fast), correction(beta_slow));
                if truncate {
                    (low, high) = (low.floor(), high.ceil());
                }
                let (low, high) = (low.max(0.0), high.min(dim - 1.0));
                let span = if low == high { 0.001 } else { high - low };
                let scaled = inv_freq.iter().enumerate().map(|(i, &freq)| {
                    let ramp = ((i as f64 - low) / span).clamp(0.0, 1.0);
                    let extrapolation = 1.0 - ramp;
                    freq / factor * (1.0 - extrapolation) + freq * extrapolation
                });
                (scaled.collect(), attention_factor)
            }
        }
    }
}

/// `yarn`'s keys with transformers' defaults: `original_max_position_embeddings` the config's
/// `max_position_embeddings`, `beta_fast` 32, `beta_slow` 1, `truncate` true (an explicit `null` is
/// false, as in Python), and an attention factor of `0.1·ln(factor) + 1` (or the ratio of two such
/// terms with `mscale`, `mscale_all_dim`) unless `attention_factor` is given.
fn yarn(entry: &Map<String, Value>, max_position_embeddings: usize) -> Result<RopeScaling, String> {
    let factor = positive(entry, "factor")?;
    let original = optional(entry, "original_max_position_embeddings")?
        .filter(|original| *original != 0.0)
        .unwrap_or(max_position_embeddings as f64);
    let mscale = |scale: f64, m: f64| {
        if scale <= 1.0 {
            1.0
        } else {
            0.1 * m * scale.ln() + 1.0
        }
    };
    let attention_factor = match optional(entry, "attention_factor")? {
        Some(value) => value,
        None => match (
            optional(entry, "mscale")?.filter(|m| *m != 0.0),
            optional(entry, "mscale_all_dim")?.filter(|m| *m != 0.0),
        ) {
            (Some(m), Some(all)) => mscale(factor, m) / mscale(factor, all),
            _ => mscale(factor, 1.0),
        },
    };
    let truncate = match entry.get("truncate") {
        None => true,
        Some(Value::Null) => false,
        Some(Value::Bool(value)) => *value,
        Some(other) => {
            return Err(format!(
                "`rope_scaling.truncate` must be a boolean, found `{other}`"
            ))
        }
    };
    Ok(RopeScaling::Yarn {
        factor,
        original_max_position_embeddings: original,
        attention_factor,
        beta_fast: optional(entry, "beta_fast")?
            .filter(|b| *b != 0.0)
            .unwrap_or(32.0),
        beta_slow: optional(entry, "beta_slow")?
            .filter(|b| *b != 0.0)
            .unwrap_or(1.0),
        truncate,
    })
}

/// A number under `key`, absent or `null` as `None`.
fn optional(entry: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match entry.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| format!("`rope_scaling.{key}` must be a number, found `{value}`")),
    }
}

/// A positive number under `key`, required.
fn positive(entry: &Map<String, Value>, key: &str) -> Result<f64, String> {
    match optional(entry, key)? {
        Some(value) if value > 0.0 => Ok(value),
        Some(value) => Err(format!(
            "`rope_scaling.{key}` must be positive, found `{value}`"
        )),
        None => Err(format!("`rope_scaling` needs `{key}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inverse frequencies of head width 64, as [`crate::Rope::new`] makes them.
    fn unscaled(theta: f64) -> Vec<f64> {
        (0..32)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / 64.0))
            .collect()
    }

    /// Frequencies 0, 4, 8, 12, 16, 31 of a scaling, and its attention factor, against transformers
    /// 4.57's `ROPE_INIT_FUNCTIONS` (computed in f32 there: relative 1e-6).
    fn assert_matches(scaling: serde_json::Value, theta: f64, reference: [f64; 6], factor: f64) {
        let scaling = RopeScaling::parse(&scaling, 1024).unwrap().unwrap();
        let (freqs, attention_factor) = scaling.apply(&unscaled(theta), 64, theta);
        for (&i, want) in [0, 4, 8, 12, 16, 31].iter().zip(reference) {
            let got = freqs[i];
            assert!(
                (got - want).abs() <= 1e-6 * want,
                "{scaling:?}: frequency {i} is {got}, transformers {want}"
            );
        }
        assert!(
            (attention_factor - factor).abs() < 1e-12,
            "{attention_factor}"
        );
    }

    #[test]
    fn llama3_matches_transformers() {
        let scaling = serde_json::json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 256});
        let reference = [
            1.0,
            0.193922758102417,
            0.010538230650126934,
            0.0009115831344388425,
            0.00017677668074611574,
            3.76732259610435e-07,
        ];
        assert_matches(scaling, 500_000.0, reference, 1.0);
    }

    #[test]
    fn yarn_matches_transformers() {
        let scaling = serde_json::json!({"type": "yarn", "factor": 4.0,
            "original_max_position_embeddings": 256});
        let reference = [
            1.0,
            0.24325212836265564,
            0.053846150636672974,
            0.009730085730552673,
            0.0024999999441206455,
            3.333803761051968e-05,
        ];
        assert_matches(scaling, 10_000.0, reference, 1.138629436111989);
        // mscale / mscale_all_dim, explicit betas, no truncation, the config's length as the original.
        let scaling = serde_json::json!({"rope_type": "yarn", "factor": 4.0, "mscale": 1.0,
            "mscale_all_dim": 0.5, "beta_fast": 8.0, "beta_slow": 2.0, "truncate": false});
        let reference = [
            1.0,
            0.3162277638912201,
            0.10000000149011612,
            0.02409985661506653,
            0.0024999999441206455,
            3.333803761051968e-05,
        ];
        assert_matches(scaling, 10_000.0, reference, 1.0648216253695715);
    }

    #[test]
    fn linear_divides_and_default_is_none() {
        let scaling = RopeScaling::parse(&serde_json::json!({"type": "linear", "factor": 2.0}), 64)
            .unwrap()
            .unwrap();
        assert_eq!(scaling.apply(&[1.0, 0.5], 4, 10.0), (vec![0.5, 0.25], 1.0));
        for none in [
            serde_json::Value::Null,
            serde_json::json!({"rope_type": "default"}),
        ] {
            assert_eq!(RopeScaling::parse(&none, 64), Ok(None));
        }
    }

    #[test]
    fn unsupported_or_incomplete_entries_name_the_key() {
        for (entry, message) in [
            (
                serde_json::json!({"rope_type": "dynamic", "factor": 2.0}),
                "`rope_scaling` type `dynamic` is not supported",
            ),
            (
                serde_json::json!({"rope_type": "llama3", "factor": 8.0}),
                "`rope_scaling` needs `low_freq_factor`",
            ),
            (
                serde_json::json!({"type": "yarn", "factor": -1.0}),
                "`rope_scaling.factor` must be positive",
            ),
            (
                serde_json::json!({"factor": 2.0}),
                "`rope_scaling` names no `rope_type`",
            ),
        ] {
            let err = RopeScaling::parse(&entry, 64).unwrap_err();
            assert!(err.contains(message), "{err}");
        }
    }
}
