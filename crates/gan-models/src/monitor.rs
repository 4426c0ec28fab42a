//! Watching a run while it trains: evaluation every N steps into `metrics.jsonl`, health
//! warnings in the log and `metrics.jsonl`, and `report.html` rewritten as training goes.
//!
//! [`RunMonitor`] wraps the caller's [`Observer`] (a progress bar, say) and forwards everything
//! to it. Lines it appends to `metrics.jsonl`:
//!
//! ```text
//! {"step":100,"eval":{"evaluator":"mnist","samples":2000,"fid":...,"coverage":{...},...}}
//! {"step":340,"warning":{"step":340,"kind":"discriminator-wins","message":"..."}}
//! {"step":100,"translation_eval":{"a2b":{"evaluator":"mnist",...},"b2a":{...}}}
//! ```
//!
//! Every evaluation samples the same noise (drawn from a fixed seed), so the scores of
//! different steps compare the generator, not the noise. A translation model (CycleGAN,
//! [`Observer::on_translator`]) is evaluated on the same test images every time instead
//! ([`RunMonitor::with_translation`]): G(testA) against the real testB and F(testB) against the
//! real testA, one `translation_eval` line per evaluation.

use candle_core::{Device, Tensor};
use gan_core::rng::SeededRng;
use serde::Serialize;

use crate::class_eval::{score_classes, ClassReport};
use crate::cyclegan_run::{TranslationReferences, TranslationScores};
use crate::engine::{log_warning, StepRecord};
use crate::error::Result;
use crate::evaluator::{evaluate, fmt_fixed, EvalReport, EvalSetup, FeatureNet};
use crate::health::HealthMonitor;
use crate::run::RunDir;
use crate::train::{GeneratorNet, Observer, Translator};

pub use crate::engine::WarningLine;

/// The seed of the evaluation noise.
pub const EVAL_NOISE_SEED: u64 = 0x5eed_e7a1;

/// When and how much to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Evaluate every this many steps (0: never) and at the last step.
    pub eval_every: u64,
    /// Samples per evaluation.
    pub eval_count: usize,
    /// The run's last step.
    pub total_steps: u64,
    /// Rewrite `report.html` after each evaluation and sample grid.
    pub write_report: bool,
}

impl MonitorConfig {
    /// Whether `step` is evaluated: every `eval_every` steps and the last step (never with
    /// `eval_every` 0).
    pub fn eval_due(&self, step: u64) -> bool {
        let every = self.eval_every;
        every > 0 && (step % every == 0 || step == self.total_steps)
    }
}

/// One evaluation line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct EvalLine<'a> {
    /// The step evaluated.
    pub step: u64,
    /// The scores.
    pub eval: &'a EvalReport,
}

/// The evaluation of a translation model during training: the evaluator network and the real
/// test images of both domains embedded by it.
#[derive(Debug)]
pub struct TranslationEvalSetup {
    /// The network.
    pub net: Box<dyn FeatureNet>,
    /// The test images and their reference sets.
    pub refs: TranslationReferences,
}

/// One translation evaluation line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct TranslationEvalLine<'a> {
    /// The step evaluated.
    pub step: u64,
    /// The scores of both directions.
    pub translation_eval: &'a TranslationScores,
}

/// Evaluates, watches the evaluations' health and rewrites the report during training; see the
/// [module docs](self). The step's health (divergence, a saturated discriminator, a failing
/// critic) is the training loop's ([`crate::engine::fit`]).
pub struct RunMonitor<'a, M = crate::train::StepMetrics> {
    inner: &'a mut dyn Observer<M>,
    run: RunDir,
    setup: Option<EvalSetup>,
    cfg: MonitorConfig,
    device: Device,
    health: HealthMonitor,
    /// The scores of the latest evaluation.
    pub last_eval: Option<(u64, EvalReport)>,
    /// The class names of a class-conditional run (its per-class scores are evaluated too).
    class_names: Vec<String>,
    /// The evaluation of a translation model.
    translation: Option<TranslationEvalSetup>,
    /// The scores of the latest translation evaluation.
    pub last_translation_eval: Option<(u64, TranslationScores)>,
}

/// One per-class evaluation line of `metrics.jsonl` (class-conditional runs).
#[derive(Clone, Debug, Serialize)]
pub struct ClassEvalLine<'a> {
    /// The step evaluated.
    pub step: u64,
    /// The per-class scores.
    pub class_eval: &'a ClassReport,
}

