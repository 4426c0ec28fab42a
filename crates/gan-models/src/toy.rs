//! The 2D toy GAN: MLP generator and discriminator for points in the plane, trained by the
//! engine's loop ([`crate::engine::fit`]) on `ring8`, `grid25` or `ring` ([`ToyDistribution`]).
//!
//! The discriminator can be *packed* (PacGAN, Lin et al. 2018): with `pack = K` it sees K
//! samples concatenated, `[b, 2]` reshaped to `[b/K, 2K]`, all real or all generated, and gives
//! one logit per pack. A generator that drops modes produces packs whose joint statistics differ
//! from real packs far more than single samples differ, so packing penalises mode collapse.
//!
//! During training, every `sample_every` steps and at the end, [`train_toy`] draws
//! [`ToyConfig::eval_samples`] points from a fixed noise batch, writes a scatter plot of real
//! (grey) and generated (blue) points under `samples/`, and for mixtures appends the mode
//! metrics of [`gan_core::metrics`] to `metrics.jsonl` as an [`EvalRecord`]. For `ring` the plot
//! also shows the noise beside its image under G, each z coloured by its angle, as in the
//! classic illustration of a generator mapping a bivariate Gaussian onto a ring.
//!
//! ```no_run
//! use gan_data::ToyDistribution;
//! use gan_models::run::RunDir;
//! use gan_models::toy::{train_toy, ToyConfig};
//! use gan_models::train::Silent;
//! let cfg = ToyConfig::new(ToyDistribution::Ring8);
//! let run = RunDir::create("runs/toy-ring8", &cfg)?;
//! let out = train_toy(&run, &cfg, false, &mut Silent)?;
//! println!("{:?}", out.modes);
//! # Ok::<(), gan_models::ModelError>(())
//! ```

use crate::train::on_fresh_vars;
use std::path::Path;
use std::str::FromStr;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};
use gan_core::init::pytorch_default_init;
use gan_core::loss::GeneratorLoss;
use gan_core::metrics::{mode_metrics, ModeMetrics};
use gan_core::optim::AdamConfig;
use gan_core::rng::SeededRng;
use gan_data::{Batcher, ToyDistribution};
use serde::{Deserialize, Serialize};

use crate::dcgan_run::parse_device;
use crate::engine::{
    fit, FitConfig, FitOutcome, LrSchedule, Part, PartMut, Signals, StepRecord, Trainer,
};
use crate::error::{ModelError, Result};
use crate::plot::{hue, scatter_png, Colors, Layer, Panel, FAKE, MODE, REAL};
use crate::registry::RunConfig;
use crate::run::{write_atomic, RunDir};
use crate::streams as stream;
use crate::train::{
    load_vars, DiscriminatorNet, GanNets, GanTrainer, GeneratorNet, LoopConfig, Observer,
    StepConfig, StepMetrics,
};
use crate::wgan::{CriticSchedule, Lipschitz, WganMetrics, WganOptimizer, WganParts, WganTrainer};

/// The nonlinearity between the layers of an MLP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// max(x, 0). The default: its flat half lets the generator map whole regions of noise onto
    /// one mode, which leaky ReLU cannot (with it the generated points stay spread along the ring).
    #[default]
    Relu,
    /// max(x, 0.2·x).
    LeakyRelu,
    /// tanh(x).
    Tanh,
}

impl Activation {
    /// All activations, in the order of their names.
    pub const ALL: [Activation; 3] = [Self::Relu, Self::LeakyRelu, Self::Tanh];

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::LeakyRelu => "leaky-relu",
            Self::Tanh => "tanh",
        }
    }

    /// Applies the activation elementwise.
    pub fn apply(self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Relu => xs.relu()?,
            Self::LeakyRelu => xs.maximum(&(xs * 0.2)?)?,
            Self::Tanh => xs.tanh()?,
        })
    }
}

impl FromStr for Activation {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        gan_data::names::find_by_name(&Self::ALL, Self::name, "activation", s)
            .map_err(ModelError::Config)
    }
}

/// The objective of the toy GAN. An enum rather than [`GeneratorLoss`] so that objectives with
/// a different discriminator step (WGAN-GP's critic and gradient penalty) can join it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToyLoss {
    /// Cross-entropy discriminator; the generator minimises −log D(G(z)).
    #[default]
    NonSaturating,
    /// Cross-entropy discriminator; the generator minimises log(1 − D(G(z))).
    Minimax,
    /// WGAN-GP: the discriminator is a critic with a gradient penalty ([`crate::wgan`]), trained
    /// [`ToyCritic::n_critic`] times per generator step; needs `pack = 1`.
    WganGp,
}

