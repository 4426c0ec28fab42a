//! WGAN (Arjovsky et al. 2017, weight clipping) and WGAN-GP (Gulrajani et al. 2017, gradient
//! penalty), with the DCGAN generator and a critic made of the DCGAN discriminator's body with a
//! linear output.
//!
//! # The critic
//!
//! [`WganCritic`] has the stages, widths and weight names (`main.<i>.*`) of
//! [`DcganDiscriminator`](crate::dcgan::DcganDiscriminator), and like it ends in a convolution
//! with no activation: one unbounded score per image, no sigmoid. The normalisation after the
//! inner convolutions is a choice ([`CriticNorm`]): BatchNorm, as in the WGAN paper's DCGAN critic
//! (and then the network is exactly DCGAN's discriminator), or for WGAN-GP layer norm over
//! (C, H, W) with a per-channel scale and shift, or nothing. A gradient penalty is per sample,
//! which BatchNorm would mix across the batch, so WGAN-GP refuses BatchNorm.
//!
//! # Training
//!
//! One *step* is one generator iteration, preceded by `n` critic iterations, each on a fresh real
//! batch and a fresh fake batch (detached):
//!
//! - critic loss `mean f(G(z)) − mean f(x)` (+ the penalty λ·(‖∇x̂ f(x̂)‖₂ − 1)² on per-sample
//!   interpolates for WGAN-GP, see [`gan_core::penalty`]);
//! - weight clipping: after every critic update each critic parameter (not the BatchNorm running
//!   statistics) is clamped to ±c;
//! - generator loss `−mean f(G(z))`.
//!
//! `n` follows [`CriticSchedule`]: the WGAN paper's 100 critic iterations for the first 25
//! generator iterations and every 500th, otherwise `n_critic` (5); WGAN-GP uses 5 throughout.
//! The paper's optimizers: RMSprop(5e-5) with clipping, Adam(1e-4, β1 0.5, β2 0.9) with the
//! penalty.
//!
//! # What to watch
//!
//! `wasserstein` in `metrics.jsonl` is `mean f(x) − mean f(G(z))` averaged over the step's critic
//! iterations: the negated critic loss without the penalty, an estimate (up to the critic's
//! Lipschitz constant) of the Wasserstein-1 distance between the data and the generator. It
//! should fall as the samples improve. The generator's loss `−mean f(G(z))` has no such meaning:
//! the critic can shift all its scores by a constant, so its level drifts.
//!
//! # Second-order gradients
//!
//! The penalty's gradient is a gradient of a gradient; [`WganTrainer::new`] calls
//! [`gan_core::penalty::ensure_second_order`] for WGAN-GP, which fails if the calling thread has
//! already run a backward pass with candle's detaching default (train on a fresh thread then).

use std::path::Path;

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{BatchNorm, VarBuilder, VarMap};
use gan_core::conv::{Conv2d, ConvParams};
use gan_core::init::dcgan_init;
use gan_core::loss::{wasserstein_critic_loss, wasserstein_generator_loss};
use gan_core::norm::LayerNorm;
use gan_core::optim::{Adam, AdamConfig, RmsProp, RmsPropConfig, StatefulOptimizer};
use gan_core::penalty::{ensure_second_order, gradient_penalty};
use gan_core::rng::SeededRng;
use serde::{Deserialize, Serialize};

use crate::dcgan::{DcganConfig, DcganGenerator};
use crate::dcgan_run::{DataConfig, DcganRunConfig, GRID_SAMPLES};
use crate::engine::{Signals, StepRecord, Trainer};
use crate::error::{ModelError, Result};
use crate::grid::save_grid;
use crate::options::GanOptions;
use crate::streams as stream;
use crate::train::GanNets;
use crate::train::{DiscriminatorNet, GeneratorNet, LoopConfig, RunSettings, StepConfig};

/// The normalisation after the critic's inner convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CriticNorm {
    /// BatchNorm, as DCGAN's discriminator (WGAN with weight clipping only).
    BatchNorm,
    /// Layer norm over (C, H, W) of each sample, then a per-channel scale and shift.
    LayerNorm,
    /// No normalisation.
    None,
}

