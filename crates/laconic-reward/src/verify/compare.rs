//! Equivalence of two parsed answers, gold first (the rules are not symmetric: a gold `x = 5`
//! accepts `5`, and a predicted `y = 5` is read as `5`, but a gold `2x + y = 1` wants an equation).

use laconic_seed::{mix64, GOLDEN_GAMMA};

use super::expr::{values_equal, values_equal_rounded, Expr, Val};
use super::lex::Rel;
use super::parse::Answer;
use super::rational::Rational;
use super::VerifyOptions;

/// Most elements a tuple, set or matrix may have before we give up (the matching is quadratic).
const MAX_ELEMENTS: usize = 64;

pub(crate) struct Comparer<'o> {
    pub opts: &'o VerifyOptions,
}

fn is_symbolic_lhs(a: &Answer) -> bool {
    fn only_symbols(e: &Expr) -> bool {
        match e {
            Expr::Sym(_) => true,
            Expr::Mul(xs) => xs.iter().all(only_symbols),
            _ => false,
        }
    }
    matches!(a, Answer::Scalar { expr, .. } if only_symbols(expr))
}

/// `x = …` (or `x \in …`, or a chain `x = a = b`): the left side is only symbols.
fn is_assignment(parts: &[Answer], ops: &[Rel]) -> bool {
    ops.iter().all(|o| matches!(o, Rel::Eq | Rel::In)) && parts.first().is_some_and(is_symbolic_lhs)
}

fn is_equation(ops: &[Rel]) -> bool {
    ops.iter().all(|o| matches!(o, Rel::Eq | Rel::In))
}

fn flip(op: Rel) -> Rel {
    match op {
        Rel::Lt => Rel::Gt,
        Rel::Gt => Rel::Lt,
        Rel::Le => Rel::Ge,
        Rel::Ge => Rel::Le,
        other => other,
    }
}

fn neg_inf() -> Expr {
    Expr::Neg(Box::new(Expr::Inf))
}

