//! The training progress bar: losses, D(x), D(G(z)) and images per second.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gan_models::train::{Observer, StepMetrics};
use indicatif::{ProgressBar, ProgressStyle};

pub struct TrainProgress {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    /// When stderr is not a terminal the bar is hidden: log a line every this many steps.
    plain_every: Option<u64>,
}

impl TrainProgress {
    pub fn new(total_steps: u64, stop: Arc<AtomicBool>) -> Self {
        let bar = ProgressBar::new(total_steps);
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
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for TrainProgress {
    fn on_step(&mut self, m: &StepMetrics, items_per_sec: f64) {
        self.bar.set_position(m.step);
        self.bar.set_message(format!(
            "Loss_D {:.3} Loss_G {:.3} D(x) {:.3} D(G(z)) {:.3}/{:.3} {:.0} img/s",
            m.loss_d, m.loss_g, m.d_x, m.d_g_z1, m.d_g_z2, items_per_sec
        ));
        if self.plain_every.is_some_and(|n| m.step % n == 0) {
            tracing::info!(
                "step {}/{}: Loss_D {:.3} Loss_G {:.3} D(x) {:.3} D(G(z)) {:.3}/{:.3} {:.0} img/s",
                m.step,
                self.bar.length().unwrap_or(0),
                m.loss_d,
                m.loss_g,
                m.d_x,
                m.d_g_z1,
                m.d_g_z2,
                items_per_sec
            );
        }
        if !m.is_finite() {
            self.bar
                .suspend(|| tracing::warn!("step {}: non-finite numbers {m:?}", m.step));
        }
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
