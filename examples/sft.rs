//! Supervised fine-tuning (the warm start before RL): cross-entropy on response tokens.
//!
//! ```text
//! cargo run --release --example sft -- --config configs/demo-sft.toml --out assets/demo/model
//! ```
//! For the synthetic task it trains on fresh verbose traces each step; for other data, on `sft.data`
//! (JSONL with `prompt` and `response`). Writes the model as a Hugging Face folder (config.json,
//! model.safetensors, tokenizer.json) and prints loss every 25 steps and a greedy evaluation at the end.
//! The demo's warm start (500 steps) takes about 8 minutes on 2 cores.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::AutodiffModule;
use clap::Parser;
use laconic::backend::{self, Autodiff};
use laconic::eval::markdown;
use laconic::model::save_pretrained;
use laconic::train::config::DataConfig;
use laconic::train::sft::{SftData, SftTrainer};
use laconic::train::{load_policy, RlTrainer, RunConfig};

/// Supervised warm start.
#[derive(Parser, Debug)]
struct Args {
    /// Run config (TOML) with `[model]`, `[data]`, `[sft]` and `[eval]`.
    #[arg(long)]
    config: PathBuf,
    /// Override a config value, e.g. `--set sft.steps=100` (repeatable).
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Folder to write the trained model to.
    #[arg(long)]
    out: PathBuf,
}

fn main() {
    laconic_harness::exit_on_error(run(Args::parse()), |_| 1);
}

fn run(args: Args) -> Result<()> {
    let config = RunConfig::load(&args.config, &args.sets)?;
    let device = backend::device()?;
    let (mut model, tokenizer) = load_policy::<Autodiff>(&config, &device)?;
    let data = match (&config.data, &config.sft.data) {
        (DataConfig::DigitSum(task), _) => SftData::DigitSum {
            config: task.clone(),
            seed: config.train.seed,
        },
        (_, Some(path)) => SftData::from_jsonl(path, &tokenizer)?,
        (_, None) => bail!(
            "`sft.data` (a JSONL of prompt/response pairs) is required for non-synthetic data"
        ),
    };
    let mut trainer = SftTrainer::<Autodiff>::new(config.sft.clone());
    let start = Instant::now();
    for step in 0..config.sft.steps {
        let batch = data.batch(step, config.sft.batch_size, &tokenizer)?;
        let (next, record) = trainer.step(model, &batch)?;
        model = next;
        if step % 25 == 0 || step + 1 == config.sft.steps {
            println!(
                "step {:>4}  loss {:.4}  grad norm {:.3}  lr {:.2e}  ({:.0}s)",
                record.step,
                record.loss,
                record.grad_norm,
                record.lr,
                start.elapsed().as_secs_f64()
            );
        }
    }
    save_pretrained(&model.valid(), &args.out)
        .with_context(|| format!("failed to write `{}`", args.out.display()))?;
    let tokenizer_json = tokenizer
        .inner()
        .to_string(true)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(args.out.join("tokenizer.json"), tokenizer_json).with_context(|| {
        format!(
            "failed to write `{}`",
            args.out.join("tokenizer.json").display()
        )
    })?;
    println!("wrote {}", args.out.display());
    // Greedy evaluation of the warm start on the held-out problems.
    let trainer = RlTrainer::<Autodiff>::new(config, model, tokenizer)?;
    if let Some(report) = trainer.evaluate(&mut ())? {
        println!("\n{}", markdown::report(&report));
    }
    Ok(())
}
