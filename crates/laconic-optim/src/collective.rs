//! Data-parallel reductions of the update: the [`Collective`] a worker sums through, and what is
//! built on its one operation (exact integer gathers, the bucketed gradient all-reduce).
//!
//! A data-parallel step gives every worker a shard of the rollout batch, made of whole groups. For
//! the result to equal the single-worker step on the whole batch, the workers agree on three things
//! before they differentiate: the order of the groups (so the shuffled mini-batches are the same
//! sets everywhere), each mini-batch's global token and sequence counts (so every token gets the
//! weight it would have in one process, in every `loss_agg_mode`), and then the summed gradients.
//! Only an all-reduce sum is needed, which is what burn-collective offers across processes and
//! machines; a gather is a sum in which each rank fills its own slot.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::agg::AggCounts;
use crate::error::{Error, Result};
use crate::objective::ObjectiveSums;

/// The collective operations of one data-parallel run. Every worker must make the same calls, with
/// the same lengths where stated, in the same order.
///
/// An engine implements [`Collective::all_reduce_sum`]; every other operation has a default built on
/// it (exact integers as 12-bit limbs in f32, gathers as sums in which each rank fills its own slot),
/// which an engine with native operations (MPI, NCCL) overrides.
pub trait Collective<B: Backend> {
    /// This worker's index, `0..world_size`.
    fn rank(&self) -> usize;
    /// Number of workers.
    fn world_size(&self) -> usize;
    /// The elementwise sum of `tensor` over all workers.
    ///
    /// # Errors
    /// When the transport fails (a peer went away, shapes disagree).
    fn all_reduce_sum(&self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>>;

    /// Exact elementwise sums of non-negative integers. The default carries values below 2^48 (and
    /// their sums) as 12-bit limbs in f32, where no rounding can occur.
    ///
    /// # Errors
    /// A value the engine cannot sum exactly (beyond [`MAX_EXACT`] by default), or the transport's
    /// error.
    fn all_reduce_u64(&self, values: &[u64], device: &B::Device) -> Result<Vec<u64>> {
        limb_all_reduce_u64(self, values, device)
    }

    /// Every worker's `bytes` (a serialised message), in rank order; the lengths may differ.
    ///
    /// # Errors
    /// The transport's error.
    fn all_gather_bytes(&self, bytes: &[u8], device: &B::Device) -> Result<Vec<Vec<u8>>> {
        sum_gather_bytes(self, bytes, device)
    }

    /// Worker `root`'s `bytes` on every worker (the others' `bytes` are ignored).
    ///
    /// # Errors
    /// `root` out of range, or the transport's error.
    fn broadcast_bytes(&self, bytes: &[u8], root: usize, device: &B::Device) -> Result<Vec<u8>> {
        check_root(root, self.world_size())?;
        let mine = if self.rank() == root { bytes } else { &[] };
        let mut all = self.all_gather_bytes(mine, device)?;
        Ok(std::mem::take(&mut all[root]))
    }

    /// The concatenation, in rank order, of every worker's `part`, where worker `r`'s part holds
    /// `counts[r]` values (every worker passes the same `counts`). The default sums zero-padded
    /// copies, which is exact (`x + 0 = x`).
    ///
    /// # Errors
    /// `counts` that disagree with `part` or the world, or the transport's error.
    fn all_gather(&self, part: Tensor<B, 1>, counts: &[usize]) -> Result<Tensor<B, 1>> {
        let offsets = check_counts(counts, self.rank(), self.world_size(), part.dims()[0])?;
        let total: usize = counts.iter().sum();
        let device = part.device();
        let (start, mine) = (offsets[self.rank()], counts[self.rank()]);
        let padded = Tensor::cat(
            vec![
                Tensor::zeros([start], &device),
                part,
                Tensor::zeros([total - start - mine], &device),
            ],
            0,
        );
        self.all_reduce_sum(padded)
    }

    /// This worker's slice of the elementwise sum of `tensor` over the workers: worker `r` gets the
    /// `counts[r]` values after those of the workers before it (`tensor` holds `Σ counts` values on
    /// every worker).
    ///
    /// # Errors
    /// `counts` that disagree with `tensor` or the world, or the transport's error.
    fn reduce_scatter(&self, tensor: Tensor<B, 1>, counts: &[usize]) -> Result<Tensor<B, 1>> {
        let total = tensor.dims()[0];
        if counts.len() != self.world_size() || counts.iter().sum::<usize>() != total {
            return Err(Error::Collective(format!(
                "reduce-scatter of {total} values over {} workers into parts of {counts:?}",
                self.world_size()
            )));
        }
        let offsets = check_counts(counts, self.rank(), self.world_size(), counts[self.rank()])?;
        let summed = self.all_reduce_sum(tensor)?;
        Ok(summed.narrow(0, offsets[self.rank()], counts[self.rank()]))
    }
}

/// The start of each worker's part given `counts`, after checking that there is one count per worker
/// and that this worker's is `len`.
fn check_counts(counts: &[usize], rank: usize, world: usize, len: usize) -> Result<Vec<usize>> {
    if counts.len() != world || counts[rank] != len {
        return Err(Error::Collective(format!(
            "worker {rank} of {world} passed {len} values with part sizes {counts:?}"
        )));
    }
    Ok(counts
        .iter()
        .scan(0usize, |acc, &n| {
            let start = *acc;
            *acc += n;
            Some(start)
        })
        .collect())
}

fn check_root(root: usize, world: usize) -> Result<()> {
    if root < world {
        Ok(())
    } else {
        Err(Error::Collective(format!(
            "root worker {root} is not below the world size {world}"
        )))
    }
}

/// The one-worker collective: every sum is its input.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleWorker;

impl<B: Backend> Collective<B> for SingleWorker {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>> {
        Ok(tensor)
    }

