//! GPU check (issue 9): logit parity, rollout decode speed and one RL update step on the compiled-in
//! backend, each a subcommand that prints a short table and writes a JSON file (`--out`).
//!
//! ```text
//! CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda --example gpu_check
//! target/release/examples/gpu_check parity --dtype f32  --out parity_f32.json
//! target/release/examples/gpu_check parity --dtype bf16 --out parity_bf16.json
//! target/release/examples/gpu_check decode --out decode.json     # Qwen3-0.6B shape, bf16, batch 1/64/256
//! target/release/examples/gpu_check update --out update.json     # 0.6B shape, 8 × 1024 tokens
//! ```
//! `scripts/gpu-check.sh` runs all of them and the PyTorch references on the GPU machine. Every size
//! shrinks by flags, so the same binary smoke-tests on CPU (the default `flex` feature) in seconds:
//! `gpu_check decode --layers 2 --vocab 4096 --hidden 128 --inter 384 --heads 4 --kv-heads 2
//! --head-dim 32 --prompt-len 16 --new-tokens 8 --batch 1,4`.
//!
//! - `parity`: every fixture of `tests/fixtures/parity/` (tiny random checkpoints; expected logits from
//!   transformers on CPU in f32), training forward of each prompt alone: max relative logit error
//!   (`max|ours − ref| / max|ref|`), and cached greedy decoding through the rollout engine against
//!   transformers' greedy ids. Tolerances: f32 ≤ 1e-4 (as the CPU tests); bf16 ≤ 3e-2 — bf16 keeps 8
//!   mantissa bits (unit roundoff 2⁻⁹ ≈ 2e-3), every activation is rounded after each op and the errors
//!   of a few layers add up to about 5 roundoffs of the largest logit; greedy ids in bf16 are reported,
//!   not required (the fixtures' smallest greedy margins are ~0.03).
//! - `decode`: the rollout engine (prefix sharing, continuous batching, host-side sampling) on random
//!   weights: `batch` prompts of `prompt_len` tokens, one sample each, `new_tokens` tokens each (no stop
//!   ids). Tokens/s end to end (prefill included) and decode-only, and at batch 1 the fraction of the
//!   memory-bandwidth roofline: `(params · bytes/param + KV bytes) · tokens/s ÷ peak bandwidth`.
//! - `update`: one `PolicyUpdater` step (GRPO token-mean clipped loss, backward through the
//!   memory-bounded LM head, global clip, AdamW) on `sequences × (prompt + response)` tokens; seconds per
//!   step after a warm-up step, and peak memory (GPU memory through `nvidia-smi`, else the process's RSS).
//!
//! What the numbers leave out: random weights (greedy decoding of a random model never stops early; with
//! no stop ids every row decodes exactly `new_tokens`); the first run on a fresh GPU JIT-compiles and
//! autotunes every kernel, which the warm-ups absorb.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use burn::module::{AutodiffModule, Module};
use burn::prelude::*;
use clap::{Parser, Subcommand};
use common::{device_with_dtype, observed_dtype, write_json, Dtype, MemoryProbe, Shape};
use laconic::backend::{self, Autodiff};
use laconic::model::{load_model, AttentionLayout, CausalLm};
use laconic::optim::{OptimConfig, PolicyUpdater, UpdateBatch, UpdateSequence};
use laconic::rollout::{Engine, EngineConfig, Progress, SamplingParams};
use laconic_harness::parity::{read_expected, rel_err, F32_TOLERANCE};
use laconic_harness::{mean_std, synthetic_ids};
use serde_json::json;

/// The compiled-in backend (`cuda` with `--features cuda`, else `flex`).
type B = backend::Backend;

/// GPU check: parity, decode and update on the compiled-in backend.
#[derive(Parser, Debug)]
struct Args {
    #[command(subcommand)]
    section: Section,
}

#[derive(Subcommand, Debug)]
enum Section {
    /// Logit and greedy-id parity with transformers on the fixture checkpoints.
    Parity(ParityArgs),
    /// Rollout-engine decode tokens/s at several batch sizes, and the batch-1 roofline fraction.
    Decode(DecodeArgs),
    /// Time and peak memory of one RL update step.
    Update(UpdateArgs),
}

