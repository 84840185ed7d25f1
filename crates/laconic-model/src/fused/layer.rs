//! A dense decoder layer as one autodiff node that keeps only its input and recomputes the layer in
//! the backward: activation checkpointing per layer ([`crate::ActivationCheckpointing::Layer`]).
//!
//! Without it, the tape holds every fused node's saved tensors for every layer until the backward
//! reaches it — about `12·d + 3·I` floats per token per layer. With it, a layer costs its input
//! (`d` floats per token) from forward to backward, and the backward reruns the layer's forward on the
//! inner backend (the same functions the fused nodes run, so the same values) and chains the fused
//! nodes' closed-form backwards by hand, in the order the tape would. There is no nested autodiff
//! graph: a `backward()` inside a backward step deadlocks burn 0.21's graph lock.
//!
//! Engaged on the autodiff backends [`super::on_autodiff`] lists, for dense layers without LoRA
//! adapters or MLP biases in a call that starts from an empty cache; everywhere else the layer runs its plain forward (same values, more memory).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::ops::FloatTensor;

use super::{cast, cast_ref, float, on_autodiff, primitive, Ad};
use crate::flash::{self, Blocked};
use crate::layer::{DecoderLayer, FeedForward};
use crate::linear::Linear;
use crate::norm::RmsNorm;
use crate::rope::RopeTables;
use crate::{attention, linear, mlp, norm, rope};

/// The node's parents: the layer input, then one slot per parameter ([`Slot`]).
const PARENTS: usize = 16;

/// The parameter slots, in parent order after the input (index 0).
#[derive(Clone, Copy)]
enum Slot {
    InputNorm = 1,
    QWeight,
    QBias,
    KWeight,
    KBias,
    VWeight,
    VBias,
    QNorm,
    KNorm,
    OWeight,
    OBias,
    PostNorm,
    Gate,
    Up,
    Down,
}

/// `layer(x)` recorded as one recomputing node, when `B` is an autodiff backend the fused nodes run
/// on and the layer is dense; `None` otherwise (the caller runs the plain forward).
///
/// # Shapes
/// - `x`: `[B, T, d]` → `[B, T, d]`; `rope`'s tables and `attn`'s mask describe these `T` tokens with no
///   cached columns
pub(crate) fn checkpointed_layer<B: Backend>(
    layer: &DecoderLayer<B>,
    x: &Tensor<B, 3>,
    rope: &RopeTables<B>,
    attn: &Blocked,
) -> Option<Tensor<B, 3>> {
    on_autodiff!(B, I, C => layer_node::<I, C>(cast_ref(layer), cast(x.clone()), cast_ref(rope), attn).map(cast));
    None
}

/// A projection's weight `[d_out, d_in]` and bias `[d_out]` on the inner backend.
#[derive(Debug, Clone)]
struct Projection<I: Backend> {
    weight: Tensor<I, 2>,
    bias: Option<Tensor<I, 1>>,
}

impl<I: Backend> Projection<I> {
    /// `x·Wᵀ + b`, as [`crate::linear::project`] computes it.
    fn apply(&self, x: Tensor<I, 2>) -> Tensor<I, 2> {
        let out = linear::product(x, self.weight.clone());
        match &self.bias {
            Some(bias) => out + bias.clone().unsqueeze(),
            None => out,
        }
    }
}

/// A norm's weight `[d]` and epsilon on the inner backend.
#[derive(Debug, Clone)]
struct Norm<I: Backend> {
    weight: Tensor<I, 1>,
    eps: f64,
}

impl<I: Backend> Norm<I> {
    /// `(y, 1/rms)` over the last dimension of `[rows, d]`.
    fn apply(&self, x: Tensor<I, 2>) -> (Tensor<I, 2>, Tensor<I, 2>) {
        norm::rms_norm_forward(x, self.weight.clone(), self.eps)
    }
}

/// The layer's parameters on the inner backend, and its head counts.
#[derive(Debug, Clone)]
struct Weights<I: Backend> {
    input_norm: Norm<I>,
    q: Projection<I>,
    k: Projection<I>,
    v: Projection<I>,
    q_norm: Option<Norm<I>>,
    k_norm: Option<Norm<I>>,
    o: Projection<I>,
    post_norm: Norm<I>,
    gate: Tensor<I, 2>,
    up: Tensor<I, 2>,
    down: Tensor<I, 2>,
    /// `[H, H_kv, D]`.
    heads: [usize; 3],
}

