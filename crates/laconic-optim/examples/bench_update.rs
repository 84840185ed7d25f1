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
//! **Long sequences** (`--lengths 1024,2048,4096,8192,16384`): one sequence of each length (32 prompt
//! tokens), micro-batch 1, with and without layer recompute (`--activation-checkpointing`). Every
//! length and setting runs in a process of its own (this example re-run with `--data DIR --json`), and
//! so does each PyTorch reference (SDPA, with and without
//! `gradient_checkpointing_enable()`, up to `--reference-max-len`), so each peak RSS (`VmHWM`, the
//! kernel's `ru_maxrss`) is that side's alone.
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
use laconic_harness::{cpu_seconds, mean_std, peak_rss_bytes, synthetic_ids};
use laconic_model::{
    load_model, named_tensors, save_pretrained, ActivationCheckpointing, AttentionBlocks, CausalLm,
    DecoderConfig, DenseShape, LoraConfig,
};
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
    /// Queries per attention tile.
    #[arg(long, default_value_t = AttentionBlocks::default().query_block)]
    query_block: usize,
    /// Key columns per attention tile.
    #[arg(long, default_value_t = AttentionBlocks::default().key_block)]
    key_block: usize,
    /// What the update keeps of each layer for the backward: `none` or `layer` (recompute). The sweep
    /// runs both.
    #[arg(long, default_value = "none", value_parser = parse_checkpointing)]
    activation_checkpointing: ActivationCheckpointing,
    /// Long-sequence sweep: these total lengths (one sequence each, micro-batch 1), each configuration
    /// in its own process.
    #[arg(long, value_delimiter = ',')]
    lengths: Vec<usize>,
    /// Longest sequence the sweep runs the PyTorch reference at (its CPU attention keeps T×T scores).
    #[arg(long, default_value_t = 8192)]
    reference_max_len: usize,
    /// Train LoRA adapters of this rank (all seven projections, alpha = 2·rank) on the frozen model
    /// instead of every parameter.
    #[arg(long)]
    lora: Option<usize>,
    /// Compare full fine-tuning with LoRA of this rank on the same weights and batch, each in a
    /// process of its own: seconds per step, optimizer state and peak RSS.
    #[arg(long)]
    compare_lora: Option<usize>,
    /// Child mode: load the weights and batch from this folder (written by the parent).
    #[arg(long, hide = true)]
    data: Option<PathBuf>,
    /// Child mode: print one JSON line (timings, first-step metrics, peak RSS) instead of the table.
    #[arg(long, hide = true)]
    json: bool,
}

/// `none` or `layer`, as in `[optim] activation_checkpointing`.
fn parse_checkpointing(name: &str) -> Result<ActivationCheckpointing, String> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| format!("`{name}` is not `none` or `layer`"))
}