    fn all_reduce_u64(&self, values: &[u64], _device: &B::Device) -> Result<Vec<u64>> {
        Ok(values.to_vec())
    }

    fn all_gather_bytes(&self, bytes: &[u8], _device: &B::Device) -> Result<Vec<Vec<u8>>> {
        Ok(vec![bytes.to_vec()])
    }
}

/// Bits per f32 limb of an exact integer sum: a sum of up to 2^12 workers' limbs stays below 2^24,
/// where every integer is an f32.
const LIMB_BITS: u32 = 12;
/// Limbs per integer: values below 2^48.
const LIMBS: usize = 4;
/// Largest integer the default [`Collective::all_reduce_u64`] carries exactly.
pub const MAX_EXACT: u64 = (1 << (LIMB_BITS as usize * LIMBS)) - 1;

/// The default [`Collective::all_reduce_u64`]: 12-bit limbs in f32 through `all_reduce_sum`.
fn limb_all_reduce_u64<B: Backend, C: Collective<B> + ?Sized>(
    collective: &C,
    values: &[u64],
    device: &B::Device,
) -> Result<Vec<u64>> {
    if collective.world_size() == 1 {
        return Ok(values.to_vec());
    }
    if let Some(v) = values.iter().find(|&&v| v > MAX_EXACT) {
        return Err(Error::Collective(format!(
            "{v} is too large for an exact all-reduce (at most {MAX_EXACT})"
        )));
    }
    let mask = (1u64 << LIMB_BITS) - 1;
    let limbs: Vec<f32> = values
        .iter()
        .flat_map(|&v| (0..LIMBS).map(move |k| ((v >> (k as u32 * LIMB_BITS)) & mask) as f32))
        .collect();
    let summed = all_reduce_host(collective, limbs, device)?;
    Ok(summed
        .chunks(LIMBS)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .map(|(k, &limb)| (limb as u64) << (k as u32 * LIMB_BITS))
                .sum()
        })
        .collect())
}

/// The default gather of integers below 2^48: each worker fills its own slots of a zero vector,
/// summed exactly.
fn sum_gather_u64<B: Backend, C: Collective<B> + ?Sized>(
    collective: &C,
    values: &[u64],
    device: &B::Device,
) -> Result<Vec<Vec<u64>>> {
    let (rank, world) = (collective.rank(), collective.world_size());
    if world == 1 {
        return Ok(vec![values.to_vec()]);
    }
    let mut lengths = vec![0u64; world];
    lengths[rank] = values.len() as u64;
    let lengths = collective.all_reduce_u64(&lengths, device)?;
    let offsets: Vec<usize> = lengths
        .iter()
        .scan(0usize, |acc, &len| {
            let start = *acc;
            *acc += len as usize;
            Some(start)
        })
        .collect();
    let total = lengths.iter().sum::<u64>() as usize;
    let mut slots = vec![0u64; total];
    slots[offsets[rank]..offsets[rank] + values.len()].copy_from_slice(values);
    let slots = collective.all_reduce_u64(&slots, device)?;
    Ok((0..world)
        .map(|r| slots[offsets[r]..offsets[r] + lengths[r] as usize].to_vec())
        .collect())
}

