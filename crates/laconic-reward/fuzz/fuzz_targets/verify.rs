//! Fuzz the answer verifier, the extractor and the math judge: they must never panic.
//!
//! The input is split at the first NUL byte into a prediction and a gold answer.

#![no_main]

use laconic_reward::{extract_answer, gold_answer, verify, ExtractOptions, Judge, MathJudge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (pred, gold) = s.split_once('\0').unwrap_or((s, s));
    let _ = verify(pred, gold);
    let _ = gold_answer(gold);
    let phrases = ExtractOptions {
        phrases: true,
        ..ExtractOptions::default()
    };
    let _ = extract_answer(pred, &phrases);
    let _ = MathJudge::default().judge(pred, gold);
});
