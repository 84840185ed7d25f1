//! Memory-efficient attention (the FlashAttention-2 algorithm) written with burn tensor ops, so it runs
//! on every backend: the forward visits key blocks with an online softmax and keeps only the output and
//! each query row's log-sum-exp; the backward recomputes the scores tile by tile. No `[T, S]` tensor
//! exists at any point: memory is linear in the sequence length for a fixed tile size.
//!
//! Grouped-query attention reads each key/value head once per group: the `n_rep` query heads of a
//! group are folded into the query axis (`[B, H_kv, n_rep·T, D]`, repeat-major), and a query block takes
//! the same tokens from every head of the group, so one tile of the mask serves them all.
//!
//! ```text
//! forward, query block i:  m = -∞, l = 0, acc = 0
//!   for key block j:       s = q_i·k_jᵀ·scale (masked);  m' = max(m, rowmax s)
//!                          p = exp(s − m');  l = l·e^(m−m') + Σp;  acc = acc·e^(m−m') + p·v_j
//!   o_i = acc / l,  lse_i = m + ln l
//! backward, key block j:   for query block i:  p = exp(s − lse_i),  ∂v_j += pᵀ·∂o_i
//!                          ∂s = p ⊙ (∂o_i·v_jᵀ − rowsum(∂o_i ⊙ o_i));  ∂q_i += ∂s·k_j·scale;  ∂k_j += ∂sᵀ·q_i·scale
//! ```
//!
//! Public for its tests (`tests/flash.rs`, f64 in a process of its own); the model reaches it through
//! the attention layer, and under training through [`attention`], one autodiff node whose backward is
//! the tiled backward above (see `crate::fused`).
//!
//! Tiles that no query may see are skipped (half of a causal square), tiles that every query sees take
//! no mask, and the rest get a host-built boolean tile ([`AttentionMask::tile`]).

use std::ops::Range;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fused::{cast, float, on_autodiff, primitive, record, register, Ad};
use crate::mask::{AttentionMask, Tile};

/// The score given to masked pairs: finite, so a row whose keys in one tile are all masked gets no
/// NaN (its running max is corrected away once a visible key comes), yet `exp` of it is exactly 0.
const MASKED: f32 = -1.0e30;

/// Tile sizes of the blocked attention: queries and key columns per tile.
///
/// Peak attention memory per layer is a few `[B, H, query, key]` tiles plus `O(T)` row statistics,
/// whatever the sequence length. Larger tiles make larger matrix products (faster on CPUs and GPUs)
/// and skip less of a causal square. Defaults measured with `bench_update` (docs/performance.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttentionBlocks {
    /// Queries per tile (each repeated for the query heads of a key/value group). Default 256.
    pub query_block: usize,
    /// Key columns per tile. Default 512.
    pub key_block: usize,
}

impl Default for AttentionBlocks {
    fn default() -> Self {
        Self {
            query_block: 256,
            key_block: 512,
        }
    }
}

impl AttentionBlocks {
    /// Checks that both sizes are positive.
    ///
    /// # Errors
    /// [`Error::Input`] naming the zero knob.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("query_block", self.query_block),
            ("key_block", self.key_block),
        ] {
            if value == 0 {
                return Err(Error::Input(format!(
                    "attention `{name}` must be at least 1, got 0"
                )));
            }
        }
        Ok(())
    }

    fn query_ranges(&self, queries: usize) -> Vec<Range<usize>> {
        ranges(queries, self.query_block)
    }

    fn key_ranges(&self, keys: usize) -> Vec<Range<usize>> {
        ranges(keys, self.key_block)
    }
}

/// `0..len` cut into consecutive ranges of at most `size`.
fn ranges(len: usize, size: usize) -> Vec<Range<usize>> {
    (0..len.div_ceil(size))
        .map(|i| i * size..((i + 1) * size).min(len))
        .collect()
}

/// The shapes and settings one blocked attention call shares between its forward and backward.
#[derive(Debug, Clone)]
pub struct Blocked {
    /// Which keys each query sees.
    pub mask: AttentionMask,
    /// Query heads per key/value head.
    pub n_rep: usize,
    /// Score scale, `1/√D`.
    pub scale: f64,
    /// Tile sizes.
    pub blocks: AttentionBlocks,
}

