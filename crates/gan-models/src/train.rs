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
//!
//! [`GanOptions`] add to this step (several discriminator steps, DiffAugment, R1, an EMA
//! generator; see [`crate::options`]); with the defaults the step is exactly the one above. With
//! the hinge objective ([`GeneratorLoss::Hinge`]) the discriminator's raw scores replace the
//! logits in both losses; D(x) and D(G(z)) are still logged as mean σ of them.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use gan_core::loss::{discriminator_loss_for, generator_loss, sigmoid_mean, GeneratorLoss};
use gan_core::optim::Adam;
use gan_core::rng::SeededRng;
use serde::{Deserialize, Serialize};

use crate::engine::{Signals, StepRecord, Trainer};
use crate::error::Result;
use crate::options::{EmaGenerator, GanOptions};

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

/// Which generator of a translation model to apply (CycleGAN's G or F).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// G: A→B.
    AToB,
    /// F: B→A.
    BToA,
}

impl std::str::FromStr for Direction {
    type Err = crate::ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "a2b" | "AtoB" => Ok(Self::AToB),
            "b2a" | "BtoA" => Ok(Self::BToA),
            _ => Err(crate::ModelError::Config(format!(
                "unknown direction {s:?} (expected a2b or b2a)"
            ))),
        }
    }
}

/// A model that maps images of one domain to another and back (CycleGAN), what evaluation of
/// translations samples from, as [`GeneratorNet`] is for noise-to-image generators.
pub trait Translator {
    /// Translates `images` (`[n, c, h, w]` in [-1, 1], any device) with the generator of `dir`
    /// → `[n, c, h, w]` in (-1, 1) on the model's device, detached from any graph, reporting
    /// the images done to `progress` (the caller starts the phase).
    fn translate_with(
        &self,
        dir: Direction,
        images: &Tensor,
        progress: &mut dyn crate::evaluator::Progress,
    ) -> Result<Tensor>;
}

/// A discriminator network returning one logit per sample.
pub trait DiscriminatorNet {
    /// Logits `[batch]` (or fewer, for packed discriminators) for samples `xs`.
    fn logits(&self, xs: &Tensor, train: bool) -> Result<Tensor>;
    /// Switches to layers whose backward pass can itself be differentiated (for the R1
    /// penalty), or errors naming why this network cannot have one (BatchNorm mixes samples).
    fn enable_second_order(&mut self) -> Result<()> {
        Ok(())
    }
    /// Whether each sample's logit depends on the sample alone (no BatchNorm), so that real
    /// and fake batches can go through one forward pass together. `false` unless a network
    /// says so.
    fn per_sample(&self) -> bool {
        false
    }
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
    /// The R1 penalty of the last discriminator step, on the steps that applied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r1: Option<f32>,
}

