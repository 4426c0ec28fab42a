//! Training-health warnings: divergence and mode collapse, from the signals a run logs.
//!
//! [`HealthMonitor`] is fed every step's metrics (or the logged lines of `metrics.jsonl`, which
//! the report replays) and every evaluation, and returns a [`Warning`] when:
//!
//! - **non-finite**: a loss or discriminator output is NaN or infinite (divergence);
//! - **discriminator wins** (cross-entropy GANs): D(x) ≥ 0.95 while D(G(z)) ≤ 0.05 for at least
//!   [`HealthConfig::saturation_steps`] steps in a row: D separates perfectly, the generator's
//!   gradient vanishes and training has usually stopped making progress;
//! - **critic fails** (WGAN, WGAN-GP): the Wasserstein estimate mean f(x) − mean f(G(z)), which
//!   the critic maximises, stays negative for as many steps: the critic ranks fakes above reals;
//! - **coverage drop**: the evaluator's class coverage falls at least two classes below the best
//!   seen so far in the run (the generator dropped modes it had);
//! - **class imbalance**: the KL divergence of the class histogram against uniform rises above
//!   [`HealthConfig::kl_limit`] and at least that much above its best value in the run (the
//!   samples concentrate on fewer classes: partial mode collapse).
//!
//! Each condition warns once when it starts and again only after it has cleared.
//!
//! ```
//! use gan_models::health::{HealthMonitor, WarningKind};
//! use gan_models::train::StepMetrics;
//! let mut h = HealthMonitor::default();
//! let m = StepMetrics { step: 7, loss_d: f32::NAN, ..Default::default() };
//! assert_eq!(h.observe_step(&m).unwrap().kind, WarningKind::NonFinite);
//! ```

use serde::{Deserialize, Serialize};

use crate::engine::{Signals, StepRecord};
use crate::evaluator::EvalReport;
use crate::train::StepMetrics;

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// A loss or D output is NaN or infinite.
    NonFinite,
    /// D(x) → 1 and D(G(z)) → 0 for many steps.
    DiscriminatorWins,
    /// A Wasserstein critic's estimate stays negative for many steps.
    CriticFails,
    /// Class coverage fell below its best.
    CoverageDrop,
    /// The class histogram moved away from uniform.
    ClassImbalance,
}

/// A warning about the run's health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// The step it was raised at.
    pub step: u64,
    /// What kind.
    pub kind: WarningKind,
    /// A sentence for the log and the report.
    pub message: String,
}

/// Thresholds of the [`HealthMonitor`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// D(x) at least this ...
    pub d_real_high: f32,
    /// ... and D(G(z)) at most this ...
    pub d_fake_low: f32,
    /// ... for this many steps in a row raise "discriminator wins".
    pub saturation_steps: u64,
    /// Coverage this many classes below the best raises "coverage drop".
    pub coverage_drop: usize,
    /// KL against uniform above this (and this much above the best) raises "class imbalance".
    pub kl_limit: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            d_real_high: 0.95,
            d_fake_low: 0.05,
            saturation_steps: 200,
            coverage_drop: 2,
            kl_limit: 0.3,
        }
    }
}

/// Watches a run's metrics and raises [`Warning`]s; see the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct HealthMonitor {
    cfg: HealthConfig,
    non_finite: bool,
    saturated_since: Option<u64>,
    saturation_warned: bool,
    best_coverage: Option<(usize, u64)>,
    coverage_warned: bool,
    best_kl: Option<(f64, u64)>,
    kl_warned: bool,
}

