//! Primaries of the answer grammar: numbers, symbols, LaTeX commands with their arguments
//! (`\\frac`, `\\sqrt[n]`, `\\binom`, functions, `\\log_b`), brackets (grouping, tuple or
//! interval), sets, absolute values, floors and matrices.

use super::answer::{normalize_text, Answer};
use super::expr::Expr;
use super::lex::{Tok, Token};
use super::parse::{into_expr, number, scalar, PResult, ParseError, Parser};
use super::rational::Rational;

impl Parser {
    /// A LaTeX argument: a `{…}` group, one digit of a digit run (`\frac12`), or one primary.
    pub(super) fn arg(&mut self) -> PResult<Answer> {
        if self.eat(&Tok::LBrace) {
            let mut items = self.items()?;
            self.expect(&Tok::RBrace)?;
            return if items.len() == 1 {
                items.pop().ok_or(ParseError)
            } else {
                Err(ParseError)
            };
        }
        if let Some(Token {
            tok: Tok::Num(d, 0),
            space,
        }) = self.toks.get(self.pos)
        {
            if d.len() > 1 && d.chars().all(|c| c.is_ascii_digit()) {
                let (first, rest) = d.split_at(1);
                let (first, rest, space) = (first.to_string(), rest.to_string(), *space);
                if let Some(t) = self.toks.get_mut(self.pos) {
                    *t = Token {
                        tok: Tok::Num(rest, 0),
                        space,
                    };
                }
                self.node()?;
                return Ok(scalar(number(&first, 0)));
            }
        }
        self.primary()
    }

    /// A function's argument: parenthesised or braced, else the implicit product that follows
    /// (`\sin 2x` = `sin(2x)`).
    fn func_arg(&mut self) -> PResult<Expr> {
        if matches!(self.peek(), Some(Tok::LParen | Tok::LBrace)) {
            return into_expr(self.power()?);
        }
        let mut factors = vec![into_expr(self.power()?)?];
        while matches!(
            self.peek(),
            Some(Tok::Num(..) | Tok::Ident(_) | Tok::Greek(_) | Tok::Pi)
        ) {
            factors.push(into_expr(self.power()?)?);
        }
        Ok(if factors.len() == 1 {
            factors.pop().ok_or(ParseError)?
        } else {
            Expr::Mul(factors)
        })
    }

    pub(super) fn primary(&mut self) -> PResult<Answer> {
        self.enter()?;
        self.node()?;
        let r = self.primary_inner();
        self.depth -= 1;
        r
    }

