//! Parity with transformers: the reference outputs a fixture folder holds (`expected.json` with the
//! prompts and greedy ids, `expected.safetensors` with each prompt's logits, written by
//! `tests/fixtures/make_parity.py`) and the error measure the parity checks bound. Shared by the CPU
//! parity tests and `examples/gpu_check.rs`.

use std::path::Path;

use laconic_model::safetensors::SafetensorsIndex;

/// Largest accepted [`rel_err`] in f32.
pub const F32_TOLERANCE: f32 = 1e-4;

/// What transformers computed for a fixture.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The prompts' ids.
    pub prompts: Vec<Vec<u32>>,
    /// Greedy continuation of each prompt.
    pub greedy: Vec<Vec<u32>>,
    /// `[T_i, V]` logits of each prompt run alone, row-major.
    pub logits: Vec<Vec<f32>>,
    /// The whole `expected.json`, for fixture-specific values.
    pub json: serde_json::Value,
}

/// Reads the reference outputs of the fixture folder `dir`.
///
/// # Errors
/// A message naming the file (and key) that is missing or malformed.
pub fn read_expected(dir: &Path) -> Result<Expected, String> {
    let path = dir.join("expected.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("failed to read `{}`: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("failed to parse `{}`: {e}", path.display()))?;
    let ids = |key: &str| -> Result<Vec<Vec<u32>>, String> {
        serde_json::from_value(json[key].clone())
            .map_err(|e| format!("`{key}` in `{}`: {e}", path.display()))
    };
    let prompts = ids("prompts")?;
    let greedy = ids("greedy")?;
    let tensors = SafetensorsIndex::from_files(&[dir.join("expected.safetensors")])
        .map_err(|e| e.to_string())?;
    let logits = (0..prompts.len())
        .map(|i| tensors.read_f32(&format!("logits_{i}")))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    Ok(Expected {
        prompts,
        greedy,
        logits,
        json,
    })
}

/// `max|ours − reference| / max|reference|`; infinite when the lengths differ or one of ours is not
/// finite, so a bound on it fails.
pub fn rel_err(ours: &[f32], reference: &[f32]) -> f32 {
    if ours.len() != reference.len() || ours.iter().any(|v| !v.is_finite()) {
        return f32::INFINITY;
    }
    let max_ref = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_diff = ours
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    max_diff / max_ref
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_and_its_failures() {
        assert_eq!(rel_err(&[1.0, -2.5], &[1.0, -2.0]), 0.25);
        assert_eq!(rel_err(&[1.0], &[1.0, 2.0]), f32::INFINITY);
        assert_eq!(rel_err(&[f32::NAN], &[1.0]), f32::INFINITY);
    }
}
