//! Scalar expression trees and their evaluation: exact rationals where possible, complex `f64`
//! otherwise.
//!
//! Evaluation is total (`None` instead of a panic) and bounded: the tree it walks was built by
//! the parser under a node and depth budget, integer powers are capped, factorials stop at 170.

use super::complex::C64;
use super::lex::Func;
use super::rational::Rational;

/// A scalar expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// An exact number (integer literal, fraction result, scientific literal).
    Num(Rational),
    /// A literal with a decimal point (`0.5`); equal in value to a [`Expr::Num`], but answers
    /// given as decimals are compared after rounding (see `VerifyOptions::float_rounding`).
    Decimal(Rational),
    /// A literal too large for `i128`.
    Float(f64),
    /// A variable.
    Sym(String),
    /// `π`.
    Pi,
    /// Euler's number `e`.
    E,
    /// The imaginary unit `i`.
    I,
    /// `∞`.
    Inf,
    /// A sum.
    Add(Vec<Expr>),
    /// A product.
    Mul(Vec<Expr>),
    /// `-x`.
    Neg(Box<Expr>),
    /// `±x` (expanded into two answers by the parser before comparison).
    PlusMinus(Box<Expr>),
    /// `a / b`.
    Div(Box<Expr>, Box<Expr>),
    /// `a ^ b`.
    Pow(Box<Expr>, Box<Expr>),
    /// `f(x)`.
    Func(Func, Box<Expr>),
    /// `log_b(x)`.
    Log(Box<Expr>, Box<Expr>),
    /// `|x|`.
    Abs(Box<Expr>),
    /// `⌊x⌋`.
    Floor(Box<Expr>),
    /// `⌈x⌉`.
    Ceil(Box<Expr>),
    /// `n!`.
    Factorial(Box<Expr>),
    /// `C(n, k)`.
    Binom(Box<Expr>, Box<Expr>),
}

/// A value: exact when every step was exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val {
    /// An exact rational.
    Exact(Rational),
    /// A floating-point complex number.
    Approx(C64),
}

impl Val {
    /// As a complex float.
    pub fn approx(self) -> C64 {
        match self {
            Val::Exact(q) => C64::real(q.to_f64()),
            Val::Approx(z) => z,
        }
    }

    fn checked(z: C64) -> Option<Val> {
        z.is_finite().then_some(Val::Approx(z))
    }
}

/// Variable bindings for one evaluation point.
pub type Env<'a> = &'a [(String, Val)];

fn binary(
    a: Val,
    b: Val,
    exact: impl Fn(Rational, Rational) -> Option<Rational>,
    approx: impl Fn(C64, C64) -> C64,
) -> Option<Val> {
    if let (Val::Exact(x), Val::Exact(y)) = (a, b) {
        if let Some(q) = exact(x, y) {
            return Some(Val::Exact(q));
        }
    }
    Val::checked(approx(a.approx(), b.approx()))
}

fn pow(b: Val, e: Val) -> Option<Val> {
    if let (Val::Exact(x), Val::Exact(y)) = (b, e) {
        if x.is_zero() && y.numer() < 0 {
            return None;
        }
        if y.denom() <= 64 {
            let den = u32::try_from(y.denom()).ok()?;
            if let Some(r) = x.exact_root(den).and_then(|r| r.powi(y.numer())) {
                return Some(Val::Exact(r));
            }
        }
    }
    Val::checked(b.approx().pow(e.approx()))
}

fn factorial(v: Val) -> Option<Val> {
    let Val::Exact(q) = v else { return None };
    if !q.is_integer() || q.numer() < 0 || q.numer() > 170 {
        return None;
    }
    let n = q.numer();
    let mut acc = Rational::ONE;
    let mut exact = true;
    let mut approx = 1.0f64;
    for k in 2..=n {
        approx *= k as f64;
        if exact {
            match acc.checked_mul(Rational::int(k)) {
                Some(a) => acc = a,
                None => exact = false,
            }
        }
    }
    if exact {
        Some(Val::Exact(acc))
    } else {
        Val::checked(C64::real(approx))
    }
}

fn binom(n: Val, k: Val) -> Option<Val> {
    let (Val::Exact(n), Val::Exact(k)) = (n, k) else {
        return None;
    };
    if !n.is_integer() || !k.is_integer() {
        return None;
    }
    let (n, k) = (n.numer(), k.numer());
    if k < 0 || n < 0 || k > n {
        return Some(Val::Exact(Rational::ZERO));
    }
    let k = k.min(n - k);
    if k > 10_000 {
        return None;
    }
    let mut acc = Rational::ONE;
    let mut approx = 1.0f64;
    let mut exact = true;
    for j in 0..k {
        let num = n - j;
        approx = approx * num as f64 / (j + 1) as f64;
        if exact {
            match acc
                .checked_mul(Rational::int(num))
                .and_then(|a| a.checked_div(Rational::int(j + 1)))
            {
                Some(a) => acc = a,
                None => exact = false,
            }
        }
    }
    if exact {
        Some(Val::Exact(acc))
    } else {
        Val::checked(C64::real(approx))
    }
}

