//! Rollout benchmark: tokens/s of the engine (prefix sharing + continuous batching) against a naive loop
//! (every sample prefilled separately, static batches) and HF transformers `generate(num_return_sequences=8)`,
//! at Qwen3-0.6B's shape with random weights: 4 prompts × n = 8, L_R = 256, temperature 1.
//!
//! ```text
//! cargo run --release --example bench_rollout -- --python scratch/ref/bin/python
//! ```
//! Two cases: `stops` makes ~1/128 of the vocabulary stop ids, so lengths are geometric with a long tail (as
//! real rollouts are); `no-stop` runs every sample to L_R. Takes several minutes per case on 2 cores.
//!
//! With `--lora RANK` the two rows are a LoRA policy decoded with its adapters merged (merge included)
//! and unmerged: which path the trainer's rollouts take (docs/performance.md).
//!
//! What the comparison leaves out: random weights make every engine see the same *distribution* of lengths,
//! not the same samples; tokens/s counts generated tokens only (prefill time included in the wall time).

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use laconic::backend::{self, Backend};
use laconic::model::{CausalLm, DenseShape, LoraConfig};
use laconic::rollout::{Engine, EngineConfig, SamplingParams};
use laconic_harness::synthetic_ids;

/// Rollout benchmark options.
#[derive(Parser, Debug)]
struct Args {
    /// Samples per prompt.
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// Rollout limit L_R.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Prompt lengths (one prompt each).
    #[arg(long, value_delimiter = ',', default_value = "32,64,96,128")]
    prompt_lens: Vec<usize>,
    /// Layers (28 for Qwen3-0.6B).
    #[arg(long, default_value_t = 28)]
    layers: usize,
    /// Cases to run: `stops`, `no-stop`.
    #[arg(long, value_delimiter = ',', default_value = "stops,no-stop")]
    cases: Vec<String>,
    /// Python with torch + transformers for the reference.
    #[arg(long)]
    python: Option<String>,
    /// Instead of engine against naive loop: a policy with LoRA adapters of this rank on every
    /// projection, decoded with the adapters merged into the weights (the merge timed too) against
    /// unmerged (two extra low-rank products per projection and token).
    #[arg(long)]
    lora: Option<usize>,
}

/// Which weights a row decodes with.
#[derive(Clone, Copy)]
enum Policy {
    /// The random model itself.
    Plain,
    /// The LoRA policy with its adapters folded into the weights.
    Merged,
    /// The LoRA policy with its adapters as extra products.
    Unmerged,
}

const VOCAB: usize = DenseShape::QWEN3_0_6B.vocab;
/// One stop id every `STOP_STRIDE` ids: a stop probability of ≈1/128 per step under near-uniform logits.
const STOP_STRIDE: usize = 128;

fn main() {
    laconic_harness::exit_on_error(run(Args::parse()), |_| 1);
}

