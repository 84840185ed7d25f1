//! Data-parallel updates equal the single-worker update of the whole batch: W workers (threads
//! summing through a host-side collective), each holding a contiguous shard of whole groups (an
//! empty one included), end with the parameters and metrics of one process, in every
//! `loss_agg_mode` and ZeRO stage, with shuffled mini-batches over two epochs. f64, so the only
//! differences left are the summation order of the gradients; the metrics cross the collective in
//! f32. Sharded optimizer state is gathered into stage 0's checkpoint format and resumes at another
//! world size.
//!
//! Its own test binary: burn 0.21 keeps one default float dtype per device and process.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use common::tiny_on;
use laconic_model::safetensors::SafetensorsIndex;
use laconic_model::CausalLm;
use laconic_optim::collective::{all_gather_bytes, all_gather_u64, all_reduce_u64};
use laconic_optim::{
    Collective, LossAggMode, OptimConfig, PolicyUpdater, UpdateBatch, UpdateMetrics,
};

type AD64 = Autodiff<NdArray<f64>>;
type Inner = NdArray<f64>;

/// Workers as threads of one process, summing on the host in rank order.
struct Threads {
    rank: usize,
    world: usize,
    shared: Arc<(Barrier, Mutex<Vec<Vec<f64>>>)>,
}

impl Collective<Inner> for Threads {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&self, tensor: Tensor<Inner, 1>) -> laconic_optim::Result<Tensor<Inner, 1>> {
        let device = tensor.device();
        let values = tensor
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .unwrap();
        let (barrier, slots) = &*self.shared;
        slots.lock().unwrap()[self.rank] = values;
        barrier.wait();
        let sum = {
            let slots = slots.lock().unwrap();
            let mut sum = vec![0.0; slots[0].len()];
            for slot in slots.iter() {
                assert_eq!(slot.len(), sum.len(), "workers reduced different lengths");
                for (s, v) in sum.iter_mut().zip(slot) {
                    *s += v;
                }
            }
            sum
        };
        barrier.wait();
        let n = sum.len();
        Ok(Tensor::from_data(TensorData::new(sum, [n]), &device))
    }
}

fn collectives(world: usize) -> Vec<Threads> {
    let shared = Arc::new((Barrier::new(world), Mutex::new(vec![Vec::new(); world])));
    (0..world)
        .map(|rank| Threads {
            rank,
            world,
            shared: shared.clone(),
        })
        .collect()
}

/// Every parameter, flattened in visiting order, in f64.
fn params(model: &CausalLm<AD64>) -> Vec<f64> {
    struct Collect(Vec<f64>);
    impl ModuleVisitor<AD64> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AD64, D>>) {
            let data = param.val().into_data().convert::<f64>();
            self.0.extend(data.into_vec::<f64>().unwrap());
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// The largest `|a − b|` over two parameter lists.
fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs()))
}

/// The sequences of `batch` whose group is in `groups`.
fn shard(batch: &UpdateBatch, groups: &[usize]) -> UpdateBatch {
    UpdateBatch {
        sequences: batch
            .sequences
            .iter()
            .filter(|s| groups.contains(&s.group))
            .cloned()
            .collect(),
    }
}

fn config(mode: LossAggMode) -> OptimConfig {
    OptimConfig {
        lr: 1e-3,
        loss_agg_mode: mode,
        ppo_mini_batch_size: Some(2),
        ppo_micro_batch_size: 2,
        ppo_epochs: 2,
        shuffle: true,
        entropy_coeff: 0.01,
        ..OptimConfig::default()
    }
}

/// Each worker's parameters and metrics after one `step_with` on its shard.
fn data_parallel(
    model: &CausalLm<AD64>,
    config: &OptimConfig,
    shards: Vec<UpdateBatch>,
) -> Vec<(Vec<f64>, UpdateMetrics)> {
    workers(model, config, None, shards)
        .into_iter()
        .map(|w| (w.params, w.metrics))
        .collect()
}

