//! Length distributions: mean, quantiles and an equal-width histogram.

use serde::{Deserialize, Serialize};

/// One quantile of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    /// The level in [0, 1] (0.5 = median).
    pub q: f64,
    /// The value at that level.
    pub value: f64,
}

/// Counts of values in consecutive bins `[edges[i], edges[i+1])`, the last bin closed on the right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `bins + 1` ascending edges.
    pub edges: Vec<f64>,
    /// `bins` counts.
    pub counts: Vec<usize>,
}

impl Histogram {
    /// `bins` equal-width bins over `[lo, hi]`; values outside are counted in the first or last bin.
    ///
    /// # Panics
    /// When `bins` is 0 or `hi ≤ lo`.
    pub fn equal_width(values: &[f64], lo: f64, hi: f64, bins: usize) -> Self {
        assert!(
            bins > 0 && hi > lo,
            "a histogram needs bins > 0 and hi > lo"
        );
        let width = (hi - lo) / bins as f64;
        let edges = (0..=bins).map(|i| lo + width * i as f64).collect();
        let mut counts = vec![0; bins];
        for &v in values {
            // floor((v − lo) / width), clamped to a bin; v = hi falls in the last bin.
            let bin = ((v - lo) / width).floor().clamp(0.0, (bins - 1) as f64) as usize;
            counts[bin] += 1;
        }
        Self { edges, counts }
    }

    /// Number of values counted.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }
}

/// The `q`-quantile of ascending `sorted` values by linear interpolation between closest ranks (numpy's
/// default, Hyndman & Fan type 7): `h = (n − 1)·q`, `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])`.
/// `None` for an empty slice.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(last);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// Summary of a set of lengths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthDistribution {
    /// Number of samples.
    pub count: usize,
    /// Mean length; `None` when there is no sample.
    pub mean: Option<f64>,
    /// The configured quantiles; empty when there is no sample.
    pub quantiles: Vec<Quantile>,
    /// Equal-width histogram over `[0, B]`.
    pub histogram: Histogram,
}

impl LengthDistribution {
    /// Summarises `lengths` (each in `[0, budget]`) with the given quantile levels and `bins` histogram bins.
    pub fn of(lengths: &[usize], levels: &[f64], budget: usize, bins: usize) -> Self {
        let mut sorted: Vec<f64> = lengths.iter().map(|&l| l as f64).collect();
        sorted.sort_by(f64::total_cmp);
        let mean = (!sorted.is_empty()).then(|| sorted.iter().sum::<f64>() / sorted.len() as f64);
        let quantiles = levels
            .iter()
            .filter_map(|&q| quantile(&sorted, q).map(|value| Quantile { q, value }))
            .collect();
        Self {
            count: sorted.len(),
            mean,
            quantiles,
            histogram: Histogram::equal_width(&sorted, 0.0, budget.max(1) as f64, bins),
        }
    }

    /// The value at level `q`, if it was computed.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.quantiles
            .iter()
            .find(|x| (x.q - q).abs() < 1e-12)
            .map(|x| x.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy() {
        // numpy.quantile([1, 2, 3, 4, 10], [0.1, 0.25, 0.5, 0.75, 0.9]) = [1.4, 2, 3, 4, 7.6]
        let x = [1.0, 2.0, 3.0, 4.0, 10.0];
        let got: Vec<f64> = [0.1, 0.25, 0.5, 0.75, 0.9]
            .iter()
            .map(|&q| quantile(&x, q).unwrap())
            .collect();
        for (g, e) in got.iter().zip([1.4, 2.0, 3.0, 4.0, 7.6]) {
            assert!((g - e).abs() < 1e-12, "{got:?}");
        }
        assert_eq!(quantile(&[5.0], 0.9), Some(5.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn histogram_bins_and_edges() {
        let h = Histogram::equal_width(&[0.0, 1.0, 3.9, 4.0, 7.9, 8.0, 9.0], 0.0, 8.0, 2);
        assert_eq!(h.edges, [0.0, 4.0, 8.0]);
        // [0, 4): 0, 1, 3.9; [4, 8]: 4, 7.9, 8, and 9 clamped into the last bin.
        assert_eq!(h.counts, [3, 4]);
        assert_eq!(h.total(), 7);
    }

    #[test]
    fn length_distribution_summary() {
        let d = LengthDistribution::of(&[10, 30, 20, 40], &[0.5], 40, 4);
        assert_eq!(d.count, 4);
        assert_eq!(d.mean, Some(25.0));
        assert_eq!(d.quantile(0.5), Some(25.0));
        assert_eq!(d.histogram.counts, [0, 1, 1, 2]);
        let empty = LengthDistribution::of(&[], &[0.5], 40, 4);
        assert_eq!(
            (empty.count, empty.mean, empty.quantiles.len()),
            (0, None, 0)
        );
        assert_eq!(empty.histogram.counts, [0; 4]);
    }
}
