//! A recursive-descent parser from tokens to an [`Answer`]: scalars, tuples, sets, intervals,
//! unions, relations, matrices and text.
//!
//! Grammar, loosest first (`,` joins items into a set; brackets decide tuple vs interval):
//! `list := union (',' union)*`, `union := relation ('\cup' relation)*`,
//! `relation := sum (REL sum)*`, `sum := term (('+'|'-'|'\pm') term)*`,
//! `term := unary (('*'|'/'|implicit) unary)*`, `unary := ('-'|'+'|'\pm') unary | power`,
//! `power := postfix ('^' arg)?`, `postfix := primary ('!'|'_' arg|'%')*`.
//! Depth and node budgets bound the work (see `Limits`).

use super::expr::Expr;
use super::lex::{lex, Rel, Tok, Token};
use super::rational::Rational;
use super::LIMITS;

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

/// Why parsing failed; the verifier turns this into "cannot judge".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError;

type PResult<T> = Result<T, ParseError>;

/// Lowercase, keep letters, digits and single spaces (`\text{(C)}` → `c`).
pub fn normalize_text(s: &str) -> String {
    let kept: String =
        s.chars().map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { ' ' }).collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parse one answer string.
pub fn parse_answer(s: &str) -> PResult<Answer> {
    let toks = lex(s).map_err(|_| ParseError)?;
    if toks.is_empty() {
        return Err(ParseError);
    }
    // Only words (and single letters among them): a text answer such as `Evelyn` or `no solution`.
    let only_words = toks.iter().all(|t| matches!(t.tok, Tok::Word(..) | Tok::Ident(_)));
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
    let mut p = Parser { toks, pos: 0, depth: 0, nodes: 0, abs_depth: 0 };
    let items = p.items()?;
    if p.pos != p.toks.len() {
        return Err(ParseError);
    }
    let a = if items.len() == 1 { items.into_iter().next().ok_or(ParseError)? } else { Answer::Set(items) };
    Ok(expand_plus_minus(a))
}

