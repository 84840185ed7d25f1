//! `laconic-reward`: grade model responses and score them with a length-shaped reward, JSONL in,
//! JSONL out.
//!
//! Each input line is one rollout: `response`, `answer` (the gold: a bare answer, a GSM8K
//! `… #### N` solution or a MATH solution with `\boxed{}`), and optionally `group` (rollouts
//! with the same group are scored together), `length` (tokens; default: whitespace-separated
//! words, or characters with `--length-unit chars`), `finish` (`stop` | `length`) and
//! `target_length` (L1's per-prompt target). Each output line is the input object plus
//! `extracted`, `correct`, `reward` and `masked`.
//!
//! ```text
//! laconic-reward rollouts.jsonl --reward truncation --l-t 4096 --mask none > scored.jsonl
//! laconic-reward rollouts.jsonl --reward-toml configs/demo.toml --metrics
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use laconic_reward::config::REWARD_KINDS;
use laconic_reward::{
    BatchMetrics, ExtractMode, ExtractOptions, Finish, GroupView, Judge, MathJudge, RewardSection,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// How `length` is counted when a line has none.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LengthUnit {
    /// Whitespace-separated words of the response.
    Words,
    /// Unicode characters of the response.
    Chars,
}

/// Score model responses (JSONL) with laconic's math judge and a length-shaped reward.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Input JSONL, one rollout per line (`-` for stdin).
    #[arg(default_value = "-")]
    input: PathBuf,
    /// Output JSONL (`-` for stdout).
    #[arg(short, long, default_value = "-")]
    output: PathBuf,
    /// Reward kind: correctness, truncation, adaptive_truncation, kimi, laser, laser_d,
    /// dapo_overlong, l1, alp, cosine, arora_zanette, grpo_lead.
    #[arg(long, default_value = "truncation")]
    reward: String,
    /// Read the reward from a TOML file: its `[reward]` table, or the whole file if it has none.
    #[arg(long)]
    reward_toml: Option<PathBuf>,
    /// Target length `L_T` (truncation, laser, laser_d).
    #[arg(long)]
    l_t: Option<i64>,
    /// Masking variant: none, incorrect, long_correct, long_correct_short_incorrect,
    /// long_correct_long_incorrect.
    #[arg(long)]
    mask: Option<String>,
    /// `α` (kimi, laser, laser_d, l1, arora_zanette, grpo_lead).
    #[arg(long, value_parser = finite)]
    alpha: Option<f64>,
    /// `β` (alp).
    #[arg(long, value_parser = finite)]
    beta: Option<f64>,
    /// Percentile of correct lengths (adaptive_truncation).
    #[arg(long, value_parser = finite)]
    percentile: Option<f64>,
    /// `group` or `batch` (adaptive_truncation).
    #[arg(long)]
    scope: Option<String>,
    /// `L_max` (dapo_overlong, cosine).
    #[arg(long)]
    l_max: Option<i64>,
    /// `L_cache` (dapo_overlong).
    #[arg(long)]
    l_cache: Option<i64>,
    /// Any other knob as `key=value` (TOML value syntax; a bare word is a string). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Unit of the default `length`.
    #[arg(long, value_enum, default_value = "words")]
    length_unit: LengthUnit,
    /// Also accept "final answer is …" / "answer: …" when there is no boxed or `####` answer.
    #[arg(long)]
    phrases: bool,
    /// How answers are found: `boxed` (strict) or `math-verify` (math-verify's free-form search,
    /// falling back to the last LaTeX span or number). Default: the `[reward]` table's `extract`,
    /// else `boxed`.
    #[arg(long)]
    extract: Option<ExtractMode>,
    /// Search the whole response, `<think>` block included.
    #[arg(long)]
    no_think: bool,
    /// Print batch metrics (verl-style keys) as one JSON object on stderr.
    #[arg(long)]
    metrics: bool,
}

