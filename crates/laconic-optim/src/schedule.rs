//! Learning-rate schedules (`lr_schedule`, `warmup_steps`, `min_lr_ratio`, `total_steps`).
//!
//! Steps count optimizer updates (`s = 0` is the first update). Warmup is linear and reaches the
//! full rate at the end of warmup: `lr·(s + 1)/W` for `s < W`. (Hugging Face's schedules use `s/W`,
//! which spends the first update at learning rate 0.)

use serde::{Deserialize, Serialize};

/// The shape of the learning rate after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` after warmup. Unspecified in the paper (lr 1e-6); default constant (verl).
    #[default]
    Constant,
    /// `lr·(r + (1 − r)·½(1 + cos(π·p)))` with `p = (s − W)/(S − W)` clamped to `[0, 1]`, `r` the
    /// min-lr ratio and `S` the total number of updates (SGDR, arXiv 1608.03983, without restarts).
    Cosine,
}

/// A schedule with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Shape after warmup.
    pub kind: LrSchedule,
    /// `W`, linear-warmup updates.
    pub warmup_steps: u64,
    /// `r`, the cosine floor as a fraction of `lr`.
    pub min_lr_ratio: f64,
    /// `S`, total updates of the run (cosine only).
    pub total_steps: u64,
}

impl LrSchedule {
    /// Both schedules, in the order of their config names.
    pub const ALL: [LrSchedule; 2] = [LrSchedule::Constant, LrSchedule::Cosine];
}

impl Schedule {
    /// The learning rate of update `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.kind {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
                let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_constant() {
        let s = Schedule {
            lr: 1e-3,
            kind: LrSchedule::Constant,
            warmup_steps: 4,
            min_lr_ratio: 0.0,
            total_steps: 0,
        };
        let lrs: Vec<f64> = (0..6).map(|i| s.lr_at(i)).collect();
        let expected = [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3];
        for (a, b) in lrs.iter().zip(expected) {
            assert!((a - b).abs() < 1e-15, "{lrs:?}");
        }
    }

    #[test]
    fn cosine_decays_to_the_floor() {
        let s = Schedule {
            lr: 1.0,
            kind: LrSchedule::Cosine,
            warmup_steps: 2,
            min_lr_ratio: 0.1,
            total_steps: 12,
        };
        assert!((s.lr_at(1) - 1.0).abs() < 1e-12);
        assert!((s.lr_at(2) - 1.0).abs() < 1e-12);
        // Half way: 0.1 + 0.9·0.5.
        assert!((s.lr_at(7) - 0.55).abs() < 1e-12);
        assert!((s.lr_at(12) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn names_round_trip() {
        for (kind, name) in LrSchedule::ALL.iter().zip(["constant", "cosine"]) {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<LrSchedule>(&json).unwrap(), *kind);
        }
        let err = serde_json::from_str::<LrSchedule>("\"linear\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("constant") && err.contains("cosine"), "{err}");
    }
}