impl ToyLoss {
    /// All objectives, in the order of their names.
    pub const ALL: [ToyLoss; 3] = [Self::NonSaturating, Self::Minimax, Self::WganGp];

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Self::NonSaturating => "non-saturating",
            Self::Minimax => "minimax",
            Self::WganGp => "wgan-gp",
        }
    }

    /// The settings of the cross-entropy step of [`GanTrainer::step_on`] (`None` for
    /// WGAN-GP, which trains with [`WganTrainer`]).
    pub fn step_config(self) -> Option<StepConfig> {
        let loss = match self {
            Self::NonSaturating => GeneratorLoss::NonSaturating,
            Self::Minimax => GeneratorLoss::Minimax,
            Self::WganGp => return None,
        };
        Some(StepConfig {
            loss,
            real_label: 1.0,
        })
    }
}

impl FromStr for ToyLoss {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        gan_data::names::find_by_name(&Self::ALL, Self::name, "loss", s).map_err(ModelError::Config)
    }
}

/// The shape of an MLP: `depth` hidden layers of `width` units, each followed by `activation`,
/// then a linear output layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Units per hidden layer.
    pub width: usize,
    /// Hidden layers (at least 1).
    pub depth: usize,
    /// The nonlinearity after each hidden layer.
    pub activation: Activation,
}

impl MlpConfig {
    /// The shape in words, e.g. `3x64 relu` (hidden layers × units, activation).
    pub fn describe(&self) -> String {
        format!("{}x{} {}", self.depth, self.width, self.activation.name())
    }
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            width: 128,
            depth: 3,
            activation: Activation::Relu,
        }
    }
}

/// A multilayer perceptron: hidden layers `layers.0` .. `layers.{depth-1}` and the output layer
/// `layers.{depth}`, each a [`Linear`] with weight and bias.
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
}

impl Mlp {
    /// An MLP from `input` to `output` features with the hidden layers of `cfg`.
    pub fn new(cfg: &MlpConfig, input: usize, output: usize, vb: VarBuilder) -> Result<Self> {
        if cfg.width == 0 || cfg.depth == 0 {
            return Err(ModelError::Config(format!(
                "an MLP needs width and depth of at least 1 (got width {}, depth {})",
                cfg.width, cfg.depth
            )));
        }
        let vb = vb.pp("layers");
        let mut layers = Vec::with_capacity(cfg.depth + 1);
        let mut fan_in = input;
        for i in 0..cfg.depth {
            layers.push(candle_nn::linear(fan_in, cfg.width, vb.pp(i))?);
            fan_in = cfg.width;
        }
        layers.push(candle_nn::linear(fan_in, output, vb.pp(cfg.depth))?);
        Ok(Self {
            layers,
            activation: cfg.activation,
        })
    }

    /// # Shapes
    /// `[batch, input]` → `[batch, output]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (last, hidden) = self
            .layers
            .split_last()
            .expect("an MLP has an output layer");
        let mut xs = xs.clone();
        for layer in hidden {
            xs = self.activation.apply(&layer.forward(&xs)?)?;
        }
        Ok(last.forward(&xs)?)
    }
}

/// The toy generator: an MLP from noise to the plane, with a linear output multiplied by a
/// fixed scale.
#[derive(Clone, Debug)]
pub struct MlpGenerator {
    mlp: Mlp,
    nz: usize,
    scale: f64,
}

impl MlpGenerator {
    /// A generator from `nz`-dimensional noise whose output is multiplied by `scale` (see
    /// [`ToyConfig::scale`]); weights under `vb` as `layers.N.{weight,bias}`.
    pub fn new(cfg: &MlpConfig, nz: usize, scale: f64, vb: VarBuilder) -> Result<Self> {
        if nz == 0 {
            return Err(ModelError::Config(
                "the noise needs at least one dimension".into(),
            ));
        }
        Ok(Self {
            mlp: Mlp::new(cfg, nz, 2, vb)?,
            nz,
            scale,
        })
    }

    /// # Shapes
    /// `[batch, nz]` → `[batch, 2]`.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        Ok((self.mlp.forward(z)? * self.scale)?)
    }
}

impl GeneratorNet for MlpGenerator {
    fn generate(&self, z: &Tensor, _train: bool) -> Result<Tensor> {
        self.forward(z)
    }
    fn latent_dim(&self) -> usize {
        self.nz
    }
}

