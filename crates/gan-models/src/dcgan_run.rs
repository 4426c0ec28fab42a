//! A DCGAN training run: its configuration (`config.json`), building the trainer from it,
//! resuming, sampling and the latent walk.
//!
//! SNGAN (Miyato et al. 2018) is a run of the same kind with `model` `"sngan"`
//! ([`DcganRunConfig::sngan`]): the DCGAN generator, the DCGAN discriminator with spectral
//! normalisation instead of BatchNorm, the hinge loss, Adam(2e-4, β1 0, β2 0.9) and 5
//! discriminator steps per generator step.

use crate::train::on_fresh_vars;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use gan_core::init::dcgan_init;
use gan_core::loss::GeneratorLoss;
use gan_core::optim::AdamConfig;
use gan_core::rng::SeededRng;
use gan_data::{Batcher, Dataset, ImageSource, TensorDataset};
use serde::{Deserialize, Serialize};

use crate::dcgan::{DcganConfig, DcganDiscriminator, DcganGenerator};
use crate::engine::{fit, FitConfig, FitOutcome, Trainer};
use crate::error::{ModelError, Result};
use crate::grid::save_grid;
use crate::options::GanOptions;
use crate::registry::RunConfig;
use crate::run::RunDir;
use crate::streams as stream;
use crate::train::{
    load_vars, DiscriminatorNet, GanNets, GanTrainer, GeneratorNet, LoopConfig, Observer,
    RunSettings, StepConfig,
};

/// Number of images in the fixed-noise sample grid.
pub const GRID_SAMPLES: usize = 64;

/// Where the training data comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataConfig {
    /// The name given (`mnist`, `fashion-mnist`, `mnist-mini`) or the path.
    pub source: String,
    /// The folder read.
    pub path: PathBuf,
    /// Number of training items (after [`DataConfig::max_items`]).
    pub items: usize,
    /// At most this many training items are used (`--max-items`): that many spread evenly over
    /// the dataset's order, item `i · len / max` for `i` in `0..max`, so that datasets stored
    /// class after class keep every class. `None`: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<usize>,
}

impl DataConfig {
    /// `data` cut to [`DataConfig::max_items`] (unchanged when that is `None` or not below its
    /// length).
    ///
    /// # Errors
    /// A `max_items` of 0.
    pub fn limit(&self, data: TensorDataset) -> Result<TensorDataset> {
        let len = data.len();
        match self.max_items {
            Some(0) => Err(ModelError::Config(
                "--max-items 0: a run needs at least one training item".into(),
            )),
            Some(n) if n < len => {
                let idx: Vec<usize> = (0..n).map(|i| i * len / n).collect();
                Ok(data.subset(&idx))
            }
            _ => Ok(data),
        }
    }
}

/// Everything that defines a DCGAN run; saved as `config.json` before training starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DcganRunConfig {
    /// Always `"dcgan"`.
    pub model: String,
    /// The networks.
    pub dcgan: DcganConfig,
    /// The generator's optimizer.
    pub adam_g: AdamConfig,
    /// The discriminator's optimizer.
    pub adam_d: AdamConfig,
    /// Loss settings.
    pub step: StepConfig,
    /// The data.
    pub data: DataConfig,
    /// Epochs asked for, if the length was given in epochs (`steps` is then derived from it).
    pub epochs: Option<u64>,
    /// Length, cadences, seed, device, kernels and stream table (at the top level of
    /// `config.json`).
    #[serde(flatten)]
    pub run: RunSettings,
    /// Discriminator steps, DiffAugment, R1 and the EMA generator (all off in older runs).
    #[serde(default, skip_serializing_if = "GanOptions::is_plain")]
    pub options: GanOptions,
    /// Weights a new run starts from instead of the random initialisation (absent in runs that
    /// started from the seed).
    #[serde(default, skip_serializing_if = "InitWeights::is_empty")]
    pub init: InitWeights,
}

