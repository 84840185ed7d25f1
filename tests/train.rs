//! The RL loop end to end on a tiny random model (ndarray): run folder contents, checkpoint + resume
//! reproducing an uninterrupted run, config errors, and a non-finite loss stopping the run.

mod common;

use burn::backend::{Autodiff, NdArray};
use common::rl::{
    assert_same_metrics, example_binary, resume_here, root, scratch, tiny_config, train_here,
};
use laconic::model::safetensors::SafetensorsIndex;
use laconic::model::{ChatTemplate, Tokenizer};
use laconic::train::{load_policy, RlTrainer, RunConfig, RunDir};

type B = Autodiff<NdArray>;

#[test]
fn run_folder_and_resume_match_an_uninterrupted_run() {
    let device = Default::default();
    let config = tiny_config(4, 3);

    // An uninterrupted run of 4 steps.
    let dir_a = scratch("a");
    let run_a = train_here::<B>(&dir_a, &config, 4);

    // The same run "killed" after step 3: the last checkpoint is step 2, step 3's metrics are on disk,
    // and an interrupted checkpoint write left a temporary folder.
    let dir_b = scratch("b");
    let run_b = train_here::<B>(&dir_b, &config, 3);
    std::fs::create_dir_all(run_b.checkpoints().join(".step_4.tmp")).unwrap();
    assert_eq!(run_b.list_checkpoints().last().unwrap().0, 2);

    // Resume from the folder alone, once the "killed" process has let go of it.
    drop(run_b);
    let (run_b, resumed_at) = resume_here::<B>(&dir_b);
    assert_eq!(resumed_at, 2);

    // Same sampled tokens (lengths, rewards, accuracies equal exactly); float metrics equal up to the
    // summation-order noise of multi-threaded reductions.
    assert_same_metrics(&run_a, &run_b, &[], "resumed");

    // The run folder holds everything DESIGN.md lists.
    for path in [
        "config.resolved.toml",
        "metrics.jsonl",
        "rollouts/step_1.jsonl",
        "checkpoints/step_4/model.safetensors",
        "checkpoints/step_4/optimizer.safetensors",
        "checkpoints/step_4/trainer_state.json",
        "checkpoints/step_4/config.json",
        "eval/step_0/eval.json",
        "eval/step_4/eval.md",
    ] {
        assert!(dir_a.join(path).exists(), "missing {path}");
    }
    let steps: Vec<f64> = run_a
        .read_metrics()
        .unwrap()
        .iter()
        .map(|m| m["step"])
        .collect();
    assert_eq!(steps, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    // The run's page: summary, curves and the last evaluation's budget sweep and figures inlined.
    laconic::train::report::write_report(&run_a, None).unwrap();
    let page = std::fs::read_to_string(dir_a.join("report/report.html")).unwrap();
    let eval_svgs = std::fs::read_dir(dir_a.join("eval/step_4"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "svg")
        })
        .count();
    assert!(eval_svgs >= 1, "the evaluation drew figures");
    assert!(
        page.contains("<h2>Curves</h2>") && page.contains("<table>"),
        "{page}"
    );
    assert!(
        page.matches("<span class=\"figure\"><svg").count() >= 4 + eval_svgs,
        "{page}"
    );
    assert!(!page.contains("not inlined"), "{page}");
    common::rl::check_pages_in_a_browser(&[&dir_a.join("report/report.html")]);
    let step1 = &run_a.read_metrics().unwrap()[1];
    for key in [
        "reward/mean",
        "acc/mean",
        "response_length/mean",
        "response/truncation_rate",
        "actor/entropy",
        "actor/kl_loss",
        "actor/grad_norm",
        "actor/lr",
        "timing/rollout_s",
        "timing/update_s",
    ] {
        assert!(step1.contains_key(key), "metrics lack {key}");
    }

    // A truncated newest checkpoint (a disk that filled up): resume falls back to the one before it.
    drop(run_b);
    let newest = dir_b.join("checkpoints/step_4/model.safetensors");
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let (run_b, resolved) = RunDir::open(&dir_b).unwrap();
    let fallback = RlTrainer::<B>::resume(&run_b, resolved, &device).unwrap();
    assert_eq!(fallback.step_count(), 2);
    drop((fallback, run_b));
    std::fs::remove_dir_all(dir_a).unwrap();
    std::fs::remove_dir_all(dir_b).unwrap();
}