/// What the backward keeps: the input, the weights (shared with the model, no copy) and the call's
/// RoPE tables and mask.
#[derive(Debug, Clone)]
struct LayerState<I: Backend> {
    x: Tensor<I, 3>,
    weights: Weights<I>,
    cos: Tensor<I, 4>,
    sin: Tensor<I, 4>,
    attn: Blocked,
}

/// Every intermediate a fused node of the layer would have saved, from one forward on the inner
/// backend.
struct Activations<I: Backend> {
    /// Normed input `[rows, d]` and its `1/rms` `[rows, 1]`.
    n1: Tensor<I, 2>,
    inv1: Tensor<I, 2>,
    /// Query and key projections before their head norms, `[rows·H, D]` and `[rows·H_kv, D]`, with the
    /// norms' `1/rms`.
    q: Tensor<I, 2>,
    inv_q: Option<Tensor<I, 2>>,
    k: Tensor<I, 2>,
    inv_k: Option<Tensor<I, 2>>,
    /// Attention operands: folded rotated queries `[B, H_kv, n_rep·T, D]`, rotated keys and values
    /// `[B, H_kv, T, D]`; its output (folded) and log-sum-exp.
    q_heads: Tensor<I, 4>,
    k_heads: Tensor<I, 4>,
    v_heads: Tensor<I, 4>,
    attn_out: Tensor<I, 4>,
    lse: Tensor<I, 4>,
    /// Attention output with heads merged, `[rows, H·D]`.
    merged: Tensor<I, 2>,
    /// Residual after attention `[rows, d]`, its norm and `1/rms`.
    h: Tensor<I, 2>,
    n2: Tensor<I, 2>,
    inv2: Tensor<I, 2>,
    /// MLP gate and up projections flattened to `[rows·I]`, and `silu(gate)⊙up` as `[rows, I]`.
    gate: Tensor<I, 1>,
    up: Tensor<I, 1>,
    act: Tensor<I, 2>,
    /// The layer's output `[rows, d]`.
    y: Tensor<I, 2>,
}

/// The node on `Autodiff<I, C>`; `None` for a sparse (MoE) layer.
fn layer_node<I: Backend, C: CheckpointStrategy>(
    layer: &DecoderLayer<Ad<I, C>>,
    x: Tensor<Ad<I, C>, 3>,
    rope: &RopeTables<Ad<I, C>>,
    attn: &Blocked,
) -> Option<Tensor<Ad<I, C>, 3>> {
    let FeedForward::Dense(mlp) = &layer.mlp else {
        return None;
    };
    // LoRA adapters run the generic composition (their products are fused nodes of their own).
    let attention = &layer.self_attn;
    let adapted = [
        &attention.q_proj,
        &attention.k_proj,
        &attention.v_proj,
        &attention.o_proj,
        &mlp.gate_proj,
        &mlp.up_proj,
        &mlp.down_proj,
    ];
    if adapted.iter().any(|linear| linear.lora.is_some()) {
        return None;
    }
    // MLP biases (Llama's `mlp_bias`, which released checkpoints leave off) run the generic layer too.
    let mlp_projections = [&mlp.gate_proj, &mlp.up_proj, &mlp.down_proj];
    if mlp_projections.iter().any(|linear| linear.bias.is_some()) {
        return None;
    }
    let [b, t, d] = x.dims();
    let mut parents = Parents::new(x);
    let weights = Weights {
        input_norm: parents.norm(&layer.input_layernorm, Slot::InputNorm),
        q: parents.projection(&attention.q_proj, [Slot::QWeight, Slot::QBias]),
        k: parents.projection(&attention.k_proj, [Slot::KWeight, Slot::KBias]),
        v: parents.projection(&attention.v_proj, [Slot::VWeight, Slot::VBias]),
        q_norm: attention
            .q_norm
            .as_ref()
            .map(|n| parents.norm(n, Slot::QNorm)),
        k_norm: attention
            .k_norm
            .as_ref()
            .map(|n| parents.norm(n, Slot::KNorm)),
        o: parents.projection(&attention.o_proj, [Slot::OWeight, Slot::OBias]),
        post_norm: parents.norm(&layer.post_attention_layernorm, Slot::PostNorm),
        gate: parents.param(&mlp.gate_proj.weight, Slot::Gate),
        up: parents.param(&mlp.up_proj.weight, Slot::Up),
        down: parents.param(&mlp.down_proj.weight, Slot::Down),
        heads: [
            attention.num_heads,
            attention.num_kv_heads,
            attention.head_dim,
        ],
    };
    let parents = parents.0;
    let x = float::<I, 3>(parents[0].primitive.clone());
    let (cos, sin) = (rope.cos.clone().inner(), rope.sin.clone().inner());
    let y = forward(&weights, x.clone(), &cos, &sin, attn).y;
    let output = primitive(y.reshape([b, t, d]));
    let nodes = parents.each_ref().map(|parent| parent.node.clone());
    let node = match LayerBackward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(
            LayerState {
                x,
                weights,
                cos,
                sin,
                attn: attn.clone(),
            },
            output,
        ),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Some(float(node))
}

