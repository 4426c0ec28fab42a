//! The cross-entropy adversarial step (DCGAN, the 2D toy), and the types every model's training
//! shares: the network traits, [`LoopConfig`] and the [`Observer`] of the loop in
//! [`crate::engine`].
//!
//! One step, as in pytorch/examples' DCGAN:
//! 1. draw z, make a fake batch G(z) (train mode);
//! 2. update D on the real batch (label 1, or less with one-sided smoothing) and on the fake
//!    batch *detached* (label 0), so no gradient reaches G;
//! 3. update G through the updated D with the generator loss; only G's optimizer steps, so D's
//!    parameters are untouched.
//!
//! Logged per step: Loss_D, Loss_G, D(x) (mean σ on reals), D(G(z)) before the G step (on the
//! detached fakes) and after the D update (the fakes seen by the G step).

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use gan_core::loss::{discriminator_loss, generator_loss, sigmoid_mean, GeneratorLoss};
use gan_core::optim::Adam;
use gan_core::rng::{RngState, SeededRng};
use serde::{Deserialize, Serialize};

use crate::engine::{BatchSource, Signals, StepRecord, Trainer};
use crate::error::Result;

pub use crate::engine::{load_vars, FitOutcome, TrainState};

/// A generator network.
pub trait GeneratorNet {
    /// Maps noise `[batch, latent_dim]` to samples; `train` selects training-mode layers.
    fn generate(&self, z: &Tensor, train: bool) -> Result<Tensor>;
    /// Length of z.
    fn latent_dim(&self) -> usize;
    /// Number of classes of a class-conditional generator (0, the default, for an
    /// unconditional one).
    fn classes(&self) -> usize {
        0
    }
    /// Samples of given classes (a class-conditional generator, [`crate::cgan`]): `z`
    /// `[batch, latent_dim]` and `y` `[batch, classes]`, one-hot rows or blends of them →
    /// samples. Unconditional generators refuse.
    fn generate_classes(&self, _z: &Tensor, _y: &Tensor, _train: bool) -> Result<Tensor> {
        Err(crate::ModelError::Config(
            "this generator is not class-conditional".into(),
        ))
    }
}

/// A discriminator network returning one logit per sample.
pub trait DiscriminatorNet {
    /// Logits `[batch]` (or fewer, for packed discriminators) for samples `xs`.
    fn logits(&self, xs: &Tensor, train: bool) -> Result<Tensor>;
}

/// What one step measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// The step number (1 for the first step).
    pub step: u64,
    /// The epoch the real batch came from.
    pub epoch: u64,
    /// The discriminator's loss.
    pub loss_d: f32,
    /// The generator's loss.
    pub loss_g: f32,
    /// Mean D(x) on the real batch.
    pub d_x: f32,
    /// Mean D(G(z)) on the fakes before the D update.
    pub d_g_z1: f32,
    /// Mean D(G(z)) on the same fakes after the D update, as seen by the G step.
    pub d_g_z2: f32,
}

impl StepRecord for StepMetrics {
    fn step(&self) -> u64 {
        self.step
    }
    fn values(&self) -> Vec<(&'static str, f32)> {
        vec![
            ("Loss_D", self.loss_d),
            ("Loss_G", self.loss_g),
            ("D(x)", self.d_x),
            ("D(G(z))", self.d_g_z1),
            ("D(G(z)) after", self.d_g_z2),
        ]
    }
    fn signals(&self) -> Signals {
        Signals::Probabilities {
            d_x: self.d_x,
            d_g_z: self.d_g_z1,
        }
    }
    fn summary(&self) -> String {
        format!(
            "Loss_D {:.3} Loss_G {:.3} D(x) {:.3} D(G(z)) {:.3}/{:.3}",
            self.loss_d, self.loss_g, self.d_x, self.d_g_z1, self.d_g_z2
        )
    }
}

/// Training settings of the adversarial step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepConfig {
    /// The generator's objective.
    pub loss: GeneratorLoss,
    /// Target for real samples: 1.0, or e.g. 0.9 for one-sided label smoothing.
    pub real_label: f64,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            loss: GeneratorLoss::NonSaturating,
            real_label: 1.0,
        }
    }
}

/// A generator, a discriminator, their variables and optimizers, and the noise source.
pub struct GanTrainer<G, D> {
    /// The generator.
    pub g: G,
    /// The discriminator.
    pub d: D,
    /// The generator's variables.
    pub g_vars: VarMap,
    /// The discriminator's variables.
    pub d_vars: VarMap,
    /// The generator's optimizer.
    pub opt_g: Adam,
    /// The discriminator's optimizer.
    pub opt_d: Adam,
    /// Noise for the training steps.
    pub noise: SeededRng,
    /// Loss settings.
    pub cfg: StepConfig,
    /// Steps done.
    pub step: u64,
    /// The device.
    pub device: Device,
    /// The base learning rates of G and D, which a schedule's factor multiplies.
    pub base_lr: [f64; 2],
    /// Items in the last step's real batch.
    pub last_items: usize,
}

impl<G, D> std::fmt::Debug for GanTrainer<G, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GanTrainer")
            .field("step", &self.step)
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// The networks of a [`GanTrainer`] with their variables.
#[allow(missing_debug_implementations)] // VarMap has no Debug
pub struct GanNets<G, D> {
    /// The generator.
    pub g: G,
    /// The discriminator.
    pub d: D,
    /// The generator's variables.
    pub g_vars: VarMap,
    /// The discriminator's variables.
    pub d_vars: VarMap,
}