#[test]
fn non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint() {
    let device = Default::default();
    let mut config = tiny_config(4, 3);
    config.optim.lr = 1e30;
    config.optim.grad_clip = 0.0;
    config.train.save_every = 1;
    let dir = scratch("nan");
    let run = RunDir::create(&dir, &config).unwrap();
    let (model, tok) = load_policy::<B>(&config, &device).unwrap();
    let err = RlTrainer::<B>::new(config, model, tok)
        .unwrap()
        .train(&run, &mut ())
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("last good checkpoint"),
        "{message} / {err:?}"
    );
    assert!(
        message.starts_with("step "),
        "the message names the step: {message}"
    );
    // No checkpoint holds a non-finite weight: an update that overflows is never applied or saved.
    for (_, ckpt) in run.list_checkpoints() {
        let index = SafetensorsIndex::from_dir(&ckpt).unwrap();
        for name in index.names() {
            let values = index.read_f32(name).unwrap();
            assert!(
                values.iter().all(|v| v.is_finite()),
                "{}: `{name}` is not finite",
                ckpt.display()
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn config_errors_name_the_key() {
    let dir = scratch("cfg");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[rollout]\nnn = 3\n[model]\npath = \"x\"\n").unwrap();
    let err = RunConfig::load(&path, &[]).unwrap_err().to_string();
    assert!(
        err.contains("rollout") && err.contains("nn") && err.contains("bad.toml"),
        "{err}"
    );

    std::fs::write(&path, "[model]\npath = \"x\"\n[rollout]\nn = 3\n").unwrap();
    let ok = RunConfig::load(
        &path,
        &["rollout.n=5".into(), "reward.kind=\"kimi\"".into()],
    )
    .unwrap();
    assert_eq!(ok.rollout.n, 5);
    assert_eq!(ok.reward.shaper.kind(), "kimi");
    let err = RunConfig::load(&path, &["optim.clip_ratio_lo=0.1".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("clip_ratio_lo"), "{err}");
    let err = RunConfig::load(&path, &["rollout.n=many".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("rollout.n"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_shipped_config_loads_with_the_paper_settings() {
    use laconic::train::config::DataConfig;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue; // `configs/lab/` holds lab experiments (tests/lab.rs), not run configs
        }
        let config = RunConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
        names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        // Every knob survives the round trip through config.resolved.toml.
        assert_eq!(
            RunConfig::from_toml(&config.to_toml()).unwrap().to_toml(),
            config.to_toml()
        );
    }
    names.sort();
    assert_eq!(
        names,
        [
            "demo",
            "demo-sft",
            "qwen2.5-coder-0.5b-gsm8k",
            "qwen3-0.6b",
            "qwen3-1.7b",
            "qwen3-4b-instruct",
            "qwen3-4b-thinking",
            "r1-distill-qwen-1.5b",
            "smollm2-135m-gsm8k"
        ]
    );

    // The real-checkpoint CPU recipes: LoRA on all seven projections, L_T below L_R; the Qwen2.5 one
    // trains on the Easy split `curate` writes and skips no evaluation before training.
    for name in ["smollm2-135m-gsm8k", "qwen2.5-coder-0.5b-gsm8k"] {
        let real = RunConfig::load(&root().join(format!("configs/{name}.toml")), &[]).unwrap();
        let lora = real
            .model
            .lora
            .as_ref()
            .unwrap_or_else(|| panic!("the {name} recipe trains LoRA adapters"));
        assert_eq!((lora.rank, lora.target_modules.len()), (16, 7), "{name}");
        assert!(
            matches!(&real.reward.shaper, laconic::reward::RewardConfig::Truncation(t)
                if t.l_t < real.rollout.sampling.max_tokens),
            "{name}: {:?}",
            real.reward
        );
        assert!(real.train.val_before_train, "{name}");
    }
    let qwen = RunConfig::load(&root().join("configs/qwen2.5-coder-0.5b-gsm8k.toml"), &[]).unwrap();
    let DataConfig::Jsonl(data) = &qwen.data else {
        panic!("the Qwen2.5 recipe reads a JSONL split")
    };
    assert!(
        data.dataset.path.ends_with("easy.jsonl"),
        "{:?}",
        data.dataset.path
    );

    // The ablation backbone: L_R = 16k, L_T = 4k, N = 8, ~800 steps, R1-Distill's own chat template.
    let r1 = RunConfig::load(&root().join("configs/r1-distill-qwen-1.5b.toml"), &[]).unwrap();
    assert_eq!(
        (r1.rollout.sampling.max_tokens, r1.rollout.n, r1.train.steps),
        (16384, 8, 800)
    );
    assert!(
        matches!(&r1.reward.shaper, laconic::reward::RewardConfig::Truncation(t) if t.l_t == 4096),
        "{:?}",
        r1.reward
    );
    let DataConfig::Jsonl(data) = &r1.data else {
        panic!("the R1 config trains on a JSONL dataset")
    };
    // With R1-Distill's own template (what its checkpoint folder ships).
    let r1_template = ChatTemplate::from_file(
        root().join("tests/fixtures/chat/templates/deepseek_r1_distill.json"),
    )
    .unwrap();
    let tokenizer = Tokenizer::from_file(root().join("assets/qwen3/tokenizer.json"))
        .unwrap()
        .with_chat_template(r1_template);
    let text = data.prompt.text("1+1?", &tokenizer).unwrap();
    assert!(
        text.starts_with("<｜begin▁of▁sentence｜><｜User｜>1+1? "),
        "{text}"
    );
}

/// Every `cargo run` command in README.md and the docs names an example that exists, and every
/// `demo` / `train` / `sft` command's config loads with its `--set` overrides (the README's own
/// `--set reward.kind=\"kimi\"` once failed).
#[test]
fn documented_commands_name_real_examples_and_valid_configs() {
    let mut files = vec![root().join("README.md")];
    for dir in [
        "docs",
        "crates/laconic-reward",
        "crates/laconic-eval",
        "examples",
    ] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for command in cargo_commands(&text) {
            let words = shell_words(&command);
            let context = format!("{}: `{command}`", file.display());
            check_command(&words, &context);
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} commands found");
}

/// The `cargo run …` commands of a markdown text: inline code spans, and fenced lines with their
/// `\` continuations.
fn cargo_commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    let mut fenced = false;
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let trimmed = line.trim().trim_start_matches("$ ");
        if fenced && trimmed.starts_with("cargo run") {
            let mut command = trimmed.to_string();
            while command.ends_with('\\') {
                command.pop();
                command.push(' ');
                command.push_str(lines.next().unwrap_or_default().trim());
            }
            out.push(command);
        }
    }
    // Inline spans may wrap across lines of a paragraph.
    let flat = text.replace('\n', " ");
    for (i, _) in flat.match_indices("`cargo run") {
        let rest = &flat[i + 1..];
        if let Some(end) = rest.find('`') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// Splits a command as a POSIX shell would (quotes and backslashes), without expansions.
fn shell_words(command: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut escaped) = (Vec::new(), String::new(), None, false);
    let mut any = false;
    for c in command.chars() {
        match (quote, c) {
            _ if escaped => {
                word.push(c);
                escaped = false;
            }
            (None | Some('"'), '\\') => escaped = true,
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            _ => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

fn check_command(words: &[String], context: &str) {
    let flag = |name: &str| {
        words
            .iter()
            .position(|w| w == name)
            .and_then(|i| words.get(i + 1))
            .cloned()
    };
    let Some(example) = flag("--example") else {
        return; // `cargo run -p laconic-reward -- …` runs a binary, not an example
    };
    let base = match flag("-p") {
        Some(krate) => root().join("crates").join(krate),
        None => root().to_path_buf(),
    };
    let examples = base.join("examples");
    assert!(
        examples.join(format!("{example}.rs")).is_file()
            || examples.join(&example).join("main.rs").is_file(),
        "{context}: no example `{example}`"
    );
    if !["demo", "train", "sft"].contains(&example.as_str()) {
        return;
    }
    let args = &words[words
        .iter()
        .position(|w| w == "--")
        .map_or(words.len(), |i| i + 1)..];
    if args.iter().any(|a| a == "--resume") {
        return;
    }
    let mut config = (example == "demo").then(|| "configs/demo.toml".to_string());
    let mut sets = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--config" => config = Some(value),
            "--set" => sets.push(value),
            "--model" => sets.push(format!("model.path=\"{value}\"")),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let config = config.unwrap_or_else(|| panic!("{context}: no --config"));
    if let Err(e) = RunConfig::load(&root().join(&config), &sets) {
        panic!("{context}: {e}");
    }
}

/// The `eval` example end to end on bad input: a 100,000-character question on the 256-position demo
/// model stops with one error naming the file, line and both lengths (it once aborted allocating 40 GB
/// for a quadratic mask), `--overlong-prompts drop` counts it, and a missing `--compare` folder fails
/// before anything is written.
#[test]
fn eval_rejects_overlong_prompts_and_a_missing_comparison_first() {
    let eval = example_binary("eval");
    let dir = scratch("eval-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let question = "1".repeat(100_000) + "=";
    std::fs::write(
        dir.join("long.jsonl"),
        format!("\n{{\"question\": \"{question}\", \"answer\": \"1\"}}\n"),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(&eval)
            .current_dir(&dir)
            .args([
                "--model",
                &root().join("assets/demo/model").to_string_lossy(),
            ])
            .args([
                "--data",
                "x=long.jsonl",
                "--budgets",
                "16",
                "--samples",
                "1",
            ])
            // The demo model's folder has no chat template: bare prompts.
            .args(["--out", "out", "--quiet", "--no-chat"])
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&[]);
    assert!(
        err.contains("`long.jsonl` line 2: the prompt has")
            && err.contains("more than the 240 that fit (max_position_embeddings 256 − 16 generated tokens = 240)"),
        "{err}"
    );
    let err = run(&["--overlong-prompts", "drop"]);
    assert!(
        err.contains("dropped 1 of 1 prompts longer than 240 tokens"),
        "{err}"
    );
    let err = run(&["--compare", "missing"]);
    assert!(
        err.contains("--compare `missing` holds no eval report"),
        "{err}"
    );
    assert!(!dir.join("out/eval.json").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A stand-in judge for dynamic sampling: prompts whose gold digit is 7, 8 or 9 get alternating
/// verdicts (a group of two consecutive calls is one right, one wrong: informative); every other
/// prompt is always wrong (a zero-variance group, dropped).
struct InformativeGolds {
    calls: std::sync::atomic::AtomicUsize,
}

impl InformativeGolds {
    fn informative(gold: &str) -> bool {
        matches!(gold, "7" | "8" | "9")
    }
}

impl laconic::reward::Judge for InformativeGolds {
    fn judge(&self, _response: &str, gold: &str) -> laconic::reward::Judgement {
        use std::sync::atomic::Ordering;
        let alternate = self.calls.fetch_add(1, Ordering::Relaxed).is_multiple_of(2);
        laconic::reward::Judgement {
            correct: Some(Self::informative(gold) && alternate),
            extracted: None,
        }
    }
}

/// `[algorithm] filter_groups` end to end: with a judge whose informative prompts are known from
/// their golds, every step draws exactly the batches, keeps exactly the groups (in draw order) and
/// logs exactly the counts that the prompt stream predicts, including steps that hit the batch cap
/// and train on fewer groups.
#[test]
fn dynamic_sampling_keeps_the_predicted_groups() {
    let device = Default::default();
    let (steps, want, cap) = (4u64, 3usize, 3usize);
    let config = RunConfig::load(
        &root().join("configs/demo.toml"),
        &[
            format!("model.path=\"{}\"", root().join("assets/demo/model").display()),
            "data.min_digits=2".into(),
            "data.max_digits=4".into(),
            // Greedy from the warm-started model: every rollout ends within L_R, so a verdict is
            // never overturned by a cut.
            "rollout.temperature=0.0".into(),
            "rollout.max_tokens=80".into(),
            "reward.l_t=80".into(),
            "rollout.n=2".into(),
            format!("rollout.prompts_per_step={want}"),
            format!(
                "algorithm.filter_groups={{enable = true, metric = \"acc\", max_num_gen_batches = {cap}}}"
            ),
            format!("train.steps={steps}"),
            "train.log_rollouts=100".into(),
            "train.eval_problems=2".into(),
            "train.save_every=0".into(),
            "eval.budgets=[80]".into(),
        ],
    )
    .unwrap();

    // What each step must do, from the prompt stream alone.
    let (model, tok) = load_policy::<B>(&config, &device).unwrap();
    let mut task = laconic::train::Task::from_config(&config, &tok, 4096).unwrap();
    let mut expected = Vec::new();
    for step in 0..steps {
        let (mut kept, mut drawn, mut batches) = (Vec::new(), 0, 0);
        while batches < cap && kept.len() < want {
            let golds: Vec<String> = task
                .next_batch(step, batches as u64, want, &tok)
                .unwrap()
                .into_iter()
                .map(|item| item.gold)
                .collect();
            drawn += golds.len();
            batches += 1;
            kept.extend(
                golds
                    .into_iter()
                    .filter(|g| InformativeGolds::informative(g)),
            );
        }
        let informative = kept.len();
        kept.truncate(want);
        expected.push((batches, drawn, informative, kept));
    }
    let capped = expected.iter().filter(|e| e.3.len() < want).count();
    assert!(
        capped > 0 && capped < expected.len(),
        "the seed should give steps that fill the batch and steps that hit the cap"
    );

    let dir = scratch("filter-groups");
    let run = RunDir::create(&dir, &config).unwrap();
    let judge = InformativeGolds {
        calls: Default::default(),
    };
    RlTrainer::<B>::new(config.clone(), model, tok)
        .unwrap()
        .with_judge(Box::new(judge))
        .train(&run, &mut ())
        .unwrap();
    let metrics = run.read_metrics().unwrap();
    for (step, (batches, drawn, informative, kept)) in (1..=steps).zip(&expected) {
        let m = metrics.iter().find(|m| m["step"] == step as f64).unwrap();
        let context = format!("step {step}");
        assert_eq!(m["filter/gen_batches"], *batches as f64, "{context}");
        assert_eq!(m["filter/groups_kept"], kept.len() as f64, "{context}");
        assert_eq!(
            m["filter/groups_dropped"],
            (drawn - informative) as f64,
            "{context}"
        );
        assert_eq!(
            m["filter/groups_unused"],
            (informative - kept.len()) as f64,
            "{context}"
        );
        assert_eq!(
            m["filter/groups_missing"],
            (want - kept.len()) as f64,
            "{context}"
        );
        // Before filtering: every uninformative group is all wrong, none all correct.
        let all_wrong = (drawn - informative) as f64 / *drawn as f64;
        assert!(
            (m["solve_rate/all_wrong"] - all_wrong).abs() < 1e-12,
            "{context}"
        );
        assert_eq!(m["solve_rate/all_correct"], 0.0, "{context}");
        // The trained rollouts: the kept groups, in draw order, one right and one wrong each.
        let records: Vec<serde_json::Value> =
            std::fs::read_to_string(dir.join(format!("rollouts/step_{step}.jsonl")))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        let golds: Vec<&str> = records
            .iter()
            .map(|r| r["gold"].as_str().unwrap())
            .collect();
        let pairs: Vec<&str> = kept.iter().flat_map(|g| [g.as_str(), g.as_str()]).collect();
        assert_eq!(golds, pairs, "{context}");
        for group in records.chunks(2) {
            assert_ne!(group[0]["correct"], group[1]["correct"], "{context}");
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `[model.lora]` end to end on the tiny run: only the adapters train (the optimizer holds state for
/// them alone, the saved base is the initial model bit for bit), rollouts come from the adapted
/// policy (the first update's ratio is 1: `ppo_kl` ≈ 0 at every step), the KL reference is the base
/// (0 at step 1, where `B = 0`), checkpoints are PEFT adapter folders that load alone, and a resumed
/// run matches an uninterrupted one.
#[test]
fn lora_trains_the_adapters_alone_and_resumes() {
    use burn::module::AutodiffModule;
    use laconic::model::{load_model, named_tensors, LoraConfig};
    let device = Default::default();
    let mut config = tiny_config(4, 3);
    config.model.lora = Some(LoraConfig {
        rank: 4,
        alpha: 16.0,
        ..LoraConfig::default()
    });
    config.optim.lr = 1e-2;

    let dir_a = scratch("lora-a");
    let run_a = RunDir::create(&dir_a, &config).unwrap();
    let (initial, tok) = load_policy::<B>(&config, &device).unwrap();
    let initial_tensors = named_tensors(&initial);
    let mut trainer = RlTrainer::<B>::new(config.clone(), initial, tok).unwrap();
    trainer.train(&run_a, &mut ()).unwrap();

    let metrics = run_a.read_metrics().unwrap();
    let steps: Vec<_> = metrics
        .iter()
        .filter(|m| m.contains_key("actor/ppo_kl"))
        .collect();
    assert_eq!(steps.len(), 4);
    for m in &steps {
        assert!(
            m["actor/ppo_kl"].abs() < 1e-4,
            "ppo_kl {}",
            m["actor/ppo_kl"]
        );
    }
    assert!(steps[0]["actor/kl_loss"].abs() < 1e-6);
    assert!(
        steps[3]["actor/kl_loss"].abs() > 1e-6,
        "the adapters moved the policy"
    );

    let checkpoint = dir_a.join("checkpoints/step_4");
    for file in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "optimizer.safetensors",
    ] {
        assert!(checkpoint.join(file).is_file(), "missing {file}");
    }
    assert!(!checkpoint.join("model.safetensors").exists());
    let state = SafetensorsIndex::from_files(&[checkpoint.join("optimizer.safetensors")]).unwrap();
    let moments: Vec<&str> = state
        .names()
        .into_iter()
        .filter(|n| !n.starts_with("meta."))
        .collect();
    assert!(
        !moments.is_empty() && moments.iter().all(|n| n.contains(".lora.lora_")),
        "{moments:?}"
    );
    // The frozen base, written once for a randomly initialised run, is the initial model.
    let base = load_model::<NdArray>(dir_a.join("base_model"), &device).unwrap();
    assert_eq!(named_tensors(&base), initial_tensors);
    // The checkpoint loads alone (base + adapter) as the trained policy.
    let loaded = load_model::<NdArray>(&checkpoint, &device).unwrap();
    assert_eq!(
        named_tensors(&loaded),
        named_tensors(&trainer.model().valid())
    );
    // `--merge`: a full checkpoint with the adapters folded in.
    laconic::train::export_merged::<NdArray>(&checkpoint, &dir_a.join("merged"), &device).unwrap();
    let merged = load_model::<NdArray>(dir_a.join("merged"), &device).unwrap();
    assert!(merged.lora().is_none() && dir_a.join("merged/tokenizer.json").is_file());

    // Killed after step 3 (checkpoint at 2), resumed: adapters and optimizer state restored.
    let dir_b = scratch("lora-b");
    drop(train_here::<B>(&dir_b, &config, 3));
    let (run_b, resumed_at) = resume_here::<B>(&dir_b);
    assert_eq!(resumed_at, 2);
    assert_same_metrics(&run_a, &run_b, &[], "LoRA resumed");
    drop((trainer, run_a, run_b));
    std::fs::remove_dir_all(dir_a).unwrap();
    std::fs::remove_dir_all(dir_b).unwrap();
}

/// The demo config with LoRA (r = 16, lr 1e-3, as docs/performance.md reports over 80 steps) makes
/// stage I happen within 10 steps: the greedy evaluation's answers at the largest budget shrink from
/// ~96 to under 60 tokens while at least 70 % stay correct (80 steps: 96.5 → 37.1 tokens, 83 → 96 %).
#[test]
fn the_demo_with_lora_compresses_its_answers() {
    use laconic::backend::Autodiff as Flex;
    let dir = scratch("demo-lora");
    let config = RunConfig::load(
        &root().join("configs/demo.toml"),
        &[
            format!(
                "model.path=\"{}\"",
                root().join("assets/demo/model").display()
            ),
            "model.lora.rank=16".into(),
            "optim.lr=1e-3".into(),
            "train.steps=10".into(),
            "train.save_every=10".into(),
            "train.log_rollouts=0".into(),
        ],
    )
    .unwrap();
    let run = train_here::<Flex>(&dir, &config, 10);
    let metrics = run.read_metrics().unwrap();
    let at = |step: f64, key: &str| {
        metrics
            .iter()
            .find(|m| m["step"] == step && m.contains_key(key))
            .map(|m| m[key])
            .unwrap()
    };
    let (length, accuracy) = (
        "eval/digit_sum/length_mean@176",
        "eval/digit_sum/mean@1@176",
    );
    let (before, after) = (at(0.0, length), at(10.0, length));
    println!(
        "LoRA demo, 10 steps: length {before:.1} → {after:.1}, accuracy {:.2} → {:.2}",
        at(0.0, accuracy),
        at(10.0, accuracy)
    );
    assert!(before > 90.0 && after < 60.0, "{before} → {after}");
    assert!(at(10.0, accuracy) >= 0.7, "accuracy {}", at(10.0, accuracy));
    drop(run);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The rows `| `name` | … |` of the markdown table under `heading` (to the next `## `): each row's first
/// column split into its backticked names, with the row's cells.
fn table_rows(text: &str, heading: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}`"));
    let section = &text[start + heading.len()..];
    let section = section.find("\n## ").map_or(section, |end| &section[..end]);
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect();
            let names = cells[0]
                .split(", ")
                .map(|n| n.trim_matches('`').to_string())
                .collect();
            (names, cells)
        })
        .collect()
}

/// Examples are indexed from the manifest (Bevy's way): every `examples/*.rs` is declared with a
/// category and description, `examples/README.md` lists exactly those with exactly those, and README's
/// example table names exactly those.
#[test]
fn examples_are_indexed_from_the_manifest() {
    use std::collections::BTreeSet;
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let declared: BTreeSet<String> = manifest["example"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let files: BTreeSet<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    assert_eq!(
        files, declared,
        "examples/*.rs against Cargo.toml's [[example]]"
    );
    let metadata = manifest["package"]["metadata"]["example"]
        .as_table()
        .unwrap();
    assert_eq!(
        metadata.keys().cloned().collect::<BTreeSet<_>>(),
        declared,
        "[package.metadata.example.*] against [[example]]"
    );

    let listing = std::fs::read_to_string(root().join("examples/README.md")).unwrap();
    let rows = table_rows(&listing, "# Examples");
    assert_eq!(rows.len(), declared.len(), "examples/README.md rows");
    for (names, cells) in &rows {
        let entry = &metadata[&names[0]];
        assert_eq!(
            cells[1],
            entry["category"].as_str().unwrap(),
            "{}",
            names[0]
        );
        assert_eq!(
            cells[2],
            entry["description"].as_str().unwrap(),
            "{}",
            names[0]
        );
    }

    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let listed: BTreeSet<String> = table_rows(&readme, "## Examples")
        .into_iter()
        .flat_map(|(names, _)| names)
        .collect();
    assert_eq!(
        listed, declared,
        "README's example table against Cargo.toml"
    );
}

/// A build without the `mpi` feature runs one process: `--workers 2`, or a launcher that started
/// several ranks, is one error saying what to install, before anything is written.
#[cfg(not(feature = "mpi"))]
#[test]
fn data_parallel_without_mpi_says_what_to_install() {
    let train = example_binary("train");
    let dir = scratch("no-mpi");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (vec!["--workers", "2"], None),
        (vec![], Some(("OMPI_COMM_WORLD_SIZE", "2"))),
    ];
    for (flags, env) in cases {
        let mut command = std::process::Command::new(&train);
        command
            .current_dir(&dir)
            .arg("--config")
            .arg(root().join("configs/demo.toml"))
            .args(["--set", "train.out_dir=\"runs\""])
            .args(&flags);
        if let Some((key, value)) = env {
            command.env(key, value);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && stderr.contains("--features mpi")
                && stderr.contains("apt-get install libopenmpi-dev"),
            "{flags:?} {env:?}: {stderr}"
        );
        assert!(!dir.join("runs").exists(), "a run folder was made");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