/// A normalisation layer of the critic.
#[derive(Debug)]
enum NormLayer {
    Batch(BatchNorm),
    Layer {
        norm: LayerNorm,
        weight: Tensor,
        bias: Tensor,
    },
}

impl NormLayer {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        Ok(match self {
            NormLayer::Batch(bn) => bn.forward_t(xs, train)?,
            NormLayer::Layer { norm, weight, bias } => {
                let c = weight.dim(0)?;
                norm.forward(xs)?
                    .broadcast_mul(&weight.reshape((1, c, 1, 1))?)?
                    .broadcast_add(&bias.reshape((1, c, 1, 1))?)?
            }
        })
    }
}

/// The WGAN critic: DCGAN's discriminator body with a linear output; see the [module docs](self).
#[derive(Debug)]
pub struct WganCritic {
    convs: Vec<Conv2d>,
    norms: Vec<Option<NormLayer>>,
}

impl WganCritic {
    /// Builds the critic; weights come from `vb` (`main.<i>.*`, DCGAN's names).
    pub fn new(cfg: &DcganConfig, norm: CriticNorm, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vb = vb.pp("main");
        let (mut convs, mut norms) = (Vec::new(), Vec::new());
        for (idx, s) in cfg.d_layers(!matches!(norm, CriticNorm::None)) {
            convs.push(Conv2d::new(
                s.c_in,
                s.c_out,
                s.k,
                ConvParams::new(s.s, s.p),
                false,
                vb.pp(idx),
            )?);
            let layer = match (s.bn, norm) {
                (false, _) | (true, CriticNorm::None) => None,
                (true, CriticNorm::BatchNorm) => Some(NormLayer::Batch(candle_nn::batch_norm(
                    s.c_out,
                    candle_nn::BatchNormConfig::default(),
                    vb.pp(idx + 1),
                )?)),
                (true, CriticNorm::LayerNorm) => {
                    let vb = vb.pp(idx + 1);
                    let weight =
                        vb.get_with_hints(s.c_out, "weight", candle_nn::Init::Const(1.0))?;
                    let bias = vb.get_with_hints(s.c_out, "bias", candle_nn::Init::Const(0.0))?;
                    Some(NormLayer::Layer {
                        norm: LayerNorm::over_non_batch(1e-5),
                        weight,
                        bias,
                    })
                }
            };
            norms.push(layer);
        }
        Ok(Self { convs, norms })
    }

    /// # Shapes
    /// `xs`: `[batch, channels, size, size]` → scores `[batch]`. `train` selects batch
    /// statistics in BatchNorm (layer norm has none).
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let b = xs.dim(0)?;
        let last = self.convs.len() - 1;
        let mut xs = xs.clone();
        for (i, (conv, norm)) in self.convs.iter().zip(&self.norms).enumerate() {
            xs = conv.forward(&xs)?;
            if let Some(n) = norm {
                xs = n.forward_t(&xs, train)?;
            }
            if i != last {
                xs = candle_nn::ops::leaky_relu(&xs, 0.2)?;
            }
        }
        Ok(xs.reshape(b)?)
    }
}

/// How the critic is kept (roughly) 1-Lipschitz.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Lipschitz {
    /// Clamp every critic parameter to ±`clip` after each critic update (WGAN).
    WeightClipping {
        /// The bound c (the paper's 0.01).
        clip: f64,
    },
    /// Add λ·(‖∇x̂ f(x̂)‖₂ − 1)² on interpolates to the critic's loss (WGAN-GP).
    GradientPenalty {
        /// The weight λ (the paper's 10).
        lambda: f64,
    },
}

/// How many critic iterations precede each generator iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriticSchedule {
    /// Critic iterations per generator iteration (the papers' 5).
    pub n_critic: usize,
    /// Critic iterations of the "burst" generator iterations (the WGAN paper's 100; 0: none).
    pub burst_iters: usize,
    /// The first this many generator iterations are bursts (the WGAN paper's 25).
    pub burst_first: u64,
    /// Every generator iteration whose index is a multiple of this is a burst (the WGAN paper's
    /// 500; 0: never).
    pub burst_every: u64,
}

