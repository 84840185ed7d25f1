//! The demo's synthetic task: the sum of a few digits modulo 10, reasoned step by step.
//!
//! A prompt is `k` random digits and `=` (`38172=`); the answer is the digit sum mod 10. The terse chain
//! of thought keeps a running sum, one step per digit (`3+8>1;1+1>2;2+7>9;9+2>1;`), then answers (`a1`)
//! and ends. Verbose traces repeat the whole chain as re-checks (`c` + chain), so a model warm-started on
//! them is right but long-winded: what length-aware RL must compress. Skipping the chain costs accuracy
//! (a k-way sum in one step is beyond a tiny model), so there is a real length/accuracy trade-off.
//! The recipe was checked in a PyTorch prototype (see the repository's demo docs).

use laconic_reward::{Judge, Judgement};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// End of a response.
pub const EOS: &str = "<|endoftext|>";
/// Padding.
pub const PAD: &str = "<|pad|>";
/// Unknown character.
pub const UNK: &str = "<|unk|>";
/// The characters of the task, in vocabulary order after the special tokens.
pub const ALPHABET: &str = "0123456789+>;=ac";

/// Knobs of the generator: the number of digits (difficulty) and how verbose SFT traces are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DigitSumConfig {
    /// Fewest digits per problem. Default 4.
    pub min_digits: usize,
    /// Most digits per problem (difficulty). Default 9.
    pub max_digits: usize,
    /// Most re-checks appended to an SFT trace (0..=max, uniform). Default 2.
    pub max_rechecks: usize,
    /// Fewest digits of the held-out evaluation problems; default `min_digits`. Lets a run train on
    /// one difficulty and be evaluated on another (the lab's easy-vs-hard prompts).
    pub eval_min_digits: Option<usize>,
    /// Most digits of the held-out evaluation problems; default `max_digits`.
    pub eval_max_digits: Option<usize>,
}

impl Default for DigitSumConfig {
    fn default() -> Self {
        Self {
            min_digits: 4,
            max_digits: 9,
            max_rechecks: 2,
            eval_min_digits: None,
            eval_max_digits: None,
        }
    }
}

impl DigitSumConfig {
    /// Checks the digit range.
    ///
    /// # Errors
    /// A message naming `data.min_digits` / `data.max_digits`.
    pub fn validate(&self) -> Result<(), String> {
        let held_out = self.held_out();
        for (prefix, range) in [("", self), ("eval_", &held_out)] {
            if range.min_digits == 0 {
                return Err(format!("`data.{prefix}min_digits` must be positive"));
            }
            if range.min_digits > range.max_digits {
                return Err(format!(
                    "`data.{prefix}min_digits` ({}) must be at most `data.{prefix}max_digits` ({})",
                    range.min_digits, range.max_digits
                ));
            }
        }
        Ok(())
    }

    /// The generator of the held-out evaluation problems: this one with the `eval_*` digit range.
    pub fn held_out(&self) -> Self {
        Self {
            min_digits: self.eval_min_digits.unwrap_or(self.min_digits),
            max_digits: self.eval_max_digits.unwrap_or(self.max_digits),
            eval_min_digits: None,
            eval_max_digits: None,
            ..self.clone()
        }
    }
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The digits.
    pub digits: Vec<u8>,
}

impl Problem {
    /// A random problem with a digit count drawn uniformly from the configured range.
    pub fn sample(config: &DigitSumConfig, rng: &mut impl Rng) -> Self {
        let k = rng.random_range(config.min_digits..=config.max_digits.max(config.min_digits));
        Self {
            digits: (0..k).map(|_| rng.random_range(0..10u8)).collect(),
        }
    }

    /// The prompt text, e.g. `38172=`.
    pub fn prompt(&self) -> String {
        let mut s: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        s.push('=');
        s
    }

    /// The answer digit (sum mod 10) as text.
    pub fn answer(&self) -> String {
        let sum: u32 = self.digits.iter().map(|&d| u32::from(d)).sum();
        (sum % 10).to_string()
    }

    /// The running-sum chain, e.g. `3+8>1;1+1>2;` (empty for a single digit).
    pub fn chain(&self) -> String {
        let mut out = String::new();
        let Some((&first, rest)) = self.digits.split_first() else {
            return out;
        };
        let mut acc = first;
        for &d in rest {
            let next = (acc + d) % 10;
            out.push_str(&format!("{acc}+{d}>{next};"));
            acc = next;
        }
        out
    }

    /// A response with the chain followed by `rechecks` repetitions (`c` + chain), the answer and EOS.
    pub fn trace(&self, rechecks: usize) -> String {
        let chain = self.chain();
        let mut out = chain.clone();
        for _ in 0..rechecks {
            out.push('c');
            out.push_str(&chain);
        }
        out.push('a');
        out.push_str(&self.answer());
        out.push_str(EOS);
        out
    }
}

/// Judges a digit-sum response: the response must end with `a` and one digit (optionally followed by EOS),
/// equal to the answer. Whether the response finished within its budget is the caller's business (the
/// trainer counts a rollout cut at `L_R` as incorrect; the demo's evaluation scores unfinished samples
/// as incorrect).
#[derive(Debug, Clone, Copy, Default)]
pub struct DigitSumJudge;

