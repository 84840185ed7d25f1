//! Dropping unit words after numbers (`18 dollars`, `5 \\text{ cm}^2`, `90 degrees`).

use super::token::{Tok, Token};

/// Units and counted nouns dropped after a number (`18 dollars`, `5 \text{ cm}^2`). Any word of
/// three or more letters after a number is dropped too; this list covers shorter ones.
const SHORT_UNITS: &[&str] = &[
    "cm", "mm", "km", "kg", "mg", "gm", "ml", "mL", "dl", "cl", "kl", "dm", "ft", "in", "yd", "mi",
    "lb", "oz", "pt", "qt", "hr", "ms", "ns", "pm", "am", "ha", "s", "m", "g", "h", "l", "L", "K",
    "st", "nd", "rd", "th", "sq", "cc", "gb", "mb", "kb",
];

fn is_unit_word(w: &str) -> bool {
    w.chars().all(char::is_alphabetic) && (w.chars().count() >= 3 || SHORT_UNITS.contains(&w))
}

fn word_or_text_is_units(w: &str) -> bool {
    let mut any = false;
    // `a.m.` is `am`, `sq. ft` is `sq ft`.
    let w: String = w.chars().filter(|&c| c != '.').collect();
    for part in w.split(|c: char| c.is_whitespace() || c == '/') {
        if part.is_empty() {
            continue;
        }
        if !is_unit_word(part) {
            return false;
        }
        any = true;
    }
    any
}

/// Drop unit words that follow a complete numeric operand, with a `^2` that belongs to them.
pub(super) fn strip_units(toks: Vec<Token>) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(toks.len());
    let mut dropping = false;
    let mut i = 0;
    while let Some(t) = toks.get(i) {
        let operand_before = match out.last().map(|t| &t.tok) {
            Some(Tok::Num(..) | Tok::RParen | Tok::RBrace | Tok::Percent | Tok::Pi) => true,
            _ => dropping,
        };
        let is_unit = match &t.tok {
            Tok::Word(w, _) => word_or_text_is_units(w),
            // A single-letter unit only at the very end after a space (`5 m`, not `5m` or `5 x`).
            Tok::Ident(c) => {
                t.space
                    && matches!(out.last().map(|t| &t.tok), Some(Tok::Num(..)))
                    && SHORT_UNITS.contains(&c.to_string().as_str())
                    && i + 1 == toks.len()
            }
            _ => false,
        };
        if is_unit && operand_before {
            dropping = true;
            i += 1;
            // `cm^2`, `m^{3}`: the exponent belongs to the unit.
            if matches!(toks.get(i).map(|t| &t.tok), Some(Tok::Caret)) {
                match toks.get(i + 1).map(|t| &t.tok) {
                    Some(Tok::Num(..)) => i += 2,
                    Some(Tok::LBrace)
                        if matches!(toks.get(i + 2).map(|t| &t.tok), Some(Tok::Num(..)))
                            && matches!(toks.get(i + 3).map(|t| &t.tok), Some(Tok::RBrace)) =>
                    {
                        i += 4
                    }
                    _ => {}
                }
            }
            continue;
        }
        dropping = false;
        out.push(t.clone());
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tok: Tok, space: bool) -> Token {
        Token { tok, space }
    }

    #[test]
    fn only_after_an_operand() {
        let num = || t(Tok::Num("5".into(), 0), false);
        let kept = strip_units(vec![t(Tok::Word("apples".into(), false), false)]);
        assert_eq!(kept.len(), 1);
        let dropped = strip_units(vec![num(), t(Tok::Word("apples".into(), false), true)]);
        assert_eq!(dropped, vec![num()]);
        // `x m`: a single letter is a unit only right after a number.
        let x = strip_units(vec![t(Tok::Ident('x'), false), t(Tok::Ident('m'), true)]);
        assert_eq!(x.len(), 2);
        assert!(word_or_text_is_units("miles per hour"));
        assert!(!word_or_text_is_units("x"));
        assert!(word_or_text_is_units(" a.m."));
        assert!(word_or_text_is_units("sq. ft"));
    }
}
