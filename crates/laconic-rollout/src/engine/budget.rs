//! The KV-cache budget: how many cache slots (rows × cached columns of the shared, left-padded cache)
//! the engine may hold, and its default, derived from the memory the machine reports.

use burn::prelude::*;
use laconic_model::CausalLm;

use crate::error::{Error, Result};

/// Share of the available memory the default budget takes (vLLM's `gpu_memory_utilization` plays
/// this part on GPUs, where the weights are already resident).
pub const DEFAULT_MEMORY_FRACTION: f64 = 0.25;

/// What the budget assumes available when the OS does not say (no `/proc/meminfo`).
const FALLBACK_AVAILABLE_BYTES: u64 = 4 << 30;

/// A number of KV-cache slots: one slot holds one column of one row in every layer (keys and values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KvBudget {
    /// Most slots the cache may hold.
    pub slots: usize,
}

impl KvBudget {
    /// `configured` slots, or the default for `model`: [`DEFAULT_MEMORY_FRACTION`] of the memory the
    /// OS reports available, over the bytes of one slot.
    pub fn new<B: Backend>(configured: Option<usize>, model: &CausalLm<B>) -> Self {
        let slots = configured.unwrap_or_else(|| {
            let available = available_memory_bytes().unwrap_or(FALLBACK_AVAILABLE_BYTES);
            let budget = (available as f64 * DEFAULT_MEMORY_FRACTION) as u64;
            (budget / slot_bytes(model).max(1)) as usize
        });
        Self { slots }
    }

    /// Whether `rows` rows of `columns` cached columns fit.
    pub fn fits(&self, rows: usize, columns: usize) -> bool {
        rows.saturating_mul(columns) <= self.slots
    }

    /// Checks that every prompt can run alone to `max_tokens` within the budget.
    ///
    /// # Errors
    /// [`Error::KvCacheBudget`] naming the first prompt that cannot, with both numbers.
    pub fn check_prompts(&self, prompts: &[Vec<u32>], max_tokens: usize) -> Result<()> {
        for (index, prompt) in prompts.iter().enumerate() {
            let needed = prompt.len() + max_tokens;
            if needed > self.slots {
                return Err(Error::KvCacheBudget {
                    index,
                    prompt_tokens: prompt.len(),
                    max_tokens,
                    budget: self.slots,
                });
            }
        }
        Ok(())
    }
}

/// Bytes of one KV-cache slot of `model`: keys and values of every layer, in the backend's float type.
pub fn slot_bytes<B: Backend>(model: &CausalLm<B>) -> u64 {
    let config = model.config();
    let element = std::mem::size_of::<B::FloatElem>() as u64;
    2 * config.num_hidden_layers as u64
        * config.num_kv_heads() as u64
        * config.head_dim() as u64
        * element
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
