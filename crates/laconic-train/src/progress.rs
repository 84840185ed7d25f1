//! Progress bars for the loop: one bar over steps, one over the rollouts of the current phase.
//! Hidden when stderr is not a terminal or when quiet.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use laconic_eval::EvalReport;
use laconic_rollout::Progress;

use crate::rl::{Phase, TrainObserver};
use crate::run::Metrics;

/// A [`TrainObserver`] drawing indicatif bars and printing one line per step.
pub struct ProgressBars {
    steps: ProgressBar,
    phase: ProgressBar,
    print_steps: bool,
}

impl ProgressBars {
    /// Bars for a run of `total` steps starting after `done`; `quiet` hides them and the step lines.
    pub fn new(total: u64, done: u64, quiet: bool) -> Self {
        let multi = MultiProgress::new();
        if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let steps = multi.add(ProgressBar::new(total).with_position(done));
        steps.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {pos}/{len} steps {elapsed_precise} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        steps.set_prefix("train");
        let phase = multi.add(ProgressBar::new(0));
        phase.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} rollouts {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Self {
            steps,
            phase,
            print_steps: !quiet,
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        self.phase.finish_and_clear();
        self.steps.finish_and_clear();
    }
}

impl TrainObserver for ProgressBars {
    fn on_progress(&mut self, phase: Phase, progress: &Progress) {
        self.phase.set_prefix(match phase {
            Phase::Rollout => "rollout",
            Phase::Eval => "eval",
        });
        self.phase.set_length(progress.total as u64);
        self.phase.set_position(progress.finished as u64);
        let preempted = match progress.preemptions {
            0 => String::new(),
            n => format!(", {n} preempted"),
        };
        self.phase.set_message(format!(
            "{} tokens, {} live{preempted}",
            progress.tokens, progress.live
        ));
    }

    fn on_step(&mut self, step: u64, metrics: &Metrics) {
        self.steps.set_position(step);
        let get = |k: &str| metrics.get(k).copied().unwrap_or(f64::NAN);
        let line = format!(
            "step {step:>4}  reward {:.3}  acc {:.3}  length {:.1}  entropy {:.3}  {:.1}s",
            get("reward/mean"),
            get("acc/mean"),
            get("response_length/mean"),
            get("actor/entropy"),
            get("timing/step_s"),
        );
        self.steps.set_message(format!(
            "reward {:.3} length {:.1}",
            get("reward/mean"),
            get("response_length/mean")
        ));
        if self.print_steps {
            self.steps.println(line);
        }
    }

    fn on_eval(&mut self, step: u64, report: &EvalReport) {
        if !self.print_steps {
            return;
        }
        for bench in &report.benchmarks {
            let accs: Vec<String> = bench
                .budgets
                .iter()
                .map(|m| format!("{}:{:.2}", m.budget, m.mean_at_k))
                .collect();
            let length = bench.budgets.last().map_or(f64::NAN, |m| m.mean_length);
            self.steps.println(format!(
                "eval {step:>4}  {}  length {length:.1}  accuracy {}",
                bench.name,
                accs.join(" ")
            ));
        }
    }
}