impl Blocked {
    /// Query block `range` of a folded `[B, H_kv, n_rep·T, X]` tensor: `[B, H_kv, n_rep·|range|, X]`.
    fn query_block<B: Backend>(&self, x: &Tensor<B, 4>, range: &Range<usize>) -> Tensor<B, 4> {
        let [b, h, rows, d] = x.dims();
        let t = rows / self.n_rep;
        if range.len() == t {
            return x.clone();
        }
        if self.n_rep == 1 {
            return x.clone().slice([0..b, 0..h, range.clone(), 0..d]);
        }
        x.clone()
            .reshape([b, h, self.n_rep, t, d])
            .slice([0..b, 0..h, 0..self.n_rep, range.clone(), 0..d])
            .reshape([b, h, self.n_rep * range.len(), d])
    }

    /// The inverse of [`Blocked::query_block`] over all blocks in order.
    fn join_query_blocks<B: Backend>(&self, blocks: Vec<Tensor<B, 4>>) -> Tensor<B, 4> {
        if blocks.len() == 1 || self.n_rep == 1 {
            return Tensor::cat(blocks, 2);
        }
        let [b, h, _, d] = blocks[0].dims();
        let n_rep = self.n_rep;
        let unfolded = blocks
            .into_iter()
            .map(|x| {
                let rows = x.dims()[2];
                x.reshape([b, h, n_rep, rows / n_rep, d])
            })
            .collect();
        let joined = Tensor::cat(unfolded, 3);
        let t = joined.dims()[3];
        joined.reshape([b, h, n_rep * t, d])
    }

    /// The mask tile of query block `queries` against key block `keys`, broadcast to the score tile's
    /// `[B, H_kv, n_rep·Tq, Tk]`; `None` when hidden (skip the tile), `Some(None)` when fully visible.
    fn tile<B: Backend>(
        &self,
        queries: &Range<usize>,
        keys: &Range<usize>,
        kv_heads: usize,
        device: &B::Device,
    ) -> Option<Option<Tensor<B, 4, Bool>>> {
        match self
            .mask
            .tile::<B>(queries.clone(), keys.clone(), self.n_rep, device)
        {
            Tile::Hidden => None,
            Tile::Visible => Some(None),
            Tile::Partial(tile) => {
                let [b, _, rows, cols] = tile.dims();
                Some(Some(tile.expand([b, kv_heads, rows, cols])))
            }
        }
    }

    /// Scores of one tile, masked: `q_i·k_jᵀ` with `q_i` already scaled.
    fn scores<B: Backend>(
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        tile: Option<Tensor<B, 4, Bool>>,
    ) -> Tensor<B, 4> {
        let scores = q.matmul(k.swap_dims(2, 3));
        match tile {
            Some(mask) => scores.mask_fill(mask, MASKED),
            None => scores,
        }
    }
}

/// Key columns `range` of `[B, H_kv, S, D]`.
fn key_block<B: Backend>(x: &Tensor<B, 4>, range: &Range<usize>) -> Tensor<B, 4> {
    let [b, h, s, d] = x.dims();
    if range.len() == s {
        return x.clone();
    }
    x.clone().slice([0..b, 0..h, range.clone(), 0..d])
}

/// The running state of one query block's online softmax.
struct Online<B: Backend> {
    /// Row maxima `[.., rows, 1]`.
    max: Tensor<B, 4>,
    /// Row sums of `exp(s − max)`.
    sum: Tensor<B, 4>,
    /// `Σ exp(s − max)·v`.
    acc: Tensor<B, 4>,
}

impl<B: Backend> Online<B> {
    fn first(scores: Tensor<B, 4>, v: Tensor<B, 4>) -> Self {
        let max = scores.clone().max_dim(3);
        let p = (scores - max.clone()).exp();
        Self {
            sum: p.clone().sum_dim(3),
            acc: p.matmul(v),
            max,
        }
    }

    fn update(self, scores: Tensor<B, 4>, v: Tensor<B, 4>) -> Self {
        let max = self.max.clone().max_pair(scores.clone().max_dim(3));
        let correction = (self.max - max.clone()).exp();
        let p = (scores - max.clone()).exp();
        Self {
            sum: self.sum * correction.clone() + p.clone().sum_dim(3),
            acc: self.acc * correction + p.matmul(v),
            max,
        }
    }

    /// The block's output and log-sum-exp `[.., rows, 1]`.
    fn finish(self) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let lse = self.max + self.sum.clone().log();
        (self.acc / self.sum, lse)
    }
}