/// The node's parent tensors by slot; a slot without a parameter (a bias or head norm the layer does
/// not have) holds an untracked placeholder.
struct Parents<I: Backend, C: CheckpointStrategy>([FloatTensor<Ad<I, C>>; PARENTS]);

impl<I: Backend, C: CheckpointStrategy> Parents<I, C> {
    /// The layer input `x` in slot 0 and placeholders elsewhere.
    fn new(x: Tensor<Ad<I, C>, 3>) -> Self {
        let device = x.device();
        let mut parents: [_; PARENTS] = std::array::from_fn(|_| {
            Tensor::<Ad<I, C>, 1>::zeros([1], &device)
                .into_primitive()
                .tensor()
        });
        parents[0] = x.into_primitive().tensor();
        Self(parents)
    }

    /// `param`'s inner value, its autodiff tensor taking `slot`.
    fn param<const D: usize>(
        &mut self,
        param: &Param<Tensor<Ad<I, C>, D>>,
        slot: Slot,
    ) -> Tensor<I, D> {
        let tensor = param.val().into_primitive().tensor();
        let inner = float(tensor.primitive.clone());
        self.0[slot as usize] = tensor;
        inner
    }

    /// A projection's inner weight and bias, taking their slots.
    fn projection(
        &mut self,
        linear: &Linear<Ad<I, C>>,
        [weight, bias]: [Slot; 2],
    ) -> Projection<I> {
        Projection {
            weight: self.param(&linear.weight, weight),
            bias: linear.bias.as_ref().map(|b| self.param(b, bias)),
        }
    }

    /// A norm's inner weight, taking `slot`.
    fn norm(&mut self, norm: &RmsNorm<Ad<I, C>>, slot: Slot) -> Norm<I> {
        Norm {
            weight: self.param(&norm.weight, slot),
            eps: norm.eps,
        }
    }
}

