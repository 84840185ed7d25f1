//! The one-pass budget sweep: score each sample at every budget `B` from its first `B` tokens.
//!
//! # Why one pass equals separate runs
//! The rollout engine draws sample `s` of prompt `p` from its own random stream seeded by `(seed, p, s)`,
//! and the token at step `t` depends only on that stream and the `t` tokens before it — never on
//! `max_tokens`, which only decides when to stop. So a run capped at `B` and a run capped at `C > B` with
//! the same seed produce the same first `B` tokens of every sample. (One caveat: the two runs batch
//! sequences differently, logits can differ in their last float bits between batch shapes, and a draw
//! landing that close to a sampling boundary flips — 1 sample in 400 in `examples/bench_sweep.rs`, whose
//! random model samples from a near-uniform 151,936-way distribution. The distributional statement below
//! holds regardless.) The first `B` tokens of the `C`-capped sample
//! therefore *are* the `B`-capped sample: the same ids, the same finish reason (stopped iff its stop token
//! lies within the first `B`), hence the same decoded text and the same judgement. Scoring every budget
//! from one generation at the largest budget costs one run instead of one per budget. (Paper, "Evaluation
//! protocol": the first `B` tokens of a sample drawn with cap 32k are distributed exactly like a sample
//! drawn with cap `B`; with shared seeds they are not only equal in law but identical.)

use laconic_reward::Judge;
use laconic_rollout::{Finish, Rollout};
use serde::{Deserialize, Serialize};

use crate::config::TruncatedScoring;
use crate::error::{Error, Result};

/// A decoder from token ids to text (a tokenizer's `decode`).
pub type Decode<'a> = dyn Fn(&[u32]) -> laconic_model::Result<String> + Sync + 'a;

/// The first `budget` tokens of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut<'a> {
    /// The tokens the model produced within the budget (its stop token included when it finished).
    pub ids: &'a [u32],
    /// Whether the response ended with its stop token within the budget.
    pub finished: bool,
}

impl<'a> Cut<'a> {
    /// The text-bearing tokens: `ids` without the final stop token when finished.
    pub fn content(&self) -> &'a [u32] {
        match self.finished {
            true => &self.ids[..self.ids.len().saturating_sub(1)],
            false => self.ids,
        }
    }
}

/// The response as a run capped at `budget` would have produced it: the first `budget` tokens, finished iff
/// the stop token lies within them.
///
/// # Errors
/// [`Error::BudgetAboveCap`] when the response was cut (finish [`Finish::Length`]) before `budget` tokens:
/// what it would have done up to `budget` is unknown.
pub fn cut_at(rollout: &Rollout, question_idx: usize, budget: usize) -> Result<Cut<'_>> {
    let ids = &rollout.response_ids;
    if ids.len() > budget {
        return Ok(Cut {
            ids: &ids[..budget],
            finished: false,
        });
    }
    if rollout.finish == Finish::Length && ids.len() < budget {
        return Err(Error::BudgetAboveCap {
            question_idx,
            sample_idx: rollout.sample_idx,
            length: ids.len(),
            budget,
        });
    }
    Ok(Cut {
        ids,
        finished: rollout.finish == Finish::Stop,
    })
}

/// A sample's result at one budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetOutcome {
    /// The budget `B`.
    pub budget: usize,
    /// Tokens counted at this budget: `min(length, B)` (the stop token counts).
    pub length: usize,
    /// Whether the stop token lies within the first `B` tokens.
    pub finished: bool,
    /// Whether it is correct at this budget (see [`TruncatedScoring`]).
    pub correct: bool,
    /// The final answer the judge found in the text cut at `B`.
    pub extracted: Option<String>,
}

/// One sample scored at every budget: a line of `samples.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// The benchmark.
    pub benchmark: String,
    /// Index of the question in the benchmark.
    pub question_idx: usize,
    /// Index of the sample among the question's `k`.
    pub sample_idx: usize,
    /// The question.
    pub question: String,
    /// The gold answer.
    pub gold: String,
    /// The whole response (largest budget), without its stop token.
    pub response: String,
    /// Tokens generated (the stop token counts).
    pub length: usize,
    /// How the generation ended at the largest budget.
    pub finish: Finish,
    /// Results at each budget, ascending.
    pub budgets: Vec<BudgetOutcome>,
}

