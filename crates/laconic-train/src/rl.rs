//! `RlTrainer`: one RL step is prompts → rollouts → judge → rewards → advantages → update → metrics.
//!
//! Everything random is derived from `(train.seed, step)` (prompt draws, sampling streams) or stored in
//! the checkpoint (dataset cursor, optimizer moments), so a resumed run reproduces the steps an
//! uninterrupted run would have taken.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use laconic_eval::{evaluate_shard, EvalReport, EvalShard, QuestionShard};
use laconic_model::safetensors::{INDEX_FILE, SINGLE_FILE};
use laconic_model::{load_model, save_pretrained, CausalLm, Tokenizer};
use laconic_optim::collective::{all_gather_bytes, all_gather_u64, all_reduce_u64};
use laconic_optim::{
    compute_logprobs, logprob::head_weight, Collective, LogprobBackend, PolicyUpdater,
    SingleWorker, UpdateBatch,
};
use laconic_reward::Judge;
use laconic_rollout::{shard_range, Engine, Finish, Observer, Progress, Rollout};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::data::PromptItem;
use crate::error::{Error, Result};
use crate::run::{Metrics, RunDir, TrainerState, OPTIMIZER_STATE};
use crate::source::{draw_seed, Task};
use crate::step_batch::{reward_finish, Drawn, Judged, Outcome};

/// What the loop reports while it runs (progress bars, logs). Every method has a no-op default.
pub trait TrainObserver {
    /// Rollout or evaluation generation progress.
    fn on_progress(&mut self, _phase: Phase, _progress: &Progress) {}
    /// A step finished with these metrics.
    fn on_step(&mut self, _step: u64, _metrics: &Metrics) {}
    /// An evaluation finished.
    fn on_eval(&mut self, _step: u64, _report: &EvalReport) {}
}

impl TrainObserver for () {}

/// What the loop is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sampling training rollouts.
    Rollout,
    /// Generating evaluation samples.
    Eval,
}

/// One sampled rollout as written to `rollouts/step_N.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// Prompt text.
    pub prompt: String,
    /// Response text.
    pub response: String,
    /// Gold answer.
    pub gold: String,
    /// Extracted answer, if any.
    pub extracted: Option<String>,
    /// Judged correct (and finished within `L_R`).
    pub correct: bool,
    /// Response length in tokens.
    pub length: usize,
    /// `stop` or `length`.
    pub finish: Finish,
    /// Shaped reward.
    pub reward: f32,
    /// Advantage.
    pub advantage: f32,
    /// Masked (no reward, no gradient).
    pub masked: bool,
}

/// The RL trainer over an autodiff backend `B`.
pub struct RlTrainer<B: LogprobBackend> {
    config: RunConfig,
    model: Option<CausalLm<B>>,
    reference: KlReference<B::InnerBackend>,
    updater: PolicyUpdater<B>,
    tokenizer: Tokenizer,
    task: Task,
    stop_ids: Vec<u32>,
    step: u64,
    /// Restored from a checkpoint: the step-0 evaluation, if any, is in the run's metrics already.
    resumed: bool,
    /// The data-parallel run this trainer is one worker of ([`SingleWorker`] by default).
    collective: Box<dyn Collective<B::InnerBackend>>,
}

/// Loads the policy and tokenizer named by `[model]`: a checkpoint folder or a config to initialise.
///
/// # Errors
/// Missing or malformed files, or no tokenizer.
pub fn load_policy<B: Backend>(
    config: &RunConfig,
    device: &B::Device,
) -> Result<(CausalLm<B>, Tokenizer)> {
    let m = &config.model;
    let (model, folder_tokenizer) = match (&m.path, &m.init_config) {
        (Some(dir), _) => {
            let tokenizer_path = dir.join("tokenizer.json");
            let tok = tokenizer_path
                .is_file()
                .then(|| Tokenizer::from_file(&tokenizer_path))
                .transpose()?;
            (load_model::<B>(dir, device)?, tok)
        }
        (None, Some(path)) => {
            let model_config = laconic_model::DecoderConfig::from_file(path)?;
            // A fresh model is a function of the run's seed. The backend's generator is global, so the
            // seed-then-sample pair is serialised against other threads doing the same.
            static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _guard = INIT
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            B::seed(device, config.train.seed);
            (CausalLm::init(&model_config, device)?, None)
        }
        (None, None) => return Err(Error::NoModel),
    };
    let tokenizer = match (&m.tokenizer, folder_tokenizer) {
        (Some(path), _) => Tokenizer::from_file(path)?,
        (None, Some(tok)) => tok,
        (None, None) => return Err(Error::NoTokenizer),
    };
    Ok((model, tokenizer))
}

