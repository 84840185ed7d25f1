//! Decode benchmark: prefill and KV-cached decode tokens/s of a Qwen3-0.6B-shaped model (random weights)
//! at batch 1 and 8, on the ndarray and flex CPU backends, against HF transformers on the same shape.
//!
//! ```text
//! cargo run --release --example bench_decode -- --python scratch/ref/bin/python
//! ```
//! With `--python`, runs `benches/reference/decode.py` (PyTorch, same shape, same thread count) in the
//! same invocation and prints ratios (`>1 = laconic faster`). Takes a few minutes on 2 cores.
//!
//! What the comparison leaves out: both sides use f32 weights and greedy decoding on random weights (no
//! early stop); tokenization and sampling filters are not timed.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::prelude::*;
use clap::Parser;
use laconic::model::{AttentionLayout, CausalLm, DenseShape};

/// Decode benchmark options.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Prompt length (tokens) of every row.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// Decode steps timed after prefill.
    #[arg(long, default_value_t = 32)]
    new_tokens: usize,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    batch: Vec<usize>,
    /// Backends to time.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [CpuBackend::Flex, CpuBackend::Ndarray])]
    backends: Vec<CpuBackend>,
    /// Layers (28 for Qwen3-0.6B; fewer for a quick run).
    #[arg(long, default_value_t = 28)]
    layers: usize,
    /// Python interpreter with torch + transformers, to run the reference in the same invocation.
    #[arg(long)]
    python: Option<String>,
}

/// A CPU backend to time.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum CpuBackend {
    /// burn-flex with laconic's kernels.
    Flex,
    /// burn-ndarray.
    Ndarray,
}

/// Seconds for prefill and for `new_tokens` decode steps.
struct Timing {
    prefill_s: f64,
    decode_s: f64,
}

fn time_decode<B: Backend>(
    model: &CausalLm<B>,
    batch: usize,
    args: &Args,
    device: &B::Device,
) -> Result<Timing> {
    let vocab = model.config().vocab_size as i64;
    let prompt: Vec<i64> = (0..batch * args.prompt_len)
        .map(|i| (i as i64 * 7919) % vocab)
        .collect();
    let tokens =
        Tensor::<B, 2, Int>::from_data(TensorData::new(prompt, [batch, args.prompt_len]), device);
    let mut cache = model.new_cache();
    let start = Instant::now();
    let layout = AttentionLayout::left_padded(&vec![args.prompt_len; batch], args.prompt_len)?;
    // Only the last position's logits are needed to start decoding (HF's `logits_to_keep=1`).
    let hidden = model.forward_hidden(tokens, &layout, &mut cache)?;
    let [b, t, d] = hidden.dims();
    let mut next = last_argmax(model.logits(hidden.slice([0..b, t - 1..t, 0..d])));
    let _ = next.clone().into_data();
    let prefill_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for step in 0..args.new_tokens {
        let layout = AttentionLayout::decode_step(vec![args.prompt_len + step; batch]);
        let logits = model.forward_cached(next, &layout, &mut cache)?;
        next = last_argmax(logits);
        // Greedy decoding needs the ids on the host each step, as a generator does.
        let _ = next.clone().into_data();
    }
    Ok(Timing {
        prefill_s,
        decode_s: start.elapsed().as_secs_f64(),
    })
}

fn last_argmax<B: Backend>(logits: Tensor<B, 3>) -> Tensor<B, 2, Int> {
    let [b, t, v] = logits.dims();
    logits
        .slice([0..b, t - 1..t, 0..v])
        .argmax(2)
        .reshape([b, 1])
}

fn run_backend<B: Backend>(name: &str, args: &Args) -> Result<Vec<(String, usize, f64, f64)>> {
    let device = Default::default();
    let config = DenseShape::QWEN3_0_6B.with_layers(args.layers).config()?;
    let model = CausalLm::<B>::init(&config, &device)?;
    // Warm-up: materialise the lazily initialised weights and touch every kernel once.
    let warm = Args {
        new_tokens: 2,
        prompt_len: 8,
        ..args.clone()
    };
    time_decode(&model, 1, &warm, &device)?;
    let mut rows = Vec::new();
    for &batch in &args.batch {
        let t = time_decode(&model, batch, args, &device)?;
        let prefill = (batch * args.prompt_len) as f64 / t.prefill_s;
        let decode = (batch * args.new_tokens) as f64 / t.decode_s;
        println!(
            "{name:>8} batch {batch:>3}: prefill {prefill:>8.1} tok/s   decode {decode:>7.2} tok/s"
        );
        rows.push((name.to_string(), batch, prefill, decode));
    }
    Ok(rows)
}

fn reference(args: &Args, python: &str) -> Result<Vec<(usize, f64, f64)>> {
    let batches: Vec<String> = args.batch.iter().map(usize::to_string).collect();
    let output = Command::new(python)
        .args([
            "benches/reference/decode.py",
            "--prompt-len",
            &args.prompt_len.to_string(),
        ])
        .args([
            "--new-tokens",
            &args.new_tokens.to_string(),
            "--layers",
            &args.layers.to_string(),
        ])
        .args(["--batch", &batches.join(",")])
        .output()
        .with_context(|| format!("failed to run `{python} benches/reference/decode.py`"))?;
    anyhow::ensure!(
        output.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut rows = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).context("reference printed a non-JSON line")?;
        rows.push((
            value["batch"].as_u64().context("batch")? as usize,
            value["prefill_tok_s"].as_f64().context("prefill_tok_s")?,
            value["decode_tok_s"].as_f64().context("decode_tok_s")?,
        ));
    }
    Ok(rows)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    println!(
        "Qwen3-0.6B shape ({} layers), f32, random weights, prompt {} + {} greedy tokens, {threads} threads",
        args.layers, args.prompt_len, args.new_tokens
    );
    let mut ours = Vec::new();
    for backend in &args.backends {
        match backend {
            CpuBackend::Flex => ours.extend(run_backend::<burn::backend::Flex>("flex", &args)?),
            CpuBackend::Ndarray => {
                ours.extend(run_backend::<burn::backend::NdArray>("ndarray", &args)?)
            }
        }
    }
    let Some(python) = &args.python else {
        return Ok(());
    };
    let reference = reference(&args, python)?;
    println!(
        "\n{:>8} {:>5} | {:>12} {:>12} {:>7} | {:>11} {:>11} {:>7}",
        "backend", "batch", "prefill", "torch", "ratio", "decode", "torch", "ratio"
    );
    for (name, batch, prefill, decode) in &ours {
        if let Some((_, ref_prefill, ref_decode)) = reference.iter().find(|r| r.0 == *batch) {
            println!(
                "{name:>8} {batch:>5} | {prefill:>12.1} {ref_prefill:>12.1} {:>6.2}x | {decode:>11.2} {ref_decode:>11.2} {:>6.2}x",
                prefill / ref_prefill,
                decode / ref_decode
            );
        }
    }
    println!("(tokens/s; ratio > 1 = laconic faster)");
    Ok(())
}
