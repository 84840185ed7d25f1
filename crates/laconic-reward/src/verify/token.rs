//! Tokens of the answer lexer, and the tables from LaTeX command names and bare words to them.

/// A named function applied with `\name` (or the bare word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `\sin`.
    Sin,
    /// `\cos`.
    Cos,
    /// `\tan`.
    Tan,
    /// `\cot`.
    Cot,
    /// `\sec`.
    Sec,
    /// `\csc`.
    Csc,
    /// `\arcsin`.
    Asin,
    /// `\arccos`.
    Acos,
    /// `\arctan`.
    Atan,
    /// `\sinh`.
    Sinh,
    /// `\cosh`.
    Cosh,
    /// `\tanh`.
    Tanh,
    /// `\ln`, and `\log` without a base (natural log, as SymPy reads it).
    Ln,
    /// `\exp`.
    Exp,
}

/// A relation symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    /// `=`.
    Eq,
    /// `\ne`.
    Ne,
    /// `<`.
    Lt,
    /// `\le`.
    Le,
    /// `>`.
    Gt,
    /// `\ge`.
    Ge,
    /// `\in` (membership; read like `=` when one side is a set or interval).
    In,
    /// `\approx`.
    Approx,
}

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A number literal, digits and at most one `.` (thousands separators removed), with a power
    /// of ten from scientific notation (`1.5e3` → (`1.5`, 3)).
    Num(String, i32),
    /// A single-letter identifier.
    Ident(char),
    /// A run of letters (`xy`, `dollars`), or the text of `\text{…}` when `from_text`.
    Word(String, bool),
    /// A Greek letter or other named symbol (`\theta`).
    Greek(String),
    /// `\frac` and friends.
    Frac,
    /// `\sqrt` / `√`.
    Sqrt,
    /// `\binom`.
    Binom,
    /// `\pi` / `π`.
    Pi,
    /// `\infty` / `∞`.
    Infty,
    /// `\emptyset`.
    Empty,
    /// `\cup`.
    Cup,
    /// A function name.
    Func(Func),
    /// `\log` (base may follow as a subscript).
    Log,
    /// A relation.
    Rel(Rel),
    /// `(` / `\langle`.
    LParen,
    /// `)` / `\rangle`.
    RParen,
    /// `[`.
    LBrack,
    /// `]`.
    RBrack,
    /// `{` (a LaTeX group).
    LBrace,
    /// `}`.
    RBrace,
    /// `\{` (a set).
    LSet,
    /// `\}`.
    RSet,
    /// `,`, `;`, and the words `and` / `or`.
    Comma,
    /// `+`.
    Plus,
    /// `-`.
    Minus,
    /// `\pm`.
    PlusMinus,
    /// `*`, `\cdot`, `\times`.
    Star,
    /// `/`, `\div`.
    Slash,
    /// `^`.
    Caret,
    /// `_`.
    Underscore,
    /// `!`.
    Bang,
    /// `|`, `\vert`.
    Pipe,
    /// `%`, `\%`, `percent`.
    Percent,
    /// `&` (matrix column separator).
    Amp,
    /// `\\` (matrix row separator).
    RowSep,
    /// `\begin{name}`.
    Begin(String),
    /// `\end{name}`.
    End(String),
    /// `\lfloor`.
    LFloor,
    /// `\rfloor`.
    RFloor,
    /// `\lceil`.
    LCeil,
    /// `\rceil`.
    RCeil,
}

/// A token and whether whitespace preceded it (single-letter units need it).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Whitespace (or removed spacing) came right before it.
    pub space: bool,
}

