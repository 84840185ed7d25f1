//! Finding the final answer in a model response, and normalising gold answers.
//!
//! Two modes ([`ExtractMode`]). `boxed` (the default, strict, for RL): after the think block is cut
//! off, the last `\boxed{…}` / `\fbox{…}` (nested braces, or `\boxed 5` without braces), then the last
//! GSM8K `#### N` line, then — only with [`ExtractOptions::phrases`] — the last "final answer is …" /
//! "answer: …". `math_verify` (for evaluating responses that do not box their answer, or were cut at a
//! budget): math-verify's tiered search, falling back to the last LaTeX span or number
//! ([`free_form`]). All hand-written scanning, linear in the input.

mod free_form;

use serde::{Deserialize, Serialize};

/// Longest answer we extract (bytes); a longer "answer" is a runaway, and the verifier would
/// refuse it anyway. Bounds the brace scan per candidate.
const MAX_ANSWER_BYTES: usize = 8192;

/// Most `\boxed` candidates tried from the end (unbalanced ones are skipped); bounds the work on
/// adversarial text with thousands of unclosed boxes.
const MAX_BOX_CANDIDATES: usize = 256;

/// How [`extract_answer`] finds the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtractMode {
    /// Only a committed answer: `\boxed{…}`, `#### N` (and, with `phrases`, "final answer is …").
    /// The RL default: a response that never commits to an answer is not rewarded.
    #[default]
    Boxed,
    /// math-verify's search: "final answer is …", boxes, "answer: …", then the last LaTeX span or
    /// number of the answer region. For evaluating free-form or budget-cut responses.
    MathVerify,
}

impl std::str::FromStr for ExtractMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "boxed" => Ok(ExtractMode::Boxed),
            "math_verify" | "math-verify" => Ok(ExtractMode::MathVerify),
            other => Err(format!(
                "unknown extraction mode `{other}` (boxed, math_verify)"
            )),
        }
    }
}

/// What [`extract_answer`] looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Strict (`boxed`, default) or math-verify's free-form search (the flags below but
    /// `think_aware` then do not apply).
    pub mode: ExtractMode,
    /// Look for `\boxed{…}` / `\fbox{…}`. Default true.
    pub boxed: bool,
    /// Look for a GSM8K `#### N` line. Default true.
    pub gsm8k: bool,
    /// Fall back to "final answer is …" and "answer: …". Default false: a response that never
    /// commits to a boxed answer is usually not one we want to reward.
    pub phrases: bool,
    /// Only the text after `</think>` counts; an unclosed `<think>` has no answer. Default true.
    pub think_aware: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            mode: ExtractMode::Boxed,
            boxed: true,
            gsm8k: true,
            phrases: false,
            think_aware: true,
        }
    }
}

/// The answer part of a response: after the last `</think>`; `None` when a `<think>` is never
/// closed (the model was cut off mid-thought); the whole text when there is no think block.
pub fn strip_think(text: &str) -> Option<&str> {
    if let Some(i) = text.rfind("</think>") {
        return text.get(i + "</think>".len()..);
    }
    if text.contains("<think>") {
        return None;
    }
    Some(text)
}

/// The final answer in `text`, or `None` when none is found.
///
/// ```
/// use laconic_reward::extract::{extract_answer, ExtractOptions};
/// let o = ExtractOptions::default();
/// assert_eq!(extract_answer("so \\boxed{\\frac{1}{2}}.", &o).as_deref(), Some("\\frac{1}{2}"));
/// assert_eq!(extract_answer("<think>maybe \\boxed{3}</think> It is \\boxed{4}", &o).as_deref(), Some("4"));
/// assert_eq!(extract_answer("<think>maybe \\boxed{3}", &o), None);
/// assert_eq!(extract_answer("3 + 4 = 7\n#### 7", &o).as_deref(), Some("7"));
/// ```
pub fn extract_answer(text: &str, opts: &ExtractOptions) -> Option<String> {
    let text = if opts.think_aware {
        strip_think(text)?
    } else {
        text
    };
    if opts.mode == ExtractMode::MathVerify {
        return free_form::free_form_answer(text);
    }
    if opts.boxed {
        if let Some(a) = last_boxed(text) {
            return Some(a);
        }
    }
    if opts.gsm8k {
        if let Some(a) = last_gsm8k(text) {
            return Some(a);
        }
    }
    if opts.phrases {
        return last_phrase(text);
    }
    None
}

