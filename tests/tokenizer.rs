//! The shipped Qwen3 tokenizer and the Rust chat template against HF transformers' `apply_chat_template`
//! (`tests/fixtures/chat/cases.json`, made by `tests/fixtures/make_chat.py`).

use std::path::Path;

use laconic::model::{apply_chat_template, Message, Tokenizer};
use sha2::{Digest, Sha256};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn qwen3_tokenizer() -> Tokenizer {
    Tokenizer::from_file(root().join("assets/qwen3/tokenizer.json")).unwrap()
}

#[test]
fn shipped_tokenizer_is_qwen3s() {
    // sha256 of Qwen/Qwen3-0.6B's tokenizer.json (assets/qwen3/README.md gives the source).
    let bytes = std::fs::read(root().join("assets/qwen3/tokenizer.json")).unwrap();
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"
    );
}

#[test]
fn special_tokens_and_round_trip() {
    let tok = qwen3_tokenizer();
    assert_eq!(tok.stop_ids(), vec![151645, 151643]);
    assert_eq!(tok.token_id("<think>"), Some(151667));
    assert_eq!(tok.token_id("</think>"), Some(151668));
    let text = "Let's think step by step: 12 × 7 = 84 — 你好!";
    assert_eq!(tok.decode(&tok.encode(text).unwrap()).unwrap(), text);
}

#[test]
fn chat_template_matches_transformers() {
    let tok = qwen3_tokenizer();
    let text = std::fs::read_to_string(root().join("tests/fixtures/chat/cases.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 9);
    for (i, case) in cases.iter().enumerate() {
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let rendered = apply_chat_template(
            &messages,
            case["add_generation_prompt"].as_bool().unwrap(),
            case["enable_thinking"].as_bool().unwrap(),
        );
        assert_eq!(rendered, case["rendered"].as_str().unwrap(), "case {i}");
        let ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(tok.encode(&rendered).unwrap(), ids, "case {i}");
    }
}

#[test]
fn malformed_tokenizer_file_is_named() {
    let err = Tokenizer::from_bytes(b"{not json", "broken/tokenizer.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken/tokenizer.json"), "{err}");
}