impl CriticSchedule {
    /// The WGAN paper's schedule: 100 critic iterations for the first 25 generator iterations
    /// and every 500th, `n_critic` otherwise.
    pub fn wgan(n_critic: usize) -> Self {
        Self {
            n_critic,
            burst_iters: 100,
            burst_first: 25,
            burst_every: 500,
        }
    }

    /// `n_critic` critic iterations for every generator iteration (WGAN-GP).
    pub fn constant(n_critic: usize) -> Self {
        Self {
            n_critic,
            burst_iters: 0,
            burst_first: 0,
            burst_every: 0,
        }
    }

    /// Critic iterations before generator iteration `gen_iter` (0 for the first), as the WGAN
    /// reference code: `100 if gen_iter < 25 or gen_iter % 500 == 0 else n_critic`.
    pub fn iters_at(&self, gen_iter: u64) -> usize {
        let burst = self.burst_iters > 0
            && (gen_iter < self.burst_first
                || (self.burst_every > 0 && gen_iter % self.burst_every == 0));
        if burst {
            self.burst_iters
        } else {
            self.n_critic
        }
    }
}

/// The optimizer of both networks.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WganOptimizer {
    /// RMSprop (WGAN: lr 5e-5).
    RmsProp(RmsPropConfig),
    /// Adam (WGAN-GP: lr 1e-4, β1 0.5, β2 0.9).
    Adam(AdamConfig),
}

impl WganOptimizer {
    fn build(&self, vars: &VarMap) -> Result<Box<dyn StatefulOptimizer>> {
        Ok(match self {
            WganOptimizer::RmsProp(c) => Box::new(RmsProp::from_varmap(vars, *c)?),
            WganOptimizer::Adam(c) => Box::new(Adam::from_varmap(vars, *c)?),
        })
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            WganOptimizer::RmsProp(c) => c.lr,
            WganOptimizer::Adam(c) => c.lr,
        }
    }

    /// Sets the learning rate.
    pub fn set_lr(&mut self, lr: f64) {
        match self {
            WganOptimizer::RmsProp(c) => c.lr = lr,
            WganOptimizer::Adam(c) => c.lr = lr,
        }
    }
}

impl WganRunConfig {
    /// The generator's and the critic's optimizers: `optimizer`, the critic's with `critic_lr`
    /// where given.
    pub fn optimizers(&self) -> [WganOptimizer; 2] {
        let mut critic = self.optimizer;
        if let Some(lr) = self.critic_lr {
            critic.set_lr(lr);
        }
        [self.optimizer, critic]
    }
}

/// Everything that defines a WGAN or WGAN-GP run; saved as `config.json` before training starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WganRunConfig {
    /// `"wgan"` (weight clipping) or `"wgan-gp"` (gradient penalty).
    pub model: String,
    /// The generator (DCGAN's) and the critic's widths and image size.
    pub dcgan: DcganConfig,
    /// The critic's normalisation.
    pub critic_norm: CriticNorm,
    /// Weight clipping or gradient penalty.
    pub lipschitz: Lipschitz,
    /// Critic iterations per generator iteration.
    pub critic: CriticSchedule,
    /// The optimizer of both networks.
    pub optimizer: WganOptimizer,
    /// The critic's learning rate where it differs from the generator's (TTUR, Heusel et al.
    /// 2017; absent: `optimizer`'s for both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critic_lr: Option<f64>,
    /// The data.
    pub data: DataConfig,
    /// Epochs asked for, if the length was given in epochs; epochs count critic batches.
    pub epochs: Option<u64>,
    /// Length, cadences, seed, device, kernels and stream table (at the top level of
    /// `config.json`).
    #[serde(flatten)]
    pub run: RunSettings,
}

impl WganRunConfig {
    fn base(model: &str, data: DataConfig, channels: usize) -> Self {
        Self {
            model: model.into(),
            dcgan: DcganConfig {
                channels,
                ..DcganConfig::default()
            },
            critic_norm: CriticNorm::BatchNorm,
            lipschitz: Lipschitz::WeightClipping { clip: 0.01 },
            critic: CriticSchedule::wgan(5),
            optimizer: WganOptimizer::RmsProp(RmsPropConfig::default()),
            critic_lr: None,
            data,
            epochs: None,
            run: RunSettings::new(64, LoopConfig::new(2000, 200, 500, 10)),
        }
    }

