//! Wall time of the one-pass budget sweep against one run per budget, on a tiny random Qwen3.
//!
//! ```text
//! cargo run --release -p laconic-eval --example bench_sweep -- --questions 20 --samples 4 --budgets 16,32,64,128,256
//! ```
//! Takes the first `--questions` GSM8K test questions (chat template + the paper's suffix, the real Qwen3
//! tokenizer), `--samples` samples each, and evaluates them twice: one generation capped at the largest
//! budget, scored at every budget; then one generation per budget, each scored at its own budget. Prints
//! wall time (generation + scoring) and tokens generated both ways, their ratio (`>1 = one pass faster`),
//! and two correctness columns so a fast wrong sweep cannot pass: how many capped samples equal the first
//! B tokens of the one-pass sample (same ids, same finish), and whether every budget's metrics are
//! identical. Two scenarios: random weights never sample `<|im_end|>`, so every sample runs to the cap;
//! with `--stop-every N`, about one vocabulary entry in N also ends a response, so lengths spread out
//! below the larger budgets, as a real model's do. Backend flex (the default CPU backend), f32. About eight
//! minutes on two busy CPU cores (`--questions 5` for a quick look); numbers in `docs/eval.md`.
//!
//! What it leaves out: a real model's length distribution and the judge's cost on long texts (scoring is
//! timed on both sides, but random text is quick to reject).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::Flex;
use clap::Parser;
use laconic_eval::{
    score_benchmark, Benchmark, BudgetMetrics, BuiltIn, DatasetSpec, EvalConfig, MathJudge,
    PromptConfig,
};
use laconic_model::{CausalLm, DenseShape, Tokenizer};
use laconic_rollout::{Engine, Finish, Rollout};

/// One-pass sweep vs one run per budget.
#[derive(Parser, Debug)]
struct Args {
    /// GSM8K test questions.
    #[arg(long, default_value_t = 20)]
    questions: usize,
    /// Samples per question.
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Budgets.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    budgets: Vec<usize>,
    /// In the second scenario, about one vocabulary entry in N ends a response.
    #[arg(long, default_value_t = 40)]
    stop_every: u32,
    /// Hidden size of the random model.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Layers of the random model.
    #[arg(long, default_value_t = 2)]
    layers: usize,
}

/// One way of evaluating: wall time (generation + scoring), tokens generated, metrics per budget.
#[derive(Default)]
struct Outcome {
    seconds: f64,
    tokens: usize,
    metrics: Vec<BudgetMetrics>,
}

fn main() {
    laconic_harness::exit_on_error(run(Args::parse()), |_| 1);
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: Args) -> Result<()> {
    // 1. A random Qwen3 over the real vocabulary, and the first GSM8K questions as chat prompts.
    let tokenizer_path = repo().join("assets/qwen3/tokenizer.json");
    let tokenizer = Tokenizer::from_file(&tokenizer_path)
        .with_context(|| format!("failed to load `{}`", tokenizer_path.display()))?;
    let shape = DenseShape {
        layers: args.layers,
        hidden: args.hidden,
        inter: 2 * args.hidden,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        ..DenseShape::QWEN3_0_6B
    };
    let config = shape.config()?;
    let model = CausalLm::<Flex>::init(&config, &Default::default())?;
    let spec = DatasetSpec {
        limit: Some(args.questions),
        ..BuiltIn::Gsm8kTest.spec(repo().join("assets/data"))
    };
    let benchmark = Benchmark::load(&spec, &PromptConfig::default(), &tokenizer)?;
    let base = EvalConfig {
        budgets: args.budgets.clone(),
        samples: args.samples,
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        ..EvalConfig::default()
    };
    base.validate()?;
    let budgets = base.sorted_budgets();
    println!(
        "backend flex (f32), {} threads; random Qwen3 hidden {} x {} layers, vocab 151936; \
         GSM8K {} questions x {} samples; budgets {budgets:?}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.hidden,
        args.layers,
        benchmark.len(),
        args.samples,
    );
    let engine = Engine::new(&model, base.engine.clone())?;
    let prompts: Vec<Vec<u32>> = benchmark
        .items
        .iter()
        .map(|i| i.prompt_ids.clone())
        .collect();
    // Generate capped at the config's largest budget, score at all its budgets.
    let evaluate = |config: &EvalConfig| -> Result<(Vec<Rollout>, Outcome)> {
        let start = Instant::now();
        let params = config.sampling_params(config.stop_ids.clone());
        let rollouts = engine.generate(&prompts, config.samples, &params, &mut ())?;
        let decode = |ids: &[u32]| tokenizer.decode(ids);
        let (report, _) = score_benchmark(
            &benchmark,
            &rollouts,
            config,
            &MathJudge::default(),
            &decode,
        )?;
        let outcome = Outcome {
            seconds: start.elapsed().as_secs_f64(),
            tokens: rollouts.iter().map(Rollout::len).sum(),
            metrics: report.budgets,
        };
        Ok((rollouts, outcome))
    };
    // Warm-up.
    evaluate(&EvalConfig {
        budgets: vec![4],
        samples: 1,
        stop_ids: tokenizer.stop_ids(),
        ..base.clone()
    })?;

    println!(
        "| scenario | one pass (s) | {} runs (s) | ratio (>1 = one pass faster) | tokens one pass | tokens separate | \
         samples equal to the one-pass prefix | identical metrics |",
        budgets.len()
    );
    println!("|---|---:|---:|---:|---:|---:|---:|:---:|");
    let spread_stops: Vec<u32> = (0..151936u32)
        .filter(|id| id % args.stop_every == 7)
        .collect();
    for (name, stop_ids) in [
        (
            "every sample runs to the cap".to_string(),
            tokenizer.stop_ids(),
        ),
        (
            format!("~1 token in {} stops", args.stop_every),
            spread_stops,
        ),
    ] {
        // 2. One pass: capped at the largest budget, scored at all of them.
        let config = EvalConfig {
            stop_ids,
            ..base.clone()
        };
        let (long, one) = evaluate(&config)?;
        // 3. One run per budget, each scored at its own budget; compare tokens with the one pass.
        let mut separate = Outcome::default();
        let (mut equal, mut total) = (0, 0);
        for &b in &budgets {
            let (short, run) = evaluate(&EvalConfig {
                budgets: vec![b],
                ..config.clone()
            })?;
            separate.seconds += run.seconds;
            separate.tokens += run.tokens;
            separate.metrics.extend(run.metrics);
            equal += long
                .iter()
                .zip(&short)
                .filter(|(l, s)| is_prefix_run(l, s, b))
                .count();
            total += short.len();
        }
        let identical = one.metrics == separate.metrics;
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {} | {} | {equal}/{total} | {} |",
            one.seconds,
            separate.seconds,
            separate.seconds / one.seconds,
            one.tokens,
            separate.tokens,
            if identical { "yes" } else { "no" }
        );
    }
    Ok(())
}

/// Whether `short` (capped at `budget`) is what the long sample's first `budget` tokens say it should be.
fn is_prefix_run(long: &Rollout, short: &Rollout, budget: usize) -> bool {
    let prefix = &long.response_ids[..long.len().min(budget)];
    let finished = long.finish == Finish::Stop && long.len() <= budget;
    short.response_ids == prefix && (short.finish == Finish::Stop) == finished
}
