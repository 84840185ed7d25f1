//! Property tests: the verifier, the extractor and every reward shaper are total.
//!
//! Arbitrary strings and LaTeX-shaped strings (built from the tokens the parser cares about:
//! fractions, roots, brackets, `\text`, `\left`, think tags, long digit runs …) never panic and
//! come back quickly; equal numbers always verify; rewards are finite, one per rollout.
//! `PROPTEST_CASES` raises the case count for a longer run (default below).

use std::time::{Duration, Instant};

use laconic_reward::config::REWARD_KINDS;
use laconic_reward::{
    extract_answer, gold_answer, verify, ExtractMode, ExtractOptions, Finish, GroupView, Judge,
    MathJudge, RewardConfig,
};
use proptest::prelude::*;

/// A catastrophic-blowup detector, not a timing assertion: a judgement takes microseconds, so a
/// call over this bound means exponential work somewhere.
const BLOWUP: Duration = Duration::from_secs(2);

const PIECES: &[&str] = &[
    "\\frac{",
    "\\dfrac",
    "\\frac12",
    "}",
    "{",
    "\\sqrt",
    "\\sqrt[3]{",
    "^",
    "_",
    "(",
    ")",
    "[",
    "]",
    ",",
    ";",
    "\\left(",
    "\\right)",
    "\\left[",
    "\\right.",
    "\\text{",
    "\\text{ cm}",
    "\\mathrm{",
    "x",
    "y",
    "i",
    "e",
    "=",
    "<",
    "\\le",
    "\\pi",
    "\\infty",
    "!",
    "%",
    "\\%",
    "\\cup",
    "\\{",
    "\\}",
    "|",
    ".",
    "-",
    "+",
    "\\pm",
    "*",
    "/",
    "\\cdot",
    "\\times",
    "\\begin{pmatrix}",
    "\\end{pmatrix}",
    "&",
    "\\\\",
    "\\boxed{",
    "\\fbox",
    "</think>",
    "<think>",
    "####",
    " ",
    "  ",
    "0",
    "1",
    "7",
    "42",
    "1,000",
    "3.14159",
    "123456789012345678901234567890123456789",
    "e3",
    "E-7",
    "\\binom",
    "\\log_",
    "\\ln",
    "\\sin",
    "\\cos^2",
    "\\$",
    "$",
    "^\\circ",
    "\\,",
    "\\!",
    "{,}",
    "dollars",
    "Evelyn",
    "and",
    "\\lfloor",
    "\\rfloor",
    "\\lceil",
    "\\rceil",
    "\\emptyset",
    "\\in",
    "\\neq",
    "é",
    "∞",
    "π",
    "√",
    "−",
    "\\unknown",
    "\\",
    "\\\\!",
    "10^{400}",
    "0.333333",
    "99!",
    "\\binom{1000}{500}",
];

fn latexish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..60).prop_map(|v| v.concat())
}

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(t.elapsed() < BLOWUP, "took {:?}", t.elapsed());
    r
}

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig::with_cases(n)
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn arbitrary_strings_are_total(a in any::<String>(), b in any::<String>()) {
        timed(|| verify(&a, &b));
        timed(|| extract_answer(&a, &ExtractOptions { phrases: true, ..ExtractOptions::default() }));
        timed(|| extract_answer(&a, &ExtractOptions { mode: ExtractMode::MathVerify, ..ExtractOptions::default() }));
        timed(|| gold_answer(&a));
        timed(|| MathJudge::default().judge(&a, &b));
    }

    #[test]
    fn latex_shaped_strings_are_total(a in latexish(), b in latexish()) {
        timed(|| verify(&a, &b));
        timed(|| verify(&a, &a));
        timed(|| MathJudge::default().judge(&format!("so \\boxed{{{a}}}"), &b));
        let free = ExtractOptions { mode: ExtractMode::MathVerify, ..ExtractOptions::default() };
        timed(|| extract_answer(&format!("The answer is ${a}$ or {b}."), &free));
    }

    #[test]
    fn a_string_verifies_against_itself_when_it_parses(a in latexish()) {
        // Re-spacing a string never makes it judged different from itself.
        let spaced = a.replace(' ', "  ").replace("\\frac", " \\frac ");
        prop_assert_ne!(verify(&spaced, &a), Some(false), "{:?}", spaced);
    }

    #[test]
    fn equal_numbers_verify(n in any::<i64>(), d in 1u32..1000) {
        let s = n.to_string();
        prop_assert_eq!(verify(&s, &s), Some(true));
        prop_assert_eq!(verify(&format!("{s}.0"), &s), Some(true));
        prop_assert_eq!(verify(&format!("\\frac{{{}}}{{{d}}}", i128::from(n) * i128::from(d)), &s), Some(true));
        prop_assert_eq!(verify(&format!("x = {s}"), &s), Some(true));
    }

    #[test]
    fn different_integers_do_not_verify(a in any::<i64>(), b in any::<i64>()) {
        prop_assume!(a != b);
        prop_assert_eq!(verify(&a.to_string(), &b.to_string()), Some(false));
    }

    #[test]
    fn rewards_are_finite_and_one_per_rollout(
        kind in prop::sample::select(REWARD_KINDS),
        rollouts in prop::collection::vec((any::<bool>(), 0usize..100_000, any::<bool>()), 0..32),
        target in prop::option::of(0.0f64..50_000.0),
    ) {
        let config: RewardConfig = toml::from_str(&format!("kind = \"{kind}\"")).unwrap();
        let mut group = GroupView::new(rollouts.iter().map(|&(c, l, cut)| {
            (c, l, if cut { Finish::Length } else { Finish::Stop })
        }));
        if let Some(t) = target {
            group = group.with_target_length(t);
        }
        let batch = config.score_batch(&[group.clone(), group.clone()]);
        prop_assert_eq!(batch.len(), 2);
        for scores in &batch {
            prop_assert_eq!(scores.len(), rollouts.len());
            for s in scores {
                prop_assert!(s.reward.is_finite());
                prop_assert!(!s.masked || s.reward == 0.0);
            }
        }
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    for (open, close) in [
        ("(", ")"),
        ("{", "}"),
        ("\\sqrt{", "}"),
        ("|", "|"),
        ("-", ""),
        ("\\frac{1}{", "}"),
    ] {
        let s = format!("{}1{}", open.repeat(5000), close.repeat(5000));
        let r = timed(|| verify(&s[..s.len().min(1990)], "1"));
        assert_ne!(r, Some(true), "{open}");
    }
    let chain = "2*".repeat(900) + "2";
    timed(|| verify(&chain, "1"));
    let divs = "1/".repeat(900) + "1";
    timed(|| verify(&divs, "1"));
    timed(|| verify(&("5".to_string() + &"!".repeat(900)), "1"));
    timed(|| verify("\\binom{100000000}{50000000}", "1"));
    timed(|| verify("2^{2^{2^{2^{2^{2^{2}}}}}}", "1"));
    timed(|| verify("10^{10^{10}}", "1"));
    let long_response = "\\boxed{".repeat(50_000) + &"}".repeat(50_000);
    timed(|| MathJudge::default().judge(&long_response, "1"));
}
