//! Agreement with the Python reference `math-verify` on the committed fixture
//! (`tests/fixtures/verify_pairs/pairs.jsonl`, made by `tests/fixtures/make_verify_pairs.py`).
//! Every remaining disagreement is listed and explained in `docs/reward-disagreements.md`.
//!
//! `cargo test -p laconic-reward --release --test agreement -- --nocapture` prints them.

use laconic_reward::{ExtractMode, ExtractOptions, Judge, MathJudge};

#[derive(serde::Deserialize)]
struct Pair {
    response: String,
    gold: String,
    mv: bool,
    rewrite: String,
    intent: String,
}

fn pairs() -> Vec<Pair> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/verify_pairs/pairs.jsonl"
    );
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1)))
        .collect()
}

#[test]
fn agrees_with_math_verify_on_at_least_98_percent() {
    let judge = MathJudge::default();
    let pairs = pairs();
    assert!(pairs.len() > 2000, "fixture too small: {}", pairs.len());
    let mut disagreements = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        let v = judge.judge(&p.response, &p.gold);
        let ours = v.correct == Some(true);
        if ours != p.mv {
            disagreements.push((i + 1, p, v));
        }
    }
    for (line, p, v) in &disagreements {
        println!(
            "line {line}: rewrite={} intent={} gold={:?} extracted={:?} ours={:?} math-verify={}",
            p.rewrite, p.intent, p.gold, v.extracted, v.correct, p.mv
        );
    }
    let agree = 1.0 - disagreements.len() as f64 / pairs.len() as f64;
    println!(
        "agreement {:.2}% ({} pairs, {} disagreements)",
        100.0 * agree,
        pairs.len(),
        disagreements.len()
    );
    assert!(agree >= 0.98, "agreement {agree:.4} < 0.98");
}

/// A free-form pair (`tests/fixtures/free_form/pairs.jsonl`, made by
/// `tests/fixtures/make_free_form_pairs.py`): an unboxed response and math-verify's verdict.
#[derive(serde::Deserialize)]
struct FreeFormPair {
    response: String,
    gold: String,
    mv: bool,
    template: String,
}

fn free_form_judge() -> MathJudge {
    MathJudge {
        extract: ExtractOptions {
            mode: ExtractMode::MathVerify,
            ..ExtractOptions::default()
        },
        ..MathJudge::default()
    }
}

#[test]
fn free_form_extraction_agrees_with_math_verify_on_at_least_95_percent() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/free_form/pairs.jsonl"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let pairs: Vec<FreeFormPair> = text
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1)))
        .collect();
    assert!(pairs.len() >= 1000, "fixture too small: {}", pairs.len());
    let (judge, strict) = (free_form_judge(), MathJudge::default());
    let mut disagreements = 0;
    let mut strict_agree = 0;
    for (i, p) in pairs.iter().enumerate() {
        let v = judge.judge(&p.response, &p.gold);
        if v.is_correct() != p.mv {
            disagreements += 1;
            println!(
                "line {}: template={} gold={:?} extracted={:?} ours={:?} math-verify={}",
                i + 1,
                p.template,
                p.gold,
                v.extracted,
                v.correct,
                p.mv
            );
        }
        strict_agree += usize::from(strict.judge(&p.response, &p.gold).is_correct() == p.mv);
    }
    let agree = 1.0 - disagreements as f64 / pairs.len() as f64;
    println!(
        "free-form agreement {:.2}% ({} pairs); the strict boxed mode agrees on {:.2}%",
        100.0 * agree,
        pairs.len(),
        100.0 * strict_agree as f64 / pairs.len() as f64
    );
    assert!(agree >= 0.95, "free-form agreement {agree:.4} < 0.95");
}

#[test]
fn free_form_mode_keeps_the_boxed_agreement() {
    let judge = free_form_judge();
    let pairs = pairs();
    let agree = pairs
        .iter()
        .filter(|p| judge.judge(&p.response, &p.gold).is_correct() == p.mv)
        .count() as f64
        / pairs.len() as f64;
    println!("math_verify mode on the boxed set: {:.2}%", 100.0 * agree);
    assert!(agree >= 0.99, "agreement {agree:.4} < 0.99");
}
