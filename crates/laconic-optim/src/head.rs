//! The LM head + log-softmax (+ entropy) as one custom autodiff op whose backward recomputes the
//! logits chunk by chunk.
//!
//! With plain autodiff, chunking the head does not bound memory: every chunk's `[c, V]` softmax is
//! kept for backward, i.e. `n_tok × V` floats in all (0.6 MB per token at V = 151,936). This op
//! saves only its inputs (`hidden` `[n, d]`, the head weight `W` `[V, d]`, the targets) and, in
//! backward, recomputes `z = h·Wᵀ/τ` for one chunk at a time:
//!
//! - `∂logp_t/∂z = onehot(y_t) − p`, `∂H_t/∂z = −p ⊙ (log p + H_t)` (see [`crate::entropy`]);
//! - `g_z = g_logp·(onehot − p) + g_H·∂H/∂z`, scaled by `1/τ`;
//! - `∂h = g_z·W`, `∂W += g_zᵀ·h` (accumulated over chunks).
//!
//! Peak memory of the head is therefore a few `[chunk, V]` blocks in forward and backward, plus
//! `∂W` (`[V, d]`, the size of the gradient anyway). The price is one extra `h·Wᵀ` per token in
//! backward (about 1/3 more head FLOPs). Implemented on burn 0.21's `Backward` trait for
//! `Autodiff<B, C>`, so it runs on every backend the model does.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::TensorPrimitive;

use crate::logprob::{head_logprobs_keeping, scale};
use laconic_kernels::logprob_entropy_grad;

/// An autodiff backend with the memory-bounded LM-head log-prob op (every `Autodiff<B, C>` is one).
pub trait LogprobBackend: AutodiffBackend {
    /// Per-token log-probs and entropies of `softmax(h·Wᵀ/τ)`, differentiable with respect to
    /// `hidden` and `weight`, computed and differentiated `chunk_size` tokens at a time. With
    /// `entropy_grad = false` the entropies are values only: a gradient reaching them is ignored (the
    /// updater passes `entropy_coeff != 0`), which saves a third of the backward's elementwise work.
    ///
    /// # Shapes
    /// - `hidden`: `[n, d]`, `weight`: `[V, d]`, `targets`: `[n]`
    /// - returns: `[n, 2]`: column 0 the log-probs, column 1 the entropies
    fn head_logprobs_op(
        hidden: Tensor<Self, 2>,
        weight: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        options: HeadOptions,
    ) -> Tensor<Self, 2>;
}

/// How the head op computes and differentiates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadOptions {
    /// Sampling temperature `τ`.
    pub temperature: f32,
    /// Tokens per chunk.
    pub chunk_size: usize,
    /// Whether gradients flow through the entropy output.
    pub entropy_grad: bool,
    /// The forward keeps its `[n, V]` f32 logits for the backward (which then skips recomputing them)
    /// when they take at most this many bytes; above it the backward recomputes them chunk by chunk.
    pub keep_logits_bytes: usize,
}

/// Log-probs and entropies through [`LogprobBackend::head_logprobs_op`], split into two `[n]` tensors.
pub fn head_logprobs_grad<B: LogprobBackend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    options: HeadOptions,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let n = hidden.dims()[0];
    let both = B::head_logprobs_op(hidden, weight, targets, options);
    let logp = both.clone().slice([0..n, 0..1]).reshape([n]);
    let entropy = both.slice([0..n, 1..2]).reshape([n]);
    (logp, entropy)
}

/// What backward needs: the op's inputs and output, and the logits chunks when they were kept.
#[derive(Debug, Clone)]
struct HeadState<B: Backend> {
    hidden: FloatTensor<B>,
    weight: FloatTensor<B>,
    targets: IntTensor<B>,
    options: HeadOptions,
    /// `[n, 2]`: the forward's log-probs and entropies.
    output: FloatTensor<B>,
    /// The forward's `[c, V]` logits, chunk by chunk (empty when recomputed).
    logits: Vec<FloatTensor<B>>,
}

#[derive(Debug)]
struct HeadBackward;

impl<B: Backend> Backward<B, 2> for HeadBackward {
    type State = HeadState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_hidden, node_weight] = ops.parents;
        let grad = float::<B, 2>(grads.consume::<B>(&ops.node));
        let state = ops.state;
        let hidden = float::<B, 2>(state.hidden);
        let weight = float::<B, 2>(state.weight);
        let targets = Tensor::<B, 1, Int>::from_primitive(state.targets);
        let kept = Kept {
            output: float(state.output),
            logits: state.logits.into_iter().map(float).collect(),
        };
        let (grad_hidden, grad_weight) = head_backward(
            hidden,
            weight,
            targets,
            grad,
            kept,
            &state.options,
            (node_hidden.is_some(), node_weight.is_some()),
        );
        if let (Some(node), Some(g)) = (node_hidden, grad_hidden) {
            grads.register::<B>(node.id, g.into_primitive().tensor());
        }
        if let (Some(node), Some(g)) = (node_weight, grad_weight) {
            grads.register::<B>(node.id, g.into_primitive().tensor());
        }
    }
}

