//! MoE dispatch benchmark: forward tokens/s of the sparse block's grouped expert dispatch (gather →
//! one product per expert over its tokens → scatter-add) against the naive all-experts computation
//! (every expert on every token, combined with a dense weight matrix), at 8 and 64 experts, top-2, on
//! the default backend (flex on CPU).
//!
//! ```text
//! cargo run --release --example bench_moe
//! ```
//! Prints one row per (experts, tokens) case: mean ± stdev tokens/s of each, the ratio
//! (`>1 = grouped faster`; the ideal is `E/k`), and max |Δ| between the two outputs as a correctness
//! check. Takes about a minute on 2 cores.
//!
//! What the comparison leaves out: one block, random weights (so routing is roughly balanced; a skewed
//! router makes some groups larger, the total work is the same), forward only (no autodiff), f32. The
//! router, softmax and host-side top-k are in both timings.

use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::Distribution;
use clap::Parser;
use laconic::backend::{device, Backend as B, NAME};
use laconic::model::{DecoderConfig, SparseMoeBlock};

/// MoE dispatch benchmark options.
#[derive(Parser, Debug)]
struct Args {
    /// Expert counts `E` to time.
    #[arg(long, value_delimiter = ',', default_value = "8,64")]
    experts: Vec<usize>,
    /// Experts per token `k`.
    #[arg(long, default_value_t = 2)]
    top_k: usize,
    /// Tokens per forward `N` (rows × columns of a batch; 8 is a decode step of 8 rows).
    #[arg(long, value_delimiter = ',', default_value = "256,8")]
    tokens: Vec<usize>,
    /// Model width `d`.
    #[arg(long, default_value_t = 512)]
    hidden: usize,
    /// Expert width (`moe_intermediate_size`).
    #[arg(long, default_value_t = 256)]
    width: usize,
    /// Timed repetitions per case (after one warm-up).
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

/// A sparse block of the given shape with HF's random init.
fn block(args: &Args, experts: usize) -> Result<SparseMoeBlock<B>> {
    let config = DecoderConfig::from_json_str(
        &format!(
            r#"{{"model_type": "qwen3_moe", "vocab_size": 16, "hidden_size": {}, "intermediate_size": 16,
                "num_hidden_layers": 1, "num_attention_heads": 2, "head_dim": 4, "num_experts": {experts},
                "num_experts_per_tok": {}, "moe_intermediate_size": {}, "norm_topk_prob": true}}"#,
            args.hidden, args.top_k, args.width
        ),
        "<bench>",
    )?;
    Ok(SparseMoeBlock::init(&config, 0.02, &device()?))
}

/// Mean and standard deviation of tokens/s over `reps` timed calls of `f`, after one warm-up call.
fn tokens_per_s(tokens: usize, reps: usize, mut f: impl FnMut() -> Tensor<B, 3>) -> (f64, f64) {
    let _ = f().into_data();
    let rates: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            // Reading the output back waits for the computation on any backend.
            let _ = f().into_data();
            tokens as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    let mean = rates.iter().sum::<f64>() / reps as f64;
    let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (reps.max(2) - 1) as f64;
    (mean, var.sqrt())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    println!(
        "sparse MoE block forward, {NAME}, f32, d {} → expert width {}, top-{}, {threads} threads",
        args.hidden, args.width, args.top_k
    );
    println!(
        "{:>7} {:>6} | {:>20} {:>20} | {:>7} {:>6} | {:>9}",
        "experts", "tokens", "grouped tok/s", "all-experts tok/s", "ratio", "ideal", "max |Δ|"
    );
    for &experts in &args.experts {
        let block = block(&args, experts)?;
        for &tokens in &args.tokens {
            let x = Tensor::<B, 3>::random(
                [1, tokens, args.hidden],
                Distribution::Normal(0.0, 1.0),
                &device()?,
            );
            // Correctness: the two computations agree.
            let grouped = block.forward(x.clone(), None).0;
            let naive = block.forward_all_experts(x.clone(), None);
            let diff: f32 = (grouped - naive).abs().max().into_scalar().elem();
            let (ours, ours_sd) =
                tokens_per_s(tokens, args.reps, || block.forward(x.clone(), None).0);
            let (reference, reference_sd) = tokens_per_s(tokens, args.reps, || {
                block.forward_all_experts(x.clone(), None)
            });
            println!(
                "{experts:>7} {tokens:>6} | {ours:>11.0} ± {ours_sd:>6.0} {reference:>11.0} ± {reference_sd:>6.0} | {:>6.2}x {:>5.0}x | {diff:>9.2e}",
                ours / reference,
                experts as f64 / args.top_k as f64
            );
        }
    }
    println!("(ratio = grouped / all-experts tokens/s; >1 = grouped faster)");
    Ok(())
}