impl<B: LogprobBackend> RlTrainer<B> {
    /// A trainer at step 0 for `model`. The initial policy is kept as the KL reference when
    /// `train.track_kl` or `optim.kl_loss_coef > 0`. With `[model.lora]` the model's base is frozen
    /// and fresh adapters attached (unless it has adapters already); the reference is then the base
    /// itself, without its adapters (no extra copy).
    ///
    /// # Errors
    /// An invalid config or task.
    pub fn new(config: RunConfig, model: CausalLm<B>, tokenizer: Tokenizer) -> Result<Self> {
        let mut model = match &config.model.lora {
            Some(lora) if model.lora().is_none() => model.with_lora(lora, config.train.seed)?,
            _ => model,
        };
        model.set_attention_blocks(config.model.attention)?;
        let positions = model.config().max_position_embeddings;
        check_positions(&config, positions)?;
        let task = Task::from_config(&config, &tokenizer, positions)?;
        check_prompt_room(&config, task.longest_prompt(&tokenizer)?, positions)?;
        let mut optim = config.optim_config();
        optim.total_steps = optim.total_steps.or(Some(
            config.train.steps * u64::from(optim.ppo_epochs as u32),
        ));
        let updater = PolicyUpdater::new(optim, &model)?;
        let reference = match (
            config.train.track_kl || config.optim.kl_loss_coef > 0.0,
            model.lora(),
        ) {
            (false, _) => KlReference::Off,
            (true, Some(_)) => KlReference::Base,
            (true, None) => KlReference::Initial(Box::new(model.valid())),
        };
        let mut stop_ids = model.config().eos_token_ids();
        stop_ids.extend(tokenizer.stop_ids());
        stop_ids.sort_unstable();
        stop_ids.dedup();
        Ok(Self {
            config,
            model: Some(model),
            reference,
            updater,
            tokenizer,
            task,
            stop_ids,
            step: 0,
            resumed: false,
            collective: Box::new(SingleWorker),
        })
    }

    /// Resumes the latest checkpoint of `run` that loads: model, optimizer, prompt cursor and step. A
    /// checkpoint that does not load (a truncated file, a state that disagrees with its folder) is
    /// skipped with a warning for the one before it. The KL reference is reloaded from `[model]` (the
    /// initial policy).
    ///
    /// # Errors
    /// No checkpoint, or none that loads (the newest one's error).
    pub fn resume(run: &RunDir, config: RunConfig, device: &B::Device) -> Result<Self> {
        let trainer = Self::load_latest(run, config, device)?;
        run.truncate_metrics_after(trainer.step)?;
        Ok(trainer)
    }

    /// [`RlTrainer::resume`] without touching the run folder: what a data-parallel worker that does
    /// not write it loads.
    ///
    /// # Errors
    /// As [`RlTrainer::resume`].
    pub fn load_latest(run: &RunDir, config: RunConfig, device: &B::Device) -> Result<Self> {
        let checkpoints = run.list_checkpoints();
        if checkpoints.is_empty() {
            return Err(Error::Checkpoint {
                path: run.checkpoints(),
                message: "no checkpoint to resume from".into(),
            });
        }
        let (initial, tokenizer) = load_policy::<B>(&config, device)?;
        let mut trainer = Self::new(config, initial, tokenizer)?;
        let mut newest_error = None;
        for (step, dir) in checkpoints.into_iter().rev() {
            match trainer.restore(&dir, device) {
                Ok(()) => {
                    trainer.step = step;
                    trainer.resumed = true;
                    return Ok(trainer);
                }
                Err(e) => {
                    eprintln!(
                        "warning: checkpoint `{}` does not load ({e}); trying the one before it",
                        dir.display()
                    );
                    newest_error.get_or_insert(e);
                }
            }
        }
        Err(newest_error.expect("at least one checkpoint was tried"))
    }

