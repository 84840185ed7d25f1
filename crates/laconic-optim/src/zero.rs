//! Sharded optimizer state in data-parallel runs: ZeRO stages 1 and 2 (Rajbhandari et al., "ZeRO:
//! Memory Optimizations Toward Training Trillion Parameter Models", SC 2020; DeepSpeed's
//! `zero_optimization.stage`), chosen by `optim.zero_stage`.
//!
//! The trainable parameters, in the module's visiting order, lie end to end in one virtual vector
//! of `N` values, cut into `W` contiguous ranges of `⌊N/W⌋` or `⌈N/W⌉` values ([`ShardLayout`]).
//! Worker `r` keeps AdamW's moments of its range only, so each holds about `1/W` of the optimizer
//! state. One optimizer step:
//! - **stage 1**: the gradients are all-reduced as at stage 0 (every worker holds the sums) and
//!   clipped by their global norm; each worker updates the values of its range; the updated ranges
//!   are all-gathered into every worker's parameters;
//! - **stage 2**: the gradients are reduce-scattered instead, so each worker receives the sums of its
//!   range only and drops the rest; the global norm is the all-reduced sum of the workers' squared
//!   norms; then as stage 1.
//!
//! Every worker ends with the same parameters bit for bit (each value comes from the one worker that
//! computed it). Stage 1 computes what stage 0 computes, value for value; stage 2 differs only in
//! the order of the gradient norm's sum. The transfers are stage 0's ring all-reduce cost
//! (`2(W−1)/W · N`): stage 2's reduce-scatter and the all-gather are its two halves.
//!
//! Checkpoints hold the state gathered into whole parameters ([`gather_state`]), stage 0's format, so
//! a run resumes at any world size and stage: each worker loads the whole state and keeps its range
//! at the next step ([`keep_owned`]).

use std::collections::HashMap;
use std::ops::Range;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::adamw::{host, step_data, AdamW, Moments, NamedTensors, ParamPath};
use crate::clip::{clip_scale, sum_of_squares, summed};
use crate::collective::{all_reduce_bucketed, buckets, cat, Collective, Entry};
use crate::error::{Error, Result};

/// What each worker of a data-parallel run holds (`optim.zero_stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroStage {
    /// Stage 0: every worker holds all the optimizer state.
    #[default]
    Replicated,
    /// Stage 1: each worker holds the optimizer state of its range of the trainable values.
    ShardedState,
    /// Stage 2: stage 1, and each worker keeps only its range of the summed gradients.
    ShardedGradients,
}

/// Where each trainable parameter lies in the virtual vector of all of them, and which range of it
/// each worker owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLayout {
    /// Where each parameter starts, and `N` last.
    starts: Vec<usize>,
    /// Where each worker's range starts, and `N` last.
    bounds: Vec<usize>,
    rank: usize,
}

impl ShardLayout {
    /// The layout of parameters of `numels` values (in visiting order) over `world` workers, seen by
    /// worker `rank`.
    pub fn new(numels: &[usize], rank: usize, world: usize) -> Self {
        let mut starts = Vec::with_capacity(numels.len() + 1);
        let mut total = 0usize;
        for &n in numels {
            starts.push(total);
            total += n;
        }
        starts.push(total);
        let bounds = (0..=world).map(|r| total * r / world).collect();
        Self {
            starts,
            bounds,
            rank,
        }
    }

    /// The values of parameter `index` that worker `rank` owns, as a range within the parameter
    /// (empty when it owns none).
    pub fn owned_by(&self, index: usize, rank: usize) -> Range<usize> {
        let (start, end) = (self.starts[index], self.starts[index + 1]);
        let lo = self.bounds[rank].clamp(start, end);
        let hi = self.bounds[rank + 1].clamp(start, end);
        lo - start..hi - start
    }

    /// The values of parameter `index` that this worker owns.
    pub fn owned(&self, index: usize) -> Range<usize> {
        self.owned_by(index, self.rank)
    }

    /// Values of the parameters `indices` that each worker owns: the part sizes of a gather or a
    /// reduce-scatter over them.
    pub fn counts(&self, indices: &[usize]) -> Vec<usize> {
        (0..self.bounds.len() - 1)
            .map(|rank| indices.iter().map(|&i| self.owned_by(i, rank).len()).sum())
            .collect()
    }

    /// Values of parameter `index`.
    pub fn numel(&self, index: usize) -> usize {
        self.starts[index + 1] - self.starts[index]
    }