/// Scores one rollout at every budget of `budgets` (ascending): decode the text cut at `B`, judge it.
/// Budgets at or above the response's length share one decode and one judgement.
///
/// # Errors
/// A budget above the generation cap ([`cut_at`]), or a decoding failure.
pub fn score_at_budgets(
    rollout: &Rollout,
    question_idx: usize,
    gold: &str,
    budgets: &[usize],
    judge: &dyn Judge,
    truncated: TruncatedScoring,
    decode: &Decode<'_>,
) -> Result<(String, Vec<BudgetOutcome>)> {
    let full = cut_at(rollout, question_idx, rollout.len())?;
    let response = decode(full.content())?;
    let mut full_judgement = None;
    let mut outcomes = Vec::with_capacity(budgets.len());
    for &budget in budgets {
        let cut = cut_at(rollout, question_idx, budget)?;
        let judgement = if cut.ids.len() == rollout.len() {
            full_judgement
                .get_or_insert_with(|| judge.judge(&response, gold))
                .clone()
        } else {
            judge.judge(&decode(cut.content())?, gold)
        };
        let counts = cut.finished || truncated == TruncatedScoring::Judge;
        outcomes.push(BudgetOutcome {
            budget,
            length: cut.ids.len(),
            finished: cut.finished,
            correct: counts && judgement.is_correct(),
            extracted: judgement.extracted,
        });
    }
    Ok((response, outcomes))
}

/// What [`score_sample_records`] needs to know about one question.
#[derive(Debug, Clone, Copy)]
pub struct QuestionRef<'a> {
    /// The question text.
    pub question: &'a str,
    /// The gold answer.
    pub gold: &'a str,
}