/// Options of `parity`.
#[derive(clap::Args, Debug)]
struct ParityArgs {
    /// Float dtype of every tensor (one per process: run the other in another process).
    #[arg(long, value_enum, default_value = "f32")]
    dtype: Dtype,
    /// Folder holding the parity fixtures (relative to the working directory).
    #[arg(long, default_value = "tests/fixtures/parity")]
    fixtures: PathBuf,
    /// JSON file to write the results to.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Options of `decode`.
#[derive(clap::Args, Debug)]
struct DecodeArgs {
    #[command(flatten)]
    shape: Shape,
    /// Float dtype of weights, activations and KV cache.
    #[arg(long, value_enum, default_value = "bf16")]
    dtype: Dtype,
    /// Prompt tokens of every row.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// New tokens per row.
    #[arg(long, default_value_t = 128)]
    new_tokens: usize,
    /// Batch sizes (rows decoded together).
    #[arg(long, value_delimiter = ',', default_value = "1,64,256")]
    batch: Vec<usize>,
    /// Prompts prefilled per forward call.
    #[arg(long, default_value_t = 64)]
    prefill_batch: usize,
    /// Sample at temperature 1 instead of greedy decoding.
    #[arg(long)]
    sample: bool,
    /// Peak memory bandwidth in GB/s for the roofline: 4800 = H200 (HBM3e); H100 SXM is 3350.
    #[arg(long, default_value_t = 4800.0)]
    peak_gbps: f64,
    /// JSON file to write the results to.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Options of `update`.
#[derive(clap::Args, Debug)]
struct UpdateArgs {
    #[command(flatten)]
    shape: Shape,
    /// Float dtype of weights, activations, gradients and AdamW moments.
    #[arg(long, value_enum, default_value = "bf16")]
    dtype: Dtype,
    /// Sequences in the rollout batch.
    #[arg(long, default_value_t = 8)]
    sequences: usize,
    /// Prompt tokens per sequence.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// Response tokens per sequence (prompt + response = 1024 by default).
    #[arg(long, default_value_t = 896)]
    response_len: usize,
    /// Sequences per micro-batch (`ppo_micro_batch_size`).
    #[arg(long, default_value_t = 8)]
    micro_batch: usize,
    /// Tokens per LM-head chunk (`logprob_chunk_size`).
    #[arg(long, default_value_t = 1024)]
    chunk: usize,
    /// Timed steps after one warm-up step.
    #[arg(long, default_value_t = 2)]
    steps: usize,
    /// JSON file to write the results to.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    laconic_harness::exit_on_error(run(Args::parse()), |_| 1);
}

fn run(args: Args) -> Result<()> {
    let (out, report) = match args.section {
        Section::Parity(a) => (a.out.clone(), parity(&a)?),
        Section::Decode(a) => (a.out.clone(), decode(&a)?),
        Section::Update(a) => (a.out.clone(), update(&a)?),
    };
    if let Some(path) = out {
        write_json(&path, &report)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// parity

/// The same in bf16: ~5 unit roundoffs (2⁻⁹) of the largest logit after a few layers.
const BF16_TOLERANCE: f32 = 3e-2;

/// The fixture folders, relative to `--fixtures`.
const FIXTURES: [&str; 5] = [
    "qwen3_tied",
    "qwen3_untied",
    "qwen2_bias",
    "qwen3_moe/norm_topk",
    "qwen3_moe/sparse_step2",
];

fn parity(args: &ParityArgs) -> Result<serde_json::Value> {
    let device = device_with_dtype::<B>(args.dtype)?;
    let tolerance = match args.dtype {
        Dtype::F32 => F32_TOLERANCE,
        Dtype::Bf16 => BF16_TOLERANCE,
    };
    println!(
        "parity vs transformers (CPU, f32): backend {}, dtype {} (device float dtype {}), tolerance {tolerance:e}",
        backend::NAME,
        args.dtype.name(),
        observed_dtype::<B>(&device)
    );
    println!(
        "{:<24} | {:>12} | {:>13} | pass",
        "fixture", "max rel err", "greedy ids"
    );
    let mut rows = Vec::new();
    let mut all_pass = true;
    for name in FIXTURES {
        let dir = args.fixtures.join(name);
        let model = load_model::<B>(&dir, &device)
            .with_context(|| format!("failed to load `{}`", dir.display()))?;
        let expected = read_expected(&dir).map_err(anyhow::Error::msg)?;
        // 1. Training forward of each prompt alone.
        let mut worst = 0f32;
        for (prompt, reference) in expected.prompts.iter().zip(&expected.logits) {
            let len = prompt.len();
            let ids: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
            let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, len]), &device);
            let logits = model.forward(tokens, &AttentionLayout::left_padded(&[len], len)?)?;
            let ours = logits.into_data().convert::<f32>().into_vec::<f32>()?;
            worst = worst.max(rel_err(&ours, reference));
        }
        // 2. Cached greedy decoding through the rollout engine.
        let engine = Engine::new(&model, EngineConfig::default())?;
        let mut same = 0;
        for (prompt, reference) in expected.prompts.iter().zip(&expected.greedy) {
            let rollouts = engine.generate(
                std::slice::from_ref(prompt),
                1,
                &SamplingParams::greedy(reference.len()),
                &mut (),
            )?;
            same += usize::from(&rollouts[0].response_ids == reference);
        }
        let total = expected.prompts.len();
        // Greedy ids must match in f32; in bf16 a near-tie may flip, so they are reported only.
        let pass = worst <= tolerance && (args.dtype == Dtype::Bf16 || same == total);
        all_pass &= pass;
        println!(
            "{name:<24} | {worst:>12.3e} | {:>13} | {}",
            format!("{same}/{total} same"),
            if pass { "ok" } else { "FAIL" }
        );
        rows.push(
            json!({"fixture": name, "max_rel_err": worst, "greedy_same": same,
            "greedy_total": total, "pass": pass}),
        );
    }
    println!(
        "parity {}: {}",
        args.dtype.name(),
        if all_pass { "PASS" } else { "FAIL" }
    );
    Ok(json!({
        "section": "parity", "backend": backend::NAME, "dtype": args.dtype.name(),
        "device_dtype": observed_dtype::<B>(&device), "tolerance": tolerance,
        "fixtures": rows, "pass": all_pass,
    }))
}

// ---------------------------------------------------------------------------------------------------
// decode

/// One timed generation: `batch` prompts × 1 sample × `new_tokens` tokens.
struct DecodeTiming {
    /// Generated tokens (all rows).
    tokens: usize,
    /// Wall seconds of the whole `generate` (prefill included).
    wall_s: f64,
    /// Seconds from the end of prefill (every row has its first token) to the end.
    decode_s: f64,
}

fn time_generate(
    model: &CausalLm<B>,
    args: &DecodeArgs,
    batch: usize,
    new_tokens: usize,
) -> Result<DecodeTiming> {
    let vocab = model.config().vocab_size;
    let prompts: Vec<Vec<u32>> = (0..batch)
        .map(|row| synthetic_ids(row, args.prompt_len, vocab, 0))
        .collect();
    let engine = Engine::new(
        model,
        EngineConfig {
            max_batch: batch,
            prefill_batch: args.prefill_batch.clamp(1, batch),
            ..EngineConfig::default()
        },
    )?;
    let params = SamplingParams {
        temperature: if args.sample { 1.0 } else { 0.0 },
        max_tokens: new_tokens,
        seed: 1,
        ..SamplingParams::default()
    };
    let start = Instant::now();
    // The first progress report with every row holding a token marks the end of prefill.
    let mut decode_start: Option<Instant> = None;
    let mut observer = |p: &Progress| {
        if decode_start.is_none() && p.tokens >= batch {
            decode_start = Some(Instant::now());
        }
    };
    let rollouts = engine.generate(&prompts, 1, &params, &mut observer)?;
    let end = Instant::now();
    let tokens: usize = rollouts.iter().map(|r| r.len()).sum();
    ensure!(
        tokens == batch * new_tokens,
        "expected {} tokens, generated {tokens}",
        batch * new_tokens
    );
    Ok(DecodeTiming {
        tokens,
        wall_s: (end - start).as_secs_f64(),
        decode_s: (end - decode_start.unwrap_or(start)).as_secs_f64(),
    })
}

fn decode(args: &DecodeArgs) -> Result<serde_json::Value> {
    ensure!(args.new_tokens >= 2, "`--new-tokens` must be at least 2");
    let device = device_with_dtype::<B>(args.dtype)?;
    let config = args.shape.config()?;
    let model = CausalLm::<B>::init(&config, &device)?;
    let params = model.num_params();
    let bytes = args.dtype.bytes();
    // KV bytes read per decode step at context `ctx`: K and V of every layer.
    let kv_per_token =
        2 * config.num_hidden_layers * config.num_kv_heads() * config.head_dim() * bytes;
    let mean_ctx = args.prompt_len as f64 + args.new_tokens as f64 / 2.0;
    let bytes_per_step = (params * bytes) as f64 + kv_per_token as f64 * mean_ctx;
    println!(
        "decode: backend {}, dtype {} (device float dtype {}), {} shape ({} layers, vocab {}), {:.3} B params, random weights, {}, prompt {} + {} new tokens, engine (prefix sharing, continuous batching, host sampling)",
        backend::NAME,
        args.dtype.name(),
        observed_dtype::<B>(&device),
        if args.shape.is_qwen3_06b() { "Qwen3-0.6B" } else { "reduced" },
        config.num_hidden_layers,
        config.vocab_size,
        params as f64 / 1e9,
        if args.sample { "temperature 1" } else { "greedy" },
        args.prompt_len,
        args.new_tokens
    );
    println!(
        "roofline: {:.1} MB read per batch-1 decode step (weights + mean KV), peak {} GB/s (--peak-gbps; H200 4800, H100 SXM 3350)",
        bytes_per_step / 1e6,
        args.peak_gbps
    );
    println!(
        "{:>5} | {:>8} | {:>8} | {:>12} | {:>12} | {:>9}",
        "batch", "tokens", "wall s", "tok/s (e2e)", "decode tok/s", "roofline"
    );
    let mut rows = Vec::new();
    for &batch in &args.batch {
        ensure!(batch > 0, "batch sizes must be positive");
        // Warm-up at this batch size: JIT compilation and autotuning of its shapes.
        time_generate(&model, args, batch, 2)?;
        let t = time_generate(&model, args, batch, args.new_tokens)?;
        let tok_s = t.tokens as f64 / t.wall_s;
        let decode_tok_s = (t.tokens - batch) as f64 / t.decode_s;
        // At batch 1 each decode step reads every weight once: achieved bandwidth / peak.
        let roofline = (batch == 1).then(|| bytes_per_step * decode_tok_s / (args.peak_gbps * 1e9));
        println!(
            "{batch:>5} | {:>8} | {:>8.2} | {tok_s:>12.1} | {decode_tok_s:>12.1} | {:>9}",
            t.tokens,
            t.wall_s,
            roofline.map_or("-".into(), |r| format!("{:.1} %", 100.0 * r))
        );
        rows.push(
            json!({"batch": batch, "tokens": t.tokens, "wall_s": t.wall_s,
            "decode_s": t.decode_s, "tok_s": tok_s, "decode_tok_s": decode_tok_s,
            "roofline_frac": roofline}),
        );
    }
    Ok(json!({
        "section": "decode", "backend": backend::NAME, "dtype": args.dtype.name(),
        "device_dtype": observed_dtype::<B>(&device), "qwen3_06b_shape": args.shape.is_qwen3_06b(),
        "layers": config.num_hidden_layers, "vocab": config.vocab_size, "params": params,
        "prompt_len": args.prompt_len, "new_tokens": args.new_tokens, "sample": args.sample,
        "peak_gbps": args.peak_gbps, "bytes_per_step_batch1": bytes_per_step, "rows": rows,
    }))
}

// ---------------------------------------------------------------------------------------------------
// update

/// Deterministic token ids, advantages (1, −0.5, −0.5, …) and on-policy old log-probs.
fn update_batch(
    model: &CausalLm<Autodiff>,
    args: &UpdateArgs,
    optim: &OptimConfig,
) -> Result<UpdateBatch> {
    let vocab = model.config().vocab_size;
    let ids = |seq: usize, len: usize, salt: usize| synthetic_ids(seq, len, vocab, salt);
    let sequences = (0..args.sequences)
        .map(|i| UpdateSequence {
            prompt_ids: ids(i, args.prompt_len, 1),
            response_ids: ids(i, args.response_len, 17),
            old_logprobs: Vec::new(),
            advantage: if i % 3 == 0 { 1.0 } else { -0.5 },
            masked: false,
            group: i / 4,
        })
        .collect();
    Ok(UpdateBatch::on_policy(
        &model.valid(),
        sequences,
        &optim.logprob_options(),
    )?)
}

fn update(args: &UpdateArgs) -> Result<serde_json::Value> {
    ensure!(args.steps >= 1, "`--steps` must be at least 1");
    let probe = MemoryProbe::start();
    let device = device_with_dtype::<B>(args.dtype)?;
    let config = args.shape.config()?;
    let optim = OptimConfig {
        ppo_micro_batch_size: args.micro_batch,
        logprob_chunk_size: args.chunk,
        ..OptimConfig::default()
    };
    let mut model = CausalLm::<Autodiff>::init(&config, &device)?;
    let batch = update_batch(&model, args, &optim)?;
    let mut updater = PolicyUpdater::new(optim, &model)?;
    let tokens = args.sequences * (args.prompt_len + args.response_len);
    println!(
        "update: backend {}, dtype {} (device float dtype {}), {} shape ({} layers, vocab {}), {:.3} B params, {} sequences × ({} + {}) = {tokens} tokens, micro-batch {}, head chunk {}, GRPO token-mean, AdamW",
        backend::NAME,
        args.dtype.name(),
        observed_dtype::<B>(&device),
        if args.shape.is_qwen3_06b() { "Qwen3-0.6B" } else { "reduced" },
        config.num_hidden_layers,
        config.vocab_size,
        model.num_params() as f64 / 1e9,
        args.sequences,
        args.prompt_len,
        args.response_len,
        args.micro_batch,
        args.chunk
    );
    let mut steps = Vec::new();
    let mut first = [0.0; 3];
    for i in 0..=args.steps {
        let start = Instant::now();
        let (next, metrics) = updater.step(model, &batch, None)?;
        model = next;
        B::sync(&device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
        if i == 0 {
            // Warm-up (JIT and autotuning); its metrics are the correctness column.
            first = [metrics.entropy, metrics.pg_loss, metrics.grad_norm];
        } else {
            steps.push(start.elapsed().as_secs_f64());
        }
    }
    let memory = probe.finish();
    let (mean, std) = mean_std(&steps);
    println!(
        "{:>12} | {:>10} | {:>14} | first step: entropy / pg_loss / grad_norm",
        "s/step", "tokens/s", "peak mem GiB"
    );
    println!(
        "{:>5.3} ± {:<4.3} | {:>10.0} | {:>14.2} | {:.4} / {:.5} / {:.4}",
        mean,
        std,
        tokens as f64 / mean,
        memory.delta_gib(),
        first[0],
        first[1],
        first[2]
    );
    println!("memory: {} (peak above baseline)", memory.kind);
    Ok(json!({
        "section": "update", "backend": backend::NAME, "dtype": args.dtype.name(),
        "device_dtype": observed_dtype::<B>(&device), "qwen3_06b_shape": args.shape.is_qwen3_06b(),
        "layers": config.num_hidden_layers, "vocab": config.vocab_size, "params": model.num_params(),
        "sequences": args.sequences, "prompt_len": args.prompt_len, "response_len": args.response_len,
        "micro_batch": args.micro_batch, "chunk": args.chunk, "step_s": steps, "mean_s": mean,
        "std_s": std, "tokens_per_s": tokens as f64 / mean,
        "memory": {"kind": memory.kind, "peak_bytes": memory.peak_bytes,
            "baseline_bytes": memory.baseline_bytes, "samples": memory.samples,
            "delta_gib": memory.delta_gib()},
        "first_step": {"entropy": first[0], "pg_loss": first[1], "grad_norm": first[2]},
    }))
}