/// Blocked attention forward: the output and each query row's log-sum-exp.
///
/// # Shapes
/// - `q`: `[B, H_kv, n_rep·T, D]` (folded, repeat-major), `k`, `v`: `[B, H_kv, S + T, D]`
/// - returns: output `[B, H_kv, n_rep·T, D]`, log-sum-exp `[B, H_kv, n_rep·T, 1]`
pub fn forward<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    attn: &Blocked,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let device = q.device();
    let kv_heads = k.dims()[1];
    let q = q * attn.scale;
    let key_ranges = attn.blocks.key_ranges(attn.mask.keys());
    let (mut outputs, mut lses) = (Vec::new(), Vec::new());
    for queries in attn.blocks.query_ranges(attn.mask.queries()) {
        let q_i = attn.query_block(&q, &queries);
        let mut state: Option<Online<B>> = None;
        for keys in &key_ranges {
            let Some(tile) = attn.tile::<B>(&queries, keys, kv_heads, &device) else {
                continue;
            };
            let scores = Blocked::scores(q_i.clone(), key_block(&k, keys), tile);
            let v_j = key_block(&v, keys);
            state = Some(match state {
                None => Online::first(scores, v_j),
                Some(state) => state.update(scores, v_j),
            });
        }
        let (out, lse) = state.expect("every query sees at least itself").finish();
        outputs.push(out);
        lses.push(lse);
    }
    (
        attn.join_query_blocks(outputs),
        attn.join_query_blocks(lses),
    )
}

/// Blocked attention backward: gradients of `q`, `k` and `v` from the output's gradient, recomputing
/// each tile's probabilities from the forward's log-sum-exp.
///
/// # Shapes
/// - `q`, `out`, `grad`: `[B, H_kv, n_rep·T, D]`, `lse`: `[B, H_kv, n_rep·T, 1]`, `k`, `v`:
///   `[B, H_kv, S + T, D]`
/// - returns: `∂q` like `q`, `∂k`, `∂v` like `k`
#[allow(clippy::too_many_arguments)]
pub fn backward<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    out: Tensor<B, 4>,
    lse: Tensor<B, 4>,
    grad: Tensor<B, 4>,
    attn: &Blocked,
) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
    let device = q.device();
    let kv_heads = k.dims()[1];
    let q = q * attn.scale;
    // rowsum(∂o ⊙ o): the softmax backward's correction term, [B, H_kv, n_rep·T, 1].
    let delta = (grad.clone() * out).sum_dim(3);
    let query_ranges = attn.blocks.query_ranges(attn.mask.queries());
    let split = |x: &Tensor<B, 4>| -> Vec<Tensor<B, 4>> {
        query_ranges
            .iter()
            .map(|range| attn.query_block(x, range))
            .collect()
    };
    let (q_blocks, grad_blocks) = (split(&q), split(&grad));
    let (lse_blocks, delta_blocks) = (split(&lse), split(&delta));
    let mut grad_q: Vec<Option<Tensor<B, 4>>> = vec![None; query_ranges.len()];
    let (mut grad_k, mut grad_v) = (Vec::new(), Vec::new());
    for keys in attn.blocks.key_ranges(attn.mask.keys()) {
        let (k_j, v_j) = (key_block(&k, &keys), key_block(&v, &keys));
        let (mut grad_k_j, mut grad_v_j) = (None, None);
        for (i, queries) in query_ranges.iter().enumerate() {
            let Some(tile) = attn.tile::<B>(queries, &keys, kv_heads, &device) else {
                continue;
            };
            let scores = Blocked::scores(q_blocks[i].clone(), k_j.clone(), tile);
            let p = (scores - lse_blocks[i].clone()).exp();
            let grad_p = grad_blocks[i].clone().matmul(v_j.clone().swap_dims(2, 3));
            let grad_s = p.clone() * (grad_p - delta_blocks[i].clone());
            accumulate(
                &mut grad_v_j,
                p.swap_dims(2, 3).matmul(grad_blocks[i].clone()),
            );
            accumulate(&mut grad_q[i], grad_s.clone().matmul(k_j.clone()));
            accumulate(
                &mut grad_k_j,
                grad_s.swap_dims(2, 3).matmul(q_blocks[i].clone()),
            );
        }
        let zeros = || k_j.zeros_like();
        grad_k.push(grad_k_j.unwrap_or_else(zeros));
        grad_v.push(grad_v_j.unwrap_or_else(zeros));
    }
    let grad_q = grad_q
        .into_iter()
        .zip(&q_blocks)
        .map(|(g, q_i)| g.unwrap_or_else(|| q_i.zeros_like()))
        .collect();
    (
        attn.join_query_blocks(grad_q) * attn.scale,
        // q was scaled before the tiles: ∂k = ∂sᵀ·(q·scale) already.
        Tensor::cat(grad_k, 2),
        Tensor::cat(grad_v, 2),
    )
}

