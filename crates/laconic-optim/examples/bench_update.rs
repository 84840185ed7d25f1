//! Update-step benchmark: one full actor update (log-prob recomputation + backward + global clip +
//! AdamW) of a small Qwen3 on a batch of rollouts, laconic on the flex (and optionally ndarray) CPU
//! backend against the same step in PyTorch.
//!
//! ```text
//! cargo run --release -p laconic-optim --example bench_update -- --python scratch/ref/bin/python
//! ```
//! Shape (defaults): hidden 256, 4 layers, 4 query / 2 KV heads of 64, MLP 768, vocab 4096, tied
//! embeddings; 8 sequences of 32 prompt + 224 response tokens (256 tokens each), f32, GRPO token-mean
//! loss, micro-batch 8, head chunks of 512 tokens. With `--python`, runs
//! `benches/reference/update_step.py` in the same invocation on the same weights and batch (written to
//! a temporary folder), with the same thread count, and prints ours, reference and the ratio
//! (`>1 = laconic faster`), plus a correctness column: the first step's entropy, pg loss and grad norm
//! on both sides. Takes about a minute on 2 cores.
//!
//! What the comparison leaves out: both sides keep the `[tokens, V]` logits for the backward here (laconic
//! because they fit `logprob_keep_logits_mib`; above it laconic recomputes them chunk by chunk);
//! PyTorch uses SDPA attention; neither side uses mixed precision.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::backend::{Autodiff, Flex, NdArray};
use burn::module::AutodiffModule;
use clap::Parser;
use laconic_model::{load_model, named_tensors, save_pretrained, Qwen3, Qwen3Config};
use laconic_optim::{LogprobBackend, OptimConfig, PolicyUpdater, UpdateBatch, UpdateSequence};

/// Update-step benchmark options.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Sequences in the rollout batch.
    #[arg(long, default_value_t = 8)]
    sequences: usize,
    /// Prompt tokens per sequence.
    #[arg(long, default_value_t = 32)]
    prompt_len: usize,
    /// Response tokens per sequence.
    #[arg(long, default_value_t = 224)]
    response_len: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Decoder layers.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Vocabulary size.
    #[arg(long, default_value_t = 4096)]
    vocab: usize,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 8)]
    micro_batch: usize,
    /// Tokens per LM-head chunk.
    #[arg(long, default_value_t = 512)]
    chunk: usize,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Threads for both sides (sets `RAYON_NUM_THREADS` for burn, `torch.set_num_threads` for PyTorch);
    /// default: all cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Backends to time (`flex`, `ndarray`).
    #[arg(long, value_delimiter = ',', default_value = "flex")]
    backends: Vec<String>,
    /// Python interpreter with torch + transformers, to run the reference in the same invocation.
    #[arg(long)]
    python: Option<String>,
}

fn model_config(args: &Args) -> Result<Qwen3Config> {
    let text = format!(
        r#"{{"model_type": "qwen3", "vocab_size": {}, "hidden_size": {}, "intermediate_size": {},
        "num_hidden_layers": {}, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": true}}"#,
        args.vocab,
        args.hidden,
        3 * args.hidden,
        args.layers
    );
    Ok(Qwen3Config::from_json_str(&text, "<bench>")?)
}

fn optim_config(args: &Args) -> OptimConfig {
    OptimConfig {
        ppo_micro_batch_size: args.micro_batch,
        logprob_chunk_size: args.chunk,
        ..OptimConfig::default()
    }
}

/// Deterministic token ids and advantages (1, −0.5, −0.5, …); old log-probs are the model's own
/// (on-policy).
fn make_batch<B: LogprobBackend>(model: &Qwen3<B>, args: &Args) -> Result<UpdateBatch> {
    let vocab = args.vocab as u64;
    let ids = |seq: usize, len: usize, salt: u64| -> Vec<u32> {
        (0..len)
            .map(|t| ((seq as u64 * 7919 + t as u64 * 104_729 + salt) % vocab) as u32)
            .collect()
    };
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
        &optim_config(args).logprob_options(),
    )?)
}

/// Wall and CPU seconds per step and the first (warm-up) step's metrics.
struct Timing {
    steps: Vec<f64>,
    cpu: Vec<f64>,
    first: [f64; 3],
}

/// CPU seconds (user + system) used by this process so far, from `/proc/self/stat` (Linux; 0 elsewhere).
/// On a machine shared with other jobs, single-threaded CPU time is the load-independent measure.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Random weights (written to `dir/model`, so every backend and PyTorch start from the same ones) and
/// the rollout batch (`dir/batch.json`).
fn prepare(args: &Args, dir: &Path) -> Result<UpdateBatch> {
    let model = Qwen3::<Autodiff<NdArray>>::init(&model_config(args)?, &Default::default())?;
    named_tensors(&model); // materialise the lazily initialised weights
    save_pretrained(&model, dir.join("model"))?;
    let batch = make_batch(&model, args)?;
    write_batch(&batch, &dir.join("batch.json"))?;
    Ok(batch)
}

