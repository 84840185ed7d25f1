//! `Rollout`: one sampled response with its log-probs and finish reason; `Progress` for callers' bars.

use serde::{Deserialize, Serialize};

use crate::sampling::Finish;

/// One response sampled for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Index of the prompt in the request.
    pub prompt_idx: usize,
    /// Index of this sample among the prompt's `n`.
    pub sample_idx: usize,
    /// Generated ids; ends with the stop id when `finish` is [`Finish::Stop`].
    pub response_ids: Vec<u32>,
    /// Log-prob of each response token (see [`crate::sampling`] for the convention).
    pub logprobs: Vec<f32>,
    /// Why it ended.
    pub finish: Finish,
}

impl Rollout {
    /// Response length in tokens.
    pub fn len(&self) -> usize {
        self.response_ids.len()
    }

    /// Whether the response is empty (never true for a finished rollout).
    pub fn is_empty(&self) -> bool {
        self.response_ids.is_empty()
    }
}

/// A snapshot of a generation's progress, passed to the caller's hook after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Rollouts requested (prompts × n).
    pub total: usize,
    /// Rollouts finished.
    pub finished: usize,
    /// Response tokens generated so far.
    pub tokens: usize,
    /// Sequences in the decode batch now.
    pub live: usize,
    /// Sequences preempted so far (their cache dropped to fit the KV-cache budget, recomputed later).
    pub preemptions: usize,
    /// KV-cache slots (rows × cached columns) held now.
    pub kv_cache_tokens: usize,
    /// Most KV-cache slots held at any decode step so far (never above the budget).
    pub kv_cache_peak: usize,
}

/// Receives a generation's events. Any `FnMut(&Progress)` closure is an observer of progress only.
pub trait Observer {
    /// After every prefill and decode step.
    fn on_progress(&mut self, _progress: &Progress) {}
    /// After a token is sampled for sample `sample_idx` of prompt `prompt_idx`.
    fn on_token(&mut self, _prompt_idx: usize, _sample_idx: usize, _token: u32) {}
}

impl<F: FnMut(&Progress)> Observer for F {
    fn on_progress(&mut self, progress: &Progress) {
        self(progress)
    }
}

/// The observer that ignores everything: `engine.generate(&prompts, n, &params, &mut ())`.
impl Observer for () {}