    /// Values of the virtual vector this worker owns.
    pub fn owned_numel(&self) -> usize {
        self.bounds[self.rank + 1] - self.bounds[self.rank]
    }
}

/// One trainable parameter of a module, flattened, with its summed or local gradient.
struct Trainable<B: Backend> {
    id: ParamId,
    name: String,
    shape: Vec<usize>,
    value: Tensor<B, 1>,
    grad: Option<Tensor<B, 1>>,
}

impl<B: Backend> Trainable<B> {
    fn numel(&self) -> usize {
        self.value.dims()[0]
    }
}

/// The trainable parameters of `module` (those that require a gradient) in visiting order, each
/// with its gradient taken out of `grads`.
fn trainable<AB: AutodiffBackend, M: AutodiffModule<AB>>(
    module: &M,
    grads: &mut GradientsParams,
) -> Vec<Trainable<AB::InnerBackend>> {
    struct Take<'a, AB: AutodiffBackend> {
        grads: &'a mut GradientsParams,
        path: ParamPath,
        out: Vec<Trainable<AB::InnerBackend>>,
    }
    impl<AB: AutodiffBackend> ModuleVisitor<AB> for Take<'_, AB> {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.path.enter(name, container_type);
        }
        fn exit_module(&mut self, _name: &str, container_type: &str) {
            self.path.exit(container_type);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AB, D>>) {
            let value = param.val();
            if !value.is_require_grad() {
                return;
            }
            let shape = value.dims().to_vec();
            let numel: usize = shape.iter().product();
            let grad = self
                .grads
                .remove::<AB::InnerBackend, D>(param.id)
                .map(|g| g.reshape([numel]));
            self.out.push(Trainable {
                id: param.id,
                name: self.path.name(),
                shape,
                value: value.inner().reshape([numel]),
                grad,
            });
        }
    }
    let mut take = Take::<AB> {
        grads,
        path: ParamPath::default(),
        out: Vec::new(),
    };
    module.visit(&mut take);
    take.out
}

/// Replaces the parameters of `module` named in `values` (flat) by those values.
fn put_values<AB: AutodiffBackend, M: AutodiffModule<AB>>(
    module: M,
    values: HashMap<ParamId, Tensor<AB::InnerBackend, 1>>,
) -> M {
    struct Put<AB: AutodiffBackend>(HashMap<ParamId, Tensor<AB::InnerBackend, 1>>);
    impl<AB: AutodiffBackend> ModuleMapper<AB> for Put<AB> {
        fn map_float<const D: usize>(
            &mut self,
            param: Param<Tensor<AB, D>>,
        ) -> Param<Tensor<AB, D>> {
            let (id, tensor, mapper) = param.consume();
            let Some(value) = self.0.remove(&id) else {
                return Param::from_mapped_value(id, tensor, mapper);
            };
            let mut updated = Tensor::from_inner(value.reshape(tensor.dims()));
            if tensor.is_require_grad() {
                updated = updated.require_grad();
            }
            Param::from_mapped_value(id, updated, mapper)
        }
    }
    module.map(&mut Put::<AB>(values))
}

/// The layout of `params` over the workers of `collective`.
fn layout_of<B: Backend>(params: &[Trainable<B>], collective: &dyn Collective<B>) -> ShardLayout {
    let numels: Vec<usize> = params.iter().map(Trainable::numel).collect();
    ShardLayout::new(&numels, collective.rank(), collective.world_size())
}

/// What a sharded step needs besides the model, its gradients and the optimizer.
#[derive(Clone, Copy)]
pub(crate) struct ShardedStep<'a, B: Backend> {
    pub(crate) stage: ZeroStage,
    pub(crate) collective: &'a dyn Collective<B>,
    pub(crate) bucket_elems: usize,
    /// `grad_clip` (0: no clipping).
    pub(crate) max_norm: f32,
    pub(crate) lr: f64,
    /// The optimizer step, for errors.
    pub(crate) step: u64,
}