fn run_backend<B: LogprobBackend>(args: &Args, dir: &Path, batch: &UpdateBatch) -> Result<Timing> {
    let mut model: Qwen3<B> = load_model(dir.join("model"), &Default::default())?;
    let mut updater = PolicyUpdater::new(optim_config(args), &model)?;
    let (mut steps, mut cpu) = (Vec::new(), Vec::new());
    let mut first = [0.0; 3];
    for i in 0..=args.steps {
        let (start, start_cpu) = (Instant::now(), cpu_seconds());
        let (next, metrics) = updater.step(model, batch, None)?;
        model = next;
        if i == 0 {
            first = [metrics.entropy, metrics.pg_loss, metrics.grad_norm];
        } else {
            steps.push(start.elapsed().as_secs_f64());
            cpu.push(cpu_seconds() - start_cpu);
        }
    }
    Ok(Timing { steps, cpu, first })
}

fn write_batch(batch: &UpdateBatch, path: &Path) -> Result<()> {
    let sequences: Vec<serde_json::Value> = batch
        .sequences
        .iter()
        .map(|s| {
            serde_json::json!({"prompt_ids": s.prompt_ids, "response_ids": s.response_ids,
                "old_logprobs": s.old_logprobs, "advantage": s.advantage})
        })
        .collect();
    std::fs::write(path, serde_json::to_string(&sequences)?)
        .with_context(|| format!("failed to write `{}`", path.display()))
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

fn reference(args: &Args, python: &str, dir: &Path, threads: usize) -> Result<(Timing, String)> {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/reference/update_step.py");
    let output = Command::new(python)
        .arg(&script)
        .args(["--model-dir", &dir.join("model").display().to_string()])
        .args(["--batch", &dir.join("batch.json").display().to_string()])
        .args([
            "--micro-batch",
            &args.micro_batch.to_string(),
            "--steps",
            &args.steps.to_string(),
        ])
        .args(["--threads", &threads.to_string()])
        .output()
        .with_context(|| format!("failed to run `{python} {}`", script.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().context("reference printed nothing")?;
    let value: serde_json::Value =
        serde_json::from_str(line).context("reference printed a non-JSON line")?;
    let list = |k: &str| -> Result<Vec<f64>> {
        let values = value[k].as_array().with_context(|| k.to_string())?;
        Ok(values.iter().filter_map(|v| v.as_f64()).collect())
    };
    let get = |k: &str| value[k].as_f64().with_context(|| k.to_string());
    let timing = Timing {
        steps: list("step_s")?,
        cpu: list("cpu_s")?,
        first: [get("entropy")?, get("pg_loss")?, get("grad_norm")?],
    };
    Ok((timing, value["torch"].as_str().unwrap_or("?").to_string()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(threads) = args.threads {
        // Before the first burn op creates rayon's global pool.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    });
    let tokens = args.sequences * (args.prompt_len + args.response_len);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "Qwen3 hidden {} × {} layers, vocab {}, tied; {} sequences × ({} prompt + {} response) = {tokens} tokens; f32; micro-batch {}; {threads} threads",
        args.hidden, args.layers, args.vocab, args.sequences, args.prompt_len, args.response_len, args.micro_batch
    );
    let dir = std::env::temp_dir().join(format!("laconic-bench-update-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let batch = prepare(&args, &dir)?;
    let mut ours = Vec::new();
    for backend in &args.backends {
        let timing = match backend.as_str() {
            "flex" => run_backend::<Autodiff<Flex>>(&args, &dir, &batch)?,
            "ndarray" => run_backend::<Autodiff<NdArray>>(&args, &dir, &batch)?,
            other => anyhow::bail!("unknown backend `{other}` (expected `flex` or `ndarray`)"),
        };
        let (mean, std) = mean_std(&timing.steps);
        let (cpu, _) = mean_std(&timing.cpu);
        println!("{backend:>8}: {mean:.3} ± {std:.3} s/step (CPU {cpu:.3} s/step)");
        ours.push((backend.clone(), timing));
    }
    if let Some(python) = &args.python {
        let (reference, torch) = reference(&args, python, &dir, threads)?;
        let (ref_mean, ref_std) = mean_std(&reference.steps);
        let (ref_cpu, _) = mean_std(&reference.cpu);
        println!(
            "\n{:>8} | {:>16} | {:>16} | {:>7} | {:>13} | {:>7} | first step: entropy / pg_loss / grad_norm (ours vs torch)",
            "backend", "laconic s/step", "torch s/step", "ratio", "CPU s/step", "ratio"
        );
        for (name, timing) in &ours {
            let (mean, std) = mean_std(&timing.steps);
            let (cpu, _) = mean_std(&timing.cpu);
            let [e, p, g] = timing.first;
            let [re, rp, rg] = reference.first;
            println!(
                "{name:>8} | {mean:>7.3} ± {std:<6.3} | {ref_mean:>7.3} ± {ref_std:<6.3} | {:>6.2}x | {cpu:>6.2}/{ref_cpu:<6.2} | {:>6.2}x | {e:.5}/{re:.5}  {p:.5}/{rp:.5}  {g:.5}/{rg:.5}",
                ref_mean / mean,
                ref_cpu / cpu
            );
        }
        println!("(ratio > 1 = laconic faster; torch {torch}, {threads} threads; wall ± stdev over timed steps; CPU = user + system time)");
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