/// Bytes per word of the default byte gather: 48 bits, what the limbs carry exactly.
const BYTES_PER_WORD: usize = 6;

/// The default [`Collective::all_gather_bytes`]: the bytes as 48-bit words through [`sum_gather_u64`].
fn sum_gather_bytes<B: Backend, C: Collective<B> + ?Sized>(
    collective: &C,
    bytes: &[u8],
    device: &B::Device,
) -> Result<Vec<Vec<u8>>> {
    let mut words = Vec::with_capacity(1 + bytes.len().div_ceil(BYTES_PER_WORD));
    words.push(bytes.len() as u64);
    words.extend(bytes.chunks(BYTES_PER_WORD).map(|chunk| {
        chunk
            .iter()
            .rev()
            .fold(0u64, |w, &b| (w << 8) | u64::from(b))
    }));
    let gathered = sum_gather_u64(collective, &words, device)?;
    Ok(gathered
        .into_iter()
        .map(|words| {
            let len = words.first().map_or(0, |&n| n as usize);
            let mut out: Vec<u8> = words[1..]
                .iter()
                .flat_map(|w| (0..BYTES_PER_WORD).map(move |i| (w >> (8 * i)) as u8))
                .collect();
            out.truncate(len);
            out
        })
        .collect())
}

/// Exact elementwise sums of non-negative integers: [`Collective::all_reduce_u64`].
///
/// # Errors
/// As [`Collective::all_reduce_u64`].
pub fn all_reduce_u64<B: Backend>(
    collective: &dyn Collective<B>,
    values: &[u64],
    device: &B::Device,
) -> Result<Vec<u64>> {
    collective.all_reduce_u64(values, device)
}

/// Every worker's `values`, in rank order; the lengths may differ between workers. Carried as
/// little-endian bytes through [`Collective::all_gather_bytes`], so any `u64` crosses exactly.
///
/// # Errors
/// The transport's error.
pub fn all_gather_u64<B: Backend>(
    collective: &dyn Collective<B>,
    values: &[u64],
    device: &B::Device,
) -> Result<Vec<Vec<u64>>> {
    if collective.world_size() == 1 {
        return Ok(vec![values.to_vec()]);
    }
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    collective
        .all_gather_bytes(&bytes, device)?
        .into_iter()
        .map(|part| {
            if part.len() % 8 != 0 {
                return Err(Error::Collective(format!(
                    "a gathered integer message of {} bytes",
                    part.len()
                )));
            }
            Ok(part
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect())
        })
        .collect()
}

/// Every worker's `bytes` (a serialised message), in rank order: [`Collective::all_gather_bytes`].
///
/// # Errors
/// The transport's error.
pub fn all_gather_bytes<B: Backend>(
    collective: &dyn Collective<B>,
    bytes: &[u8],
    device: &B::Device,
) -> Result<Vec<Vec<u8>>> {
    collective.all_gather_bytes(bytes, device)
}

/// The whole batch's group order in a data-parallel run: every worker's groups, in ascending id.
/// When group ids number the whole batch's groups in order (each worker holding any subset of
/// them, contiguous or not, as dynamic sampling leaves them), this is the order of first
/// appearance one process holding the whole batch sees. One worker's order is its own.
///
/// # Errors
/// As [`all_reduce_u64`].
pub fn all_gather_groups<B: Backend>(
    collective: &dyn Collective<B>,
    local: &[usize],
    device: &B::Device,
) -> Result<Vec<usize>> {
    if collective.world_size() == 1 {
        return Ok(local.to_vec());
    }
    let local: Vec<u64> = local.iter().map(|&g| g as u64).collect();
    let mut groups: Vec<usize> = all_gather_u64(collective, &local, device)?
        .concat()
        .into_iter()
        .map(|g| g as usize)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    Ok(groups)
}

