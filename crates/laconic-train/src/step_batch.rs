//! A step's rollouts, from judged draws to the batch the optimizer trains on.
//!
//! A step draws one rollout batch of `prompts_per_step` prompts, or several under dynamic sampling
//! (`[algorithm] filter_groups`). Each draw is shaped on its own (a reward's batch statistics are the
//! draw's, as in verl), its groups are checked for a learning signal, and the step trains on the
//! first `prompts_per_step` informative groups in draw order, their advantages computed over those
//! groups alone. In a data-parallel run every worker holds the whole draw's outcomes (so all agree on
//! which groups are kept) and its own share of the rollouts (so each trains on its kept groups).

use laconic_optim::{OptimConfig, UpdateBatch, UpdateSequence};
use laconic_reward::{BatchMetrics, FilterGroups, GroupView, RewardConfig, Scored};
use laconic_rollout::{Finish, Rollout};

use crate::data::PromptItem;
use crate::error::Result;
use crate::rl::RolloutRecord;
use crate::run::Metrics;

/// What the judge said of one of this worker's rollouts.
#[derive(Default)]
pub(crate) struct Judged {
    /// The decoded response.
    pub text: String,
    /// The extracted answer, if any.
    pub extracted: Option<String>,
    /// Correct and finished within `L_R`.
    pub correct: bool,
}

/// What the rewards see of one rollout: judged correct, length, how it ended.
pub(crate) type Outcome = (bool, usize, laconic_reward::Finish);

/// One drawn batch: its prompts, and this worker's share of the rollouts.
struct Draw {
    items: Vec<PromptItem>,
    /// The first prompt of this worker's share.
    first: usize,
    /// This worker's rollouts, `n` per prompt, prompt by prompt.
    rollouts: Vec<Rollout>,
    judged: Vec<Judged>,
}

/// Every draw of a step so far, and every drawn group (across draws, in draw order).
pub(crate) struct Drawn {
    n: usize,
    filter: FilterGroups,
    draws: Vec<Draw>,
    /// Every group of every draw (global), with its shaped scores.
    groups: Vec<GroupView>,
    scores: Vec<Vec<Scored>>,
    /// Where each group comes from: (draw, prompt index in the draw).
    origin: Vec<(usize, usize)>,
    /// The groups with a learning signal (indices into `groups`), in draw order.
    informative: Vec<usize>,
    /// The target lengths of the rewards that have one.
    l_t: Vec<f64>,
}

/// The batch a step trains on: this worker's sequences and their records.
pub(crate) struct StepBatch {
    pub batch: UpdateBatch,
    pub records: Vec<RolloutRecord>,
}

impl Drawn {
    /// Nothing drawn yet, for groups of `n` rollouts, filtered by `filter`.
    pub fn new(n: usize, filter: FilterGroups) -> Self {
        Self {
            n,
            filter,
            draws: Vec::new(),
            groups: Vec::new(),
            scores: Vec::new(),
            origin: Vec::new(),
            informative: Vec::new(),
            l_t: Vec::new(),
        }
    }

    /// Adds a draw: its prompts `items`, this worker's `rollouts` (of the prompts from `first`) with
    /// their `judged` verdicts, and the whole draw's `outcomes`, which `shaper` scores.
    pub fn push(
        &mut self,
        items: Vec<PromptItem>,
        first: usize,
        rollouts: Vec<Rollout>,
        judged: Vec<Judged>,
        outcomes: &[Outcome],
        shaper: &RewardConfig,
    ) {
        let draw = self.draws.len();
        let groups: Vec<GroupView> = outcomes
            .chunks(self.n)
            .map(|group| GroupView::new(group.iter().copied()))
            .collect();
        let detailed = shaper.score_batch_detailed(&groups);
        self.l_t.extend(detailed.l_t.iter().flatten());
        for (prompt, (group, scores)) in groups.into_iter().zip(detailed.scores).enumerate() {
            if self.filter.keeps(&group, &scores) {
                self.informative.push(self.groups.len());
            }
            self.origin.push((draw, prompt));
            self.groups.push(group);
            self.scores.push(scores);
        }
        self.draws.push(Draw {
            items,
            first,
            rollouts,
            judged,
        });
    }

    /// Informative groups drawn so far.
    pub fn informative(&self) -> usize {
        self.informative.len()
    }

    /// The rollouts this worker sampled over every draw.
    pub fn local_rollouts(&self) -> impl Iterator<Item = &Rollout> {
        self.draws.iter().flat_map(|d| &d.rollouts)
    }