fn func(f: Func, v: Val) -> Option<Val> {
    let z = v.approx();
    let one = C64::real(1.0);
    let r = match f {
        Func::Sin => z.sin(),
        Func::Cos => z.cos(),
        Func::Tan => z.sin().div(z.cos()),
        Func::Cot => z.cos().div(z.sin()),
        Func::Sec => one.div(z.cos()),
        Func::Csc => one.div(z.sin()),
        Func::Asin => z.asin(),
        Func::Acos => z.acos(),
        Func::Atan => z.atan(),
        Func::Sinh => z.exp().sub(z.neg().exp()).mul(C64::real(0.5)),
        Func::Cosh => z.exp().add(z.neg().exp()).mul(C64::real(0.5)),
        Func::Tanh => {
            let (a, b) = (z.exp(), z.neg().exp());
            a.sub(b).div(a.add(b))
        }
        Func::Ln => {
            if v == Val::Exact(Rational::ONE) {
                return Some(Val::Exact(Rational::ZERO));
            }
            z.ln()
        }
        Func::Exp => {
            if v == Val::Exact(Rational::ZERO) {
                return Some(Val::Exact(Rational::ONE));
            }
            z.exp()
        }
    };
    Val::checked(r)
}

impl Expr {
    /// Evaluate under `env`; `None` when a variable is unbound, a division by zero or an overflow
    /// to infinity happens, or `∞` appears.
    pub fn eval(&self, env: Env<'_>) -> Option<Val> {
        match self {
            Expr::Num(q) | Expr::Decimal(q) => Some(Val::Exact(*q)),
            Expr::Float(f) => Val::checked(C64::real(*f)),
            Expr::Sym(name) => env.iter().find(|(n, _)| n == name).map(|(_, v)| *v),
            Expr::Pi => Some(Val::Approx(C64::real(std::f64::consts::PI))),
            Expr::E => Some(Val::Approx(C64::real(std::f64::consts::E))),
            Expr::I => Some(Val::Approx(C64::I)),
            Expr::Inf | Expr::PlusMinus(_) => None,
            Expr::Add(xs) => {
                let mut acc = Val::Exact(Rational::ZERO);
                for x in xs {
                    acc = binary(acc, x.eval(env)?, Rational::checked_add, C64::add)?;
                }
                Some(acc)
            }
            Expr::Mul(xs) => {
                let mut acc = Val::Exact(Rational::ONE);
                for x in xs {
                    acc = binary(acc, x.eval(env)?, Rational::checked_mul, C64::mul)?;
                }
                Some(acc)
            }
            Expr::Neg(x) => match x.eval(env)? {
                Val::Exact(q) => match q.checked_neg() {
                    Some(n) => Some(Val::Exact(n)),
                    None => Val::checked(C64::real(q.to_f64()).neg()),
                },
                Val::Approx(z) => Some(Val::Approx(z.neg())),
            },
            Expr::Div(a, b) => {
                let (a, b) = (a.eval(env)?, b.eval(env)?);
                if b == Val::Exact(Rational::ZERO) {
                    return None;
                }
                binary(a, b, Rational::checked_div, C64::div)
            }
            Expr::Pow(b, e) => pow(b.eval(env)?, e.eval(env)?),
            Expr::Func(f, x) => func(*f, x.eval(env)?),
            Expr::Log(b, x) => {
                let (b, x) = (b.eval(env)?.approx(), x.eval(env)?.approx());
                Val::checked(x.ln().div(b.ln()))
            }
            Expr::Abs(x) => match x.eval(env)? {
                Val::Exact(q) if q.numer() < 0 => q.checked_neg().map(Val::Exact),
                Val::Exact(q) => Some(Val::Exact(q)),
                Val::Approx(z) => Val::checked(C64::real(z.abs())),
            },
            Expr::Floor(x) | Expr::Ceil(x) => {
                let up = matches!(self, Expr::Ceil(_));
                match x.eval(env)? {
                    Val::Exact(q) => {
                        let (n, d) = (q.numer(), q.denom());
                        let f = n.div_euclid(d);
                        let v = if up && n.rem_euclid(d) != 0 {
                            f.checked_add(1)?
                        } else {
                            f
                        };
                        Some(Val::Exact(Rational::int(v)))
                    }
                    Val::Approx(z) if z.im.abs() < 1e-12 => {
                        let r = if up { z.re.ceil() } else { z.re.floor() };
                        Val::checked(C64::real(r))
                    }
                    Val::Approx(_) => None,
                }
            }
            Expr::Factorial(x) => factorial(x.eval(env)?),
            Expr::Binom(n, k) => binom(n.eval(env)?, k.eval(env)?),
        }
    }

