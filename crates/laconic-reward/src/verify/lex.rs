//! A hand-written LaTeX/plain-math tokenizer.
//!
//! It does the LaTeX clean-up on the fly so the parser sees plain math: spacing (`\,` `\!` `\quad`
//! `~`), sizing (`\left` `\right` `\big`), `$`, `\displaystyle`, degree marks (`^\circ`, `°`),
//! `\boxed` wrappers and `\text{…}` unit words disappear; `\dfrac`/`\tfrac` become `\frac`;
//! `1,000`, `1{,}000` and `1\,000` become one number. One linear scan, no regular expressions,
//! with a token budget so the work per input is bounded.

use super::token::{command_token, word_token};
pub use super::token::{Func, Rel, Tok, Token};
use super::units::strip_units;
use super::LIMITS;

/// Why tokenizing failed; the verifier turns this into "cannot judge".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LexError;

/// Tokenize `s`, then drop trailing unit words.
pub fn lex(s: &str) -> Result<Vec<Token>, LexError> {
    let chars: Vec<char> = s.chars().collect();
    let mut lx = Lexer {
        out: Vec::new(),
        space: false,
    };
    lx.run(&chars, 0)?;
    Ok(strip_units(lx.out))
}

struct Lexer {
    out: Vec<Token>,
    space: bool,
}