impl StepRecord for StepMetrics {
    fn step(&self) -> u64 {
        self.step
    }
    fn values(&self) -> Vec<(&'static str, f32)> {
        let mut v = vec![
            ("Loss_D", self.loss_d),
            ("Loss_G", self.loss_g),
            ("D(x)", self.d_x),
            ("D(G(z))", self.d_g_z1),
            ("D(G(z)) after", self.d_g_z2),
        ];
        v.extend(self.r1.map(|r| ("R1", r)));
        v
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
    /// Items in the last step's real batches.
    pub last_items: usize,
    /// Discriminator steps, DiffAugment, R1 and the EMA's settings.
    pub opts: GanOptions,
    /// The EMA generator, if one is kept.
    pub ema: Option<EmaGenerator<G>>,
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

/// A network built by `build` on fresh variables (f32 on `dev`), with those variables: what
/// every model does before it initialises, loads or trains a network.
pub fn on_fresh_vars<N, E: Into<crate::error::ModelError>>(
    dev: &Device,
    build: impl FnOnce(candle_nn::VarBuilder) -> std::result::Result<N, E>,
) -> Result<(N, VarMap)> {
    let vars = VarMap::new();
    let net = build(candle_nn::VarBuilder::from_varmap(
        &vars,
        candle_core::DType::F32,
        dev,
    ))
    .map_err(Into::into)?;
    Ok((net, vars))
}

impl<G, D> GanNets<G, D> {
    /// A generator and a discriminator (or critic) built by `make_g` and `make_d` on fresh
    /// variables, then initialised by `init` (such as [`gan_core::init::dcgan_init`]) from
    /// `seed`: the generator's from stream [`crate::streams::INIT_G`], the other's from
    /// [`crate::streams::INIT_D`].
    pub fn new(
        seed: u64,
        dev: &Device,
        init: impl Fn(&VarMap, &mut SeededRng) -> candle_core::Result<()>,
        make_g: impl FnOnce(candle_nn::VarBuilder) -> Result<G>,
        make_d: impl FnOnce(candle_nn::VarBuilder) -> Result<D>,
    ) -> Result<Self> {
        use crate::streams as stream;
        let (g, g_vars) = on_fresh_vars(dev, make_g)?;
        let (d, d_vars) = on_fresh_vars(dev, make_d)?;
        init(&g_vars, &mut SeededRng::with_stream(seed, stream::INIT_G))?;
        init(&d_vars, &mut SeededRng::with_stream(seed, stream::INIT_D))?;
        Ok(Self {
            g,
            d,
            g_vars,
            d_vars,
        })
    }
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
            opts: GanOptions::default(),
            ema: None,
        })
    }

    /// Adds the options to a trainer at step 0: validates them, starts the EMA generator
    /// `ema` (required exactly when `opts.ema` is set) as a copy of the generator, and for R1
    /// turns on second-order gradients (failing on a thread that already ran a backward pass
    /// with candle's detaching default, or for a discriminator that cannot have them).
    pub fn with_options(mut self, opts: GanOptions, ema: Option<(G, VarMap)>) -> Result<Self> {
        opts.validate()?;
        if opts.r1.is_some() {
            self.d.enable_second_order()?;
            gan_core::penalty::ensure_second_order()?;
        }
        self.ema = match (opts.ema, ema) {
            (Some(cfg), Some((g, vars))) => {
                gan_core::ema::copy_vars(&vars, &self.g_vars)?;
                Some(EmaGenerator { g, vars, cfg })
            }
            (None, None) => None,
            _ => {
                return Err(crate::error::ModelError::Config(
                    "an EMA generator goes with options.ema, and only with it".into(),
                ))
            }
        };
        self.opts = opts;
        Ok(self)
    }

    /// The generator that samples and is evaluated: the EMA one when kept (unless
    /// `raw_generator`), else the trained one.
    pub fn sampler(&self) -> &G {
        match &self.ema {
            Some(e) if !self.opts.raw_generator => &e.g,
            _ => &self.g,
        }
    }

    /// `xs` as the discriminator sees it: through DiffAugment when on (a fresh draw from the
    /// noise stream), else unchanged.
    fn augment(&mut self, xs: &Tensor) -> Result<Tensor> {
        match &self.opts.diffaug {
            Some(aug) => Ok(aug.apply(xs, &mut self.noise, false)?),
            None => Ok(xs.clone()),
        }
    }

    /// One discriminator update on `real` and the detached `fake`, with R1 when `r1_gamma` is
    /// given: (loss, real logits, fake logits, R1 value).
    fn d_step(
        &mut self,
        real: &Tensor,
        fake: &Tensor,
        r1_gamma: Option<f64>,
    ) -> Result<(Tensor, Tensor, Tensor, Option<f32>)> {
        let real = self.augment(real)?;
        let fake = self.augment(fake)?;
        let (real_logits, fake_logits) = if self.d.per_sample() {
            // One pass over both batches: the same logits as two passes, but one set of
            // larger convolutions and, with spectral norm, one power iteration, not two.
            let n = real.dim(0)?;
            let both = self.d.logits(&Tensor::cat(&[&real, &fake], 0)?, true)?;
            (both.narrow(0, 0, n)?, both.narrow(0, n, both.dim(0)? - n)?)
        } else {
            (self.d.logits(&real, true)?, self.d.logits(&fake, true)?)
        };
        let mut loss_d = discriminator_loss_for(
            self.cfg.loss,
            &real_logits,
            &fake_logits,
            self.cfg.real_label,
        )?;
        let mut r1 = None;
        if let Some(gamma) = r1_gamma {
            let d = &self.d;
            let p = gan_core::penalty::r1_penalty(
                |xs| d.logits(xs, true).map_err(crate::wgan::to_candle),
                &real,
                gamma,
            )?;
            r1 = Some(
                p.value
                    .to_dtype(candle_core::DType::F32)?
                    .to_scalar::<f32>()?,
            );
            loss_d = (loss_d + p.value)?;
        }
        self.opt_d.backward_step(&loss_d)?;
        Ok((loss_d, real_logits, fake_logits, r1))
    }

    /// The `n_dis − 1` discriminator steps that precede [`GanTrainer::step_on`], each on a fresh
    /// real batch from `data` and a fresh fake batch; returns the items they used.
    fn extra_d_steps(&mut self, data: &mut crate::engine::Batches<'_>) -> Result<usize> {
        let mut items = 0;
        for _ in 1..self.opts.n_dis {
            let real = data.next_batch(self.step + 1)?.items;
            let mut rng = std::mem::replace(&mut self.noise, SeededRng::new(0));
            let z = self.noise_batch(&mut rng, real.dim(0)?);
            self.noise = rng;
            let fake = self.g.generate(&z?, true)?.detach();
            let r1 = self.opts.r1_gamma_at(self.step);
            self.d_step(&real, &fake, r1)?;
            items += real.dim(0)?;
        }
        Ok(items)
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
        let r1_gamma = self.opts.r1_gamma_at(self.step);
        let (loss_d, real_logits, fake_logits, r1) = self.d_step(real, &fake.detach(), r1_gamma)?;

        // Generator, through the updated D; only G's optimizer steps, so D's parameters are
        // constants here and their gradients are not computed.
        let seen = self.augment(&fake)?;
        let out = {
            let _frozen = gan_core::freeze::freeze_params();
            self.d.logits(&seen, true)?
        };
        let loss_g = generator_loss(&out, self.cfg.loss)?;
        self.opt_g.backward_step(&loss_g)?;

        self.step += 1;
        if let Some(ema) = &self.ema {
            ema.update(&self.g_vars, self.step)?;
        }
        Ok(StepMetrics {
            step: self.step,
            epoch,
            loss_d: loss_d.to_scalar::<f32>()?,
            loss_g: loss_g.to_scalar::<f32>()?,
            d_x: sigmoid_mean(&real_logits)?,
            d_g_z1: sigmoid_mean(&fake_logits)?,
            d_g_z2: sigmoid_mean(&out)?,
            r1,
        })
    }
}