/// The weights a new run starts from, in place of DCGAN's random initialisation: safetensors
/// files holding every variable of the network by name with its shape, such as
/// `generator.safetensors` and `discriminator.safetensors` in a run's checkpoint folder (the
/// counterpart of `--netG`/`--netD` in PyTorch's DCGAN example). Only a new run reads them; a
/// resumed run starts from its checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitWeights {
    /// The generator's weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<PathBuf>,
    /// The discriminator's (or critic's) weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discriminator: Option<PathBuf>,
}

impl InitWeights {
    /// Whether no file is named (the networks start from the seed).
    pub fn is_empty(&self) -> bool {
        self.generator.is_none() && self.discriminator.is_none()
    }

    /// Overwrites the variables of `g_vars` and `d_vars` with the named files' tensors.
    ///
    /// # Errors
    /// [`ModelError::Checkpoint`] naming the file when it cannot be read, or when its tensors
    /// are not exactly the network's variables: a missing name, a shape that differs, or a name
    /// the network does not have.
    pub fn load(&self, g_vars: &VarMap, d_vars: &VarMap) -> Result<()> {
        if let Some(p) = &self.generator {
            load_weights(g_vars, p, "generator")?;
        }
        if let Some(p) = &self.discriminator {
            load_weights(d_vars, p, "discriminator")?;
        }
        Ok(())
    }
}

/// Sets every variable of `vars` (the `network`'s) from the safetensors file `path`, which must
/// hold exactly those names with the same shapes (any float dtype; converted).
///
/// # Errors
/// [`ModelError::Checkpoint`] naming `path`: unreadable, or names missing, extra or of another
/// shape (the first few of each are listed).
pub fn load_weights(vars: &VarMap, path: &Path, network: &str) -> Result<()> {
    let err = |reason: String| ModelError::Checkpoint {
        path: path.into(),
        reason,
    };
    if !path.is_file() {
        return Err(err(format!(
            "no such file (the {network}'s starting weights: a .safetensors file)"
        )));
    }
    let file = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| err(format!("not a readable safetensors file: {e}")))?;
    let data = vars.data().lock().expect("VarMap lock");
    let mut missing = Vec::new();
    let mut shapes = Vec::new();
    for (name, var) in data.iter() {
        match file.get(name) {
            None => missing.push(name.clone()),
            Some(t) if t.dims() != var.dims() => shapes.push(format!(
                "{name}: {:?} in the file, {:?} in the network",
                t.dims(),
                var.dims()
            )),
            Some(_) => {}
        }
    }
    let mut extra: Vec<String> = file
        .keys()
        .filter(|k| !data.contains_key(*k))
        .cloned()
        .collect();
    if !(missing.is_empty() && shapes.is_empty() && extra.is_empty()) {
        let list = |what: &str, v: &mut Vec<String>| -> Option<String> {
            v.sort();
            let more = v.len().saturating_sub(4);
            (!v.is_empty()).then(|| {
                let mut s = format!("{what} {}", v[..v.len().min(4)].join(", "));
                if more > 0 {
                    s.push_str(&format!(" and {more} more"));
                }
                s
            })
        };
        let parts: Vec<String> = [
            list("missing", &mut missing),
            list("of another shape:", &mut shapes),
            list("not in the network:", &mut extra),
        ]
        .into_iter()
        .flatten()
        .collect();
        return Err(err(format!(
            "its tensors are not the {network}'s variables ({}); the file must come from a \
             network of the same kind and shape (the same --image-size, channels, --nz, --ngf \
             and --ndf), such as {network}.safetensors in a run's checkpoint folder",
            parts.join("; ")
        )));
    }
    for (name, var) in data.iter() {
        let t = file[name].to_dtype(var.dtype())?.to_device(var.device())?;
        var.set(&t)?;
    }
    Ok(())
}

impl DcganRunConfig {
    /// The PyTorch DCGAN example's setting (Radford et al. 2015) on `data` of `channels`:
    /// BatchNorm in both networks, the non-saturating loss, Adam(2e-4, β1 0.5, β2 0.999), one
    /// discriminator step per generator step, batch 64. `gan-cli train dcgan --classic` and
    /// `train cgan` start from it; `cargo xtask bench` times its step against PyTorch's.
    pub fn new(data: DataConfig, channels: usize) -> Self {
        Self {
            model: "dcgan".into(),
            dcgan: DcganConfig {
                channels,
                ..DcganConfig::default()
            },
            adam_g: AdamConfig::default(),
            adam_d: AdamConfig::default(),
            step: StepConfig::default(),
            data,
            epochs: None,
            run: RunSettings::new(64, LoopConfig::new(1000, 200, 500, 10)),
            options: GanOptions::default(),
            init: InitWeights::default(),
        }
    }