impl Judge for DigitSumJudge {
    fn judge(&self, response: &str, gold: &str) -> Judgement {
        let extracted = extract_answer(response);
        let correct = extracted.as_ref().map(|a| a == gold.trim());
        Judgement { correct, extracted }
    }
}

/// The answer of a response: the single digit after its last `a`, at the very end (before EOS, if any).
pub fn extract_answer(response: &str) -> Option<String> {
    let body = response.strip_suffix(EOS).unwrap_or(response);
    let (_, after) = body.rsplit_once('a')?;
    (after.len() == 1 && after.as_bytes()[0].is_ascii_digit()).then(|| after.to_string())
}

/// The demo tokenizer as `tokenizer.json` text: one token per character of [`ALPHABET`] (WordLevel over
/// single characters), special tokens `<|pad|>` (0), `<|endoftext|>` (1), `<|unk|>` (2), and a
/// concatenating decoder. `assets/demo/tokenizer.json` is exactly this output.
pub fn tokenizer_json() -> String {
    let specials = [PAD, EOS, UNK];
    let mut vocab = serde_json::Map::new();
    for (id, token) in specials
        .iter()
        .map(|s| s.to_string())
        .chain(ALPHABET.chars().map(String::from))
        .enumerate()
    {
        vocab.insert(token, serde_json::Value::from(id));
    }
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(id, content)| {
            serde_json::json!({
                "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true
            })
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated", "invert": false},
        "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK},
    });
    let mut text = serde_json::to_string_pretty(&json).expect("a JSON value serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use laconic_model::Tokenizer;
    use rand::SeedableRng;

    #[test]
    fn chain_trace_and_answer() {
        let p = Problem {
            digits: vec![3, 8, 1, 7, 2],
        };
        assert_eq!(p.prompt(), "38172=");
        assert_eq!(p.answer(), "1"); // 3+8+1+7+2 = 21
        assert_eq!(p.chain(), "3+8>1;1+1>2;2+7>9;9+2>1;");
        assert_eq!(p.trace(0), "3+8>1;1+1>2;2+7>9;9+2>1;a1<|endoftext|>");
        assert_eq!(
            p.trace(1),
            "3+8>1;1+1>2;2+7>9;9+2>1;c3+8>1;1+1>2;2+7>9;9+2>1;a1<|endoftext|>"
        );
    }

    #[test]
    fn judge_needs_a_finished_answer() {
        let judge = DigitSumJudge;
        assert_eq!(
            judge.judge("3+8>1;a1<|endoftext|>", "1").correct,
            Some(true)
        );
        assert_eq!(judge.judge("a7<|endoftext|>", "1").correct, Some(false));
        // Without EOS (evaluation strips the stop token) the answer still counts.
        assert_eq!(judge.judge("3+8>1;a1", "1").correct, Some(true));
        assert_eq!(judge.judge("3+8>1;<|endoftext|>", "1").correct, None);
        assert_eq!(judge.judge("3+8>1;a", "1").correct, None);
        assert_eq!(judge.judge("a12<|endoftext|>", "1").correct, None);
    }

    #[test]
    fn tokenizer_round_trips_one_token_per_character() {
        let tok = Tokenizer::from_bytes(tokenizer_json().as_bytes(), "<demo>").unwrap();
        let p = Problem {
            digits: vec![9, 0, 4],
        };
        let text = format!("{}{}", p.prompt(), p.trace(1));
        let ids = tok.encode(&text).unwrap();
        assert_eq!(
            ids.len(),
            p.prompt().len() + p.trace(1).len() - EOS.len() + 1
        );
        assert_eq!(*ids.last().unwrap(), 1);
        assert_eq!(tok.decode(&ids).unwrap(), text);
        assert_eq!(tok.stop_ids(), vec![1]);
        assert_eq!(tok.vocab_size(), 3 + ALPHABET.len());
    }

    #[test]
    fn shipped_demo_tokenizer_is_the_generated_one() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../assets/demo/tokenizer.json"
        );
        assert_eq!(std::fs::read_to_string(path).unwrap(), tokenizer_json());
    }

    #[test]
    fn difficulty_knob_bounds_digit_counts() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let config = DigitSumConfig {
            min_digits: 8,
            max_digits: 9,
            ..Default::default()
        };
        for _ in 0..100 {
            let k = Problem::sample(&config, &mut rng).digits.len();
            assert!((8..=9).contains(&k));
        }
    }

    #[test]
    fn held_out_problems_take_their_own_digit_range() {
        let train_hard = DigitSumConfig {
            min_digits: 8,
            max_digits: 9,
            eval_min_digits: Some(4),
            eval_max_digits: Some(9),
            ..Default::default()
        };
        let held_out = train_hard.held_out();
        assert_eq!((held_out.min_digits, held_out.max_digits), (4, 9));
        assert_eq!(
            DigitSumConfig::default().held_out(),
            DigitSumConfig::default()
        );
        let bad = DigitSumConfig {
            eval_min_digits: Some(10),
            ..Default::default()
        };
        let message = bad.validate().unwrap_err();
        assert!(message.contains("data.eval_min_digits"), "{message}");
    }
}
