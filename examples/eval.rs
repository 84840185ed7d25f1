//! Evaluates a Qwen3/Qwen2/Llama checkpoint at every token budget from one generation pass.
//!
//! ```text
//! cargo run --release --example eval -- --model path/to/Qwen3-0.6B --data gsm8k,math500 \
//!     --budgets 2048,4096,8192,16384,32768 --samples 8 --out runs/eval/qwen3-0.6b
//! cargo run --release --example eval -- --model runs/demo/final --data aime25=data/aime25.jsonl --out runs/eval/after \
//!     --compare runs/eval/before
//! ```
//! Generates `--samples` responses per question once, capped at the largest budget, scores every budget
//! from them, and writes `eval.json`, `eval.md`, `samples.jsonl` and SVG plots to `--out` (with
//! `--compare DIR`, also `compare.md` and comparison plots). Prints the Mean@k and Pass@k tables. Without
//! `--model`, only compares the report already in `--out` with `--compare`. With `--config FILE` (and
//! `--set key=value`, as `train` takes them), evaluates what that training run evaluates: its model
//! (or `--model`, e.g. a checkpoint of the run), its task's benchmarks and judge, its `[eval]`. On a CPU, a 0.6B model
//! decodes tens of tokens per second: use a GPU backend (`--features cuda`) for real budgets.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use laconic::backend::{self, Backend};
use laconic::eval::{
    evaluate, write_comparison, Benchmark, BuiltIn, DatasetSpec, EvalConfig, EvalReport,
    GoldFormat, MathJudge, OverlongPrompts, PromptConfig, PromptLimit, TruncatedScoring,
    PAPER_SUFFIX,
};
use laconic::model::{load_pretrained, CausalLm, Tokenizer};
use laconic::reward::{ExtractMode, ExtractOptions, Judge};
use laconic::rollout::{EngineConfig, Progress};
use laconic::train::{load_policy, RunConfig, Task};