/// The index just past the group `{…}` that opens at `open` (which must hold `{`), or `None`.
fn group_end(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while let Some(&c) = chars.get(i) {
        match c {
            '\\' => i += 1, // skip the escaped char (`\{`, `\}`)
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn skip_spaces(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

impl Lexer {
    fn push(&mut self, tok: Tok) -> Result<(), LexError> {
        if self.out.len() >= LIMITS.max_tokens {
            return Err(LexError);
        }
        self.out.push(Token {
            tok,
            space: self.space,
        });
        self.space = false;
        Ok(())
    }

    fn run(&mut self, chars: &[char], depth: usize) -> Result<(), LexError> {
        if depth > 8 {
            return Err(LexError);
        }
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i = match c {
                c if c.is_whitespace() || c == '~' || c == '$' || c == '"' || c == '°' => {
                    self.space = true;
                    i + 1
                }
                '\\' => self.command(chars, i, depth)?,
                '0'..='9' | '.'
                    if c != '.' || chars.get(i + 1).is_some_and(char::is_ascii_digit) =>
                {
                    self.number(chars, i)?
                }
                c if c.is_alphabetic() => {
                    let mut j = i;
                    while chars.get(j).is_some_and(|c| c.is_alphabetic()) {
                        j += 1;
                    }
                    let w: String = chars.get(i..j).unwrap_or_default().iter().collect();
                    let mut it = w.chars();
                    match (it.next(), it.next()) {
                        (Some(ch), None) if ch.is_ascii_alphabetic() => {
                            self.push(Tok::Ident(ch))?
                        }
                        _ => self.push(word_token(&w))?,
                    }
                    j
                }
                '^' => {
                    // `^\circ`, `^{\circ}`: degrees, dropped with the caret.
                    let j = skip_spaces(chars, i + 1);
                    let rest: String = chars.iter().skip(j).take(10).collect();
                    if rest.starts_with("\\circ") {
                        j + 5
                    } else if rest.starts_with("{\\circ}") {
                        j + 7
                    } else {
                        self.push(Tok::Caret)?;
                        i + 1
                    }
                }
                // A full stop (`5.`), not a decimal point: punctuation.
                '.' => {
                    self.space = true;
                    i + 1
                }
                '{' if chars.get(i + 1) == Some(&',') && chars.get(i + 2) == Some(&'}') => {
                    // `{,}` as in `1{,}000` is handled by `number`; elsewhere it is a comma.
                    self.push(Tok::Comma)?;
                    i + 3
                }
                _ => {
                    let t = match c {
                        '(' => Tok::LParen,
                        ')' => Tok::RParen,
                        '[' => Tok::LBrack,
                        ']' => Tok::RBrack,
                        '{' => Tok::LBrace,
                        '}' => Tok::RBrace,
                        ',' | ';' => Tok::Comma,
                        '+' => Tok::Plus,
                        '-' | '−' | '–' => Tok::Minus,
                        '±' => Tok::PlusMinus,
                        '*' | '×' | '·' | '⋅' => Tok::Star,
                        // A ratio `3:1` is the quotient 3/1.
                        '/' | '÷' | ':' => Tok::Slash,
                        '_' => Tok::Underscore,
                        '|' => Tok::Pipe,
                        '%' => Tok::Percent,
                        '&' => Tok::Amp,
                        'π' => Tok::Pi,
                        '∞' => Tok::Infty,
                        '√' => Tok::Sqrt,
                        '∪' => Tok::Cup,
                        '∅' => Tok::Empty,
                        '≤' => Tok::Rel(Rel::Le),
                        '≥' => Tok::Rel(Rel::Ge),
                        '≠' => Tok::Rel(Rel::Ne),
                        '≈' => Tok::Rel(Rel::Approx),
                        '=' => Tok::Rel(Rel::Eq),
                        '<' | '>' | '!' => {
                            let eq = chars.get(i + 1) == Some(&'=');
                            let t = match (c, eq) {
                                ('<', false) => Tok::Rel(Rel::Lt),
                                ('<', true) => Tok::Rel(Rel::Le),
                                ('>', false) => Tok::Rel(Rel::Gt),
                                ('>', true) => Tok::Rel(Rel::Ge),
                                (_, true) => Tok::Rel(Rel::Ne),
                                _ => Tok::Bang,
                            };
                            self.push(t)?;
                            i += usize::from(eq) + 1;
                            continue;
                        }
                        _ => return Err(LexError),
                    };
                    self.push(t)?;
                    i + 1
                }
            };
        }
        Ok(())
    }

    /// Lex a number at `i`: digits with `,`/`{,}`/`\,`/space thousands groups, a decimal part and
    /// an optional `e±N` exponent. Returns the index after it.
    fn number(&mut self, chars: &[char], start: usize) -> Result<usize, LexError> {
        let mut digits = String::new();
        let mut i = start;
        while let Some(&c) = chars.get(i).filter(|c| c.is_ascii_digit()) {
            digits.push(c);
            i += 1;
        }
        // Thousands groups: only after a first group of 1–3 digits, each exactly 3 digits.
        if (1..=3).contains(&digits.len()) {
            loop {
                let sep_len = match (chars.get(i), chars.get(i + 1), chars.get(i + 2)) {
                    // `10,\!080` (MATH's thousands style), also with a space after `\!`.
                    (Some(','), Some('\\'), Some('!')) => {
                        3 + usize::from(chars.get(i + 3) == Some(&' '))
                    }
                    (Some(','), _, _) => 1,
                    (Some('{'), Some(','), Some('}')) => 3,
                    (Some('\\'), Some(','), _) => 2,
                    (Some(' '), _, _) => 1,
                    _ => 0,
                };
                if sep_len == 0 {
                    break;
                }
                let g = i + sep_len;
                let three = (g..g + 3).all(|k| chars.get(k).is_some_and(char::is_ascii_digit));
                let fourth = chars
                    .get(g + 3)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.');
                // `1 000` only merges when a decimal point cannot follow (that would be `1 000.5`,
                // fine) — but `2 345.6`-style spacing is rare; keep commas/braces generous and
                // spaces strict (no decimal part after a space group).
                let space_ok = chars.get(i) != Some(&' ') || !fourth;
                if !three || (fourth && chars.get(g + 3) != Some(&'.')) || !space_ok {
                    break;
                }
                digits.extend(chars.iter().skip(g).take(3));
                i = g + 3;
            }
        }
        if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            digits.push('.');
            i += 1;
            while let Some(&c) = chars.get(i).filter(|c| c.is_ascii_digit()) {
                digits.push(c);
                i += 1;
            }
        }
        let mut exp: i32 = 0;
        if let Some('e' | 'E') = chars.get(i) {
            let mut j = i + 1;
            let neg = match chars.get(j) {
                Some('-') => {
                    j += 1;
                    true
                }
                Some('+') => {
                    j += 1;
                    false
                }
                _ => false,
            };
            let ds = j;
            while chars.get(j).is_some_and(char::is_ascii_digit) && j - ds < 5 {
                j += 1;
            }
            let followed_by_letter = chars.get(j).is_some_and(|c| c.is_alphanumeric());
            if j > ds && !followed_by_letter {
                let e: String = chars.get(ds..j).unwrap_or_default().iter().collect();
                let e: i32 = e.parse().map_err(|_| LexError)?;
                exp = if neg { -e } else { e };
                i = j;
            }
        }
        if digits.len() > LIMITS.max_digits {
            return Err(LexError);
        }
        self.push(Tok::Num(digits, exp))?;
        Ok(i)
    }

    /// Lex a command starting with `\` at `i`. Returns the index after it.
    fn command(&mut self, chars: &[char], i: usize, depth: usize) -> Result<usize, LexError> {
        let Some(&next) = chars.get(i + 1) else {
            return Ok(i + 1);
        };
        if !next.is_ascii_alphabetic() {
            let t = match next {
                '{' => Some(Tok::LSet),
                '}' => Some(Tok::RSet),
                '%' => Some(Tok::Percent),
                '\\' => Some(Tok::RowSep),
                '|' => Some(Tok::Pipe),
                // `\,` `\;` `\:` `\!` `\ ` `\>` spacing; `\$`; math delimiters `\(` `\)` `\[` `\]`.
                ',' | ';' | ':' | '!' | ' ' | '>' | '$' | '(' | ')' | '[' | ']' | '\n' => None,
                _ => return Err(LexError),
            };
            match t {
                Some(t) => self.push(t)?,
                None => self.space = true,
            }
            return Ok(i + 2);
        }
        let mut j = i + 1;
        while chars.get(j).is_some_and(char::is_ascii_alphabetic) {
            j += 1;
        }
        let name: String = chars.get(i + 1..j).unwrap_or_default().iter().collect();
        match name.as_str() {
            "text" | "textbf" | "textit" | "textrm" | "textsf" | "texttt" | "textnormal"
            | "mbox" | "hbox" | "emph" | "textup" => {
                let open = skip_spaces(chars, j);
                if chars.get(open) != Some(&'{') {
                    return Ok(j);
                }
                let end = group_end(chars, open).ok_or(LexError)?;
                let inner = chars.get(open + 1..end - 1).unwrap_or_default();
                self.text(inner, depth)?;
                Ok(end)
            }
            "mathrm" | "mathbf" | "mathit" | "mathsf" | "mathtt" | "boldsymbol" | "bm"
            | "operatorname" | "mathbb" | "mathcal" | "mathnormal" | "pmb" | "overline"
            | "underline" | "overrightarrow" | "overleftrightarrow" | "widehat" | "hat" | "bar"
            | "vec" | "widetilde" | "tilde" | "mathring" => {
                let open = skip_spaces(chars, j);
                if chars.get(open) != Some(&'{') {
                    return Ok(j);
                }
                let end = group_end(chars, open).ok_or(LexError)?;
                let inner = chars.get(open + 1..end - 1).unwrap_or_default();
                self.run(inner, depth + 1)?;
                Ok(end)
            }
            "begin" | "end" => {
                let open = skip_spaces(chars, j);
                if chars.get(open) != Some(&'{') {
                    return Err(LexError);
                }
                let end = group_end(chars, open).ok_or(LexError)?;
                let env: String = chars
                    .get(open + 1..end - 1)
                    .unwrap_or_default()
                    .iter()
                    .collect();
                let env = env.trim_end_matches('*').to_string();
                if name == "begin" {
                    self.push(Tok::Begin(env.clone()))?;
                    // `\begin{array}{cc}`: skip the column spec.
                    let k = skip_spaces(chars, end);
                    if env == "array" && chars.get(k) == Some(&'{') {
                        return group_end(chars, k).ok_or(LexError);
                    }
                } else {
                    self.push(Tok::End(env))?;
                }
                Ok(end)
            }
            "phantom" | "hphantom" | "vphantom" | "label" => {
                let open = skip_spaces(chars, j);
                if chars.get(open) == Some(&'{') {
                    return group_end(chars, open).ok_or(LexError);
                }
                Ok(j)
            }
            _ => match command_token(&name) {
                Some(Some(t)) => {
                    self.push(t)?;
                    Ok(j)
                }
                Some(None) => {
                    self.space = true;
                    // `\left.` / `\right.`: an invisible delimiter.
                    if matches!(name.as_str(), "left" | "right") && chars.get(j) == Some(&'.') {
                        return Ok(j + 1);
                    }
                    Ok(j)
                }
                None => Err(LexError),
            },
        }
    }

    /// The content of `\text{…}`: digits mean math (`\text{5 cm}`), `and`/`or` a separator, unit
    /// words are kept as a word for `strip_units`, anything else is one text word.
    fn text(&mut self, inner: &[char], depth: usize) -> Result<(), LexError> {
        let s: String = inner.iter().collect();
        let t = s.trim();
        if t.is_empty() {
            self.space = true;
            return Ok(());
        }
        if inner.iter().any(char::is_ascii_digit) || inner.contains(&'\\') {
            return self.run(inner, depth + 1);
        }
        match t.to_ascii_lowercase().as_str() {
            "and" | "or" | "," => self.push(Tok::Comma),
            "%" | "percent" | "percentage" | "pct" => self.push(Tok::Percent),
            _ => self.push(Tok::Word(t.to_string(), true)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers_and_thousands() {
        assert_eq!(toks("1,000"), vec![Tok::Num("1000".into(), 0)]);
        assert_eq!(toks("1{,}234{,}567"), vec![Tok::Num("1234567".into(), 0)]);
        assert_eq!(toks("1\\,000"), vec![Tok::Num("1000".into(), 0)]);
        assert_eq!(toks("12 345"), vec![Tok::Num("12345".into(), 0)]);
        assert_eq!(toks("10,\\!080"), vec![Tok::Num("10080".into(), 0)]);
        assert_eq!(
            toks("11,\\! 111,\\! 100"),
            vec![Tok::Num("11111100".into(), 0)]
        );
        assert_eq!(
            toks("3,5"),
            vec![Tok::Num("3".into(), 0), Tok::Comma, Tok::Num("5".into(), 0)]
        );
        assert_eq!(toks("1.5e3"), vec![Tok::Num("1.5".into(), 3)]);
        assert_eq!(toks(".5"), vec![Tok::Num(".5".into(), 0)]);
    }

    #[test]
    fn latex_noise_disappears() {
        assert_eq!(
            toks("\\left( 3 \\right)^\\circ \\, \\$"),
            vec![Tok::LParen, Tok::Num("3".into(), 0), Tok::RParen]
        );
        assert_eq!(toks("\\dfrac12"), vec![Tok::Frac, Tok::Num("12".into(), 0)]);
    }

    #[test]
    fn units_are_dropped_after_numbers_only() {
        assert_eq!(toks("18 dollars"), vec![Tok::Num("18".into(), 0)]);
        assert_eq!(toks("5 \\text{ cm}^2"), vec![Tok::Num("5".into(), 0)]);
        assert_eq!(toks("5 m"), vec![Tok::Num("5".into(), 0)]);
        assert_eq!(
            toks("\\text{Evelyn}"),
            vec![Tok::Word("Evelyn".into(), true)]
        );
        assert_eq!(toks("5x"), vec![Tok::Num("5".into(), 0), Tok::Ident('x')]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(lex("\\unknowncommand").is_err());
        assert!(lex("\\text{").is_err());
        assert!(lex("@").is_err());
        assert!(lex("\\").is_ok());
    }
}
