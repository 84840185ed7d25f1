//! Mathematical equivalence of a predicted answer and a gold answer.
//!
//! `verify("\\dfrac{14}{3}", "4\\frac{2}{3}") == Some(true)`. Both strings are answers (already
//! extracted, see [`crate::extract`]); each is tokenized with the LaTeX noise removed, parsed into
//! an [`Answer`] tree, and compared:
//! - numbers exactly as rationals on `i128` (checked; overflow falls back to `f64`);
//! - a decimal literal (`0.333333`) against anything after rounding both to
//!   [`VerifyOptions::float_rounding`] places (math-verify's rule for SymPy floats), or, with at
//!   least that many places, when it is the other value correctly rounded to its own places;
//! - irrational constants (`\sqrt2`, `\pi`) with a relative tolerance;
//! - expressions with variables at deterministic pseudo-random rational points, exactly when the
//!   expression is rational in them, else within the tolerance;
//! - `50\%` as either 50 or 0.5; `x = 3` as `3`; tuples and intervals in order, sets in any order.
//!
//! The work per input is bounded ([`Limits`]) and nothing panics: malformed input is `None`.

mod answer;
mod compare;
mod complex;
mod expr;
mod lex;
mod parse;
mod primary;
mod rational;
mod token;
mod units;

pub use expr::Expr;
pub use lex::{Func, Rel};
pub use parse::{parse_answer, Answer};
pub use rational::Rational;

use compare::Comparer;

/// Hard bounds on the work done for one input; beyond them the verifier answers `None`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest answer string, in characters.
    pub max_chars: usize,
    /// Most tokens after lexing.
    pub max_tokens: usize,
    /// Deepest nesting of brackets/operators in the parser.
    pub max_depth: usize,
    /// Most expression nodes per answer.
    pub max_nodes: usize,
    /// Most digits in one number literal.
    pub max_digits: usize,
}

/// The limits every call uses.
pub const LIMITS: Limits = Limits {
    max_chars: 2000,
    max_tokens: 1000,
    max_depth: 48,
    max_nodes: 2000,
    max_digits: 200,
};

/// Knobs of the equivalence check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyOptions {
    /// Decimal places both sides are rounded to when either is a decimal literal. Default 6,
    /// math-verify's `float_rounding`.
    pub float_rounding: u32,
    /// Relative tolerance for values that are not exact rationals (`|a−b| ≤ tol·max(|a|,|b|)`).
    /// Default 1e-9.
    pub rel_tol: f64,
    /// Sample points for expressions with variables. Default 8.
    pub sample_points: usize,
    /// Points where both sides must be defined and agree (the others are outside a domain).
    /// Default 4.
    pub min_agreeing_points: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            float_rounding: 6,
            rel_tol: 1e-9,
            sample_points: 8,
            min_agreeing_points: 4,
        }
    }
}

/// Whether `pred` and `gold` are equivalent answers, with default options.
///
/// `Some(true)` / `Some(false)` when judged; `None` when either side could not be parsed or
/// evaluated (callers grading rollouts treat `None` as incorrect).
///
/// ```
/// use laconic_reward::verify;
/// assert_eq!(verify("\\dfrac{1}{2}", "0.5"), Some(true));
/// assert_eq!(verify("(2, 1)", "(1, 2)"), Some(false));
/// assert_eq!(verify("\\{2, 1\\}", "1, 2"), Some(true));
/// assert_eq!(verify("x = 3", "3"), Some(true));
/// assert_eq!(verify("1,000", "1000"), Some(true));
/// ```
pub fn verify(pred: &str, gold: &str) -> Option<bool> {
    verify_with(pred, gold, &VerifyOptions::default())
}

/// [`verify`] with explicit options.
pub fn verify_with(pred: &str, gold: &str, opts: &VerifyOptions) -> Option<bool> {
    let (pred, gold) = (pred.trim(), gold.trim());
    if pred.is_empty()
        || gold.is_empty()
        || pred.chars().count() > LIMITS.max_chars
        || gold.chars().count() > LIMITS.max_chars
    {
        return None;
    }
    if pred == gold {
        return Some(true);
    }
    match (parse_answer(gold), parse_answer(pred)) {
        (Ok(g), Ok(p)) => Comparer { opts }.answers(&g, &p),
        // Unparseable (an unknown command, say): equal canonical strings still count.
        _ => (canonical(pred) == canonical(gold)).then_some(true),
    }
}