/// The toy discriminator: an MLP from `pack` concatenated points, divided by a fixed scale, to
/// one logit.
#[derive(Clone, Debug)]
pub struct MlpDiscriminator {
    mlp: Mlp,
    pack: usize,
    scale: f64,
}

impl MlpDiscriminator {
    /// A discriminator of packs of `pack` points (1: no packing) whose input is divided by `scale`
    /// (see [`ToyConfig::scale`]).
    pub fn new(cfg: &MlpConfig, pack: usize, scale: f64, vb: VarBuilder) -> Result<Self> {
        if pack == 0 {
            return Err(ModelError::Config("--pack must be at least 1".into()));
        }
        Ok(Self {
            mlp: Mlp::new(cfg, 2 * pack, 1, vb)?,
            pack,
            scale,
        })
    }

    /// Points per pack.
    pub fn pack(&self) -> usize {
        self.pack
    }

    /// One logit per pack of consecutive points: rows `K·i .. K·i + K` form pack i.
    ///
    /// # Shapes
    /// `[batch, 2]` → `[batch / pack]`; `batch` must be a multiple of `pack`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, d) = xs.dims2()?;
        if b % self.pack != 0 {
            return Err(ModelError::Config(format!(
                "a batch of {b} points does not split into packs of {}",
                self.pack
            )));
        }
        let packed = (xs.reshape((b / self.pack, d * self.pack))? / self.scale)?; // [b/K, 2K]
        Ok(self.mlp.forward(&packed)?.squeeze(1)?)
    }
}

impl DiscriminatorNet for MlpDiscriminator {
    fn logits(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        self.forward(xs)
    }
}

/// Everything that defines a toy run; saved as `config.json` before training starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyConfig {
    /// Always `"toy"`.
    pub model: String,
    /// `ring8`, `grid25` or `ring`.
    pub dist: String,
    /// Dimensions of the noise z ~ N(0, I).
    pub nz: usize,
    /// The generator's hidden layers.
    pub generator: MlpConfig,
    /// The discriminator's hidden layers.
    pub discriminator: MlpConfig,
    /// The unit of the networks' coordinates: G's output is multiplied by it and D's input divided
    /// by it, so that both work on data of about unit size whatever the distribution's extent
    /// (`grid25` spans ±4).
    pub scale: f64,
    /// Points per discriminator input (PacGAN's packing; 1 for none).
    pub pack: usize,
    /// The objective.
    pub loss: ToyLoss,
    /// The critic's settings (WGAN-GP only).
    #[serde(default)]
    pub critic: ToyCritic,
    /// The generator's optimizer.
    pub adam_g: AdamConfig,
    /// The discriminator's optimizer.
    pub adam_d: AdamConfig,
    /// Step decay of both learning rates.
    pub lr_decay: LrDecay,
    /// Points per batch (a multiple of `pack`).
    pub batch_size: usize,
    /// Size of the training set drawn from the distribution.
    pub train_points: usize,
    /// Generated points per evaluation and plot (PacGAN evaluates 2,500).
    pub eval_samples: usize,
    /// Length, logging, evaluation (`sample_every`) and checkpointing.
    pub schedule: LoopConfig,
    /// The seed of every random stream (weights, noise, data, batch order).
    pub seed: u64,
    /// The device (`cpu`, `cuda:0`, `metal`).
    pub device: String,
    /// The version of the random-stream table ([`crate::streams`]; 1 for runs written before it).
    #[serde(default = "stream::legacy")]
    pub streams: u32,
}

