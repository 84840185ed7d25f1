//! Exact rationals on `i128` with checked arithmetic.
//!
//! Every operation returns `None` on overflow instead of wrapping or panicking; the evaluator then
//! falls back to floating point. `i128` holds every integer below `1.7e38`, which covers the
//! answers of the math benchmarks we grade (the largest MATH-500 answers have ~15 digits).

use std::cmp::Ordering;

/// An exact rational `num / den` in lowest terms with `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

/// Greatest common divisor of `|a|` and `|b|` (`gcd(0, 0) = 0`), on unsigned magnitudes so that
/// `i128::MIN` cannot overflow.
fn gcd(a: i128, b: i128) -> u128 {
    let (mut a, mut b) = (a.unsigned_abs(), b.unsigned_abs());
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Rational {
    /// Zero.
    pub const ZERO: Rational = Rational { num: 0, den: 1 };
    /// One.
    pub const ONE: Rational = Rational { num: 1, den: 1 };

    /// `num / den` reduced to lowest terms; `None` when `den = 0` or the reduction overflows.
    pub fn new(num: i128, den: i128) -> Option<Rational> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den);
        // `g >= 1` because `den != 0`; dividing magnitudes then re-signing never overflows
        // except for `i128::MIN / 1`, which `checked_neg` catches.
        let g = i128::try_from(g).ok()?;
        let (mut n, mut d) = (num.checked_div(g)?, den.checked_div(g)?);
        if d < 0 {
            n = n.checked_neg()?;
            d = d.checked_neg()?;
        }
        Some(Rational { num: n, den: d })
    }

    /// The integer `n`.
    pub fn int(n: i128) -> Rational {
        Rational { num: n, den: 1 }
    }

    /// The numerator (sign carrier).
    pub fn numer(self) -> i128 {
        self.num
    }

    /// The denominator (always positive).
    pub fn denom(self) -> i128 {
        self.den
    }

    /// Whether the value is an integer.
    pub fn is_integer(self) -> bool {
        self.den == 1
    }

    /// Whether the value is zero.
    pub fn is_zero(self) -> bool {
        self.num == 0
    }

    /// Parse a plain decimal literal such as `12`, `-0.125` or `.5` (digits and at most one dot).
    pub fn parse_decimal(s: &str) -> Option<Rational> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int_part, frac_part) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let mut num: i128 = 0;
        let mut den: i128 = 1;
        for c in int_part.chars().chain(frac_part.chars()) {
            let d = c.to_digit(10)?;
            num = num.checked_mul(10)?.checked_add(i128::from(d))?;
        }
        for _ in 0..frac_part.len() {
            den = den.checked_mul(10)?;
        }
        if neg {
            num = num.checked_neg()?;
        }
        Rational::new(num, den)
    }

    /// `self + rhs`.
    pub fn checked_add(self, rhs: Rational) -> Option<Rational> {
        let g = i128::try_from(gcd(self.den, rhs.den)).ok()?;
        let l = self.den.checked_div(g)?;
        let r = rhs.den.checked_div(g)?;
        let num = self
            .num
            .checked_mul(r)?
            .checked_add(rhs.num.checked_mul(l)?)?;
        Rational::new(num, self.den.checked_mul(r)?)
    }

    /// `-self`.
    pub fn checked_neg(self) -> Option<Rational> {
        Some(Rational {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }

    /// `self - rhs`.
    pub fn checked_sub(self, rhs: Rational) -> Option<Rational> {
        self.checked_add(rhs.checked_neg()?)
    }

    /// `self * rhs`, cross-reducing first to delay overflow.
    pub fn checked_mul(self, rhs: Rational) -> Option<Rational> {
        let g1 = i128::try_from(gcd(self.num, rhs.den)).ok()?.max(1);
        let g2 = i128::try_from(gcd(rhs.num, self.den)).ok()?.max(1);
        let num = (self.num / g1).checked_mul(rhs.num / g2)?;
        let den = (self.den / g2).checked_mul(rhs.den / g1)?;
        Rational::new(num, den)
    }

    /// `1 / self`; `None` for zero.
    pub fn recip(self) -> Option<Rational> {
        Rational::new(self.den, self.num)
    }

    /// `self / rhs`; `None` when `rhs = 0`.
    pub fn checked_div(self, rhs: Rational) -> Option<Rational> {
        self.checked_mul(rhs.recip()?)
    }

    /// `self^exp` for an integer exponent with `|exp| <= 4096` (by squaring, checked).
    pub fn powi(self, exp: i128) -> Option<Rational> {
        if exp.unsigned_abs() > 4096 {
            return None;
        }
        let mut base = if exp < 0 { self.recip()? } else { self };
        let mut e = exp.unsigned_abs();
        let mut acc = Rational::ONE;
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.checked_mul(base)?;
            }
            e >>= 1;
            if e > 0 {
                base = base.checked_mul(base)?;
            }
        }
        Some(acc)
    }

    /// The exact `k`-th root when it is rational (`sqrt(9/4) = 3/2`), else `None`.
    /// Odd roots of negatives are real (`cbrt(-8) = -2`); even roots of negatives are `None`.
    pub fn exact_root(self, k: u32) -> Option<Rational> {
        if k == 0 {
            return None;
        }
        if self.num < 0 && k.is_multiple_of(2) {
            return None;
        }
        let n = int_root(self.num.unsigned_abs(), k)?;
        let d = int_root(self.den.unsigned_abs(), k)?;
        let n = i128::try_from(n).ok()?;
        let d = i128::try_from(d).ok()?;
        Rational::new(if self.num < 0 { -n } else { n }, d)
    }

    /// Round half away from zero to `digits` decimal places, returned as the scaled integer
    /// `round(self * 10^digits)`; `None` on overflow.
    pub fn round_scaled(self, digits: u32) -> Option<i128> {
        let scale = 10i128.checked_pow(digits)?;
        let scaled = self.num.checked_mul(scale)?;
        let q = scaled / self.den;
        let r = scaled % self.den;
        // |r| * 2 >= den → round away from zero.
        let twice = r.unsigned_abs().checked_mul(2)?;
        if twice >= self.den.unsigned_abs() {
            Some(if scaled < 0 { q - 1 } else { q + 1 })
        } else {
            Some(q)
        }
    }

    /// The nearest `f64`.
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl PartialOrd for Rational {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rational {
    fn cmp(&self, other: &Self) -> Ordering {
        // Compare a/b with c/d via a·d vs c·b, falling back to floats on overflow.
        match (
            self.num.checked_mul(other.den),
            other.num.checked_mul(self.den),
        ) {
            (Some(l), Some(r)) => l.cmp(&r),
            _ => self.to_f64().total_cmp(&other.to_f64()),
        }
    }
}

/// The exact integer `k`-th root of `n`, or `None` when `n` is not a perfect `k`-th power.
fn int_root(n: u128, k: u32) -> Option<u128> {
    if n < 2 || k == 1 {
        return Some(n);
    }
    let guess = (n as f64).powf(1.0 / f64::from(k)).round();
    if !guess.is_finite() || guess < 0.0 {
        return None;
    }
    let g = guess as u128;
    for cand in [g.saturating_sub(1), g, g.saturating_add(1)] {
        let mut p: u128 = 1;
        let mut ok = true;
        for _ in 0..k {
            match p.checked_mul(cand) {
                Some(v) => p = v,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok && p == n {
            return Some(cand);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: i128, d: i128) -> Rational {
        Rational::new(n, d).unwrap()
    }

    #[test]
    fn reduces_and_normalises_sign() {
        assert_eq!(q(6, -4), q(-3, 2));
        assert_eq!(q(0, -5), Rational::ZERO);
        assert!(Rational::new(1, 0).is_none());
    }

    #[test]
    fn arithmetic() {
        assert_eq!(q(1, 2).checked_add(q(1, 3)).unwrap(), q(5, 6));
        assert_eq!(q(1, 2).checked_sub(q(1, 3)).unwrap(), q(1, 6));
        assert_eq!(q(2, 3).checked_mul(q(9, 4)).unwrap(), q(3, 2));
        assert_eq!(q(2, 3).checked_div(q(4, 9)).unwrap(), q(3, 2));
        assert!(q(2, 3).checked_div(Rational::ZERO).is_none());
        assert_eq!(q(2, 3).powi(-2).unwrap(), q(9, 4));
        assert_eq!(q(9, 4).exact_root(2).unwrap(), q(3, 2));
        assert_eq!(q(-8, 1).exact_root(3).unwrap(), q(-2, 1));
        assert!(q(2, 1).exact_root(2).is_none());
        assert!(q(-4, 1).exact_root(2).is_none());
    }

    #[test]
    fn overflow_is_none_not_panic() {
        let big = Rational::int(i128::MAX);
        assert!(big.checked_add(Rational::ONE).is_none());
        assert!(big.checked_mul(Rational::int(2)).is_none());
        assert!(Rational::int(10).powi(40).is_none());
        assert!(Rational::int(i128::MIN).checked_neg().is_none());
        assert!(Rational::new(i128::MIN, -1).is_none());
    }

    #[test]
    fn decimals_and_rounding() {
        assert_eq!(Rational::parse_decimal("-0.125").unwrap(), q(-1, 8));
        assert_eq!(Rational::parse_decimal(".5").unwrap(), q(1, 2));
        assert!(Rational::parse_decimal(".").is_none());
        assert!(Rational::parse_decimal("1.2.3").is_none());
        // 1/3 to 6 places: 333333; 2/3: 666667; -2/3: -666667.
        assert_eq!(q(1, 3).round_scaled(6), Some(333_333));
        assert_eq!(q(2, 3).round_scaled(6), Some(666_667));
        assert_eq!(q(-2, 3).round_scaled(6), Some(-666_667));
    }
}
