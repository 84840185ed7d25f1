//! AdamW with decoupled weight decay, step for step as `torch.optim.AdamW` (Loshchilov & Hutter,
//! "Decoupled Weight Decay Regularization", ICLR 2019, arXiv 1711.05101, Algorithm 2).
//!
//! Per parameter `θ` with gradient `g` at its `t`-th update:
//! ```text
//! θ ← θ · (1 − lr·λ)                          decoupled weight decay
//! m ← β1·m + (1 − β1)·g
//! v ← β2·v + (1 − β2)·g²
//! θ ← θ − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + ε)
//! ```
//! burn's own `AdamW` computes the same update (checked against the PyTorch fixture in the tests), but
//! its state is keyed by `ParamId`, which a model reloaded from a checkpoint does not keep. This one
//! keys the moments by the parameter's dotted name (`model.layers.0.self_attn.q_proj.weight`, the
//! safetensors name), so optimizer state saved with a checkpoint resumes onto the reloaded model.

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, ElementConversion};

use laconic_kernels::{adamw_step, AdamWCoefficients};

use crate::error::{Error, Result};

/// Named host tensors in their dtypes (moments in the backend's float dtype, step counts as I64),
/// what the state is saved as.
pub type NamedTensors = Vec<(String, TensorData)>;