fn run(args: Args) -> Result<()> {
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    println!(
        "Qwen3-0.6B shape ({} layers), random weights, f32, {} backend, {threads} threads: {} prompts (lengths {:?}) × n = {}, L_R = {}",
        args.layers, backend::NAME, args.prompt_lens.len(), args.prompt_lens, args.n, args.max_tokens
    );
    let config = DenseShape::QWEN3_0_6B.with_layers(args.layers).config()?;
    let device = backend::device()?;
    let model = CausalLm::<Backend>::init(&config, &device)?;
    let prompts: Vec<Vec<u32>> = args
        .prompt_lens
        .iter()
        .enumerate()
        .map(|(p, &len)| synthetic_ids(p, len, VOCAB, 0))
        .collect();
    // Warm-up: materialise the weights and touch every kernel.
    Engine::new(&model, EngineConfig::default())?.generate(
        &[vec![1, 2]],
        1,
        &SamplingParams::greedy(2),
        &mut (),
    )?;

    println!(
        "\n{:>8} | {:>22} | {:>10} {:>8} {:>9} {:>10}",
        "case", "engine", "tokens", "seconds", "tok/s", "mean len"
    );
    for case in &args.cases {
        let stop_ids: Vec<u32> = match case.as_str() {
            "stops" => (0..VOCAB).step_by(STOP_STRIDE).map(|t| t as u32).collect(),
            "no-stop" => Vec::new(),
            other => anyhow::bail!("unknown case `{other}` (expected `stops` or `no-stop`)"),
        };
        let params = SamplingParams {
            max_tokens: args.max_tokens,
            stop_ids,
            seed: 1,
            ..SamplingParams::default()
        };
        let batch = args.n * prompts.len();
        let engine_config = EngineConfig {
            max_batch: batch,
            ..Default::default()
        };
        let rows = match args.lora {
            None => vec![
                ("laconic", Policy::Plain, engine_config.clone()),
                ("naive loop", Policy::Plain, EngineConfig::naive(batch)),
            ],
            Some(_) => vec![
                ("LoRA merged", Policy::Merged, engine_config.clone()),
                ("LoRA unmerged", Policy::Unmerged, engine_config),
            ],
        };
        let adapted = match args.lora {
            Some(rank) => Some(model.clone().with_lora(
                &LoraConfig {
                    rank,
                    alpha: 2.0 * rank as f64,
                    ..LoraConfig::default()
                },
                0,
            )?),
            None => None,
        };
        if let Some(adapted) = &adapted {
            // Warm-up of the adapter path and of the merged weights too, like the base's above.
            for model in [adapted, &adapted.merged()] {
                Engine::new(model, EngineConfig::default())?.generate(
                    &[vec![1, 2]],
                    1,
                    &SamplingParams::greedy(2),
                    &mut (),
                )?;
            }
        }
        let mut rates = Vec::new();
        for (name, policy, engine_config) in rows {
            let start = Instant::now();
            let merged;
            let model = match (policy, &adapted) {
                (Policy::Merged, Some(adapted)) => {
                    merged = adapted.merged();
                    &merged
                }
                (Policy::Unmerged, Some(adapted)) => adapted,
                _ => &model,
            };
            let prepare_s = start.elapsed().as_secs_f64();
            let engine = Engine::new(model, engine_config)?;
            let rollouts = engine.generate(&prompts, args.n, &params, &mut ())?;
            let seconds = start.elapsed().as_secs_f64();
            if matches!(policy, Policy::Merged) {
                println!(
                    "{case:>8} | merging the adapters took {prepare_s:.2} s of the merged row's {seconds:.1} s"
                );
            }
            let tokens: usize = rollouts.iter().map(|r| r.len()).sum();
            let rate = tokens as f64 / seconds;
            println!(
                "{case:>8} | {name:>22} | {tokens:>10} {seconds:>8.1} {rate:>9.2} {:>10.1}",
                tokens as f64 / rollouts.len() as f64
            );
            rates.push(rate);
        }
        if let (Some(python), None) = (&args.python, args.lora) {
            let (tokens, seconds) = reference(&args, python, case)?;
            let rate = tokens as f64 / seconds;
            println!(
                "{case:>8} | {:>22} | {tokens:>10} {seconds:>8.1} {rate:>9.2} {:>10.1}",
                "transformers generate",
                tokens as f64 / batch as f64
            );
            println!("{case:>8} | ratio laconic/transformers = {:.2}x, laconic/naive = {:.2}x (>1 = laconic faster)", rates[0] / rate, rates[0] / rates[1]);
        } else if args.lora.is_some() {
            println!(
                "{case:>8} | ratio merged/unmerged = {:.2}x (>1 = merged faster)",
                rates[0] / rates[1]
            );
        } else {
            println!(
                "{case:>8} | ratio laconic/naive = {:.2}x (>1 = laconic faster)",
                rates[0] / rates[1]
            );
        }
    }
    Ok(())
}

/// Runs `benches/reference/rollout.py`; returns (generated tokens, seconds).
fn reference(args: &Args, python: &str, case: &str) -> Result<(usize, f64)> {
    let lens: Vec<String> = args.prompt_lens.iter().map(usize::to_string).collect();
    let output = Command::new(python)
        .args([
            "benches/reference/rollout.py",
            "--case",
            case,
            "--n",
            &args.n.to_string(),
        ])
        .args([
            "--max-tokens",
            &args.max_tokens.to_string(),
            "--layers",
            &args.layers.to_string(),
        ])
        .args([
            "--prompt-lens",
            &lens.join(","),
            "--stop-stride",
            &STOP_STRIDE.to_string(),
        ])
        .output()
        .with_context(|| format!("failed to run `{python} benches/reference/rollout.py`"))?;
    anyhow::ensure!(
        output.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().context("reference printed nothing")?;
    let value: serde_json::Value =
        serde_json::from_str(line).context("reference printed a non-JSON line")?;
    Ok((
        value["tokens"].as_u64().context("tokens")? as usize,
        value["seconds"].as_f64().context("seconds")?,
    ))
}