    /// The metrics of the step's rollouts: the batch metrics of every drawn rollout (before
    /// filtering: what the policy produced), the mean target length, and under dynamic sampling
    /// `filter/*`: batches drawn, groups kept for the update, dropped for lack of signal, informative
    /// but beyond `want`, and missing (`want` minus kept, when the batch cap was reached first).
    ///
    /// # Errors
    /// When the scores do not match the groups (a bug).
    pub fn metrics(&self, want: usize) -> Result<Metrics> {
        let mut metrics: Metrics = BatchMetrics::compute(&self.groups, &self.scores)?
            .to_pairs()
            .into_iter()
            .collect();
        if !self.l_t.is_empty() {
            let mean = self.l_t.iter().sum::<f64>() / self.l_t.len() as f64;
            metrics.insert("reward/l_t".into(), mean);
        }
        if self.filter.enable {
            let kept = self.informative.len().min(want);
            for (key, value) in [
                ("filter/gen_batches", self.draws.len()),
                ("filter/groups_kept", kept),
                (
                    "filter/groups_dropped",
                    self.groups.len() - self.informative.len(),
                ),
                ("filter/groups_unused", self.informative.len() - kept),
                ("filter/groups_missing", want - kept),
            ] {
                metrics.insert(key.into(), value as f64);
            }
        }
        Ok(metrics)
    }

    /// The batch of the first `want` informative groups: their advantages over those groups (group
    /// ids 0, 1, … in draw order), this worker's sequences and records of them. Consumes the draws:
    /// token ids, log-probs and texts move into the batch uncopied.
    ///
    /// # Errors
    /// A non-finite reward.
    pub fn assemble(mut self, want: usize, optim: &OptimConfig) -> Result<StepBatch> {
        let n = self.n;
        let kept: Vec<usize> = self.informative.iter().take(want).copied().collect();
        let scores = &self.scores;
        let kept_scores = || kept.iter().flat_map(|&g| &scores[g]);
        let rewards: Vec<f32> = kept_scores().map(|s| s.reward).collect();
        let masked: Vec<bool> = kept_scores().map(|s| s.masked).collect();
        let group_ids: Vec<usize> = (0..rewards.len()).map(|i| i / n).collect();
        let advantages = optim.advantages(&rewards, &group_ids, &masked)?;
        let mut sequences = Vec::new();
        let mut records = Vec::new();
        for (k, &g) in kept.iter().enumerate() {
            let (d, prompt) = self.origin[g];
            let Draw {
                items,
                first,
                rollouts,
                judged,
            } = &mut self.draws[d];
            let local_prompts = rollouts.len() / n;
            let Some(local) = prompt.checked_sub(*first).filter(|&p| p < local_prompts) else {
                continue;
            };
            let item = &items[prompt];
            for j in 0..n {
                let (i, at) = (local * n + j, k * n + j);
                let r = &mut rollouts[i];
                let judged = std::mem::take(&mut judged[i]);
                debug_assert_eq!(r.prompt_idx, local, "rollouts come prompt by prompt");
                let length = r.len();
                sequences.push(UpdateSequence {
                    prompt_ids: item.prompt_ids.clone(),
                    response_ids: std::mem::take(&mut r.response_ids),
                    old_logprobs: std::mem::take(&mut r.logprobs),
                    advantage: advantages[at],
                    masked: masked[at],
                    group: k,
                });
                records.push(RolloutRecord {
                    prompt: item.text.clone(),
                    response: judged.text,
                    gold: item.gold.clone(),
                    extracted: judged.extracted,
                    correct: judged.correct,
                    length,
                    finish: r.finish,
                    reward: rewards[at],
                    advantage: advantages[at],
                    masked: masked[at],
                });
            }
        }
        Ok(StepBatch {
            batch: UpdateBatch { sequences },
            records,
        })
    }
}

/// The reward crate's view of how a rollout ended.
pub(crate) fn reward_finish(finish: Finish) -> laconic_reward::Finish {
    match finish {
        Finish::Stop => laconic_reward::Finish::Stop,
        Finish::Length => laconic_reward::Finish::Length,
    }
}

#[cfg(test)]
mod tests {
    use laconic_reward::{FilterMetric, Finish};

    use super::*;

    fn item(gold: &str) -> PromptItem {
        PromptItem {
            text: format!("q{gold}"),
            prompt_ids: vec![1, 2],
            gold: gold.into(),
        }
    }

    fn rollout(prompt_idx: usize, len: usize) -> Rollout {
        Rollout {
            prompt_idx,
            sample_idx: 0,
            response_ids: vec![3; len],
            logprobs: vec![-0.5; len],
            finish: laconic_rollout::Finish::Stop,
        }
    }

    /// The judge's verdicts matching `outcomes`.
    fn verdicts(outcomes: &[Outcome]) -> Vec<Judged> {
        outcomes
            .iter()
            .map(|o| Judged {
                text: String::new(),
                extracted: None,
                correct: o.0,
            })
            .collect()
    }