    fn primary_inner(&mut self) -> PResult<Answer> {
        let t = self.bump().ok_or(ParseError)?;
        let e = match t {
            Tok::Num(d, exp) => number(&d, exp),
            Tok::Ident('e') => Expr::E,
            Tok::Ident('i') => Expr::I,
            Tok::Ident(c) => Expr::Sym(c.to_string()),
            Tok::Greek(g) => Expr::Sym(g),
            Tok::Word(w, false) => {
                // `xy` is x·y: split into single letters and parse again.
                if !w.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(ParseError);
                }
                let space = self.toks.get(self.pos - 1).is_some_and(|t| t.space);
                let letters: Vec<Token> = w
                    .chars()
                    .enumerate()
                    .map(|(k, c)| Token {
                        tok: Tok::Ident(c),
                        space: space && k == 0,
                    })
                    .collect();
                self.pos -= 1;
                self.toks.splice(self.pos..self.pos + 1, letters);
                return self.primary_inner();
            }
            Tok::Word(w, true) => return Ok(Answer::Text(normalize_text(&w))),
            Tok::Pi => Expr::Pi,
            Tok::Infty => Expr::Inf,
            Tok::Empty => return Ok(Answer::Empty),
            Tok::Frac => {
                let a = into_expr(self.arg()?)?;
                let b = into_expr(self.arg()?)?;
                Expr::Div(Box::new(a), Box::new(b))
            }
            Tok::Binom => {
                let a = into_expr(self.arg()?)?;
                let b = into_expr(self.arg()?)?;
                Expr::Binom(Box::new(a), Box::new(b))
            }
            Tok::Sqrt => {
                let index = if self.eat(&Tok::LBrack) {
                    let n = into_expr(self.sum()?)?;
                    self.expect(&Tok::RBrack)?;
                    n
                } else {
                    Expr::Num(Rational::int(2))
                };
                let radicand = into_expr(self.arg()?)?;
                let one = Box::new(Expr::Num(Rational::ONE));
                Expr::Pow(
                    Box::new(radicand),
                    Box::new(Expr::Div(one, Box::new(index))),
                )
            }
            Tok::Func(f) => {
                let power = if self.eat(&Tok::Caret) {
                    Some(self.exponent()?)
                } else {
                    None
                };
                let e = Expr::Func(f, Box::new(self.func_arg()?));
                match power {
                    Some(p) => Expr::Pow(Box::new(e), Box::new(p)),
                    None => e,
                }
            }
            Tok::Log => {
                let base = if self.eat(&Tok::Underscore) {
                    into_expr(self.arg()?)?
                } else {
                    Expr::E
                };
                let power = if self.eat(&Tok::Caret) {
                    Some(self.exponent()?)
                } else {
                    None
                };
                let e = Expr::Log(Box::new(base), Box::new(self.func_arg()?));
                match power {
                    Some(p) => Expr::Pow(Box::new(e), Box::new(p)),
                    None => e,
                }
            }
            Tok::LParen | Tok::LBrack => return self.bracketed(t == Tok::LBrack),
            Tok::LBrace => {
                let mut items = self.items()?;
                self.expect(&Tok::RBrace)?;
                return match items.len() {
                    0 => Err(ParseError),
                    1 => items.pop().ok_or(ParseError),
                    _ => Ok(Answer::Set(items)),
                };
            }
            Tok::LSet => {
                let items = self.items()?;
                self.expect(&Tok::RSet)?;
                return Ok(if items.is_empty() {
                    Answer::Empty
                } else {
                    Answer::Set(items)
                });
            }
            Tok::Pipe => {
                self.abs_depth += 1;
                let inner = self.sum();
                self.abs_depth -= 1;
                let inner = into_expr(inner?)?;
                self.expect(&Tok::Pipe)?;
                Expr::Abs(Box::new(inner))
            }
            Tok::LFloor | Tok::LCeil => {
                let inner = into_expr(self.sum()?)?;
                if t == Tok::LFloor {
                    self.expect(&Tok::RFloor)?;
                    Expr::Floor(Box::new(inner))
                } else {
                    self.expect(&Tok::RCeil)?;
                    Expr::Ceil(Box::new(inner))
                }
            }
            Tok::Begin(env) => return self.matrix(&env),
            _ => return Err(ParseError),
        };
        Ok(scalar(e))
    }

    /// After `(` or `[`: a grouping, a tuple, or an interval, decided by the count and the closer.
    fn bracketed(&mut self, open_square: bool) -> PResult<Answer> {
        let mut items = self.items()?;
        let close_square = match self.bump() {
            Some(Tok::RParen) => false,
            Some(Tok::RBrack) => true,
            _ => return Err(ParseError),
        };
        match (items.len(), open_square, close_square) {
            (1, false, false) | (1, true, true) => items.pop().ok_or(ParseError),
            (2, false, false) => Ok(Answer::Tuple(items)),
            (2, _, _) => {
                let hi = into_expr(items.pop().ok_or(ParseError)?)?;
                let lo = into_expr(items.pop().ok_or(ParseError)?)?;
                Ok(Answer::Interval {
                    lo,
                    hi,
                    lo_closed: open_square,
                    hi_closed: close_square,
                })
            }
            (n, false, false) if n > 2 => Ok(Answer::Tuple(items)),
            _ => Err(ParseError),
        }
    }

    fn matrix(&mut self, env: &str) -> PResult<Answer> {
        const MATRIX_ENVS: &[&str] = &[
            "pmatrix",
            "bmatrix",
            "Bmatrix",
            "vmatrix",
            "Vmatrix",
            "matrix",
            "smallmatrix",
            "array",
        ];
        if !MATRIX_ENVS.contains(&env) {
            return Err(ParseError);
        }
        let mut rows: Vec<Vec<Expr>> = Vec::new();
        loop {
            let mut row = vec![into_expr(self.sum()?)?];
            while self.eat(&Tok::Amp) {
                row.push(into_expr(self.sum()?)?);
            }
            rows.push(row);
            if !self.eat(&Tok::RowSep) || matches!(self.peek(), Some(Tok::End(_))) {
                break;
            }
        }
        match self.bump() {
            Some(Tok::End(e)) if e == env => {}
            _ => return Err(ParseError),
        }
        let width = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != width) {
            return Err(ParseError);
        }
        Ok(Answer::Matrix(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse_answer;
    use super::*;

    fn p(s: &str) -> Answer {
        parse_answer(s).unwrap_or_else(|_| panic!("failed to parse `{s}`"))
    }

    #[test]
    fn latex_arguments() {
        let v = |s: &str| match p(s) {
            Answer::Scalar { expr, .. } => expr.eval(&[]).map(|v| v.approx().re),
            _ => None,
        };
        assert_eq!(v("\\frac12"), Some(0.5));
        assert_eq!(v("\\frac{3}{4}"), Some(0.75));
        assert_eq!(v("4\\frac{2}{3}").map(|x| (x * 3.0).round()), Some(14.0));
        assert_eq!(v("-4\\frac{2}{3}").map(|x| (x * 3.0).round()), Some(-14.0));
        assert_eq!(v("2^10"), Some(1024.0)); // as plain text reads it (TeX would say 2^1·0)
        assert_eq!(v("2^{10}"), Some(1024.0));
        assert_eq!(v("\\sqrt[3]{27}"), Some(3.0));
        assert_eq!(v("5!"), Some(120.0));
        assert_eq!(v("\\binom{5}{2}"), Some(10.0));
        assert_eq!(v("|-3|"), Some(3.0));
        assert_eq!(v("52_8"), Some(52.0));
        assert_eq!(v("\\log_2 8").map(f64::round), Some(3.0));
    }
}
