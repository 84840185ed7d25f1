//! The sparse mixture-of-experts block of Qwen3-MoE, with grouped expert dispatch, and the router
//! load-balancing loss.
//!
//! Each token is sent to `k` of `E` SwiGLU experts chosen by a linear router. Instead of running every
//! expert on every token (`E/k` times the work), the tokens are grouped by expert: one gather puts the
//! `N·k` (token, expert) pairs in expert order, each expert runs one matrix product over its contiguous
//! group, and one scatter-add sums the weighted results back per token. The routing decisions (which
//! experts) are made on the host from the router probabilities (`N × E` values); the routing *weights*
//! are gathered from those probabilities with tensor ops, so gradients reach the router and every expert
//! that saw a token.

use std::collections::BTreeMap;

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::IndexingUpdateOp;

use crate::config::DecoderConfig;
use crate::linear::Linear;
use crate::mlp::Mlp;

/// Qwen3-MoE's sparse block (`Qwen3MoeSparseMoeBlock`):
/// `p = softmax(x·W_gᵀ)`, `S = top-k(p)`, `w_e = p_e` (or `p_e / Σ_{j∈S} p_j` with `norm_topk_prob`),
/// `y = Σ_{e∈S} w_e · expert_e(x)` with `expert_e(x) = down_e(silu(gate_e(x)) · up_e(x))`.
///
/// Field names are HF's (`mlp.gate.weight`, `mlp.experts.{i}.gate_proj.weight`).
///
/// # Shapes
/// - input/output: `[B, T, d]`
#[derive(Module, Debug)]
pub struct SparseMoeBlock<B: Backend> {
    // routing
    /// The router `[E, d]` (no bias).
    pub gate: Linear<B>,
    // experts
    /// `E` SwiGLU experts of width `moe_intermediate_size`.
    pub experts: Vec<Mlp<B>>,
    /// Experts per token `k`.
    pub top_k: usize,
    /// Whether the `k` chosen probabilities are renormalised to sum to one.
    pub norm_topk_prob: bool,
}

/// Which experts each token goes to, and the tokens grouped by expert: the host side of the dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// Row-major `[N, k]`: the experts chosen for each token, most probable first (ties: lower index).
    pub experts: Vec<usize>,
    /// Experts per token `k`.
    pub top_k: usize,
    /// The routed (token, slot) pairs grouped by expert: flat slot indices `n·k + j`, expert 0's first.
    /// Tokens not marked valid are left out.
    pub order: Vec<usize>,
    /// Pairs routed to each expert; expert `e`'s group is `order[Σ_{j<e} counts[j] ..][..counts[e]]`.
    pub counts: Vec<usize>,
}

impl Routing {
    /// Chooses the `k` most probable experts of each valid token and groups the pairs by expert.
    ///
    /// # Shapes
    /// - `probs`: row-major `[N, E]`, `valid`: `[N]` (`None` = all valid)
    ///
    /// # Panics
    /// When `k > E` or the lengths disagree.
    pub fn top_k(probs: &[f64], num_experts: usize, k: usize, valid: Option<&[bool]>) -> Self {
        assert!(
            k <= num_experts && probs.len().is_multiple_of(num_experts),
            "top-{k} of {num_experts} experts over {} probabilities",
            probs.len()
        );
        let n = probs.len() / num_experts;
        if let Some(valid) = valid {
            assert_eq!(valid.len(), n, "one validity flag per token");
        }
        let mut experts = Vec::with_capacity(n * k);
        let mut candidates: Vec<usize> = Vec::with_capacity(num_experts);
        for row in probs.chunks(num_experts) {
            // Most probable first; equal probabilities go to the lower index, so the order is total.
            let by_prob = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
            candidates.clear();
            candidates.extend(0..num_experts);
            if k < num_experts {
                candidates.select_nth_unstable_by(k, by_prob);
            }
            candidates[..k].sort_unstable_by(by_prob);
            experts.extend_from_slice(&candidates[..k]);
        }
        // Counting sort of the valid slots by expert.
        let routed = |slot: &usize| valid.is_none_or(|v| v[slot / k]);
        let mut counts = vec![0; num_experts];
        for (slot, &e) in experts.iter().enumerate() {
            if routed(&slot) {
                counts[e] += 1;
            }
        }
        let mut next: Vec<usize> = counts
            .iter()
            .scan(0, |start, &c| {
                let s = *start;
                *start += c;
                Some(s)
            })
            .collect();
        let mut order = vec![0; counts.iter().sum()];
        for (slot, &e) in experts.iter().enumerate() {
            if routed(&slot) {
                order[next[e]] = slot;
                next[e] += 1;
            }
        }
        Self {
            experts,
            top_k: k,
            order,
            counts,
        }
    }