/// The layer's forward on the inner backend, as the un-checkpointed layer computes it.
///
/// # Shapes
/// - `x`: `[B, T, d]`; `cos`, `sin`: `[B, T, 1, D]`
fn forward<I: Backend>(
    w: &Weights<I>,
    x: Tensor<I, 3>,
    cos: &Tensor<I, 4>,
    sin: &Tensor<I, 4>,
    attn: &Blocked,
) -> Activations<I> {
    let [b, t, d] = x.dims();
    let [h, h_kv, hd] = w.heads;
    let rows = b * t;
    let x = x.reshape([rows, d]);

    // Attention block: norm, projections, head norms, rotation, blocked attention, output projection.
    let (n1, inv1) = w.input_norm.apply(x.clone());
    let q = w.q.apply(n1.clone()).reshape([rows * h, hd]);
    let k = w.k.apply(n1.clone()).reshape([rows * h_kv, hd]);
    let v = w.v.apply(n1.clone()).reshape([b, t, h_kv, hd]);
    let head_norm = |x: Tensor<I, 2>, norm: &Option<Norm<I>>| match norm {
        Some(norm) => {
            let (y, inv) = norm.apply(x);
            (y, Some(inv))
        }
        None => (x, None),
    };
    let (q_normed, inv_q) = head_norm(q.clone(), &w.q_norm);
    let (k_normed, inv_k) = head_norm(k.clone(), &w.k_norm);
    let q_heads = rope::rope_forward(q_normed.reshape([b, t, h, hd]), cos.clone(), sin.clone())
        .reshape([b, h_kv, h / h_kv * t, hd]);
    let k_heads = rope::rope_forward(k_normed.reshape([b, t, h_kv, hd]), cos.clone(), sin.clone());
    let v_heads = attention::swap_layout(v);
    let (attn_out, lse) = flash::forward(q_heads.clone(), k_heads.clone(), v_heads.clone(), attn);
    let merged =
        attention::swap_layout(attn_out.clone().reshape([b, h, t, hd])).reshape([rows, h * hd]);
    let h_res = x + w.o.apply(merged.clone());

    // MLP block.
    let (n2, inv2) = w.post_norm.apply(h_res.clone());
    let width = w.gate.dims()[0];
    let gate = linear::product(n2.clone(), w.gate.clone()).reshape([rows * width]);
    let up = linear::product(n2.clone(), w.up.clone()).reshape([rows * width]);
    let act = mlp::swiglu_forward(gate.clone(), up.clone()).reshape([rows, width]);
    let y = h_res.clone() + linear::product(act.clone(), w.down.clone());
    Activations {
        n1,
        inv1,
        q,
        inv_q,
        k,
        inv_k,
        q_heads,
        k_heads,
        v_heads,
        attn_out,
        lse,
        merged,
        h: h_res,
        n2,
        inv2,
        gate,
        up,
        act,
        y,
    }
}

#[derive(Debug)]
struct LayerBackward;

impl<B: Backend> Backward<B, PARENTS> for LayerBackward {
    type State = LayerState<B>;

    fn backward(self, ops: Ops<Self::State, PARENTS>, grads: &mut Gradients, _: &mut Checkpointer) {
        let nodes = ops.parents.map(|node| node.map(|node| node.id));
        let grad = float::<B, 3>(grads.consume::<B>(&ops.node));
        let state = ops.state;
        let [b, t, d] = state.x.dims();
        let mut out = LayerGrads::new(nodes);
        let dx = layer_backward(&state, grad.reshape([b * t, d]), &mut out);
        out.put(0, dx.reshape([b, t, d]));
        out.register(grads);
    }
}

/// The parameter gradients of one backward, by parent slot, kept only for tracked parents.
struct LayerGrads<B: Backend> {
    nodes: [Option<NodeId>; PARENTS],
    grads: Vec<(NodeId, FloatTensor<B>)>,
}

impl<B: Backend> LayerGrads<B> {
    fn new(nodes: [Option<NodeId>; PARENTS]) -> Self {
        Self {
            nodes,
            grads: Vec::new(),
        }
    }

    /// Whether the parent in `slot` takes a gradient.
    fn wants(&self, slot: Slot) -> bool {
        self.nodes[slot as usize].is_some()
    }

    /// Keeps `grad` for the parent at `index` when it takes one.
    fn put<const D: usize>(&mut self, index: usize, grad: Tensor<B, D>) {
        if let Some(node) = self.nodes[index] {
            self.grads.push((node, primitive(grad)));
        }
    }

    fn put_slot<const D: usize>(&mut self, slot: Slot, grad: Option<Tensor<B, D>>) {
        if let Some(grad) = grad {
            self.put(slot as usize, grad);
        }
    }

    fn register(self, grads: &mut Gradients) {
        for (node, grad) in self.grads {
            grads.register::<B>(node, grad);
        }
    }
}

