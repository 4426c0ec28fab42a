//! Command-line flags, parsed by clap; `main.rs` turns them into library configurations.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Train, sample and explore GANs.
#[derive(Debug, Parser)]
#[command(name = "gan-cli", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model.
    #[command(subcommand)]
    Train(TrainModel),
    /// Draw samples from a trained generator.
    Sample(SampleArgs),
    /// Walk the latent space of a trained generator.
    Interpolate(InterpolateArgs),
    /// Translate a folder of images with a trained CycleGAN.
    Translate(crate::cyclegan_cmd::TranslateArgs),
    /// Score a CycleGAN's translations of the test images: FID/KID each way, and on grey data
    /// (thin2thick) the error against the true map (the dilation).
    EvalTranslation(crate::cyclegan_cmd::EvalTranslationArgs),
    /// Score a run's generator, a folder of images or a real split (FID, IS analogue, class
    /// coverage, precision/recall).
    Eval(Box<crate::eval_cmd::EvalArgs>),
    /// Write a run's self-contained report.html.
    Report(crate::eval_cmd::ReportArgs),
}

#[derive(Debug, Subcommand)]
pub enum TrainModel {
    /// DCGAN on MNIST-like data or a folder of images.
    Dcgan(Box<TrainDcgan>),
    /// SNGAN: DCGAN's networks with spectral norm instead of BatchNorm in D, hinge loss,
    /// Adam(2e-4, β1 0, β2 0.9), 5 discriminator steps per generator step.
    Sngan(Box<TrainDcgan>),
    /// The 2D toy GAN (ring8, grid25, ring).
    Toy(Box<crate::toy_cmd::TrainToyArgs>),
    /// WGAN with weight clipping (critic = DCGAN discriminator body, linear output).
    Wgan(Box<crate::wgan_cmd::TrainWganArgs>),
    /// WGAN with gradient penalty.
    WganGp(Box<crate::wgan_cmd::TrainWganArgs>),
    /// CycleGAN: unpaired translation between the image folders trainA and trainB.
    Cyclegan(Box<crate::cyclegan_cmd::TrainCycleganArgs>),
    /// A class-conditional DCGAN (projection discriminator, ACGAN or concatenation) on
    /// labelled data: MNIST-like IDX files or an image folder with one subfolder per class.
    Cgan(Box<crate::cgan_cmd::TrainCganArgs>),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LossArg {
    /// −log D(G(z)) (strong gradients early on; the default with --classic and in cgan).
    NonSaturating,
    /// log(1 − D(G(z))), the original minimax form.
    Minimax,
    /// The hinge loss for both networks (SNGAN's; the default of dcgan and sngan).
    Hinge,
}

impl From<LossArg> for gan_core::loss::GeneratorLoss {
    fn from(l: LossArg) -> Self {
        match l {
            LossArg::NonSaturating => Self::NonSaturating,
            LossArg::Minimax => Self::Minimax,
            LossArg::Hinge => Self::Hinge,
        }
    }
}

/// The data, networks, length and cadences shared by the DCGAN-family commands (`dcgan`,
/// `wgan`, `wgan-gp`), declared once.
#[derive(Debug, Args)]
pub struct ImageGanFlags {
    /// mnist, fashion-mnist, mnist-mini, or a folder (IDX files or images). Default: mnist if
    /// fetched, else the embedded mnist-mini.
    #[arg(long, value_name = "NAME_OR_DIR")]
    pub data: Option<String>,
    /// Where named datasets live (mnist-mini and the evaluators are built in as well).
    #[arg(long, default_value = "datasets", env = "GAN_DATASETS")]
    pub datasets_dir: PathBuf,
    /// Epochs to train (default 5 when --steps is not given; wgan and wgan-gp count real
    /// batches, --n-critic of them per generator step).
    #[arg(long, conflicts_with = "steps")]
    pub epochs: Option<u64>,
    /// Steps to train (wgan and wgan-gp: generator steps, each after --n-critic critic steps).
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Image side: 28, 32 or 64.
    #[arg(long, default_value_t = 28)]
    pub image_size: usize,
    /// Channels for image folders (1 or 3). Default: what the images are (1 when every image
    /// is stored grayscale, else 3); IDX data is grayscale.
    #[arg(long, value_name = "N")]
    pub channels: Option<usize>,
    /// Length of the noise vector z.
    #[arg(long, default_value_t = 100)]
    pub nz: usize,
    /// Width of the generator (feature maps of its last hidden layer).
    #[arg(long, default_value_t = 64)]
    pub ngf: usize,
    /// Width of the discriminator or critic (feature maps of its first layer).
    #[arg(long, default_value_t = 64)]
    pub ndf: usize,
    /// Use candle's own convolutions instead of the fast CPU kernels (for comparison).
    #[arg(long)]
    pub no_fast_conv: bool,
    /// Train on at most N images, spread evenly over the dataset (every class kept when the
    /// files store class after class), as in small-data studies such as DiffAugment's.
    #[arg(long, value_name = "N")]
    pub max_items: Option<usize>,
}

impl ImageGanFlags {
    /// The run's length from `--steps` or `--epochs` (default 5 epochs): the generator steps,
    /// and the epochs when the length was given in epochs. `steps_for` turns epochs into steps.
    pub fn length(&self, steps_for: impl Fn(u64) -> u64) -> anyhow::Result<(u64, Option<u64>)> {
        Ok(match (self.steps, self.epochs) {
            (Some(_), Some(_)) => anyhow::bail!("give --steps or --epochs, not both"),
            (Some(s), None) => (s, None),
            (None, e) => {
                let e = e.unwrap_or(5);
                (steps_for(e), Some(e))
            }
        })
    }