impl ToyConfig {
    /// The defaults of `gan-cli train toy --dist <dist>`, tuned to reach the issue's targets in
    /// under two minutes on two CPU cores.
    ///
    /// - `ring8` and `ring`: MLPs of 3 × 128 ReLU units, pack 2, batch 256, Adam 3e-3 (β1 0.5),
    ///   7,000 steps with the rates divided by 10 at 50 % and 75 %.
    /// - `grid25`: a generator of 3 × 64 ReLU units and a discriminator of 3 × 128, pack 3, batch
    ///   378, scale 4, Adam 1e-3, 40,000 steps with the rates divided by 10 at 70 % and 90 %.
    ///   Small networks and many steps cover more modes for the same time; pack 3 covers more
    ///   modes than pack 2, and concentrates the samples on them faster than pack 4. With a
    ///   discriminator as narrow as the generator and batch 126 (60,000 steps), some seeds left
    ///   bridges of samples between modes (72 % and 63 % high quality on seeds 3 and 4); the
    ///   wider discriminator removes them, and the larger batch (almost free at this size) keeps
    ///   the rarest modes from being dropped at the end (23/25 on seed 0 with batch 126).
    pub fn new(dist: ToyDistribution) -> Self {
        let grid = dist == ToyDistribution::Grid25;
        let mlp = MlpConfig {
            width: if grid { 64 } else { 128 },
            ..MlpConfig::default()
        };
        let lr = if grid { 1e-3 } else { 3e-3 };
        let adam = AdamConfig {
            lr,
            ..AdamConfig::default()
        };
        let steps = if grid { 40_000 } else { 7_000 };
        Self {
            model: "toy".into(),
            dist: dist.name().into(),
            nz: 2,
            scale: if grid { 4.0 } else { 1.0 },
            generator: mlp,
            discriminator: MlpConfig { width: 128, ..mlp },
            pack: if grid { 3 } else { 2 },
            loss: ToyLoss::NonSaturating,
            critic: ToyCritic::default(),
            adam_g: adam,
            adam_d: adam,
            lr_decay: if grid {
                LrDecay {
                    milestones: vec![0.7, 0.9],
                    gamma: 0.1,
                }
            } else {
                LrDecay::default()
            },
            batch_size: if grid { 378 } else { 256 },
            train_points: 100_000,
            eval_samples: 2500,
            schedule: LoopConfig {
                steps,
                sample_every: steps / 10,
                checkpoint_every: steps / 4,
                log_every: if grid { 50 } else { 10 },
                on_divergence: Default::default(),
            },
            seed: 0,
            device: "cpu".into(),
            streams: stream::CURRENT,
        }
    }

    /// The defaults for `dist` trained with `loss`. For WGAN-GP: no packing (the penalty is per
    /// sample), batch 256, Adam with the WGAN-GP paper's β1 0.5, β2 0.9 but a rate of 1e-3 (its
    /// 1e-4 needs ten times the steps), 5 critic iterations, penalty weight λ = 0.1 (the paper's
    /// toy experiments), the rates divided by 10 at 70 % and 90 % of a run of 8,000 steps
    /// (3,000 for `ring8` and `ring`).
    pub fn with_loss(dist: ToyDistribution, loss: ToyLoss) -> Self {
        let mut cfg = Self::new(dist);
        cfg.loss = loss;
        if loss == ToyLoss::WganGp {
            let adam = AdamConfig {
                lr: 1e-3,
                beta1: 0.5,
                beta2: 0.9,
                ..AdamConfig::default()
            };
            cfg.pack = 1;
            cfg.discriminator = cfg.generator;
            cfg.batch_size = 256;
            cfg.adam_g = adam;
            cfg.adam_d = adam;
            cfg.lr_decay = LrDecay {
                milestones: vec![0.7, 0.9],
                gamma: 0.1,
            };
            let steps = if dist == ToyDistribution::Grid25 {
                8_000
            } else {
                3_000
            };
            cfg.schedule = LoopConfig {
                steps,
                sample_every: steps / 10,
                checkpoint_every: steps / 4,
                ..cfg.schedule
            };
        }
        cfg
    }

    /// The distribution named by `dist`.
    pub fn distribution(&self) -> Result<ToyDistribution> {
        self.dist
            .parse()
            .map_err(|e: gan_data::DataError| ModelError::Config(e.to_string()))
    }