    /// The WGAN paper's settings: BatchNorm critic, clip ±0.01, RMSprop(5e-5), 5 critic
    /// iterations (100 for the first 25 generator iterations and every 500th).
    pub fn wgan(data: DataConfig, channels: usize) -> Self {
        Self::base("wgan", data, channels)
    }

    /// The WGAN-GP paper's settings: layer-norm critic, λ = 10, Adam(1e-4, 0.5, 0.9), 5 critic
    /// iterations.
    pub fn wgan_gp(data: DataConfig, channels: usize) -> Self {
        Self {
            critic_norm: CriticNorm::LayerNorm,
            lipschitz: Lipschitz::GradientPenalty { lambda: 10.0 },
            critic: CriticSchedule::constant(5),
            optimizer: WganOptimizer::Adam(AdamConfig {
                lr: 1e-4,
                beta1: 0.5,
                beta2: 0.9,
                eps: 1e-8,
            }),
            ..Self::base("wgan-gp", data, channels)
        }
    }

    /// Whether this is the gradient-penalty variant.
    pub fn is_gp(&self) -> bool {
        matches!(self.lipschitz, Lipschitz::GradientPenalty { .. })
    }

    /// Checks the combination of settings.
    pub fn validate(&self) -> Result<()> {
        self.dcgan.validate()?;
        let err = |m: String| Err(ModelError::Config(m));
        match (self.model.as_str(), self.lipschitz) {
            ("wgan", Lipschitz::WeightClipping { clip }) if !(clip > 0.0 && clip.is_finite()) => {
                err(format!("the clipping bound must be positive, got {clip}"))
            }
            ("wgan-gp", Lipschitz::GradientPenalty { lambda }) if !(lambda >= 0.0 && lambda.is_finite()) => {
                err(format!("the penalty weight λ must be non-negative, got {lambda}"))
            }
            ("wgan-gp", Lipschitz::GradientPenalty { .. }) if self.critic_norm == CriticNorm::BatchNorm => err(
                "a gradient penalty is per sample and BatchNorm mixes samples: use layer norm or none \
                 in a WGAN-GP critic"
                    .into(),
            ),
            ("wgan", Lipschitz::WeightClipping { .. }) | ("wgan-gp", Lipschitz::GradientPenalty { .. }) => {
                if self.critic.n_critic == 0 {
                    return err("--n-critic must be at least 1".into());
                }
                if self.run.batch_size == 0 {
                    return err("the batch size must be at least 1".into());
                }
                Ok(())
            }
            (m, l) => err(format!("model {m:?} does not go with {l:?}")),
        }
    }

    /// The DCGAN run configuration that describes this run's generator (for sampling and the
    /// latent walk): `model`, `dcgan`, `data`, `batch_size`, `epochs` and `run` are this run's; the DCGAN optimizer and loss fields, which a WGAN
    /// does not have, hold DCGAN's defaults.
    pub fn generator_view(&self) -> DcganRunConfig {
        DcganRunConfig {
            model: self.model.clone(),
            dcgan: self.dcgan,
            adam_g: AdamConfig::default(),
            adam_d: AdamConfig::default(),
            step: StepConfig::default(),
            data: self.data.clone(),
            epochs: self.epochs,
            run: self.run.clone(),
            options: GanOptions::default(),
            init: Default::default(),
        }
    }
}