    /// Resolves `--data` (saying which dataset the default picked) into the source, its
    /// [`DataConfig`](gan_models::dcgan_run::DataConfig) with the path made absolute (the item
    /// count still 0), and the channel count (1 for IDX data, else `--channels` or what the
    /// images are).
    pub fn data_config(
        &self,
    ) -> anyhow::Result<(
        gan_data::ImageSource,
        gan_models::dcgan_run::DataConfig,
        usize,
    )> {
        let datasets = crate::embedded::datasets_dir(&self.datasets_dir)?;
        let mut source = gan_data::ImageSource::resolve(self.data.as_deref(), &datasets)?;
        source.path = crate::absolute_data_path(&source.path);
        if self.data.is_none() {
            tracing::info!(
                "no --data given: training on {} ({})",
                source.name,
                source.path.display()
            );
        }
        let channels = match self.channels {
            Some(c) if !source.idx => c,
            _ => {
                let c = source.detect_channels()?;
                if !source.idx {
                    tracing::info!(
                        "{} channel(s), as the images in {} are stored (--channels to choose)",
                        c,
                        source.path.display()
                    );
                }
                c
            }
        };
        let data = gan_models::dcgan_run::DataConfig {
            source: source.name.clone(),
            path: source.path.clone(),
            items: 0,
            max_items: self.max_items,
        };
        Ok((source, data, channels))
    }