/// What a worker of [`workers`] ends with.
struct Worker {
    params: Vec<f64>,
    metrics: UpdateMetrics,
    state_numel: usize,
    /// The gathered optimizer state, written by worker 0 to the `save` path.
    saved: bool,
}

/// One `step_with` per worker on its shard, each worker first loading the optimizer state `resume`
/// (a file) when given, and afterwards gathering its state into `save` when given.
fn workers_saving(
    model: &CausalLm<AD64>,
    config: &OptimConfig,
    resume: Option<&Path>,
    save: Option<&Path>,
    shards: Vec<UpdateBatch>,
) -> Vec<Worker> {
    let handles: Vec<_> = collectives(shards.len())
        .into_iter()
        .zip(shards)
        .map(|(collective, shard)| {
            let (model, config) = (model.clone(), config.clone());
            let resume = resume.map(Path::to_path_buf);
            let save = save.map(Path::to_path_buf);
            std::thread::spawn(move || {
                let mut updater = PolicyUpdater::new(config, &model).unwrap();
                if let Some(path) = resume {
                    updater.load_state(path, &model).unwrap();
                }
                let (model, metrics) = updater.step_with(model, &shard, None, &collective).unwrap();
                let state = updater.gather_state(&model, &collective).unwrap();
                let saved = match (state, save) {
                    (Some(state), Some(path)) => {
                        updater.write_state(state, path).unwrap();
                        true
                    }
                    _ => false,
                };
                Worker {
                    params: params(&model),
                    metrics,
                    state_numel: updater.optimizer_state_numel(),
                    saved,
                }
            })
        })
        .collect();
    handles.into_iter().map(|w| w.join().unwrap()).collect()
}

fn workers(
    model: &CausalLm<AD64>,
    config: &OptimConfig,
    resume: Option<&Path>,
    shards: Vec<UpdateBatch>,
) -> Vec<Worker> {
    workers_saving(model, config, resume, None, shards)
}

#[test]
fn sharded_updates_equal_the_whole_batch_update() {
    let model = tiny_on::<AD64>(false);
    let (batch, _) = common::batch(&model);
    let layouts: [&[&[usize]]; 3] = [&[&[0, 1], &[2]], &[&[0], &[1], &[2]], &[&[0], &[1, 2], &[]]];
    let mut worst = 0f64;
    for mode in LossAggMode::ALL {
        let mut updater = PolicyUpdater::new(config(mode), &model).unwrap();
        let (whole, whole_metrics) = updater.step(model.clone(), &batch, None).unwrap();
        let whole_state = updater.optimizer_state_numel();
        let whole = params(&whole);
        let scale = whole.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (stage, layout) in (0..=2).flat_map(|stage| layouts.map(|l| (stage, l))) {
            let config = OptimConfig {
                zero_stage: stage,
                ..config(mode)
            };
            let shards = layout.iter().map(|groups| shard(&batch, groups)).collect();
            let workers = workers(&model, &config, None, shards);
            for (rank, worker) in workers.iter().enumerate() {
                let diff = max_abs_diff(&whole, &worker.params);
                worst = worst.max(diff);
                let at = format!("{mode:?}, ZeRO-{stage}, shards {layout:?}, worker {rank}");
                assert!(diff <= 1e-12 * scale, "{at}: max |Δθ| = {diff:e}");
                let (a, b) = (whole_metrics.to_map(), worker.metrics.to_map());
                for (key, x) in &a {
                    let y = b[key];
                    assert!(
                        (x - y).abs() <= 1e-5 * x.abs().max(1e-6),
                        "{at}: {key} {x} vs {y}"
                    );
                }
                // Replicas stay bit-identical: every value comes from the worker that owns it.
                assert!(worker.params == workers[0].params, "{at}: replicas differ");
            }
            let states: Vec<usize> = workers.iter().map(|w| w.state_numel).collect();
            if stage == 0 {
                assert!(states.iter().all(|&n| n == whole_state), "{states:?}");
            } else {
                // Each worker holds its range of both moments: all of them once, evenly.
                let world = states.len();
                assert_eq!(states.iter().sum::<usize>(), whole_state, "{states:?}");
                let even = whole_state.div_ceil(2 * world) * 2;
                assert!(states.iter().all(|&n| n <= even), "{states:?} vs {even}");
            }
        }
    }
    println!(
        "1 vs 2/3 workers (an empty shard included), every loss_agg_mode, ZeRO 0/1/2: \
         max |Δθ| = {worst:e}"
    );
}