impl<G: GeneratorNet, D: DiscriminatorNet> Trainer for GanTrainer<G, D> {
    type Batch = gan_data::Batch;
    type Metrics = StepMetrics;

    crate::engine::trainer_fields!(step: step, device: device, noise: noise);
    fn train_step(&mut self, data: &mut crate::engine::Batches<'_>) -> Result<StepMetrics> {
        let extra = self.extra_d_steps(data)?;
        let batch = data.next_batch(self.step + 1)?;
        let m = self.step_on(&batch.items, batch.epoch as u64)?;
        self.last_items += extra;
        Ok(m)
    }
    fn items(&self, _m: &StepMetrics) -> usize {
        self.last_items
    }
    fn extra_file(&self) -> Option<&'static str> {
        self.ema.as_ref().map(|_| "generator_ema")
    }
    fn extra_tensors(&self) -> Result<std::collections::HashMap<String, Tensor>> {
        Ok(self
            .ema
            .as_ref()
            .map(EmaGenerator::tensors)
            .unwrap_or_default())
    }
    fn restore_extra(&mut self, tensors: std::collections::HashMap<String, Tensor>) -> Result<()> {
        match &self.ema {
            Some(e) => e.restore(&tensors),
            None => Ok(()),
        }
    }
    crate::engine::trainer_parts! {
        "generator", "generator" => g_vars, opt_g;
        "discriminator", "discriminator" => d_vars, opt_d;
        base_lrs: base_lr
    }
    fn generator(&self) -> Option<&dyn GeneratorNet> {
        Some(self.sampler())
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

impl LoopConfig {
    /// A run of `steps` steps that samples, checkpoints and logs at these intervals (in steps)
    /// and stops at a step whose numbers are not finite.
    pub fn new(steps: u64, sample_every: u64, checkpoint_every: u64, log_every: u64) -> Self {
        Self {
            steps,
            sample_every,
            checkpoint_every,
            log_every,
            on_divergence: Default::default(),
        }
    }
}

/// What the image models' runs (DCGAN and SNGAN, WGAN and WGAN-GP, CycleGAN, and through DCGAN
/// the conditional GAN) record besides their own settings: length and cadences, seed, device,
/// kernels and random-stream table. Flattened into their configurations, so its fields stand at
/// the top level of `config.json`, where runs written before it have them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Images per batch (CycleGAN: of each domain; WGAN: per critic iteration, and fakes per
    /// generator iteration).
    pub batch_size: usize,
    /// Length, logging, sampling and checkpointing.
    pub schedule: LoopConfig,
    /// The seed of every random stream (weights, noise, batch order).
    pub seed: u64,
    /// The device (`cpu`, `cuda:0`, `metal`).
    pub device: String,
    /// Whether the fast CPU convolutions were used.
    pub fast_conv: bool,
    /// The version of the random-stream table ([`crate::streams`]; 1 for runs written before it).
    #[serde(default = "crate::streams::legacy")]
    pub streams: u32,
}

impl RunSettings {
    /// Batches of `batch_size` for `schedule`, with seed 0 on the CPU, the fast kernels and the
    /// current stream table.
    pub fn new(batch_size: usize, schedule: LoopConfig) -> Self {
        Self {
            batch_size,
            schedule,
            seed: 0,
            device: "cpu".into(),
            fast_conv: true,
            streams: crate::streams::CURRENT,
        }
    }

    /// How the batches are drawn ([`crate::streams::batch_config`]).
    pub fn batch_config(&self) -> gan_data::BatchConfig {
        crate::streams::batch_config(self.batch_size, self.seed, self.streams)
    }
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
    /// Called after every step of a translation model (CycleGAN), after [`Observer::on_step`],
    /// with its generators in their current state, so that an observer can translate test
    /// images with them (to evaluate every N steps). An error ends training with that error.
    fn on_translator(&mut self, _step: u64, _t: &dyn Translator) -> Result<()> {
        Ok(())
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;
impl<M> Observer<M> for Silent {}