/// `∂x` of the layer for the output gradient `dy` (`[rows, d]`), storing the parameters' gradients in
/// `out`: the fused nodes' backwards in reverse order of the forward.
fn layer_backward<B: Backend>(
    state: &LayerState<B>,
    dy: Tensor<B, 2>,
    out: &mut LayerGrads<B>,
) -> Tensor<B, 2> {
    let w = &state.weights;
    let a = forward(w, state.x.clone(), &state.cos, &state.sin, &state.attn);
    let [b, t, _] = state.x.dims();
    let [h, h_kv, hd] = w.heads;
    let rows = b * t;

    // MLP block: y = h + down(swiglu(gate(n2), up(n2))), n2 = norm(h).
    let (d_act, d_down) = linear::product_backward(
        a.act,
        w.down.clone(),
        dy.clone(),
        (true, out.wants(Slot::Down)),
    );
    out.put_slot(Slot::Down, d_down);
    let width = w.gate.dims()[0];
    let d_act = d_act.expect("wanted").reshape([rows * width]);
    let (d_gate, d_up) = mlp::swiglu_backward(d_act, a.gate, a.up, (true, true));
    let d_gate = d_gate.expect("wanted").reshape([rows, width]);
    let d_up = d_up.expect("wanted").reshape([rows, width]);
    let (dn2_up, dw_up) = linear::product_backward(
        a.n2.clone(),
        w.up.clone(),
        d_up,
        (true, out.wants(Slot::Up)),
    );
    let (dn2_gate, dw_gate) =
        linear::product_backward(a.n2, w.gate.clone(), d_gate, (true, out.wants(Slot::Gate)));
    out.put_slot(Slot::Up, dw_up);
    out.put_slot(Slot::Gate, dw_gate);
    let dn2 = dn2_gate.expect("wanted") + dn2_up.expect("wanted");
    let (dh_norm, dw_post) = norm::rms_norm_backward(
        a.h,
        w.post_norm.weight.clone(),
        a.inv2,
        dn2,
        (true, out.wants(Slot::PostNorm)),
    );
    out.put_slot(Slot::PostNorm, dw_post);
    let dh = dy + dh_norm.expect("wanted");

    // Attention block: h = x + o(merge(attention(rope(q), rope(k), v))).
    let d_merged = projection_backward(
        &w.o,
        a.merged,
        dh.clone(),
        out,
        [Slot::OWeight, Slot::OBias],
    );
    let d_attn = attention::swap_layout(d_merged.reshape([b, t, h, hd])).reshape([
        b,
        h_kv,
        h / h_kv * t,
        hd,
    ]);
    let (dq_heads, dk_heads, dv_heads) = flash::backward(
        a.q_heads,
        a.k_heads,
        a.v_heads,
        a.attn_out,
        a.lse,
        d_attn,
        &state.attn,
    );
    let cos_sin = || (state.cos.clone(), state.sin.clone());
    let (cos, sin) = cos_sin();
    let dq = rope::rope_backward(dq_heads.reshape([b, h, t, hd]), cos, sin).reshape([rows * h, hd]);
    let (cos, sin) = cos_sin();
    let dk = rope::rope_backward(dk_heads, cos, sin).reshape([rows * h_kv, hd]);
    let dv = attention::swap_layout(dv_heads).reshape([rows, h_kv * hd]);
    let dq =
        head_norm_backward(&w.q_norm, a.q, a.inv_q, dq, out, Slot::QNorm).reshape([rows, h * hd]);
    let dk = head_norm_backward(&w.k_norm, a.k, a.inv_k, dk, out, Slot::KNorm)
        .reshape([rows, h_kv * hd]);
    let dn1_q = projection_backward(&w.q, a.n1.clone(), dq, out, [Slot::QWeight, Slot::QBias]);
    let dn1_k = projection_backward(&w.k, a.n1.clone(), dk, out, [Slot::KWeight, Slot::KBias]);
    let dn1_v = projection_backward(&w.v, a.n1, dv, out, [Slot::VWeight, Slot::VBias]);
    let dn1 = dn1_q + dn1_k + dn1_v;
    let x = state
        .x
        .clone()
        .reshape([rows, w.input_norm.weight.dims()[0]]);
    let (dx_norm, dw_input) = norm::rms_norm_backward(
        x,
        w.input_norm.weight.clone(),
        a.inv1,
        dn1,
        (true, out.wants(Slot::InputNorm)),
    );
    out.put_slot(Slot::InputNorm, dw_input);
    dh + dx_norm.expect("wanted")
}

/// `∂x` of `y = x·Wᵀ + b`, storing `∂W` and `∂b` (the row sum of `g`) in their `slots`.
fn projection_backward<B: Backend>(
    projection: &Projection<B>,
    x: Tensor<B, 2>,
    grad: Tensor<B, 2>,
    out: &mut LayerGrads<B>,
    [weight_slot, bias_slot]: [Slot; 2],
) -> Tensor<B, 2> {
    if projection.bias.is_some() && out.wants(bias_slot) {
        let d_out = grad.dims()[1];
        out.put(bias_slot as usize, grad.clone().sum_dim(0).reshape([d_out]));
    }
    let (dx, dw) = linear::product_backward(
        x,
        projection.weight.clone(),
        grad,
        (true, out.wants(weight_slot)),
    );
    out.put_slot(weight_slot, dw);
    dx.expect("wanted")
}