/// What one generator iteration (and its critic iterations) measured; one line of
/// `metrics.jsonl`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WganMetrics {
    /// Generator iterations done (1 for the first).
    pub step: u64,
    /// The epoch of the last real batch.
    pub epoch: u64,
    /// The Wasserstein estimate mean f(x) − mean f(G(z)), averaged over the critic iterations:
    /// the negated critic loss without the penalty. The number to watch; it should fall.
    pub wasserstein: f32,
    /// The gradient penalty λ·mean(‖∇f(x̂)‖ − 1)², averaged over the critic iterations (0 with
    /// weight clipping).
    pub penalty: f32,
    /// Mean ‖∇x̂ f(x̂)‖₂ (WGAN-GP only; the penalty pulls it to 1).
    pub grad_norm: Option<f32>,
    /// The critic's loss, penalty included (−wasserstein + penalty).
    pub loss_d: f32,
    /// The generator's loss −mean f(G(z)) (its level is arbitrary; watch `wasserstein`).
    pub loss_g: f32,
    /// Mean critic score on the real batches.
    pub critic_real: f32,
    /// Mean critic score on the (detached) fake batches of the critic iterations.
    pub critic_fake: f32,
    /// Critic iterations run before this generator iteration.
    pub critic_iters: u32,
}

impl StepRecord for WganMetrics {
    fn step(&self) -> u64 {
        self.step
    }
    fn values(&self) -> Vec<(&'static str, f32)> {
        let mut v = vec![("W", self.wasserstein)];
        if let Some(n) = self.grad_norm {
            v.push(("GP", self.penalty));
            v.push(("|grad|", n));
        }
        v.extend([
            ("Loss_D", self.loss_d),
            ("Loss_G", self.loss_g),
            ("f(x)", self.critic_real),
            ("f(G(z))", self.critic_fake),
        ]);
        v
    }
    fn signals(&self) -> Signals {
        Signals::Critic {
            wasserstein: self.wasserstein,
            penalty: self.penalty,
        }
    }
}

/// The generator, the critic, their variables and optimizers, and the noise source.
///
/// Generic over the networks, so that other generators and critics (the 2D toy's MLPs) train
/// with the same step: the critic is a [`DiscriminatorNet`] whose "logits" are read as raw
/// scores, one per sample (a packed discriminator cannot take a gradient penalty).
pub struct WganTrainer<G = DcganGenerator, C = WganCritic> {
    /// The generator.
    pub g: G,
    /// The critic.
    pub critic: C,
    /// The generator's variables.
    pub g_vars: VarMap,
    /// The critic's variables.
    pub c_vars: VarMap,
    /// The generator's optimizer.
    pub opt_g: Box<dyn StatefulOptimizer>,
    /// The critic's optimizer.
    pub opt_c: Box<dyn StatefulOptimizer>,
    /// Noise z and the interpolation coefficients ε.
    pub noise: SeededRng,
    /// Weight clipping or penalty.
    pub lipschitz: Lipschitz,
    /// Critic iterations per generator iteration.
    pub schedule: CriticSchedule,
    /// Fakes per generator iteration.
    pub batch_size: usize,
    /// Generator iterations done.
    pub step: u64,
    /// The device.
    pub device: Device,
    /// The base learning rates of G and the critic, which a schedule's factor multiplies.
    pub base_lr: [f64; 2],
}

impl<G, C> std::fmt::Debug for WganTrainer<G, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WganTrainer")
            .field("step", &self.step)
            .field("lipschitz", &self.lipschitz)
            .field("schedule", &self.schedule)
            .finish()
    }
}

/// Whether a critic variable is a trained parameter (not a BatchNorm running statistic).
fn is_parameter(name: &str) -> bool {
    !(name.ends_with("running_mean") || name.ends_with("running_var"))
}

impl DiscriminatorNet for WganCritic {
    fn logits(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_t(xs, train)
    }
}

impl WganTrainer {
    /// Builds a freshly initialised trainer (DCGAN initialisation from the seed) on `dev`. For
    /// WGAN-GP, turns on second-order gradients first and fails if this thread cannot have them.
    pub fn new(cfg: &WganRunConfig, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        if cfg.is_gp() {
            ensure_second_order()?;
        }
        gan_core::conv::set_fast_conv(cfg.run.fast_conv);
        let nets = GanNets::new(
            cfg.run.seed,
            dev,
            dcgan_init,
            |vb| DcganGenerator::new(&cfg.dcgan, vb),
            |vb| WganCritic::new(&cfg.dcgan, cfg.critic_norm, vb),
        )?;
        let parts = WganParts {
            optimizers: cfg.optimizers(),
            lipschitz: cfg.lipschitz,
            schedule: cfg.critic,
            batch_size: cfg.run.batch_size,
            noise: SeededRng::with_stream(cfg.run.seed, stream::NOISE),
        };
        WganTrainer::from_parts(nets.g, nets.d, nets.g_vars, nets.d_vars, parts, dev)
    }
}