    /// The defaults of `gan-cli train dcgan`: DCGAN's networks and batch trained as SNGAN trains
    /// them (Miyato et al. 2018: spectral norm on the discriminator's convolutions instead of
    /// BatchNorm, hinge loss, Adam(2e-4, β1 0, β2 0.9)) but with one discriminator step per
    /// generator step. On mnist-mini it reached a lower FID at 1,000 and 3,000 steps than
    /// [`new`](Self::new) at the same cost per step (the table in README.md).
    pub fn tuned(data: DataConfig, channels: usize) -> Self {
        let adam = AdamConfig {
            lr: 2e-4,
            beta1: 0.0,
            beta2: 0.9,
            eps: 1e-8,
        };
        let mut cfg = Self::new(data, channels);
        cfg.dcgan.spectral_norm = true;
        cfg.adam_g = adam;
        cfg.adam_d = adam;
        cfg.step.loss = GeneratorLoss::Hinge;
        cfg
    }

    /// The defaults of `gan-cli train sngan`: the SNGAN paper's CNN setting on DCGAN's networks
    /// ([`tuned`](Self::tuned) with 5 discriminator steps per generator step).
    pub fn sngan(data: DataConfig, channels: usize) -> Self {
        let mut cfg = Self::tuned(data, channels);
        cfg.model = "sngan".into();
        cfg.options.n_dis = 5;
        cfg
    }

    /// The configuration to build the trainer from: itself for a new run; for a resumed one,
    /// without [`InitWeights`] (the checkpoint replaces every weight, and the files named when
    /// the run started need not exist any more).
    pub fn fresh_or_resumed(&self, resume: bool) -> std::borrow::Cow<'_, Self> {
        if resume && !self.init.is_empty() {
            std::borrow::Cow::Owned(Self {
                init: InitWeights::default(),
                ..self.clone()
            })
        } else {
            std::borrow::Cow::Borrowed(self)
        }
    }
}

/// The DCGAN trainer type.
pub type DcganTrainer = GanTrainer<DcganGenerator, DcganDiscriminator>;

impl GeneratorNet for DcganGenerator {
    fn generate(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_t(z, train)
    }
    fn latent_dim(&self) -> usize {
        self.config().nz
    }
}

impl DiscriminatorNet for DcganDiscriminator {
    fn logits(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_t(xs, train)
    }
    fn enable_second_order(&mut self) -> Result<()> {
        DcganDiscriminator::enable_second_order(self)
    }
    fn per_sample(&self) -> bool {
        self.has_no_batch_norm()
    }
}

/// Parses `cpu`, `cuda`, `cuda:N` or `metal` into a device.
pub fn parse_device(s: &str) -> Result<Device> {
    let built_without = |feature: &str| {
        ModelError::Config(format!(
            "--device {s}: this build has no {feature} support: rebuild with `--features \
             {feature}` (cargo build --release -p gan-cli --features {feature}, or cargo install \
             --path crates/gan-cli --features {feature})"
        ))
    };
    let cuda = |n: usize| -> Result<Device> {
        if !cfg!(feature = "cuda") {
            return Err(built_without("cuda"));
        }
        Device::new_cuda(n).map_err(|e| {
            ModelError::Config(format!(
                "--device {s}: no usable CUDA device {n} ({e}); check that an NVIDIA GPU and its \
                 driver are present (nvidia-smi lists them) and that the driver supports CUDA 13"
            ))
        })
    };
    let dev = match s {
        "cpu" => Device::Cpu,
        "metal" if !cfg!(feature = "metal") => return Err(built_without("metal")),
        "metal" => Device::new_metal(0)?,
        "cuda" => cuda(0)?,
        s => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => cuda(n)?,
            None => {
                return Err(ModelError::Config(format!(
                    "unknown device {s:?} (expected cpu, cuda, cuda:N or metal)"
                )))
            }
        },
    };
    Ok(dev)
}