impl<G: GeneratorNet, D: DiscriminatorNet> GanTrainer<G, D> {
    /// A trainer at step 0 for initialised networks: Adam with `adam[0]` for G and `adam[1]`
    /// for D, training noise from `noise`.
    pub fn new(
        nets: GanNets<G, D>,
        adam: [gan_core::optim::AdamConfig; 2],
        noise: SeededRng,
        cfg: StepConfig,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            opt_g: Adam::from_varmap(&nets.g_vars, adam[0])?,
            opt_d: Adam::from_varmap(&nets.d_vars, adam[1])?,
            g: nets.g,
            d: nets.d,
            g_vars: nets.g_vars,
            d_vars: nets.d_vars,
            noise,
            cfg,
            step: 0,
            device: device.clone(),
            base_lr: [adam[0].lr, adam[1].lr],
            last_items: 0,
        })
    }

    /// Draws a noise batch `[n, latent_dim]` from `rng`.
    pub fn noise_batch(&self, rng: &mut SeededRng, n: usize) -> Result<Tensor> {
        Ok(rng.randn((n, self.g.latent_dim()), 0.0, 1.0, &self.device)?)
    }

    /// One adversarial step on a real batch `[b, …]` from epoch `epoch`.
    pub fn step_on(&mut self, real: &Tensor, epoch: u64) -> Result<StepMetrics> {
        let b = real.dim(0)?;
        self.last_items = b;
        let mut rng = std::mem::replace(&mut self.noise, SeededRng::new(0));
        let z = self.noise_batch(&mut rng, b);
        self.noise = rng;
        let fake = self.g.generate(&z?, true)?;

        // Discriminator: reals, and fakes detached so that no gradient reaches G.
        let real_logits = self.d.logits(real, true)?;
        let fake_logits = self.d.logits(&fake.detach(), true)?;
        let loss_d = discriminator_loss(&real_logits, &fake_logits, self.cfg.real_label)?;
        self.opt_d.backward_step(&loss_d)?;

        // Generator, through the updated D; only G's optimizer steps, so D's parameters are
        // constants here and their gradients are not computed.
        let out = {
            let _frozen = gan_core::freeze::freeze_params();
            self.d.logits(&fake, true)?
        };
        let loss_g = generator_loss(&out, self.cfg.loss)?;
        self.opt_g.backward_step(&loss_g)?;

        self.step += 1;
        Ok(StepMetrics {
            step: self.step,
            epoch,
            loss_d: loss_d.to_scalar::<f32>()?,
            loss_g: loss_g.to_scalar::<f32>()?,
            d_x: sigmoid_mean(&real_logits)?,
            d_g_z1: sigmoid_mean(&fake_logits)?,
            d_g_z2: sigmoid_mean(&out)?,
        })
    }
}

impl<G: GeneratorNet, D: DiscriminatorNet> Trainer for GanTrainer<G, D> {
    type Batch = gan_data::Batch;
    type Metrics = StepMetrics;

    fn step(&self) -> u64 {
        self.step
    }
    fn set_step(&mut self, step: u64) {
        self.step = step;
    }
    fn train_step(
        &mut self,
        data: &mut dyn BatchSource<Batch = gan_data::Batch>,
    ) -> Result<StepMetrics> {
        let batch = data.next_batch(self.step + 1)?;
        self.step_on(&batch.items, batch.epoch as u64)
    }
    fn items(&self, _m: &StepMetrics) -> usize {
        self.last_items
    }
    crate::engine::trainer_parts! {
        "generator", "generator" => g_vars, opt_g;
        "discriminator", "discriminator" => d_vars, opt_d;
    }
    fn noise_state(&self) -> Option<RngState> {
        Some(self.noise.state())
    }
    fn restore_noise(&mut self, state: &RngState) {
        self.noise = SeededRng::from_state(state);
    }
    fn set_lr_factor(&mut self, factor: f64) {
        self.opt_g.set_lr(self.base_lr[0] * factor);
        self.opt_d.set_lr(self.base_lr[1] * factor);
    }
    fn generator(&self) -> Option<&dyn GeneratorNet> {
        Some(&self.g)
    }
    fn device(&self) -> &Device {
        &self.device
    }
}

/// When to stop, log, sample and checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopConfig {
    /// Total steps of the run (a resumed run continues up to this).
    pub steps: u64,
    /// Write a sample grid every this many steps (0: never; one is always written at the end).
    pub sample_every: u64,
    /// Write `checkpoints/step-NNNNNN` every this many steps (0: never); `latest` is written at
    /// the same times and at the end.
    pub checkpoint_every: u64,
    /// Append to `metrics.jsonl` every this many steps.
    pub log_every: u64,
    /// What to do when a step's numbers are not finite (stop, by default).
    #[serde(default)]
    pub on_divergence: crate::engine::OnDivergence,
}

/// Receives progress from the training loop ([`crate::engine::fit`]) of any model, `M` being the
/// model's step metrics; the CLI draws a progress bar with it.
pub trait Observer<M = StepMetrics> {
    /// Called after every step with its metrics and the throughput so far (items per second).
    fn on_step(&mut self, _m: &M, _items_per_sec: f64) {}
    /// Called when something was written (a sample grid, a checkpoint).
    fn on_event(&mut self, _msg: &str) {}
    /// Polled after every step: return true to stop (a checkpoint is still written).
    fn should_stop(&self) -> bool {
        false
    }
    /// Called after every step, after [`Observer::on_step`], with the generator in its current
    /// state, so that an observer can sample from it (to evaluate every N steps, for example).
    /// An error ends training with that error.
    fn on_generator(&mut self, _step: u64, _g: &dyn GeneratorNet) -> Result<()> {
        Ok(())
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;
impl<M> Observer<M> for Silent {}
