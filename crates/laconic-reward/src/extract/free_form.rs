//! Free-form answers: math-verify's search, for responses that do not box their answer (or were cut
//! at a budget before they could).
//!
//! Candidates come in tiers, searched in order; within a tier the candidate that ends last is tried
//! first, and the first one the verifier can parse is the answer:
//!
//! | tier | candidate |
//! |---:|---|
//! | 0 | `final answer is X. I hope` |
//! | 50 | `final answer … is X` (within 100 characters), and every `\boxed{X}` |
//! | 100 | `answer:` then, within 50 characters, `X` (or `… = X` within 100) |
//! | 200 | `answer` then, within 50 characters, `X` (or `… = X` within 100) |
//! | 300 | every `X` anywhere |
//!
//! where `X` is a LaTeX span (`$…$`, `$$…$$`, `\[…\]`, `\(…\)`, a numeric `\frac{a}{b}`) or a number or
//! arithmetic expression standing on its own (after a space, `=` or the start; `1,234.5`, `-3`, `.5`,
//! `12 - 5`). Number windows stay on their line; LaTeX windows may cross lines. All scanning is
//! hand-written and linear in the text (the keyword windows are bounded).

use super::{balanced, MAX_ANSWER_BYTES, MAX_BOX_CANDIDATES};
use crate::verify::parses;

/// Most candidates considered per tier (from the end of the text); bounds the parsing work.
const MAX_CANDIDATES_PER_TIER: usize = 64;

/// A candidate answer: its tier, where it ends and starts in the text, and its text.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    tier: u16,
    start: usize,
    end: usize,
    text: String,
}

/// A LaTeX span or a number/expression found in the text.
#[derive(Debug, Clone, PartialEq)]
struct Span {
    /// Where the match starts (its opening delimiter or anchor).
    start: usize,
    /// Where it ends (after its closing delimiter).
    end: usize,
    /// The answer text inside.
    text: String,
}

/// The answer math-verify would take from `text`, or `None`.
pub(crate) fn free_form_answer(text: &str) -> Option<String> {
    let latex = latex_spans(text);
    let numbers = number_spans(text);
    // Keywords match case-insensitively; ASCII lowercasing keeps every byte offset.
    let lower = text.to_ascii_lowercase();
    let mut candidates = Vec::new();
    final_answer_candidates(text, &lower, &latex, &numbers, &mut candidates);
    boxed_candidates(text, &mut candidates);
    answer_candidates(text, &lower, &latex, &numbers, &mut candidates);
    for span in latex.iter().chain(&numbers) {
        candidates.push(Candidate {
            tier: 300,
            start: span.start,
            end: span.end,
            text: span.text.clone(),
        });
    }
    candidates.sort_by(|a, b| {
        a.tier
            .cmp(&b.tier)
            .then(b.end.cmp(&a.end))
            .then(a.start.cmp(&b.start))
    });
    let mut tried_in_tier = (u16::MAX, 0usize);
    for c in candidates {
        if tried_in_tier.0 != c.tier {
            tried_in_tier = (c.tier, 0);
        }
        tried_in_tier.1 += 1;
        if tried_in_tier.1 > MAX_CANDIDATES_PER_TIER {
            continue;
        }
        if parses(&c.text) {
            return Some(c.text);
        }
    }
    None
}

/// Tier 0 (`final answer is X. I hope`) and tier 50 (`final answer … is X`).
fn final_answer_candidates(
    text: &str,
    lower: &str,
    latex: &[Span],
    numbers: &[Span],
    out: &mut Vec<Candidate>,
) {
    for (at, _) in lower.match_indices("final answer") {
        let after = at + "final answer".len();
        // Tier 0: directly `is`, an optional `:`, spaces, X, an optional `.`, a space, `I hope`.
        if let Some(rest) = lower.get(after..).and_then(|r| r.strip_prefix(" is")) {
            let x_at = skip_spaces(
                text,
                text.len() - rest.len() + usize::from(rest.starts_with(':')),
            );
            if let Some(span) = span_at(latex, numbers, x_at) {
                let mut end = span.end;
                end += usize::from(text[end..].starts_with('.'));
                end += text[end..]
                    .chars()
                    .next()
                    .filter(|c| c.is_whitespace())
                    .map_or(0, char::len_utf8);
                if text[end..].starts_with("I hope") {
                    out.push(Candidate {
                        tier: 0,
                        start: at,
                        end: end + "I hope".len(),
                        text: span.text.clone(),
                    });
                }
            }
        }
        // Tier 50: within 100 characters a whitespace-led `is`, an optional `:`, X.
        let window = window_end(text, after, 100, true);
        let mut k = after;
        while let Some(i) = text
            .get(k..window)
            .and_then(|w| w.find("is"))
            .map(|i| k + i)
        {
            k = i + 2;
            let led = text[..i]
                .chars()
                .next_back()
                .is_some_and(char::is_whitespace);
            if !led {
                continue;
            }
            let x_at = skip_spaces(text, k + usize::from(text[k..].starts_with(':')));
            if let Some(span) = span_at(latex, numbers, x_at) {
                out.push(Candidate {
                    tier: 50,
                    start: at,
                    end: span.end,
                    text: span.text.clone(),
                });
                break;
            }
        }
    }
}