/// `x < 3` → `(-∞, 3)`, `1 \le x < 2` → `[1, 2)`: an inequality in one variable as an interval.
fn relation_as_interval(parts: &[Answer], ops: &[Rel]) -> Option<Answer> {
    let expr = |a: &Answer| match a {
        Answer::Scalar {
            expr,
            percent: false,
        } => Some(expr.clone()),
        _ => None,
    };
    let is_var = |a: &Answer| {
        matches!(
            a,
            Answer::Scalar {
                expr: Expr::Sym(_),
                ..
            }
        )
    };
    let interval = |lo, hi, lo_closed, hi_closed| Answer::Interval {
        lo,
        hi,
        lo_closed,
        hi_closed,
    };
    match (parts, ops) {
        ([a, b], [op]) => {
            let (var_left, bound) = if is_var(a) {
                (true, expr(b)?)
            } else if is_var(b) {
                (false, expr(a)?)
            } else {
                return None;
            };
            let op = if var_left { *op } else { flip(*op) };
            Some(match op {
                Rel::Lt => interval(neg_inf(), bound, false, false),
                Rel::Le => interval(neg_inf(), bound, false, true),
                Rel::Gt => interval(bound, Expr::Inf, false, false),
                Rel::Ge => interval(bound, Expr::Inf, true, false),
                _ => return None,
            })
        }
        ([a, x, b], [o1, o2]) if is_var(x) => {
            let (lo, hi) = (expr(a)?, expr(b)?);
            match (o1, o2) {
                (Rel::Lt | Rel::Le, Rel::Lt | Rel::Le) => {
                    Some(interval(lo, hi, *o1 == Rel::Le, *o2 == Rel::Le))
                }
                (Rel::Gt | Rel::Ge, Rel::Gt | Rel::Ge) => {
                    Some(interval(hi, lo, *o2 == Rel::Ge, *o1 == Rel::Ge))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Deterministic pseudo-random rational sample points: `p/q` with `p ∈ [-37, 37] \ {0}`,
/// `q ∈ [1, 11]`, from a fixed-seed SplitMix64 stream (same points on every run and machine).
fn sample_value(var_index: usize, point: usize) -> Rational {
    let z = mix64(
        GOLDEN_GAMMA
            .wrapping_mul(var_index as u64 + 1)
            .wrapping_add(0xBF58_476D_1CE4_E5B9u64.wrapping_mul(point as u64 + 1)),
    );
    let p = (z % 74) as i128 - 37;
    let p = if p >= 0 { p + 1 } else { p };
    let q = ((z >> 32) % 11) as i128 + 1;
    Rational::new(p, q).unwrap_or(Rational::ONE)
}

impl Comparer<'_> {
    /// The answers' equivalence; `None` when it cannot be decided (nothing evaluates).
    pub fn answers(&self, g: &Answer, p: &Answer) -> Option<bool> {
        use Answer as A;
        // The same tree is the same answer, even where nothing evaluates (`\infty = x`).
        if g == p {
            return Some(true);
        }
        match (g, p) {
            (A::Relation { parts: gp, ops: go }, A::Relation { parts: pp, ops: po }) => {
                return self.relations(gp, go, pp, po);
            }
            // A predicted equation answers with its last side (`2 + 3 = 5` → `5`, `y = 5` → `5`).
            (_, A::Relation { parts, ops }) if is_equation(ops) => {
                return self.answers(g, parts.last()?);
            }
            // An inequality for an interval (math-verify only accepts the other direction).
            (A::Interval { .. } | A::Union(_) | A::Tuple(_), A::Relation { parts, ops }) => {
                return match relation_as_interval(parts, ops) {
                    Some(iv) => self.answers(g, &iv),
                    None => Some(false),
                };
            }
            (_, A::Relation { .. }) => return Some(false),
            (A::Relation { parts, ops }, _) if is_assignment(parts, ops) => {
                return self.answers(parts.last()?, p);
            }
            (A::Relation { parts, ops }, A::Interval { .. } | A::Union(_) | A::Tuple(_)) => {
                return match relation_as_interval(parts, ops) {
                    Some(iv) => self.answers(&iv, p),
                    None => Some(false),
                };
            }
            (A::Relation { .. }, _) => return Some(false),
            _ => {}
        }
        match (g, p) {
            // A lone letter is a choice label (`C` = `c`); inside expressions case matters.
            (
                A::Scalar {
                    expr: Expr::Sym(a), ..
                },
                A::Scalar {
                    expr: Expr::Sym(b), ..
                },
            ) if a.chars().count() == 1 && b.chars().count() == 1 => {
                Some(a.eq_ignore_ascii_case(b))
            }
            (
                A::Scalar {
                    expr: ge,
                    percent: gp,
                },
                A::Scalar {
                    expr: pe,
                    percent: pp,
                },
            ) => self.scalars(ge, *gp, pe, *pp),
            (A::Text(a), A::Text(b)) => Some(a == b),
            // `Evelyn` = `\text{Evelyn}`; `\overline{CD}` = `CD` (read as the product C·D).
            (A::Text(t), A::Scalar { expr, .. }) | (A::Scalar { expr, .. }, A::Text(t)) => {
                Some(letters_of(expr).is_some_and(|l| l == t.replace(' ', "")))
            }
            (A::Tuple(a), A::Tuple(b)) | (A::Tuple(a), A::Set(b)) | (A::Set(a), A::Tuple(b)) => {
                self.in_order(a, b)
            }
            (A::Set(a), A::Set(b)) | (A::Union(a), A::Union(b)) => self.unordered(a, b),
            (A::Scalar { .. }, A::Set(b)) if b.len() == 1 => self.answers(g, b.first()?),
            (A::Set(a), A::Scalar { .. }) if a.len() == 1 => self.answers(a.first()?, p),
            (
                A::Interval {
                    lo: gl,
                    hi: gh,
                    lo_closed: glc,
                    hi_closed: ghc,
                },
                A::Interval {
                    lo: pl,
                    hi: ph,
                    lo_closed: plc,
                    hi_closed: phc,
                },
            ) => {
                if glc != plc || ghc != phc {
                    return Some(false);
                }
                Some(self.scalars(gl, false, pl, false)? && self.scalars(gh, false, ph, false)?)
            }
            // `(a, b)` reads as a tuple or an open interval.
            (
                A::Tuple(t),
                A::Interval {
                    lo,
                    hi,
                    lo_closed: false,
                    hi_closed: false,
                },
            )
            | (
                A::Interval {
                    lo,
                    hi,
                    lo_closed: false,
                    hi_closed: false,
                },
                A::Tuple(t),
            ) if t.len() == 2 => {
                let ends = [lo, hi];
                let mut all = true;
                for (e, a) in ends.iter().zip(t) {
                    let A::Scalar { expr, .. } = a else {
                        return Some(false);
                    };
                    all &= self.scalars(e, false, expr, false)?;
                }
                Some(all)
            }
            (A::Matrix(a), A::Matrix(b)) => {
                if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.len() != y.len()) {
                    return Some(false);
                }
                if a.iter().map(Vec::len).sum::<usize>() > MAX_ELEMENTS {
                    return None;
                }
                for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                    if !self.scalars(x, false, y, false)? {
                        return Some(false);
                    }
                }
                Some(true)
            }
            (A::Empty, A::Empty) => Some(true),
            (A::Empty, A::Set(x)) | (A::Set(x), A::Empty) => Some(x.is_empty()),
            _ => Some(false),
        }
    }

    fn in_order(&self, a: &[Answer], b: &[Answer]) -> Option<bool> {
        if a.len() != b.len() {
            return Some(false);
        }
        if a.len() > MAX_ELEMENTS {
            return None;
        }
        let mut unknown = false;
        for (x, y) in a.iter().zip(b) {
            match self.answers(x, y) {
                Some(false) => return Some(false),
                None => unknown = true,
                Some(true) => {}
            }
        }
        if unknown {
            None
        } else {
            Some(true)
        }
    }

    /// Order-free: a perfect matching between equal elements (Kuhn's augmenting paths).
    fn unordered(&self, a: &[Answer], b: &[Answer]) -> Option<bool> {
        if a.len() != b.len() {
            return Some(false);
        }
        let n = a.len();
        if n > MAX_ELEMENTS {
            return None;
        }
        let eq: Vec<Vec<bool>> = a
            .iter()
            .map(|x| b.iter().map(|y| self.answers(x, y) == Some(true)).collect())
            .collect();
        let mut match_of_b: Vec<Option<usize>> = vec![None; n];
        fn augment(
            i: usize,
            eq: &[Vec<bool>],
            seen: &mut [bool],
            match_of_b: &mut [Option<usize>],
        ) -> bool {
            let Some(row) = eq.get(i) else { return false };
            for (j, &ok) in row.iter().enumerate() {
                if !ok || seen.get(j).copied().unwrap_or(true) {
                    continue;
                }
                if let Some(s) = seen.get_mut(j) {
                    *s = true;
                }
                let current = match_of_b.get(j).copied().flatten();
                if current.is_none_or(|k| augment(k, eq, seen, match_of_b)) {
                    if let Some(m) = match_of_b.get_mut(j) {
                        *m = Some(i);
                    }
                    return true;
                }
            }
            false
        }
        for i in 0..n {
            let mut seen = vec![false; n];
            if !augment(i, &eq, &mut seen, &mut match_of_b) {
                return Some(false);
            }
        }
        Some(true)
    }

    fn relations(&self, gp: &[Answer], go: &[Rel], pp: &[Answer], po: &[Rel]) -> Option<bool> {
        // Both assignments: same variable, same value (`x = 5` ≠ `y = 5`).
        if is_assignment(gp, go) && is_assignment(pp, po) {
            return Some(
                self.answers(gp.first()?, pp.first()?)? && self.answers(gp.last()?, pp.last()?)?,
            );
        }
        if let ([gl, gr], [gop], [pl, pr], [pop]) = (gp, go, pp, po) {
            let side = |a: &Answer| match a {
                Answer::Scalar { expr, .. } => Some(expr.clone()),
                _ => None,
            };
            // Sides that are not all scalars (`\text{…} = 0`, `x \in [1, 2]`) are compared
            // side by side below.
            if let (Some(gl), Some(gr), Some(pl), Some(pr)) =
                (side(gl), side(gr), side(pl), side(pr))
            {
                return self.same_relation(gl, gr, *gop, pl, pr, *pop);
            }
        }
        // Chains (`1 < x < 2`) and non-scalar sides: side by side, or mirrored with flipped
        // relations.
        if gp.len() != pp.len() {
            return Some(false);
        }
        if go == po {
            return self.in_order(gp, pp);
        }
        let flipped: Vec<Rel> = po.iter().rev().map(|o| flip(*o)).collect();
        if *go == flipped[..] {
            let mirrored: Vec<Answer> = pp.iter().rev().cloned().collect();
            return self.in_order(gp, &mirrored);
        }
        Some(false)
    }

    /// `gl gop gr` against `pl pop pr`: the same relation when `gl − gr = c·(pl − pr)` for a
    /// constant `c` of the right sign.
    fn same_relation(
        &self,
        gl: Expr,
        gr: Expr,
        gop: Rel,
        pl: Expr,
        pr: Expr,
        pop: Rel,
    ) -> Option<bool> {
        let dg = Expr::Add(vec![gl, Expr::Neg(Box::new(gr))]);
        let dp = Expr::Add(vec![pl, Expr::Neg(Box::new(pr))]);
        // The sign the constant factor must have: any for `=`/`≠`, positive for the same
        // inequality, negative for the flipped one (`a < b` ⇔ `b > a`).
        let sign = match (&gop, &pop) {
            (Rel::Eq, Rel::Eq) | (Rel::Ne, Rel::Ne) | (Rel::Approx, Rel::Approx) => 0,
            (a, b) if a == b => 1,
            (a, b) if flip(*a) == *b => -1,
            _ => return Some(false),
        };
        self.proportional(&dg, &dp, sign)
    }

    /// Whether `a = c·b` for one constant `c ≠ 0` (with `c`'s sign fixed unless `sign == 0`),
    /// checked at the sample points.
    fn proportional(&self, a: &Expr, b: &Expr, sign: i8) -> Option<bool> {
        let vars = symbols_of(&[a, b]);
        let mut ratio: Option<Val> = None;
        let mut agree = 0;
        for k in 0..self.opts.sample_points {
            let env = env_at(&vars, k);
            let (Some(x), Some(y)) = (a.eval(&env), b.eval(&env)) else {
                continue;
            };
            let zero = |v: Val| values_equal(v, Val::Exact(Rational::ZERO), self.opts.rel_tol);
            match (zero(x), zero(y)) {
                (true, true) => {
                    agree += 1;
                    continue;
                }
                (true, false) | (false, true) => return Some(false),
                _ => {}
            }
            let r = match (x, y) {
                (Val::Exact(p), Val::Exact(q)) => p.checked_div(q).map(Val::Exact),
                _ => None,
            }
            .unwrap_or_else(|| Val::Approx(x.approx().div(y.approx())));
            match ratio {
                None => ratio = Some(r),
                Some(r0) if !values_equal(r0, r, self.opts.rel_tol) => return Some(false),
                _ => {}
            }
            agree += 1;
        }
        if agree < self.opts.min_agreeing_points.min(self.opts.sample_points) {
            return None;
        }
        let Some(r) = ratio else { return Some(true) };
        let z = r.approx();
        if z.im.abs() > 1e-9 * z.abs() {
            return Some(sign == 0);
        }
        Some(match sign {
            1 => z.re > 0.0,
            -1 => z.re < 0.0,
            _ => true,
        })
    }

    /// Whether `lit` (a decimal literal of value `v`) with at least `float_rounding` places is
    /// `other` correctly rounded to its own places: `0.0011905` for `1/840 = 0.00119047…` (two
    /// roundings to 6 places would disagree on the tie).
    fn correctly_rounded(&self, lit: &Expr, v: Val, other: Val) -> bool {
        let Some(k) = lit
            .decimal_places()
            .filter(|&k| k >= self.opts.float_rounding)
        else {
            return false;
        };
        let half_ulp = 0.5 * 10f64.powi(-(k.min(300) as i32));
        let (x, y) = (v.approx(), other.approx());
        y.im.abs() <= 1e-12 && (x.re - y.re).abs() <= half_ulp * (1.0 + 1e-9)
    }

    /// Two scalars: exact where possible, rounded when either is a decimal literal, sampled at
    /// points when variables appear; `%` on one side tries both readings (`50\%` = 50 = 0.5).
    pub fn scalars(&self, g: &Expr, g_pct: bool, p: &Expr, p_pct: bool) -> Option<bool> {
        match (g.infinity_sign(), p.infinity_sign()) {
            (Some(a), Some(b)) => return Some(a == b),
            (Some(_), None) | (None, Some(_)) => return Some(false),
            _ => {}
        }
        let vars = symbols_of(&[g, p]);
        if vars.is_empty() {
            let (gv, pv) = match (g.eval(&[]), p.eval(&[])) {
                (Some(a), Some(b)) => (a, b),
                // Too large to evaluate (`2^{2005}`): the same tree is the same value.
                (None, None) => return (g == p).then_some(true),
                _ => return None,
            };
            let rounded = g.is_decimal_literal() || p.is_decimal_literal();
            let readings = |v: Val, pct: bool, other: bool| {
                let mut r = vec![v];
                if pct && !other {
                    let hundred = Val::Exact(Rational::int(100));
                    let scaled = match v {
                        Val::Exact(q) => q.checked_div(Rational::int(100)).map(Val::Exact),
                        Val::Approx(_) => None,
                    };
                    r.push(scaled.unwrap_or_else(|| Val::Approx(v.approx().div(hundred.approx()))));
                }
                r
            };
            let gs = readings(gv, g_pct, p_pct);
            let ps = readings(pv, p_pct, g_pct);
            let eq = |a: Val, b: Val| {
                if rounded {
                    values_equal_rounded(a, b, self.opts.float_rounding)
                        || self.correctly_rounded(g, a, b)
                        || self.correctly_rounded(p, b, a)
                } else {
                    values_equal(a, b, self.opts.rel_tol)
                }
            };
            return Some(gs.iter().any(|&a| ps.iter().any(|&b| eq(a, b))));
        }
        let mut agree = 0;
        for k in 0..self.opts.sample_points {
            let env = env_at(&vars, k);
            // A point outside one side's domain (division by zero, log of 0) is skipped.
            if let (Some(a), Some(b)) = (g.eval(&env), p.eval(&env)) {
                if !values_equal(a, b, self.opts.rel_tol) {
                    return Some(false);
                }
                agree += 1;
            }
        }
        (agree >= self.opts.min_agreeing_points.min(self.opts.sample_points)).then_some(true)
    }
}

/// The lowercase letters of a symbol or a product of symbols (`C·D` → `cd`), else `None`.
fn letters_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Sym(s) => Some(s.to_lowercase()),
        Expr::E => Some("e".into()),
        Expr::I => Some("i".into()),
        Expr::Mul(xs) => xs.iter().map(letters_of).collect(),
        _ => None,
    }
}

fn symbols_of(es: &[&Expr]) -> Vec<String> {
    let mut vars = Vec::new();
    for e in es {
        e.symbols(&mut vars);
    }
    vars.sort();
    vars
}

fn env_at(vars: &[String], point: usize) -> Vec<(String, Val)> {
    vars.iter()
        .enumerate()
        .map(|(j, v)| (v.clone(), Val::Exact(sample_value(j, point))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_points_are_distinct_nonzero_and_fixed() {
        let pts: Vec<Rational> = (0..8).map(|k| sample_value(0, k)).collect();
        assert!(pts.iter().all(|q| !q.is_zero()));
        let mut dedup = pts.clone();
        dedup.sort();
        dedup.dedup();
        assert!(dedup.len() >= 7, "{pts:?}");
        assert_ne!(sample_value(0, 0), sample_value(1, 0));
        assert_eq!(sample_value(3, 5), sample_value(3, 5));
    }
}