/// `∂x` of an optional per-head norm (the identity without one), storing its weight's gradient.
///
/// # Shapes
/// - `x`, `grad`: `[rows·heads, D]`, `inv_rms`: `[rows·heads, 1]`
fn head_norm_backward<B: Backend>(
    norm: &Option<Norm<B>>,
    x: Tensor<B, 2>,
    inv_rms: Option<Tensor<B, 2>>,
    grad: Tensor<B, 2>,
    out: &mut LayerGrads<B>,
    slot: Slot,
) -> Tensor<B, 2> {
    let (Some(norm), Some(inv_rms)) = (norm, inv_rms) else {
        return grad;
    };
    let (dx, dw) = norm::rms_norm_backward(
        x,
        norm.weight.clone(),
        inv_rms,
        grad,
        (true, out.wants(slot)),
    );
    out.put_slot(slot, dw);
    dx.expect("wanted")
}

#[cfg(test)]
mod tests {
    use burn::backend::autodiff::checkpoint::strategy::{
        BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
    };
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::prelude::*;

    use super::Ad;
    use crate::fused::tests::random;
    use crate::mask::{AttentionMask, ForwardMask};
    use crate::rope::Rope;
    use crate::seed::Stream;
    use crate::{
        ActivationCheckpointing, AttentionBlocks, AttentionLayout, CausalLm, DecoderConfig,
    };