/// `a ± b` becomes the set `{a + b, a − b}`, at the top and inside sets.
fn expand_plus_minus(a: Answer) -> Answer {
    match a {
        Answer::Scalar { expr, percent } if expr.has_plus_minus() => Answer::Set(vec![
            Answer::Scalar { expr: expr.resolve_plus_minus(1), percent },
            Answer::Scalar { expr: expr.resolve_plus_minus(-1), percent },
        ]),
        Answer::Relation { parts, ops } => {
            Answer::Relation { parts: parts.into_iter().map(expand_plus_minus).collect(), ops }
        }
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

fn scalar(expr: Expr) -> Answer {
    Answer::Scalar { expr, percent: false }
}

/// The scalar inside `a`, with a `%` turned into `/100` (it is now part of a larger expression).
fn into_expr(a: Answer) -> PResult<Expr> {
    match a {
        Answer::Scalar { expr, percent: false } => Ok(expr),
        Answer::Scalar { expr, percent: true } => {
            Ok(Expr::Div(Box::new(expr), Box::new(Expr::Num(Rational::int(100)))))
        }
        _ => Err(ParseError),
    }
}

fn number(digits: &str, exp: i32) -> Expr {
    let q = Rational::parse_decimal(digits);
    let float = || digits.parse::<f64>().unwrap_or(f64::NAN) * 10f64.powi(exp);
    match q {
        Some(q) if exp == 0 && digits.contains('.') => Expr::Decimal(q),
        Some(q) if exp == 0 => Expr::Num(q),
        Some(q) => match Rational::int(10).powi(i128::from(exp)).and_then(|s| q.mul(s)) {
            Some(v) => Expr::Num(v),
            None => Expr::Float(float()),
        },
        None => Expr::Float(float()),
    }
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    nodes: usize,
    abs_depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.tok.clone());
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Tok) -> PResult<()> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(ParseError)
        }
    }

    fn node(&mut self) -> PResult<()> {
        self.nodes += 1;
        if self.nodes > LIMITS.max_nodes {
            return Err(ParseError);
        }
        Ok(())
    }

    fn enter(&mut self) -> PResult<()> {
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
    fn items(&mut self) -> PResult<Vec<Answer>> {
        self.enter()?;
        let mut v = Vec::new();
        if !self.at_closer() {
            v.push(self.union()?);
            while self.eat(&Tok::Comma) {
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

    fn sum(&mut self) -> PResult<Answer> {
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
                    acc = scalar(Expr::Mul(vec![into_expr(acc)?, rhs]));
                }
                Some(Tok::Slash) => {
                    self.pos += 1;
                    let rhs = into_expr(self.unary()?)?;
                    acc = scalar(Expr::Div(Box::new(into_expr(acc)?), Box::new(rhs)));
                }
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
                        _ => Expr::Mul(vec![lhs, rhs]),
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

    fn power(&mut self) -> PResult<Answer> {
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

    fn exponent(&mut self) -> PResult<Expr> {
        if self.eat(&Tok::Minus) {
            return Ok(Expr::Neg(Box::new(into_expr(self.arg()?)?)));
        }
        into_expr(self.arg()?)
    }

    fn postfix(&mut self) -> PResult<Answer> {
        let mut a = self.primary()?;
        loop {
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
                        Answer::Scalar { expr: e @ (Expr::Num(_) | Expr::Decimal(_)), percent } => {
                            Answer::Scalar { expr: e, percent }
                        }
                        Answer::Scalar { expr: Expr::Sym(name), percent } => {
                            let tag = match sub {
                                Answer::Scalar { expr: Expr::Num(q), .. } => format!("{q:?}"),
                                Answer::Scalar { expr: Expr::Sym(s), .. } => s,
                                _ => return Err(ParseError),
                            };
                            Answer::Scalar { expr: Expr::Sym(format!("{name}_{tag}")), percent }
                        }
                        _ => return Err(ParseError),
                    };
                }
                _ => break,
            }
            self.node()?;
        }
        Ok(a)
    }

    /// A LaTeX argument: a `{…}` group, one digit of a digit run (`\frac12`), or one primary.
    fn arg(&mut self) -> PResult<Answer> {
        if self.eat(&Tok::LBrace) {
            let mut items = self.items()?;
            self.expect(&Tok::RBrace)?;
            return if items.len() == 1 { items.pop().ok_or(ParseError) } else { Err(ParseError) };
        }
        if let Some(Token { tok: Tok::Num(d, 0), space }) = self.toks.get(self.pos) {
            if d.len() > 1 && d.chars().all(|c| c.is_ascii_digit()) {
                let (first, rest) = d.split_at(1);
                let (first, rest, space) = (first.to_string(), rest.to_string(), *space);
                if let Some(t) = self.toks.get_mut(self.pos) {
                    *t = Token { tok: Tok::Num(rest, 0), space };
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
        while matches!(self.peek(), Some(Tok::Num(..) | Tok::Ident(_) | Tok::Greek(_) | Tok::Pi)) {
            factors.push(into_expr(self.power()?)?);
        }
        Ok(if factors.len() == 1 { factors.pop().ok_or(ParseError)? } else { Expr::Mul(factors) })
    }

    fn primary(&mut self) -> PResult<Answer> {
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
                    .map(|(k, c)| Token { tok: Tok::Ident(c), space: space && k == 0 })
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
                Expr::Pow(Box::new(radicand), Box::new(Expr::Div(one, Box::new(index))))
            }
            Tok::Func(f) => {
                let power = if self.eat(&Tok::Caret) { Some(self.exponent()?) } else { None };
                let e = Expr::Func(f, Box::new(self.func_arg()?));
                match power {
                    Some(p) => Expr::Pow(Box::new(e), Box::new(p)),
                    None => e,
                }
            }
            Tok::Log => {
                let base = if self.eat(&Tok::Underscore) { into_expr(self.arg()?)? } else { Expr::E };
                let power = if self.eat(&Tok::Caret) { Some(self.exponent()?) } else { None };
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
                return Ok(if items.is_empty() { Answer::Empty } else { Answer::Set(items) });
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
                Ok(Answer::Interval { lo, hi, lo_closed: open_square, hi_closed: close_square })
            }
            (n, false, false) if n > 2 => Ok(Answer::Tuple(items)),
            _ => Err(ParseError),
        }
    }

    fn matrix(&mut self, env: &str) -> PResult<Answer> {
        const MATRIX_ENVS: &[&str] =
            &["pmatrix", "bmatrix", "Bmatrix", "vmatrix", "Vmatrix", "matrix", "smallmatrix", "array"];
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
    use super::*;

    fn p(s: &str) -> Answer {
        parse_answer(s).unwrap_or_else(|_| panic!("failed to parse `{s}`"))
    }

    #[test]
    fn shapes() {
        assert!(matches!(p("(1,2)"), Answer::Tuple(v) if v.len() == 2));
        assert!(matches!(p("[1,2)"), Answer::Interval { lo_closed: true, hi_closed: false, .. }));
        assert!(matches!(p("1, -2"), Answer::Set(v) if v.len() == 2));
        assert!(matches!(p("\\{1,2,3\\}"), Answer::Set(v) if v.len() == 3));
        assert!(matches!(p("x = 5"), Answer::Relation { .. }));
        assert!(matches!(p("(-\\infty, 1) \\cup (2, \\infty)"), Answer::Union(v) if v.len() == 2));
        assert!(matches!(p("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"), Answer::Matrix(r) if r.len() == 2));
        assert_eq!(p("\\text{(C)}"), Answer::Text("c".into()));
        assert_eq!(p("Evelyn"), Answer::Text("evelyn".into()));
        assert!(matches!(p("3 \\pm \\sqrt{2}"), Answer::Set(v) if v.len() == 2));
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
        assert_eq!(v("2^10"), Some(0.0)); // LaTeX reads 2^1·0
        assert_eq!(v("2^{10}"), Some(1024.0));
        assert_eq!(v("\\sqrt[3]{27}"), Some(3.0));
        assert_eq!(v("5!"), Some(120.0));
        assert_eq!(v("\\binom{5}{2}"), Some(10.0));
        assert_eq!(v("|-3|"), Some(3.0));
        assert_eq!(v("52_8"), Some(52.0));
        assert_eq!(v("\\log_2 8").map(f64::round), Some(3.0));
    }

    #[test]
    fn depth_and_garbage_do_not_panic() {
        let deep = "(".repeat(500) + "1" + &")".repeat(500);
        assert!(parse_answer(&deep).is_err());
        for s in ["", "(", ")", "\\frac", "\\frac{1}", "1/", "^", "_", "|", "\\begin{pmatrix}", "x=", "1,,2"] {
            let _ = parse_answer(s);
        }
    }
}