/// The fields we read from a line; everything else is passed through.
#[derive(Debug, Deserialize)]
struct Rollout {
    response: String,
    answer: String,
    #[serde(default)]
    group: Option<Value>,
    #[serde(default)]
    length: Option<usize>,
    #[serde(default)]
    finish: Option<Finish>,
    #[serde(default)]
    target_length: Option<f64>,
}

fn toml_value(raw: &str) -> toml::Value {
    // `key = <raw>` parsed as TOML; a bare word falls back to a string.
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn reward_config(args: &Args) -> Result<RewardSection> {
    let mut table = match &args.reward_toml {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read `{}`", path.display()))?;
            let mut t: toml::Table = toml::from_str(&text)
                .with_context(|| format!("failed to parse `{}`", path.display()))?;
            match t.remove("reward") {
                Some(toml::Value::Table(r)) => r,
                Some(_) => bail!("`{}`: `reward` must be a table", path.display()),
                None => t,
            }
        }
        None => {
            if !REWARD_KINDS.contains(&args.reward.as_str()) {
                bail!(
                    "unknown reward `{}`, expected one of: {}",
                    args.reward,
                    REWARD_KINDS.join(", ")
                );
            }
            let mut t = toml::Table::new();
            t.insert("kind".into(), toml::Value::String(args.reward.clone()));
            t
        }
    };
    let flags: [(&str, Option<toml::Value>); 8] = [
        ("l_t", args.l_t.map(toml::Value::Integer)),
        ("mask", args.mask.clone().map(toml::Value::String)),
        ("alpha", args.alpha.map(toml::Value::Float)),
        ("beta", args.beta.map(toml::Value::Float)),
        ("percentile", args.percentile.map(toml::Value::Float)),
        ("scope", args.scope.clone().map(toml::Value::String)),
        ("l_max", args.l_max.map(toml::Value::Integer)),
        ("l_cache", args.l_cache.map(toml::Value::Integer)),
    ];
    for (key, value) in flags {
        if let Some(v) = value {
            table.insert(key.into(), v);
        }
    }
    for kv in &args.set {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("`--set {kv}`: expected `key=value`");
        };
        table.insert(k.trim().into(), toml_value(v.trim()));
    }
    let kind = table
        .get("kind")
        .and_then(toml::Value::as_str)
        .unwrap_or("?")
        .to_string();
    let mut config: RewardSection = toml::Value::Table(table)
        .try_into()
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
        .with_context(|| format!("invalid reward settings for `kind = {kind}`"))?;
    config.shaper.validate()?;
    if let Some(mode) = args.extract {
        config.extract = mode;
    }
    Ok(config)
}

/// A finite number: `nan` and `inf` are refused here, where the flag is named (TOML has no NaN a
/// reward knob could take).
fn finite(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("expected a finite number, found `{v}`")),
        Err(e) => Err(format!("expected a number, found `{text}` ({e})")),
    }
}

/// The lines of `bytes` (without `\n` or `\r\n`), each checked to be UTF-8: an error names the
/// input and the line.
fn utf8_lines<'a>(bytes: &'a [u8], name: &'a str) -> impl Iterator<Item = Result<&'a str>> + 'a {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .filter(move |_| !bytes.is_empty())
        .enumerate()
        .map(move |(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            std::str::from_utf8(line).map_err(|e| {
                anyhow::anyhow!(
                    "`{name}` line {}: invalid UTF-8 at byte {} of the line",
                    i + 1,
                    e.valid_up_to()
                )
            })
        })
}

