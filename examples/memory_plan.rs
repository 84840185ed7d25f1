//! The memory of one actor update, from the code's own accounting (`laconic::optim::memory`): the
//! paper's Qwen3 models (0.6B … 8B and the 30B-A3B mixture of experts) at T = 8k and 16k, one
//! sequence per micro-batch, with and without layer recompute, bf16 weights and f32 gradients and
//! AdamW moments, per GPU of a data-parallel run of `--world-size` ranks at ZeRO `--zero-stage`,
//! against one 80 GB GPU. Then the benchmark shape of `bench_update` in f32, whose peak RSS that
//! benchmark measures.
//!
//! ```text
//! cargo run --release --example memory_plan -- --world-size 8 --zero-stage 1
//! ```

use anyhow::{bail, Result};
use clap::Parser;
use laconic::model::{ActivationCheckpointing, AttentionBlocks, DecoderConfig, DenseShape};
use laconic::optim::memory::{parameter_count, update_memory, Precision, UpdateMemory};
use laconic::optim::OptimConfig;

/// Command-line flags.
#[derive(Parser)]
#[command(about = "The memory of one actor update per GPU, from laconic's own accounting")]
struct Args {
    /// Data-parallel ranks (one GPU each).
    #[arg(long, default_value_t = 1)]
    world_size: usize,
    /// ZeRO stage (`optim.zero_stage`): 0, 1 or 2.
    #[arg(long, default_value_t = 0)]
    zero_stage: u8,
}

/// Qwen3-8B's `config.json` (untied head).
const QWEN3_8B: &str = r#"{"model_type": "qwen3", "vocab_size": 151936, "hidden_size": 4096,
    "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": false}"#;

/// Qwen3-30B-A3B's `config.json`: 48 sparse layers of 128 experts, 8 routed per token.
const QWEN3_30B_A3B: &str = r#"{"model_type": "qwen3_moe", "vocab_size": 151936,
    "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 48,
    "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
    "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
    "tie_word_embeddings": false}"#;

/// The paper's models, by name.
fn paper_models() -> Result<Vec<(&'static str, DecoderConfig)>> {
    let mut models = Vec::new();
    for (name, shape) in DenseShape::paper_models() {
        models.push((name, shape.config()?));
    }
    models.push((
        "Qwen3-8B",
        DecoderConfig::from_json_str(QWEN3_8B, "Qwen3-8B")?,
    ));
    models.push((
        "Qwen3-30B-A3B",
        DecoderConfig::from_json_str(QWEN3_30B_A3B, "Qwen3-30B-A3B")?,
    ));
    Ok(models)
}

/// One 80 GB accelerator, in bytes.
const GPU_BYTES: u64 = 80_000_000_000;

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

/// The update's memory for a model of `config` at `tokens` tokens per micro-batch, per rank.
fn plan(
    config: &DecoderConfig,
    tokens: usize,
    checkpointing: ActivationCheckpointing,
    precision: Precision,
    ranks: &Args,
) -> UpdateMemory {
    let optim = OptimConfig {
        ppo_micro_batch_size: 1,
        activation_checkpointing: checkpointing,
        zero_stage: ranks.zero_stage,
        ..OptimConfig::default()
    };
    update_memory(
        config,
        tokens,
        &optim,
        AttentionBlocks::default(),
        precision,
    )
    .per_worker(ranks.world_size, optim.zero())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.world_size == 0 || args.zero_stage > 2 {
        bail!("--world-size must be at least 1 and --zero-stage 0, 1 or 2");
    }
    println!(
        "One update per GPU of {} rank(s) at ZeRO-{}, micro-batch 1, bf16 weights, f32 gradients \
         and AdamW moments (GB = 1e9 B):\n",
        args.world_size, args.zero_stage
    );
    println!(
        "| model | params | T | recompute | weights | grads | AdamW | activations | backward (head, layer) | peak | fits 80 GB |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for (name, config) in paper_models()? {
        let params = parameter_count(&config);
        for tokens in [8192, 16384] {
            for checkpointing in [
                ActivationCheckpointing::None,
                ActivationCheckpointing::Layer,
            ] {
                let m = plan(
                    &config,
                    tokens,
                    checkpointing,
                    Precision::BF16_WEIGHTS,
                    &args,
                );
                println!(
                    "| {name} | {:.2}B | {}k | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}, {:.1} | **{:.1}** | {} |",
                    params as f64 / 1e9,
                    tokens / 1024,
                    if checkpointing == ActivationCheckpointing::Layer { "layer" } else { "none" },
                    gb(m.weights),
                    gb(m.gradients),
                    gb(m.optimizer),
                    gb(m.activations),
                    gb(m.head),
                    gb(m.layer),
                    gb(m.total()),
                    if m.total() <= GPU_BYTES { "yes" } else { "no" },
                );
            }
        }
    }
    // bench_update's long-sequence shape: hidden 256, 4 layers, 4/2 heads of 64, vocab 4096, f32.
    let bench = DenseShape {
        layers: 4,
        vocab: 4096,
        hidden: 256,
        inter: 768,
        heads: 4,
        kv_heads: 2,
        head_dim: 64,
    };
    let bench = bench.config()?;
    let one = Args {
        world_size: 1,
        zero_stage: 0,
    };
    println!("\nbench_update's shape in f32, one process (compare with its measured peak RSS, which adds the process):\n");
    println!("| T | recompute | accounted |");
    println!("|---:|---|---:|");
    for tokens in [1024, 2048, 4096, 8192, 16384] {
        for checkpointing in [
            ActivationCheckpointing::None,
            ActivationCheckpointing::Layer,
        ] {
            let m = plan(&bench, tokens, checkpointing, Precision::F32, &one);
            println!("| {tokens} | {checkpointing:?} | {:.3} GB |", gb(m.total()));
        }
    }
    Ok(())
}
