//! A recursive-descent parser from tokens to an [`Answer`]: scalars, tuples, sets, intervals,
//! unions, relations, matrices and text.
//!
//! Grammar, loosest first (`,` joins items into a set; brackets decide tuple vs interval):
//! `list := union (',' union)*`, `union := relation ('\cup' relation)*`,
//! `relation := sum (REL sum)*`, `sum := term (('+'|'-'|'\pm') term)*`,
//! `term := unary (('*'|'/'|implicit) unary)*`, `unary := ('-'|'+'|'\pm') unary | power`,
//! `power := postfix ('^' arg)?`, `postfix := primary ('!'|'_' arg|'%')*`.
//! Depth and node budgets bound the work (see `Limits`).

pub use super::answer::Answer;
use super::answer::{expand_plus_minus, normalize_text};
use super::expr::Expr;
use super::lex::{lex, Tok, Token};
use super::rational::Rational;
use super::LIMITS;
/// Why parsing failed; the verifier turns this into "cannot judge".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError;

pub(super) type PResult<T> = Result<T, ParseError>;

/// Parse one answer string (at most `LIMITS.max_chars` characters).
pub fn parse_answer(s: &str) -> PResult<Answer> {
    if s.len() > 4 * LIMITS.max_chars || s.chars().count() > LIMITS.max_chars {
        return Err(ParseError);
    }
    let toks = lex(s).map_err(|_| ParseError)?;
    if toks.is_empty() {
        return Err(ParseError);
    }
    // Only words (and single letters among them): a text answer such as `Evelyn` or `no solution`.
    let only_words = toks
        .iter()
        .all(|t| matches!(t.tok, Tok::Word(..) | Tok::Ident(_)));
    if only_words && toks.iter().any(|t| matches!(t.tok, Tok::Word(..))) {
        let words: Vec<String> = toks
            .iter()
            .map(|t| match &t.tok {
                Tok::Word(w, _) => w.clone(),
                Tok::Ident(c) => c.to_string(),
                _ => String::new(),
            })
            .collect();
        return Ok(Answer::Text(normalize_text(&words.join(" "))));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        nodes: 0,
        abs_depth: 0,
    };
    let items = p.items()?;
    if p.pos != p.toks.len() {
        return Err(ParseError);
    }
    let a = if items.len() == 1 {
        items.into_iter().next().ok_or(ParseError)?
    } else {
        Answer::Set(items)
    };
    Ok(expand_plus_minus(a))
}

pub(super) fn scalar(expr: Expr) -> Answer {
    Answer::Scalar {
        expr,
        percent: false,
    }
}

/// The scalar inside `a`, with a `%` turned into `/100` (it is now part of a larger expression).
pub(super) fn into_expr(a: Answer) -> PResult<Expr> {
    match a {
        Answer::Scalar {
            expr,
            percent: false,
        } => Ok(expr),
        Answer::Scalar {
            expr,
            percent: true,
        } => Ok(Expr::Div(
            Box::new(expr),
            Box::new(Expr::Num(Rational::int(100))),
        )),
        _ => Err(ParseError),
    }
}

pub(super) fn number(digits: &str, exp: i32) -> Expr {
    let q = Rational::parse_decimal(digits);
    let float = || out_of_range_is_nan(digits, exp);
    match q {
        Some(q) if exp == 0 && digits.contains('.') => Expr::Decimal(q),
        Some(q) if exp == 0 => Expr::Num(q),
        Some(q) => match Rational::int(10)
            .powi(i128::from(exp))
            .and_then(|s| q.checked_mul(s))
        {
            Some(v) => Expr::Num(v),
            None => Expr::Float(float()),
        },
        None => Expr::Float(float()),
    }
}

/// `digits·10^exp` as a float, or NaN when f64 cannot hold it: an overflowed ±inf or an underflowed 0
/// would judge `1e400` equal to `1e401` and `1e-400` equal to `0`; NaN equals nothing, so such a
/// literal is never "correct".
fn out_of_range_is_nan(digits: &str, exp: i32) -> f64 {
    let value = format!("{digits}e{exp}").parse::<f64>().unwrap_or(f64::NAN);
    let nonzero = digits.bytes().any(|b| matches!(b, b'1'..=b'9'));
    if value.is_finite() && (value != 0.0 || !nonzero) {
        value
    } else {
        f64::NAN
    }
}

/// Most postfix operators (`!`, `%`, `_`) on one primary.
const MAX_POSTFIX: usize = 8;

