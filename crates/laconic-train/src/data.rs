//! Training prompts and the order they are drawn in.
//!
//! A [`PromptSampler`] walks a fixed prompt set in seeded shuffled epochs and is a small serialisable
//! cursor, so a resumed run draws exactly the prompts an uninterrupted one would.

use laconic_model::seed::GOLDEN_GAMMA;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One training or evaluation prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptItem {
    /// The question as shown to the model (after templating).
    pub text: String,
    /// Its token ids.
    pub prompt_ids: Vec<u32>,
    /// The gold answer, as the judge expects it.
    pub gold: String,
}

/// Where a run is in its prompt stream: shuffled epochs of a fixed set, reproducible from the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptSampler {
    /// Seed of the shuffles.
    pub seed: u64,
    /// Current epoch (each has its own permutation).
    pub epoch: u64,
    /// Next position within the epoch's permutation.
    pub cursor: usize,
    /// Set size.
    pub len: usize,
}

impl PromptSampler {
    /// A sampler at the start of epoch 0.
    pub fn new(len: usize, seed: u64) -> Self {
        Self {
            seed,
            epoch: 0,
            cursor: 0,
            len,
        }
    }

    /// The next `count` indices, continuing into new epochs as needed.
    pub fn next_batch(&mut self, count: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(count);
        if self.len == 0 {
            return out;
        }
        let mut order = self.permutation();
        while out.len() < count {
            if self.cursor == self.len {
                self.epoch += 1;
                self.cursor = 0;
                order = self.permutation();
            }
            out.push(order[self.cursor]);
            self.cursor += 1;
        }
        out
    }

    fn permutation(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ self.epoch.wrapping_mul(GOLDEN_GAMMA));
        order.shuffle(&mut rng);
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_covers_each_epoch_and_resumes_exactly() {
        let mut a = PromptSampler::new(5, 9);
        let first: Vec<usize> = a.next_batch(5);
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        let mut b = a.clone();
        // Crossing an epoch boundary from a saved cursor gives the same stream.
        let saved = serde_json::to_string(&b).unwrap();
        assert_eq!(a.next_batch(7), b.next_batch(7));
        let mut c: PromptSampler = serde_json::from_str(&saved).unwrap();
        let mut d = PromptSampler {
            epoch: 1,
            cursor: 0,
            ..PromptSampler::new(5, 9)
        };
        assert_eq!(c.next_batch(7), d.next_batch(7));
    }
}
