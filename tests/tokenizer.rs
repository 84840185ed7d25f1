//! The shipped Qwen3 tokenizer, and checkpoints' own chat templates rendered by laconic against HF
//! transformers' `apply_chat_template`: Qwen3's with token ids (`tests/fixtures/chat/cases.json`, made by
//! `tests/fixtures/make_chat.py`), and the templates of seven releases as text
//! (`tests/fixtures/chat/templates/`, made by `tests/fixtures/make_templates.py`).

use std::path::Path;

use laconic::model::{ChatTemplate, Message, Tokenizer};
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
    // The folder has Qwen3's template but no tokenizer_config.json: Qwen's two stop tokens.
    assert_eq!(tok.stop_ids(), vec![151645, 151643]);
    assert_eq!(tok.token_id("<think>"), Some(151667));
    assert_eq!(tok.token_id("</think>"), Some(151668));
    let text = "Let's think step by step: 12 × 7 = 84 — 你好!";
    assert_eq!(tok.decode(&tok.encode(text).unwrap()).unwrap(), text);
}

#[test]
fn chat_template_matches_transformers() {
    let tok = qwen3_tokenizer();
    let template = tok
        .chat_template()
        .expect("assets/qwen3 ships Qwen3's template");
    let text = std::fs::read_to_string(root().join("tests/fixtures/chat/cases.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 9);
    for (i, case) in cases.iter().enumerate() {
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let rendered = template
            .render(
                &messages,
                case["add_generation_prompt"].as_bool().unwrap(),
                case["enable_thinking"].as_bool().unwrap(),
            )
            .unwrap();
        assert_eq!(rendered, case["rendered"].as_str().unwrap(), "case {i}");
        let ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(tok.encode(&rendered).unwrap(), ids, "case {i}");
    }
}

/// Seven templates (Qwen3, Qwen2.5, DeepSeek-R1-Distill in its January and February releases,
/// Llama-3, Llama-3.1, SmolLM2), each with its `tokenizer_config.json`'s special tokens, render every
/// case as transformers does; a conversation a template refuses (`raise_exception`) is an error here
/// too. The fixtures pass `date_string = "26 Jul 2024"`, Llama-3.1's own default.
#[test]
fn checkpoint_templates_match_transformers() {
    let dir = root().join("tests/fixtures/chat/templates");
    let text = std::fs::read_to_string(dir.join("cases.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut families = std::collections::BTreeSet::new();
    for (i, case) in cases.iter().enumerate() {
        let family = case["family"].as_str().unwrap();
        families.insert(family.to_string());
        let template = ChatTemplate::from_file(dir.join(format!("{family}.json"))).unwrap();
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let rendered = template.render(
            &messages,
            case["add_generation_prompt"].as_bool().unwrap(),
            case["enable_thinking"].as_bool().unwrap_or(true),
        );
        match case["text"].as_str() {
            Some(expected) => assert_eq!(rendered.unwrap(), expected, "case {i} ({family})"),
            None => assert!(
                rendered.is_err(),
                "case {i} ({family}): transformers refused it"
            ),
        }
    }
    assert_eq!(families.len(), 7, "{families:?}");
}

#[test]
fn malformed_tokenizer_file_is_named() {
    let err = Tokenizer::from_bytes(b"{not json", "broken/tokenizer.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken/tokenizer.json"), "{err}");
}

/// A checkpoint folder carries its run's chat template: `Tokenizer::save` writes `tokenizer.json` and
/// the template with its special tokens as `tokenizer_config.json`, and the folder loads back rendering
/// every family's template as before (a LoRA checkpoint of a real model once lost it, so `eval` of the
/// checkpoint refused to render chat prompts).
#[test]
fn saved_tokenizer_keeps_its_chat_template() {
    let fixtures = root().join("tests/fixtures/chat/templates");
    let dir = std::env::temp_dir().join(format!("laconic-tokenizer-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let messages = [Message::system("Be brief."), Message::user("1+1?")];
    for family in ["qwen2_5", "llama3_1", "smollm2", "deepseek_r1_distill"] {
        let template = ChatTemplate::from_file(fixtures.join(format!("{family}.json"))).unwrap();
        let tok = qwen3_tokenizer().with_chat_template(template.clone());
        tok.save(&dir).unwrap();
        let loaded = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        let reloaded = loaded
            .chat_template()
            .expect("the folder carries the template");
        assert_eq!(
            reloaded.render(&messages, true, true).unwrap(),
            template.render(&messages, true, true).unwrap(),
            "{family}"
        );
        assert_eq!(reloaded.eos_token(), template.eos_token(), "{family}");
        assert_eq!(loaded.stop_ids(), tok.stop_ids(), "{family}");
        assert_eq!(
            loaded.encode("12 × 7").unwrap(),
            tok.encode("12 × 7").unwrap()
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