    /// Sets the networks' image size, noise length and widths from the flags.
    pub fn apply(&self, net: &mut gan_models::dcgan::DcganConfig) {
        net.image_size = self.image_size;
        net.nz = self.nz;
        net.ngf = self.ngf;
        net.ndf = self.ndf;
    }
}

/// Flags of `gan-cli train dcgan` and `train sngan`; unset flags take the model's defaults.
#[derive(Debug, Args)]
pub struct TrainDcgan {
    #[command(flatten)]
    pub net: ImageGanFlags,
    #[command(flatten)]
    pub lr: LrFlags,
    /// The loss (hinge; non-saturating with --classic and in cgan).
    #[arg(long, value_enum)]
    pub loss: Option<LossArg>,
    /// train dcgan: the PyTorch DCGAN example's setting (BatchNorm discriminator, non-saturating
    /// loss, Adam β1 0.5, β2 0.999) instead of the default spectral norm, hinge loss and Adam β1
    /// 0, β2 0.9. cgan always trains this way.
    #[arg(long)]
    pub classic: bool,
    /// Target for real images; 0.9 gives one-sided label smoothing (cross-entropy losses only).
    #[arg(long, default_value_t = 1.0)]
    pub real_label: f64,
    /// Start the generator from these weights instead of the seed's random initialisation: a
    /// .safetensors file with every variable of a generator of the same shape, such as
    /// RUN/checkpoints/latest/generator.safetensors (PyTorch DCGAN's --netG). New runs only.
    #[arg(long, value_name = "FILE")]
    pub init_generator: Option<std::path::PathBuf>,
    /// Start the discriminator from these weights (like --init-generator; e.g.
    /// RUN/checkpoints/latest/discriminator.safetensors; PyTorch DCGAN's --netD). New runs only.
    #[arg(long, value_name = "FILE")]
    pub init_discriminator: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub tricks: GanOptionFlags,
    #[command(flatten)]
    pub eval: crate::eval_cmd::TrainEvalArgs,
    #[command(flatten)]
    pub run: crate::args::RunFlags,
}

/// Learning rates, declared once for every `train` command (also with `--resume`): `--lr` sets
/// both networks', `--lr-g` and `--lr-d` one side's (the two time-scale update rule, TTUR:
/// Heusel et al. 2017). Unset, each keeps the model's: 2e-4 for dcgan, sngan, cgan and cyclegan,
/// 5e-5 (RMSprop) for wgan, 1e-4 for wgan-gp, 3e-3 for the toy (1e-3 for grid25 and wgan-gp).
#[derive(Debug, Clone, Args)]
pub struct LrFlags {
    /// Learning rate of both networks (all four in cyclegan).
    #[arg(long, value_name = "RATE")]
    pub lr: Option<f64>,
    /// The generator's learning rate (TTUR; default --lr).
    #[arg(long, value_name = "RATE")]
    pub lr_g: Option<f64>,
    /// The discriminator's (critic's) learning rate (TTUR; default --lr).
    #[arg(long, value_name = "RATE", alias = "d-lr")]
    pub lr_d: Option<f64>,
}

impl LrFlags {
    /// Sets the generator's rate `g` and the discriminator's `d` from the flags given: `--lr`
    /// both, then `--lr-g` and `--lr-d` their own.
    pub fn apply(&self, g: &mut f64, d: &mut f64) {
        for (rate, side) in [(self.lr_g, g), (self.lr_d, d)] {
            if let Some(lr) = rate.or(self.lr) {
                *side = lr;
            }
        }
    }
}

/// The additions to the adversarial step ([`gan_models::options::GanOptions`]) as flags.
#[derive(Debug, Args)]
pub struct GanOptionFlags {
    /// Discriminator steps per generator step (dcgan: 1, sngan: 5).
    #[arg(long, value_name = "N")]
    pub n_dis: Option<usize>,
    /// Keep an exponential moving average of the generator with this decay (e.g. 0.999) and
    /// sample from it; 0 turns the average off.
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f64>,
    /// The EMA copies the weights until this step, then averages.
    #[arg(long, value_name = "STEP")]
    pub ema_start: Option<u64>,
    /// Write sample grids and evaluate with the raw generator, not its EMA.
    #[arg(long)]
    pub raw_g: bool,
    /// DiffAugment policy for everything the discriminator sees, e.g. color,translation,cutout
    /// ("none": off).
    #[arg(long, value_name = "POLICY")]
    pub diffaug: Option<String>,
    /// R1 penalty weight γ on real images (0: off).
    #[arg(long, value_name = "GAMMA")]
    pub r1: Option<f64>,
    /// Apply R1 every this many steps (lazy regularisation, γ scaled by it).
    #[arg(long, default_value_t = 1)]
    pub r1_every: u64,
    /// Spectral norm on the discriminator's convolutions instead of BatchNorm (on in dcgan
    /// unless --classic, and in sngan).
    #[arg(long)]
    pub spectral_norm: bool,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// The run folder.
    #[arg(long)]
    pub run: PathBuf,
    #[command(flatten)]
    pub generator: GeneratorFlags,
    /// How many samples to draw.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// A .png path gets one grid; a path without extension is a folder that gets one PNG per
    /// sample (toy runs: a .csv of points). Default: a new `sample-<checkpoint>.png` (toy:
    /// `.csv`) in the run folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Class-conditional runs: the class to draw (its name, e.g. sneaker, or its number).
    /// Without it, a conditional run gives one row per class.
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
}

#[derive(Debug, Args)]
pub struct InterpolateArgs {
    /// The run folder.
    #[arg(long)]
    pub run: PathBuf,
    #[command(flatten)]
    pub generator: GeneratorFlags,
    /// The grid to write (PNG). Default: a new `walk-<checkpoint>[-dimK].png` in the run
    /// folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sweep this latent dimension; without it, interpolate between two random z per row.
    #[arg(long, value_name = "N")]
    pub dim: Option<usize>,
    /// Class-conditional runs: walk between two random z within this class (name or number).
    #[arg(long, conflicts_with_all = ["dim", "between_classes"])]
    pub class: Option<String>,
    /// Class-conditional runs: keep z and blend the class embeddings from class A to B
    /// (`A,B`: names or numbers).
    #[arg(long, conflicts_with = "dim")]
    pub between_classes: Option<String>,
    /// Images per row.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Rows: walks from different noise vectors.
    #[arg(long, default_value_t = 8)]
    pub rows: usize,
}

/// Which generator of a run, on which device, from which noise: the flags `sample`,
/// `interpolate` and `eval` share.
#[derive(Debug, Args)]
pub struct GeneratorFlags {
    /// latest or step-N.
    #[arg(long, default_value = "latest")]
    pub checkpoint: String,
    /// Use the raw generator of a run that keeps an EMA generator (by default the EMA).
    #[arg(long, requires = "run")]
    pub raw_g: bool,
    /// Seed of the generator's noise (the samples, the walks' ends).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Where a training run goes and what it starts from: the flags every `train` command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct RunFlags {
    /// Seed of every random stream (weights, noise, data order).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The run folder (default `runs/<model>`, or `runs/<model>-N` if taken).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder from its latest checkpoint.
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Keep training after a step whose losses are NaN or infinite (by default the run stops
    /// there; either way no checkpoint is written after it, so checkpoints/latest stays finite).
    #[arg(long)]
    pub keep_going: bool,
    #[command(flatten)]
    pub cadence: CadenceFlags,
}

/// How often a run writes samples, checkpoints and metrics, declared once for every `train`
/// command (also with `--resume`). Unset, each keeps the model's cadence: 200, 500 and 10 steps
/// for the image GANs (dcgan, sngan, cgan, wgan, wgan-gp), 500, 5000 and 50 for cyclegan, and
/// for the toy a tenth and a quarter of the run and 10 steps (50 for grid25).
#[derive(Debug, Clone, clap::Args)]
pub struct CadenceFlags {
    /// Write samples every N steps (a grid; the toy: its plot and mode metrics).
    #[arg(long, value_name = "N")]
    pub sample_every: Option<u64>,
    /// Write a checkpoint every N steps (`latest` is also written at the end).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Append to metrics.jsonl every N steps.
    #[arg(long, value_name = "N")]
    pub log_every: Option<u64>,
}

impl RunFlags {
    /// The folder a new run is written to: `--out`, else a fresh `runs/<base>`
    /// ([`crate::fresh_run_dir`]).
    pub fn out_dir(&self, base: &str) -> std::path::PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| crate::fresh_run_dir(base))
    }

    /// Sets in the run's schedule the cadences given, and records `--keep-going` (or its
    /// absence).
    pub fn apply_schedule(&self, s: &mut gan_models::train::LoopConfig) {
        let c = &self.cadence;
        s.sample_every = c.sample_every.unwrap_or(s.sample_every);
        s.checkpoint_every = c.checkpoint_every.unwrap_or(s.checkpoint_every);
        s.log_every = c.log_every.unwrap_or(s.log_every);
        s.on_divergence = if self.keep_going {
            gan_models::engine::OnDivergence::Continue
        } else {
            gan_models::engine::OnDivergence::Stop
        };
    }
}
