//! The memory of one actor update, from the code's own accounting (`laconic::optim::memory`): the
//! paper's Qwen3 models at T = 8k and 16k, one sequence per micro-batch, with and without layer
//! recompute, bf16 weights and f32 gradients and AdamW moments, against one 80 GB GPU. Then the
//! benchmark shape of `bench_update` in f32, whose peak RSS that benchmark measures.
//!
//! ```text
//! cargo run --release --example memory_plan
//! ```

use anyhow::Result;
use laconic::model::{ActivationCheckpointing, AttentionBlocks, DenseShape};
use laconic::optim::memory::{parameter_count, update_memory, Precision, UpdateMemory};
use laconic::optim::OptimConfig;

/// One 80 GB accelerator, in bytes.
const GPU_BYTES: u64 = 80_000_000_000;

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

/// The update's memory for `shape` at `tokens` tokens per micro-batch.
fn plan(
    shape: &DenseShape,
    tokens: usize,
    checkpointing: ActivationCheckpointing,
    precision: Precision,
) -> Result<UpdateMemory> {
    let optim = OptimConfig {
        ppo_micro_batch_size: 1,
        activation_checkpointing: checkpointing,
        ..OptimConfig::default()
    };
    Ok(update_memory(
        &shape.config()?,
        tokens,
        &optim,
        AttentionBlocks::default(),
        precision,
    ))
}

fn main() -> Result<()> {
    println!(
        "One update, micro-batch 1, bf16 weights, f32 gradients and AdamW moments (GB = 1e9 B):\n"
    );
    println!(
        "| model | params | T | recompute | weights | grads | AdamW | activations | backward (head, layer) | peak | fits 80 GB |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for (name, shape) in DenseShape::paper_models() {
        let params = parameter_count(&shape.config()?);
        for tokens in [8192, 16384] {
            for checkpointing in [
                ActivationCheckpointing::None,
                ActivationCheckpointing::Layer,
            ] {
                let m = plan(&shape, tokens, checkpointing, Precision::BF16_WEIGHTS)?;
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
    println!("\nbench_update's shape in f32 (compare with its measured peak RSS, which adds the process):\n");
    println!("| T | recompute | accounted |");
    println!("|---:|---|---:|");
    for tokens in [1024, 2048, 4096, 8192, 16384] {
        for checkpointing in [
            ActivationCheckpointing::None,
            ActivationCheckpointing::Layer,
        ] {
            let m = plan(&bench, tokens, checkpointing, Precision::F32)?;
            println!("| {tokens} | {checkpointing:?} | {:.3} GB |", gb(m.total()));
        }
    }
    Ok(())
}