/// The training settings [`WganTrainer::from_parts`] takes besides the networks.
#[derive(Debug)]
pub struct WganParts {
    /// The generator's and the critic's optimizers.
    pub optimizers: [WganOptimizer; 2],
    /// Weight clipping or penalty.
    pub lipschitz: Lipschitz,
    /// Critic iterations per generator iteration.
    pub schedule: CriticSchedule,
    /// Fakes per generator iteration.
    pub batch_size: usize,
    /// Noise z and the interpolation coefficients ε.
    pub noise: SeededRng,
}

impl<G: GeneratorNet, C: DiscriminatorNet> WganTrainer<G, C> {
    /// A trainer for networks already built and initialised, whose variables are `g_vars` and
    /// `c_vars`. For a gradient penalty, turns on second-order gradients first and fails if this
    /// thread cannot have them; with weight clipping, clips the critic at once.
    pub fn from_parts(
        g: G,
        critic: C,
        g_vars: VarMap,
        c_vars: VarMap,
        parts: WganParts,
        dev: &Device,
    ) -> Result<Self> {
        if let Lipschitz::GradientPenalty { .. } = parts.lipschitz {
            ensure_second_order()?;
        }
        let mut trainer = Self {
            opt_g: parts.optimizers[0].build(&g_vars)?,
            opt_c: parts.optimizers[1].build(&c_vars)?,
            g,
            critic,
            g_vars,
            c_vars,
            noise: parts.noise,
            lipschitz: parts.lipschitz,
            schedule: parts.schedule,
            batch_size: parts.batch_size,
            step: 0,
            device: dev.clone(),
            base_lr: parts.optimizers.map(|o| o.lr()),
        };
        trainer.clip()?; // the paper's critic starts inside the box too
        Ok(trainer)
    }

    /// Clamps every critic parameter to ±clip (weight clipping only).
    pub fn clip(&mut self) -> Result<()> {
        let Lipschitz::WeightClipping { clip } = self.lipschitz else {
            return Ok(());
        };
        for (name, var) in self
            .c_vars
            .data()
            .lock()
            .expect("the variable map is not poisoned")
            .iter()
        {
            if is_parameter(name) {
                var.set(&var.as_tensor().clamp(-clip, clip)?)?;
            }
        }
        Ok(())
    }

    fn noise_batch(&mut self, n: usize) -> Result<Tensor> {
        Ok(self
            .noise
            .randn((n, self.g.latent_dim()), 0.0, 1.0, &self.device)?)
    }