    /// Loads the policy, optimizer state and prompt cursor of the checkpoint `dir`.
    fn restore(&mut self, dir: &std::path::Path, device: &B::Device) -> Result<()> {
        let state = RunDir::read_state(dir)?;
        let mut model = load_model::<B>(dir, device)?;
        model.set_attention_blocks(self.config.model.attention)?;
        self.updater.load_state(dir.join(OPTIMIZER_STATE), &model)?;
        self.task.restore_sampler(state.sampler)?;
        self.model = Some(model);
        Ok(())
    }

    /// Makes this trainer one worker of a data-parallel run ([`crate::distributed`]): each step it
    /// samples, judges and trains on its share of the prompts, the workers agree on rewards,
    /// advantages and metrics, sum their gradients, and apply the same update. Worker 0 alone
    /// evaluates and writes the run folder. Every worker must be built from the same config and
    /// weights (the same seed, or the same checkpoint).
    pub fn with_collective(mut self, collective: Box<dyn Collective<B::InnerBackend>>) -> Self {
        self.collective = collective;
        self
    }

    /// Replaces the task's judge with `judge` (a custom verifier): the rewards and the periodic
    /// evaluation both grade with it.
    pub fn with_judge(mut self, judge: Box<dyn Judge>) -> Self {
        self.task.judge = judge;
        self
    }

    /// Whether this trainer writes the run folder (worker 0, or a single-worker run).
    pub fn is_writer(&self) -> bool {
        self.collective.rank() == 0
    }

    /// Steps completed.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The current policy.
    pub fn model(&self) -> &CausalLm<B> {
        self.model
            .as_ref()
            .expect("the model is only taken during an update")
    }