/// One optimizer update of `module` from this worker's `grads` at ZeRO stage 1 or 2 (module docs),
/// returning the updated module and the global gradient norm before clipping.
///
/// # Errors
/// [`Error::NonFinite`] for a non-finite gradient norm (nothing is updated); the collective's.
pub(crate) fn sharded_step<AB: AutodiffBackend, M: AutodiffModule<AB>>(
    module: M,
    mut grads: GradientsParams,
    optimizer: &mut AdamW<AB::InnerBackend>,
    step: &ShardedStep<'_, AB::InnerBackend>,
) -> Result<(M, f64)> {
    let collective = step.collective;
    let mut params = trainable::<AB, M>(&module, &mut grads);
    drop(grads);
    let Some(device) = params.first().map(|p| p.value.device()) else {
        return Ok((module, 0.0));
    };
    let layout = layout_of(&params, collective);
    keep_owned(optimizer, &params, &layout)?;
    // The gradients move out of `params`: once reduced, only this worker's ranges stay alive.
    let grads = params.iter_mut().map(|p| p.grad.take());
    let (present, mut shards, norm) = match step.stage {
        ZeroStage::Replicated | ZeroStage::ShardedState => {
            reduced_shards(grads, &layout, step, &device)?
        }
        ZeroStage::ShardedGradients => scattered_shards(grads, &layout, step, &device)?,
    };
    if !norm.is_finite() {
        return Err(Error::NonFinite {
            what: "grad_norm",
            value: norm,
            step: step.step,
        });
    }
    if let Some(scale) = clip_scale(norm, step.max_norm) {
        shards = shards
            .into_iter()
            .map(|s| s.map(|s| s.mul_scalar(scale)))
            .collect();
    }
    let updated: Vec<Option<Tensor<AB::InnerBackend, 1>>> = present
        .iter()
        .zip(shards)
        .map(|(&i, shard)| {
            shard.map(|grad| {
                let p = &params[i];
                let owned = layout.owned(i);
                let value = p.value.clone().narrow(0, owned.start, owned.len());
                optimizer.update_flat(&p.name, &p.shape, owned.start, value, grad, step.lr)
            })
        })
        .collect();
    let gathered = gather_owned(
        collective,
        &layout,
        &present,
        updated,
        (step.bucket_elems, true),
        &device,
    )?;
    let values = present
        .iter()
        .zip(gathered)
        .map(|(&i, value)| (params[i].id, value))
        .collect();
    Ok((put_values(module, values), norm))
}

/// This worker's shards of the summed gradients and what the sharded step needs with them: the
/// indices of the parameters with a gradient on any worker, this worker's range of each (`None`
/// where it owns none of it), and the global norm.
type Shards<B> = (Vec<usize>, Vec<Option<Tensor<B, 1>>>, f64);

/// Stage 1: all-reduced gradients, the norm summed as stage 0 sums it, then this worker's ranges.
fn reduced_shards<B: Backend>(
    grads: impl Iterator<Item = Option<Tensor<B, 1>>>,
    layout: &ShardLayout,
    step: &ShardedStep<'_, B>,
    device: &B::Device,
) -> Result<Shards<B>> {
    let entries: Vec<Entry<B>> = grads
        .enumerate()
        .map(|(i, grad)| Entry {
            numel: layout.numel(i),
            grad,
        })
        .collect();
    let reduced = all_reduce_bucketed(step.collective, entries, step.bucket_elems, device)?;
    let present: Vec<usize> = (0..reduced.len())
        .filter(|&i| reduced[i].is_some())
        .collect();
    let full: Vec<Tensor<B, 1>> = reduced.into_iter().flatten().collect();
    let norm = sum_of_squares(full.iter().map(|g| g.clone().square().sum()).collect()).sqrt();
    let shards = present
        .iter()
        .zip(full)
        .map(|(&i, grad)| {
            let owned = layout.owned(i);
            (!owned.is_empty()).then(|| grad.narrow(0, owned.start, owned.len()))
        })
        .collect();
    Ok((present, shards, norm))
}