fn float<B: Backend, const D: usize>(primitive: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// What the forward leaves for [`head_backward`].
struct Kept<B: Backend> {
    /// `[n, 2]`: log-probs and entropies.
    output: Tensor<B, 2>,
    /// Each chunk's `[c, V]` logits, or none (then recomputed).
    logits: Vec<Tensor<B, 2>>,
}

/// Backward of the head, chunk by chunk: returns `(∂hidden, ∂W)` for the requested ones. The
/// temperature is applied to the `[c, d]` hidden states (`z = (h/τ)·Wᵀ`) and to `∂h`, never to a
/// `[c, V]` block; the softmax is exponentiated once per chunk.
///
/// # Shapes
/// - `hidden`: `[n, d]`, `weight`: `[V, d]`, `targets`: `[n]`, `grad`: `[n, 2]` (∂L/∂logp, ∂L/∂H)
fn head_backward<B: Backend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    grad: Tensor<B, 2>,
    kept: Kept<B>,
    options: &HeadOptions,
    (want_hidden, want_weight): (bool, bool),
) -> (Option<Tensor<B, 2>>, Option<Tensor<B, 2>>) {
    let [n, d] = hidden.dims();
    let hidden = scale(hidden, options.temperature);
    let weight_t = weight.clone().transpose();
    let reused = !kept.logits.is_empty();
    let mut kept_logits = kept.logits.into_iter();
    let mut grad_hidden = Vec::new();
    let mut grad_weight: Option<Tensor<B, 2>> = None;
    let step = options.chunk_size.max(1);
    for start in (0..n).step_by(step) {
        let end = (start + step).min(n);
        // 1. This chunk's logits, [c, V]: kept by the forward, or recomputed.
        let h = hidden.clone().slice([start..end, 0..d]);
        let logits = kept_logits
            .next()
            .unwrap_or_else(|| h.clone().matmul(weight_t.clone()));
        // 2–3. ∂L/∂z from the softmax and the upstream gradients; with kept logits the forward's
        // rows spare the recomputation of each row's log-sum-exp.
        let grad_logits = logprob_entropy_grad(
            logits,
            targets.clone().narrow(0, start, end - start),
            grad.clone().slice([start..end, 0..2]),
            options.entropy_grad,
            reused.then(|| kept.output.clone().slice([start..end, 0..2])),
        );
        // 4. ∂h = (∂z·W)/τ ([c, d]); ∂W += ∂zᵀ·(h/τ) ([V, d]).
        if want_hidden {
            grad_hidden.push(scale(
                grad_logits.clone().matmul(weight.clone()),
                options.temperature,
            ));
        }
        if want_weight {
            let part = grad_logits.transpose().matmul(h);
            grad_weight = Some(match grad_weight {
                Some(acc) => acc + part,
                None => part,
            });
        }
    }
    let grad_hidden = if want_hidden {
        Some(if grad_hidden.is_empty() {
            hidden.zeros_like()
        } else {
            Tensor::cat(grad_hidden, 0)
        })
    } else {
        None
    };
    let grad_weight = if want_weight {
        Some(grad_weight.unwrap_or_else(|| weight.zeros_like()))
    } else {
        None
    };
    (grad_hidden, grad_weight)
}