    /// Collect the free variables into `out` (sorted, deduplicated by the caller).
    pub fn symbols(&self, out: &mut Vec<String>) {
        match self {
            Expr::Sym(s) if !out.contains(s) => out.push(s.clone()),
            Expr::Add(xs) | Expr::Mul(xs) => xs.iter().for_each(|x| x.symbols(out)),
            Expr::Neg(x)
            | Expr::PlusMinus(x)
            | Expr::Func(_, x)
            | Expr::Abs(x)
            | Expr::Floor(x)
            | Expr::Ceil(x)
            | Expr::Factorial(x) => x.symbols(out),
            Expr::Div(a, b) | Expr::Pow(a, b) | Expr::Log(a, b) | Expr::Binom(a, b) => {
                a.symbols(out);
                b.symbols(out);
            }
            _ => {}
        }
    }

    /// `+1` for `∞`, `-1` for `-∞`, else `None`.
    pub fn infinity_sign(&self) -> Option<i8> {
        match self {
            Expr::Inf => Some(1),
            Expr::Neg(x) => x.infinity_sign().map(|s| -s),
            Expr::Add(xs) | Expr::Mul(xs) if xs.len() == 1 => xs.first()?.infinity_sign(),
            _ => None,
        }
    }

    /// Whether this is a bare decimal literal, possibly negated (`-0.5`): such answers are
    /// compared after rounding, as math-verify does for SymPy `Float`s.
    pub fn is_decimal_literal(&self) -> bool {
        match self {
            Expr::Decimal(_) => true,
            Expr::Neg(x) => x.is_decimal_literal(),
            _ => false,
        }
    }

    /// For a decimal literal, its number of decimal places without trailing zeros: for the
    /// reduced value `p / (2^a·5^b)` that is `max(a, b)` (`0.0011905` → 7, `0.150` → 2).
    pub fn decimal_places(&self) -> Option<u32> {
        match self {
            Expr::Decimal(q) => {
                let (mut d, mut twos, mut fives) = (q.denom(), 0u32, 0u32);
                while d % 2 == 0 {
                    d /= 2;
                    twos += 1;
                }
                while d % 5 == 0 {
                    d /= 5;
                    fives += 1;
                }
                Some(twos.max(fives))
            }
            Expr::Neg(x) => x.decimal_places(),
            _ => None,
        }
    }

    /// Whether the tree contains a `±`.
    pub fn has_plus_minus(&self) -> bool {
        match self {
            Expr::PlusMinus(_) => true,
            Expr::Add(xs) | Expr::Mul(xs) => xs.iter().any(Expr::has_plus_minus),
            Expr::Neg(x)
            | Expr::Func(_, x)
            | Expr::Abs(x)
            | Expr::Floor(x)
            | Expr::Ceil(x)
            | Expr::Factorial(x) => x.has_plus_minus(),
            Expr::Div(a, b) | Expr::Pow(a, b) | Expr::Log(a, b) | Expr::Binom(a, b) => {
                a.has_plus_minus() || b.has_plus_minus()
            }
            _ => false,
        }
    }

    /// Replace every `±x` by `x` (`sign = 1`) or `-x` (`sign = -1`).
    pub fn resolve_plus_minus(&self, sign: i8) -> Expr {
        let r = |x: &Expr| Box::new(x.resolve_plus_minus(sign));
        match self {
            Expr::PlusMinus(x) if sign < 0 => Expr::Neg(r(x)),
            Expr::PlusMinus(x) => x.resolve_plus_minus(sign),
            Expr::Add(xs) => Expr::Add(xs.iter().map(|x| x.resolve_plus_minus(sign)).collect()),
            Expr::Mul(xs) => Expr::Mul(xs.iter().map(|x| x.resolve_plus_minus(sign)).collect()),
            Expr::Neg(x) => Expr::Neg(r(x)),
            Expr::Func(f, x) => Expr::Func(*f, r(x)),
            Expr::Abs(x) => Expr::Abs(r(x)),
            Expr::Floor(x) => Expr::Floor(r(x)),
            Expr::Ceil(x) => Expr::Ceil(r(x)),
            Expr::Factorial(x) => Expr::Factorial(r(x)),
            Expr::Div(a, b) => Expr::Div(r(a), r(b)),
            Expr::Pow(a, b) => Expr::Pow(r(a), r(b)),
            Expr::Log(a, b) => Expr::Log(r(a), r(b)),
            Expr::Binom(a, b) => Expr::Binom(r(a), r(b)),
            other => other.clone(),
        }
    }
}

