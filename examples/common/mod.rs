//! Helpers shared by the examples: shape flags over laconic-model's `DenseShape` (Qwen3-0.6B unless told), the
//! float dtype of the device, and a peak-memory probe (the benchmarks); the data-parallel flags of
//! `train` and `demo` ([`data_parallel`]) and how they end when a signal stopped their run
//! ([`resume`]).
//!
//! Not an example itself (cargo only builds `examples/*.rs` and `examples/*/main.rs`); an example uses
//! it with `mod common;`.

// Each example uses a subset of these helpers.
#![allow(dead_code)]

pub mod data_parallel;
pub mod resume;

use laconic_harness::peak_rss_bytes;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use burn::prelude::Backend as BackendTrait;
use burn::tensor::{Element, FloatDType, IntDType};
use clap::ValueEnum;
use laconic::model::{DecoderConfig, DenseShape};

/// The shape flags of a dense Qwen3 model ([`DenseShape`]); every default is Qwen3-0.6B's.
#[derive(clap::Args, Debug, Clone)]
pub struct Shape {
    /// Decoder layers (`num_hidden_layers`).
    #[arg(long, default_value_t = DenseShape::QWEN3_0_6B.layers)]
    pub layers: usize,
    /// Vocabulary size (`vocab_size`).
    #[arg(long, default_value_t = DenseShape::QWEN3_0_6B.vocab)]
    pub vocab: usize,
    /// Hidden size (`hidden_size`).
    #[arg(long, default_value_t = DenseShape::QWEN3_0_6B.hidden)]
    pub hidden: usize,
    /// MLP width (`intermediate_size`).
    #[arg(long, default_value_t = DenseShape::QWEN3_0_6B.inter)]
    pub inter: usize,
    /// Query heads (`num_attention_heads`).
    #[arg(long, default_value_t = DenseShape::QWEN3_0_6B.heads)]
    pub heads: usize,
    /// Key/value heads (`num_key_value_heads`).
    #[arg(long, default_value_t = DenseShape::QWEN3_0_6B.kv_heads)]
    pub kv_heads: usize,
    /// Head dimension (`head_dim`).
    #[arg(long, default_value_t = DenseShape::QWEN3_0_6B.head_dim)]
    pub head_dim: usize,
}

impl Shape {
    /// The shape the flags give.
    pub fn dense(&self) -> DenseShape {
        DenseShape {
            layers: self.layers,
            vocab: self.vocab,
            hidden: self.hidden,
            inter: self.inter,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
        }
    }

    /// The config of this shape ([`DenseShape::config`]).
    ///
    /// # Errors
    /// When the shape is invalid (e.g. query heads not a multiple of key/value heads).
    pub fn config(&self) -> Result<DecoderConfig> {
        Ok(self.dense().config()?)
    }

    /// Whether this is Qwen3-0.6B's shape (all defaults).
    pub fn is_qwen3_06b(&self) -> bool {
        self.dense() == DenseShape::QWEN3_0_6B
    }
}

/// Float element type of every tensor the device creates.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit floats (the backend's default).
    F32,
    /// bfloat16 (8 mantissa bits), the dtype Qwen checkpoints ship in.
    Bf16,
}

impl Dtype {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::Bf16 => 2,
        }
    }

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::Bf16 => "bf16",
        }
    }
}

/// The default device of `B` with `dtype` as its default float dtype.
///
/// burn 0.21 keeps one default float dtype per device and process, fixed at the first tensor: call
/// this before anything touches the device, and run the other dtype in another process. Every
/// tensor the model makes (`from_data`, random init, loading) then has `dtype`; the integer dtype stays
/// the backend's.
///
/// # Errors
/// When the backend does not support `dtype`, or the device was already used.
pub fn device_with_dtype<B: BackendTrait>(dtype: Dtype) -> Result<B::Device> {
    let device = B::Device::default();
    if dtype == Dtype::Bf16 {
        let int: IntDType = <B::IntElem as Element>::dtype().into();
        burn::tensor::set_default_dtypes::<B>(&device, FloatDType::BF16, int)
            .context("failed to make bf16 the device's default float dtype")?;
    }
    Ok(device)
}