pub(super) fn command_token(name: &str) -> Option<Option<Tok>> {
    // Outer `None`: unknown command. Inner `None`: a command that only formats (skipped).
    let t = match name {
        "frac" | "dfrac" | "tfrac" | "cfrac" => Tok::Frac,
        "sqrt" => Tok::Sqrt,
        "binom" | "dbinom" | "tbinom" | "choose" => Tok::Binom,
        "pi" => Tok::Pi,
        "infty" | "infin" => Tok::Infty,
        "emptyset" | "varnothing" => Tok::Empty,
        "cup" => Tok::Cup,
        "cdot" | "times" | "ast" => Tok::Star,
        "div" => Tok::Slash,
        "pm" | "mp" => Tok::PlusMinus,
        "le" | "leq" | "leqslant" => Tok::Rel(Rel::Le),
        "ge" | "geq" | "geqslant" => Tok::Rel(Rel::Ge),
        "lt" => Tok::Rel(Rel::Lt),
        "gt" => Tok::Rel(Rel::Gt),
        "ne" | "neq" => Tok::Rel(Rel::Ne),
        "approx" | "simeq" | "thickapprox" => Tok::Rel(Rel::Approx),
        "in" => Tok::Rel(Rel::In),
        "lfloor" => Tok::LFloor,
        "rfloor" => Tok::RFloor,
        "lceil" => Tok::LCeil,
        "rceil" => Tok::RCeil,
        "vert" | "lvert" | "rvert" | "mid" => Tok::Pipe,
        "langle" => Tok::LParen,
        "rangle" => Tok::RParen,
        "lbrace" => Tok::LSet,
        "rbrace" => Tok::RSet,
        "lbrack" => Tok::LBrack,
        "rbrack" => Tok::RBrack,
        "imath" => Tok::Ident('i'),
        "sin" => Tok::Func(Func::Sin),
        "cos" => Tok::Func(Func::Cos),
        "tan" => Tok::Func(Func::Tan),
        "cot" => Tok::Func(Func::Cot),
        "sec" => Tok::Func(Func::Sec),
        "csc" => Tok::Func(Func::Csc),
        "arcsin" => Tok::Func(Func::Asin),
        "arccos" => Tok::Func(Func::Acos),
        "arctan" => Tok::Func(Func::Atan),
        "sinh" => Tok::Func(Func::Sinh),
        "cosh" => Tok::Func(Func::Cosh),
        "tanh" => Tok::Func(Func::Tanh),
        "ln" => Tok::Func(Func::Ln),
        "exp" => Tok::Func(Func::Exp),
        "log" | "lg" => Tok::Log,
        "alpha" | "beta" | "gamma" | "delta" | "epsilon" | "varepsilon" | "zeta" | "eta"
        | "theta" | "vartheta" | "iota" | "kappa" | "lambda" | "mu" | "nu" | "xi" | "rho"
        | "varrho" | "sigma" | "tau" | "upsilon" | "phi" | "varphi" | "chi" | "psi" | "omega"
        | "Gamma" | "Delta" | "Theta" | "Lambda" | "Xi" | "Pi" | "Sigma" | "Upsilon" | "Phi"
        | "Psi" | "Omega" | "ell" => Tok::Greek(name.to_string()),
        "left" | "right" | "big" | "Big" | "bigg" | "Bigg" | "bigl" | "bigr" | "Bigl" | "Bigr"
        | "biggl" | "biggr" | "Biggl" | "Biggr" | "middle" | "quad" | "qquad" | "displaystyle"
        | "textstyle" | "scriptstyle" | "limits" | "nolimits" | "circ" | "degree" | "boxed"
        | "fbox" | "strut" | "mathstrut" | "hfill" | "dollar" | "thinspace" | "enspace"
        | "medspace" | "thickspace" | "negthinspace" | "hspace" | "tag" | "nonumber" => {
            return Some(None)
        }
        _ => return None,
    };
    Some(Some(t))
}

pub(super) fn word_token(w: &str) -> Tok {
    match w {
        "sqrt" => Tok::Sqrt,
        "pi" => Tok::Pi,
        "inf" | "infty" | "infinity" => Tok::Infty,
        "and" | "or" => Tok::Comma,
        "percent" | "percentage" | "pct" => Tok::Percent,
        "sin" => Tok::Func(Func::Sin),
        "cos" => Tok::Func(Func::Cos),
        "tan" => Tok::Func(Func::Tan),
        "ln" => Tok::Func(Func::Ln),
        "log" => Tok::Log,
        "exp" => Tok::Func(Func::Exp),
        _ => Tok::Word(w.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        assert_eq!(command_token("dfrac"), Some(Some(Tok::Frac)));
        assert_eq!(command_token("left"), Some(None));
        assert_eq!(command_token("nonsense"), None);
        assert_eq!(word_token("and"), Tok::Comma);
        assert_eq!(word_token("xy"), Tok::Word("xy".into(), false));
    }
}