    /// One generator iteration and the critic iterations before it, taking real batches from
    /// `data`.
    fn wgan_step(&mut self, data: &mut crate::engine::Batches<'_>) -> Result<WganMetrics> {
        let iters = self.schedule.iters_at(self.step);
        let (mut sum_real, mut sum_fake, mut sum_pen, mut sum_norm) = (0f64, 0f64, 0f64, 0f64);
        let mut epoch = 0;
        for _ in 0..iters {
            let batch = data.next_batch(self.step + 1)?;
            epoch = batch.epoch as u64;
            let real = batch.items;
            let z = self.noise_batch(real.dim(0)?)?;
            let fake = self.g.generate(&z, true)?.detach();
            let real_out = self.critic.logits(&real, true)?;
            let fake_out = self.critic.logits(&fake, true)?;
            let mut loss = wasserstein_critic_loss(&real_out, &fake_out)?;
            if let Lipschitz::GradientPenalty { lambda } = self.lipschitz {
                let critic = &self.critic;
                let p = gradient_penalty(
                    |xs| critic.logits(xs, true).map_err(to_candle),
                    &real,
                    &fake,
                    &mut self.noise,
                    lambda,
                )?;
                sum_pen += p.value.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                sum_norm += p.mean_grad_norm as f64;
                loss = (loss + p.value)?;
            }
            self.opt_c.backward_step(&loss)?;
            self.clip()?;
            sum_real += mean_f64(&real_out)?;
            sum_fake += mean_f64(&fake_out)?;
        }
        let z = self.noise_batch(self.batch_size)?;
        let fake = self.g.generate(&z, true)?;
        // Only G's optimizer steps: the critic's parameters are constants here.
        let out = {
            let _frozen = gan_core::freeze::freeze_params();
            self.critic.logits(&fake, true)?
        };
        let loss_g = wasserstein_generator_loss(&out)?;
        self.opt_g.backward_step(&loss_g)?;
        self.step += 1;
        let n = iters.max(1) as f64;
        let (real, fake, pen) = (sum_real / n, sum_fake / n, sum_pen / n);
        Ok(WganMetrics {
            step: self.step,
            epoch,
            wasserstein: (real - fake) as f32,
            penalty: pen as f32,
            grad_norm: matches!(self.lipschitz, Lipschitz::GradientPenalty { .. })
                .then_some((sum_norm / n) as f32),
            loss_d: (fake - real + pen) as f32,
            loss_g: loss_g.to_dtype(DType::F32)?.to_scalar::<f32>()?,
            critic_real: real as f32,
            critic_fake: fake as f32,
            critic_iters: iters as u32,
        })
    }
}

impl<G: GeneratorNet, C: DiscriminatorNet> Trainer for WganTrainer<G, C> {
    type Batch = gan_data::Batch;
    type Metrics = WganMetrics;

    crate::engine::trainer_fields!(step: step, device: device, noise: noise);
    fn train_step(&mut self, data: &mut crate::engine::Batches<'_>) -> Result<WganMetrics> {
        self.wgan_step(data)
    }
    fn items(&self, m: &WganMetrics) -> usize {
        m.critic_iters as usize * self.batch_size
    }
    crate::engine::trainer_parts! {
        "generator", "generator" => g_vars, opt_g;
        "critic", "critic" => c_vars, opt_c;
        base_lrs: base_lr
    }
    fn generator(&self) -> Option<&dyn GeneratorNet> {
        Some(&self.g)
    }
}

pub(crate) fn to_candle(e: ModelError) -> candle_core::Error {
    match e {
        ModelError::Candle(e) => e,
        e => candle_core::Error::Msg(e.to_string()),
    }
}

fn mean_f64(xs: &Tensor) -> Result<f64> {
    Ok(xs
        .detach()
        .to_dtype(DType::F64)?
        .mean_all()?
        .to_scalar::<f64>()?)
}

/// The fixed noise batch of the sample grids, drawn once from the seed.
pub fn fixed_noise(cfg: &WganRunConfig, dev: &Device) -> Result<Tensor> {
    let mut rng = SeededRng::with_stream(cfg.run.seed, stream::FIXED_NOISE);
    Ok(rng.randn((GRID_SAMPLES, cfg.dcgan.nz), 0.0, 1.0, dev)?)
}

impl crate::dcgan_run::ImageGan for WganRunConfig {
    type Trainer = WganTrainer;
    fn settings(&self) -> &RunSettings {
        &self.run
    }
    fn trainer(&self, _resume: bool, dev: &Device) -> Result<WganTrainer> {
        WganTrainer::new(self, dev)
    }
    fn grid_writer(&self, dev: &Device) -> Result<crate::dcgan_run::GridWriter<WganTrainer>> {
        let noise = fixed_noise(self, dev)?;
        Ok(Box::new(move |t: &WganTrainer, p: &Path| {
            save_grid(&t.g.forward_t(&noise, false)?, 8, p)
        }))
    }
}

/// Generator iterations for `epochs` passes over `items` real images: each generator iteration
/// consumes `n_critic` batches (the bursts of the WGAN schedule are not counted).
pub fn steps_for_epochs(epochs: u64, items: usize, batch_size: usize, n_critic: usize) -> u64 {
    let batches = (items / batch_size.max(1)).max(1) as u64;
    (epochs * batches / n_critic.max(1) as u64).max(1)
}