/// Builds the generator alone with its variables (for sampling).
pub fn build_generator(cfg: &DcganConfig, dev: &Device) -> Result<(DcganGenerator, VarMap)> {
    on_fresh_vars(dev, |vb| DcganGenerator::new(cfg, vb))
}

/// Builds a freshly initialised trainer: DCGAN initialisation from the seed, then the weights of
/// `cfg.init` where given (the EMA generator starts as a copy of the generator).
pub fn build_trainer(cfg: &DcganRunConfig, dev: &Device) -> Result<DcganTrainer> {
    gan_core::conv::set_fast_conv(cfg.run.fast_conv);
    let nets = init_nets(
        cfg.run.seed,
        &cfg.init,
        dev,
        |vb| DcganGenerator::new(&cfg.dcgan, vb),
        |vb| DcganDiscriminator::new(&cfg.dcgan, vb),
    )?;
    GanTrainer::new(
        nets,
        [cfg.adam_g, cfg.adam_d],
        SeededRng::with_stream(cfg.run.seed, stream::NOISE),
        cfg.step,
        dev,
    )?
    .with_options(
        cfg.options.clone(),
        match cfg.options.ema {
            Some(_) => Some(build_generator(&cfg.dcgan, dev)?),
            None => None,
        },
    )
}

/// A generator and a discriminator built by `make_g` and `make_d` on fresh variables, with
/// DCGAN's initialisation from `seed` (streams [`stream::INIT_G`] and [`stream::INIT_D`]), then
/// the weights of `init` where given ([`InitWeights::load`]).
pub fn init_nets<G, D>(
    seed: u64,
    init: &InitWeights,
    dev: &Device,
    make_g: impl FnOnce(VarBuilder) -> Result<G>,
    make_d: impl FnOnce(VarBuilder) -> Result<D>,
) -> Result<GanNets<G, D>> {
    let nets = GanNets::new(seed, dev, dcgan_init, make_g, make_d)?;
    init.load(&nets.g_vars, &nets.d_vars)?;
    Ok(nets)
}

/// The fixed noise batch of the sample grids, drawn once from the seed.
pub fn fixed_noise(cfg: &DcganRunConfig, dev: &Device) -> Result<Tensor> {
    let mut rng = SeededRng::with_stream(cfg.run.seed, stream::FIXED_NOISE);
    Ok(rng.randn((GRID_SAMPLES, cfg.dcgan.nz), 0.0, 1.0, dev)?)
}

/// Loads the training data a run config names, resolving names against `datasets_dir`.
pub fn load_data(source: &ImageSource, cfg: &DcganConfig) -> Result<TensorDataset> {
    Ok(source.load_train(cfg.image_size, cfg.channels)?)
}

/// An image GAN's run configuration (DCGAN and SNGAN, WGAN and WGAN-GP, the class-conditional
/// GAN): what [`train_image_gan`] needs to build its trainer and draw its sample grids.
pub trait ImageGan {
    /// The model's trainer; its batches are images (with their labels, where the data has them).
    type Trainer: Trainer<Batch = gan_data::Batch>;
    /// Batch size, length, cadences, seed, device, kernels and stream table.
    fn settings(&self) -> &RunSettings;
    /// Checks the training data against the configuration (default: nothing to check).
    fn check_data(&self, _data: &TensorDataset) -> Result<()> {
        Ok(())
    }
    /// A freshly initialised trainer on `dev` (for a resumed run, the checkpoint then replaces
    /// its state).
    fn trainer(&self, resume: bool, dev: &Device) -> Result<Self::Trainer>;
    /// Writes a sample grid of the trainer's generator (fixed noise from the seed) to a path.
    fn grid_writer(&self, dev: &Device) -> Result<GridWriter<Self::Trainer>>;
}

/// Draws a trainer's sample grid to a PNG path ([`ImageGan::grid_writer`]).
pub type GridWriter<T> = Box<dyn FnMut(&T, &Path) -> Result<()>>;

