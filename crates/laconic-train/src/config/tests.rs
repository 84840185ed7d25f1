//! Config loading: strict types at every layer, every knob range-checked with its dotted key, and
//! `reward.kind` switchable from the command line.

use std::path::{Path, PathBuf};

use super::*;

/// The shipped demo config.
fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/demo.toml")
}

fn sets(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The error of loading the demo config with these `--set` arguments.
fn set_error(args: &[&str]) -> String {
    RunConfig::load_with_env(&demo(), [], &sets(args))
        .unwrap_err()
        .to_string()
}

/// A scratch TOML file holding the demo config with `extra` appended to its `section`.
fn demo_with(section: &str, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(demo()).unwrap();
    let header = format!("[{section}]\n");
    let text = text.replacen(&header, &format!("{header}{extra}\n"), 1);
    let dir = std::env::temp_dir().join(format!("laconic-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{section}-{}.toml", extra.len()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_demo_config_loads() {
    let config = RunConfig::load_with_env(&demo(), [], &[]).unwrap();
    assert_eq!(config.rollout.n, 8);
}

/// No coercion at any layer: a float where an integer belongs, a string where a bool belongs, each
/// an error naming the dotted key and the layer that wrote it.
#[test]
fn values_are_never_coerced() {
    let err = set_error(&["train.steps=2.7"]);
    assert!(
        err.contains("`train.steps`: invalid type: floating point `2.7`, expected u64")
            && err.contains("(from `--set train.steps=2.7`)"),
        "{err}"
    );
    let err = RunConfig::load_with_env(
        &demo(),
        [("LACONIC__ROLLOUT__N".to_string(), "8.5".to_string())],
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`rollout.n`: invalid type: floating point `8.5`")
            && err.contains("environment variable `LACONIC__ROLLOUT__N`"),
        "{err}"
    );
    let err = set_error(&["train.track_kl=\"yes\""]);
    assert!(
        err.contains("`train.track_kl`: invalid type: string \"yes\", expected a boolean"),
        "{err}"
    );
    // A sampling or engine knob (flattened into `[rollout]` from laconic-rollout's types) is named too.
    for (set, key) in [
        ("rollout.top_k=1.5", "`rollout.top_k`"),
        ("rollout.max_batch=\"many\"", "`rollout.max_batch`"),
    ] {
        let err = set_error(&[set]);
        assert!(
            err.contains(&format!("{key}: invalid type"))
                && err.contains("(from `--set")
                && !err.contains('\n'),
            "{err}"
        );
    }
    // An optimizer knob's error names its dotted key and the override that wrote it.
    let err = set_error(&["optim.lr=-1.0"]);
    assert!(
        err.contains("`optim.lr` expected") && err.contains("(from `--set optim.lr=-1.0`)"),
        "{err}"
    );
    let err = set_error(&["rollout.seed=3"]);
    assert!(err.contains("`rollout.seed`: unknown key"), "{err}");
    let file = demo_with("rollout", "n_unused_line = 0");
    let err = RunConfig::load_with_env(&file, [], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("n_unused_line"), "{err}");
    // The file layer is just as strict, and named by the error's file.
    let text = std::fs::read_to_string(demo())
        .unwrap()
        .replace("n = 8 ", "n = 8.5 ");
    let file = demo_with("train", "");
    std::fs::write(&file, text).unwrap();
    let err = RunConfig::load_with_env(&file, [], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`rollout.n`: invalid type: floating point `8.5`")
            && err.contains(&*file.to_string_lossy())
            && !err.contains("--set"),
        "{err}"
    );
}

#[test]
fn malformed_set_keys_say_what_is_wrong() {
    for (arg, says) in [
        ("rollout[0]=3", "`rollout[0]` is not a dotted key"),
        ("=3", "the key is empty"),
        ("..steps=2", "`..steps` has an empty part"),
        ("rollout=3", "`rollout` is a table"),
    ] {
        let err = set_error(&[arg]);
        assert!(err.contains(says), "{arg}: {err}");
    }
}

/// Knobs inside the reward's table are named by their full key.
#[test]
fn reward_knob_errors_name_the_knob() {
    let err = set_error(&["reward.l_t=-5"]);
    assert!(
        err.contains("`reward.l_t`: invalid value: integer `-5`, expected usize")
            && err.contains("(from `--set reward.l_t=-5`)"),
        "{err}"
    );
    let err = set_error(&["reward.mask=\"nope\""]);
    assert!(
        err.contains("`reward.mask`: unknown variant `nope`"),
        "{err}"
    );
}

/// Every knob out of range is an error naming its dotted key, at load time (before any model or
/// run folder).
#[test]
fn every_knob_is_range_checked() {
    for (arg, key) in [
        ("rollout.max_tokens=0", "`rollout.max_tokens`"),
        ("rollout.top_p=0", "`rollout.top_p`"),
        ("rollout.top_p=2", "`rollout.top_p`"),
        ("rollout.min_p=-1", "`rollout.min_p`"),
        ("rollout.temperature=-1", "`rollout.temperature`"),
        ("rollout.max_batch=0", "`rollout.max_batch`"),
        ("rollout.prefill_batch=0", "`rollout.prefill_batch`"),
        ("rollout.kv_cache_tokens=0", "`rollout.kv_cache_tokens`"),
        ("train.eval_problems=0", "`train.eval_problems`"),
        (
            "data.min_digits=12",
            "`data.min_digits` (12) must be at most `data.max_digits` (9)",
        ),
        ("data.min_digits=0", "`data.min_digits`"),
        ("sft.batch_size=0", "`sft.batch_size`"),
        ("model.attention.key_block=0", "`model.attention`"),
        // Issue 32: GRPO divides by `std + adv_epsilon`, so 0 made a NaN advantage at step 1.
        ("optim.adv_epsilon=0.0", "`optim.adv_epsilon`"),
        ("optim.adv_epsilon=-1e-6", "`optim.adv_epsilon`"),
        ("optim.adv_epsilon=inf", "`optim.adv_epsilon`"),
    ] {
        let err = set_error(&[arg]);
        assert!(
            err.contains(key) && err.contains(&format!("(from `--set {arg}`)")),
            "{arg}: {err}"
        );
    }
}

/// `--set reward.kind=…` on a file written for another reward drops the file's knobs that the new
/// kind lacks; a knob the user sets for the wrong kind is still an error.
#[test]
fn the_reward_kind_switches_from_the_command_line() {
    let config = RunConfig::load_with_env(&demo(), [], &sets(&["reward.kind=\"kimi\""])).unwrap();
    assert_eq!(config.reward.shaper.kind(), "kimi");
    let config = RunConfig::load_with_env(
        &demo(),
        [("LACONIC__REWARD__KIND".to_string(), "laser".to_string())],
        &[],
    )
    .unwrap();
    // `l_t` is a knob of Laser too: the file's 54 is kept.
    assert_eq!(
        config.reward.shaper,
        laconic_reward::RewardConfig::Laser(laconic_reward::shapers::Laser {
            l_t: 54,
            ..Default::default()
        })
    );
    let err = set_error(&["reward.kind=\"kimi\"", "reward.l_t=5"]);
    assert!(
        err.contains("unknown field `l_t`") && err.contains("`reward`"),
        "{err}"
    );
    // Without an override of `kind` the file's knobs are checked as written.
    let file = demo_with("reward", "alpha = 0.4");
    let err = RunConfig::load_with_env(&file, [], &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `alpha`"), "{err}");
}

/// `reward.extract` picks the answer extraction of JSONL data, survives a switch of `reward.kind` and
/// the resolved config; the digit-sum task, which has its own judge, refuses it.
#[test]
fn the_extraction_mode_is_a_reward_knob() {
    use laconic_reward::ExtractMode;
    let jsonl = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/qwen3-0.6b.toml");
    let strict = RunConfig::load_with_env(&jsonl, [], &[]).unwrap();
    assert_eq!(strict.reward.extract, ExtractMode::Boxed);
    let free = RunConfig::load_with_env(
        &jsonl,
        [],
        &sets(&["reward.kind=\"kimi\"", "reward.extract=\"math_verify\""]),
    )
    .unwrap();
    assert_eq!(free.reward.extract, ExtractMode::MathVerify);
    assert_eq!(free.reward.shaper.kind(), "kimi");
    let resolved = RunConfig::from_toml(&free.to_toml()).unwrap();
    assert_eq!(resolved, free);
    let err = RunConfig::load_with_env(&jsonl, [], &sets(&["reward.extract=\"regex\""]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`reward.extract`: unknown variant `regex`"),
        "{err}"
    );
    let err = set_error(&["reward.extract=\"math_verify\""]);
    assert!(
        err.contains("`reward.extract` applies to math answers"),
        "{err}"
    );
}

/// `[algorithm] filter_groups` takes verl's inline table or dotted `--set` keys; a zero batch cap and
/// an unknown metric are named by their dotted keys.
#[test]
fn dynamic_sampling_is_an_algorithm_knob() {
    use laconic_reward::FilterMetric;
    let off = RunConfig::load_with_env(&demo(), [], &[]).unwrap();
    assert!(!off.algorithm.filter_groups.enable);
    let on = RunConfig::load_with_env(
        &demo(),
        [],
        &sets(&[
            "algorithm.filter_groups={enable = true, metric = \"acc\", max_num_gen_batches = 3}",
        ]),
    )
    .unwrap();
    let f = &on.algorithm.filter_groups;
    assert!(f.enable);
    assert_eq!((f.metric, f.max_num_gen_batches), (FilterMetric::Acc, 3));
    assert_eq!(RunConfig::from_toml(&on.to_toml()).unwrap(), on);
    let dotted =
        RunConfig::load_with_env(&demo(), [], &sets(&["algorithm.filter_groups.enable=true"]))
            .unwrap();
    assert_eq!(dotted.algorithm.filter_groups.max_num_gen_batches, 10);
    let err = set_error(&["algorithm.filter_groups.max_num_gen_batches=0"]);
    assert!(
        err.contains("`algorithm.filter_groups.max_num_gen_batches` must be at least 1"),
        "{err}"
    );
    let err = set_error(&["algorithm.filter_groups.metric=\"score\""]);
    assert!(
        err.contains("`algorithm.filter_groups.metric`: unknown variant `score`"),
        "{err}"
    );
}

/// The temperature is one knob: `rollout.temperature` reaches the optimizer (1 for greedy rollouts),
/// and an old file's `optim.temperature` is refused with what to do instead.
#[test]
fn the_rollout_temperature_is_the_only_temperature() {
    let config =
        RunConfig::load_with_env(&demo(), [], &sets(&["rollout.temperature=0.7"])).unwrap();
    assert_eq!(config.optim_config().temperature, 0.7);
    let greedy =
        RunConfig::load_with_env(&demo(), [], &sets(&["rollout.temperature=0.0"])).unwrap();
    assert_eq!(greedy.optim_config().temperature, 1.0);
    let err = RunConfig::load_with_env(&demo_with("optim", "temperature = 1.0"), [], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`optim.temperature` is no longer a knob")
            && err.contains("delete `optim.temperature`"),
        "{err}"
    );
    let err = set_error(&["optim.temperature=0.7"]);
    assert!(
        err.contains("no longer a knob") && err.contains("--set"),
        "{err}"
    );
}

/// Issue 32: a run name is one plain folder name, so the run folder is a new folder inside
/// `train.out_dir`: an empty name or `.` made the run folder `out_dir` itself, `../x` escaped it.
#[test]
fn a_run_name_is_one_plain_folder_name() {
    for name in ["", ".", "..", "../x", "a/b", "a\\\\b", "/abs"] {
        let arg = format!("train.run_name=\"{name}\"");
        let err = set_error(&[&arg]);
        assert!(
            err.contains("`train.run_name`") && err.contains("not a plain folder name"),
            "{name}: {err}"
        );
    }
    let config =
        RunConfig::load_with_env(&demo(), [], &sets(&["train.run_name=\"run-1.b\""])).unwrap();
    assert_eq!(config.train.run_name.as_deref(), Some("run-1.b"));
    // A long bad name is echoed cut short.
    let long = format!("train.run_name=\"{}/x\"", "y".repeat(10_000));
    let err = set_error(&[&long]);
    assert!(
        err.contains("…") && err.len() < 1_000,
        "{} bytes",
        err.len()
    );
}

/// Issue 32: an unknown `reward.kind` of 10 MB was echoed whole to stderr (twice: the value and the
/// `--set` that wrote it); an integer beyond range was reported as "invalid type: string".
#[test]
fn errors_echo_values_cut_short_and_name_out_of_range_numbers() {
    let huge = format!("reward.kind={}", "k".repeat(10_000_000));
    let err = set_error(&[&huge]);
    assert!(
        err.contains("unknown reward") && err.contains('…') && err.len() < 2_000,
        "{} bytes: {}",
        err.len(),
        &err[..err.len().min(500)]
    );
    let err = set_error(&["train.steps=18446744073709551615"]);
    assert!(
        err.contains("out of range")
            && err.contains("train.steps")
            && !err.contains("invalid type"),
        "{err}"
    );
    let err = set_error(&["train.steps=1\nbogus = 2"]);
    assert!(err.contains("line break"), "{err}");
}
