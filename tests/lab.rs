//! The lab end to end: a tiny experiment (three arms, two of them the same config, two seeds, a few
//! steps of the tiny demo-task run) through the `lab` example, from the experiment file to the report,
//! figures and verdicts; then a resume that trains nothing, and a bad `--only`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::rl::{check_pages_in_a_browser, example_binary, scratch, tiny_config_toml};
use laconic::train::lab::{experiment, Lab, LabOptions};

fn lab(args: &[&str]) -> Output {
    let out = Command::new(example_binary("lab"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    eprintln!("{}{}", text(&out.stdout), text(&out.stderr));
    out
}

fn experiment(base: &Path) -> String {
    format!(
        r#"
finding = "F0: a tiny check of the lab"
base = "{base}"
set = ["train.eval_every=1"]

[[arms]]
name = "kimi"

[[arms]]
name = "kimi_again"
set = ["reward.alpha=0.4"]      # the default: the same config as `kimi`, trained once

[[arms]]
name = "short"
set = ["rollout.max_tokens=4"]

[[checks]]
kind = "compare"
claim = "longer rollouts are longer at the largest budget"
metric = "eval_length"
higher = "kimi"
lower = "short"

[[checks]]
kind = "two_stages"
claim = "two stages in two steps"
arm = "kimi"
"#,
        base = base.display()
    )
}

#[test]
fn a_tiny_experiment_runs_reports_and_resumes() {
    let dir = scratch("lab");
    let experiments = dir.join("experiments");
    std::fs::create_dir_all(&experiments).unwrap();
    let base = dir.join("base.toml");
    std::fs::write(&base, tiny_config_toml(2, 2)).unwrap();
    std::fs::write(experiments.join("tiny.toml"), experiment(&base)).unwrap();
    let out_dir = dir.join("lab");
    let (experiments, out) = (experiments.to_str().unwrap(), out_dir.to_str().unwrap());

    let run = lab(&[
        "--experiments",
        experiments,
        "--out",
        out,
        "--seeds",
        "2",
        "--jobs",
        "2",
    ]);
    assert!(run.status.success());
    let stdout = String::from_utf8_lossy(&run.stdout);
    // 3 arms × 2 seeds, `kimi_again` shares `kimi`'s runs: 4 distinct runs.
    assert!(stdout.contains("4 distinct runs (4 to train"), "{stdout}");

    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    // The same report as one page for a browser: tables and every figure inlined.
    let page = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(page.contains("<table>") && page.contains("Rule: eval_length"));
    assert_eq!(
        page.matches("<span class=\"figure\"><svg").count(),
        report.matches("![").count(),
        "every figure inlined"
    );
    assert!(!page.contains("<img") && !page.contains("not inlined"));
    for expected in [
        "## Summary",
        "| `tiny` | F0: a tiny check of the lab |",
        "`kimi_again` shares its runs with `tiny/kimi`",
        "Rule: eval_length = mean length at the largest budget",
        "Accuracy (Mean@k, %) by budget",
        "![figures/tiny-length.svg](figures/tiny-length.svg)",
    ] {
        assert!(
            report.contains(expected),
            "missing `{expected}` in\n{report}"
        );
    }
    for figure in [
        "tiny-length.svg",
        "tiny-entropy.svg",
        "tiny-accuracy-vs-budget.svg",
        "tiny-lengths-short.svg",
    ] {
        let svg = std::fs::read_to_string(out_dir.join("figures").join(figure)).unwrap();
        assert!(svg.starts_with("<svg"), "{figure}");
    }
    check_pages_in_a_browser(&[&out_dir.join("report.html")]);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let checks = summary[0]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    // Rollouts cut at 4 tokens teach nothing about long answers; whatever the verdict, the evidence
    // names both arms with their numbers and the verdict follows from them.
    let evidence = checks[0]["evidence"].as_str().unwrap();
    assert!(
        evidence.starts_with("eval_length: kimi ") && evidence.contains(" vs short "),
        "{evidence}"
    );
    let verdicts = ["reproduced", "not_reproduced", "inconclusive"];
    for c in checks {
        assert!(verdicts.contains(&c["verdict"].as_str().unwrap()), "{c}");
    }
    let overall = summary[0]["verdict"].as_str().unwrap();
    assert!(verdicts.contains(&overall));

    // A resumed lab keeps finished runs.
    let marker = out_dir.join("runs/tiny/kimi/seed1/lab-done.json");
    let before = std::fs::read_to_string(&marker).unwrap();
    let again = lab(&["--resume", out]);
    assert!(again.status.success());
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("(0 to train"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), before);

    // An unknown experiment is named, with the ones there are.
    let bad = lab(&["--experiments", experiments, "--only", "nope"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("no lab experiment named `nope` (there are: tiny)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every shipped experiment loads, every arm resolves against its base config (full and quick), and
/// the runs the experiments share are trained once.
#[test]
fn shipped_experiments_resolve_and_share_runs() {
    let experiments = experiment::load_dir(std::path::Path::new("configs/lab")).unwrap();
    let names: Vec<&str> = experiments.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "budget_flip",
            "easy_vs_hard",
            "group_size",
            "lr_vs_lt",
            "masking",
            "staleness",
            "two_stages"
        ]
    );
    let dir = scratch("lab-plan");
    for quick in [false, true] {
        let options = LabOptions {
            seeds: 2,
            sets: Vec::new(),
            quick,
        };
        let lab = Lab {
            dir: dir.clone(),
            experiments: experiments.clone(),
            options,
        };
        let plan = lab.plan().unwrap();
        let arms: usize = experiments.iter().map(|e| e.arms.len()).sum();
        assert_eq!(plan.index.len(), 2 * arms);
        // The demo's run is the truncation arm of budget_flip, two_stages and lr_vs_lt (`lr_eq_lt`),
        // and masking's `none` is lr_vs_lt's `lr_gt_lt` (both at L_R = 108): three shared arms.
        let truncation = plan.index[&("budget_flip".into(), "truncation".into(), 1)];
        assert_eq!(
            plan.index[&("two_stages".into(), "truncation".into(), 1)],
            truncation
        );
        assert_eq!(
            plan.index[&("lr_vs_lt".into(), "lr_eq_lt".into(), 1)],
            truncation
        );
        assert_eq!(
            plan.index[&("masking".into(), "none".into(), 0)],
            plan.index[&("lr_vs_lt".into(), "lr_gt_lt".into(), 0)]
        );
        assert_eq!(plan.runs.len(), 2 * (arms - 3));
        let steps = plan.runs[truncation].config.train.steps;
        assert_eq!(steps, if quick { 40 } else { 80 });
        assert_eq!(plan.runs[truncation].config.train.seed, 1);
    }
}