/// Normalise a gold answer: GSM8K `"… #### 72"` → `72`; a MATH solution with `\boxed{…}` → the
/// boxed content; anything else trimmed (and stripped of surrounding `$`).
///
/// ```
/// use laconic_reward::extract::gold_answer;
/// assert_eq!(gold_answer("She sells 9 eggs.\n#### 18"), "18");
/// assert_eq!(gold_answer("so the answer is $\\boxed{\\frac{3}{4}}$."), "\\frac{3}{4}");
/// assert_eq!(gold_answer(" $x = 5$ "), "x = 5");
/// ```
pub fn gold_answer(gold: &str) -> String {
    if let Some(a) = last_gsm8k(gold) {
        return a;
    }
    if let Some(a) = last_boxed(gold) {
        return a;
    }
    gold.trim().trim_matches('$').trim().to_string()
}

/// The content of the balanced `{…}` whose `{` is at byte `open`, and the index after it.
fn balanced(text: &str, open: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    let stop = open.saturating_add(MAX_ANSWER_BYTES);
    while let Some(&b) = bytes.get(i).filter(|_| i < stop) {
        match b {
            b'\\' => i += 1, // `\{` and `\}` do not count
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some((text.get(open + 1..i)?, i + 1));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The last `\boxed{…}` / `\fbox{…}` / `\boxed X` whose content is complete and non-empty.
fn last_boxed(text: &str) -> Option<String> {
    // Each pattern is searched backwards from its previous hit only, so the scan is linear.
    let mut b = text.rfind("\\boxed");
    let mut f = text.rfind("\\fbox");
    for _ in 0..MAX_BOX_CANDIDATES {
        let (start, len) = match (b, f) {
            (None, None) => return None,
            (Some(bi), Some(fi)) if fi > bi => {
                f = text.get(..fi)?.rfind("\\fbox");
                (fi, "\\fbox".len())
            }
            (Some(bi), _) => {
                b = text.get(..bi)?.rfind("\\boxed");
                (bi, "\\boxed".len())
            }
            (None, Some(fi)) => {
                f = text.get(..fi)?.rfind("\\fbox");
                (fi, "\\fbox".len())
            }
        };
        let after = start + len;
        let rest = text.get(after..)?;
        // `\boxedx` is another command.
        if rest.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        let trimmed = rest.trim_start();
        let open = after + (rest.len() - trimmed.len());
        if trimmed.starts_with('{') {
            if let Some((content, _)) = balanced(text, open) {
                let content = content.trim();
                if !content.is_empty() {
                    return Some(content.to_string());
                }
            }
            continue;
        }
        // `\boxed 5`: up to whitespace or `$`, without trailing punctuation.
        if rest.starts_with(char::is_whitespace) {
            let word: String = trimmed
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '$')
                .take(MAX_ANSWER_BYTES)
                .collect();
            let word = word.trim_end_matches(['.', ',', ';']);
            if !word.is_empty() {
                return Some(word.to_string());
            }
        }
    }
    None
}

/// The rest of the line after the last `####`.
fn last_gsm8k(text: &str) -> Option<String> {
    let i = text.rfind("####")?;
    let rest = text.get(i + 4..)?;
    let line = rest.lines().next().unwrap_or_default();
    let a = line.trim().trim_end_matches('.').trim();
    (!a.is_empty()).then(|| a.to_string())
}

/// After the last "final answer is" (or, if none, the last "answer:"), up to the end of the
/// sentence or line, with `$`/`\(`/`\)` and trailing punctuation removed.
fn last_phrase(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let (i, len) = match lower.rfind("final answer is") {
        Some(i) => (i, "final answer is".len()),
        None => (lower.rfind("answer:")?, "answer:".len()),
    };
    let rest = text.get(i + len..)?.trim_start_matches([':', ' ', '\t']);
    let line = rest.lines().next().unwrap_or_default();
    // End of sentence: a `.` followed by whitespace or the end (not a decimal point).
    let mut cut = line.len();
    for (k, c) in line.char_indices() {
        if c == '.'
            && line
                .get(k + 1..)
                .is_none_or(|r| r.is_empty() || r.starts_with(char::is_whitespace))
        {
            cut = k;
            break;
        }
    }
    let a = line.get(..cut)?.trim();
    let a = a
        .trim_start_matches("\\(")
        .trim_end_matches("\\)")
        .trim_matches('$')
        .trim();
    let a = a.trim_end_matches([',', ';', '.']).trim();
    (!a.is_empty()).then(|| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<String> {
        extract_answer(s, &ExtractOptions::default())
    }

    #[test]
    fn boxed_variants() {
        assert_eq!(ex("a \\boxed{1} then \\boxed{2}").as_deref(), Some("2"));
        assert_eq!(
            ex("\\boxed{\\frac{a}{\\sqrt{b}}}").as_deref(),
            Some("\\frac{a}{\\sqrt{b}}")
        );
        assert_eq!(ex("\\fbox{7}").as_deref(), Some("7"));
        assert_eq!(ex("so $\\boxed 5$.").as_deref(), Some("5"));
        assert_eq!(ex("answer \\boxed 5.").as_deref(), Some("5"));
        assert_eq!(ex("\\boxed{\\{1,2\\}}").as_deref(), Some("\\{1,2\\}"));
        // An unclosed last box falls back to the previous complete one.
        assert_eq!(ex("\\boxed{3} and then \\boxed{4").as_deref(), Some("3"));
        assert_eq!(ex("\\boxed{}"), None);
        assert_eq!(ex("\\boxedx{3}"), None);
        assert_eq!(ex("no answer here"), None);
    }

    #[test]
    fn think_awareness() {
        assert_eq!(
            ex("<think>\\boxed{1}</think>\\boxed{2}").as_deref(),
            Some("2")
        );
        assert_eq!(ex("<think>\\boxed{1}</think>no box"), None);
        assert_eq!(ex("<think>\\boxed{1}"), None);
        let off = ExtractOptions {
            think_aware: false,
            ..ExtractOptions::default()
        };
        assert_eq!(
            extract_answer("<think>\\boxed{1}", &off).as_deref(),
            Some("1")
        );
    }

    #[test]
    fn gsm8k_and_phrases() {
        assert_eq!(ex("x\n#### 1,234\n").as_deref(), Some("1,234"));
        assert_eq!(ex("The final answer is 42."), None);
        let o = ExtractOptions {
            phrases: true,
            ..ExtractOptions::default()
        };
        assert_eq!(
            extract_answer("The final answer is $3.5$. I hope", &o).as_deref(),
            Some("3.5")
        );
        assert_eq!(
            extract_answer("Answer: 12 apples", &o).as_deref(),
            Some("12 apples")
        );
        assert_eq!(extract_answer("answer: ", &o), None);
    }

    #[test]
    fn gold() {
        assert_eq!(gold_answer("a\n#### 72"), "72");
        assert_eq!(gold_answer("$\\boxed{2}$ and"), "2");
        assert_eq!(gold_answer("\\frac{1}{2}"), "\\frac{1}{2}");
    }

    #[test]
    fn adversarial_boxes_are_linear() {
        // 100k unclosed boxes: each candidate's brace scan is capped, candidates are capped.
        let t = std::time::Instant::now();
        assert_eq!(ex(&"\\boxed{".repeat(100_000)), None);
        assert_eq!(
            ex(&("\\boxed{1}".to_string() + &"\\fbox{".repeat(100_000))),
            None
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn odd_bytes_do_not_panic() {
        for s in [
            "\\boxed",
            "\\boxed{",
            "\\boxed{é}",
            "####",
            "é\\boxed é",
            "\\fbox\\boxed{",
        ] {
            let _ = ex(s);
            let _ = gold_answer(s);
        }
    }
}