/// AdamW hyper-parameters, PyTorch's defaults set explicitly (burn's differ: ε 1e-5, λ 1e-4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWSettings {
    /// `(β1, β2)`, default `(0.9, 0.999)`.
    pub betas: (f32, f32),
    /// `ε`, default 1e-8.
    pub eps: f32,
    /// `λ`, default 0.01 (`torch.optim.AdamW`).
    pub weight_decay: f32,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        Self {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// First and second moments of one parameter (flattened), or of the values `offset..offset + len`
/// of it that this rank owns under ZeRO ([`crate::zero`]), and its update count `t`.
#[derive(Debug, Clone)]
pub(crate) struct Moments<B: Backend> {
    /// The whole parameter's shape.
    pub(crate) shape: Vec<usize>,
    /// The first value the moments cover (0 for a whole parameter).
    pub(crate) offset: usize,
    /// `[len]`.
    pub(crate) exp_avg: Tensor<B, 1>,
    /// `[len]`.
    pub(crate) exp_avg_sq: Tensor<B, 1>,
    pub(crate) step: u64,
}

impl<B: Backend> Moments<B> {
    /// Values each moment covers.
    pub(crate) fn len(&self) -> usize {
        self.exp_avg.dims()[0]
    }

    /// Whether the moments cover the whole parameter.
    fn is_whole(&self) -> bool {
        self.offset == 0 && self.len() == self.shape.iter().product::<usize>()
    }
}

/// The AdamW optimizer and its state, on the inner (non-autodiff) backend `B`.
#[derive(Debug, Clone)]
pub struct AdamW<B: Backend> {
    settings: AdamWSettings,
    pub(crate) moments: BTreeMap<String, Moments<B>>,
}

impl<B: Backend> AdamW<B> {
    /// A fresh optimizer (no state).
    pub fn new(settings: AdamWSettings) -> Self {
        Self {
            settings,
            moments: BTreeMap::new(),
        }
    }

    /// The hyper-parameters.
    pub fn settings(&self) -> &AdamWSettings {
        &self.settings
    }

    /// Applies one update with learning rate `lr` to every parameter of `module` that has a gradient.
    pub fn step<AB, M>(&mut self, module: M, mut grads: GradientsParams, lr: f64) -> M
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let mut mapper = Update::<AB> {
            optimizer: self,
            grads: &mut grads,
            lr,
            path: ParamPath::default(),
        };
        module.map(&mut mapper)
    }

    /// The state as named host tensors: `exp_avg.<param>`, `exp_avg_sq.<param>` (the parameter's
    /// shape, the moments' dtype) and `step.<param>` (`[1]`, I64: exact at any count).
    ///
    /// # Errors
    /// When the state is a ZeRO shard (part of a parameter's moments); gather it first
    /// ([`crate::zero`]).
    pub fn to_tensors(&self) -> Result<NamedTensors> {
        let mut out = Vec::with_capacity(3 * self.moments.len());
        for (name, m) in &self.moments {
            if !m.is_whole() {
                return Err(Error::Input(format!(
                    "the optimizer state of `{name}` is a shard (values {}..{}); gather it first",
                    m.offset,
                    m.offset + m.len()
                )));
            }
            out.push((format!("exp_avg.{name}"), host(m.exp_avg.clone(), &m.shape)));
            out.push((
                format!("exp_avg_sq.{name}"),
                host(m.exp_avg_sq.clone(), &m.shape),
            ));
            out.push((format!("step.{name}"), step_data(m.step)));
        }
        Ok(out)
    }

    /// Replaces the state with the named tensors written by [`AdamW::to_tensors`] (or by earlier
    /// versions, whose step counts are f32).
    ///
    /// # Errors
    /// When a parameter lacks one of its three tensors, their shapes disagree, or a step count is
    /// not a non-negative whole number.
    pub fn load_tensors(
        &mut self,
        tensors: &BTreeMap<String, TensorData>,
        device: &B::Device,
    ) -> Result<()> {
        let mut moments = BTreeMap::new();
        for (key, avg) in tensors {
            let Some(name) = key.strip_prefix("exp_avg.") else {
                continue;
            };
            let get = |prefix: &str| {
                tensors.get(&format!("{prefix}.{name}")).ok_or_else(|| {
                    Error::Input(format!(
                        "optimizer state has `exp_avg.{name}` but no `{prefix}.{name}`"
                    ))
                })
            };
            let (sq, step) = (get("exp_avg_sq")?, get("step")?);
            if sq.shape != avg.shape || step.num_elements() != 1 {
                return Err(Error::Input(format!(
                    "optimizer state for `{name}`: exp_avg {:?}, exp_avg_sq {:?}, step {} values",
                    avg.shape.as_slice(),
                    sq.shape.as_slice(),
                    step.num_elements()
                )));
            }
            let step = counter(step).map_err(|e| Error::Input(format!("`step.{name}`: {e}")))?;
            let flat = |data: &TensorData| {
                let n = data.num_elements();
                let data = TensorData::from_bytes(data.bytes.clone(), [n], data.dtype);
                Tensor::<B, 1>::from_data(data, device)
            };
            moments.insert(
                name.to_string(),
                Moments {
                    shape: avg.shape.to_vec(),
                    offset: 0,
                    exp_avg: flat(avg),
                    exp_avg_sq: flat(sq),
                    step,
                },
            );
        }
        self.moments = moments;
        Ok(())
    }

    /// Values held by the state: both moments of every parameter with state (of this rank's
    /// shard of them under ZeRO).
    pub fn state_numel(&self) -> usize {
        self.moments.values().map(|m| 2 * m.len()).sum()
    }

    /// Bytes held by the state: both moments at their dtype, and an 8-byte step count per parameter.
    pub fn state_bytes(&self) -> usize {
        self.moments
            .values()
            .map(|m| 2 * m.len() * m.exp_avg.dtype().size() + std::mem::size_of::<u64>())
            .sum()
    }

    /// Names of the parameters with state.
    pub fn state_names(&self) -> Vec<&str> {
        self.moments.keys().map(String::as_str).collect()
    }

    /// One AdamW update of a single parameter (PyTorch's `_single_tensor_adamw` order of operations).
    fn update<const D: usize>(
        &mut self,
        name: &str,
        param: Tensor<B, D>,
        grad: Tensor<B, D>,
        lr: f64,
    ) -> Tensor<B, D> {
        let shape = param.dims();
        let numel = shape.iter().product::<usize>();
        let updated = self.update_flat(
            name,
            &shape,
            0,
            param.reshape([numel]),
            grad.reshape([numel]),
            lr,
        );
        updated.reshape(shape)
    }

    /// One AdamW update of the values `offset..offset + len` of parameter `name` (whose whole
    /// shape is `shape`), given as flat `param` and `grad` of `len` values: the whole parameter, or
    /// this rank's shard of it under ZeRO. Its moments, if any, cover exactly these values.
    pub(crate) fn update_flat(
        &mut self,
        name: &str,
        shape: &[usize],
        offset: usize,
        param: Tensor<B, 1>,
        grad: Tensor<B, 1>,
        lr: f64,
    ) -> Tensor<B, 1> {
        let AdamWSettings {
            betas: (beta1, beta2),
            eps,
            weight_decay,
        } = self.settings;
        let len = param.dims()[0];
        let device = param.device();
        let state = self
            .moments
            .entry(name.to_string())
            .or_insert_with(|| Moments {
                shape: shape.to_vec(),
                offset,
                exp_avg: Tensor::zeros([len], &device),
                exp_avg_sq: Tensor::zeros([len], &device),
                step: 0,
            });
        debug_assert_eq!((state.offset, state.len()), (offset, len), "{name}");
        state.step += 1;
        // Bias corrections in f64, as PyTorch computes them in Python floats.
        let t = state.step as i32;
        let bias1 = 1.0 - f64::from(beta1).powi(t);
        let bias2_sqrt = (1.0 - f64::from(beta2).powi(t)).sqrt();
        // One total op (`laconic_kernels::adamw_step`): a single pass on flex, burn ops elsewhere.
        let coefficients = AdamWCoefficients {
            decay: 1.0 - lr * f64::from(weight_decay),
            beta1,
            beta2,
            bias2_sqrt,
            eps,
            step_size: lr / bias1,
        };
        // Take the moments out of the state so the kernel may update them in place.
        let exp_avg = std::mem::replace(&mut state.exp_avg, Tensor::empty([0], &device));
        let exp_avg_sq = std::mem::replace(&mut state.exp_avg_sq, Tensor::empty([0], &device));
        let [param, exp_avg, exp_avg_sq] =
            adamw_step(param, grad, exp_avg, exp_avg_sq, &coefficients);
        state.exp_avg = exp_avg;
        state.exp_avg_sq = exp_avg_sq;
        param
    }
}