/// Evaluate a checkpoint over a spectrum of token budgets (Mean@k, Pass@k, lengths by correctness).
#[derive(Parser, Debug)]
struct Args {
    /// Hugging Face checkpoint folder (config.json, safetensors, tokenizer.json). Omit to only compare
    /// the report in --out with --compare. With --config, replaces the config's `model.path`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A training run's TOML config: evaluate its model (or --model) on its task's evaluation
    /// benchmarks with its judge and `[eval]` settings, as the trainer does. The flags that choose
    /// data, sampling or scoring are then refused: set the config's keys instead.
    #[arg(long, conflicts_with_all = CONFIG_OWNED)]
    config: Option<PathBuf>,
    /// Override a config value, e.g. `--set eval.samples=4` (repeatable; with --config).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
    sets: Vec<String>,
    /// Tokenizer file when the checkpoint folder has none.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Datasets, comma-separated: a built-in name (gsm8k, gsm8k-train, math500), a JSONL path (named after
    /// its file stem) or NAME=PATH.
    #[arg(long, value_delimiter = ',', default_value = "gsm8k")]
    data: Vec<String>,
    /// Folder of the built-in datasets.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/data"))]
    data_dir: PathBuf,
    /// Accepted names of the question field of JSONL files, in order (default problem,question,prompt).
    #[arg(long, value_delimiter = ',')]
    question_field: Option<Vec<String>>,
    /// Accepted names of the gold-answer field, in order (default answer,solution,final_answer).
    #[arg(long, value_delimiter = ',')]
    answer_field: Option<Vec<String>>,
    /// Gold normalisation: `auto` (GSM8K `#### N` → N, `\boxed{}` content) or `raw`.
    #[arg(long, value_enum, default_value_t = GoldFormat::Auto)]
    gold: GoldFormat,
    /// Only the first N questions of each dataset.
    #[arg(long)]
    limit: Option<usize>,
    /// Token budgets B.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "2048,4096,8192,16384,32768"
    )]
    budgets: Vec<usize>,
    /// Samples per question (the k of Mean@k).
    #[arg(long, default_value_t = 8)]
    samples: usize,
    /// The k's of Pass@k (default 1 and --samples).
    #[arg(long, value_delimiter = ',')]
    pass_k: Option<Vec<usize>>,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.6)]
    temperature: f32,
    /// Nucleus mass (1 = off).
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 20)]
    top_k: usize,
    /// Seed of the per-sample random streams.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Most sequences decoded together.
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
    /// Wrap prompts in the chat template (default).
    #[arg(long, overrides_with = "no_chat")]
    chat: bool,
    /// Feed the bare question + suffix, no chat template.
    #[arg(long)]
    no_chat: bool,
    /// Disable thinking (`enable_thinking = false`: Qwen3's empty think block).
    #[arg(long)]
    no_think: bool,
    /// A chat template file (`.jinja` or a `tokenizer_config.json`) instead of the checkpoint's own.
    #[arg(long)]
    chat_template: Option<PathBuf>,
    /// Instruction appended to every question ("" for none).
    #[arg(long, default_value = PAPER_SUFFIX)]
    suffix: String,
    /// A system turn before each question.
    #[arg(long)]
    system: Option<String>,
    /// A sample not finished within B: `judge` its first B tokens, or count it `incorrect`.
    #[arg(long, value_enum, default_value_t = TruncatedScoring::Judge)]
    truncated: TruncatedScoring,
    /// How answers are found: `boxed` (strict: `\boxed{…}`, `#### N`) or `math-verify`
    /// (math-verify's free-form search, falling back to the last LaTeX span or number).
    #[arg(long, default_value = "boxed")]
    extract: ExtractMode,
    /// Most prompt tokens (default: the model's positions less the largest budget).
    #[arg(long)]
    max_prompt_tokens: Option<usize>,
    /// A longer prompt: `error` (name its file, line and length) or `drop` it with a count.
    #[arg(long, value_enum, default_value_t = OverlongPrompts::Error)]
    overlong_prompts: OverlongPrompts,
    /// Bins of the length histograms.
    #[arg(long, default_value_t = 32)]
    bins: usize,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Another eval folder to compare with (it is "before", this run "after").
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Name of this run in tables and plots (default: the model folder's name).
    #[arg(long)]
    label: Option<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The flags a `--config` replaces (its model, data, `[eval]` and `[reward]` keys).
const CONFIG_OWNED: [&str; 24] = [
    "tokenizer",
    "data",
    "data_dir",
    "question_field",
    "answer_field",
    "gold",
    "limit",
    "budgets",
    "samples",
    "pass_k",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "max_batch",
    "chat",
    "no_chat",
    "no_think",
    "suffix",
    "system",
    "truncated",
    "extract",
    "max_prompt_tokens",
    "overlong_prompts",
];

fn main() {
    laconic_harness::exit_on_error(run(Args::parse()), |_| 1);
}

/// One evaluation: the policy, its tokenizer, the benchmarks, the settings, the judge and the name
/// the report gives the model.
struct Setup {
    model: CausalLm<Backend>,
    tokenizer: Tokenizer,
    benchmarks: Vec<Benchmark>,
    config: EvalConfig,
    judge: Box<dyn Judge>,
    label: String,
}

fn run(args: Args) -> Result<()> {
    // 0. The earlier run to compare with, read first: a wrong --compare fails before any work.
    let before = match &args.compare {
        Some(other) => Some(
            EvalReport::read(other)
                .with_context(|| format!("--compare `{}` holds no eval report", other.display()))?,
        ),
        None => None,
    };

    // 1. Evaluate (or, without --model, read the report already in --out).
    let setup = match (&args.config, &args.model) {
        (Some(path), _) => Some(setup_from_config(&args, path)?),
        (None, Some(model)) => Some(setup_from_flags(&args, model)?),
        (None, None) => None,
    };
    let report = match setup {
        Some(setup) => {
            let report = evaluate_setup(&args, setup)?;
            report.write(&args.out).with_context(|| {
                format!("failed to write the report to `{}`", args.out.display())
            })?;
            report
        }
        None => {
            ensure!(
                args.compare.is_some(),
                "give --model DIR or --config FILE to evaluate, or --compare DIR to compare --out with"
            );
            EvalReport::read(&args.out)?
        }
    };
    print_summary(&report, &args.out)?;

    // 2. Compare with an earlier run.
    if let (Some(other), Some(before)) = (&args.compare, before) {
        let labels = [run_label(&before, other), run_label(&report, &args.out)];
        write_comparison(&before, &report, [&labels[0], &labels[1]], &args.out)?;
        println!(
            "comparison with `{}`: {}",
            other.display(),
            args.out.join("compare.md").display()
        );
    }
    Ok(())
}

/// The evaluation a training config describes: its model (or `--model`), its task's evaluation
/// benchmarks and judge, its `[eval]` settings.
fn setup_from_config(args: &Args, path: &Path) -> Result<Setup> {
    let mut sets = args.sets.clone();
    if let Some(model) = &args.model {
        sets.push(format!("model.path=\"{}\"", model.display()));
    }
    let config = RunConfig::load(path, &sets)?;
    let device = backend::device()?;
    let (model, tokenizer) = load_policy::<Backend>(&config, &device)?;
    let task = Task::from_config(&config, &tokenizer, model.config().max_position_embeddings)?;
    ensure!(
        !task.benchmarks.is_empty(),
        "`{}` evaluates no benchmark: set `train.eval_benchmarks`",
        path.display()
    );
    let label = match &config.model.path {
        Some(dir) => folder_name(dir),
        None => folder_name(path),
    };
    Ok(Setup {
        model,
        tokenizer,
        benchmarks: task.benchmarks,
        config: config.eval,
        judge: task.judge,
        label,
    })
}

/// The evaluation the flags describe.
fn setup_from_flags(args: &Args, model_dir: &Path) -> Result<Setup> {
    let device = backend::device()?;
    let pretrained = load_pretrained::<Backend>(model_dir, &device)
        .with_context(|| format!("failed to load the model in `{}`", model_dir.display()))?;
    let tokenizer = match (&args.tokenizer, pretrained.tokenizer) {
        (Some(path), _) => Tokenizer::from_file(path)?,
        (None, Some(found)) => found,
        (None, None) => bail!(
            "`{}` has no tokenizer.json; pass --tokenizer",
            model_dir.display()
        ),
    };
    let prompt = PromptConfig {
        suffix: args.suffix.clone(),
        chat: !args.no_chat,
        thinking: !args.no_think,
        system: args.system.clone(),
        template: args.chat_template.clone(),
        ..PromptConfig::default()
    };
    let limit = PromptLimit::for_model(
        pretrained.model.config().max_position_embeddings,
        args.budgets.iter().copied().max().unwrap_or(0),
        args.max_prompt_tokens,
        args.overlong_prompts,
        "`--overlong-prompts drop`",
    );
    let benchmarks = args
        .data
        .iter()
        .map(|entry| {
            let spec = dataset_spec(args, entry)?;
            let mut bench = Benchmark::load(&spec, &prompt, &tokenizer)
                .with_context(|| format!("failed to load dataset `{entry}`"))?;
            bench.limit_prompts(&limit)?;
            Ok(bench)
        })
        .collect::<Result<Vec<_>>>()?;
    let config = EvalConfig {
        budgets: args.budgets.clone(),
        samples: args.samples,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
        pass_k: args.pass_k.clone().unwrap_or_default(),
        histogram_bins: args.bins,
        truncated: args.truncated,
        engine: EngineConfig {
            max_batch: args.max_batch,
            ..EngineConfig::default()
        },
        ..EvalConfig::default()
    };
    config.validate()?;
    let judge = MathJudge {
        extract: ExtractOptions {
            mode: args.extract,
            ..ExtractOptions::default()
        },
        ..MathJudge::default()
    };
    Ok(Setup {
        model: pretrained.model,
        tokenizer,
        benchmarks,
        config,
        judge: Box::new(judge),
        label: folder_name(model_dir),
    })
}

/// Generates and scores `setup`, with a progress bar over all samples of all benchmarks (hidden when
/// stdout is not a terminal).
fn evaluate_setup(args: &Args, setup: Setup) -> Result<EvalReport> {
    let total: usize = setup
        .benchmarks
        .iter()
        .map(|b| b.len() * setup.config.samples)
        .sum();
    let bar = if args.quiet || !std::io::stdout().is_terminal() {
        ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(total as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {pos}/{len} samples, {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut observer = |p: &Progress| {
        bar.set_position(p.finished as u64);
        bar.set_message(format!("{} tokens, {} decoding", p.tokens, p.live));
    };
    let mut report = evaluate(
        &setup.model,
        &setup.tokenizer,
        &setup.benchmarks,
        &setup.config,
        setup.judge.as_ref(),
        &mut observer,
    )?;
    bar.finish_and_clear();
    report.info.model = Some(args.label.clone().unwrap_or(setup.label));
    eprintln!(
        "[{} tokens in {:.1} s ({:.1} tokens/s on {}), scored in {:.1} s]",
        report.info.tokens_generated,
        report.info.generation_seconds,
        report.info.tokens_generated as f64 / report.info.generation_seconds.max(1e-9),
        backend::NAME,
        report.info.scoring_seconds
    );
    Ok(report)
}

/// A `--data` entry: a built-in name, a path, or NAME=PATH.
fn dataset_spec(args: &Args, entry: &str) -> Result<DatasetSpec> {
    let mut spec = match entry.split_once('=') {
        Some((name, path)) => DatasetSpec {
            name: name.to_string(),
            ..DatasetSpec::from_path(path)
        },
        None if Path::new(entry).is_file() => DatasetSpec::from_path(entry),
        None => BuiltIn::from_name(entry)?.spec(&args.data_dir),
    };
    if let Some(names) = &args.question_field {
        spec.fields.question = names.clone();
    }
    if let Some(names) = &args.answer_field {
        spec.fields.answer = names.clone();
    }
    spec.gold = args.gold;
    spec.limit = args.limit;
    Ok(spec)
}

fn folder_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn run_label(report: &EvalReport, dir: &Path) -> String {
    report
        .info
        .model
        .clone()
        .unwrap_or_else(|| folder_name(dir))
}

/// Prints the accuracy tables of eval.md and where the files are.
fn print_summary(report: &EvalReport, out: &Path) -> Result<()> {
    let md_path = out.join("eval.md");
    let md = std::fs::read_to_string(&md_path)
        .with_context(|| format!("failed to read `{}`", md_path.display()))?;
    let accuracy: Vec<&str> = md
        .split("\n## ")
        .filter(|section| section.starts_with("Mean@") || section.starts_with("Pass@"))
        .collect();
    for section in accuracy {
        println!("## {}", section.trim_end());
        println!();
    }
    println!(
        "{} benchmark(s), budgets {:?}: report in {}",
        report.benchmarks.len(),
        report.budgets(),
        out.display()
    );
    Ok(())
}
