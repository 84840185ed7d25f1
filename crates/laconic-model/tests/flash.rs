//! The blocked attention against the plain composition `softmax(q·kᵀ·s, masked)·v` with its dense mask,
//! values and gradients (autodiff through the composition), in f32 and f64.

//! (Its own test binary: ndarray's f64 and f32 tensors in one process share a default float type.)

use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;
use burn::tensor::Tolerance;
use laconic_model::flash::{backward, forward, Blocked};
use laconic_model::seed::Stream;
use laconic_model::{normal_tensor, AttentionBlocks, AttentionMask};

/// One attention problem: rows with their validity over `past + queries` columns.
struct Case {
    valid: Vec<Vec<bool>>,
    past: usize,
    queries: usize,
    kv_heads: usize,
    n_rep: usize,
    head_dim: usize,
    blocks: AttentionBlocks,
}

impl Case {
    fn blocked(&self) -> Blocked {
        let batch = self.valid.len();
        let valid = self.valid.concat();
        Blocked {
            mask: AttentionMask::new(valid, batch, self.past, self.queries),
            n_rep: self.n_rep,
            scale: 1.0 / (self.head_dim as f64).sqrt(),
            blocks: self.blocks,
        }
    }

    fn shapes(&self) -> ([usize; 4], [usize; 4]) {
        let b = self.valid.len();
        let keys = self.past + self.queries;
        (
            [b, self.kv_heads, self.n_rep * self.queries, self.head_dim],
            [b, self.kv_heads, keys, self.head_dim],
        )
    }
}

/// Normal draws of `shapes` from one seeded stream, so every run checks the same numbers.
fn random<B: Backend>(seed: u64, shapes: [[usize; 4]; 4]) -> [Tensor<B, 4>; 4] {
    let mut stream = Stream::new(seed);
    shapes.map(|shape| normal_tensor(&mut stream, shape, 1.0, &Default::default()))
}

/// Output and gradients of q, k, v: blocked (forward + hand-written backward) and by autodiff through
/// the composition.
fn both_on<I: Backend>(
    case: &Case,
    [q, k, v, upstream]: [Tensor<I, 4>; 4],
) -> [[Tensor<I, 4>; 4]; 2] {
    let attn = case.blocked();

    let (out, lse) = forward(q.clone(), k.clone(), v.clone(), &attn);
    let (gq, gk, gv) = backward(
        q.clone(),
        k.clone(),
        v.clone(),
        out.clone(),
        lse,
        upstream.clone(),
        &attn,
    );

    let track = |x: &Tensor<I, 4>| Tensor::<Autodiff<I>, 4>::from_inner(x.clone()).require_grad();
    let (tq, tk, tv) = (track(&q), track(&k), track(&v));
    let mask = attn
        .mask
        .dense::<Autodiff<I>>([case.kv_heads, case.n_rep], &Default::default());
    let scores = tq.clone().matmul(tk.clone().swap_dims(2, 3)) * attn.scale;
    let reference = burn::tensor::activation::softmax(scores.mask_fill(mask, f32::NEG_INFINITY), 3)
        .matmul(tv.clone());
    let grads = (reference.clone() * Tensor::from_inner(upstream))
        .sum()
        .backward();
    [
        [out, gq, gk, gv],
        [
            reference.inner(),
            tq.grad(&grads).unwrap(),
            tk.grad(&grads).unwrap(),
            tv.grad(&grads).unwrap(),
        ],
    ]
}

/// f64: ours against autodiff through the composition, to 1e-10. f32: ours on the same inputs rounded
/// to f32, against the f64 result, to 1e-5 of each tensor's largest entry.
fn check(case: &Case) {
    let (q_shape, k_shape) = case.shapes();
    let inputs = random::<NdArray<f64>>(case.queries as u64, [q_shape, k_shape, k_shape, q_shape]);
    let single = inputs.clone().map(|x| {
        Tensor::<NdArray, 4>::from_data(x.into_data().convert::<f32>(), &Default::default())
    });
    let [ours, reference] = both_on(case, inputs);
    for (a, b) in ours.iter().zip(reference) {
        a.to_data()
            .assert_approx_eq::<f64>(&b.into_data(), Tolerance::rel_abs(1e-10, 1e-10));
    }
    let [ours_f32, _] = both_on(case, single);
    for (a, truth) in ours_f32.into_iter().zip(ours) {
        let truth = truth.into_data().to_vec::<f64>().unwrap();
        let a = a.into_data().convert::<f64>().to_vec::<f64>().unwrap();
        let scale = truth.iter().fold(1e-30, |m: f64, x| m.max(x.abs()));
        let worst = a
            .iter()
            .zip(&truth)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-5 * scale.max(1.0),
            "f32 error {worst:e} at scale {scale:e}"
        );
    }
}

fn blocks(query_block: usize, key_block: usize) -> AttentionBlocks {
    AttentionBlocks {
        query_block,
        key_block,
    }
}

/// `len` real tokens right-padded (`right`) or left-padded to `width`.
fn row(len: usize, width: usize, right: bool) -> Vec<bool> {
    (0..width)
        .map(|s| if right { s < len } else { s >= width - len })
        .collect()
}

#[test]
fn causal_gqa_with_left_and_right_padding_in_uneven_blocks() {
    for right in [true, false] {
        let case = Case {
            valid: vec![row(13, 13, right), row(9, 13, right), row(4, 13, right)],
            past: 0,
            queries: 13,
            kv_heads: 2,
            n_rep: 2,
            head_dim: 8,
            blocks: blocks(5, 4),
        };
        check(&case);
    }
}

#[test]
fn one_block_and_one_query_and_cached_columns() {
    // One tile covers everything; T = 1; queries after cached columns (prefill onto a cache).
    for (past, queries, block) in [
        (0, 7, blocks(64, 64)),
        (0, 1, blocks(3, 3)),
        (6, 5, blocks(2, 3)),
    ] {
        let width = past + queries;
        let case = Case {
            valid: vec![row(width, width, false), row(width - 2, width, false)],
            past,
            queries,
            kv_heads: 1,
            n_rep: 3,
            head_dim: 4,
            blocks: block,
        };
        check(&case);
    }
}

#[test]
fn thousands_of_tokens() {
    let case = Case {
        valid: vec![row(2000, 2048, true)],
        past: 0,
        queries: 2048,
        kv_heads: 1,
        n_rep: 2,
        head_dim: 8,
        blocks: blocks(384, 500),
    };
    check(&case);
}
