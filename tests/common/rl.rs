//! Shared helpers of the RL-loop tests (`tests/train.rs`, `tests/data_parallel.rs`): a tiny run config,
//! scratch folders, training or resuming a run in this process, and the comparison of two runs'
//! metrics and checkpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use laconic::model::safetensors::SafetensorsIndex;
use laconic::optim::LogprobBackend;
use laconic::train::{load_policy, RlTrainer, RunConfig, RunDir};

/// A new run of `config` in `dir`, trained in this process and stopped after step `last`.
pub fn train_here<B: LogprobBackend>(dir: &Path, config: &RunConfig, last: u64) -> RunDir {
    let run = RunDir::create(dir, config).unwrap();
    let (model, tokenizer) = load_policy::<B>(config, &Default::default()).unwrap();
    RlTrainer::<B>::new(config.clone(), model, tokenizer)
        .unwrap()
        .train_until(&run, last, &mut ())
        .unwrap();
    run
}

/// Opens the run folder `dir`, waiting up to 10 s for its lock: an MPI rank that wrote it can still
/// hold the lock for a moment after `mpirun` has returned (seen about once in three local runs of
/// the data-parallel tests).
fn open_when_released(dir: &Path) -> (RunDir, RunConfig) {
    for _ in 0..100 {
        match RunDir::open(dir) {
            Err(laconic::train::Error::RunInUse { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            opened => return opened.unwrap(),
        }
    }
    RunDir::open(dir).unwrap()
}

/// Continues `dir` from its last checkpoint in this process to the end; returns the run and the step
/// it resumed at.
pub fn resume_here<B: LogprobBackend>(dir: &Path) -> (RunDir, u64) {
    let (run, config) = open_when_released(dir);
    let mut trainer = RlTrainer::<B>::resume(&run, config, &Default::default()).unwrap();
    let resumed_at = trainer.step_count();
    trainer.train(&run, &mut ()).unwrap();
    (run, resumed_at)
}

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tiny run: the demo task on a randomly initialised demo-sized model, a few short steps of
/// `prompts` prompts × 4 rollouts, evaluated and saved every 2 steps. The Kimi length reward gives
/// even an untrained model's (incorrect) samples advantages, so every update moves the weights.
pub fn tiny_config(steps: u64, prompts: usize) -> RunConfig {
    RunConfig::from_toml(&tiny_config_toml(steps, prompts)).unwrap()
}

/// The TOML of [`tiny_config`], for a config file.
pub fn tiny_config_toml(steps: u64, prompts: usize) -> String {
    format!(
        r#"
[model]
init_config = "{root}/assets/demo/config.json"
tokenizer = "{root}/assets/demo/tokenizer.json"
[data]
kind = "digit_sum"
min_digits = 2
max_digits = 3
[rollout]
n = 4
prompts_per_step = {prompts}
max_tokens = 10
[reward]
kind = "kimi"
[optim]
lr = 1e-3
ppo_micro_batch_size = 5
[train]
steps = {steps}
seed = 7
eval_every = 2
save_every = 2
eval_problems = 6
[eval]
budgets = [4, 10]
samples = 2
temperature = 1.0
top_p = 1.0
top_k = 0
"#,
        root = root().display()
    )
}

/// The example binary `name` that `cargo test` builds beside the test binaries.
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().join("../examples").join(name);
    assert!(
        path.is_file(),
        "`{}` is missing: `cargo test` builds the examples",
        path.display()
    );
    path
}

/// An empty scratch folder name for `tag`, unique to this process.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("laconic-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Metrics without wall-clock measurements, which differ between any two runs.
pub fn deterministic(m: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    m.iter()
        .filter(|(k, _)| !k.starts_with("timing/") && !k.starts_with("perf/rollout_tokens_per_s"))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Two runs logged the same metrics: what depends on the sampled tokens alone (lengths, rewards,
/// accuracies, token counts) exactly, float metrics up to summation-order noise; metrics named in
/// `layout` (those that depend on how the work was laid out) are not compared.
pub fn assert_same_metrics(a: &RunDir, b: &RunDir, layout: &[&str], context: &str) {
    let read = |run: &RunDir| -> Vec<_> {
        run.read_metrics()
            .unwrap()
            .iter()
            .map(|m| {
                let mut m = deterministic(m);
                m.retain(|k, _| !layout.contains(&k.as_str()));
                m
            })
            .collect()
    };
    let (a, b) = (read(a), read(b));
    assert_eq!(a.len(), b.len(), "{context}: metrics lines");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.keys().collect::<Vec<_>>(),
            y.keys().collect::<Vec<_>>(),
            "{context}: metric names"
        );
        for (key, &va) in x {
            let vb = y[key];
            let exact = key.starts_with("response_length/")
                || key.starts_with("reward/")
                || key.starts_with("acc/")
                || key.contains("mean@")
                || key.starts_with("perf/tokens");
            let ok = if exact {
                va == vb
            } else {
                (va - vb).abs() <= 1e-5 + 1e-4 * va.abs()
            };
            assert!(
                ok,
                "{context}, step {:?}: `{key}` {va} vs {vb}",
                x.get("step")
            );
        }
    }
}

/// The largest `|a − b|` over every parameter of two checkpoints, relative to the largest `|a|`.
pub fn checkpoint_rel_diff(a: &Path, b: &Path) -> f32 {
    // A LoRA checkpoint holds the adapter alone (its base is frozen, the same in both).
    let weights = |dir: &Path| {
        let adapter = dir.join("adapter_model.safetensors");
        if adapter.is_file() {
            SafetensorsIndex::from_files(&[adapter]).unwrap()
        } else {
            SafetensorsIndex::from_dir(dir).unwrap()
        }
    };
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.names(), b.names(), "checkpoints hold different tensors");
    let (mut diff, mut scale) = (0f32, 0f32);
    for name in a.names() {
        let (x, y) = (a.read_f32(name).unwrap(), b.read_f32(name).unwrap());
        for (p, q) in x.iter().zip(&y) {
            diff = diff.max((p - q).abs());
            scale = scale.max(p.abs());
        }
    }
    diff / scale
}

/// With `LACONIC_BROWSER_CHECK=1` (CI sets it after installing Debian's chromium), opens the pages
/// in headless Chromium (`scripts/check-report-page.sh`): each loads with no console message and
/// every figure has a non-empty box.
pub fn check_pages_in_a_browser(pages: &[&Path]) {
    if std::env::var_os("LACONIC_BROWSER_CHECK").is_none() {
        return;
    }
    let out = std::process::Command::new(root().join("scripts/check-report-page.sh"))
        .args(pages)
        .output()
        .expect("scripts/check-report-page.sh runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        out.status.success(),
        "the browser check failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    eprintln!("{}", text(&out.stdout));
}
