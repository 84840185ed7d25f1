//! `KvCache`: keys and values of every layer for a batch of sequences, plus which cached columns are
//! real tokens, with the row operations a batched generator needs (select, repeat, merge, trim).
//!
//! All rows share one column axis: row `b`'s tokens occupy columns where `valid[b, s]` is true
//! (prompts are left-padded so every row ends at the same column and decoding appends one column).
//!
//! Buffers keep spare columns (grown [`GROWTH`] columns at a time) so a decode step writes its new
//! column in place instead of copying the whole cache, and attention reads a strided view of the
//! first `len` columns.

use burn::prelude::*;

use crate::mask::AttentionMask;

/// Spare columns added when a cache buffer is full.
pub const GROWTH: usize = 256;

/// Cached keys and values of one layer.
///
/// # Shapes
/// - `k`, `v`: `[B, H_kv, C, D]` buffers whose first `S ≤ C` columns are in use (views returned by
///   [`KvCache`] methods are exactly `[B, H_kv, S, D]`)
#[derive(Debug, Clone)]
pub struct LayerKv<B: Backend> {
    /// Rotated keys.
    pub k: Tensor<B, 4>,
    /// Values.
    pub v: Tensor<B, 4>,
}

/// The KV cache of a whole model for a batch of sequences.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<LayerKv<B>>>,
    /// Row-major `[B, S]`: whether the cached column holds a real token of that row.
    valid: Vec<bool>,
    batch: usize,
    len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model with `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            valid: Vec::new(),
            batch: 0,
            len: 0,
        }
    }

    /// Cached columns `S`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows `B` (0 when empty).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Real tokens cached for each row.
    pub fn row_lengths(&self) -> Vec<usize> {
        if self.len == 0 {
            return vec![0; self.batch];
        }
        self.valid
            .chunks(self.len)
            .map(|row| row.iter().filter(|v| **v).count())
            .collect()
    }

    /// Records `new_valid` (`[B, T]`, the tokens about to be appended) as cached columns and returns the
    /// attention mask of these `T` queries over the cached columns plus the new ones.
    ///
    /// A query at column `S + t` may not see a later column nor a padding column, but always sees
    /// itself (padding queries get a finite, ignored output, never NaN). The mask is kept as column
    /// validity (`O(B·(S + T))`), never as a `[B, H, T, S + T]` tensor.
    pub(crate) fn extend_mask(
        &mut self,
        new_valid: &[bool],
        [batch, seq]: [usize; 2],
    ) -> AttentionMask {
        if self.len == 0 {
            self.batch = batch;
        }
        let (old, total) = (self.len, self.len + seq);
        let mut valid = Vec::with_capacity(batch * total);
        for b in 0..batch {
            valid.extend_from_slice(&self.valid[b * old..(b + 1) * old]);
            valid.extend_from_slice(&new_valid[b * seq..(b + 1) * seq]);
        }
        self.valid = valid.clone();
        self.len = total;
        AttentionMask::new(valid, batch, old, seq)
    }

    /// Writes a layer's new keys/values (`[B, H_kv, T, D]`) after the cached columns and returns views of
    /// all of them (`[B, H_kv, S + T, D]`). Call after [`KvCache::extend_mask`], which advanced `len`.
    pub(crate) fn append(&mut self, layer: usize, k: Tensor<B, 4>, v: Tensor<B, 4>) -> LayerKv<B> {
        let t = k.dims()[2];
        let (end, start) = (self.len, self.len - t);
        let buffers = match self.layers[layer].take() {
            // First write: the new block is the buffer (no spare columns; training never appends twice).
            None if start == 0 => LayerKv { k, v },
            None => unreachable!("a layer's cache is written on every forward"),
            Some(kv) => {
                let kv = if kv.k.dims()[2] < end {
                    grow(kv, end)
                } else {
                    kv
                };
                LayerKv {
                    k: write_columns(kv.k, start, k),
                    v: write_columns(kv.v, start, v),
                }
            }
        };
        let view = view(&buffers, end);
        self.layers[layer] = Some(buffers);
        view
    }

    /// Keeps the rows `rows` in that order (rows may repeat: a prompt's cache shared by its samples).
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let Some(device) = self.device() else {
            return Self {
                batch: rows.len(),
                ..self.clone()
            };
        };
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(rows.iter().map(|&r| r as i64).collect(), [rows.len()]),
            &device,
        );
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                layer.as_ref().map(|kv| {
                    let kv = view(kv, self.len);
                    LayerKv {
                        k: kv.k.select(0, index.clone()),
                        v: kv.v.select(0, index.clone()),
                    }
                })
            })
            .collect();
        let valid = rows
            .iter()
            .flat_map(|&r| self.valid[r * self.len..(r + 1) * self.len].iter().copied())
            .collect();
        Self {
            layers,
            valid,
            batch: rows.len(),
            len: self.len,
        }
    }

    /// Stacks the rows of `self` and `other`; the shorter cache is left-padded with masked columns so
    /// both end at the same column.
    pub fn concat(self, other: Self) -> Self {
        if self.batch == 0 {
            return other;
        }
        if other.batch == 0 {
            return self;
        }
        let len = self.len.max(other.len);
        let (a, b) = (self.left_pad(len).compact(), other.left_pad(len).compact());
        let layers = a
            .layers
            .into_iter()
            .zip(b.layers)
            .map(|(x, y)| match (x, y) {
                (Some(x), Some(y)) => Some(LayerKv {
                    k: Tensor::cat(vec![x.k, y.k], 0),
                    v: Tensor::cat(vec![x.v, y.v], 0),
                }),
                _ => None,
            })
            .collect();
        let mut valid = a.valid;
        valid.extend(b.valid);
        Self {
            layers,
            valid,
            batch: a.batch + b.batch,
            len,
        }
    }

    /// Drops leading columns that are padding in every row (left after finished rows were removed).
    pub fn trim_left(self) -> Self {
        if self.len == 0 || self.batch == 0 {
            return self;
        }
        let first_real = (0..self.len)
            .find(|&s| (0..self.batch).any(|b| self.valid[b * self.len + s]))
            .unwrap_or(self.len);
        if first_real == 0 {
            return self;
        }
        let len = self.len - first_real;
        let layers = self
            .layers
            .into_iter()
            .map(|layer| {
                layer.map(|kv| {
                    let [b, h, s, d] = kv.k.dims();
                    LayerKv {
                        k: kv.k.slice([0..b, 0..h, first_real..s, 0..d]),
                        v: kv.v.slice([0..b, 0..h, first_real..s, 0..d]),
                    }
                })
            })
            .collect();
        let valid = self
            .valid
            .chunks(self.len)
            .flat_map(|row| row[first_real..].iter().copied())
            .collect();
        Self {
            layers,
            valid,
            batch: self.batch,
            len,
        }
    }

    fn left_pad(self, len: usize) -> Self {
        let pad = len - self.len;
        if pad == 0 {
            return self;
        }
        let layers = self
            .layers
            .into_iter()
            .map(|layer| {
                layer.map(|kv| {
                    let kv = view(&kv, self.len);
                    let [b, h, _, d] = kv.k.dims();
                    let zeros = Tensor::<B, 4>::zeros([b, h, pad, d], &kv.k.device());
                    LayerKv {
                        k: Tensor::cat(vec![zeros.clone(), kv.k], 2),
                        v: Tensor::cat(vec![zeros, kv.v], 2),
                    }
                })
            })
            .collect();
        let valid = if self.len == 0 {
            vec![false; self.batch * len]
        } else {
            self.valid
                .chunks(self.len)
                .flat_map(|row| std::iter::repeat_n(false, pad).chain(row.iter().copied()))
                .collect()
        };
        Self {
            layers,
            valid,
            batch: self.batch,
            len,
        }
    }

    /// The same cache with buffers cut to the columns in use.
    fn compact(mut self) -> Self {
        for layer in self.layers.iter_mut().flatten() {
            *layer = view(layer, self.len);
        }
        self
    }

    fn device(&self) -> Option<B::Device> {
        self.layers.iter().flatten().next().map(|kv| kv.k.device())
    }
}

/// The first `len` columns of a layer's buffers.
fn view<B: Backend>(kv: &LayerKv<B>, len: usize) -> LayerKv<B> {
    let [b, h, _, d] = kv.k.dims();
    LayerKv {
        k: kv.k.clone().slice([0..b, 0..h, 0..len, 0..d]),
        v: kv.v.clone().slice([0..b, 0..h, 0..len, 0..d]),
    }
}

/// `buffer` (`[B, H, S, D]`) with `value` (`[B, H, T, D]`) written at columns `start..start + T`: in place
/// on flex (see [`laconic_kernels::flex::write_columns`]), by `slice_assign` elsewhere.
fn write_columns<B: Backend>(
    buffer: Tensor<B, 4>,
    start: usize,
    value: Tensor<B, 4>,
) -> Tensor<B, 4> {
    #[cfg(feature = "flex")]
    let (buffer, value) = match laconic_kernels::flex::write_columns(buffer, start, value) {
        Ok(written) => return written,
        Err(operands) => operands,
    };
    let [b, h, _, d] = buffer.dims();
    let end = start + value.dims()[2];
    buffer.slice_assign([0..b, 0..h, start..end, 0..d], value)
}

/// Buffers with room for at least `needed` columns, rounded up to a multiple of [`GROWTH`].
fn grow<B: Backend>(kv: LayerKv<B>, needed: usize) -> LayerKv<B> {
    let [b, h, cap, d] = kv.k.dims();
    let spare = needed.next_multiple_of(GROWTH) - cap;
    let zeros = Tensor::<B, 4>::zeros([b, h, spare, d], &kv.k.device());
    LayerKv {
        k: Tensor::cat(vec![kv.k, zeros.clone()], 2),
        v: Tensor::cat(vec![kv.v, zeros], 2),
    }
}