/// Whether two values are equal: exactly when both are exact, else within a relative tolerance
/// `|a − b| <= rel_tol · max(|a|, |b|) + 1e-12`.
pub fn values_equal(a: Val, b: Val, rel_tol: f64) -> bool {
    match (a, b) {
        (Val::Exact(x), Val::Exact(y)) => x == y,
        _ => {
            let (x, y) = (a.approx(), b.approx());
            x.sub(y).abs() <= rel_tol * x.abs().max(y.abs()) + 1e-12
        }
    }
}

/// Round to `digits` decimal places (half away from zero) and compare, the rule for answers
/// given as decimals (`0.333333` equals `1/3` at 6 places). Complex values compare both parts.
pub fn values_equal_rounded(a: Val, b: Val, digits: u32) -> bool {
    if let (Val::Exact(x), Val::Exact(y)) = (a, b) {
        if let (Some(p), Some(q)) = (x.round_scaled(digits), y.round_scaled(digits)) {
            return p == q;
        }
    }
    let scale = 10f64.powi(digits as i32);
    let (x, y) = (a.approx(), b.approx());
    let r = |v: f64| (v * scale).round();
    let close = |u: f64, v: f64| r(u) == r(v) || (u - v).abs() <= 1e-12 * u.abs().max(v.abs());
    close(x.re, y.re) && close(x.im, y.im)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: i128) -> Expr {
        Expr::Num(Rational::int(v))
    }

    #[test]
    fn exact_arithmetic_stays_exact() {
        // 1/2 + 1/3 = 5/6
        let e = Expr::Add(vec![
            Expr::Div(Box::new(n(1)), Box::new(n(2))),
            Expr::Div(Box::new(n(1)), Box::new(n(3))),
        ]);
        assert_eq!(e.eval(&[]), Some(Val::Exact(Rational::new(5, 6).unwrap())));
        // sqrt(9/4) = 3/2 exactly; sqrt(2) is approximate.
        let half = Expr::Num(Rational::new(1, 2).unwrap());
        let s = Expr::Pow(
            Box::new(Expr::Num(Rational::new(9, 4).unwrap())),
            Box::new(half.clone()),
        );
        assert_eq!(s.eval(&[]), Some(Val::Exact(Rational::new(3, 2).unwrap())));
        let s2 = Expr::Pow(Box::new(n(2)), Box::new(half));
        assert!(matches!(s2.eval(&[]), Some(Val::Approx(_))));
    }

    #[test]
    fn division_by_zero_and_overflow_are_none() {
        assert_eq!(Expr::Div(Box::new(n(1)), Box::new(n(0))).eval(&[]), None);
        assert_eq!(Expr::Factorial(Box::new(n(1000))).eval(&[]), None);
        // 10^400 overflows f64 too.
        assert_eq!(Expr::Pow(Box::new(n(10)), Box::new(n(400))).eval(&[]), None);
        // 30! is exact in i128; 40! is approximate.
        assert!(matches!(
            Expr::Factorial(Box::new(n(30))).eval(&[]),
            Some(Val::Exact(_))
        ));
        assert!(matches!(
            Expr::Factorial(Box::new(n(40))).eval(&[]),
            Some(Val::Approx(_))
        ));
    }

    #[test]
    fn decimal_places() {
        let d = |s: &str| Expr::Decimal(Rational::parse_decimal(s).unwrap()).decimal_places();
        assert_eq!(d("0.0011905"), Some(7));
        assert_eq!(d("0.150"), Some(2));
        assert_eq!(d("12.0"), Some(0));
        assert_eq!(n(3).decimal_places(), None);
    }

    #[test]
    fn rounding_rule() {
        let third = Val::Exact(Rational::new(1, 3).unwrap());
        let d = Val::Exact(Rational::parse_decimal("0.333333").unwrap());
        assert!(values_equal_rounded(third, d, 6));
        let d4 = Val::Exact(Rational::parse_decimal("0.3333").unwrap());
        assert!(!values_equal_rounded(third, d4, 6));
        let pi = Val::Approx(C64::real(std::f64::consts::PI));
        let p = Val::Exact(Rational::parse_decimal("3.141593").unwrap());
        assert!(values_equal_rounded(pi, p, 6));
    }
}