/// `total += term` (`total = term` the first time).
fn accumulate<B: Backend>(total: &mut Option<Tensor<B, 4>>, term: Tensor<B, 4>) {
    *total = Some(match total.take() {
        Some(sum) => sum + term,
        None => term,
    });
}

// Blocked (memory-efficient) attention as one autodiff node: the forward keeps q, k, v, the
// output and the per-row log-sum-exp, and the backward recomputes the scores tile by tile
// ([`crate::flash`]).

/// `softmax(q·kᵀ·scale, masked)·v` by blocks: one fused node under autodiff (see
/// [`crate::fused`]), the blocked forward otherwise.
///
/// # Shapes
/// - `q`: `[B, H_kv, n_rep·T, D]` (folded, repeat-major), `k`, `v`: `[B, H_kv, S + T, D]` →
///   `[B, H_kv, n_rep·T, D]`
pub(crate) fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    attn: &Blocked,
) -> Tensor<B, 4> {
    on_autodiff!(B, I, C => cast(attention_node::<I, C>(cast(q), cast(k), cast(v), attn)));
    forward(q, k, v, attn).0
}

/// What the backward needs: the inputs, the output and the per-row log-sum-exp (all `O(T)`).
#[derive(Debug, Clone)]
struct AttentionState<B: Backend> {
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    output: FloatTensor<B>,
    lse: FloatTensor<B>,
    attn: Blocked,
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: Backend> Backward<B, 3> for AttentionBackward {
    type State = AttentionState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = float::<B, 4>(grads.consume::<B>(&ops.node));
        let state = ops.state;
        let (grad_q, grad_k, grad_v) = backward(
            float::<B, 4>(state.q),
            float::<B, 4>(state.k),
            float::<B, 4>(state.v),
            float::<B, 4>(state.output),
            float::<B, 4>(state.lse),
            grad,
            &state.attn,
        );
        register(grads, node_q, Some(grad_q));
        register(grads, node_k, Some(grad_k));
        register(grads, node_v, Some(grad_v));
    }
}

/// The fused node on `Autodiff<I, C>`.
fn attention_node<I: Backend, C: CheckpointStrategy>(
    q: Tensor<Ad<I, C>, 4>,
    k: Tensor<Ad<I, C>, 4>,
    v: Tensor<Ad<I, C>, 4>,
    attn: &Blocked,
) -> Tensor<Ad<I, C>, 4> {
    let (q, k, v) = (
        q.into_primitive().tensor(),
        k.into_primitive().tensor(),
        v.into_primitive().tensor(),
    );
    let (output, lse) = forward(
        float::<I, 4>(q.primitive.clone()),
        float::<I, 4>(k.primitive.clone()),
        float::<I, 4>(v.primitive.clone()),
        attn,
    );
    let output = primitive(output);
    record!(
        C,
        AttentionBackward,
        [q, k, v],
        output.clone(),
        AttentionState {
            q: q.primitive,
            k: k.primitive,
            v: v.primitive,
            output,
            lse: primitive(lse),
            attn: attn.clone(),
        }
    )
}

#[cfg(test)]
mod node_tests {
    use super::*;
    use crate::flash::AttentionBlocks;

    use crate::fused::tests::random;
    use crate::mask::AttentionMask;
    use crate::seed::Stream;
    use crate::TestBackend;

    /// Values and gradients of the fused node equal softmax attention computed in f64 on the host, with
    /// causal and padding masks, two query heads per key/value head, and tiles that do not divide the
    /// sequence; twenty seeds on each backend.
    ///
    /// The reference is not autodiff through burn's f32 composition: burn-ndarray 0.21 takes `recip` —
    /// and so the backward of every division, softmax's included — from the CPU's approximate
    /// reciprocal (`rcp_ps`: 12 bits on AVX2, 14 on AVX-512), so that composition's gradients are off
    /// by up to 4·10⁻⁴ on AVX2 machines (a query that sees only itself gets a non-zero gradient).
    #[test]
    fn fused_node_matches_f64_attention() {
        for seed in 0..20 {
            check::<TestBackend>(seed);
            #[cfg(feature = "flex")]
            check::<burn::backend::Flex>(seed);
        }
    }

    /// The attention problem of the test: `[b, h_kv, n_rep, t, d]` with the second row's last two
    /// tokens padding, in tiles of 3 queries by 2 keys.
    fn problem() -> (Blocked, [usize; 5]) {
        let (b, h_kv, n_rep, t, d) = (2, 2, 2, 7, 4);
        let valid: Vec<bool> = (0..b * t).map(|i| i < t || i % t < 5).collect();
        let attn = Blocked {
            mask: AttentionMask::new(valid, b, 0, t),
            n_rep,
            scale: 0.5,
            blocks: AttentionBlocks {
                query_block: 3,
                key_block: 2,
            },
        };
        (attn, [b, h_kv, n_rep, t, d])
    }