/// The dotted name of the parameter a [`ModuleMapper`] or [`burn::module::ModuleVisitor`] is at,
/// as laconic-model's checkpoints name it: an enum variant (burn's `Enum:` containers, e.g. a
/// layer's dense or sparse `mlp`) is not part of the name.
#[derive(Debug, Default)]
pub(crate) struct ParamPath(Vec<String>);

impl ParamPath {
    pub(crate) fn enter(&mut self, name: &str, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.0.push(name.to_string());
        }
    }

    pub(crate) fn exit(&mut self, container_type: &str) {
        if !container_type.starts_with("Enum:") {
            self.0.pop();
        }
    }

    pub(crate) fn name(&self) -> String {
        self.0.join(".")
    }
}

/// Whether every element of `tensors` is finite, as far as f32 sums can tell: one reduction per
/// tensor on the device and one scalar read back. A NaN or ±inf anywhere makes its sum non-finite; a
/// sum also overflows when the finite values are astronomically large (|Σ x| > 3.4e38), which counts
/// as non-finite too (the next forward would overflow anyway).
pub fn all_finite<B: Backend, const D: usize>(
    tensors: impl IntoIterator<Item = Tensor<B, D>>,
) -> bool {
    let probe = tensors.into_iter().map(|t| t.sum()).reduce(|a, b| a + b);
    probe.is_none_or(|p| {
        let value: f64 = p.into_scalar().elem();
        value.is_finite()
    })
}