/// Tier 50: every complete, non-empty `\boxed{…}`, from the end.
fn boxed_candidates(text: &str, out: &mut Vec<Candidate>) {
    let mut search_end = text.len();
    for _ in 0..MAX_BOX_CANDIDATES {
        let Some(at) = text[..search_end].rfind("\\boxed") else {
            return;
        };
        search_end = at;
        let open = skip_spaces(text, at + "\\boxed".len());
        if !text[open..].starts_with('{') {
            continue;
        }
        if let Some((content, end)) = balanced(text, open) {
            let content = content.trim();
            if !content.is_empty() {
                out.push(Candidate {
                    tier: 50,
                    start: at,
                    end,
                    text: content.to_string(),
                });
            }
        }
    }
}

/// Tiers 100 (`answer:`) and 200 (`answer`), in one pass over the `answer`s: X within 50
/// characters, or after the last `=` within 100 for a number.
fn answer_candidates(
    text: &str,
    lower: &str,
    latex: &[Span],
    numbers: &[Span],
    out: &mut Vec<Candidate>,
) {
    for (at, _) in lower.match_indices("answer") {
        let after = at + "answer".len();
        let colon = text[after..].starts_with(':');
        let windows = [(200, Some(after)), (100, colon.then_some(after + 1))];
        for (tier, after) in windows.into_iter().filter_map(|(t, a)| Some((t, a?))) {
            let near_latex = window_end(text, after, 50, true);
            let latex = first_from(latex, after).filter(|s| s.start <= near_latex);
            for span in latex
                .into_iter()
                .chain(number_after_answer(text, numbers, after))
            {
                out.push(Candidate {
                    tier,
                    start: at,
                    end: span.end,
                    text: span.text.clone(),
                });
            }
        }
    }
}

/// The number of an `answer` window: the one after the last `=` within 100 characters (on the
/// line), else the first within 50 characters that is not itself followed by `=`.
fn number_after_answer<'a>(text: &str, numbers: &'a [Span], after: usize) -> Option<&'a Span> {
    let far = window_end(text, after, 100, false);
    let not_followed_by_equals = |s: &&Span| !text[s.end..].trim_start().starts_with('=');
    if let Some(eq) = text[after..far].rfind('=').map(|i| after + i) {
        let x_at = skip_spaces(text, eq + 1);
        if let Some(span) = covering(numbers, x_at).filter(not_followed_by_equals) {
            return Some(span);
        }
    }
    let near = window_end(text, after, 50, false);
    let from = numbers.partition_point(|s| s.start < after);
    numbers[from..]
        .iter()
        .take_while(|s| s.start <= near)
        .find(not_followed_by_equals)
}

/// The first span starting at or after `at` (spans are sorted and do not overlap).
fn first_from(spans: &[Span], at: usize) -> Option<&Span> {
    spans.get(spans.partition_point(|s| s.start < at))
}

/// The span whose match covers byte `at`.
fn covering(spans: &[Span], at: usize) -> Option<&Span> {
    let i = spans.partition_point(|s| s.end <= at);
    spans.get(i).filter(|s| s.start <= at)
}

/// The LaTeX span starting at `at`, else the number whose match (anchor included) covers `at`.
fn span_at<'a>(latex: &'a [Span], numbers: &'a [Span], at: usize) -> Option<&'a Span> {
    first_from(latex, at)
        .filter(|s| s.start == at)
        .or_else(|| covering(numbers, at).filter(|s| s.start + 1 >= at))
}

/// `from` moved past whitespace.
fn skip_spaces(text: &str, from: usize) -> usize {
    let rest = &text[from.min(text.len())..];
    text.len() - rest.trim_start().len()
}

/// The byte `chars` characters after `from` (or the end), stopping at a newline unless `multiline`.
fn window_end(text: &str, from: usize, chars: usize, multiline: bool) -> usize {
    let mut end = from;
    for (n, c) in text[from..].chars().enumerate() {
        if n >= chars || (!multiline && c == '\n') {
            break;
        }
        end += c.len_utf8();
    }
    end
}

