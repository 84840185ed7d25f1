//! Splits a JSONL prompt dataset into Easy (pass rate > 0.5) and Hard (≤ 0.5) by sampling a model, as the
//! paper built DeepScaleR-Easy.
//!
//! ```text
//! cargo run --release --example curate -- --model path/to/Qwen3-0.6B --data data.jsonl --samples 8 \
//!     --max-tokens 8192 --out data-split
//! ```
//! Writes `easy.jsonl` and `hard.jsonl` (each record unchanged plus `pass_rate`) into `--out`, and the
//! evaluation they were counted from into `--out/eval` (`eval.md`: the lengths of correct and incorrect
//! answers, the natural length an `L_T` goes below). `--limit N`
//! curates the first N records only (a real model on 2 CPU cores samples ~100 tokens a second, so a whole
//! training set is hours). Progress goes to stderr: a bar on a terminal, a line every 5 % otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use laconic::backend::{self, Backend};
use laconic::eval::{DatasetSpec, EvalConfig, Fields, PromptConfig};
use laconic::model::{load_pretrained, Tokenizer};
use laconic::reward::MathJudge;
use laconic::train::curate::{pass_rates, write_split, EASY_THRESHOLD};

/// Pass-rate curation of a prompt dataset.
#[derive(Parser, Debug)]
struct Args {
    /// Hugging Face checkpoint folder of the model whose pass rate defines difficulty.
    #[arg(long)]
    model: PathBuf,
    /// Tokenizer file when the folder has none.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// JSONL dataset.
    #[arg(long)]
    data: PathBuf,
    /// Curate only the first N records.
    #[arg(long)]
    limit: Option<usize>,
    /// Field holding the question (default: the first of problem, question, prompt).
    #[arg(long)]
    question_field: Option<String>,
    /// Field holding the gold answer (default: the first of answer, solution, final_answer).
    #[arg(long)]
    answer_field: Option<String>,
    /// Samples per prompt (the paper: 8).
    #[arg(long, default_value_t = 8)]
    samples: usize,
    /// Token limit per sample.
    #[arg(long, default_value_t = 8192)]
    max_tokens: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.6)]
    temperature: f32,
    /// Nucleus mass.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 20)]
    top_k: usize,
    /// Pass rate above which a prompt is Easy.
    #[arg(long, default_value_t = EASY_THRESHOLD)]
    threshold: f64,
    /// Raw prompts (no chat template).
    #[arg(long)]
    no_chat: bool,
    /// Disable thinking (appends an empty think block).
    #[arg(long)]
    no_think: bool,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
}

fn main() {
    laconic_harness::exit_on_error(run(Args::parse()), |_| 1);
}

fn run(args: Args) -> Result<()> {
    let device = backend::device()?;
    let pretrained = load_pretrained::<Backend>(&args.model, &device)
        .with_context(|| format!("failed to load `{}`", args.model.display()))?;
    let tokenizer = match (&args.tokenizer, pretrained.tokenizer) {
        (Some(path), _) => Tokenizer::from_file(path)?,
        (None, Some(tok)) => tok,
        (None, None) => anyhow::bail!("the model folder has no tokenizer.json; pass --tokenizer"),
    };
    let mut dataset = DatasetSpec::from_path(&args.data);
    dataset.limit = args.limit;
    let defaults = Fields::default();
    dataset.fields = Fields {
        question: args.question_field.map_or(defaults.question, |f| vec![f]),
        answer: args.answer_field.map_or(defaults.answer, |f| vec![f]),
    };
    let prompt = PromptConfig {
        chat: !args.no_chat,
        thinking: !args.no_think,
        ..PromptConfig::default()
    };
    let config = EvalConfig {
        budgets: vec![args.max_tokens],
        samples: args.samples,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        ..EvalConfig::default()
    };
    let bar = indicatif::ProgressBar::new(0);
    let on_terminal = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut reported = 0;
    let mut progress = |p: &laconic::rollout::Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.finished as u64);
        let twentieths = p.finished * 20 / p.total.max(1);
        if !on_terminal && twentieths > reported {
            reported = twentieths;
            eprintln!(
                "curate: {}/{} samples, {} tokens in {:.0} s",
                p.finished,
                p.total,
                p.tokens,
                started.elapsed().as_secs_f64()
            );
        }
    };
    let curated = pass_rates(
        &pretrained.model,
        &tokenizer,
        &dataset,
        &prompt,
        &config,
        &MathJudge::default(),
        &mut progress,
    )?;
    bar.finish_and_clear();
    let rates = &curated.rates;
    let (easy, hard) = write_split(&dataset, rates, args.threshold, &args.out)?;
    curated.report.write(args.out.join("eval"))?;
    let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    println!(
        "{} prompts, mean pass rate {:.3}: {easy} easy (> {}), {hard} hard → {}",
        rates.len(),
        mean,
        args.threshold,
        args.out.display()
    );
    Ok(())
}
