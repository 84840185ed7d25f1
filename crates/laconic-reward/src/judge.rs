//! Judging a response against a gold answer: the interface the trainer calls per rollout.

use crate::extract::{extract_answer, gold_answer, ExtractOptions};
use crate::verify::{verify_with, VerifyOptions};

/// The verdict on one response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Judgement {
    /// `Some(true)` correct, `Some(false)` wrong, `None` when nothing was extracted or the answer
    /// could not be judged. Callers treat `None` as incorrect.
    pub correct: Option<bool>,
    /// The extracted final answer, if any (for logs and `rollouts/step_N.jsonl`).
    pub extracted: Option<String>,
}

impl Judgement {
    /// `correct == Some(true)`.
    pub fn is_correct(&self) -> bool {
        self.correct == Some(true)
    }
}

/// Anything that grades a response against a gold answer. Object-safe, so a trainer can hold a
/// `Box<dyn Judge>` and swap the math judge for a task-specific one (the synthetic demo task).
pub trait Judge: Send + Sync {
    /// Grade `response` against `gold`.
    fn judge(&self, response: &str, gold: &str) -> Judgement;
}

/// The math judge: [`extract_answer`] on the response, [`gold_answer`] on the gold, then
/// [`verify_with`].
///
/// ```
/// use laconic_reward::judge::{Judge, MathJudge};
/// let j = MathJudge::default();
/// let v = j.judge("<think>…</think> The answer is $\\boxed{\\dfrac{1}{2}}$.", "0.5");
/// assert_eq!(v.correct, Some(true));
/// assert_eq!(v.extracted.as_deref(), Some("\\dfrac{1}{2}"));
/// assert_eq!(j.judge("Janet makes 18 dollars.\n#### 18", "… #### 18").correct, Some(true));
/// assert_eq!(j.judge("no answer", "3").correct, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MathJudge {
    /// Where to look for the answer.
    pub extract: ExtractOptions,
    /// How to compare it.
    pub verify: VerifyOptions,
}

impl Judge for MathJudge {
    fn judge(&self, response: &str, gold: &str) -> Judgement {
        let extracted = extract_answer(response, &self.extract);
        let correct = extracted
            .as_deref()
            .and_then(|a| verify_with(a, &gold_answer(gold), &self.verify));
        Judgement { correct, extracted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct ExactMatch;
    impl Judge for ExactMatch {
        fn judge(&self, response: &str, gold: &str) -> Judgement {
            Judgement {
                correct: Some(response.trim() == gold.trim()),
                extracted: Some(response.into()),
            }
        }
    }

    #[test]
    fn trait_objects_work() {
        let judges: Vec<Box<dyn Judge>> =
            vec![Box::new(MathJudge::default()), Box::new(ExactMatch)];
        assert!(judges
            .iter()
            .all(|j| j.judge("\\boxed{7}", "7").correct.is_some()));
        assert!(judges[0].judge("\\boxed{7}", "7").is_correct());
        assert!(!judges[1].judge("\\boxed{7}", "7").is_correct());
    }

    #[test]
    fn wrong_and_unjudgeable() {
        let j = MathJudge::default();
        assert_eq!(j.judge("\\boxed{8}", "7").correct, Some(false));
        assert_eq!(j.judge("\\boxed{\\frac{}", "7").correct, None);
        assert_eq!(
            j.judge("<think>\\boxed{7}", "7"),
            Judgement {
                correct: None,
                extracted: None
            }
        );
    }
}
