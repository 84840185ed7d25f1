//! The `laconic-reward` JSONL scorer end to end: grouping, flags, TOML, and errors that name
//! the file and line.
#![cfg(feature = "cli")]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("laconic-reward-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_laconic-reward"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The scorer may exit (bad flags) before reading stdin: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const ROLLOUTS: &str = r#####"{"group": "a", "response": "\\boxed{18}", "answer": "x\n#### 18", "length": 10}
{"group": "b", "response": "\\boxed{3}", "answer": "3", "length": 50}
{"group": "a", "response": "\\boxed{18}", "answer": "#### 18", "length": 30}
{"group": "a", "response": "<think>\\boxed{18}", "answer": "18", "length": 40, "finish": "length", "id": 7}
"#####;

#[test]
fn groups_are_scored_together_and_fields_pass_through() {
    // Kimi over group a (lengths 10, 30, 40; the last is cut so incorrect):
    // L̃ = 0, 2/3, 1 → 1 + 0.4·0.5 = 1.2; 1 + 0.4·(0.5 − 2/3) ≈ 0.933333; min(0, −0.2) = −0.2.
    // Group b has one rollout: L̃ = 0.5 → 1.0.
    let out = run(&["--reward", "kimi", "--alpha", "0.4"], ROLLOUTS);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = lines(&out);
    let rewards: Vec<f64> = v.iter().map(|l| l["reward"].as_f64().unwrap()).collect();
    let expected = [1.2, 1.0, 0.933_333_3, -0.2];
    for (r, e) in rewards.iter().zip(expected) {
        assert!((r - e).abs() < 1e-5, "{rewards:?}");
    }
    assert_eq!(v[0]["extracted"], "18");
    assert_eq!(v[3]["correct"], serde_json::Value::Null);
    assert_eq!(v[3]["id"], 7);
}

#[test]
fn reward_from_toml_file() {
    let toml = temp_file("r.toml", "[reward]\nkind = \"truncation\"\nl_t = 20\n");
    let out = run(&["--reward-toml", toml.to_str().unwrap()], ROLLOUTS);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rewards: Vec<f64> = lines(&out)
        .iter()
        .map(|l| l["reward"].as_f64().unwrap())
        .collect();
    assert_eq!(rewards, [1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn broken_line_names_file_and_line() {
    let path = temp_file(
        "broken.jsonl",
        "{\"response\": \"\\\\boxed{1}\", \"answer\": \"1\"}\n{oops\n",
    );
    let out = run(&[path.to_str().unwrap()], "");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.jsonl") && err.contains("line 2"),
        "{err}"
    );
    let missing = run(&[], "{\"response\": \"x\"}\n");
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("<stdin>` line 1") && err.contains("answer"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_errors() {
    let out = run(&["--reward", "truncation", "--alpha", "0.3"], ROLLOUTS);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown field `alpha`"),
        "{err}"
    );
    let out = run(&["--reward", "nope"], ROLLOUTS);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("expected one of"),
        "{err}"
    );
}

/// Issue 32: `--alpha nan` said "invalid type: null", naming no flag; invalid UTF-8 in the input
/// gave no line number.
#[test]
fn non_finite_flags_and_bad_bytes_are_named() {
    for flag in ["--alpha", "--beta", "--percentile"] {
        for value in ["nan", "inf", "-inf"] {
            let out = run(&["--reward", "kimi", &format!("{flag}={value}")], ROLLOUTS);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains(flag) && err.contains("finite"),
                "{flag} {value}: {err}"
            );
        }
    }
    let mut bytes = ROLLOUTS.as_bytes().to_vec();
    bytes.extend_from_slice(b"{\"response\": \"\xff\", \"answer\": \"1\"}\n");
    let dir = std::env::temp_dir().join(format!("laconic-reward-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad-utf8.jsonl");
    std::fs::write(&path, bytes).unwrap();
    let out = run(&[path.to_str().unwrap()], "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("bad-utf8.jsonl` line 5")
            && err.contains("invalid UTF-8"),
        "{err}"
    );
}

#[test]
fn free_form_extraction_from_the_command_line() {
    let unboxed = r#"{"group": "a", "response": "We add 3 and 4. So the answer is $7$.", "answer": "7", "length": 10}
{"group": "a", "response": "Cut off after 2 + 2 = 4 and", "answer": "7", "length": 10}
"#;
    let strict = lines(&run(&["--reward", "correctness"], unboxed));
    assert_eq!(strict[0]["correct"], serde_json::Value::Null);
    let free = run(
        &["--reward", "correctness", "--extract", "math-verify"],
        unboxed,
    );
    let free = lines(&free);
    assert_eq!(free[0]["extracted"], "7");
    assert_eq!(free[0]["correct"], true);
    assert_eq!(free[1]["extracted"], "4");
    assert_eq!(free[1]["correct"], false);
    // The `[reward]` table's `extract` applies unless the flag says otherwise.
    let toml = temp_file(
        "free.toml",
        "[reward]\nkind = \"correctness\"\nextract = \"math_verify\"\n",
    );
    let from_table = lines(&run(&["--reward-toml", toml.to_str().unwrap()], unboxed));
    assert_eq!(from_table[0]["correct"], true);
    let overridden = run(
        &[
            "--reward-toml",
            toml.to_str().unwrap(),
            "--extract",
            "boxed",
        ],
        unboxed,
    );
    assert_eq!(lines(&overridden)[0]["correct"], serde_json::Value::Null);
    let out = run(&["--extract", "regex"], unboxed);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown extraction mode `regex`"),
        "{err}"
    );
}
