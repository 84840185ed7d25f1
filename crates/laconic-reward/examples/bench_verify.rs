//! Judgements per second of laconic's math judge against the Python `math-verify`, on the
//! agreement fixture (`tests/fixtures/verify_pairs/pairs.jsonl`, ~3,700 response/gold pairs).
//!
//! ```text
//! cargo run --release -p laconic-reward --example bench_verify -- --python scratch/ref/bin/python
//! ```
//!
//! Prints, for laconic and (with `--python`) math-verify run by
//! `benches/reference/math_verify_bench.py` in the same invocation: judgements/s as mean ±
//! stdev over the repeats, and how many verdicts equal the fixture's recorded math-verify
//! verdicts (so a fast wrong judge cannot pass unnoticed); then `ratio` (>1 = laconic faster).
//! Takes ~1 s for laconic and ~30 s per repeat for math-verify on one CPU core.
//!
//! What the comparison leaves out: both run single-threaded (laconic's judge is `Send + Sync`
//! and scales over threads; math-verify's signal-based timeouts do not work off the main
//! thread); math-verify's time includes its per-call `signal.alarm` timeout guard, which is how
//! users run it; neither caches gold parses across rollouts.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use laconic_harness::mean_std;
use laconic_reward::{ExtractMode, ExtractOptions, Judge, MathJudge};
use serde::Deserialize;

/// Benchmark laconic's math judge (and optionally math-verify) on the agreement fixture.
#[derive(Debug, Parser)]
struct Args {
    /// The fixture (JSONL with `response`, `gold`, `mv`).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/verify_pairs/pairs.jsonl"))]
    fixture: PathBuf,
    /// Timed passes over the fixture (after one warm-up pass).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// A Python with math-verify installed: also run the reference script and print the ratio.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Timed passes for the Python reference.
    #[arg(long, default_value_t = 2)]
    python_repeats: usize,
    /// Extraction mode: `boxed`, or `math-verify` (with `--fixture …/free_form/pairs.jsonl`).
    #[arg(long, default_value = "boxed")]
    extract: ExtractMode,
}

#[derive(Debug, Deserialize)]
struct Pair {
    response: String,
    gold: String,
    mv: bool,
}

#[derive(Debug, Deserialize)]
struct Reference {
    judgements_per_s: f64,
    stdev: f64,
    pairs: usize,
    agree: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.fixture)
        .with_context(|| format!("failed to read `{}`", args.fixture.display()))?;
    let pairs: Vec<Pair> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("`{}` line {}", args.fixture.display(), i + 1))
        })
        .collect::<Result<_>>()?;
    let judge = MathJudge {
        extract: ExtractOptions {
            mode: args.extract,
            ..ExtractOptions::default()
        },
        ..MathJudge::default()
    };

    // 1. Warm up, then time `repeats` passes.
    let run = || {
        pairs
            .iter()
            .filter(|p| judge.judge(&p.response, &p.gold).is_correct() == p.mv)
            .count()
    };
    let agree = run();
    let mut rates = Vec::new();
    for _ in 0..args.repeats {
        let t = Instant::now();
        std::hint::black_box(run());
        rates.push(pairs.len() as f64 / t.elapsed().as_secs_f64());
    }
    let (ours, ours_std) = mean_std(&rates);

    // 2. The reference, in the same invocation.
    let reference = match &args.python {
        None => None,
        Some(py) => {
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../benches/reference/math_verify_bench.py"
            );
            let out = Command::new(py)
                .arg(script)
                .arg("--fixture")
                .arg(&args.fixture)
                .arg("--repeats")
                .arg(args.python_repeats.to_string())
                .output()
                .with_context(|| format!("failed to run `{}`", py.display()))?;
            if !out.status.success() {
                bail!("reference failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let last = stdout.lines().last().context("reference printed nothing")?;
            Some(serde_json::from_str::<Reference>(last).context("reference output")?)
        }
    };

    // 3. Report.
    println!(
        "bench_verify: {} pairs, 1 thread, release build",
        pairs.len()
    );
    println!(
        "{:<14} {:>22} {:>26}",
        "judge", "judgements/s", "agrees with fixture `mv`"
    );
    println!(
        "{:<14} {:>12.0} ± {:<8.0} {:>20}/{}",
        "laconic",
        ours,
        ours_std,
        agree,
        pairs.len()
    );
    if let Some(r) = reference {
        println!(
            "{:<14} {:>12.1} ± {:<8.1} {:>20}/{}",
            "math-verify", r.judgements_per_s, r.stdev, r.agree, r.pairs
        );
        println!(
            "ratio (>1 = laconic faster): {:.0}x",
            ours / r.judgements_per_s
        );
    }
    Ok(())
}