/// Every LaTeX span, left to right, not overlapping: `$$…$$`, `\[…\]`, `$…$` (one line, not after a
/// digit or `\`), `\(…\)` (one line), and a numeric `\frac{a}{b}`.
fn latex_spans(text: &str) -> Vec<Span> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let escaped = i > 0 && bytes[i - 1] == b'\\';
        let found = if escaped {
            None
        } else if text[i..].starts_with("$$") {
            closing(text, i + 2, "$$", true).or_else(|| closing(text, i + 1, "$", false))
        } else if text[i..].starts_with("\\[") {
            closing(text, i + 2, "\\]", true)
        } else if bytes[i] == b'$' && !(i > 0 && bytes[i - 1].is_ascii_digit()) {
            closing(text, i + 1, "$", false)
        } else if text[i..].starts_with("\\(") {
            closing(text, i + 2, "\\)", false)
        } else if text[i..].starts_with("\\frac") || text[i..].starts_with("-\\frac") {
            numeric_frac(text, i)
        } else {
            None
        };
        match found {
            Some((content, end)) => {
                out.push(Span {
                    start: i,
                    end,
                    text: content,
                });
                i = end;
            }
            None => i += text[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

/// The non-empty content from `from` to the next unescaped `close` (on one line unless
/// `multiline`), and the index after `close`.
fn closing(text: &str, from: usize, close: &str, multiline: bool) -> Option<(String, usize)> {
    let stop = from.saturating_add(MAX_ANSWER_BYTES).min(text.len());
    let mut k = from;
    while k < stop {
        let rest = &text[k..];
        if rest.starts_with(close) && k > from && text.as_bytes()[k - 1] != b'\\' {
            return Some((text[from..k].trim().to_string(), k + close.len()))
                .filter(|(c, _)| !c.is_empty());
        }
        let c = rest.chars().next()?;
        if c == '\n' && !multiline {
            return None;
        }
        // `\$` inside an inline span is an escaped dollar, not the end.
        k += if c == '\\' && rest[1..].starts_with('$') {
            2
        } else {
            c.len_utf8()
        };
    }
    None
}

/// `\frac{a}{b}` (or `-\frac…`) with plain numbers `a` and `b`.
fn numeric_frac(text: &str, at: usize) -> Option<(String, usize)> {
    let body_at = at + usize::from(text[at..].starts_with('-')) + "\\frac".len();
    let (num, after_num) = balanced(text, body_at).filter(|_| text[body_at..].starts_with('{'))?;
    let (den, end) = balanced(text, after_num).filter(|_| text[after_num..].starts_with('{'))?;
    let plain = |s: &str| {
        let s = s.strip_prefix('-').unwrap_or(s);
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
    };
    (plain(num) && plain(den)).then(|| (text[at..end].to_string(), end))
}

/// Every number or arithmetic expression standing on its own: after the start, whitespace or `=`
/// (optionally a currency sign), not glued to a digit before it. An expression (a digit run with
/// an operator: `12 - 5`, `3/4`) must also end at punctuation, whitespace, `)`, `$` or the end.
fn number_spans(text: &str) -> Vec<Span> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let anchored = i == 0 || {
            let prev = text[..i].chars().next_back().unwrap_or(' ');
            prev.is_whitespace() || prev == '='
        };
        if !anchored {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let start = i;
        let body = i + currency_len(&text[i..]);
        if let Some(end) = expression_end(text, body) {
            out.push(Span {
                start,
                end,
                text: text[body..end].trim().to_string(),
            });
            i = end;
        } else if let Some(end) = number_end(text, body) {
            out.push(Span {
                start,
                end,
                text: text[body..end].to_string(),
            });
            i = end;
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// Length of a leading currency sign.
fn currency_len(s: &str) -> usize {
    s.chars()
        .next()
        .filter(|c| "$€£¥₹₽₪₩₫฿".contains(*c))
        .map_or(0, char::len_utf8)
}

/// The end of a number at `at`: `-`? digits with `,`/space thousands groups, or `[.,]` decimals, or
/// `.5`; then an optional `%`.
fn number_end(text: &str, at: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut k = at + usize::from(b.get(at) == Some(&b'-'));
    let digits = |k: usize| b[k..].iter().take_while(|c| c.is_ascii_digit()).count();
    let lead = digits(k);
    if lead == 0 {
        // `.5`
        if b.get(k) == Some(&b'.') && digits(k + 1) > 0 {
            return Some(k + 1 + digits(k + 1));
        }
        return None;
    }
    k += lead;
    // Thousands groups: `1,234` / `1 234`, only after 1–3 leading digits.
    if lead <= 3 && b[at] != b'0' {
        while matches!(b.get(k), Some(b',' | b' '))
            && digits(k + 1) == 3
            && b.get(k + 4).is_none_or(|c| !c.is_ascii_digit())
        {
            k += 4;
        }
    }
    if matches!(b.get(k), Some(b'.' | b',')) && digits(k + 1) > 0 {
        k += 1 + digits(k + 1);
    }
    if b.get(k) == Some(&b'%') {
        k += 1;
    }
    Some(k)
}

/// The end of an arithmetic expression at `at` (a digit, or `-`/`(` then a digit), holding at least
/// one operator and followed by punctuation, whitespace, `)`, `$` or the end; `None` otherwise.
fn expression_end(text: &str, at: usize) -> Option<usize> {
    const OPERATORS: &str = "+-*×/^()÷";
    let rest = &text[at..];
    let first_digit = rest.trim_start_matches(['-', '(']);
    if !first_digit.starts_with(|c: char| c.is_ascii_digit()) || rest.len() - first_digit.len() > 2
    {
        return None;
    }
    let mut end = at;
    let mut last_operator = None;
    for (k, c) in rest.char_indices() {
        let ok = c.is_ascii_digit() || c == '.' || c == ' ' || OPERATORS.contains(c);
        if !ok {
            break;
        }
        if OPERATORS.contains(c) && k > 0 {
            last_operator = Some(at + k);
        }
        end = at + k + c.len_utf8();
    }
    // Trim trailing spaces, a full stop and a dangling operator; require an operator inside.
    let mut body = text[at..end].trim_end().trim_end_matches('.');
    while body.ends_with(['+', '-', '*', '×', '/', '^', '÷', '(']) {
        body = body[..body.len() - body.chars().next_back()?.len_utf8()].trim_end();
    }
    let end = at + body.len();
    if last_operator.is_none_or(|op| op >= end) || !body[1..].contains(|c| OPERATORS.contains(c)) {
        return None;
    }
    let next = text[end..].chars().next();
    next.is_none_or(|c| c.is_whitespace() || ".,:)$".contains(c))
        .then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ff(s: &str) -> Option<String> {
        free_form_answer(s)
    }

    #[test]
    fn tiers_in_order() {
        // `final answer is X. I hope` beats a later box; a box beats plain numbers.
        assert_eq!(
            ff("The final answer is $7$. I hope it is correct. \\boxed{8}").as_deref(),
            Some("7")
        );
        assert_eq!(
            ff("We get 5 and 6, so \\boxed{9} then 10").as_deref(),
            Some("9")
        );
        assert_eq!(ff("Final Answer: 12 apples, not 13").as_deref(), Some("12"));
        assert_eq!(
            ff("So the answer is $\\frac{3}{4}$.").as_deref(),
            Some("\\frac{3}{4}")
        );
        // As in math-verify, the candidate of a tier that ends last wins: here the number.
        assert_eq!(
            ff("So the answer is $\\frac{3}{4}$ of 8.").as_deref(),
            Some("8")
        );
        assert_eq!(ff("answer: x = 2, y = 5").as_deref(), Some("5"));
    }

    #[test]
    fn last_span_anywhere() {
        assert_eq!(
            ff("First 3 + 4 = 7. Then we have\n\\[\n2x + 1\n\\]").as_deref(),
            Some("2x + 1")
        );
        assert_eq!(
            ff("It costs $1,234.50 in total.").as_deref(),
            Some("1,234.50")
        );
        assert_eq!(
            ff("a = 2 and the total is 12 - 5.").as_deref(),
            Some("12 - 5")
        );
        assert_eq!(
            ff("Hence the value is \\(\\sqrt{2}\\).").as_deref(),
            Some("\\sqrt{2}")
        );
        assert_eq!(ff("so x2y3 has no number"), None);
        assert_eq!(ff("The total follows.\n#### 18").as_deref(), Some("18"));
        assert_eq!(ff("Next we multiply the 3 terms by").as_deref(), Some("3"));
        assert_eq!(ff("no answer here"), None);
    }

    #[test]
    fn numbers_and_expressions() {
        let texts =
            |s: &str| -> Vec<String> { number_spans(s).into_iter().map(|s| s.text).collect() };
        assert_eq!(
            texts("1 234 and -5, .5 or 50% =7"),
            ["1 234", "-5", ".5", "50%", "7"]
        );
        assert_eq!(texts("a3 x=4"), ["4"]);
        assert_eq!(texts("(1+2)*3 is 9"), ["(1+2)*3", "9"]);
        let latex: Vec<String> = latex_spans("$a$ and $$b$$ and \\frac{1}{2} and 5$ x $\\$3$")
            .into_iter()
            .map(|s| s.text)
            .collect();
        assert_eq!(latex, ["a", "b", "\\frac{1}{2}", "\\$3"]);
    }

    #[test]
    fn odd_input_does_not_panic_and_is_bounded() {
        for s in [
            "$",
            "$$",
            "\\[",
            "\\(",
            "answer:",
            "final answer is",
            "é$é$",
            "\\frac{",
            "-",
            "1,",
            "=-",
        ] {
            let _ = ff(s);
        }
        let t = std::time::Instant::now();
        let _ = ff(&"answer 1 = ".repeat(20_000));
        let _ = ff(&"$".repeat(100_000));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }
}