/// Stage 2: reduce-scattered gradients, in buckets of about `bucket_elems` values; the norm is the
/// all-reduced sum of the workers' squared norms of their ranges.
fn scattered_shards<B: Backend>(
    grads: impl Iterator<Item = Option<Tensor<B, 1>>>,
    layout: &ShardLayout,
    step: &ShardedStep<'_, B>,
    device: &B::Device,
) -> Result<Shards<B>> {
    let collective = step.collective;
    let grads: Vec<Option<Tensor<B, 1>>> = grads.collect();
    let local: Vec<u64> = grads.iter().map(|g| u64::from(g.is_some())).collect();
    let anywhere = collective.all_reduce_u64(&local, device)?;
    let present: Vec<usize> = (0..grads.len()).filter(|&i| anywhere[i] > 0).collect();
    let numel = |i: usize| layout.numel(i);
    let mut grads = grads;
    let mut shards = Vec::with_capacity(present.len());
    for bucket in buckets(&present, numel, step.bucket_elems) {
        let full: Vec<Tensor<B, 1>> = bucket
            .iter()
            .map(|&i| {
                grads[i]
                    .take()
                    .unwrap_or_else(|| Tensor::zeros([numel(i)], device))
            })
            .collect();
        let mine = collective.reduce_scatter(cat(full, device), &layout.counts(bucket))?;
        shards.extend(split_owned(mine, layout, bucket));
    }
    // The squared norm crosses as a tensor of the gradients' dtype (no rounding to f32 on the
    // host): with clipping on, the scale it sets reaches every later step through the moments.
    let mut squares: Vec<Tensor<B, 1>> = shards
        .iter()
        .flatten()
        .map(|s| s.clone().square().sum())
        .collect();
    squares.push(Tensor::zeros([1], device));
    let total = collective.all_reduce_sum(summed(squares))?;
    let norm = total.into_scalar().elem::<f64>().sqrt();
    Ok((present, shards, norm))
}

/// `mine` (this worker's values of the parameters `bucket`, end to end) cut into one shard per
/// parameter (`None` where it owns none).
fn split_owned<B: Backend>(
    mine: Tensor<B, 1>,
    layout: &ShardLayout,
    bucket: &[usize],
) -> Vec<Option<Tensor<B, 1>>> {
    let mut start = 0;
    bucket
        .iter()
        .map(|&i| {
            let len = layout.owned(i).len();
            start += len;
            (len > 0).then(|| mine.clone().narrow(0, start - len, len))
        })
        .collect()
}

/// The whole values of the parameters `present`, all-gathered in buckets from each worker's `owned`
/// shards of them (`None` where a worker owns none). A worker that does not `keep` them takes part
/// and drops each bucket (an empty result).
fn gather_owned<B: Backend>(
    collective: &dyn Collective<B>,
    layout: &ShardLayout,
    present: &[usize],
    owned: Vec<Option<Tensor<B, 1>>>,
    (bucket_elems, keep): (usize, bool),
    device: &B::Device,
) -> Result<Vec<Tensor<B, 1>>> {
    let mut owned = owned.into_iter();
    let mut whole = Vec::with_capacity(present.len());
    for bucket in buckets(present, |i| layout.numel(i), bucket_elems) {
        let parts: Vec<Tensor<B, 1>> = owned.by_ref().take(bucket.len()).flatten().collect();
        let gathered = collective.all_gather(cat(parts, device), &layout.counts(bucket))?;
        if !keep {
            continue;
        }
        let mut start = 0;
        for &i in bucket {
            whole.push(gathered.clone().narrow(0, start, layout.numel(i)));
            start += layout.numel(i);
        }
    }
    Ok(whole)
}

/// Narrows every parameter's moments in `optimizer` to the range this worker owns under `layout`,
/// and drops those of parameters it owns none of: after a resume (whole moments) or a change of
/// world size. Moments that already cover just the owned range stay as they are.
///
/// # Errors
/// Moments that do not cover the owned range (state sharded under another layout).
fn keep_owned<B: Backend>(
    optimizer: &mut AdamW<B>,
    params: &[Trainable<B>],
    layout: &ShardLayout,
) -> Result<()> {
    for (i, param) in params.iter().enumerate() {
        let Some(moments) = optimizer.moments.get_mut(&param.name) else {
            continue;
        };
        let owned = layout.owned(i);
        let held = moments.offset..moments.offset + moments.len();
        if held == owned {
            continue;
        }
        if owned.is_empty() {
            optimizer.moments.remove(&param.name);
            continue;
        }
        if owned.start < held.start || owned.end > held.end {
            return Err(Error::Input(format!(
                "the optimizer state of `{}` covers values {held:?}, this worker owns {owned:?}",
                param.name
            )));
        }
        let from = owned.start - held.start;
        moments.exp_avg = moments.exp_avg.clone().narrow(0, from, owned.len());
        moments.exp_avg_sq = moments.exp_avg_sq.clone().narrow(0, from, owned.len());
        moments.offset = owned.start;
    }
    Ok(())
}

