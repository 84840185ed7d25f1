//! The parsed form of an answer.

use super::expr::Expr;
use super::token::Rel;

/// A parsed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A number or expression; `percent` when written with `%`.
    Scalar {
        /// The expression.
        expr: Expr,
        /// Written as a percentage (`50\%`).
        percent: bool,
    },
    /// Words (`\text{Evelyn}`), lowercased with punctuation removed.
    Text(String),
    /// `(a, b, …)`: ordered.
    Tuple(Vec<Answer>),
    /// `a, b, …` or `\{a, b\}`: unordered.
    Set(Vec<Answer>),
    /// `[a, b)` and friends (an open `(a, b)` is parsed as a 2-tuple and matches both).
    Interval {
        /// Lower end.
        lo: Expr,
        /// Upper end.
        hi: Expr,
        /// `[` rather than `(`.
        lo_closed: bool,
        /// `]` rather than `)`.
        hi_closed: bool,
    },
    /// `A \cup B`.
    Union(Vec<Answer>),
    /// `a = b`, `1 < x \le 2`: `parts.len() == ops.len() + 1`.
    Relation {
        /// The sides.
        parts: Vec<Answer>,
        /// The relation symbols between consecutive sides.
        ops: Vec<Rel>,
    },
    /// `\begin{pmatrix}…\end{pmatrix}`, row-major.
    Matrix(Vec<Vec<Expr>>),
    /// `\emptyset`, `\{\}`.
    Empty,
}

/// Lowercase, keep letters, digits and single spaces (`\text{(C)}` → `c`).
pub fn normalize_text(s: &str) -> String {
    let kept: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `a ± b` becomes the set `{a + b, a − b}`, at the top and inside sets.
pub(super) fn expand_plus_minus(a: Answer) -> Answer {
    match a {
        Answer::Scalar { expr, percent } if expr.has_plus_minus() => Answer::Set(vec![
            Answer::Scalar {
                expr: expr.resolve_plus_minus(1),
                percent,
            },
            Answer::Scalar {
                expr: expr.resolve_plus_minus(-1),
                percent,
            },
        ]),
        Answer::Relation { parts, ops } => Answer::Relation {
            parts: parts.into_iter().map(expand_plus_minus).collect(),
            ops,
        },
        Answer::Set(xs) => {
            let mut out = Vec::new();
            for x in xs {
                match expand_plus_minus(x) {
                    Answer::Set(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            Answer::Set(out)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::rational::Rational;

    #[test]
    fn text_normalisation() {
        assert_eq!(normalize_text("\\text{(C)}"), "text c");
        assert_eq!(normalize_text("  No   Solution. "), "no solution");
    }

    #[test]
    fn plus_minus_expands_to_two_answers() {
        let one = Expr::Num(Rational::ONE);
        let pm = Answer::Scalar {
            expr: Expr::PlusMinus(Box::new(one.clone())),
            percent: false,
        };
        assert_eq!(
            expand_plus_minus(pm),
            Answer::Set(vec![
                Answer::Scalar {
                    expr: one.clone(),
                    percent: false
                },
                Answer::Scalar {
                    expr: Expr::Neg(Box::new(one)),
                    percent: false
                },
            ])
        );
    }
}