/// The aggregation counts of a mini-batch whose trainable response `lengths` are spread over the
/// workers: tokens and sequences summed, the normalising length the largest anywhere (unless
/// `norm_length` fixes it), as [`AggCounts::from_lengths`] gives for all lengths in one process.
///
/// # Errors
/// As [`all_reduce_u64`].
pub fn all_reduce_counts<B: Backend>(
    collective: &dyn Collective<B>,
    lengths: &[usize],
    norm_length: Option<f64>,
    device: &B::Device,
) -> Result<AggCounts> {
    let local = AggCounts::from_lengths(lengths, norm_length);
    if collective.world_size() == 1 {
        return Ok(local);
    }
    let longest = lengths.iter().copied().max().unwrap_or(0) as u64;
    let parts = all_gather_u64(
        collective,
        &[local.num_tokens as u64, local.num_seqs as u64, longest],
        device,
    )?;
    let longest = parts.iter().map(|p| p[2]).max().unwrap_or(0);
    Ok(AggCounts {
        num_tokens: parts.iter().map(|p| p[0] as usize).sum(),
        num_seqs: parts.iter().map(|p| p[1] as usize).sum(),
        norm_length: norm_length.unwrap_or(longest.max(1) as f64),
    })
}

/// Elementwise f32 sums of host values (metrics: rounding to f32 is accepted).
///
/// # Errors
/// The transport's error.
pub fn all_reduce_f64<B: Backend>(
    collective: &dyn Collective<B>,
    values: &[f64],
    device: &B::Device,
) -> Result<Vec<f64>> {
    if collective.world_size() == 1 {
        return Ok(values.to_vec());
    }
    let values = values.iter().map(|&v| v as f32).collect();
    Ok(all_reduce_host(collective, values, device)?
        .into_iter()
        .map(f64::from)
        .collect())
}

fn all_reduce_host<B: Backend, C: Collective<B> + ?Sized>(
    collective: &C,
    values: Vec<f32>,
    device: &B::Device,
) -> Result<Vec<f32>> {
    let n = values.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let tensor = Tensor::<B, 1>::from_data(TensorData::new(values, [n]), device);
    collective
        .all_reduce_sum(tensor)?
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::Collective(format!("reading a reduced tensor: {e:?}")))
}

/// The sums of every worker's micro-batch statistics; an optional term is present when any worker
/// has it.
///
/// # Errors
/// The transport's error.
pub fn all_reduce_sums<B: Backend>(
    collective: &dyn Collective<B>,
    sums: &ObjectiveSums,
    device: &B::Device,
) -> Result<ObjectiveSums> {
    if collective.world_size() == 1 {
        return Ok(*sums);
    }
    let present = |o: Option<f64>| if o.is_some() { 1.0 } else { 0.0 };
    let v = all_reduce_f64(
        collective,
        &[
            sums.loss,
            sums.pg_loss,
            sums.kl_loss.unwrap_or(0.0),
            present(sums.kl_loss),
            sums.entropy_loss,
            sums.entropy_sum,
            sums.clipped,
            sums.clipped_lower,
            sums.ppo_kl_sum,
            sums.tokens,
            sums.router_aux.unwrap_or(0.0),
            present(sums.router_aux),
        ],
        device,
    )?;
    let optional = |value: f64, present: f64| (present > 0.0).then_some(value);
    Ok(ObjectiveSums {
        loss: v[0],
        pg_loss: v[1],
        kl_loss: optional(v[2], v[3]),
        entropy_loss: v[4],
        entropy_sum: v[5],
        clipped: v[6],
        clipped_lower: v[7],
        ppo_kl_sum: v[8],
        tokens: v[9],
        router_aux: optional(v[10], v[11]),
    })
}

/// Sums `grads` over the workers, in place, through [`all_reduce_bucketed`]: the parameters are
/// taken in the module's visiting order (the same on every worker). A parameter that has a gradient
/// on some worker only contributes zeros from the others; one that has none anywhere stays without
/// a gradient (AdamW then leaves it and its moments alone, as in one process).
///
/// # Errors
/// The transport's error.
pub fn all_reduce_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    collective: &dyn Collective<B::InnerBackend>,
    bucket_elems: usize,
    device: &B::Device,
) -> Result<()> {
    if collective.world_size() == 1 {
        return Ok(());
    }
    let mut take = TakeGradients::<B> {
        grads,
        entries: Vec::new(),
    };
    module.visit(&mut take);
    let reduced = all_reduce_bucketed(collective, take.entries, bucket_elems, device)?;
    let mut give = GiveGradients::<B> {
        grads,
        reduced: reduced.into_iter(),
    };
    module.visit(&mut give);
    Ok(())
}