impl<B: Backend, C: CheckpointStrategy> LogprobBackend for Autodiff<B, C> {
    fn head_logprobs_op(
        hidden: Tensor<Self, 2>,
        weight: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        options: HeadOptions,
    ) -> Tensor<Self, 2> {
        let [n, _] = hidden.dims();
        let [vocab, _] = weight.dims();
        let hidden = hidden.into_primitive().tensor();
        let weight = weight.into_primitive().tensor();
        let targets: IntTensor<B> = targets.into_primitive();
        let prep = HeadBackward
            .prepare::<C>([hidden.node.clone(), weight.node.clone()])
            .compute_bound()
            .stateful();
        let tracked = matches!(prep, OpsKind::Tracked(_));
        let keep_logits = tracked
            && n.saturating_mul(vocab)
                .saturating_mul(std::mem::size_of::<f32>())
                <= options.keep_logits_bytes;
        // Forward on the inner backend, chunked: [n, 2].
        let (logp, entropy, logits) = head_logprobs_keeping(
            float::<B, 2>(hidden.primitive.clone()),
            float::<B, 2>(weight.primitive.clone()),
            Tensor::<B, 1, Int>::from_primitive(targets.clone()),
            options.temperature,
            options.chunk_size,
            keep_logits,
        );
        let output = Tensor::cat(vec![logp.reshape([n, 1]), entropy.reshape([n, 1])], 1)
            .into_primitive()
            .tensor();
        let output = match prep {
            OpsKind::Tracked(prep) => prep.finish(
                HeadState {
                    hidden: hidden.primitive,
                    weight: weight.primitive,
                    targets,
                    options,
                    output: output.clone(),
                    logits: logits
                        .into_iter()
                        .map(|z| z.into_primitive().tensor())
                        .collect(),
                },
                output,
            ),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        Tensor::from_primitive(TensorPrimitive::Float(output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logprob::logprobs_from_logits;
    use crate::TestBackend;

    type AD = Autodiff<TestBackend>;

    /// Gradients of `Σ a·logp + b·H` through the custom op equal plain autodiff on full logits, with
    /// the logits recomputed and kept, on the test backend and on flex (its row kernels).
    #[test]
    fn custom_op_gradients_match_plain_autodiff() {
        for keep_logits_bytes in [0, usize::MAX] {
            check::<TestBackend>(keep_logits_bytes);
            check::<burn::backend::Flex>(keep_logits_bytes);
        }
    }

    fn check<I: Backend>(keep_logits_bytes: usize) {
        let device = Default::default();
        let (n, d, v, tau) = (7, 5, 11, 0.8);
        let mut stream = laconic_model::seed::Stream::new(keep_logits_bytes as u64 % 7);
        let hidden = laconic_model::normal_tensor::<I, 2>(&mut stream, [n, d], 1.0, &device);
        let weight = laconic_model::normal_tensor::<I, 2>(&mut stream, [v, d], 1.0, &device);
        let targets = Tensor::<I, 1, Int>::from_ints([3, 0, 10, 5, 5, 1, 9], &device);
        let a =
            Tensor::<Autodiff<I>, 1>::from_floats([0.3, -1.0, 0.5, 2.0, -0.2, 0.1, 0.7], &device);
        let b =
            Tensor::<Autodiff<I>, 1>::from_floats([-0.4, 0.2, 1.0, 0.0, 0.6, -0.9, 0.3], &device);

        let run = |custom: bool| {
            let h = Tensor::<Autodiff<I>, 2>::from_inner(hidden.clone()).require_grad();
            let w = Tensor::<Autodiff<I>, 2>::from_inner(weight.clone()).require_grad();
            let t = Tensor::<Autodiff<I>, 1, Int>::from_inner(targets.clone());
            let (logp, entropy) = if custom {
                let options = HeadOptions {
                    temperature: tau,
                    chunk_size: 3,
                    entropy_grad: true,
                    keep_logits_bytes,
                };
                head_logprobs_grad(h.clone(), w.clone(), t, options)
            } else {
                logprobs_from_logits(h.clone().matmul(w.clone().transpose()), t, tau)
            };
            let loss = (logp.clone() * a.clone()).sum() + (entropy.clone() * b.clone()).sum();
            let grads = loss.backward();
            let gh = h.grad(&grads).unwrap();
            let gw = w.grad(&grads).unwrap();
            (logp.inner(), entropy.inner(), gh, gw)
        };
        let (lp0, h0, gh0, gw0) = run(false);
        let (lp1, h1, gh1, gw1) = run(true);
        for (x, y) in [(lp0, lp1), (h0, h1)] {
            x.into_data()
                .assert_approx_eq::<f32>(&y.into_data(), burn::tensor::Tolerance::absolute(1e-5));
        }
        gh0.into_data()
            .assert_approx_eq::<f32>(&gh1.into_data(), burn::tensor::Tolerance::absolute(1e-5));
        gw0.into_data()
            .assert_approx_eq::<f32>(&gw1.into_data(), burn::tensor::Tolerance::absolute(1e-5));
    }

    #[test]
    fn untracked_inputs_give_values_without_a_graph() {
        let device = Default::default();
        let h = Tensor::<AD, 2>::ones([2, 3], &device);
        let w = Tensor::<AD, 2>::ones([4, 3], &device);
        let t = Tensor::<AD, 1, Int>::from_ints([0, 3], &device);
        let options = HeadOptions {
            temperature: 1.0,
            chunk_size: 8,
            entropy_grad: false,
            keep_logits_bytes: 0,
        };
        let (logp, entropy) = head_logprobs_grad(h, w, t, options);
        let lp = logp.into_data().into_vec::<f32>().unwrap();
        assert!((lp[0] + 4f32.ln()).abs() < 1e-6);
        let h = entropy.into_data().into_vec::<f32>().unwrap();
        assert!((h[1] - 4f32.ln()).abs() < 1e-6);
    }
}