/// The float dtype the device actually gives new tensors (a check on [`device_with_dtype`]).
pub fn observed_dtype<B: BackendTrait>(device: &B::Device) -> String {
    let probe = burn::tensor::Tensor::<B, 1>::zeros([1], device);
    format!("{:?}", probe.dtype())
}

/// Peak memory over a section of the program.
///
/// With `nvidia-smi` on the path it samples the GPU's `memory.used` every 100 ms (`-lms 100`) in a
/// child process: whole-GPU memory in MiB, CUDA context and allocator pools included, which on a
/// machine lent to one job is this process's footprint (burn 0.21 does not expose its allocator's
/// statistics). Without it, it reports the process's peak resident set over its whole life (`VmHWM`,
/// as Python's `ru_maxrss`).
pub struct MemoryProbe {
    sampler: Option<Sampler>,
}

/// The `nvidia-smi` child, the thread reading its output and the readings so far (bytes).
struct Sampler {
    child: Child,
    reader: JoinHandle<()>,
    readings: Arc<Mutex<Vec<u64>>>,
}

/// What a [`MemoryProbe`] measured.
#[derive(Debug, Clone)]
pub struct MemoryReport {
    /// What the numbers are.
    pub kind: &'static str,
    /// Highest reading, bytes.
    pub peak_bytes: u64,
    /// First reading (GPU memory used before this section), bytes; 0 for RSS.
    pub baseline_bytes: u64,
    /// Readings taken.
    pub samples: usize,
}

impl MemoryReport {
    /// Peak above the baseline, in GiB.
    pub fn delta_gib(&self) -> f64 {
        self.peak_bytes.saturating_sub(self.baseline_bytes) as f64 / (1u64 << 30) as f64
    }
}

const NVIDIA_SMI_KIND: &str =
    "nvidia-smi memory.used, whole GPU, sampled every 100 ms (includes CUDA context and pools)";
const RSS_KIND: &str = "process peak RSS (VmHWM); no device-memory probe on this machine";

impl MemoryProbe {
    /// Starts sampling.
    pub fn start() -> Self {
        let child = Command::new("nvidia-smi")
            .args([
                "--query-gpu=memory.used",
                "--format=csv,noheader,nounits",
                "-i",
                "0",
                "-lms",
                "100",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let sampler = child.ok().and_then(|mut child| {
            let stdout = child.stdout.take()?;
            let readings = Arc::new(Mutex::new(Vec::new()));
            let sink = readings.clone();
            let reader = std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                    if let Ok(mib) = line.trim().parse::<u64>() {
                        sink.lock().expect("probe lock").push(mib << 20);
                    }
                }
            });
            Some(Sampler {
                child,
                reader,
                readings,
            })
        });
        // Give the sampler its first (baseline) reading before the section allocates.
        if sampler.is_some() {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        Self { sampler }
    }

    /// Stops sampling and reports.
    pub fn finish(self) -> MemoryReport {
        if let Some(Sampler {
            mut child,
            reader,
            readings,
        }) = self.sampler
        {
            // Let one more sample land after the section's last allocation.
            std::thread::sleep(std::time::Duration::from_millis(250));
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            let readings = readings.lock().expect("probe lock").clone();
            if !readings.is_empty() {
                return MemoryReport {
                    kind: NVIDIA_SMI_KIND,
                    peak_bytes: readings.iter().copied().max().unwrap_or(0),
                    baseline_bytes: readings[0],
                    samples: readings.len(),
                };
            }
        }
        MemoryReport {
            kind: RSS_KIND,
            peak_bytes: peak_rss_bytes(),
            baseline_bytes: 0,
            samples: 1,
        }
    }
}

/// Writes `value` as pretty JSON to `path` (creating its folder).
///
/// # Errors
/// When the folder or file cannot be written.
pub fn write_json(path: &std::path::Path, value: &serde_json::Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("failed to write `{}`", path.display()))
}