/// Whether the verifier can read `s` as an answer: what free-form extraction accepts as a
/// candidate (math-verify keeps the first candidate its parser reads).
pub(crate) fn parses(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.chars().count() <= LIMITS.max_chars && parse_answer(s).is_ok()
}

/// The string with whitespace, `$`, `\left`/`\right`, spacing commands and a final `.` removed:
/// identical canonical strings are equal even when the parser cannot read them (only used then:
/// removing whitespace would merge the list `1, 600` into the number `1,600`).
fn canonical(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let skip = [
            "\\left",
            "\\right",
            "\\!",
            "\\,",
            "\\;",
            "\\:",
            "\\ ",
            "\\displaystyle",
            "$",
        ]
        .iter()
        .find(|p| rest.starts_with(**p))
        .map(|p| p.len());
        match skip {
            Some(n) => rest = rest.get(n..).unwrap_or_default(),
            None => {
                if !c.is_whitespace() {
                    out.push(c);
                }
                rest = rest.get(c.len_utf8()..).unwrap_or_default();
            }
        }
    }
    while out.ends_with('.') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yes(pred: &str, gold: &str) {
        assert_eq!(
            verify(pred, gold),
            Some(true),
            "expected `{pred}` == `{gold}`"
        );
    }

    fn no(pred: &str, gold: &str) {
        assert_ne!(
            verify(pred, gold),
            Some(true),
            "expected `{pred}` != `{gold}`"
        );
    }

    #[test]
    fn numbers() {
        yes("72", "72");
        yes("1,000", "1000");
        yes("1{,}000", "1000");
        yes("1\\,000", "1000");
        yes("3.0", "3");
        yes("03", "3");
        yes("+3", "3");
        yes("-0", "0");
        no("-3", "3");
        yes("1.5\\times10^{3}", "1500");
        yes("1.5e3", "1500");
        yes("2.5 \\cdot 10^{-2}", "0.025");
        no("73", "72");
    }

    /// Literals past f64's range are never judged equal through an overflowed inf or an underflowed 0.
    #[test]
    fn out_of_range_literals_are_never_equal_by_overflow() {
        no("1e400", "1e401");
        no("2e308", "1e309");
        no("1e-400", "0");
        no("-1e400", "-1e500");
        yes("1e300", "10^{300}");
        yes("1.5e3", "1500");
        yes("0e999", "0");
    }

    #[test]
    fn fractions_and_decimals() {
        yes("\\dfrac{14}{3}", "\\frac{14}{3}");
        yes("\\tfrac{14}{3}", "14/3");
        yes("4\\frac{2}{3}", "\\frac{14}{3}");
        yes("4 \\frac{2}{3}", "\\frac{14}{3}");
        yes("0.5", "\\frac12");
        yes("0.333333", "\\frac{1}{3}");
        yes("0.0011905", "\\frac{1}{840}"); // 7 correct places; 6-place rounding would tie
        no("0.0011906", "\\frac{1}{840}");
        no("0.3333", "\\frac{1}{3}");
        no("0.33", "\\frac{1}{3}");
        yes("-\\frac{\\pi}{6}", "-\\frac{\\pi}{6}");
        yes("\\frac{-\\pi}{6}", "-\\frac{\\pi}{6}");
        no("\\frac{\\pi}{6}", "-\\frac{\\pi}{6}");
    }

    #[test]
    fn radicals_constants_percent() {
        yes("2\\sqrt{2}", "\\sqrt{8}");
        yes("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}2");
        yes("11\\sqrt{2}", "11\\sqrt2");
        yes("3.141593", "\\pi");
        no("3.14", "\\pi");
        yes("50\\%", "50");
        yes("50\\%", "0.5");
        yes("0.5", "50\\%");
        yes("50 percent", "50\\%");
        yes("6-5i", "6 - 5i");
        yes("-5i+6", "6-5i");
        no("6+5i", "6-5i");
        yes("e^{i\\pi}", "-1");
    }

    #[test]
    fn latex_noise_and_units() {
        yes("\\$18", "18");
        yes("18 \\text{ dollars}", "18");
        yes("18 dollars", "18");
        yes("18\\text{ cm}^2", "18");
        yes("90^\\circ", "90");
        yes("90^{\\circ}", "90");
        yes("90 degrees", "90");
        yes("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)");
        yes("\\displaystyle\\frac{1}{2}", "1/2");
        yes("\\mathrm{5}", "5");
        yes("9", "9\\text{ a.m.}");
        yes("12", "12 \\text{ gm}");
        yes("CD", "\\overline{CD}");
    }

    #[test]
    fn relations() {
        yes("x=5", "5");
        yes("5", "x=5");
        no("y=5", "x=5");
        yes("x = 5", "x=5");
        yes("y = 3 + 2x", "y = 2x + 3");
        yes("2x + 3 = y", "y = 2x + 3");
        yes("4x + 6y = 12", "2x + 3y = 6");
        no("2x + 3y = 7", "2x + 3y = 6");
        yes("x > 3", "3 < x");
        no("x < 3", "3 < x");
        yes("x \\in (1, 2)", "(1, 2)");
        yes("2 + 3 = 5", "5");
    }

    #[test]
    fn structures() {
        yes("3, 5, 7", "7, 5, 3");
        yes("\\{7,5,3\\}", "3, 5, 7");
        yes("(3,5,7)", "3, 5, 7");
        no("(7,5,3)", "(3,5,7)");
        no("(2,1)", "(1,2)");
        no("[1,2)", "(1,2)");
        yes("[1,2)", "[1, 2)");
        yes(
            "(-\\infty, 1) \\cup (2, \\infty)",
            "(2,\\infty)\\cup(-\\infty,1)",
        );
        no(
            "(-\\infty, 1] \\cup (2, \\infty)",
            "(-\\infty,1)\\cup(2,\\infty)",
        );
        yes(
            "\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}",
            "\\begin{pmatrix}1\\\\-2\\end{pmatrix}",
        );
        no(
            "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
            "\\begin{pmatrix}1\\\\-2\\end{pmatrix}",
        );
        yes("1 \\pm \\sqrt{2}", "1 + \\sqrt{2}, 1 - \\sqrt{2}");
        yes("x > 3", "(3, \\infty)");
        yes("(3, \\infty)", "x > 3");
    }

    #[test]
    fn symbolic() {
        yes("p-q", "-q+p");
        yes("x^2+2x+1", "(x+1)^2");
        no("x^2+2x+2", "(x+1)^2");
        yes("\\frac{x}{2}", "0.5x");
        no("y^2+1", "x^2+1");
        yes("\\sqrt{x}\\sqrt{x}", "x");
        yes("\\frac{\\sin x}{\\cos x}", "\\tan x");
    }

    #[test]
    fn text_and_choices() {
        yes("\\text{Evelyn}", "\\text{Evelyn}");
        yes("Evelyn", "\\text{Evelyn}");
        yes("\\text{(C)}", "C");
        yes("(C)", "C");
        yes("C", "\\text{(C)}");
        no("B", "C");
        yes("\\textbf{(B)}", "B");
    }

    #[test]
    fn could_not_judge() {
        assert_eq!(verify("", "1"), None);
        assert_eq!(verify("1", ""), None);
        assert_eq!(verify("\\frac{", "1"), None);
        assert_eq!(verify(&"1".repeat(5000), "1"), None);
        assert_eq!(verify("\\weird{x}", "\\weird{x}"), Some(true)); // identical strings
        assert_eq!(verify("\\weird{x} ", "\\weird {x}"), Some(true)); // canonically identical
        assert_eq!(verify("1, 600", "1,600"), Some(false)); // a list is not a number
    }
}