    /// The token of each grouped pair, `order[i] / k`.
    pub fn tokens(&self) -> Vec<usize> {
        self.order.iter().map(|slot| slot / self.top_k).collect()
    }
}

impl<B: Backend> SparseMoeBlock<B> {
    /// A randomly initialised block for `config` (HF's init: `N(0, std²)` weights, no biases).
    pub fn init(config: &DecoderConfig, std: f64, device: &B::Device) -> Self {
        let (d, e, width) = (
            config.hidden_size,
            config.num_experts(),
            config.moe_intermediate_size(),
        );
        Self {
            gate: Linear::init(d, e, false, std, device),
            experts: (0..e)
                .map(|_| Mlp::init(d, width, false, std, device))
                .collect(),
            top_k: config.num_experts_per_tok(),
            norm_topk_prob: config.norm_topk_prob(),
        }
    }

    /// Experts `E`.
    pub fn num_experts(&self) -> usize {
        self.experts.len()
    }

    /// Applies the block with grouped dispatch; tokens whose `valid` flag is false (padding) are not
    /// routed and get a zero output. Returns the output and the router statistics of the valid tokens.
    ///
    /// # Shapes
    /// - `x`: `[B, T, d]`, `valid`: row-major `[B, T]` (`None` = all valid) → `[B, T, d]`
    pub fn forward(&self, x: Tensor<B, 3>, valid: Option<&[bool]>) -> (Tensor<B, 3>, RouterAux<B>) {
        let [b, t, d] = x.dims();
        let n = b * t;
        let device = x.device();

        // 1. Route: probabilities [N, E], the top-k choice on the host, weights [N, k] gathered from p.
        let x = x.reshape([n, d]);
        let (probs, routing) = self.route(x.clone(), valid);
        let weights = self.routing_weights(probs.clone(), &routing, &device);
        let aux = RouterAux::from_layer(probs, &routing, valid);

        // 2. Gather the routed (token, slot) pairs in expert order: [M, d] and their weights [M, 1].
        let m = routing.order.len();
        if m == 0 {
            return (Tensor::zeros([b, t, d], &device), aux);
        }
        let tokens = int_tensor::<B>(&routing.tokens(), &device);
        let grouped = x.select(0, tokens.clone());
        let grouped_weights = weights
            .reshape([n * self.top_k])
            .select(0, int_tensor::<B>(&routing.order, &device))
            .reshape([m, 1]);

        // 3. Each expert over its contiguous group: [n_e, d] → [n_e, d]; concatenated back to [M, d].
        let mut start = 0;
        let mut outputs = Vec::new();
        for (expert, &count) in self.experts.iter().zip(&routing.counts) {
            if count > 0 {
                let group = grouped.clone().slice([start..start + count, 0..d]);
                outputs.push(expert.forward(group));
                start += count;
            }
        }
        let out = Tensor::cat(outputs, 0) * grouped_weights;

        // 4. Scatter-add the weighted outputs to their tokens: [N, d] → [B, T, d].
        let y = Tensor::<B, 2>::zeros([n, d], &device).select_assign(
            0,
            tokens,
            out,
            IndexingUpdateOp::Add,
        );
        (y.reshape([b, t, d]), aux)
    }