/// A flat tensor of `numel` values that a worker may or may not hold (a parameter's gradient).
#[derive(Debug, Clone)]
pub struct Entry<B: Backend> {
    /// Its length on every worker.
    pub numel: usize,
    /// This worker's values, if it has any.
    pub grad: Option<Tensor<B, 1>>,
}

/// Sums `entries` over the workers, entry by entry, in buckets of about `bucket_elems` values: the
/// entries are concatenated in order until a bucket is full, and each bucket is one all-reduce
/// (`bucket_elems` = 0: one all-reduce per entry). An entry only some workers hold counts as zeros
/// on the others; one no worker holds stays `None`. Every worker passes the same entry lengths.
///
/// # Errors
/// The transport's error.
pub fn all_reduce_bucketed<B: Backend>(
    collective: &dyn Collective<B>,
    entries: Vec<Entry<B>>,
    bucket_elems: usize,
    device: &B::Device,
) -> Result<Vec<Option<Tensor<B, 1>>>> {
    let local: Vec<u64> = entries
        .iter()
        .map(|e| u64::from(e.grad.is_some()))
        .collect();
    let present = all_reduce_u64(collective, &local, device)?;
    let held: Vec<usize> = (0..entries.len()).filter(|&i| present[i] > 0).collect();
    let numels: Vec<usize> = entries.iter().map(|e| e.numel).collect();
    let mut grads: Vec<Option<Tensor<B, 1>>> = entries.into_iter().map(|e| e.grad).collect();
    let mut reduced: Vec<Option<Tensor<B, 1>>> = vec![None; grads.len()];
    for bucket in buckets(&held, |i| numels[i], bucket_elems) {
        let parts = bucket
            .iter()
            .map(|&i| {
                grads[i]
                    .take()
                    .unwrap_or_else(|| Tensor::zeros([numels[i]], device))
            })
            .collect();
        let summed = collective.all_reduce_sum(cat(parts, device))?;
        let mut start = 0;
        for &i in bucket {
            reduced[i] = Some(summed.clone().narrow(0, start, numels[i]));
            start += numels[i];
        }
    }
    Ok(reduced)
}

/// `indices` in runs (buckets) that close once their values reach `bucket_elems` (the last may be
/// smaller; `bucket_elems` = 0: one index per bucket): every bucketed collective's grouping.
pub(crate) fn buckets(
    indices: &[usize],
    numel: impl Fn(usize) -> usize,
    bucket_elems: usize,
) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let (mut start, mut filled) = (0, 0);
    for (k, &i) in indices.iter().enumerate() {
        filled += numel(i);
        if filled >= bucket_elems {
            out.push(&indices[start..=k]);
            (start, filled) = (k + 1, 0);
        }
    }
    if start < indices.len() {
        out.push(&indices[start..]);
    }
    out
}

/// The concatenation of `parts` (no copy for one; an empty vector for none).
pub(crate) fn cat<B: Backend>(parts: Vec<Tensor<B, 1>>, device: &B::Device) -> Tensor<B, 1> {
    match parts.len() {
        0 => Tensor::zeros([0], device),
        1 => parts.into_iter().next().expect("one part"),
        _ => Tensor::cat(parts, 0),
    }
}

struct TakeGradients<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    entries: Vec<Entry<B::InnerBackend>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for TakeGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let numel = param.val().shape().num_elements();
        let grad = self
            .grads
            .remove::<B::InnerBackend, D>(param.id)
            .map(|g| g.reshape([numel]));
        self.entries.push(Entry { numel, grad });
    }
}

struct GiveGradients<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    reduced: std::vec::IntoIter<Option<Tensor<B::InnerBackend, 1>>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GiveGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(flat) = self.reduced.next().flatten() {
            let dims = param.val().dims();
            self.grads
                .register::<B::InnerBackend, D>(param.id, flat.reshape(dims));
        }
    }
}
