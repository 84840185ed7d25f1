//! The update batch the trainer hands over: scored rollouts with their advantages.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};

/// One rollout, ready for the policy update.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateSequence {
    /// Prompt token ids (chat template applied), at least one.
    pub prompt_ids: Vec<u32>,
    /// Generated token ids (stop token included when the rollout emitted one).
    pub response_ids: Vec<u32>,
    /// Rollout-time `log π_old(y_k)` of each response token, at the sampling temperature.
    pub old_logprobs: Vec<f32>,
    /// The rollout's advantage (from [`crate::OptimConfig::advantages`]).
    pub advantage: f32,
    /// No reward and no gradient (the reward crate's masking): left out of the loss and its counts.
    pub masked: bool,
    /// Group (prompt) id shared by the rollouts of one prompt.
    pub group: usize,
}

impl UpdateSequence {
    /// Whether the sequence contributes tokens to the loss (unmasked, non-empty response).
    pub fn is_trainable(&self) -> bool {
        !self.masked && !self.response_ids.is_empty()
    }
}

/// A rollout batch: every rollout of every prompt of one rollout step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateBatch {
    /// The rollouts, in any order (groups need not be contiguous).
    pub sequences: Vec<UpdateSequence>,
}

impl UpdateBatch {
    /// Checks every trainable sequence once: non-empty prompt, one finite old log-prob per response
    /// token, finite advantage, ids below `vocab_size`, and reference log-probs (when given: one vector
    /// per sequence, any content for masked ones) of the same length.
    ///
    /// # Errors
    /// The first malformed sequence, naming its index and the problem.
    pub fn validate(&self, ref_logprobs: Option<&[Vec<f32>]>, vocab_size: usize) -> Result<()> {
        if let Some(reference) = ref_logprobs {
            if reference.len() != self.sequences.len() {
                return Err(Error::Input(format!(
                    "expected reference log-probs for {} sequences, found {}",
                    self.sequences.len(),
                    reference.len()
                )));
            }
        }
        for (index, seq) in self.sequences.iter().enumerate() {
            if !seq.is_trainable() {
                continue;
            }
            let fail = |message: String| Err(Error::Sequence { index, message });
            let n = seq.response_ids.len();
            if seq.prompt_ids.is_empty() {
                return fail("has an empty prompt".into());
            }
            if seq.old_logprobs.len() != n {
                return fail(format!(
                    "has {} old log-probs for {n} response tokens",
                    seq.old_logprobs.len()
                ));
            }
            if let Some(k) = seq.old_logprobs.iter().position(|v| !v.is_finite()) {
                return fail(format!(
                    "old log-prob of response token {k} is `{}`",
                    seq.old_logprobs[k]
                ));
            }
            if !seq.advantage.is_finite() {
                return fail(format!("advantage is `{}`", seq.advantage));
            }
            if let Some(&id) = seq
                .prompt_ids
                .iter()
                .chain(&seq.response_ids)
                .find(|&&id| id as usize >= vocab_size)
            {
                return fail(format!(
                    "token id `{id}` is outside the vocabulary of {vocab_size}"
                ));
            }
            if let Some(reference) = ref_logprobs {
                let r = &reference[index];
                if r.len() != n {
                    return fail(format!(
                        "has {} reference log-probs for {n} response tokens",
                        r.len()
                    ));
                }
                if let Some(k) = r.iter().position(|v| !v.is_finite()) {
                    return fail(format!(
                        "reference log-prob of response token {k} is `{}`",
                        r[k]
                    ));
                }
            }
        }
        Ok(())
    }

    /// `(prompt_ids, response_ids)` of every sequence, the input of
    /// [`crate::logprob::compute_logprobs`] (reference or recomputed old log-probs).
    pub fn pairs(&self) -> Vec<(&[u32], &[u32])> {
        self.sequences
            .iter()
            .map(|s| (s.prompt_ids.as_slice(), s.response_ids.as_slice()))
            .collect()
    }

    /// The batch's group ids in order of first appearance.
    pub fn group_order(&self) -> Vec<usize> {
        let mut groups: Vec<usize> = Vec::new();
        for seq in &self.sequences {
            if !groups.contains(&seq.group) {
                groups.push(seq.group);
            }
        }
        groups
    }

    /// Splits the batch into mini-batches of `groups_per_mini_batch` whole groups (all groups when
    /// `None`), in order of first appearance or shuffled with `rng`. Returns sequence indices (in batch
    /// order within a group), masked ones included.
    pub fn mini_batches(
        &self,
        groups_per_mini_batch: Option<usize>,
        rng: Option<&mut StdRng>,
    ) -> Vec<Vec<usize>> {
        self.mini_batches_over(self.group_order(), groups_per_mini_batch, rng)
    }

    /// Like [`UpdateBatch::mini_batches`] over the given group order, which may name groups this
    /// batch does not hold: a data-parallel worker splits the whole batch's groups as every other
    /// worker does and keeps its own sequences of each mini-batch (possibly none).
    pub fn mini_batches_over(
        &self,
        mut groups: Vec<usize>,
        groups_per_mini_batch: Option<usize>,
        rng: Option<&mut StdRng>,
    ) -> Vec<Vec<usize>> {
        if let Some(rng) = rng {
            groups.shuffle(rng);
        }
        let per = groups_per_mini_batch.unwrap_or(groups.len()).max(1);
        groups
            .chunks(per)
            .map(|chunk| {
                (0..self.sequences.len())
                    .filter(|&i| chunk.contains(&self.sequences[i].group))
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn seq(group: usize, response: usize, masked: bool) -> UpdateSequence {
        UpdateSequence {
            prompt_ids: vec![1, 2],
            response_ids: vec![3; response],
            old_logprobs: vec![-0.5; response],
            advantage: 1.0,
            masked,
            group,
        }
    }

    #[test]
    fn mini_batches_keep_groups_whole() {
        let batch = UpdateBatch {
            sequences: vec![
                seq(5, 2, false),
                seq(9, 1, false),
                seq(5, 3, true),
                seq(2, 1, false),
                seq(9, 2, false),
            ],
        };
        assert_eq!(batch.mini_batches(None, None), vec![vec![0, 1, 2, 3, 4]]);
        assert_eq!(
            batch.mini_batches(Some(2), None),
            vec![vec![0, 1, 2, 4], vec![3]]
        );
        let mut rng = StdRng::seed_from_u64(0);
        let shuffled = batch.mini_batches(Some(1), Some(&mut rng));
        let mut all: Vec<usize> = shuffled.concat();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3, 4]);
        assert_eq!(shuffled.len(), 3);
    }

    #[test]
    fn validation_names_the_sequence() {
        let mut batch = UpdateBatch {
            sequences: vec![seq(0, 2, false), seq(0, 2, false)],
        };
        batch.sequences[1].old_logprobs.pop();
        let err = batch.validate(None, 10).unwrap_err().to_string();
        assert!(
            err.contains("sequence 1") && err.contains("1 old log-probs for 2"),
            "{err}"
        );
        batch.sequences[1].masked = true;
        batch.validate(None, 10).unwrap();
        let err = batch.validate(None, 3).unwrap_err().to_string();
        assert!(err.contains("`3`"), "{err}");
        let err = batch
            .validate(Some(&[vec![-1.0; 2]]), 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("for 2 sequences, found 1"), "{err}");
    }
}