struct Update<'a, AB: AutodiffBackend> {
    optimizer: &'a mut AdamW<AB::InnerBackend>,
    grads: &'a mut GradientsParams,
    lr: f64,
    path: ParamPath,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for Update<'_, AB> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, container_type: &str) {
        self.path.exit(container_type);
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<AB::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let name = self.path.name();
        let updated = self.optimizer.update(&name, tensor.inner(), grad, self.lr);
        let mut tensor = Tensor::from_inner(updated);
        if require_grad {
            tensor = tensor.require_grad();
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// A flat moment on the host with the parameter's `shape`, in the moment's dtype.
pub(crate) fn host<B: Backend>(flat: Tensor<B, 1>, shape: &[usize]) -> TensorData {
    let data = flat.into_data();
    TensorData::from_bytes(data.bytes, shape.to_vec(), data.dtype)
}

/// A step count as saved: `[1]`, I64.
pub(crate) fn step_data(step: u64) -> TensorData {
    let step = i64::try_from(step).expect("a step count fits in an i64");
    TensorData::new(vec![step], [1])
}

/// The count held by a one-value tensor: I64/U64/I32/U32 as they are, or an f32 (the counters
/// of state files written before they were integers) that must be a whole number.
///
/// # Errors
/// Another dtype, a negative or fractional value, or not exactly one value.
pub(crate) fn counter(data: &TensorData) -> std::result::Result<u64, String> {
    let wrong = || format!("expected one non-negative whole number, found {data:?}");
    if data.num_elements() != 1 {
        return Err(wrong());
    }
    let value = match data.dtype {
        DType::I64 => u64::try_from(data.as_slice::<i64>().map_err(|_| wrong())?[0]).ok(),
        DType::U64 => Some(data.as_slice::<u64>().map_err(|_| wrong())?[0]),
        DType::I32 => u64::try_from(data.as_slice::<i32>().map_err(|_| wrong())?[0]).ok(),
        DType::U32 => Some(u64::from(data.as_slice::<u32>().map_err(|_| wrong())?[0])),
        DType::F32 => {
            let v = data.as_slice::<f32>().map_err(|_| wrong())?[0];
            (v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f32).then_some(v as u64)
        }
        _ => None,
    };
    value.ok_or_else(wrong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestBackend;
    use burn::backend::Autodiff;
    use burn::module::Module;

    type AD = Autodiff<TestBackend>;

    #[derive(Module, Debug)]
    struct One<B: Backend> {
        w: Param<Tensor<B, 1>>,
    }

    fn one(values: [f32; 2]) -> One<AD> {
        One {
            w: Param::from_tensor(Tensor::from_floats(values, &Default::default())),
        }
    }

    fn step(
        optimizer: &mut AdamW<TestBackend>,
        module: One<AD>,
        grad: [f32; 2],
        lr: f64,
    ) -> One<AD> {
        let mut grads = GradientsParams::new();
        grads.register::<TestBackend, 1>(
            module.w.id,
            Tensor::from_floats(grad, &Default::default()),
        );
        optimizer.step(module, grads, lr)
    }

    #[test]
    fn first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // t = 1: m̂ = g, v̂ = g², so θ ← θ(1 − lr·λ) − lr·g/(|g| + ε).
        let mut optimizer = AdamW::new(AdamWSettings {
            weight_decay: 0.5,
            ..AdamWSettings::default()
        });
        let module = step(&mut optimizer, one([1.0, -2.0]), [0.3, -4.0], 0.1);
        let w: Vec<f32> = module.w.val().into_data().into_vec().unwrap();
        assert!((w[0] - (0.95 - 0.1)).abs() < 1e-6, "{w:?}");
        assert!((w[1] - (-1.9 + 0.1)).abs() < 1e-6, "{w:?}");
        assert_eq!(optimizer.state_names(), ["w"]);
    }

    #[test]
    fn state_round_trips_through_named_tensors() {
        let mut a = AdamW::new(AdamWSettings::default());
        let module = step(&mut a, one([1.0, -2.0]), [0.3, -4.0], 0.1);
        let tensors: BTreeMap<String, TensorData> = a.to_tensors().unwrap().into_iter().collect();
        assert_eq!(tensors["step.w"], TensorData::new(vec![1i64], [1]));
        let mut b = AdamW::new(AdamWSettings::default());
        b.load_tensors(&tensors, &Default::default()).unwrap();
        let x = step(&mut a, module.clone(), [1.0, 1.0], 0.1);
        let y = step(&mut b, module, [1.0, 1.0], 0.1);
        assert_eq!(x.w.val().into_data(), y.w.val().into_data());
        let mut broken = tensors.clone();
        broken.remove("exp_avg_sq.w");
        let err = AdamW::<TestBackend>::new(AdamWSettings::default())
            .load_tensors(&broken, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("exp_avg_sq.w"), "{err}");
    }

    /// Step counts are I64: past 2^24 (where f32 stops counting exactly) they come back exact;
    /// the f32 counts of older state files still load, and a fractional one is refused.
    #[test]
    fn step_counts_past_2_pow_24_round_trip_exactly() {
        let mut a = AdamW::new(AdamWSettings::default());
        step(&mut a, one([1.0, -2.0]), [0.3, -4.0], 0.1);
        a.moments.get_mut("w").unwrap().step = (1 << 24) + 1;
        let mut tensors: BTreeMap<String, TensorData> =
            a.to_tensors().unwrap().into_iter().collect();
        let mut b = AdamW::<TestBackend>::new(AdamWSettings::default());
        b.load_tensors(&tensors, &Default::default()).unwrap();
        assert_eq!(b.moments["w"].step, (1 << 24) + 1);
        tensors.insert("step.w".into(), TensorData::new(vec![7.0f32], [1]));
        b.load_tensors(&tensors, &Default::default()).unwrap();
        assert_eq!(b.moments["w"].step, 7);
        tensors.insert("step.w".into(), TensorData::new(vec![7.5f32], [1]));
        let err = b
            .load_tensors(&tensors, &Default::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("step.w"), "{err}");
    }
}