    /// The policy that rollouts and evaluations sample from: the current model without autodiff,
    /// LoRA adapters merged into its weights (decoding then runs the plain projections; see
    /// docs/performance.md for merged against unmerged decoding).
    fn sampling_policy(&self) -> CausalLm<B::InnerBackend> {
        self.model().valid().merged()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The run's config.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Runs the loop until `train.steps`, evaluating and checkpointing on schedule and writing metrics
    /// and sampled rollouts into `run`. When a signal asked this process (or, in a data-parallel run,
    /// any worker) to stop ([`crate::stop`]), the loop finishes the step or evaluation it is in, writes
    /// a checkpoint and returns [`Error::Stopped`]; resuming that checkpoint continues as if the run
    /// had not stopped.
    ///
    /// # Errors
    /// Any step failure; a non-finite loss stops the run with the last good checkpoint kept;
    /// [`Error::Stopped`] after a signal.
    pub fn train(&mut self, run: &RunDir, observer: &mut dyn TrainObserver) -> Result<()> {
        self.train_until(run, self.config.train.steps, observer)
    }

    /// Like [`RlTrainer::train`] but stops after step `last` (at most `train.steps`); the schedule of
    /// evaluations and checkpoints is the full run's, so stopping early is like being killed there.
    ///
    /// # Errors
    /// As [`RlTrainer::train`].
    pub fn train_until(
        &mut self,
        run: &RunDir,
        last: u64,
        observer: &mut dyn TrainObserver,
    ) -> Result<()> {
        let t = self.config.train.clone();
        let last = last.min(t.steps);
        self.check_replicas()?;
        if self.step == 0 && !self.resumed {
            if t.val_before_train {
                if let Some(report) = self.evaluate(observer)? {
                    self.record_eval(run, 0, &report, Metrics::new(), observer)?;
                }
            }
            if last > 0 {
                self.stop_if_requested(run, false)?;
            }
        }
        while self.step < last {
            let (metrics, records) = self.step(observer)?;
            let step = self.step;
            let due = |every: u64| step == t.steps || (every > 0 && step.is_multiple_of(every));
            if t.checksum_every > 0 && step.is_multiple_of(t.checksum_every) {
                self.check_replicas()?;
            }
            let report = if due(t.eval_every) {
                self.evaluate(observer)?
            } else {
                None
            };
            let logged = self.first_records(records, t.log_rollouts)?;
            let saved = due(t.save_every);
            if self.is_writer() {
                run.write_rollouts(step, &logged)?;
                match report {
                    Some(report) => {
                        self.record_eval(run, step, &report, metrics.clone(), observer)?
                    }
                    None => run.append_metrics(&metrics)?,
                }
                observer.on_step(step, &metrics);
            }
            if saved {
                self.save(run)?;
            }
            // A run whose last step is done has nothing left to resume: it ends as usual.
            if self.step < last {
                self.stop_if_requested(run, saved)?;
            }
        }
        Ok(())
    }

    /// Ends the run here when a signal asked for it ([`crate::stop`]), on any worker: worker 0
    /// writes this step's checkpoint (unless it is `saved` already), every worker waits until it is
    /// in place, and all return [`Error::Stopped`].
    fn stop_if_requested(&self, run: &RunDir, saved: bool) -> Result<()> {
        let Some(signal) = self.agreed_stop()? else {
            return Ok(());
        };
        if !saved {
            self.save(run)?;
        }
        if self.collective.world_size() > 1 {
            // A barrier: a rank that exits early would end the job (MPI), so none may exit before
            // rank 0's checkpoint is renamed into place.
            let device = head_weight(self.model()).device();
            all_reduce_u64(self.collective.as_ref(), &[0], &device)?;
        }
        Err(Error::Stopped {
            signal,
            step: self.step,
            checkpoint: run.checkpoint(self.step),
        })
    }

    /// Whether a signal asked any worker to stop (all workers agree, so all stop after the same
    /// step), and the name of the signal this worker got.
    fn agreed_stop(&self) -> Result<Option<String>> {
        let local = crate::stop::requested();
        if self.collective.world_size() == 1 {
            return Ok(local.map(str::to_string));
        }
        let device = head_weight(self.model()).device();
        let votes = all_reduce_u64(
            self.collective.as_ref(),
            &[u64::from(local.is_some())],
            &device,
        )?;
        Ok((votes[0] > 0).then(|| local.unwrap_or("a signal to another worker").to_string()))
    }

    /// The step's first `keep` rollout records of the whole batch, on the writing worker: in a
    /// data-parallel run each worker holds those of its contiguous share of the prompts, so worker
    /// 0 joins the workers' records in rank order (what one process logs).
    fn first_records(
        &self,
        mut records: Vec<RolloutRecord>,
        keep: usize,
    ) -> Result<Vec<RolloutRecord>> {
        records.truncate(keep);
        if keep == 0 || self.collective.world_size() == 1 {
            return Ok(records);
        }
        let mut all: Vec<RolloutRecord> = self
            .gather_json(&records, "rollout records")?
            .into_iter()
            .flatten()
            .collect();
        all.truncate(keep);
        Ok(all)
    }

    /// Every worker's `value`, in rank order (JSON through the collective); `what` names it in
    /// errors.
    fn gather_json<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        value: &T,
        what: &str,
    ) -> Result<Vec<T>> {
        let bytes = serde_json::to_vec(value).map_err(|source| Error::Encode {
            what: what.to_string(),
            source,
        })?;
        let device = head_weight(self.model()).device();
        all_gather_bytes(self.collective.as_ref(), &bytes, &device)?
            .iter()
            .enumerate()
            .map(|(rank, part)| {
                serde_json::from_slice(part)
                    .map_err(|e| Error::Distributed(format!("worker {rank}'s {what}: {e}")))
            })
            .collect()
    }

    /// In a data-parallel run, that every worker holds the same parameters (a hash of their bits):
    /// an error naming the workers that differ otherwise.
    fn check_replicas(&self) -> Result<()> {
        if self.collective.world_size() == 1 {
            return Ok(());
        }
        let hash = parameter_hash(&self.model().valid());
        let device = head_weight(self.model()).device();
        let hashes = all_gather_u64(self.collective.as_ref(), &[hash], &device)?;
        match hashes.iter().position(|h| h[0] != hashes[0][0]) {
            None => Ok(()),
            Some(rank) => Err(Error::Distributed(format!(
                "after step {} the parameters of worker {rank} differ from worker 0's \
                 (hash {:012x} vs {:012x}): the replicas drifted apart",
                self.step, hashes[rank][0], hashes[0][0]
            ))),
        }
    }