    /// The reference computation: every expert on every token, combined with a dense `[N, E]` weight
    /// matrix that is zero off each token's top-k (chosen on the device with `topk`). `E/k` times the
    /// work of [`SparseMoeBlock::forward`]; kept for tests and the benchmark.
    ///
    /// # Shapes
    /// - `x`: `[B, T, d]`, `valid`: row-major `[B, T]` (`None` = all valid) → `[B, T, d]`
    pub fn forward_all_experts(&self, x: Tensor<B, 3>, valid: Option<&[bool]>) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let n = b * t;
        let device = x.device();
        let x = x.reshape([n, d]);

        // 1. Probabilities [N, E] and the top-k [N, k] on the device.
        let probs = softmax(self.gate.forward(x.clone()), 1);
        let (chosen, indices) = probs.clone().topk_with_indices(self.top_k, 1);
        let chosen = if self.norm_topk_prob {
            chosen.clone() / chosen.sum_dim(1)
        } else {
            chosen
        };

        // 2. Dense combination weights [N, E], zero for padding tokens.
        let mut combine = Tensor::<B, 2>::zeros([n, self.num_experts()], &device).scatter(
            1,
            indices,
            chosen,
            IndexingUpdateOp::Add,
        );
        if let Some(valid) = valid {
            combine = combine * valid_column::<B>(valid, &device);
        }

        // 3. y = Σ_e combine[:, e] · expert_e(x): [N, d] → [B, T, d].
        let mut y = Tensor::<B, 2>::zeros([n, d], &device);
        for (e, expert) in self.experts.iter().enumerate() {
            let w = combine.clone().slice([0..n, e..e + 1]);
            y = y + expert.forward(x.clone()) * w;
        }
        y.reshape([b, t, d])
    }

    /// Router probabilities `softmax(x·W_gᵀ)` `[N, E]` and the host-side top-k routing.
    fn route(&self, x: Tensor<B, 2>, valid: Option<&[bool]>) -> (Tensor<B, 2>, Routing) {
        let probs = softmax(self.gate.forward(x), 1);
        let host = probs
            .clone()
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .expect("a float tensor converted to f64 yields f64 values");
        let routing = Routing::top_k(&host, self.num_experts(), self.top_k, valid);
        (probs, routing)
    }

    /// The weights of each token's chosen experts, `[N, k]`: `p[n, S_n]`, renormalised to sum to one
    /// with `norm_topk_prob`. Differentiable in `probs`.
    fn routing_weights(
        &self,
        probs: Tensor<B, 2>,
        routing: &Routing,
        device: &B::Device,
    ) -> Tensor<B, 2> {
        let n = probs.dims()[0];
        let indices = int_tensor::<B>(&routing.experts, device).reshape([n, self.top_k]);
        let weights = probs.gather(1, indices);
        if self.norm_topk_prob {
            weights.clone() / weights.sum_dim(1)
        } else {
            weights
        }
    }
}

/// Router statistics of a forward pass, pooled over the sparse layers and real tokens it saw, for the
/// Switch-Transformer load-balancing loss (Fedus et al. 2021, arXiv 2101.03961, eqs. 4–6; HF's
/// `load_balancing_loss_func`):
/// `L_aux = E · Σ_e f_e · P_e`, `f_e = (1/n) Σ_{l,t} 1[e ∈ top-k(l,t)]`, `P_e = (1/n) Σ_{l,t} p_{l,t,e}`,
/// where `n` counts (sparse layer, real token) pairs. `f` sums to `k`, so a uniform router gives `k`.
///
/// `f` is a count (no gradient); `P` keeps the graph, so `L_aux` trains the routers.
#[derive(Debug, Clone)]
pub struct RouterAux<B: Backend> {
    /// `Σ_{l,t} p_{l,t,e}`, `[E]`.
    prob_sum: Tensor<B, 1>,
    /// `Σ_{l,t} 1[e ∈ top-k(l,t)]` per expert.
    counts: Vec<usize>,
    /// `n`: (sparse layer, real token) pairs pooled.
    tokens: usize,
    /// Experts per token `k`.
    top_k: usize,
}