    /// Checks the settings that would otherwise fail in the middle of training.
    pub fn validate(&self) -> Result<()> {
        self.distribution()?;
        let bad = |msg: String| Err(ModelError::Config(msg));
        if self.model != "toy" {
            return bad(format!("model is {:?}, not \"toy\"", self.model));
        }
        if self.nz == 0 {
            return bad("nz must be at least 1".into());
        }
        for (name, m) in [
            ("generator", &self.generator),
            ("discriminator", &self.discriminator),
        ] {
            if m.width == 0 || m.depth == 0 {
                return bad(format!("the {name} needs width and depth of at least 1"));
            }
        }
        if !(self.scale > 0.0 && self.scale.is_finite()) {
            return bad(format!("scale must be positive, not {}", self.scale));
        }
        if self.pack == 0 {
            return bad("pack must be at least 1".into());
        }
        if self.loss == ToyLoss::WganGp {
            if self.pack != 1 {
                return bad(format!(
                    "wgan-gp needs pack 1 (the gradient penalty is per sample), not {}",
                    self.pack
                ));
            }
            let c = &self.critic;
            if c.n_critic == 0 || !(c.lambda >= 0.0 && c.lambda.is_finite()) {
                return bad("wgan-gp needs n_critic of at least 1 and a finite lambda >= 0".into());
            }
        }
        if self.batch_size == 0 || self.batch_size % self.pack != 0 {
            return bad(format!(
                "batch size {} is not a positive multiple of pack {}",
                self.batch_size, self.pack
            ));
        }
        if self.train_points < self.batch_size {
            return bad(format!(
                "{} training points cannot fill a batch of {}",
                self.train_points, self.batch_size
            ));
        }
        let decay = &self.lr_decay;
        let gamma_ok = decay.gamma.is_finite() && decay.gamma > 0.0;
        if !gamma_ok || decay.milestones.iter().any(|f| !(0.0..1.0).contains(f)) {
            return bad("lr_decay needs gamma > 0 and milestones in [0, 1)".into());
        }
        if self.eval_samples == 0 {
            return bad("eval_samples must be at least 1".into());
        }
        Ok(())
    }
}

/// The WGAN-GP critic's settings of a toy run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyCritic {
    /// Critic iterations per generator step (the paper's 5).
    pub n_critic: usize,
    /// The penalty weight λ (0.1 in the paper's toy experiments, 10 for images).
    pub lambda: f64,
}

impl Default for ToyCritic {
    fn default() -> Self {
        Self {
            n_critic: 5,
            lambda: 0.1,
        }
    }
}

/// Step decay of the learning rates (PyTorch's `MultiStepLR`): at each milestone both rates are
/// multiplied by `gamma`.
///
/// Adam's steps stay about `lr` in size however small the gradients get, so at a constant rate the
/// generated points keep jittering by more than the 3σ of a `ring8` mode (0.03); decaying the rate
/// late in training lets them settle onto the modes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrDecay {
    /// Milestones as fractions of `schedule.steps`, in (0, 1).
    pub milestones: Vec<f64>,
    /// Factor applied at each milestone.
    pub gamma: f64,
}

impl Default for LrDecay {
    fn default() -> Self {
        Self {
            milestones: vec![0.5, 0.75],
            gamma: 0.1,
        }
    }
}

impl LrDecay {
    /// None: constant rates.
    pub fn none() -> Self {
        Self {
            milestones: Vec::new(),
            gamma: 1.0,
        }
    }

    /// The milestone steps of a run of `steps` steps, sorted, inside (0, steps).
    pub fn milestone_steps(&self, steps: u64) -> Vec<u64> {
        let mut m: Vec<u64> = self
            .milestones
            .iter()
            .map(|f| (f * steps as f64).round() as u64)
            .filter(|&s| s > 0 && s < steps)
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    }

    /// The factor on the base rates at `step` of a run of `steps` steps.
    pub fn factor(&self, step: u64, steps: u64) -> f64 {
        let passed = self
            .milestone_steps(steps)
            .iter()
            .filter(|&&m| m <= step)
            .count();
        self.gamma.powi(passed as i32)
    }
}

/// One evaluation logged in `metrics.jsonl`: the step and the mode metrics, flattened.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// The step evaluated.
    pub step: u64,
    /// Mode coverage of [`ToyConfig::eval_samples`] generated points.
    #[serde(flatten)]
    pub modes: ModeMetrics,
}

/// The toy trainer type.
pub type ToyTrainer = GanTrainer<MlpGenerator, MlpDiscriminator>;

/// Builds the generator alone with its variables (for sampling).
pub fn build_generator(cfg: &ToyConfig, dev: &Device) -> Result<(MlpGenerator, VarMap)> {
    on_fresh_vars(dev, |vb| {
        MlpGenerator::new(&cfg.generator, cfg.nz, cfg.scale, vb)
    })
}

/// Builds a freshly initialised trainer (PyTorch's default initialisation from the seed).
pub fn build_trainer(cfg: &ToyConfig, dev: &Device) -> Result<ToyTrainer> {
    cfg.validate()?;
    let nets = GanNets::new(
        cfg.seed,
        dev,
        pytorch_default_init,
        |vb| MlpGenerator::new(&cfg.generator, cfg.nz, cfg.scale, vb),
        |vb| MlpDiscriminator::new(&cfg.discriminator, cfg.pack, cfg.scale, vb),
    )?;
    let step = cfg.loss.step_config().ok_or_else(|| {
        ModelError::Config("a wgan-gp toy run trains with build_wgan_trainer".into())
    })?;
    GanTrainer::new(
        nets,
        [cfg.adam_g, cfg.adam_d],
        SeededRng::with_stream(cfg.seed, stream::NOISE),
        step,
        dev,
    )
}