    fn record_eval(
        &self,
        run: &RunDir,
        step: u64,
        report: &EvalReport,
        mut metrics: Metrics,
        observer: &mut dyn TrainObserver,
    ) -> Result<()> {
        report.write(run.path.join("eval").join(format!("step_{step}")))?;
        metrics.insert("step".into(), step as f64);
        metrics.extend(report.scalars());
        run.append_metrics(&metrics)?;
        observer.on_eval(step, report);
        Ok(())
    }

    /// One RL step; returns its metrics and the records of the rollouts trained on.
    ///
    /// # Errors
    /// Rollout, judging or update failures; a non-finite loss or gradient ([`Error::NonFinite`]).
    pub fn step(
        &mut self,
        observer: &mut dyn TrainObserver,
    ) -> Result<(Metrics, Vec<RolloutRecord>)> {
        let start = Instant::now();
        let want = self.config.rollout.prompts_per_step;

        // 1. Rollouts from the current policy (no autodiff graph), judged: one batch, or under
        //    dynamic sampling as many as it takes to collect `want` informative groups.
        let policy = self.sampling_policy();
        let (drawn, engine) = self.draw(&policy, observer)?;
        let rollout_s = start.elapsed().as_secs_f64();

        // 2. The rollouts' metrics, then the groups trained on and their advantages.
        let rollout_metrics = drawn.metrics(want)?;
        let tokens: usize = drawn.local_rollouts().map(Rollout::len).sum();
        let scored = drawn.assemble(want, &self.config.optim)?;

        // 3. KL reference log-probs, then the update.
        let update_start = Instant::now();
        let ref_logprobs = self.reference_logprobs(&scored.batch)?;
        let model = self
            .model
            .take()
            .expect("the model is present between steps");
        let (model, update) = match self.updater.step_with(
            model,
            &scored.batch,
            ref_logprobs.as_deref(),
            self.collective.as_ref(),
        ) {
            Ok(out) => out,
            Err(laconic_optim::Error::NonFinite { what, value, .. }) => {
                return Err(Error::NonFinite {
                    step: self.step + 1,
                    message: format!("{what} is {value}"),
                })
            }
            Err(e) => return Err(e.into()),
        };
        self.model = Some(model);
        let update_s = update_start.elapsed().as_secs_f64();
        self.step += 1;

        // 4. Metrics (sums and maxima over the workers).
        let device = head_weight(self.model()).device();
        let collective = self.collective.as_ref();
        let totals = all_reduce_u64(
            collective,
            &[tokens as u64, engine.preemptions as u64],
            &device,
        )?;
        // Per-worker peaks: the largest worker's (what one machine must hold).
        let peaks = all_gather_u64(
            collective,
            &[
                engine.kv_cache_peak as u64,
                self.updater.optimizer_state_bytes() as u64,
            ],
            &device,
        )?;
        let largest = |k: usize| peaks.iter().map(|p| p[k]).max().unwrap_or(0);
        let (kv_cache_peak, optimizer_state_bytes) = (largest(0), largest(1));
        let (tokens, preemptions) = (totals[0], totals[1]);
        let mut metrics = Metrics::new();
        metrics.insert("step".into(), self.step as f64);
        metrics.extend(rollout_metrics);
        metrics.extend(update.to_map());
        metrics.insert("timing/rollout_s".into(), rollout_s);
        metrics.insert("timing/update_s".into(), update_s);
        metrics.insert("timing/step_s".into(), start.elapsed().as_secs_f64());
        metrics.insert(
            "perf/rollout_tokens_per_s".into(),
            tokens as f64 / rollout_s.max(1e-9),
        );
        metrics.insert("perf/tokens".into(), tokens as f64);
        metrics.insert("rollout/preemptions".into(), preemptions as f64);
        metrics.insert("rollout/kv_cache_peak_tokens".into(), kv_cache_peak as f64);
        metrics.insert(
            "memory/optimizer_state_bytes".into(),
            optimizer_state_bytes as f64,
        );
        Ok((metrics, scored.records))
    }