impl<B: Backend> RouterAux<B> {
    /// The statistics of one layer's routing.
    fn from_layer(probs: Tensor<B, 2>, routing: &Routing, valid: Option<&[bool]>) -> Self {
        let [n, e] = probs.dims();
        let (probs, tokens) = match valid {
            Some(valid) => {
                let column = valid_column::<B>(valid, &probs.device());
                (probs * column, valid.iter().filter(|v| **v).count())
            }
            None => (probs, n),
        };
        Self {
            prob_sum: probs.sum_dim(0).reshape([e]),
            counts: routing.counts.clone(),
            tokens,
            top_k: routing.top_k,
        }
    }

    /// Pools the statistics of two passes or layers (HF concatenates the layers' router logits).
    ///
    /// # Panics
    /// When the expert counts or `k` differ.
    pub fn merge(self, other: Self) -> Self {
        assert!(
            self.counts.len() == other.counts.len() && self.top_k == other.top_k,
            "router statistics of different MoE shapes"
        );
        Self {
            prob_sum: self.prob_sum + other.prob_sum,
            counts: self
                .counts
                .iter()
                .zip(&other.counts)
                .map(|(a, b)| a + b)
                .collect(),
            tokens: self.tokens + other.tokens,
            top_k: self.top_k,
        }
    }

    /// The load-balancing loss `E · Σ_e f_e · P_e` (unscaled; the model's `router_aux_loss_coef`
    /// weighs it in the training loss). Zero when no token was routed.
    ///
    /// # Shapes
    /// - returns: `[1]`
    pub fn load_balancing_loss(&self) -> Tensor<B, 1> {
        let e = self.counts.len();
        let n = self.tokens.max(1) as f64;
        let device = self.prob_sum.device();
        let fractions: Vec<f32> = self.counts.iter().map(|&c| (c as f64 / n) as f32).collect();
        let f = Tensor::<B, 1>::from_data(TensorData::new(fractions, [e]), &device);
        (self.prob_sum.clone() * f).sum() * (e as f64 / n)
    }

    /// (Sparse layer, token) assignments per expert, `Σ_{l,t} 1[e ∈ top-k(l,t)]`.
    pub fn expert_counts(&self) -> &[usize] {
        &self.counts
    }

    /// (Sparse layer, real token) pairs pooled, `n`.
    pub fn routed_tokens(&self) -> usize {
        self.tokens
    }

    /// Metrics under namespaced keys: `moe/aux_loss` (the unscaled loss), `moe/expert_load_max` and
    /// `moe/expert_load_min` (an expert's share of the assignments over the uniform share `k/E`:
    /// 1 is perfectly balanced, 0 an expert no token chose). Reads the loss back from the device.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let e = self.counts.len() as f64;
        let uniform = (self.tokens * self.top_k) as f64 / e;
        let load = |c: usize| c as f64 / uniform.max(f64::MIN_POSITIVE);
        let max = self.counts.iter().copied().max().unwrap_or(0);
        let min = self.counts.iter().copied().min().unwrap_or(0);
        let aux = self
            .load_balancing_loss()
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .expect("a float tensor converted to f64 yields f64 values")[0];
        BTreeMap::from([
            ("moe/aux_loss".to_string(), aux),
            ("moe/expert_load_max".to_string(), load(max)),
            ("moe/expert_load_min".to_string(), load(min)),
        ])
    }
}