/// The toy WGAN-GP trainer type: the discriminator MLP read as a critic (its logit is the score).
pub type ToyWganTrainer = WganTrainer<MlpGenerator, MlpDiscriminator>;

/// Builds a freshly initialised WGAN-GP trainer (PyTorch's default initialisation from the
/// seed). Turns on second-order gradients, so call it before this thread's first backward pass.
pub fn build_wgan_trainer(cfg: &ToyConfig, dev: &Device) -> Result<ToyWganTrainer> {
    cfg.validate()?;
    let mut gan_cfg = cfg.clone();
    gan_cfg.loss = ToyLoss::NonSaturating;
    let t = build_trainer(&gan_cfg, dev)?;
    let parts = WganParts {
        optimizers: [cfg.adam_g, cfg.adam_d].map(WganOptimizer::Adam),
        lipschitz: Lipschitz::GradientPenalty {
            lambda: cfg.critic.lambda,
        },
        schedule: CriticSchedule::constant(cfg.critic.n_critic),
        batch_size: cfg.batch_size,
        noise: t.noise,
    };
    WganTrainer::from_parts(t.g, t.d, t.g_vars, t.d_vars, parts, dev)
}

/// The metrics of a toy step: a cross-entropy GAN's or a WGAN-GP's, logged as they are.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToyMetrics {
    /// Non-saturating or minimax loss.
    Gan(StepMetrics),
    /// WGAN-GP.
    Wgan(WganMetrics),
}

impl StepRecord for ToyMetrics {
    fn step(&self) -> u64 {
        match self {
            Self::Gan(m) => m.step,
            Self::Wgan(m) => m.step,
        }
    }
    fn values(&self) -> Vec<(&'static str, f32)> {
        match self {
            Self::Gan(m) => m.values(),
            Self::Wgan(m) => m.values(),
        }
    }
    fn signals(&self) -> Signals {
        match self {
            Self::Gan(m) => m.signals(),
            Self::Wgan(m) => m.signals(),
        }
    }
    fn summary(&self) -> String {
        match self {
            Self::Gan(m) => m.summary(),
            Self::Wgan(m) => m.summary(),
        }
    }
}

/// Either trainer of a toy run, so that one loop serves both objectives.
enum AnyToyTrainer {
    Gan(Box<ToyTrainer>),
    Wgan(Box<ToyWganTrainer>),
}

macro_rules! each {
    ($self:expr, $t:ident => $e:expr) => {
        match $self {
            AnyToyTrainer::Gan($t) => $e,
            AnyToyTrainer::Wgan($t) => $e,
        }
    };
}

impl Trainer for AnyToyTrainer {
    type Batch = gan_data::Batch;
    type Metrics = ToyMetrics;

    fn step(&self) -> u64 {
        each!(self, t => t.step)
    }
    fn set_step(&mut self, step: u64) {
        each!(self, t => t.step = step)
    }
    fn train_step(&mut self, data: &mut crate::engine::Batches<'_>) -> Result<ToyMetrics> {
        Ok(match self {
            Self::Gan(t) => ToyMetrics::Gan(t.train_step(data)?),
            Self::Wgan(t) => ToyMetrics::Wgan(t.train_step(data)?),
        })
    }
    fn items(&self, m: &ToyMetrics) -> usize {
        match (self, m) {
            (Self::Gan(t), ToyMetrics::Gan(m)) => t.items(m),
            (Self::Wgan(t), ToyMetrics::Wgan(m)) => t.items(m),
            _ => 0,
        }
    }
    fn parts(&self) -> Vec<Part<'_>> {
        each!(self, t => t.parts())
    }
    fn parts_mut(&mut self) -> Vec<PartMut<'_>> {
        each!(self, t => t.parts_mut())
    }
    fn noise_state(&self) -> Option<gan_core::rng::RngState> {
        each!(self, t => t.noise_state())
    }
    fn restore_noise(&mut self, state: &gan_core::rng::RngState) {
        each!(self, t => t.restore_noise(state))
    }
    fn base_lrs(&self) -> Vec<f64> {
        each!(self, t => t.base_lrs())
    }
    fn generator(&self) -> Option<&dyn GeneratorNet> {
        each!(self, t => t.generator())
    }
    fn device(&self) -> &Device {
        each!(self, t => Trainer::device(&**t))
    }
}