    /// GQA (4 query heads on 2 key/value heads) with Qwen3's head norms, and Qwen2's q/k/v biases.
    const QWEN3: &str = r#"{"model_type": "qwen3", "vocab_size": 32, "hidden_size": 16,
        "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 8, "tie_word_embeddings": false}"#;
    const QWEN2: &str = r#"{"model_type": "qwen2", "vocab_size": 32, "hidden_size": 16,
        "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "tie_word_embeddings": true}"#;
    /// Llama with biases on all four attention projections and YaRN (cos/sin scaled by its factor).
    const LLAMA: &str = r#"{"model_type": "llama", "vocab_size": 32, "hidden_size": 16,
        "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "attention_bias": true, "tie_word_embeddings": false,
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4}}"#;

    /// Every float parameter's gradient, flattened, in module order (`None` for the LM head, which the
    /// hidden states do not reach).
    struct CollectGrads<'a> {
        grads: &'a burn::backend::autodiff::grads::Gradients,
        out: Vec<(String, Option<Vec<f32>>)>,
    }

    impl<I: Backend, C: CheckpointStrategy> ModuleVisitor<Ad<I, C>> for CollectGrads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Ad<I, C>, D>>) {
            let values = param
                .val()
                .grad(self.grads)
                .map(|grad| grad.into_data().convert::<f32>().to_vec::<f32>().unwrap());
            self.out.push((format!("{:?}", param.id), values));
        }
    }

    /// Layer recompute gives the hidden states and every parameter's gradient of the plain forward:
    /// padded rows, GQA, tiles that do not divide `T`, with and without head norms and biases; on
    /// ndarray and flex, and under burn's balanced checkpointing strategy too. CPU backends only: the
    /// forwards are compared bit for bit, which a GPU backend's kernel fusion does not promise (the
    /// nodes themselves are checked on wgpu by their own tests, to a tolerance).
    #[test]
    fn recomputed_layers_match_the_plain_forward() {
        for config in [QWEN3, QWEN2, LLAMA] {
            check::<burn::backend::NdArray, NoCheckpointing>(config, true);
            #[cfg(feature = "flex")]
            check::<burn::backend::Flex, NoCheckpointing>(config, true);
        }
        check::<burn::backend::NdArray, BalancedCheckpointing>(QWEN3, true);
    }

    /// A layer with MLP biases (Llama's `mlp_bias`) runs the plain layer under `Layer` checkpointing,
    /// with the same values and gradients.
    #[test]
    fn mlp_biases_run_the_plain_layer() {
        let config = LLAMA.replace(r#""attention_bias": true"#, r#""mlp_bias": true"#);
        check::<burn::backend::NdArray, NoCheckpointing>(&config, false);
    }

    fn check<I: Backend, C: CheckpointStrategy>(config: &str, recomputes: bool) {
        let config = DecoderConfig::from_json_str(config, "tiny").unwrap();
        let device = Default::default();
        let mut model = CausalLm::<Ad<I, C>>::init_seeded(&config, 21, &device).unwrap();
        // Norm weights away from one, so their gradients and the head norms are exercised.
        model = model.map(&mut Perturb(Stream::new(22)));
        model
            .set_attention_blocks(AttentionBlocks {
                query_block: 4,
                key_block: 3,
            })
            .unwrap();
        let (b, t) = (3, 11);
        let layout = AttentionLayout::left_padded(&[11, 7, 1], t).unwrap();
        let ids: Vec<i64> = (0..b * t).map(|i| (i * 7 % 32) as i64).collect();
        let tokens = Tensor::<Ad<I, C>, 2, Int>::from_data(TensorData::new(ids, [b, t]), &device);
        let upstream = random::<I, 3>(&mut Stream::new(23), [b, t, config.hidden_size], 1.0);
        let run = |checkpointing| {
            let (hidden, _) = model
                .forward_hidden_checkpointed(tokens.clone(), &layout, checkpointing)
                .unwrap();
            let loss = (hidden.clone() * Tensor::from_inner(upstream.clone())).sum();
            let grads = loss.backward();
            let mut visitor = CollectGrads {
                grads: &grads,
                out: Vec::new(),
            };
            model.visit(&mut visitor);
            (hidden.inner().into_data(), visitor.out)
        };
        assert_eq!(
            engages(&model, &layout),
            recomputes,
            "whether the recomputing node is recorded"
        );
        let (hidden_plain, grads_plain) = run(ActivationCheckpointing::None);
        let (hidden_recomputed, grads_recomputed) = run(ActivationCheckpointing::Layer);
        assert_eq!(
            hidden_plain, hidden_recomputed,
            "the forward runs the same ops"
        );
        assert_eq!(grads_plain.len(), grads_recomputed.len());
        let with_grads = grads_plain.iter().filter(|(_, g)| g.is_some()).count();
        assert!(with_grads >= grads_plain.len() - 1, "all but the LM head");
        for ((name, a), (_, b)) in grads_plain.iter().zip(&grads_recomputed) {
            let (Some(a), Some(b)) = (a, b) else {
                assert_eq!(
                    a.is_some(),
                    b.is_some(),
                    "{name}: a gradient on one side only"
                );
                continue;
            };
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(scale > 0.0, "{name}: zero gradient");
            assert!(
                worst <= 1e-6 * scale,
                "{name}: max |Δgrad| {worst:e} against max |grad| {scale:e}"
            );
        }
    }

    /// Whether the first layer runs as the recomputing node on this backend.
    fn engages<I: Backend, C: CheckpointStrategy>(
        model: &CausalLm<Ad<I, C>>,
        layout: &AttentionLayout,
    ) -> bool {
        let config = model.config();
        let (b, t, device) = (layout.batch(), layout.seq(), Default::default());
        let (kv_heads, head_dim) = (config.num_kv_heads(), config.head_dim());
        let n_rep = config.num_attention_heads / kv_heads;
        let rope = Rope::for_config(config).tables(layout.positions(), b, t, &device);
        let mask = AttentionMask::new(layout.valid().to_vec(), b, 0, t);
        let mask = ForwardMask::<Ad<I, C>>::new(
            mask,
            [kv_heads, n_rep, head_dim],
            model.attention_blocks(),
            &device,
        );
        let x = Tensor::zeros([b, t, config.hidden_size], &device);
        super::checkpointed_layer(&model.model.layers[0], &x, &rope, &mask.blocked).is_some()
    }

    /// Adds `0.1·N(0, 1)` to every parameter, drawn from the stream.
    struct Perturb(Stream);

    impl<B: Backend> burn::module::ModuleMapper<B> for Perturb {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            param.map(|t| {
                let noise = random::<B, D>(&mut self.0, t.dims(), 0.1);
                (t + noise).detach().require_grad()
            })
        }
    }
}
