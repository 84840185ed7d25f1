//! `AttentionMask`: which cached columns each query of a forward call may attend to, kept as the
//! per-row validity of the columns (`[B, S + T]` booleans) instead of a `[B, H, T, S + T]` tensor.
//!
//! A query at column `q` may see key column `s` when `s ≤ q` (causal) and `s` holds a real token of its
//! row; every query also sees itself, so a padding query has a finite (ignored) output, never NaN.
//! Blocked attention asks for one `[query block, key block]` tile at a time ([`AttentionMask::tile`]):
//! most tiles are wholly visible or wholly hidden and need no tensor at all, and the others are built
//! on the host at the tile's size. Memory stays linear in the sequence length.

use std::sync::Arc;

use burn::prelude::*;

use crate::flash::{AttentionBlocks, Blocked};

/// The attention mask of one forward call: `T` new queries at columns `S..S + T` over `S + T` keys.
///
/// Cheap to clone (the validity vector is shared).
#[derive(Debug, Clone)]
pub struct AttentionMask {
    /// Row-major `[B, S + T]`: whether a column holds a real token of that row.
    valid: Arc<Vec<bool>>,
    /// Row-major `[B, S + T + 1]`: padding columns before each column (prefix counts).
    padding_before: Arc<Vec<u32>>,
    batch: usize,
    /// Cached columns before this call, `S`.
    past: usize,
    /// New queries, `T`.
    queries: usize,
}

/// What a tile of the mask holds.
#[derive(Debug, Clone)]
pub enum Tile<B: Backend> {
    /// Every query of the tile sees every key: no mask to apply.
    Visible,
    /// No query of the tile sees any key: the tile contributes nothing.
    Hidden,
    /// Some pairs are masked: `true` = masked, `[B, 1, n_rep·Tq, Tk]` (broadcast over key/value heads).
    Partial(Tensor<B, 4, Bool>),
}

impl AttentionMask {
    /// The mask of `queries` new columns after `past` cached ones, from the validity of all
    /// `past + queries` columns of each of `batch` rows (row-major).
    pub fn new(valid: Vec<bool>, batch: usize, past: usize, queries: usize) -> Self {
        let total = past + queries;
        debug_assert_eq!(valid.len(), batch * total);
        let mut padding_before = Vec::with_capacity(batch * (total + 1));
        for row in valid.chunks(total.max(1)).take(batch) {
            let mut count = 0u32;
            padding_before.push(0);
            for &real in row {
                count += u32::from(!real);
                padding_before.push(count);
            }
        }
        Self {
            valid: Arc::new(valid),
            padding_before: Arc::new(padding_before),
            batch,
            past,
            queries,
        }
    }

    /// Rows `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// New queries `T`.
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// Cached columns before this call, `S`.
    pub fn past(&self) -> usize {
        self.past
    }

    /// Key columns `S + T`.
    pub fn keys(&self) -> usize {
        self.past + self.queries
    }

    /// Whether query `t` (of the new ones) of row `b` may not see key column `s`.
    pub(crate) fn masked(&self, b: usize, t: usize, s: usize) -> bool {
        let query = self.past + t;
        s > query || (!self.valid[b * self.keys() + s] && s != query)
    }

    /// Whether every row holds only real tokens in key columns `keys`.
    fn all_real(&self, keys: &std::ops::Range<usize>) -> bool {
        let stride = self.keys() + 1;
        (0..self.batch).all(|b| {
            self.padding_before[b * stride + keys.end]
                == self.padding_before[b * stride + keys.start]
        })
    }

    /// The tile for new queries `queries` (indices into `0..T`) and key columns `keys`, with each
    /// query repeated `n_rep` times (the query heads of a group folded into the query axis, repeat-major:
    /// row `r·Tq + i` is query `queries.start + i` of head `r` of the group).
    pub fn tile<B: Backend>(
        &self,
        queries: std::ops::Range<usize>,
        keys: std::ops::Range<usize>,
        n_rep: usize,
        device: &B::Device,
    ) -> Tile<B> {
        let (first_query, last_query) = (self.past + queries.start, self.past + queries.end - 1);
        if keys.start > last_query {
            return Tile::Hidden;
        }
        if keys.end - 1 <= first_query && self.all_real(&keys) {
            return Tile::Visible;
        }
        let (tq, tk) = (queries.len(), keys.len());
        let mut mask = Vec::with_capacity(self.batch * n_rep * tq * tk);
        for b in 0..self.batch {
            let start = mask.len();
            for t in queries.clone() {
                mask.extend(keys.clone().map(|s| self.masked(b, t, s)));
            }
            for _ in 1..n_rep {
                mask.extend_from_within(start..start + tq * tk);
            }
        }
        Tile::Partial(Tensor::from_data(
            TensorData::new(mask, [self.batch, 1, n_rep * tq, tk]),
            device,
        ))
    }