/// The optimizer state of a ZeRO run as one process would hold it, in
/// [`AdamW::to_tensors`]'s format, on worker `root` (the others get `None`): every worker calls
/// this with the same `module`; the workers' ranges of the moments are gathered bucket by bucket,
/// and each parameter's step count comes from the worker that owns its first value.
///
/// # Errors
/// The collective's.
pub fn gather_state<AB: AutodiffBackend, M: AutodiffModule<AB>>(
    optimizer: &AdamW<AB::InnerBackend>,
    module: &M,
    collective: &dyn Collective<AB::InnerBackend>,
    (bucket_elems, root): (usize, usize),
) -> Result<Option<NamedTensors>> {
    let keep = collective.rank() == root;
    let params = trainable::<AB, M>(module, &mut GradientsParams::new());
    let Some(device) = params.first().map(|p| p.value.device()) else {
        return Ok(keep.then(Vec::new));
    };
    let layout = layout_of(&params, collective);
    let moments: Vec<_> = params
        .iter()
        .map(|p| optimizer.moments.get(&p.name))
        .collect();
    let local: Vec<u64> = moments.iter().map(|m| u64::from(m.is_some())).collect();
    let first_steps: Vec<u64> = (0..params.len())
        .map(|i| {
            let owns_first = layout.owned(i).start == 0 && !layout.owned(i).is_empty();
            moments[i].filter(|_| owns_first).map_or(0, |m| m.step)
        })
        .collect();
    let held = collective.all_reduce_u64(&local, &device)?;
    let steps = collective.all_reduce_u64(&first_steps, &device)?;
    let present: Vec<usize> = (0..params.len()).filter(|&i| held[i] > 0).collect();
    // The owned range of what each worker holds: the whole moments, before the first step after
    // a resume, or exactly the owned range.
    let gather = |pick: fn(&Moments<AB::InnerBackend>) -> &Tensor<AB::InnerBackend, 1>| {
        let owned = present
            .iter()
            .map(|&i| {
                let owned = layout.owned(i);
                moments[i].filter(|_| !owned.is_empty()).map(|m| {
                    pick(m)
                        .clone()
                        .narrow(0, owned.start - m.offset, owned.len())
                })
            })
            .collect();
        gather_owned(
            collective,
            &layout,
            &present,
            owned,
            (bucket_elems, keep),
            &device,
        )
    };
    let exp_avg = gather(|m| &m.exp_avg)?;
    let exp_avg_sq = gather(|m| &m.exp_avg_sq)?;
    if !keep {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(3 * present.len());
    for ((&i, avg), sq) in present.iter().zip(exp_avg).zip(exp_avg_sq) {
        let (name, shape) = (&params[i].name, &params[i].shape);
        out.push((format!("exp_avg.{name}"), host(avg, shape)));
        out.push((format!("exp_avg_sq.{name}"), host(sq, shape)));
        out.push((format!("step.{name}"), step_data(steps[i])));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_tile_the_virtual_vector_in_near_equal_parts() {
        // Parameters of 5, 2 and 4 values (11 in all) over 3 workers: ranges 0..3, 3..7, 7..11.
        let layouts: Vec<ShardLayout> =
            (0..3).map(|r| ShardLayout::new(&[5, 2, 4], r, 3)).collect();
        assert_eq!(layouts[0].owned(0), 0..3);
        assert_eq!(layouts[1].owned(0), 3..5);
        assert_eq!(layouts[1].owned(1), 0..2);
        assert_eq!(layouts[2].owned(1), 2..2);
        assert_eq!(layouts[2].owned(2), 0..4);
        assert_eq!(layouts[0].counts(&[0, 2]), [3, 2, 4]);
        assert_eq!(layouts[0].counts(&[1]), [0, 2, 0]);
        let owned: Vec<usize> = layouts.iter().map(ShardLayout::owned_numel).collect();
        assert_eq!(owned, [3, 4, 4]);
        for index in 0..3 {
            let parts: usize = (0..3).map(|r| layouts[0].owned_by(index, r).len()).sum();
            assert_eq!(parts, [5, 2, 4][index]);
        }
    }

    #[test]
    fn buckets_close_once_full() {
        let sizes = [4, 4, 1, 9, 2];
        let b = buckets(&[0, 1, 2, 3, 4], |i| sizes[i], 5);
        assert_eq!(b, [&[0, 1][..], &[2, 3], &[4]]);
        assert_eq!(buckets(&[0, 1], |i| sizes[i], 0), [&[0][..], &[1]]);
        assert!(buckets(&[], |i| sizes[i], 5).is_empty());
    }
}