/// The name [`parse_checkpointing`] reads.
fn checkpointing_name(checkpointing: ActivationCheckpointing) -> String {
    serde_json::to_value(checkpointing)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The benchmark's model: 4 query heads on 2 key/value heads of 64, MLP 3× the hidden size.
fn model_config(args: &Args) -> Result<DecoderConfig> {
    let shape = DenseShape {
        layers: args.layers,
        vocab: args.vocab,
        hidden: args.hidden,
        inter: 3 * args.hidden,
        heads: 4,
        kv_heads: 2,
        head_dim: 64,
    };
    Ok(shape.config()?)
}

fn optim_config(args: &Args) -> OptimConfig {
    OptimConfig {
        ppo_micro_batch_size: args.micro_batch,
        logprob_chunk_size: args.chunk,
        activation_checkpointing: args.activation_checkpointing,
        ..OptimConfig::default()
    }
}

fn attention_blocks(args: &Args) -> AttentionBlocks {
    AttentionBlocks {
        query_block: args.query_block,
        key_block: args.key_block,
    }
}

/// Deterministic token ids and advantages (1, −0.5, −0.5, …); old log-probs are the model's own
/// (on-policy).
fn make_batch<B: LogprobBackend>(model: &CausalLm<B>, args: &Args) -> Result<UpdateBatch> {
    let ids = |seq: usize, len: usize, salt: usize| synthetic_ids(seq, len, args.vocab, salt);
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

/// Wall and CPU seconds per step, the first (warm-up) step's metrics and the process's peak RSS.
struct Timing {
    steps: Vec<f64>,
    cpu: Vec<f64>,
    first: [f64; 3],
    peak_rss: u64,
    /// Values in the optimizer state after the last step.
    optimizer_numel: usize,
}

/// Random weights (written to `dir/model`, so every backend and PyTorch start from the same ones) and
/// the rollout batch (`dir/batch.json`).
fn prepare(args: &Args, dir: &Path) -> Result<UpdateBatch> {
    let model = CausalLm::<Autodiff<Flex>>::init(&model_config(args)?, &Default::default())?;
    named_tensors(&model); // materialise the lazily initialised weights
    save_pretrained(&model, dir.join("model"))?;
    let batch = make_batch(&model, args)?;
    write_batch(&batch, &dir.join("batch.json"))?;
    Ok(batch)
}

fn run_backend<B: LogprobBackend>(args: &Args, dir: &Path, batch: &UpdateBatch) -> Result<Timing> {
    let mut model: CausalLm<B> = load_model(dir.join("model"), &Default::default())?;
    if let Some(rank) = args.lora {
        let lora = LoraConfig {
            rank,
            alpha: 2.0 * rank as f64,
            ..LoraConfig::default()
        };
        model = model.with_lora(&lora, 0)?;
    }
    model.set_attention_blocks(attention_blocks(args))?;
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
    Ok(Timing {
        steps,
        cpu,
        first,
        peak_rss: peak_rss_bytes(),
        optimizer_numel: updater.optimizer_state_numel(),
    })
}

/// The batch written by [`write_batch`] (groups of four, as [`make_batch`] makes them).
fn read_batch(path: &Path) -> Result<UpdateBatch> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    let values: Vec<serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a batch", path.display()))?;
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64())
                    .map(|x| x as u32)
                    .collect()
            })
            .unwrap_or_default()
    };
    let sequences = values
        .iter()
        .enumerate()
        .map(|(i, v)| UpdateSequence {
            prompt_ids: ids(&v["prompt_ids"]),
            response_ids: ids(&v["response_ids"]),
            old_logprobs: v["old_logprobs"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_f64())
                        .map(|x| x as f32)
                        .collect()
                })
                .unwrap_or_default(),
            advantage: v["advantage"].as_f64().unwrap_or(0.0) as f32,
            masked: false,
            group: i / 4,
        })
        .collect();
    Ok(UpdateBatch { sequences })
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

/// The timing of a child process's JSON line (this example with `--json`, or the PyTorch reference).
fn parse_timing(line: &str) -> Result<Timing> {
    let value: serde_json::Value = serde_json::from_str(line).context("a non-JSON line")?;
    let list = |k: &str| -> Result<Vec<f64>> {
        let values = value[k].as_array().with_context(|| k.to_string())?;
        Ok(values.iter().filter_map(|v| v.as_f64()).collect())
    };
    let get = |k: &str| value[k].as_f64().with_context(|| k.to_string());
    Ok(Timing {
        steps: list("step_s")?,
        cpu: list("cpu_s")?,
        first: [get("entropy")?, get("pg_loss")?, get("grad_norm")?],
        peak_rss: value["peak_rss_bytes"].as_u64().unwrap_or(0),
        optimizer_numel: value["optimizer_numel"].as_u64().unwrap_or(0) as usize,
    })
}