    /// Draws the step's rollout batches: every worker draws each batch's prompts and samples, judges
    /// its share; the workers exchange the outcomes, so all agree on the informative groups and stop
    /// drawing together. Returns the draws and the engines' preemptions (summed) and KV-cache peak.
    fn draw(
        &mut self,
        policy: &CausalLm<B::InnerBackend>,
        observer: &mut dyn TrainObserver,
    ) -> Result<(Drawn, Progress)> {
        let r = self.config.rollout.clone();
        let filter = self.config.algorithm.filter_groups.clone();
        let limit = filter.batch_limit() as u64;
        let mut drawn = Drawn::new(r.n, filter);
        let mut engine = Progress::default();
        for draw in 0..limit {
            let items =
                self.task
                    .next_batch(self.step, draw, r.prompts_per_step, &self.tokenizer)?;
            let shard = shard_range(
                items.len(),
                self.collective.world_size(),
                self.collective.rank(),
            );
            let seed = draw_seed(self.config.train.seed, self.step, draw);
            let (rollouts, progress) =
                self.sample(policy, &items[shard.clone()], shard.start, seed, observer)?;
            engine.preemptions += progress.preemptions;
            engine.kv_cache_peak = engine.kv_cache_peak.max(progress.kv_cache_peak);
            let judged = self.judge(&items, shard.start, &rollouts)?;
            let local: Vec<Outcome> = rollouts
                .iter()
                .zip(&judged)
                .map(|(r, j)| (j.correct, r.len(), reward_finish(r.finish)))
                .collect();
            let outcomes = self.all_outcomes(items.len() * r.n, shard.start * r.n, &local)?;
            drawn.push(
                items,
                shard.start,
                rollouts,
                judged,
                &outcomes,
                &self.config.reward.shaper,
            );
            if drawn.informative() >= r.prompts_per_step {
                break;
            }
        }
        Ok((drawn, engine))
    }

