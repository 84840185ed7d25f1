//! `AttentionLayout`: which tokens of a padded batch are real and where each one sits, host-side.
//!
//! A padded batch `[B, T]` may be left-padded (generation) or right-padded (training); the layout
//! says which cells are real and gives each one its absolute position, so the model needs no
//! assumption about where the padding is.

use crate::error::{Error, Result};

/// Validity and absolute positions of the tokens of one forward call, row-major `[B, T]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionLayout {
    batch: usize,
    seq: usize,
    valid: Vec<bool>,
    positions: Vec<usize>,
}

impl AttentionLayout {
    /// A layout with explicit validity and positions (both row-major `[B, T]`).
    ///
    /// # Errors
    /// When either vector is not `batch * seq` long.
    pub fn new(batch: usize, seq: usize, valid: Vec<bool>, positions: Vec<usize>) -> Result<Self> {
        if valid.len() != batch * seq || positions.len() != batch * seq {
            return Err(Error::Input(format!(
                "attention layout for [{batch}, {seq}] needs {} entries, found {} validity flags and {} positions",
                batch * seq,
                valid.len(),
                positions.len()
            )));
        }
        Ok(Self {
            batch,
            seq,
            valid,
            positions,
        })
    }

    /// A layout from a padding mask, with positions counted over real tokens only (HF's
    /// `position_ids = cumsum(attention_mask) − 1`), each row starting at `offsets[b]`.
    ///
    /// # Errors
    /// When `valid` is not `batch * seq` long or `offsets` is not `batch` long.
    pub fn from_mask(
        batch: usize,
        seq: usize,
        valid: Vec<bool>,
        offsets: &[usize],
    ) -> Result<Self> {
        if offsets.len() != batch {
            return Err(Error::Input(format!(
                "expected {batch} position offsets, found {}",
                offsets.len()
            )));
        }
        let mut positions = Vec::with_capacity(valid.len());
        for (row, offset) in valid.chunks(seq.max(1)).zip(offsets) {
            let mut next = *offset;
            for &is_real in row {
                positions.push(if is_real { next } else { 0 });
                next += usize::from(is_real);
            }
        }
        Self::new(batch, seq, valid, positions)
    }

    /// Rows of the given lengths, left-padded to `seq`, positions starting at 0.
    ///
    /// # Errors
    /// When a length exceeds `seq`.
    pub fn left_padded(lengths: &[usize], seq: usize) -> Result<Self> {
        let valid = padding_mask(lengths, seq, true)?;
        Self::from_mask(lengths.len(), seq, valid, &vec![0; lengths.len()])
    }

    /// Rows of the given lengths, right-padded to `seq`, positions starting at 0.
    ///
    /// # Errors
    /// When a length exceeds `seq`.
    pub fn right_padded(lengths: &[usize], seq: usize) -> Result<Self> {
        let valid = padding_mask(lengths, seq, false)?;
        Self::from_mask(lengths.len(), seq, valid, &vec![0; lengths.len()])
    }

    /// One new token per row at the given positions (a decode step).
    pub fn decode_step(positions: Vec<usize>) -> Self {
        let batch = positions.len();
        Self {
            batch,
            seq: 1,
            valid: vec![true; batch],
            positions,
        }
    }

    /// Rows `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Columns `T`.
    pub fn seq(&self) -> usize {
        self.seq
    }

    /// Validity flags, row-major `[B, T]`.
    pub fn valid(&self) -> &[bool] {
        &self.valid
    }

    /// Absolute positions, row-major `[B, T]` (0 on padding).
    pub fn positions(&self) -> &[usize] {
        &self.positions
    }
}

fn padding_mask(lengths: &[usize], seq: usize, left: bool) -> Result<Vec<bool>> {
    let mut valid = Vec::with_capacity(lengths.len() * seq);
    for &len in lengths {
        if len > seq {
            return Err(Error::Input(format!(
                "row of length {len} does not fit a padded width of {seq}"
            )));
        }
        let pad = seq - len;
        if left {
            valid.extend((0..seq).map(|i| i >= pad));
        } else {
            valid.extend((0..seq).map(|i| i < len));
        }
    }
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_and_right_padding_positions() {
        let left = AttentionLayout::left_padded(&[2, 3], 3).unwrap();
        assert_eq!(left.valid(), [false, true, true, true, true, true]);
        assert_eq!(left.positions(), [0, 0, 1, 0, 1, 2]);
        let right = AttentionLayout::right_padded(&[2, 3], 3).unwrap();
        assert_eq!(right.valid(), [true, true, false, true, true, true]);
        assert_eq!(right.positions(), [0, 1, 0, 0, 1, 2]);
    }

    #[test]
    fn rejects_inconsistent_sizes() {
        assert!(AttentionLayout::new(2, 2, vec![true; 3], vec![0; 4]).is_err());
        assert!(AttentionLayout::left_padded(&[4], 3).is_err());
    }
}