/// Trains an image GAN run to its `schedule.steps`: a new run in `run` (whose `config.json` must
/// already be written; [`REAL_GRID`] is written first) or, with `resume`, continuing from its
/// `latest` checkpoint. WGAN-GP and R1 need second-order gradients: call it on a thread that has
/// not yet run a backward pass (see [`gan_core::penalty::ensure_second_order`]).
pub fn train_image_gan<C: ImageGan>(
    run: &RunDir,
    cfg: &C,
    data: &TensorDataset,
    resume: bool,
    observer: &mut dyn Observer<<C::Trainer as Trainer>::Metrics>,
) -> Result<FitOutcome<<C::Trainer as Trainer>::Metrics>> {
    let s = cfg.settings();
    let dev = parse_device(&s.device)?;
    cfg.check_data(data)?;
    let mut trainer = cfg.trainer(resume, &dev)?;
    let mut write = cfg.grid_writer(&dev)?;
    let mut batcher = Batcher::new(data, s.batch_config(), &dev)?;
    if resume {
        crate::engine::resume(&mut trainer, &mut batcher, run, observer)?;
    } else {
        save_real_grid(run, data, observer)?;
    }
    let plan = FitConfig::new(s.schedule);
    fit(&mut trainer, &mut batcher, run, &plan, &mut write, observer)
}

impl ImageGan for DcganRunConfig {
    type Trainer = DcganTrainer;
    fn settings(&self) -> &RunSettings {
        &self.run
    }
    fn trainer(&self, resume: bool, dev: &Device) -> Result<DcganTrainer> {
        build_trainer(&self.fresh_or_resumed(resume), dev)
    }
    fn grid_writer(&self, dev: &Device) -> Result<GridWriter<DcganTrainer>> {
        let noise = fixed_noise(self, dev)?;
        Ok(Box::new(move |t: &DcganTrainer, p: &Path| {
            save_grid(&t.sampler().forward_t(&noise, false)?, 8, p)
        }))
    }
}

/// The file of a run's grid of real training images (what the samples should come to look like).
pub const REAL_GRID: &str = "real.png";

/// Writes [`REAL_GRID`] in the run folder: 64 training images spread evenly over the dataset (IDX
/// files are often sorted by class), in an 8×8 grid like the sample grids.
pub fn save_real_grid<M>(
    run: &RunDir,
    data: &TensorDataset,
    observer: &mut dyn Observer<M>,
) -> Result<()> {
    let len = data.len();
    let n = len.min(64);
    let idx: Vec<usize> = (0..n).map(|i| i * len / n.max(1)).collect();
    let sub = data.subset(&idx);
    let mut shape = vec![n];
    shape.extend_from_slice(data.item_shape());
    let images = Tensor::from_slice(sub.data(), shape, &Device::Cpu)?;
    let path = run.root().join(REAL_GRID);
    save_grid(&images, 8, &path)?;
    observer.on_event(&format!("real training images: {}", path.display()));
    Ok(())
}

/// Steps per epoch for a dataset of `items` at `batch_size` (incomplete batches dropped).
pub fn steps_per_epoch(items: usize, batch_size: usize) -> u64 {
    (items / batch_size.max(1)).max(1) as u64
}

/// A trained generator loaded from a run folder's checkpoint.
#[derive(Debug)]
pub struct LoadedGenerator {
    /// The network (use eval mode: `forward_t(z, false)`).
    pub g: DcganGenerator,
    /// The run's configuration.
    pub cfg: DcganRunConfig,
    /// The device it lives on.
    pub device: Device,
}

/// Loads the generator of `run` at checkpoint `name` (`latest`, `step-N`) onto `dev`: the EMA
/// generator when the run keeps one, else the trained one ([`load_generator_from`]).
pub fn load_generator(run: &RunDir, name: &str, dev: &Device) -> Result<LoadedGenerator> {
    load_generator_from(run, name, dev, false)
}

