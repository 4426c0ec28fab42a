//! The one training progress bar: the model's own step numbers ([`StepRecord::summary`]) and
//! items per second.

use std::io::IsTerminal;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gan_models::engine::StepRecord;
use gan_models::train::Observer;
use indicatif::{ProgressBar, ProgressStyle};

pub struct TrainProgress<M> {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    /// When stderr is not a terminal the bar is hidden: log a line every this many steps.
    plain_every: Option<u64>,
    /// What a step trains on (`img`, `pts`), for the throughput.
    unit: &'static str,
    _metrics: PhantomData<fn(&M)>,
}

impl<M> TrainProgress<M> {
    /// A bar over steps `start..total_steps` (`start` > 0 when resuming: the time left is then
    /// estimated from the steps trained since, not from the jump to `start`).
    pub fn new(start: u64, total_steps: u64, unit: &'static str, stop: Arc<AtomicBool>) -> Self {
        let bar = ProgressBar::new(total_steps);
        bar.set_position(start);
        bar.reset_eta();
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .expect("valid template"),
        );
        let plain_every = (!std::io::stderr().is_terminal()).then_some((total_steps / 20).max(1));
        Self {
            bar,
            stop,
            plain_every,
            unit,
            _metrics: PhantomData,
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl<M: StepRecord> Observer<M> for TrainProgress<M> {
    fn on_step(&mut self, m: &M, items_per_sec: f64) {
        let step = m.step();
        self.bar.set_position(step);
        let line = format!("{} {items_per_sec:.0} {}/s", m.summary(), self.unit);
        if self.plain_every.is_some_and(|n| step % n == 0) {
            tracing::info!("step {step}/{}: {line}", self.bar.length().unwrap_or(0),);
        }
        self.bar.set_message(line);
    }

    fn on_event(&mut self, msg: &str) {
        self.bar.suspend(|| tracing::info!("{msg}"));
    }

    fn should_stop(&self) -> bool {
        let stop = self.stop.load(Ordering::SeqCst);
        if stop {
            self.bar
                .suspend(|| tracing::info!("Ctrl-C: writing a checkpoint and stopping"));
        }
        stop
    }
}

/// The progress of a command's long phases (sampling, embedding, translating, scoring): a bar
/// per phase on a terminal (a spinner when the count is unknown), one line per phase on stderr
/// otherwise, and each phase's duration.
pub struct PhaseProgress {
    bar: ProgressBar,
    plain: bool,
    current: Option<(String, std::time::Instant)>,
    /// The phases ended so far: (name, seconds).
    pub phases: Vec<(String, f64)>,
}

impl PhaseProgress {
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Self {
            bar,
            plain: !std::io::stderr().is_terminal(),
            current: None,
            phases: Vec::new(),
        }
    }

    fn end_phase(&mut self) {
        if let Some((name, start)) = self.current.take() {
            self.phases.push((name, start.elapsed().as_secs_f64()));
        }
    }

    /// Ends the current phase and clears the bar; returns every phase's duration.
    pub fn finish(&mut self) -> Vec<(String, f64)> {
        self.end_phase();
        self.bar.finish_and_clear();
        self.phases.clone()
    }
}

impl gan_models::evaluator::Progress for PhaseProgress {
    fn start(&mut self, phase: &str, total: usize) {
        self.end_phase();
        self.current = Some((phase.to_string(), std::time::Instant::now()));
        let template = if total == 0 {
            "{spinner} {msg} [{elapsed_precise}]"
        } else {
            "{bar:30} {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]"
        };
        self.bar
            .set_style(ProgressStyle::with_template(template).expect("valid template"));
        self.bar.reset();
        self.bar.set_length(total as u64);
        self.bar.set_message(phase.to_string());
        if self.plain {
            eprintln!("{phase}");
        }
    }

    fn advance(&mut self, items: usize) {
        self.bar.inc(items as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resumed run's bar starts at the resume step, so the estimate of the time left counts
    /// only the steps trained since (it once took the jump from 0 to the resume step as speed).
    #[test]
    fn a_resumed_bar_starts_at_the_resume_step() {
        let stop = Arc::new(AtomicBool::new(false));
        let p = TrainProgress::<()>::new(700, 1400, "img", stop);
        assert_eq!(p.bar.position(), 700);
        assert_eq!(p.bar.length(), Some(1400));
    }
}