fn open_input(path: &Path) -> Result<Box<dyn BufRead>> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f = std::fs::File::open(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    Ok(Box::new(BufReader::new(f)))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    let config = reward_config(args)?;
    let judge = MathJudge {
        extract: ExtractOptions {
            mode: config.extract,
            phrases: args.phrases,
            think_aware: !args.no_think,
            ..ExtractOptions::default()
        },
        ..MathJudge::default()
    };
    let name = if args.input == Path::new("-") {
        "<stdin>".to_string()
    } else {
        args.input.display().to_string()
    };

    // 1. Read and judge every line (blank lines are skipped; a broken line is an error).
    let mut lines: Vec<(Map<String, Value>, bool, usize, Finish)> = Vec::new();
    let mut group_of_line: Vec<usize> = Vec::new();
    let mut group_ids: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(Vec<usize>, Option<f64>)> = Vec::new();
    let mut bytes = Vec::new();
    let mut reader = open_input(&args.input)?;
    reader
        .read_to_end(&mut bytes)
        .with_context(|| format!("failed to read `{name}`"))?;
    for (i, line) in utf8_lines(&bytes, &name).enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("`{name}` line {}", i + 1);
        let obj: Map<String, Value> =
            serde_json::from_str(line).with_context(|| format!("{}: invalid JSON object", at()))?;
        let r: Rollout = serde_json::from_value(Value::Object(obj.clone())).with_context(at)?;
        let v = judge.judge(&r.response, &r.answer);
        let length = r.length.unwrap_or_else(|| match args.length_unit {
            LengthUnit::Words => r.response.split_whitespace().count(),
            LengthUnit::Chars => r.response.chars().count(),
        });
        let finish = r.finish.unwrap_or_default();
        let mut obj = obj;
        obj.insert(
            "extracted".into(),
            v.extracted.map_or(Value::Null, Value::String),
        );
        obj.insert("correct".into(), v.correct.map_or(Value::Null, Value::Bool));
        let key = match &r.group {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let gid = match key {
            Some(k) => *group_ids.entry(k).or_insert_with(|| {
                groups.push((Vec::new(), None));
                groups.len() - 1
            }),
            None => {
                groups.push((Vec::new(), None));
                groups.len() - 1
            }
        };
        let line_index = lines.len();
        if let Some(g) = groups.get_mut(gid) {
            g.0.push(line_index);
            g.1 = g.1.or(r.target_length);
        }
        group_of_line.push(gid);
        lines.push((obj, v.correct == Some(true), length, finish));
    }

    // 2. Score all groups as one batch.
    let views: Vec<GroupView> = groups
        .iter()
        .map(|(members, target)| {
            let g = GroupView::new(
                members
                    .iter()
                    .filter_map(|&k| lines.get(k))
                    .map(|(_, c, l, f)| (*c, *l, *f)),
            );
            match target {
                Some(t) => g.with_target_length(*t),
                None => g,
            }
        })
        .collect();
    let scores = config.shaper.score_batch(&views);

    // 3. Write the lines back in input order.
    let out: Box<dyn Write> = if args.output == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        let f = std::fs::File::create(&args.output)
            .with_context(|| format!("failed to create `{}`", args.output.display()))?;
        Box::new(f)
    };
    let mut out = BufWriter::new(out);
    let mut position_in_group = vec![0usize; groups.len()];
    for ((obj, ..), gid) in lines.iter().zip(&group_of_line) {
        let pos = position_in_group.get(*gid).copied().unwrap_or(0);
        if let Some(p) = position_in_group.get_mut(*gid) {
            *p += 1;
        }
        let s = scores
            .get(*gid)
            .and_then(|g| g.get(pos))
            .context("internal error: missing score")?;
        let mut obj = obj.clone();
        // Through the f32's shortest decimal form, so 0.7 prints as 0.7, not 0.699999988079071.
        let reward = s
            .reward
            .to_string()
            .parse::<f64>()
            .unwrap_or(f64::from(s.reward));
        obj.insert("reward".into(), Value::from(reward));
        obj.insert("masked".into(), Value::Bool(s.masked));
        serde_json::to_writer(&mut out, &obj).context("failed to write output")?;
        out.write_all(b"\n").context("failed to write output")?;
    }
    out.flush().context("failed to write output")?;

    if args.metrics {
        let m = BatchMetrics::compute(&views, &scores)?;
        let obj: Map<String, Value> = m
            .to_pairs()
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        eprintln!("{}", Value::Object(obj));
    }
    Ok(())
}