/// Loads the generator of `run` at checkpoint `name` (`latest`, `step-N`) onto `dev`. DCGAN,
/// SNGAN, WGAN and WGAN-GP runs share the generator; for the latter two, `cfg` is
/// [`WganRunConfig::generator_view`](crate::wgan::WganRunConfig::generator_view). A run with an
/// EMA generator gives it (`generator_ema.safetensors`) unless `raw`, or unless the run was
/// trained with `raw_generator`.
pub fn load_generator_from(
    run: &RunDir,
    name: &str,
    dev: &Device,
    raw: bool,
) -> Result<LoadedGenerator> {
    let cfg = match RunConfig::read(run)? {
        RunConfig::Dcgan(c) => c,
        RunConfig::Wgan(c) => c.generator_view(),
        other => {
            return Err(ModelError::Config(format!(
                "{}: a {} run, not a DCGAN, WGAN or WGAN-GP run",
                run.root().display(),
                other.model(),
            )))
        }
    };
    let (g, mut vars) = build_generator(&cfg.dcgan, dev)?;
    let dir = run.checkpoint(name)?;
    let ema = cfg.options.ema.is_some() && !raw && !cfg.options.raw_generator;
    let file = if ema { "generator_ema" } else { "generator" };
    load_vars(&mut vars, &dir.join(format!("{file}.safetensors")))?;
    Ok(LoadedGenerator {
        g,
        cfg,
        device: dev.clone(),
    })
}

impl LoadedGenerator {
    /// `n` samples `[n, c, h, w]` in [-1, 1] from noise drawn with `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Tensor> {
        self.sample_with(n, seed, &mut ())
    }

    /// [`LoadedGenerator::sample`], reporting the images drawn to `progress` (the caller starts
    /// the phase); the same images for the same seed.
    pub fn sample_with(
        &self,
        n: usize,
        seed: u64,
        progress: &mut dyn crate::evaluator::Progress,
    ) -> Result<Tensor> {
        let mut rng = SeededRng::new(seed);
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 {
            let b = left.min(256);
            let z = rng.randn((b, self.cfg.dcgan.nz), 0.0, 1.0, &self.device)?;
            out.push(self.g.forward_t(&z, false)?);
            left -= b;
            progress.advance(b);
        }
        Ok(Tensor::cat(&out, 0)?)
    }

    /// The latent walk: `rows` rows of `steps` images. With `dim = Some(k)`, each row holds one
    /// random z whose k-th coordinate sweeps -3..3; without, each row is the spherical
    /// interpolation between two random z.
    pub fn latent_walk(
        &self,
        rows: usize,
        steps: usize,
        dim: Option<usize>,
        seed: u64,
    ) -> Result<Tensor> {
        let nz = self.cfg.dcgan.nz;
        if let Some(k) = dim.filter(|&k| k >= nz) {
            return Err(ModelError::Config(format!(
                "--dim {k} is out of range: z has {nz} dimensions"
            )));
        }
        let steps = steps.max(2);
        let mut rng = SeededRng::new(seed);
        let mut zs = Vec::with_capacity(rows * steps * nz);
        for _ in 0..rows {
            let a = rng.normal_vec(nz, 0.0, 1.0);
            match dim {
                Some(k) => {
                    for s in 0..steps {
                        let mut z = a.clone();
                        z[k] = -3.0 + 6.0 * s as f32 / (steps - 1) as f32;
                        zs.extend(z);
                    }
                }
                None => {
                    let b = rng.normal_vec(nz, 0.0, 1.0);
                    for s in 0..steps {
                        zs.extend(slerp(&a, &b, s as f32 / (steps - 1) as f32));
                    }
                }
            }
        }
        let z = Tensor::from_vec(zs, (rows * steps, nz), &self.device)?;
        self.g.forward_t(&z, false)
    }
}

/// Spherical interpolation between `a` and `b` at `t` in [0, 1] (linear when nearly parallel).
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    let cos = (dot / (na * nb).max(1e-12)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    if omega.abs() < 1e-4 {
        return a.iter().zip(b).map(|(x, y)| x + t * (y - x)).collect();
    }
    let (sa, sb) = (
        ((1.0 - t) * omega).sin() / omega.sin(),
        (t * omega).sin() / omega.sin(),
    );
    a.iter().zip(b).map(|(x, y)| sa * x + sb * y).collect()
}

/// The number of training items of a dataset (for configs).
pub fn items_of(ds: &TensorDataset) -> usize {
    ds.len()
}
