//! Generates text from any Hugging Face Qwen3/Qwen2/Llama checkpoint folder with the KV-cached engine.
//!
//! ```text
//! cargo run --release --example generate -- --model path/to/Qwen3-0.6B --chat --prompt "What is 12 * 7?"
//! cargo run --release --example generate -- --model tests/fixtures/parity/qwen3_tied --prompt-ids 5,9,13 --json
//! ```
//! Streams the completion (or prints one JSON object with `--json`: `prompt_ids`, `completion_ids`, `text`,
//! `finish_reason`, `tokens_per_s`). Stops at the checkpoint's end tokens (`generation_config.json`,
//! `config.json`, the chat template's eos).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use laconic::backend::{self, Backend};
use laconic::model::{load_pretrained, ChatTemplate, Message, Tokenizer};
use laconic::rollout::{Engine, EngineConfig, Finish, Observer, SamplingParams};

/// Generate a completion with a Qwen3/Qwen2/Llama checkpoint.
#[derive(Parser, Debug)]
struct Args {
    /// Hugging Face checkpoint folder (config.json, model.safetensors or a sharded index).
    #[arg(long)]
    model: PathBuf,
    /// Prompt text (needs a tokenizer: the folder's tokenizer.json or --tokenizer).
    #[arg(long, conflicts_with = "prompt_ids")]
    prompt: Option<String>,
    /// Prompt as comma-separated token ids.
    #[arg(long, value_delimiter = ',')]
    prompt_ids: Option<Vec<u32>>,
    /// Tokenizer file when the checkpoint folder has none.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Wrap the prompt in the checkpoint's own chat template (user turn + assistant header).
    #[arg(long)]
    chat: bool,
    /// With --chat: this template file (`.jinja` or a `tokenizer_config.json`) instead of the
    /// checkpoint's.
    #[arg(long)]
    chat_template: Option<PathBuf>,
    /// With --chat: `enable_thinking = false` (Qwen3's template then appends an empty think block).
    #[arg(long)]
    no_think: bool,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature; 0 = greedy, else at least 1e-6.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus mass (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
}

/// Prints each new piece of text as tokens arrive.
struct Streamer<'a> {
    tokenizer: Option<&'a Tokenizer>,
    ids: Vec<u32>,
    printed: usize,
}

impl Observer for Streamer<'_> {
    fn on_token(&mut self, _prompt: usize, _sample: usize, token: u32) {
        self.ids.push(token);
        let Some(tokenizer) = self.tokenizer else {
            print!("{token} ");
            let _ = std::io::stdout().flush();
            return;
        };
        // Decode everything so far and print the new suffix: a token may end inside a UTF-8 character.
        if let Ok(text) = tokenizer.decode(&self.ids) {
            if text.len() > self.printed
                && text.is_char_boundary(self.printed)
                && !text.ends_with('\u{FFFD}')
            {
                print!("{}", &text[self.printed..]);
                let _ = std::io::stdout().flush();
                self.printed = text.len();
            }
        }
    }
}

fn main() {
    laconic_harness::exit_on_error(run(Args::parse()), |_| 1);
}

fn run(args: Args) -> Result<()> {
    let device = backend::device()?;
    let pretrained = load_pretrained::<Backend>(&args.model, &device)
        .with_context(|| format!("failed to load the model in `{}`", args.model.display()))?;
    let tokenizer = match (&args.tokenizer, pretrained.tokenizer) {
        (Some(path), _) => Some(Tokenizer::from_file(path)?),
        (None, found) => found,
    };
    let prompt_ids = match (&args.prompt, &args.prompt_ids) {
        (_, Some(ids)) => ids.clone(),
        (Some(text), None) => {
            let tokenizer = tokenizer.as_ref().context(
                "--prompt needs a tokenizer: the folder has no tokenizer.json; pass --tokenizer",
            )?;
            let text = if args.chat {
                let template = match &args.chat_template {
                    Some(path) => ChatTemplate::from_file(path)?,
                    None => tokenizer.chat_template().cloned().with_context(|| {
                        format!(
                            "--chat: `{}` has no chat template; pass --chat-template FILE",
                            args.model.display()
                        )
                    })?,
                };
                template.render(&[Message::user(text.as_str())], true, !args.no_think)?
            } else {
                text.clone()
            };
            tokenizer.encode(&text)?
        }
        (None, None) => bail!("give --prompt TEXT or --prompt-ids 1,2,3"),
    };
    let mut stop_ids = pretrained.model.config().eos_token_ids();
    stop_ids.extend(
        tokenizer
            .as_ref()
            .map(Tokenizer::stop_ids)
            .unwrap_or_default(),
    );
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        max_tokens: args.max_tokens,
        stop_ids,
        seed: args.seed,
        ..SamplingParams::default()
    };
    let engine = Engine::new(&pretrained.model, EngineConfig::default())?;
    let start = Instant::now();
    let rollout = if args.json {
        engine.generate(std::slice::from_ref(&prompt_ids), 1, &params, &mut ())?
    } else {
        let mut streamer = Streamer {
            tokenizer: tokenizer.as_ref(),
            ids: Vec::new(),
            printed: 0,
        };
        let out = engine.generate(std::slice::from_ref(&prompt_ids), 1, &params, &mut streamer)?;
        println!();
        out
    }
    .remove(0);
    let seconds = start.elapsed().as_secs_f64();
    let tokens_per_s = rollout.len() as f64 / seconds;
    let text = tokenizer
        .as_ref()
        .map(|t| t.decode(&rollout.response_ids))
        .transpose()?;
    let finish_reason = match rollout.finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
    };
    if args.json {
        let out = serde_json::json!({
            "prompt_ids": prompt_ids,
            "completion_ids": rollout.response_ids,
            "text": text,
            "finish_reason": finish_reason,
            "tokens_per_s": tokens_per_s,
        });
        println!("{out}");
    } else {
        eprintln!(
            "[{} tokens, finish: {finish_reason}, {tokens_per_s:.1} tokens/s on {}]",
            rollout.len(),
            backend::NAME
        );
    }
    Ok(())
}