/// Scores the rollouts of a benchmark (ordered or not; `prompt_idx` indexes `questions`) at every budget,
/// on all cores. The records come back ordered by `(question_idx, sample_idx)`.
///
/// # Errors
/// A rollout whose `prompt_idx` is not a question, or as [`score_at_budgets`].
pub fn score_sample_records(
    benchmark: &str,
    questions: &[QuestionRef<'_>],
    rollouts: &[Rollout],
    budgets: &[usize],
    judge: &dyn Judge,
    truncated: TruncatedScoring,
    decode: &Decode<'_>,
) -> Result<Vec<SampleRecord>> {
    if let Some(r) = rollouts.iter().find(|r| r.prompt_idx >= questions.len()) {
        return Err(Error::Mismatch {
            benchmark: benchmark.to_string(),
            message: format!(
                "a rollout of prompt {} but only {} questions",
                r.prompt_idx,
                questions.len()
            ),
        });
    }
    let score = |r: &Rollout| -> Result<SampleRecord> {
        let q = questions[r.prompt_idx];
        let (response, outcomes) =
            score_at_budgets(r, r.prompt_idx, q.gold, budgets, judge, truncated, decode)?;
        Ok(SampleRecord {
            benchmark: benchmark.to_string(),
            question_idx: r.prompt_idx,
            sample_idx: r.sample_idx,
            question: q.question.to_string(),
            gold: q.gold.to_string(),
            response,
            length: r.len(),
            finish: r.finish,
            budgets: outcomes,
        })
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = rollouts.len().div_ceil(threads).max(1);
    let mut records = std::thread::scope(|scope| {
        let workers: Vec<_> = rollouts
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(score).collect::<Result<Vec<_>>>()))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a scoring thread panicked"))
            .collect::<Result<Vec<Vec<_>>>>()
    })?
    .concat();
    records.sort_by_key(|r| (r.question_idx, r.sample_idx));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use laconic_reward::{Judgement, MathJudge};

    /// Token `i` decodes to the `i`-th word of a small vocabulary; 0 is the stop token.
    const WORDS: [&str; 8] = [
        "<stop>",
        "so",
        "\\boxed{7}",
        "\\boxed{8}",
        "<think>",
        "</think>",
        "x",
        "y",
    ];

    fn decode(ids: &[u32]) -> laconic_model::Result<String> {
        Ok(ids
            .iter()
            .map(|&i| WORDS[i as usize])
            .collect::<Vec<_>>()
            .join(" "))
    }

    fn rollout(ids: &[u32], finish: Finish) -> Rollout {
        Rollout {
            prompt_idx: 0,
            sample_idx: 0,
            response_ids: ids.to_vec(),
            logprobs: vec![0.0; ids.len()],
            finish,
        }
    }

    fn score(r: &Rollout, budgets: &[usize], truncated: TruncatedScoring) -> Vec<BudgetOutcome> {
        score_at_budgets(
            r,
            0,
            "7",
            budgets,
            &MathJudge::default(),
            truncated,
            &decode,
        )
        .unwrap()
        .1
    }

    #[test]
    fn cuts_match_a_run_capped_at_the_budget() {
        let r = rollout(&[1, 6, 2, 0], Finish::Stop);
        assert_eq!(
            cut_at(&r, 0, 2).unwrap(),
            Cut {
                ids: &[1, 6],
                finished: false
            }
        );
        assert_eq!(
            cut_at(&r, 0, 4).unwrap(),
            Cut {
                ids: &[1, 6, 2, 0],
                finished: true
            }
        );
        assert_eq!(cut_at(&r, 0, 9).unwrap().content(), &[1, 6, 2]);
        let cut = rollout(&[1, 6, 7], Finish::Length);
        assert_eq!(
            cut_at(&cut, 0, 3).unwrap(),
            Cut {
                ids: &[1, 6, 7],
                finished: false
            }
        );
        let err = cut_at(&cut, 5, 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "question 5 sample 0: cut at 3 tokens, below budget 4; generate with `max_tokens` ≥ the largest budget"
        );
    }

    #[test]
    fn an_answer_counts_only_once_it_is_within_the_budget() {
        // "so x \boxed{7} y <stop>": the answer is token 3, the stop token 5.
        let r = rollout(&[1, 6, 2, 7, 0], Finish::Stop);
        let got = score(&r, &[2, 3, 4, 5, 8], TruncatedScoring::Judge);
        let correct: Vec<bool> = got.iter().map(|o| o.correct).collect();
        assert_eq!(correct, [false, true, true, true, true]);
        let finished: Vec<bool> = got.iter().map(|o| o.finished).collect();
        assert_eq!(finished, [false, false, false, true, true]);
        let lengths: Vec<usize> = got.iter().map(|o| o.length).collect();
        assert_eq!(lengths, [2, 3, 4, 5, 5]);
        assert_eq!(got[0].extracted, None);
        assert_eq!(got[1].extracted.as_deref(), Some("7"));
        // Strict scoring: correct only once finished.
        let strict = score(&r, &[2, 3, 4, 5, 8], TruncatedScoring::Incorrect);
        let correct: Vec<bool> = strict.iter().map(|o| o.correct).collect();
        assert_eq!(correct, [false, false, false, true, true]);
    }

    #[test]
    fn an_unclosed_think_block_has_no_answer() {
        // "<think> \boxed{7} </think> \boxed{8} \boxed{7} <stop>"
        let r = rollout(&[4, 2, 5, 3, 2, 0], Finish::Stop);
        let got = score(&r, &[2, 3, 4, 5, 6], TruncatedScoring::Judge);
        let summary: Vec<(bool, Option<&str>)> = got
            .iter()
            .map(|o| (o.correct, o.extracted.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                (false, None),
                (false, None),
                (false, Some("8")),
                (true, Some("7")),
                (true, Some("7"))
            ]
        );
    }

    #[test]
    fn samples_are_ordered_and_checked() {
        struct Counting;
        impl Judge for Counting {
            fn judge(&self, response: &str, _gold: &str) -> Judgement {
                Judgement {
                    correct: Some(response.contains('x')),
                    extracted: None,
                }
            }
        }
        let questions = [
            QuestionRef {
                question: "a",
                gold: "1",
            },
            QuestionRef {
                question: "b",
                gold: "2",
            },
        ];
        let mut rollouts = Vec::new();
        for (p, s) in [(1, 1), (0, 0), (1, 0), (0, 1)] {
            rollouts.push(Rollout {
                prompt_idx: p,
                sample_idx: s,
                ..rollout(&[6, 0], Finish::Stop)
            });
        }
        let records = score_sample_records(
            "t",
            &questions,
            &rollouts,
            &[1, 2],
            &Counting,
            TruncatedScoring::Judge,
            &decode,
        )
        .unwrap();
        let order: Vec<(usize, usize)> = records
            .iter()
            .map(|r| (r.question_idx, r.sample_idx))
            .collect();
        assert_eq!(order, [(0, 0), (0, 1), (1, 0), (1, 1)]);
        assert_eq!(records[2].question, "b");
        assert_eq!(records[2].response, "x");
        assert!(records
            .iter()
            .all(|r| r.budgets[0].correct && !r.budgets[0].finished && r.budgets[1].finished));
        rollouts[0].prompt_idx = 2;
        let err = score_sample_records(
            "t",
            &questions,
            &rollouts,
            &[1],
            &Counting,
            TruncatedScoring::Judge,
            &decode,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "benchmark `t`: a rollout of prompt 2 but only 2 questions"
        );
    }
}
