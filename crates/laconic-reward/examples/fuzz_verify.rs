//! A long-running random-input harness for the verifier, for machines without cargo-fuzz (the
//! coverage-guided target is `fuzz/`). It mutates the agreement fixture's responses and golds
//! (byte flips, splices, LaTeX-piece insertions, truncations) and checks that judging never
//! panics and never takes pathologically long.
//!
//! ```text
//! cargo run --release -p laconic-reward --example fuzz_verify -- --seconds 600
//! ```
//!
//! Prints the number of inputs run and the slowest judgement; exits non-zero on a panic (the
//! offending input is printed first).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use laconic_reward::{verify, Judge, MathJudge};

/// Run random inputs through the verifier for a while.
#[derive(Debug, Parser)]
struct Args {
    /// How long to run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seed of the xorshift generator.
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Print inputs whose judgement takes longer than this many milliseconds.
    #[arg(long)]
    report_slower_than_ms: Option<u64>,
    /// Seed inputs (JSONL with `response` and `gold`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/verify_pairs/pairs.jsonl"))]
    fixture: PathBuf,
}

const PIECES: &[&str] = &[
    "\\frac{",
    "}",
    "{",
    "\\sqrt",
    "^",
    "_",
    "(",
    ")",
    "[",
    "]",
    ",",
    "\\left(",
    "\\right)",
    "\\text{",
    "x",
    "=",
    "<",
    "\\pi",
    "\\infty",
    "!",
    "\\%",
    "\\cup",
    "\\{",
    "\\}",
    "|",
    ".",
    "-",
    "\\pm",
    "\\begin{pmatrix}",
    "\\end{pmatrix}",
    "&",
    "\\\\",
    "\\boxed{",
    "</think>",
    "<think>",
    "####",
    " ",
    "9999999999999999999999999999999999999999",
    "e9",
    "\\binom",
    "\\log_",
    "\\sin",
    "10^{99}",
    "{,}",
    "\\!",
    "π",
    "é",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut XorShift, seeds: &[String], s: &str) -> String {
    let mut b: Vec<char> = s.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(5) {
            0 if !b.is_empty() => {
                let k = rng.below(b.len());
                b[k] = char::from_u32((rng.next() % 0x250) as u32).unwrap_or('?');
            }
            1 => b
                .splice(at..at, PIECES[rng.below(PIECES.len())].chars())
                .for_each(drop),
            2 => b.truncate(at),
            3 => {
                let other: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
                let from = rng.below(other.len());
                b.splice(at..at, other[from..].iter().take(40).copied())
                    .for_each(drop);
            }
            _ => {
                let k = rng.below(b.len() + 1);
                b.drain(at.min(k)..at.max(k));
            }
        }
    }
    b.into_iter().collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.fixture)
        .with_context(|| format!("failed to read `{}`", args.fixture.display()))?;
    let mut seeds = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("`{}` line {}", args.fixture.display(), i + 1))?;
        for key in ["response", "gold"] {
            if let Some(s) = v.get(key).and_then(|s| s.as_str()) {
                seeds.push(s.to_string());
            }
        }
    }
    let judge = MathJudge::default();
    let mut rng = XorShift(args.seed | 1);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let (mut runs, mut slowest) = (0u64, Duration::ZERO);
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let (i, j) = (rng.below(seeds.len()), rng.below(seeds.len()));
            let a = mutate(&mut rng, &seeds, &seeds[i]);
            let b = mutate(&mut rng, &seeds, &seeds[j]);
            let t = Instant::now();
            let r = std::panic::catch_unwind(|| {
                std::hint::black_box(verify(&a, &b));
                std::hint::black_box(judge.judge(&a, &b));
            });
            let took = t.elapsed();
            slowest = slowest.max(took);
            if args
                .report_slower_than_ms
                .is_some_and(|ms| took > Duration::from_millis(ms))
            {
                println!("slow ({took:?}): pred={a:?} gold={b:?}");
            }
            if r.is_err() {
                eprintln!("panic on pred={a:?} gold={b:?}");
                std::process::exit(1);
            }
            runs += 1;
        }
    }
    println!(
        "fuzz_verify: {runs} inputs in {} s, no panic, slowest judgement {slowest:?}",
        args.seconds
    );
    Ok(())
}