/// `a · b`, appending to an existing product so chains stay flat (bounded evaluation depth).
fn mul(a: Expr, b: Expr) -> Expr {
    match a {
        Expr::Mul(mut xs) => {
            xs.push(b);
            Expr::Mul(xs)
        }
        a => Expr::Mul(vec![a, b]),
    }
}

/// `a / b`, flat for chains: `(n/d)/b = n/(d·b)`, `(x·y)/b = x·y·(1/b)`.
fn div(a: Expr, b: Expr) -> Expr {
    match a {
        Expr::Div(n, d) => Expr::Div(n, Box::new(mul(*d, b))),
        Expr::Mul(mut xs) => {
            xs.push(Expr::Div(Box::new(Expr::Num(Rational::ONE)), Box::new(b)));
            Expr::Mul(xs)
        }
        a => Expr::Div(Box::new(a), Box::new(b)),
    }
}

pub(super) struct Parser {
    pub(super) toks: Vec<Token>,
    pub(super) pos: usize,
    pub(super) depth: usize,
    pub(super) nodes: usize,
    pub(super) abs_depth: usize,
}

impl Parser {
    pub(super) fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    pub(super) fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.tok.clone());
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    pub(super) fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(super) fn expect(&mut self, t: &Tok) -> PResult<()> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(ParseError)
        }
    }

    pub(super) fn node(&mut self) -> PResult<()> {
        self.nodes += 1;
        if self.nodes > LIMITS.max_nodes {
            return Err(ParseError);
        }
        Ok(())
    }

    pub(super) fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > LIMITS.max_depth {
            return Err(ParseError);
        }
        Ok(())
    }

    fn at_closer(&self) -> bool {
        match self.peek() {
            None => true,
            Some(
                Tok::RParen
                | Tok::RBrack
                | Tok::RBrace
                | Tok::RSet
                | Tok::RFloor
                | Tok::RCeil
                | Tok::Amp
                | Tok::RowSep
                | Tok::End(_),
            ) => true,
            Some(Tok::Pipe) => self.abs_depth > 0,
            _ => false,
        }
    }

    /// `union (',' union)*` up to a closing token (not consumed); a trailing comma is allowed.
    pub(super) fn items(&mut self) -> PResult<Vec<Answer>> {
        self.enter()?;
        let mut v = Vec::new();
        if !self.at_closer() {
            v.push(self.union()?);
            while self.eat(&Tok::Comma) {
                // `7, -2, and -5`: `, and` is one separator.
                while self.eat(&Tok::Comma) {}
                if self.at_closer() {
                    break;
                }
                v.push(self.union()?);
            }
        }
        self.depth -= 1;
        Ok(v)
    }

    fn union(&mut self) -> PResult<Answer> {
        let first = self.relation()?;
        if self.peek() != Some(&Tok::Cup) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat(&Tok::Cup) {
            parts.push(self.relation()?);
        }
        Ok(Answer::Union(parts))
    }

    fn relation(&mut self) -> PResult<Answer> {
        let first = self.sum()?;
        let mut parts = vec![first];
        let mut ops = Vec::new();
        while let Some(Tok::Rel(op)) = self.peek() {
            let op = *op;
            self.pos += 1;
            ops.push(op);
            parts.push(self.sum()?);
        }
        if ops.is_empty() {
            return parts.pop().ok_or(ParseError);
        }
        Ok(Answer::Relation { parts, ops })
    }

    pub(super) fn sum(&mut self) -> PResult<Answer> {
        self.enter()?;
        let first = self.signed_term()?;
        if !matches!(self.peek(), Some(Tok::Plus | Tok::Minus | Tok::PlusMinus)) {
            self.depth -= 1;
            return Ok(first);
        }
        let mut terms = vec![into_expr(first)?];
        loop {
            let t = match self.peek() {
                Some(Tok::Plus) => {
                    self.pos += 1;
                    into_expr(self.term()?)?
                }
                Some(Tok::Minus) => {
                    self.pos += 1;
                    Expr::Neg(Box::new(into_expr(self.term()?)?))
                }
                Some(Tok::PlusMinus) => {
                    self.pos += 1;
                    Expr::PlusMinus(Box::new(into_expr(self.term()?)?))
                }
                _ => break,
            };
            self.node()?;
            terms.push(t);
        }
        self.depth -= 1;
        Ok(scalar(Expr::Add(terms)))
    }

    /// A leading sign applies to the whole first term (`-4\frac{2}{3}` is `-(4 + 2/3)`).
    fn signed_term(&mut self) -> PResult<Answer> {
        match self.peek() {
            Some(Tok::Minus) => {
                self.pos += 1;
                self.node()?;
                Ok(scalar(Expr::Neg(Box::new(into_expr(self.term()?)?))))
            }
            Some(Tok::Plus) => {
                self.pos += 1;
                self.term()
            }
            Some(Tok::PlusMinus) => {
                self.pos += 1;
                self.node()?;
                Ok(scalar(Expr::PlusMinus(Box::new(into_expr(self.term()?)?))))
            }
            _ => self.term(),
        }
    }

    fn starts_primary(&self) -> bool {
        match self.peek() {
            Some(
                Tok::Num(..)
                | Tok::Ident(_)
                | Tok::Greek(_)
                | Tok::Word(_, false)
                | Tok::Frac
                | Tok::Sqrt
                | Tok::Binom
                | Tok::Pi
                | Tok::Func(_)
                | Tok::Log
                | Tok::LParen
                | Tok::LBrace
                | Tok::LFloor
                | Tok::LCeil
                | Tok::Begin(_),
            ) => true,
            Some(Tok::Pipe) => self.abs_depth == 0,
            _ => false,
        }
    }

    fn term(&mut self) -> PResult<Answer> {
        let mut acc = self.unary()?;
        loop {
            match self.peek() {
                Some(Tok::Star) => {
                    self.pos += 1;
                    let rhs = into_expr(self.unary()?)?;
                    acc = scalar(mul(into_expr(acc)?, rhs));
                }
                Some(Tok::Slash) => {
                    self.pos += 1;
                    let rhs = into_expr(self.unary()?)?;
                    acc = scalar(div(into_expr(acc)?, rhs));
                }
                // `2 3` (two bare numbers) is no product anyone writes; `1  000` would read
                // as 0. Refuse instead of guessing (`3 5^{1/2}` is still 3·√5).
                Some(Tok::Num(..)) if self.bare_number_after_number() => return Err(ParseError),
                _ if self.starts_primary() => {
                    let frac_next = self.peek() == Some(&Tok::Frac);
                    let rhs = into_expr(self.power()?)?;
                    let lhs = into_expr(acc)?;
                    acc = scalar(match (&lhs, &rhs) {
                        // A mixed number: `4\frac{2}{3}` = 4 + 2/3.
                        (Expr::Num(w), Expr::Div(a, b))
                            if frac_next
                                && w.is_integer()
                                && w.numer() >= 0
                                && matches!(**a, Expr::Num(q) if q.is_integer())
                                && matches!(**b, Expr::Num(q) if q.is_integer()) =>
                        {
                            Expr::Add(vec![lhs, rhs])
                        }
                        _ => mul(lhs, rhs),
                    });
                }
                _ => break,
            }
            self.node()?;
        }
        Ok(acc)
    }

    fn unary(&mut self) -> PResult<Answer> {
        self.enter()?;
        let r = match self.peek() {
            Some(Tok::Minus) => {
                self.pos += 1;
                self.node()?;
                Ok(scalar(Expr::Neg(Box::new(into_expr(self.unary()?)?))))
            }
            Some(Tok::Plus) => {
                self.pos += 1;
                self.unary()
            }
            Some(Tok::PlusMinus) => {
                self.pos += 1;
                self.node()?;
                Ok(scalar(Expr::PlusMinus(Box::new(into_expr(self.unary()?)?))))
            }
            _ => self.power(),
        };
        self.depth -= 1;
        r
    }

    pub(super) fn power(&mut self) -> PResult<Answer> {
        let base = self.postfix()?;
        if !self.eat(&Tok::Caret) {
            return Ok(base);
        }
        let exp = self.exponent()?;
        self.node()?;
        let mut r = scalar(Expr::Pow(Box::new(into_expr(base)?), Box::new(exp)));
        // `!`/`%` after a power: `2^3!` is rare; a `%` is common enough (`10^2\%`).
        if self.eat(&Tok::Percent) {
            if let Answer::Scalar { percent, .. } = &mut r {
                *percent = true;
            }
        }
        Ok(r)
    }

    /// After `^`: a braced group, or a whole number (`2^10` is 2¹⁰ as everyone but TeX reads
    /// it), or one primary; a leading `-` negates it.
    pub(super) fn exponent(&mut self) -> PResult<Expr> {
        if self.eat(&Tok::Minus) {
            return Ok(Expr::Neg(Box::new(self.exponent()?)));
        }
        if matches!(self.peek(), Some(Tok::Num(..))) {
            return into_expr(self.primary()?);
        }
        into_expr(self.arg()?)
    }

    fn postfix(&mut self) -> PResult<Answer> {
        let mut a = self.primary()?;
        for _ in 0..=MAX_POSTFIX {
            match self.peek() {
                Some(Tok::Bang) => {
                    self.pos += 1;
                    a = scalar(Expr::Factorial(Box::new(into_expr(a)?)));
                }
                Some(Tok::Percent) => {
                    self.pos += 1;
                    match &mut a {
                        Answer::Scalar { percent, .. } => *percent = true,
                        _ => return Err(ParseError),
                    }
                }
                Some(Tok::Underscore) => {
                    self.pos += 1;
                    let sub = self.arg()?;
                    a = match a {
                        // `52_8`: a base subscript is dropped (the digits are the answer).
                        Answer::Scalar {
                            expr: e @ (Expr::Num(_) | Expr::Decimal(_)),
                            percent,
                        } => Answer::Scalar { expr: e, percent },
                        Answer::Scalar {
                            expr: Expr::Sym(name),
                            percent,
                        } => {
                            let tag = match sub {
                                Answer::Scalar {
                                    expr: Expr::Num(q), ..
                                } => format!("{}/{}", q.numer(), q.denom()),
                                Answer::Scalar {
                                    expr: Expr::Sym(s), ..
                                } => s,
                                _ => return Err(ParseError),
                            };
                            Answer::Scalar {
                                expr: Expr::Sym(format!("{name}_{tag}")),
                                percent,
                            }
                        }
                        _ => return Err(ParseError),
                    };
                }
                _ => return Ok(a),
            }
            self.node()?;
            if self.at_postfix() {
                continue;
            }
            return Ok(a);
        }
        // `5!!!!!!!!!…`: more postfix operators than any answer has; refuse rather than nest.
        Err(ParseError)
    }

    fn bare_number_after_number(&self) -> bool {
        let is_num = |k: Option<usize>| {
            matches!(
                k.and_then(|k| self.toks.get(k)),
                Some(Token {
                    tok: Tok::Num(..),
                    ..
                })
            )
        };
        let next_is_caret = matches!(
            self.toks.get(self.pos + 1),
            Some(Token {
                tok: Tok::Caret,
                ..
            })
        );
        is_num(self.pos.checked_sub(1)) && is_num(Some(self.pos)) && !next_is_caret
    }

    fn at_postfix(&self) -> bool {
        matches!(
            self.peek(),
            Some(Tok::Bang | Tok::Percent | Tok::Underscore)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Answer {
        parse_answer(s).unwrap_or_else(|_| panic!("failed to parse `{s}`"))
    }

    #[test]
    fn shapes() {
        assert!(matches!(p("(1,2)"), Answer::Tuple(v) if v.len() == 2));
        assert!(matches!(
            p("[1,2)"),
            Answer::Interval {
                lo_closed: true,
                hi_closed: false,
                ..
            }
        ));
        assert!(matches!(p("1, -2"), Answer::Set(v) if v.len() == 2));
        assert!(matches!(p("\\{1,2,3\\}"), Answer::Set(v) if v.len() == 3));
        assert!(matches!(p("x = 5"), Answer::Relation { .. }));
        assert!(matches!(p("(-\\infty, 1) \\cup (2, \\infty)"), Answer::Union(v) if v.len() == 2));
        assert!(
            matches!(p("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"), Answer::Matrix(r) if r.len() == 2)
        );
        assert_eq!(p("\\text{(C)}"), Answer::Text("c".into()));
        assert_eq!(p("Evelyn"), Answer::Text("evelyn".into()));
        assert!(matches!(p("3 \\pm \\sqrt{2}"), Answer::Set(v) if v.len() == 2));
    }

    #[test]
    fn depth_and_garbage_do_not_panic() {
        let deep = "(".repeat(500) + "1" + &")".repeat(500);
        assert!(parse_answer(&deep).is_err());
        for s in [
            "",
            "(",
            ")",
            "\\frac",
            "\\frac{1}",
            "1/",
            "^",
            "_",
            "|",
            "\\begin{pmatrix}",
            "x=",
            "1,,2",
        ] {
            let _ = parse_answer(s);
        }
    }
}