impl AnyToyTrainer {
    fn mlp_generator(&self) -> &MlpGenerator {
        each!(self, t => &t.g)
    }
}

/// The fixed noise of the evaluations and plots, `[eval_samples, nz]`, drawn once from the seed.
pub fn fixed_noise(cfg: &ToyConfig, dev: &Device) -> Result<Tensor> {
    let mut rng = SeededRng::with_stream(cfg.seed, stream::FIXED_NOISE);
    Ok(rng.randn((cfg.eval_samples, cfg.nz), 0.0, 1.0, dev)?)
}

/// Rows of a `[n, 2]` tensor as points.
pub fn to_points(xs: &Tensor) -> Result<Vec<[f32; 2]>> {
    let (_, d) = xs.dims2()?;
    if d != 2 {
        return Err(ModelError::Config(format!(
            "expected points [n, 2], got [n, {d}]"
        )));
    }
    let flat = xs.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect())
}

/// Mode metrics of `points` for `dist` (`None` for `ring`, which has no modes).
pub fn evaluate(dist: ToyDistribution, points: &[[f32; 2]]) -> Option<ModeMetrics> {
    Some(mode_metrics(points, &dist.modes()?, dist.mode_std()?))
}

/// Half the side of the square shown in plots of `dist`.
pub fn view_half_width(dist: ToyDistribution) -> f32 {
    match dist {
        ToyDistribution::Ring8 => 1.5,
        ToyDistribution::Grid25 => 5.5,
        ToyDistribution::Ring => 1.75,
    }
}

/// Writes the scatter plot of `generated` over `real` points of `dist` (mode centres marked in
/// red), titled with `step` when given and with a legend. With `noise`, the noise (first two
/// coordinates) is drawn in a panel on the left and each noise point and its image are coloured
/// by the angle of the noise point.
pub fn plot_toy(
    path: &Path,
    dist: ToyDistribution,
    real: &[[f32; 2]],
    generated: &[[f32; 2]],
    noise: Option<&[[f32; 2]]>,
    step: Option<u64>,
) -> Result<()> {
    let w = view_half_width(dist);
    let modes = dist.modes().unwrap_or_default();
    let fake_colors = match noise {
        Some(z) => Colors::PerPoint(
            z.iter()
                .map(|p| hue(p[1].atan2(p[0]) / std::f32::consts::TAU + 0.5))
                .collect(),
        ),
        None => Colors::Single(FAKE),
    };
    let mut panels = Vec::new();
    if let Some(z) = noise {
        let layer = Layer {
            points: z,
            colors: fake_colors.clone(),
            radius: 1,
            opacity: 0.8,
            label: Some("z (colour: angle)".into()),
        };
        panels.push(Panel {
            half_width: 3.5,
            layers: vec![layer],
            title: Some("noise z[0..2]".into()),
        });
    }
    let mut layers = vec![Layer {
        points: real,
        colors: Colors::Single(REAL),
        radius: 1,
        opacity: 0.5,
        label: Some("real".into()),
    }];
    if !modes.is_empty() {
        layers.push(Layer {
            points: &modes,
            colors: Colors::Single(MODE),
            radius: 2,
            opacity: 1.0,
            label: Some("mode centres".into()),
        });
    }
    layers.push(Layer {
        points: generated,
        colors: fake_colors,
        radius: 1,
        opacity: 0.8,
        label: Some(match noise {
            Some(_) => "generated (colour: z)".into(),
            None => "generated".into(),
        }),
    });
    panels.push(Panel {
        half_width: w,
        layers,
        title: step.map(|s| format!("step {s}")),
    });
    scatter_png(path, &panels, 480)
}

/// How a toy run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ToyOutcome {
    /// The training loop's outcome.
    pub fit: FitOutcome<ToyMetrics>,
    /// Mode metrics of the final generator on the fixed noise (`None` for `ring`).
    pub modes: Option<ModeMetrics>,
}