    /// The whole mask as one tensor, for a single new query per row (decoding), materialised for each
    /// of the `kv_heads` key/value heads (a broadcast mask is copied to full size by CPU backends on
    /// every masked fill).
    ///
    /// # Shapes
    /// - returns: `[B, H_kv, n_rep·T, S + T]` (`true` = masked)
    pub fn dense<B: Backend>(
        &self,
        [kv_heads, n_rep]: [usize; 2],
        device: &B::Device,
    ) -> Tensor<B, 4, Bool> {
        let (t, total) = (self.queries, self.keys());
        let block = n_rep * t * total;
        let mut mask = Vec::with_capacity(self.batch * kv_heads * block);
        for b in 0..self.batch {
            let head_start = mask.len();
            for _ in 0..n_rep {
                for q in 0..t {
                    mask.extend((0..total).map(|s| self.masked(b, q, s)));
                }
            }
            for _ in 1..kv_heads {
                mask.extend_from_within(head_start..head_start + block);
            }
        }
        Tensor::from_data(
            TensorData::new(mask, [self.batch, kv_heads, n_rep * t, total]),
            device,
        )
    }
}

/// Everything the attention of every layer needs to know about one forward call, built once per call:
/// the mask, the tile sizes and, when decoding (one query per row), the dense mask that the cached
/// keys are read with.
#[derive(Debug, Clone)]
pub struct ForwardMask<B: Backend> {
    pub(crate) blocked: Blocked,
    /// `[B, H_kv, n_rep, S + 1]` for a decode step, `None` for prefill and training.
    pub(crate) decode: Option<Tensor<B, 4, Bool>>,
}

impl<B: Backend> ForwardMask<B> {
    /// The call's mask for a model with `kv_heads` key/value heads of `head_dim`, `n_rep` query heads
    /// each.
    pub(crate) fn new(
        mask: AttentionMask,
        [kv_heads, n_rep, head_dim]: [usize; 3],
        blocks: AttentionBlocks,
        device: &B::Device,
    ) -> Self {
        let decode = (mask.queries() == 1).then(|| mask.dense([kv_heads, n_rep], device));
        Self {
            blocked: Blocked {
                mask,
                n_rep,
                scale: 1.0 / (head_dim as f64).sqrt(),
                blocks,
            },
            decode,
        }
    }

    /// The mask as column validity.
    pub fn mask(&self) -> &AttentionMask {
        &self.blocked.mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;

    /// Row 0: one padding column then real tokens; row 1: all real. Two cached columns, three new.
    fn mask() -> AttentionMask {
        let valid = vec![
            false, true, true, true, true, //
            true, true, true, true, true,
        ];
        AttentionMask::new(valid, 2, 2, 3)
    }

    fn bools(tile: Tile<TestBackend>) -> Option<Vec<bool>> {
        match tile {
            Tile::Partial(t) => Some(t.into_data().to_vec::<bool>().unwrap()),
            Tile::Visible => None,
            Tile::Hidden => Some(vec![]),
        }
    }

    #[test]
    fn tiles_agree_with_the_dense_mask() {
        let mask = mask();
        let device = Default::default();
        let dense = mask
            .dense::<TestBackend>([1, 2], &device)
            .into_data()
            .to_vec::<bool>()
            .unwrap();
        // Dense: [B=2, 1, n_rep·T=6, S+T=5].
        let at = |b: usize, r: usize, t: usize, s: usize| dense[((b * 2 + r) * 3 + t) * 5 + s];
        for (queries, keys) in [(0..3, 0..5), (1..3, 2..4), (0..1, 3..5), (2..3, 0..2)] {
            let tile = mask.tile::<TestBackend>(queries.clone(), keys.clone(), 2, &device);
            let expect: Vec<bool> = (0..2)
                .flat_map(|b| (0..2).map(move |r| (b, r)))
                .flat_map(|(b, r)| {
                    let keys = keys.clone();
                    queries
                        .clone()
                        .flat_map(move |t| keys.clone().map(move |s| at(b, r, t, s)))
                })
                .collect();
            match bools(tile) {
                Some(got) if got.is_empty() => assert!(expect.iter().all(|m| *m)),
                Some(got) => assert_eq!(got, expect, "queries {queries:?}, keys {keys:?}"),
                None => assert!(expect.iter().all(|m| !*m)),
            }
        }
    }

    #[test]
    fn whole_tiles_need_no_tensor() {
        let mask = mask();
        let device = Default::default();
        // Keys after every query: hidden.
        assert!(matches!(
            mask.tile::<TestBackend>(0..1, 3..5, 1, &device),
            Tile::Hidden
        ));
        // Real keys before every query: visible.
        assert!(matches!(
            mask.tile::<TestBackend>(1..3, 1..3, 1, &device),
            Tile::Visible
        ));
        // The padding column makes the tile partial.
        assert!(matches!(
            mask.tile::<TestBackend>(1..3, 0..3, 1, &device),
            Tile::Partial(_)
        ));
        // Each query sees itself, padding or not: column 0 is row 0's padding, seen by no query here.
        let dense = mask.dense::<TestBackend>([1, 1], &device).into_data();
        let dense = dense.to_vec::<bool>().unwrap();
        assert!(
            dense[0],
            "row 0's first query may not see the padding column"
        );
        assert!(!dense[2], "a query sees itself");
    }
}