/// A 1-D int tensor of indices.
fn int_tensor<B: Backend>(values: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let values: Vec<i64> = values.iter().map(|&v| v as i64).collect();
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

/// `[N, 1]` of 1.0 for valid tokens and 0.0 for padding.
fn valid_column<B: Backend>(valid: &[bool], device: &B::Device) -> Tensor<B, 2> {
    let values: Vec<f32> = valid.iter().map(|&v| f32::from(u8::from(v))).collect();
    Tensor::from_data(TensorData::new(values, [valid.len(), 1]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::tests::random;
    use crate::seed::Stream;
    use crate::TestBackend;
    use burn::backend::Autodiff;

    fn config(norm_topk_prob: bool) -> DecoderConfig {
        DecoderConfig::from_json_str(
            &format!(
                r#"{{"model_type": "qwen3_moe", "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16,
                    "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 4, "num_experts": 6,
                    "num_experts_per_tok": 2, "moe_intermediate_size": 4, "norm_topk_prob": {norm_topk_prob}}}"#
            ),
            "tiny",
        )
        .unwrap()
    }

    #[test]
    fn routing_picks_the_top_k_and_groups_by_expert() {
        // Three tokens over four experts; the middle one is padding.
        let probs = [
            0.1, 0.4, 0.2, 0.3, // token 0 → experts 1, 3
            0.7, 0.1, 0.1, 0.1, // token 1 (padding)
            0.25, 0.25, 0.4, 0.1, // token 2 → expert 2, then the tie 0/1 goes to 0
        ];
        let routing = Routing::top_k(&probs, 4, 2, Some(&[true, false, true]));
        assert_eq!(routing.experts, [1, 3, 0, 1, 2, 0]);
        assert_eq!(routing.counts, [1, 1, 1, 1]);
        // Slots n·k + j in expert order: expert 0 ← slot 5, 1 ← slot 0, 2 ← slot 4, 3 ← slot 1.
        assert_eq!(routing.order, [5, 0, 4, 1]);
        assert_eq!(routing.tokens(), [2, 0, 2, 0]);
    }

    #[test]
    fn grouped_dispatch_equals_all_experts() {
        let device = Default::default();
        for norm in [true, false] {
            let block = SparseMoeBlock::<TestBackend>::init(&config(norm), 0.5, &device);
            let block = crate::init_seeded(block, 31, 0.5);
            let x = random::<TestBackend, 3>(&mut Stream::new(32), [2, 5, 8], 1.0);
            let valid: Vec<bool> = (0..10).map(|i| i != 0 && i != 1).collect();
            for valid in [None, Some(valid.as_slice())] {
                let (grouped, _) = block.forward(x.clone(), valid);
                let naive = block.forward_all_experts(x.clone(), valid);
                grouped
                    .into_data()
                    .assert_approx_eq::<f32>(&naive.into_data(), Default::default());
            }
        }
    }

    #[test]
    fn gradients_reach_the_router_and_only_the_chosen_experts() {
        type AD = Autodiff<TestBackend>;
        let device = Default::default();
        let block = crate::init_seeded(
            SparseMoeBlock::<AD>::init(&config(true), 0.5, &device),
            33,
            0.5,
        );
        // One token: exactly two experts run.
        let x = random::<AD, 3>(&mut Stream::new(34), [1, 1, 8], 1.0);
        let (y, aux) = block.forward(x, None);
        let loss = y.powi_scalar(2).sum() + aux.load_balancing_loss();
        let grads = loss.backward();
        let router = block.gate.weight.grad(&grads).expect("router gradient");
        assert!(router.abs().sum().into_scalar() > 0.0);
        let touched = block
            .experts
            .iter()
            .filter(|e| e.down_proj.weight.grad(&grads).is_some())
            .count();
        assert_eq!(touched, 2);
    }

    #[test]
    fn load_balancing_loss_is_k_for_a_uniform_router() {
        // p = 1/E everywhere and f_e = k/E (each expert chosen equally often): E · Σ_e (k/E)(1/E) = k.
        let device = Default::default();
        let e = 4;
        let probs = Tensor::<TestBackend, 2>::full([4, e], 0.25, &device);
        let routing = Routing {
            experts: vec![0, 1, 2, 3, 0, 1, 2, 3],
            top_k: 2,
            order: vec![0, 4, 1, 5, 2, 6, 3, 7],
            counts: vec![2, 2, 2, 2],
        };
        let aux = RouterAux::from_layer(probs, &routing, None);
        let aux = aux.clone().merge(aux);
        let metrics = aux.metrics();
        assert!((metrics["moe/aux_loss"] - 2.0).abs() < 1e-6, "{metrics:?}");
        assert_eq!(metrics["moe/expert_load_max"], 1.0);
        assert_eq!(aux.routed_tokens(), 8);
    }
}