    /// Samples `n` rollouts of each of `items` (the prompts from `first_prompt` of a batch) with the
    /// batch's random streams from `seed`.
    fn sample(
        &self,
        policy: &CausalLm<B::InnerBackend>,
        items: &[PromptItem],
        first_prompt: usize,
        seed: u64,
        observer: &mut dyn TrainObserver,
    ) -> Result<(Vec<Rollout>, Progress)> {
        if items.is_empty() {
            return Ok((Vec::new(), Progress::default()));
        }
        let r = &self.config.rollout;
        let engine = Engine::new(policy, self.config.rollout.engine.clone())?;
        let mut params = self
            .config
            .rollout
            .sampling_params(self.stop_ids.clone(), seed);
        // A worker's share samples the streams the whole batch would give these prompts.
        params.first_prompt = first_prompt;
        let prompts: Vec<Vec<u32>> = items.iter().map(|i| i.prompt_ids.clone()).collect();
        let mut forward = PhaseObserver {
            inner: observer,
            phase: Phase::Rollout,
            last: Progress::default(),
        };
        match engine.generate(&prompts, r.n, &params, &mut forward) {
            Ok(rollouts) => Ok((rollouts, forward.last)),
            Err(e @ laconic_rollout::Error::NonFiniteLogits { .. }) => Err(Error::NonFinite {
                step: self.step + 1,
                message: e.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Judges this worker's `rollouts` of the prompts from `items[first..]`. A rollout cut at `L_R`
    /// has no answer: incorrect whatever its text.
    fn judge(
        &self,
        items: &[PromptItem],
        first: usize,
        rollouts: &[Rollout],
    ) -> Result<Vec<Judged>> {
        rollouts
            .iter()
            .map(|r| {
                let item = &items[first + r.prompt_idx];
                let text = self.tokenizer.decode(&r.response_ids)?;
                let judgement = self.task.judge.judge(&text, &item.gold);
                Ok(Judged {
                    correct: judgement.is_correct() && r.finish == Finish::Stop,
                    extracted: judgement.extracted,
                    text,
                })
            })
            .collect()
    }

    /// Every rollout's outcome in the whole batch (`total` rollouts), this worker's `local` ones
    /// placed from index `offset`: one exact all-reduce, each worker filling its own slots.
    fn all_outcomes(&self, total: usize, offset: usize, local: &[Outcome]) -> Result<Vec<Outcome>> {
        let mut slots = vec![0u64; 3 * total];
        for (k, &(correct, len, finish)) in local.iter().enumerate() {
            let at = 3 * (offset + k);
            slots[at] = u64::from(correct);
            slots[at + 1] = len as u64;
            slots[at + 2] = u64::from(finish == laconic_reward::Finish::Length);
        }
        let device = head_weight(self.model()).device();
        let slots = all_reduce_u64(self.collective.as_ref(), &slots, &device)?;
        Ok(slots
            .chunks(3)
            .map(|o| {
                let finish = if o[2] == 1 {
                    laconic_reward::Finish::Length
                } else {
                    laconic_reward::Finish::Stop
                };
                (o[0] == 1, o[1] as usize, finish)
            })
            .collect())
    }

    /// The KL reference's log-probs of this worker's sequences (`None` without a reference).
    fn reference_logprobs(&self, batch: &UpdateBatch) -> Result<Option<Vec<Vec<f32>>>> {
        let base;
        let reference = match &self.reference {
            KlReference::Off => return Ok(None),
            KlReference::Initial(initial) => initial,
            KlReference::Base => {
                base = self.model().valid().without_lora();
                &base
            }
        };
        let pairs: Vec<(&[u32], &[u32])> = batch
            .sequences
            .iter()
            .map(|s| (s.prompt_ids.as_slice(), s.response_ids.as_slice()))
            .collect();
        let options = self.updater.config().logprob_options();
        let out = compute_logprobs(reference, &pairs, &options)?;
        Ok(Some(out.into_iter().map(|s| s.logprobs).collect()))
    }

    /// Evaluates the current policy on the task's benchmarks: the report on the writing worker,
    /// `None` on the others and when there are no benchmarks. In a data-parallel run every worker
    /// evaluates its share of the questions, sampled as one process would, and the writer joins
    /// the scored samples.
    ///
    /// # Errors
    /// Generation or scoring failures; the collective's.
    pub fn evaluate(&self, observer: &mut dyn TrainObserver) -> Result<Option<EvalReport>> {
        let benchmarks = &self.task.benchmarks;
        if benchmarks.is_empty() {
            return Ok(None);
        }
        let policy = self.sampling_policy();
        let mut forward = PhaseObserver {
            inner: observer,
            phase: Phase::Eval,
            last: Progress::default(),
        };
        let collective = self.collective.as_ref();
        let shard = QuestionShard {
            rank: collective.rank(),
            world: collective.world_size(),
        };
        let mine = match evaluate_shard(
            &policy,
            &self.tokenizer,
            benchmarks,
            &self.config.eval,
            self.task.judge.as_ref(),
            &mut forward,
            shard,
        ) {
            Ok(mine) => mine,
            Err(laconic_eval::Error::Rollout(
                e @ laconic_rollout::Error::NonFiniteLogits { .. },
            )) => {
                return Err(Error::NonFinite {
                    step: self.step,
                    message: format!("evaluation: {e}"),
                })
            }
            Err(e) => return Err(Error::Eval(e)),
        };
        let shards = if shard.world == 1 {
            vec![mine]
        } else {
            let shards: Vec<EvalShard> = self.gather_json(&mine, "evaluation share")?;
            if !self.is_writer() {
                return Ok(None);
            }
            shards
        };
        Ok(Some(EvalReport::from_shards(
            benchmarks,
            &self.config.eval,
            shards,
        )))
    }

    /// Writes a checkpoint of the current state into `run`. Every worker of a data-parallel run
    /// calls this (a ZeRO run gathers the optimizer state from all of them); the writing worker
    /// alone writes, and returns the checkpoint's folder.
    ///
    /// # Errors
    /// When a file cannot be written; the collective's.
    pub fn save(&self, run: &RunDir) -> Result<Option<std::path::PathBuf>> {
        let policy = self.model();
        let gathered = self
            .updater
            .gather_state(policy, self.collective.as_ref())?;
        let Some(optimizer) = gathered.filter(|_| self.is_writer()) else {
            return Ok(None);
        };
        let state = TrainerState {
            step: self.step,
            sampler: self.task.sampler().cloned(),
        };
        let dir = run.save_checkpoint(&state, self.config.train.keep_checkpoints, |dir| {
            let policy = policy.valid();
            match policy.lora() {
                Some(_) => policy.save_adapter(dir, &self.adapter_base(run)?)?,
                None => save_pretrained(&policy, dir)?,
            }
            self.write_tokenizer(dir)?;
            self.updater
                .write_state(optimizer, dir.join(OPTIMIZER_STATE))?;
            Ok(())
        })?;
        Ok(Some(dir))
    }

    /// `tokenizer.json` and the chat template (`tokenizer_config.json`), so that `eval`, `generate`
    /// and `--merge` render a checkpoint's prompts as the run did.
    fn write_tokenizer(&self, dir: &std::path::Path) -> Result<()> {
        Ok(self.tokenizer.save(dir)?)
    }

    /// The base model an adapter checkpoint of `run` names: the `[model] path` folder, or for a
    /// randomly initialised base the run's `base_model/` folder, written on first use (relative to
    /// a checkpoint folder, so the run folder can move).
    fn adapter_base(&self, run: &RunDir) -> Result<String> {
        if let Some(path) = &self.config.model.path {
            let path = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
            return Ok(path.display().to_string());
        }
        let dir = run.path.join(BASE_MODEL);
        let saved = [SINGLE_FILE, INDEX_FILE]
            .iter()
            .any(|f| dir.join(f).is_file());
        if !saved {
            self.save_base(&dir)?;
        }
        Ok(format!("../../{BASE_MODEL}"))
    }

    fn save_base(&self, dir: &std::path::Path) -> Result<()> {
        save_pretrained(&self.model().valid().without_lora(), dir)?;
        self.write_tokenizer(dir)
    }
}

/// The lengths a run asks of the model fit its `positions` (`max_position_embeddings`): a rollout
/// of `rollout.max_tokens` leaves room for a prompt, and, when the run evaluates (the synthetic
/// task, or `train.eval_benchmarks`), no budget of `eval.budgets` exceeds them. Checked when the
/// trainer is built, before a run folder is made or a step evaluated.
///
/// # Errors
/// [`Error::ExceedsPositions`] naming the key.
fn check_positions(config: &RunConfig, positions: usize) -> Result<()> {
    let max_tokens = config.rollout.sampling.max_tokens;
    if max_tokens >= positions {
        return Err(Error::ExceedsPositions {
            key: "rollout.max_tokens",
            value: max_tokens,
            positions,
            detail: "leaves no room for a prompt".into(),
        });
    }
    let evaluates = matches!(config.data, crate::config::DataConfig::DigitSum(_))
        || !config.train.eval_benchmarks.is_empty();
    let budget = config.eval.max_budget();
    if evaluates && budget > positions {
        return Err(Error::ExceedsPositions {
            key: "eval.budgets",
            value: budget,
            positions,
            detail: "a budget counts the prompt and the response".into(),
        });
    }
    Ok(())
}

/// The longest training prompt (`longest` tokens) and `rollout.max_tokens` fit `positions`.
///
/// # Errors
/// [`Error::ExceedsPositions`] naming `rollout.max_tokens`.
fn check_prompt_room(config: &RunConfig, longest: usize, positions: usize) -> Result<()> {
    let max_tokens = config.rollout.sampling.max_tokens;
    if longest + max_tokens > positions {
        return Err(Error::ExceedsPositions {
            key: "rollout.max_tokens",
            value: max_tokens,
            positions,
            detail: format!("with the longest training prompt of {longest} tokens"),
        });
    }
    Ok(())
}

/// What the KL to the reference is measured against.
enum KlReference<B: Backend> {
    /// Neither `train.track_kl` nor a KL loss: no reference pass.
    Off,
    /// The initial policy, kept when every weight trains.
    Initial(Box<CausalLm<B>>),
    /// The policy's frozen base without its LoRA adapters: the same tensors, no copy.
    Base,
}

/// The folder of a run that holds the frozen base of a LoRA run started from a random init.
pub const BASE_MODEL: &str = "base_model";

/// A hash of every parameter's bits (48 bits: it crosses the collective exactly).
fn parameter_hash<B: Backend>(model: &CausalLm<B>) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for (name, _, values) in laconic_model::named_tensors(model) {
        for byte in name.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        for v in values {
            hash = (hash ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash & laconic_optim::collective::MAX_EXACT
}

/// Forwards engine progress to a [`TrainObserver`] with the phase attached, keeping the latest.
struct PhaseObserver<'a> {
    inner: &'a mut dyn TrainObserver,
    phase: Phase,
    last: Progress,
}

impl Observer for PhaseObserver<'_> {
    fn on_progress(&mut self, progress: &Progress) {
        self.last = *progress;
        self.inner.on_progress(self.phase, progress);
    }
}