impl<M> std::fmt::Debug for RunMonitor<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMonitor")
            .field("run", &self.run)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl<'a, M: StepRecord> RunMonitor<'a, M> {
    /// Wraps `inner`; `setup` is the evaluator (needed when `cfg.eval_every > 0`), `device` the
    /// one the generator lives on.
    pub fn new(
        inner: &'a mut dyn Observer<M>,
        run: RunDir,
        setup: Option<EvalSetup>,
        cfg: MonitorConfig,
        device: Device,
    ) -> Self {
        Self {
            inner,
            run,
            setup,
            cfg,
            device,
            health: HealthMonitor::default(),
            last_eval: None,
            class_names: Vec::new(),
            translation: None,
            last_translation_eval: None,
        }
    }

    /// Evaluates a translation model ([`Observer::on_translator`]) with `setup` every
    /// `eval_every` steps and at the last step: at most `eval_count` test images of each domain
    /// are translated (evenly spaced), and G(testA) is scored against the real testB and
    /// F(testB) against the real testA ([`TranslationReferences::score`]).
    pub fn with_translation(mut self, setup: TranslationEvalSetup) -> Self {
        self.translation = Some(setup);
        self
    }

    fn evaluate_translation(&mut self, step: u64, t: &dyn Translator) -> Result<()> {
        let Some(setup) = &self.translation else {
            return Ok(());
        };
        let scores = setup
            .refs
            .score(setup.net.as_ref(), t, Some(self.cfg.eval_count), &mut ())?;
        self.run.append_metrics(&TranslationEvalLine {
            step,
            translation_eval: &scores,
        })?;
        let mut msg = format!("eval at step {step} (translations):");
        for (what, r) in [("G(testA)", &scores.a2b), ("F(testB)", &scores.b2a)] {
            msg.push_str(&format!(
                " {what} vs {} ({} vs {}): FID {}",
                r.reference,
                r.samples,
                r.reference_samples,
                fmt_fixed(r.fid, 3)
            ));
            if let Some(k) = &r.kid {
                msg.push_str(&format!(
                    ", KID {} ± {}",
                    fmt_fixed(k.mean, 5),
                    fmt_fixed(k.std, 5)
                ));
            }
            msg.push(';');
        }
        msg.pop();
        msg.push_str(&format!(
            " ({:.1} s)",
            scores.a2b.seconds + scores.b2a.seconds
        ));
        self.inner.on_event(&msg);
        self.last_translation_eval = Some((step, scores));
        self.rewrite_report();
        Ok(())
    }

    /// Also scores each class at every evaluation (per-class accuracy and the intra-class FID,
    /// [`crate::class_eval`]) of a class-conditional generator whose classes are `names`.
    pub fn with_class_names(mut self, names: Vec<String>) -> Self {
        self.class_names = names;
        self
    }

    fn rewrite_report(&mut self) {
        if !self.cfg.write_report {
            return;
        }
        if let Err(e) = crate::report::write_report(&self.run) {
            tracing::warn!("cannot write the report: {e}");
        }
    }

    fn evaluate_now(&mut self, step: u64, g: &dyn GeneratorNet) -> Result<()> {
        let Some(setup) = &self.setup else {
            return Ok(());
        };
        let images = sample_generator(g, self.cfg.eval_count, EVAL_NOISE_SEED, &self.device)?;
        let report = evaluate(setup.net.as_ref(), &images, &setup.reference)?;
        self.run.append_metrics(&EvalLine {
            step,
            eval: &report,
        })?;
        let mut msg = format!(
            "eval at step {step} ({} samples vs {} {}): FID {:.3}",
            report.samples, report.reference_samples, report.reference, report.fid
        );
        if let (Some(is), Some(c)) = (&report.inception_score, &report.coverage) {
            msg.push_str(&format!(
                ", IS {:.3}, coverage {}/{}, KL {:.3}",
                is.mean, c.covered, c.classes, c.kl_uniform
            ));
        }
        msg.push_str(&format!(
            ", precision {:.3}, recall {:.3}",
            report.precision_recall.precision, report.precision_recall.recall
        ));
        if let Some(dc) = &report.density_coverage {
            msg.push_str(&format!(
                ", density {:.3}, coverage {:.3}",
                dc.density, dc.coverage
            ));
        }
        msg.push_str(&format!(" ({:.1} s)", report.seconds));
        self.inner.on_event(&msg);
        let k = g.classes();
        if k > 0 && k == self.class_names.len() {
            // Sample i was drawn for class i mod k (`GeneratorNet::generate` of a conditional
            // generator).
            let labels: Vec<u32> = (0..self.cfg.eval_count).map(|i| (i % k) as u32).collect();
            let r = score_classes(
                setup.net.as_ref(),
                &setup.reference,
                &images,
                &labels,
                &self.class_names,
            )?;
            self.run.append_metrics(&ClassEvalLine {
                step,
                class_eval: &r,
            })?;
            self.inner.on_event(&format!(
                "classes at step {step}: accuracy {:.1}% (lowest {:.1}%), intra-class FID {:.3}",
                100.0 * r.accuracy,
                100.0 * r.per_class.iter().map(|c| c.accuracy).fold(1.0, f64::min),
                r.intra_fid
            ));
        }
        for w in self.health.observe_eval(step, &report) {
            log_warning(&self.run, &mut *self.inner, &w);
        }
        self.last_eval = Some((step, report));
        self.rewrite_report();
        Ok(())
    }
}

/// `n` samples `[n, c, h, w]` from `g` in evaluation mode, from noise drawn with `seed`.
pub fn sample_generator(g: &dyn GeneratorNet, n: usize, seed: u64, dev: &Device) -> Result<Tensor> {
    let mut rng = SeededRng::new(seed);
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let b = left.min(250);
        let z = rng.randn((b, g.latent_dim()), 0.0, 1.0, dev)?;
        out.push(g.generate(&z, false)?.to_device(&Device::Cpu)?);
        left -= b;
    }
    Ok(Tensor::cat(&out, 0)?)
}

impl<M: StepRecord> Observer<M> for RunMonitor<'_, M> {
    fn on_step(&mut self, m: &M, items_per_sec: f64) {
        self.inner.on_step(m, items_per_sec);
    }

    fn on_event(&mut self, msg: &str) {
        self.inner.on_event(msg);
        if msg.starts_with("samples:") || msg.starts_with("warning") {
            self.rewrite_report();
        }
    }

    fn should_stop(&self) -> bool {
        self.inner.should_stop()
    }

    fn on_generator(&mut self, step: u64, g: &dyn GeneratorNet) -> Result<()> {
        self.inner.on_generator(step, g)?;
        if self.cfg.eval_due(step) {
            self.evaluate_now(step, g)?;
        }
        Ok(())
    }

    fn on_translator(&mut self, step: u64, t: &dyn Translator) -> Result<()> {
        self.inner.on_translator(step, t)?;
        if self.cfg.eval_due(step) {
            self.evaluate_translation(step, t)?;
        }
        Ok(())
    }
}