#[test]
fn sharded_state_saves_whole_and_resumes_at_another_world_size() {
    let dir = std::env::temp_dir().join(format!("laconic-zero-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = tiny_on::<AD64>(false);
    let (batch, _) = common::batch(&model);
    let base = config(LossAggMode::TokenMean);
    let with_stage = |stage| OptimConfig {
        zero_stage: stage,
        ..base.clone()
    };
    // One process, two rollout batches, its state saved between them.
    let mut updater = PolicyUpdater::new(base.clone(), &model).unwrap();
    let (first, _) = updater.step(model.clone(), &batch, None).unwrap();
    let whole_path = dir.join("whole.safetensors");
    updater.save_state(&whole_path).unwrap();
    let (second, _) = updater.step(first.clone(), &batch, None).unwrap();
    let (first_params, second_params) = (params(&first), params(&second));
    let scale = second_params.iter().fold(0f64, |m, v| m.max(v.abs()));

    // ZeRO-2 over two workers: the gathered state is the one process's, and worker 0 alone writes it.
    let sharded_path = dir.join("sharded.safetensors");
    let two = vec![shard(&batch, &[0, 1]), shard(&batch, &[2])];
    let saved = workers_saving(&model, &with_stage(2), None, Some(&sharded_path), two);
    assert_eq!(
        saved.iter().map(|w| w.saved).collect::<Vec<_>>(),
        [true, false]
    );
    assert!(max_abs_diff(&saved[0].params, &first_params) <= 1e-12 * scale);
    let (whole_state, sharded_state) = (read_state(&whole_path), read_state(&sharded_path));
    assert_eq!(
        whole_state.keys().collect::<Vec<_>>(),
        sharded_state.keys().collect::<Vec<_>>()
    );
    for (name, values) in &whole_state {
        let diff = max_abs_diff(values, &sharded_state[name]);
        let size = values.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        assert!(diff <= 1e-6 * size, "{name}: {diff:e} of {size:e}");
    }

    // Resumed from the sharded checkpoint by one worker (stage 0) and by three (ZeRO-1), against
    // one process resumed from its own checkpoint (the same f32 rounding of the moments) and the
    // uninterrupted run.
    let resumed_by = |stage, path: &Path, shards: Vec<UpdateBatch>| {
        workers(&first, &with_stage(stage), Some(path), shards)
    };
    let reference = resumed_by(0, &whole_path, vec![batch.clone()])
        .remove(0)
        .params;
    assert!(max_abs_diff(&reference, &second_params) <= 1e-6 * scale);
    let three = vec![
        shard(&batch, &[0]),
        shard(&batch, &[1]),
        shard(&batch, &[2]),
    ];
    for (what, resumed) in [
        (
            "one worker",
            resumed_by(0, &sharded_path, vec![batch.clone()]),
        ),
        ("three ZeRO-1 workers", resumed_by(1, &sharded_path, three)),
    ] {
        for worker in resumed {
            let diff = max_abs_diff(&worker.params, &reference);
            println!("resumed by {what}: max |Δθ| = {diff:e}");
            assert!(
                diff <= 1e-9 * scale,
                "resumed by {what}: max |Δθ| = {diff:e}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tensors of an optimizer-state file, in f64, by name.
fn read_state(path: &Path) -> BTreeMap<String, Vec<f64>> {
    let index = SafetensorsIndex::from_files(&[path.to_path_buf()]).unwrap();
    index
        .names()
        .into_iter()
        .map(|name| {
            // Moments in their dtype, counters as I64: all exact in f64 here.
            let values = index.read_data(name).unwrap().convert::<f64>();
            (name.to_string(), values.into_vec::<f64>().unwrap())
        })
        .collect()
}

#[test]
fn integers_cross_the_collective_exactly() {
    let values = [[0u64, 1 << 40, 123_456_789_012], [7, 5, (1 << 48) - 2]];
    let results: Vec<_> = collectives(2)
        .into_iter()
        .map(|c| {
            let mine = values[c.rank].to_vec();
            std::thread::spawn(move || {
                let device = Default::default();
                let sum = all_reduce_u64::<Inner>(&c, &mine, &device).unwrap();
                let gathered = all_gather_u64::<Inner>(&c, &mine[..c.rank + 1], &device).unwrap();
                let too_large = all_reduce_u64::<Inner>(&c, &[1 << 48], &device);
                let message: Vec<u8> = (0..=255u8).cycle().take(13 * c.rank + 1).collect();
                let bytes = all_gather_bytes::<Inner>(&c, &message, &device).unwrap();
                (sum, gathered, too_large.is_err(), bytes)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    for (sum, gathered, refused, bytes) in results {
        assert_eq!(sum, [7, (1 << 40) + 5, 123_456_789_012 + (1 << 48) - 2]);
        assert_eq!(gathered, vec![vec![0], vec![7, 5]]);
        assert!(refused);
        let sent: Vec<Vec<u8>> = (0..2)
            .map(|rank| (0..=255u8).cycle().take(13 * rank + 1).collect())
            .collect();
        assert_eq!(bytes, sent);
    }
}

#[test]
fn micro_batches_times_workers_leave_the_update_unchanged() {
    let model = tiny_on::<AD64>(false);
    let (mut batch, _) = common::batch(&model);
    // Four groups of two sequences, so every layout below splits the batch evenly.
    for (i, sequence) in batch.sequences.iter_mut().enumerate() {
        sequence.group = i / 2;
    }
    let config = |mode, micro| OptimConfig {
        lr: 1e-3,
        loss_agg_mode: mode,
        ppo_mini_batch_size: None,
        ppo_micro_batch_size: micro,
        ppo_epochs: 1,
        shuffle: false,
        entropy_coeff: 0.01,
        ..OptimConfig::default()
    };
    // (workers' groups, micro-batch size): 1 worker × 4 micro-batches, 2 × 2, 4 × 1.
    let layouts: [&[&[usize]]; 3] = [
        &[&[0, 1, 2, 3]],
        &[&[0, 1], &[2, 3]],
        &[&[0], &[1], &[2], &[3]],
    ];
    let mut worst = 0f64;
    for mode in LossAggMode::ALL {
        // The reference: one worker, the whole batch in one micro-batch.
        let mut updater = PolicyUpdater::new(config(mode, 8), &model).unwrap();
        let whole = params(&updater.step(model.clone(), &batch, None).unwrap().0);
        let scale = whole.iter().fold(0f64, |m, v| m.max(v.abs()));
        for layout in layouts {
            let shards = layout.iter().map(|groups| shard(&batch, groups)).collect();
            for (rank, (theta, _)) in data_parallel(&model, &config(mode, 2), shards)
                .iter()
                .enumerate()
            {
                let diff = max_abs_diff(&whole, theta);
                worst = worst.max(diff);
                assert!(
                    diff <= 1e-12 * scale,
                    "{mode:?}, {} workers × {} micro-batches, worker {rank}: max |Δθ| = {diff:e}",
                    layout.len(),
                    4 / layout.len()
                );
            }
        }
    }
    println!("(1 × 4), (2 × 2), (4 × 1) workers × micro-batches vs one: max |Δθ| = {worst:e}");
}