    fn check<I: Backend>(seed: u64) {
        let (attn, [b, h_kv, n_rep, t, d]) = problem();
        let mut stream = Stream::new(seed);
        let q = random::<I, 4>(&mut stream, [b, h_kv, n_rep * t, d], 1.0);
        let k = random::<I, 4>(&mut stream, [b, h_kv, t, d], 1.0);
        let v = random::<I, 4>(&mut stream, [b, h_kv, t, d], 1.0);
        let upstream = random::<I, 4>(&mut stream, [b, h_kv, n_rep * t, d], 1.0);
        let track = |x: &Tensor<I, 4>| Tensor::<Ad<I>, 4>::from_inner(x.clone()).require_grad();
        let (tq, tk, tv) = (track(&q), track(&k), track(&v));
        let y = attention_node(tq.clone(), tk.clone(), tv.clone(), &attn);
        let grads = (y.clone() * Tensor::from_inner(upstream.clone()))
            .sum()
            .backward();
        let host =
            |x: Tensor<I, 4>| -> Vec<f64> { x.into_data().convert::<f64>().to_vec().unwrap() };
        let inputs = [&q, &k, &v, &upstream].map(|x| host(x.clone()));
        let truth = reference(&attn, [b, h_kv, n_rep, t, d], inputs);
        let fused = [
            y.inner(),
            tq.grad(&grads).unwrap(),
            tk.grad(&grads).unwrap(),
            tv.grad(&grads).unwrap(),
        ];
        for ((name, got), truth) in ["output", "∂q", "∂k", "∂v"]
            .into_iter()
            .zip(fused.map(host))
            .zip(truth)
        {
            let scale = truth.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            let (at, worst) = got
                .iter()
                .zip(&truth)
                .map(|(a, b)| (a - b).abs())
                .enumerate()
                .fold((0, 0.0), |m, (i, e)| if e > m.1 { (i, e) } else { m });
            assert!(
                worst <= 1e-5 * scale,
                "{} seed {seed}: {name}[{at}] is {} against {} in f64",
                std::any::type_name::<I>(),
                got[at],
                truth[at]
            );
        }
    }

    /// `softmax(q·kᵀ·scale, masked)·v` and its gradients against `upstream`, row by row in f64, for
    /// folded `[B, H_kv, n_rep·T, D]` queries: `[output, ∂q, ∂k, ∂v]` in the inputs' layouts.
    fn reference(
        attn: &Blocked,
        [batch, heads, n_rep, t, d]: [usize; 5],
        [q, k, v, upstream]: [Vec<f64>; 4],
    ) -> [Vec<f64>; 4] {
        let (mut out, mut dq) = (vec![0.0; q.len()], vec![0.0; q.len()]);
        let (mut dk, mut dv) = (vec![0.0; k.len()], vec![0.0; v.len()]);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        for bh in 0..batch * heads {
            let row_of = |r: usize| (bh * n_rep * t + r) * d..(bh * n_rep * t + r + 1) * d;
            let key_of = |j: usize| (bh * t + j) * d..(bh * t + j + 1) * d;
            for r in 0..n_rep * t {
                let query = r % t;
                let seen: Vec<usize> = (0..t)
                    .filter(|&j| !attn.mask.masked(bh / heads, query, j))
                    .collect();
                let scores: Vec<f64> = seen
                    .iter()
                    .map(|&j| dot(&q[row_of(r)], &k[key_of(j)]) * attn.scale)
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = exps.iter().sum();
                let p: Vec<f64> = exps.iter().map(|e| e / total).collect();
                let g = &upstream[row_of(r)];
                let dp: Vec<f64> = seen.iter().map(|&j| dot(g, &v[key_of(j)])).collect();
                let mean = dot(&p, &dp);
                for (n, &j) in seen.iter().enumerate() {
                    let ds = p[n] * (dp[n] - mean) * attn.scale;
                    for c in 0..d {
                        out[row_of(r).start + c] += p[n] * v[key_of(j).start + c];
                        dv[key_of(j).start + c] += p[n] * g[c];
                        dq[row_of(r).start + c] += ds * k[key_of(j).start + c];
                        dk[key_of(j).start + c] += ds * q[row_of(r).start + c];
                    }
                }
            }
        }
        [out, dq, dk, dv]
    }
}