/// Trains a toy run to `cfg.schedule.steps`: a new run in `run` (whose `config.json` must already
/// be written) or, with `resume`, continuing from its `latest` checkpoint.
pub fn train_toy(
    run: &RunDir,
    cfg: &ToyConfig,
    resume: bool,
    observer: &mut dyn Observer<ToyMetrics>,
) -> Result<ToyOutcome> {
    cfg.validate()?;
    let dist = cfg.distribution()?;
    let dev = parse_device(&cfg.device)?;
    let mut trainer = match cfg.loss {
        ToyLoss::WganGp => AnyToyTrainer::Wgan(Box::new(build_wgan_trainer(cfg, &dev)?)),
        _ => AnyToyTrainer::Gan(Box::new(build_trainer(cfg, &dev)?)),
    };
    let data = dist.dataset(
        cfg.train_points,
        SeededRng::with_stream(cfg.seed, stream::TOY_DATA).next_u64(),
    )?;
    let batch_cfg = stream::batch_config(cfg.batch_size, cfg.seed, cfg.streams);
    let mut batcher = Batcher::new(&data, batch_cfg, &dev)?;
    if resume {
        crate::engine::resume(&mut trainer, &mut batcher, run, observer)?;
    }
    let noise = fixed_noise(cfg, &dev)?;
    let noise_2d = if dist == ToyDistribution::Ring && cfg.nz >= 2 {
        Some(to_points(&noise.narrow(1, 0, 2)?)?)
    } else {
        None
    };
    let real = dist.sample(
        cfg.eval_samples,
        SeededRng::with_stream(cfg.seed, stream::TOY_PLOT).next_u64(),
    );
    // Every plot also evaluates the mode metrics of the same points.
    let mut write = |t: &AnyToyTrainer, p: &Path| -> Result<()> {
        let pts = to_points(&t.mlp_generator().forward(&noise)?)?;
        if let Some(modes) = evaluate(dist, &pts) {
            run.append_metrics(&EvalRecord {
                step: t.step(),
                modes,
            })?;
        }
        plot_toy(p, dist, &real, &pts, noise_2d.as_deref(), Some(t.step()))
    };
    let fit_cfg = FitConfig {
        lr: LrSchedule::Milestones {
            steps: cfg.lr_decay.milestone_steps(cfg.schedule.steps),
            gamma: cfg.lr_decay.gamma,
        },
        ..FitConfig::new(cfg.schedule)
    };
    let outcome = fit(
        &mut trainer,
        &mut batcher,
        run,
        &fit_cfg,
        &mut write,
        observer,
    )?;
    let modes = evaluate(dist, &to_points(&trainer.mlp_generator().forward(&noise)?)?);
    Ok(ToyOutcome {
        fit: outcome,
        modes,
    })
}

/// A trained toy generator loaded from a run folder's checkpoint.
#[derive(Debug)]
pub struct LoadedToyGenerator {
    /// The network.
    pub g: MlpGenerator,
    /// The run's configuration.
    pub cfg: ToyConfig,
    /// The device it lives on.
    pub device: Device,
}

/// Loads the generator of the toy run `run` at checkpoint `name` (`latest`, `step-N`) onto `dev`.
pub fn load_toy_generator(run: &RunDir, name: &str, dev: &Device) -> Result<LoadedToyGenerator> {
    let cfg: ToyConfig = RunConfig::read_as(run, "toy")?;
    let (g, mut vars) = build_generator(&cfg, dev)?;
    let dir = run.checkpoint(name)?;
    load_vars(&mut vars, &dir.join("generator.safetensors"))?;
    Ok(LoadedToyGenerator {
        g,
        cfg,
        device: dev.clone(),
    })
}

impl LoadedToyGenerator {
    /// `n` generated points from noise drawn with `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<[f32; 2]>> {
        let mut rng = SeededRng::new(seed);
        let mut out = Vec::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let b = left.min(4096);
            let z = rng.randn((b, self.cfg.nz), 0.0, 1.0, &self.device)?;
            out.extend(to_points(&self.g.forward(&z)?)?);
            left -= b;
        }
        Ok(out)
    }
}

/// Writes `points` as a CSV file with the header `x,y` and one row per point. `path` must end
/// in `.csv` (any case): CSV text written under another extension (`x.png`) would be a file
/// that does not hold what its name says.
pub fn write_points_csv(path: &Path, points: &[[f32; 2]]) -> Result<()> {
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return Err(ModelError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "points are written as CSV text: give a path ending in .csv",
            ),
        ));
    }
    let mut text = String::with_capacity(16 * points.len() + 4);
    text.push_str("x,y\n");
    for p in points {
        text.push_str(&format!("{},{}\n", p[0], p[1]));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    }
    write_atomic(path, text.as_bytes())
}
