//! Agreement with the Python reference `math-verify` on the committed fixture
//! (`tests/fixtures/verify_pairs/pairs.jsonl`, made by `tests/fixtures/make_verify_pairs.py`).
//! Every remaining disagreement is listed and explained in `docs/reward-disagreements.md`.
//!
//! `cargo test -p laconic-reward --release --test agreement -- --nocapture` prints them.

use laconic_reward::{Judge, MathJudge};

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