    /// A one-worker draw of `correct.len()` prompts × 2 rollouts with these verdicts.
    fn push(drawn: &mut Drawn, correct: &[[bool; 2]]) {
        let items: Vec<PromptItem> = (0..correct.len()).map(|p| item(&p.to_string())).collect();
        let outcomes: Vec<Outcome> = correct
            .iter()
            .flatten()
            .map(|&c| (c, 4, Finish::Stop))
            .collect();
        let rollouts = (0..outcomes.len()).map(|i| rollout(i / 2, 4)).collect();
        let judged = verdicts(&outcomes);
        let shaper: RewardConfig = toml::from_str("kind = \"correctness\"").unwrap();
        drawn.push(items, 0, rollouts, judged, &outcomes, &shaper);
    }

    fn filter() -> FilterGroups {
        FilterGroups {
            enable: true,
            metric: FilterMetric::Acc,
            max_num_gen_batches: 3,
        }
    }

    #[test]
    fn keeps_the_first_informative_groups_in_draw_order() {
        let mut drawn = Drawn::new(2, filter());
        push(&mut drawn, &[[true, true], [true, false], [false, false]]);
        assert_eq!(drawn.informative(), 1);
        push(&mut drawn, &[[false, true], [false, false], [true, false]]);
        assert_eq!(drawn.informative(), 3);
        let m = drawn.metrics(2).unwrap();
        let step = drawn.assemble(2, &OptimConfig::default()).unwrap();
        // Draw 0's prompt 1, then draw 1's prompt 0; draw 1's prompt 2 is beyond `want`.
        let golds: Vec<(&str, usize)> = step
            .records
            .iter()
            .zip(&step.batch.sequences)
            .map(|(r, s)| (r.gold.as_str(), s.group))
            .collect();
        assert_eq!(golds, [("1", 0), ("1", 0), ("0", 1), ("0", 1)]);
        // GRPO over the kept groups: ±1/√2·… symmetric, the correct one positive.
        let adv: Vec<f32> = step.records.iter().map(|r| r.advantage).collect();
        assert!(adv[0] > 0.0 && adv[1] < 0.0 && adv[2] < 0.0 && adv[3] > 0.0);
        assert!((adv[0] + adv[1]).abs() < 1e-6);
        assert_eq!(m["filter/gen_batches"], 2.0);
        assert_eq!(m["filter/groups_kept"], 2.0);
        assert_eq!(m["filter/groups_dropped"], 3.0);
        assert_eq!(m["filter/groups_unused"], 1.0);
        assert_eq!(m["filter/groups_missing"], 0.0);
        // Solve rates before filtering: 1 of 6 groups all correct, 2 all wrong.
        assert!((m["solve_rate/all_correct"] - 1.0 / 6.0).abs() < 1e-12);
        assert!((m["solve_rate/all_wrong"] - 2.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn a_short_batch_trains_on_what_there_is() {
        let mut drawn = Drawn::new(2, filter());
        push(&mut drawn, &[[true, true], [false, true]]);
        assert_eq!(drawn.metrics(2).unwrap()["filter/groups_missing"], 1.0);
        let step = drawn.assemble(2, &OptimConfig::default()).unwrap();
        assert_eq!(step.batch.sequences.len(), 2);
    }

    #[test]
    fn without_the_filter_every_group_is_trained_and_no_filter_metric_is_logged() {
        let mut drawn = Drawn::new(2, FilterGroups::default());
        push(&mut drawn, &[[true, true], [false, false]]);
        let m = drawn.metrics(2).unwrap();
        assert!(!m.keys().any(|k| k.starts_with("filter/")));
        let step = drawn.assemble(2, &OptimConfig::default()).unwrap();
        let groups: Vec<usize> = step.batch.sequences.iter().map(|s| s.group).collect();
        assert_eq!(groups, [0, 0, 1, 1]);
        assert!(step.records.iter().all(|r| r.advantage == 0.0));
    }

    #[test]
    fn a_worker_keeps_the_kept_groups_of_its_share() {
        // Worker 1 of 2 holds prompts 1 of a 2-prompt draw.
        let mut drawn = Drawn::new(2, filter());
        let items = vec![item("0"), item("1")];
        let outcomes: Vec<Outcome> = [true, false, false, true]
            .iter()
            .map(|&c| (c, 4, Finish::Stop))
            .collect();
        let rollouts = vec![rollout(0, 4), rollout(0, 4)];
        let judged = verdicts(&outcomes[2..]);
        let shaper: RewardConfig = toml::from_str("kind = \"correctness\"").unwrap();
        drawn.push(items, 1, rollouts, judged, &outcomes, &shaper);
        let step = drawn.assemble(2, &OptimConfig::default()).unwrap();
        let mine: Vec<(&str, usize, bool)> = step
            .records
            .iter()
            .zip(&step.batch.sequences)
            .map(|(r, s)| (r.gold.as_str(), s.group, r.correct))
            .collect();
        assert_eq!(mine, [("1", 1, false), ("1", 1, true)]);
    }
}