/// Runs `command` and parses the last line it prints as a [`Timing`].
fn child_timing(mut command: Command, what: &str) -> Result<Timing> {
    let output = command
        .output()
        .with_context(|| format!("failed to start {what}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .with_context(|| format!("{what} printed nothing"))?;
    parse_timing(line).with_context(|| format!("{what} printed `{line}`"))
}

/// The PyTorch reference command on the data in `dir`.
fn reference_command(
    args: &Args,
    python: &str,
    dir: &Path,
    threads: usize,
    checkpointing: bool,
) -> Command {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/reference/update_step.py");
    let mut command = Command::new(python);
    command
        .arg(&script)
        .args(["--model-dir", &dir.join("model").display().to_string()])
        .args(["--batch", &dir.join("batch.json").display().to_string()])
        .args(["--micro-batch", &args.micro_batch.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args(["--threads", &threads.to_string()]);
    if checkpointing {
        command.arg("--gradient-checkpointing");
    }
    command
}

fn reference(args: &Args, python: &str, dir: &Path, threads: usize) -> Result<Timing> {
    child_timing(
        reference_command(args, python, dir, threads, false),
        "the PyTorch reference",
    )
}

/// Child mode (`--data DIR --json`): one configuration on the prepared data, one JSON line out.
fn run_child(args: &Args, dir: &Path) -> Result<()> {
    let batch = read_batch(&dir.join("batch.json"))?;
    let timing = run_backend::<Autodiff<Flex>>(args, dir, &batch)?;
    let [entropy, pg_loss, grad_norm] = timing.first;
    println!(
        "{}",
        serde_json::json!({"step_s": timing.steps, "cpu_s": timing.cpu, "entropy": entropy,
            "pg_loss": pg_loss, "grad_norm": grad_norm, "peak_rss_bytes": timing.peak_rss,
            "optimizer_numel": timing.optimizer_numel})
    );
    Ok(())
}

/// The long-sequence sweep: every length in a process of its own, with and without layer recompute,
/// against the PyTorch reference without and with activation checkpointing (each in its own process
/// too).
fn sweep(args: &Args, threads: usize) -> Result<()> {
    println!(
        "{:>6} | {:>22} | {:>22} | {:>18} | {:>18} | {:>6} | {:>6} | first step: entropy / grad_norm (ours vs torch)",
        "T", "s/step, CPU s, RSS", "recompute: s, CPU, RSS", "torch s, RSS", "torch+ckpt s, RSS", "speed", "ckpt"
    );
    let gb = |bytes: u64| bytes as f64 / 1e9;
    for &length in &args.lengths {
        anyhow::ensure!(length > 32, "--lengths must exceed the 32 prompt tokens");
        let sized = Args {
            sequences: 1,
            prompt_len: 32,
            response_len: length - 32,
            micro_batch: 1,
            ..args.clone()
        };
        let dir = std::env::temp_dir().join(format!(
            "laconic-bench-update-{}-{length}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
        prepare(&sized, &dir)?;
        let mut ours = Vec::new();
        for checkpointing in [
            ActivationCheckpointing::None,
            ActivationCheckpointing::Layer,
        ] {
            let command = child_command(&sized, &dir, threads, checkpointing)?;
            ours.push(child_timing(
                command,
                &format!("laconic at T = {length} ({checkpointing:?})"),
            )?);
        }
        let mut theirs = Vec::new();
        for checkpointing in [false, true] {
            theirs.push(match &args.python {
                Some(python) if length <= args.reference_max_len => Some(child_timing(
                    reference_command(&sized, python, &dir, threads, checkpointing),
                    &format!("the PyTorch reference at T = {length}"),
                )?),
                _ => None,
            });
        }
        let ours_cell = |t: &Timing| {
            format!(
                "{:.2}, {:.2}, {:.2} GB",
                mean_std(&t.steps).0,
                mean_std(&t.cpu).0,
                gb(t.peak_rss)
            )
        };
        let theirs_cell = |t: &Option<Timing>| match t {
            Some(t) => format!("{:.2}, {:.2} GB", mean_std(&t.steps).0, gb(t.peak_rss)),
            None => "-".to_string(),
        };
        let speed = |ours: &Timing, theirs: &Option<Timing>| match theirs {
            Some(t) => format!("{:.2}x", mean_std(&t.steps).0 / mean_std(&ours.steps).0),
            None => "-".to_string(),
        };
        let check = match &theirs[0] {
            Some(t) => format!(
                "{:.5}/{:.5}  {:.5}/{:.5}",
                ours[0].first[0], t.first[0], ours[0].first[2], t.first[2]
            ),
            None => format!("{:.5} / {:.5}", ours[0].first[0], ours[0].first[2]),
        };
        println!(
            "{length:>6} | {:>22} | {:>22} | {:>18} | {:>18} | {:>6} | {:>6} | {check}",
            ours_cell(&ours[0]),
            ours_cell(&ours[1]),
            theirs_cell(&theirs[0]),
            theirs_cell(&theirs[1]),
            speed(&ours[0], &theirs[0]),
            speed(&ours[1], &theirs[1]),
        );
        std::fs::remove_dir_all(&dir).ok();
    }
    println!("(speed = torch s/step over laconic's, without checkpointing on either side; ckpt = both with it; > 1 = laconic faster; {threads} threads)");
    Ok(())
}

/// Full fine-tuning against LoRA of `rank` at the bench shape, each side in a process of its own.
fn compare_lora(args: &Args, rank: usize, threads: usize) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("laconic-bench-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    prepare(args, &dir)?;
    let checkpointing = args.activation_checkpointing;
    let full = child_timing(
        child_command(args, &dir, threads, checkpointing)?,
        "full fine-tuning",
    )?;
    let mut command = child_command(args, &dir, threads, checkpointing)?;
    command.args(["--lora", &rank.to_string()]);
    let lora = child_timing(command, &format!("LoRA rank {rank}"))?;
    let mb = |bytes: f64| bytes / 1e6;
    println!(
        "Qwen3 hidden {} × {} layers, vocab {}; {} sequences × {} tokens; f32; {threads} threads",
        args.hidden,
        args.layers,
        args.vocab,
        args.sequences,
        args.prompt_len + args.response_len
    );
    println!(
        "{:>14} | {:>14} | {:>18} | {:>12}",
        "update", "s/step", "optimizer state", "peak RSS"
    );
    for (name, t) in [
        ("full".to_string(), &full),
        (format!("LoRA r={rank}"), &lora),
    ] {
        let (mean, std) = mean_std(&t.steps);
        println!(
            "{name:>14} | {mean:>6.3} ± {std:<5.3} | {:>10.2} MB f32 | {:>9.1} MB",
            mb(4.0 * t.optimizer_numel as f64),
            mb(t.peak_rss as f64)
        );
    }
    println!(
        "LoRA / full: optimizer state {:.4}x, peak RSS {:.3}x, time {:.3}x",
        lora.optimizer_numel as f64 / full.optimizer_numel.max(1) as f64,
        lora.peak_rss as f64 / full.peak_rss.max(1) as f64,
        mean_std(&lora.steps).0 / mean_std(&full.steps).0
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// This example in child mode on the prepared `dir`, for one configuration.
fn child_command(
    sized: &Args,
    dir: &Path,
    threads: usize,
    checkpointing: ActivationCheckpointing,
) -> Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["--sequences", &sized.sequences.to_string()])
        .args(["--prompt-len", &sized.prompt_len.to_string()])
        .args(["--response-len", &sized.response_len.to_string()])
        .args(["--micro-batch", &sized.micro_batch.to_string()])
        .args(["--hidden", &sized.hidden.to_string()])
        .args(["--layers", &sized.layers.to_string()])
        .args(["--vocab", &sized.vocab.to_string()])
        .args(["--chunk", &sized.chunk.to_string()])
        .args(["--steps", &sized.steps.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--query-block", &sized.query_block.to_string()])
        .args(["--key-block", &sized.key_block.to_string()])
        .args([
            "--activation-checkpointing",
            &checkpointing_name(checkpointing),
        ])
        .arg("--data")
        .arg(dir)
        .arg("--json");
    Ok(command)
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
    if let Some(dir) = &args.data {
        return run_child(&args, dir);
    }
    if !args.lengths.is_empty() {
        return sweep(&args, threads);
    }
    if let Some(rank) = args.compare_lora {
        return compare_lora(&args, rank, threads);
    }
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
        let reference = reference(&args, python, &dir, threads)?;
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
        println!("(ratio > 1 = laconic faster; {threads} threads; wall ± stdev over timed steps; CPU = user + system time)");
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