impl HealthMonitor {
    /// A monitor with the given thresholds.
    pub fn new(cfg: HealthConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// Feeds one cross-entropy GAN step's metrics (every step, or every logged one).
    pub fn observe_step(&mut self, m: &StepMetrics) -> Option<Warning> {
        self.observe(m.step, &m.values(), m.signals())
    }

    /// Feeds the values of a step as [`StepRecord::values`] names them and what the step's
    /// objective lets us watch: the discriminator's probabilities (the "discriminator wins"
    /// check), a critic's Wasserstein estimate (the "critic fails" check), or losses only.
    pub fn observe(
        &mut self,
        step: u64,
        values: &[(&str, f32)],
        signals: Signals,
    ) -> Option<Warning> {
        if values.iter().any(|(_, v)| !v.is_finite()) {
            if self.non_finite {
                return None;
            }
            self.non_finite = true;
            let shown = values
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Some(Warning {
                step,
                kind: WarningKind::NonFinite,
                message: format!(
                    "divergence: non-finite numbers at step {step} ({shown}); lower the learning \
                     rate or resume from an earlier checkpoint"
                ),
            });
        }
        self.non_finite = false;
        let (bad, message) = match signals {
            Signals::Probabilities { d_x, d_g_z } => (
                d_x >= self.cfg.d_real_high && d_g_z <= self.cfg.d_fake_low,
                WarningKind::DiscriminatorWins,
            ),
            Signals::Critic { wasserstein, .. } => (wasserstein < 0.0, WarningKind::CriticFails),
            Signals::Losses => (false, WarningKind::DiscriminatorWins),
        };
        if bad {
            let since = *self.saturated_since.get_or_insert(step);
            if !self.saturation_warned && step - since >= self.cfg.saturation_steps {
                self.saturation_warned = true;
                let n = step - since;
                let text = match message {
                    WarningKind::CriticFails => format!(
                        "the critic fails: its Wasserstein estimate mean f(x) − mean f(G(z)) has \
                         been negative since step {since} ({n} steps), so it scores fakes above \
                         reals and the generator's gradient points nowhere useful (too few critic \
                         steps, or a critic learning rate too low or too high)"
                    ),
                    _ => format!(
                        "the discriminator wins: D(x) ≥ {} and D(G(z)) ≤ {} since step {since} \
                         ({n} steps); the generator gets almost no gradient (likely collapse or \
                         divergence)",
                        self.cfg.d_real_high, self.cfg.d_fake_low,
                    ),
                };
                return Some(Warning {
                    step,
                    kind: message,
                    message: text,
                });
            }
        } else {
            self.saturated_since = None;
            self.saturation_warned = false;
        }
        None
    }

    /// Feeds an evaluation made at `step`; may raise several warnings.
    pub fn observe_eval(&mut self, step: u64, r: &EvalReport) -> Vec<Warning> {
        let mut out = Vec::new();
        let Some(c) = &r.coverage else {
            return out;
        };
        match self.best_coverage {
            Some((best, at)) if c.covered + self.cfg.coverage_drop <= best => {
                let message = || {
                    format!(
                        "mode collapse: class coverage fell from {best}/{} (step {at}) to {}/{} at \
                         step {step}; histogram {:?}",
                        c.classes, c.covered, c.classes, c.histogram
                    )
                };
                warn_once(
                    &mut self.coverage_warned,
                    &mut out,
                    step,
                    WarningKind::CoverageDrop,
                    message,
                );
            }
            Some((best, _)) if c.covered <= best => {
                if c.covered + 1 >= best {
                    self.coverage_warned = false;
                }
            }
            _ => {
                self.best_coverage = Some((c.covered, step));
                self.coverage_warned = false;
            }
        }
        let kl = c.kl_uniform;
        match self.best_kl {
            Some((best, at)) if kl > self.cfg.kl_limit && kl - best >= self.cfg.kl_limit => {
                let message = || {
                    format!(
                        "partial mode collapse: the class histogram's KL against uniform rose from \
                         {best:.3} (step {at}) to {kl:.3} nats at step {step}; histogram {:?}",
                        c.histogram
                    )
                };
                warn_once(
                    &mut self.kl_warned,
                    &mut out,
                    step,
                    WarningKind::ClassImbalance,
                    message,
                );
            }
            Some((best, _)) if kl >= best => {
                if kl <= self.cfg.kl_limit {
                    self.kl_warned = false;
                }
            }
            _ => {
                self.best_kl = Some((kl, step));
                self.kl_warned = false;
            }
        }
        out
    }
}

/// Pushes a warning of `kind` at `step` onto `out` unless `warned` says this condition was
/// already reported; then sets `warned`, so that a condition that lasts warns once.
fn warn_once(
    warned: &mut bool,
    out: &mut Vec<Warning>,
    step: u64,
    kind: WarningKind,
    message: impl FnOnce() -> String,
) {
    if !*warned {
        *warned = true;
        out.push(Warning {
            step,
            kind,
            message: message(),
        });
    }
}
