//! A CycleGAN training run: its configuration (`config.json`), the unpaired data sampler
//! (random crop and flip), the loop with checkpoints and sample grids, translation of image
//! folders, and the known-answer evaluation of `thin2thick`.
//!
//! # Data and schedule
//!
//! As the reference's unaligned dataset: an epoch has `max(|A|, |B|)` items; A images come in a
//! shuffled order (cycling if A is the smaller set), B images are drawn uniformly at random.
//! Each image is loaded at `load_size` and randomly cropped to `crop_size`, then flipped
//! horizontally with probability ½ when `flip` is on (off for digits, whose mirror image is not a
//! digit). The learning rate is constant for `epochs` epochs, then decays linearly
//! ([`lr_factor`](crate::cyclegan::lr_factor)).
//!
//! Every random choice of a step (the B index, crops, flips, pool swaps) comes from a generator
//! seeded by the run's seed and the step number, and the A order from one seeded by the epoch,
//! so a resumed run needs only the step count and the image pools (saved in the checkpoint) to
//! continue exactly as an uninterrupted one.

use crate::train::on_fresh_vars;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use gan_core::init::dcgan_init;
use gan_core::optim::{Adam, AdamConfig};
use gan_core::rng::SeededRng;
use gan_data::image_folder::list_images;
use gan_data::morphology::{dilate_batch, THIN2THICK_RADIUS};
use gan_data::{Dataset, ImageFolderConfig, Split, TensorDataset, Unpaired};
use serde::{Deserialize, Serialize};

use crate::cyclegan::{
    CycleGanConfig, CycleGanTrainer, CycleLossConfig, CycleStepMetrics, ImagePool,
    PatchDiscriminator, ResnetGenerator, Trained,
};
use crate::dcgan_run::parse_device;
use crate::engine::{fit, BatchSource, DataPosition, FitConfig, FitOutcome, LrSchedule, Trainer};
use crate::error::{ModelError, Result};
use crate::evaluator::{
    cached_reference, embed_images_with, score_embedding, EvalReport, FeatureNet, Progress,
    ReferenceSet,
};
use crate::grid::{pad_rows, save_grid, save_images};
use crate::registry::RunConfig;
use crate::run::RunDir;
use crate::streams as stream;
use crate::train::{load_vars, GeneratorNet, LoopConfig, Observer, RunSettings};

pub use crate::train::{Direction, Translator};

/// Images per domain in the sample grids.
pub const GRID_IMAGES: usize = 8;

/// Where the images come from and how they are augmented.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CycleDataConfig {
    /// The folder holding `trainA`, `trainB` (and `testA`, `testB` for grids and evaluation).
    pub dataroot: PathBuf,
    /// Side the images are loaded at (resize of the shorter side + center crop).
    pub load_size: usize,
    /// Side of the random crops trained on.
    pub crop_size: usize,
    /// Random horizontal flips.
    pub flip: bool,
    /// Use at most this many images of each domain (the first ones in sorted order).
    pub max_dataset_size: Option<usize>,
    /// Training images of A found (after the cap).
    pub items_a: usize,
    /// Training images of B found (after the cap).
    pub items_b: usize,
}

/// Everything that defines a CycleGAN run; saved as `config.json` before training starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CycleGanRunConfig {
    /// Always `"cyclegan"`.
    pub model: String,
    /// The networks.
    pub net: CycleGanConfig,
    /// The loss weights.
    pub loss: CycleLossConfig,
    /// The optimizer of each of the four networks (the learning rate is the initial one).
    pub adam: AdamConfig,
    /// The discriminators' initial learning rate where it differs from the generators' (TTUR,
    /// Heusel et al. 2017; absent: `adam`'s for all four).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_d: Option<f64>,
    /// Images in each discriminator's history pool (50).
    pub pool_size: usize,
    /// The data.
    pub data: CycleDataConfig,
    /// Epochs at the initial learning rate.
    pub epochs: u64,
    /// Epochs of linear decay after them.
    pub epochs_decay: u64,
    /// Steps per epoch: `max(items_a, items_b) / batch_size`, at least 1.
    pub steps_per_epoch: u64,
    /// Length, cadences, seed, device, kernels and stream table (at the top level of
    /// `config.json`).
    #[serde(flatten)]
    pub run: RunSettings,
}

impl CycleGanRunConfig {
    /// The reference's defaults (256-pixel RGB: load 286, crop 256, flip, 100 + 100 epochs,
    /// batch 1) on `dataroot`; the item counts are filled in by [`CycleGanRunConfig::finish`].
    pub fn new(dataroot: PathBuf) -> Self {
        Self {
            model: "cyclegan".into(),
            net: CycleGanConfig::default(),
            loss: CycleLossConfig::default(),
            adam: AdamConfig::default(),
            lr_d: None,
            pool_size: 50,
            data: CycleDataConfig {
                dataroot,
                load_size: 286,
                crop_size: 256,
                flip: true,
                max_dataset_size: None,
                items_a: 0,
                items_b: 0,
            },
            epochs: 100,
            epochs_decay: 100,
            steps_per_epoch: 1,
            run: RunSettings::new(1, LoopConfig::new(0, 500, 5000, 50)),
        }
    }

    /// Checks the values that do not depend on the data.
    pub fn validate(&self) -> Result<()> {
        self.net.validate()?;
        self.net.check_image_size(self.data.crop_size)?;
        if self.data.load_size < self.data.crop_size {
            return Err(ModelError::Config(format!(
                "--load-size {} is smaller than --crop-size {}",
                self.data.load_size, self.data.crop_size
            )));
        }
        if self.run.batch_size == 0 {
            return Err(ModelError::Config("--batch-size must be positive".into()));
        }
        if self.epochs + self.epochs_decay == 0 {
            return Err(ModelError::Config(
                "--epochs plus --epochs-decay must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Records the dataset sizes and derives the steps per epoch and, unless `steps` caps it,
    /// the length of the run.
    pub fn finish(&mut self, data: &Unpaired, steps: Option<u64>) {
        self.data.items_a = data.a.len();
        self.data.items_b = data.b.len();
        self.steps_per_epoch = (data.a.len().max(data.b.len()) / self.run.batch_size).max(1) as u64;
        self.run.schedule.steps =
            steps.unwrap_or((self.epochs + self.epochs_decay) * self.steps_per_epoch);
    }

    /// The reference's rule: the initial rate for `epochs` epochs, then linear decay.
    pub fn lr_schedule(&self) -> LrSchedule {
        LrSchedule::LinearDecay {
            steps_per_epoch: self.steps_per_epoch,
            epochs: self.epochs,
            epochs_decay: self.epochs_decay,
        }
    }

    /// The discriminators' optimizer: `adam` with `lr_d` where given.
    pub fn adam_d(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr_d.unwrap_or(self.adam.lr),
            ..self.adam
        }
    }

    /// The generators' learning rate at step `step` (1-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        self.adam.lr * self.lr_schedule().factor(step.saturating_sub(1))
    }

    /// How the run's images are loaded at side `size` (its channels): `load_size` for
    /// training, `crop_size` for the test images that are translated and scored.
    pub fn image_cfg(&self, size: usize) -> ImageFolderConfig {
        ImageFolderConfig {
            size,
            channels: self.net.channels,
        }
    }
}

/// Loads the training images (`trainA`, `trainB`) at the load size, capped at
/// `max_dataset_size`.
pub fn load_train(cfg: &CycleGanRunConfig) -> Result<Unpaired> {
    let d = &cfg.data;
    let mut data = Unpaired::load(&d.dataroot, Split::Train, cfg.image_cfg(d.load_size))?;
    if let Some(max) = d.max_dataset_size {
        let cap = |ds: &TensorDataset| ds.subset(&(0..ds.len().min(max)).collect::<Vec<_>>());
        data = Unpaired {
            a: cap(&data.a),
            b: cap(&data.b),
        };
    }
    Ok(data)
}

/// Loads the test images (`testA`, `testB`) at the crop size.
pub fn load_test(cfg: &CycleGanRunConfig) -> Result<Unpaired> {
    Ok(Unpaired::load(
        &cfg.data.dataroot,
        Split::Test,
        cfg.image_cfg(cfg.data.crop_size),
    )?)
}

/// Builds one generator alone with its variables.
pub fn build_generator(cfg: &CycleGanConfig, dev: &Device) -> Result<(ResnetGenerator, VarMap)> {
    on_fresh_vars(dev, |vb| ResnetGenerator::new(cfg, vb))
}

/// Builds a freshly initialised trainer: weights N(0, 0.02) and zero biases (the reference's
/// `normal` initialisation), one seeded stream per network.
pub fn build_trainer(cfg: &CycleGanRunConfig, dev: &Device) -> Result<CycleGanTrainer> {
    gan_core::conv::set_fast_conv(cfg.run.fast_conv);
    let gen = |s: u64| -> Result<Trained<ResnetGenerator>> {
        let (net, vars) = build_generator(&cfg.net, dev)?;
        dcgan_init(&vars, &mut SeededRng::with_stream(cfg.run.seed, s))?;
        let opt = Adam::from_varmap(&vars, cfg.adam)?;
        Ok(Trained { net, vars, opt })
    };
    let disc = |s: u64| -> Result<Trained<PatchDiscriminator>> {
        let (net, vars) = on_fresh_vars(dev, |vb| PatchDiscriminator::new(&cfg.net, vb))?;
        dcgan_init(&vars, &mut SeededRng::with_stream(cfg.run.seed, s))?;
        let opt = Adam::from_varmap(&vars, cfg.adam_d())?;
        Ok(Trained { net, vars, opt })
    };
    let [g_ab, g_ba, d_a, d_b] = stream::cyclegan_init(cfg.run.streams);
    Ok(CycleGanTrainer {
        g_ab: gen(g_ab)?,
        g_ba: gen(g_ba)?,
        d_a: disc(d_a)?,
        d_b: disc(d_b)?,
        pool_a: ImagePool::new(cfg.pool_size),
        pool_b: ImagePool::new(cfg.pool_size),
        loss: cfg.loss,
        step: 0,
        base_lr: [cfg.adam.lr, cfg.adam_d().lr],
        device: dev.clone(),
        last_items: 0,
    })
}

/// The four networks' files in a checkpoint folder.
const NET_FILES: [&str; 4] = [
    "generator_ab.safetensors",
    "generator_ba.safetensors",
    "discriminator_a.safetensors",
    "discriminator_b.safetensors",
];

impl Trainer for CycleGanTrainer {
    type Batch = UnpairedBatch;
    type Metrics = CycleStepMetrics;

    crate::engine::trainer_fields!(step: step, device: device);
    fn train_step(
        &mut self,
        data: &mut dyn BatchSource<Batch = UnpairedBatch>,
    ) -> Result<CycleStepMetrics> {
        let mut batch = data.next_batch(self.step + 1)?;
        self.step_on(&batch.a, &batch.b, &mut batch.rng, batch.epoch)
    }
    fn items(&self, _m: &CycleStepMetrics) -> usize {
        self.last_items
    }
    crate::engine::trainer_parts! {
        "generator_ab", "g_ab" => g_ab.vars, g_ab.opt;
        "generator_ba", "g_ba" => g_ba.vars, g_ba.opt;
        "discriminator_a", "d_a" => d_a.vars, d_a.opt;
        "discriminator_b", "d_b" => d_b.vars, d_b.opt;
    }
    fn extra_file(&self) -> Option<&'static str> {
        Some("pools")
    }
    fn extra_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut pools = HashMap::new();
        for (k, pool) in [("pool_a", &self.pool_a), ("pool_b", &self.pool_b)] {
            if let Some(t) = pool.to_tensor()? {
                pools.insert(k.to_string(), t);
            }
        }
        Ok(pools)
    }
    fn restore_extra(&mut self, tensors: HashMap<String, Tensor>) -> Result<()> {
        self.pool_a.restore(tensors.get("pool_a"))?;
        self.pool_b.restore(tensors.get("pool_b"))
    }
    fn base_lrs(&self) -> Vec<f64> {
        let [g, d] = self.base_lr;
        vec![g, g, d, d]
    }
    fn generator(&self) -> Option<&dyn GeneratorNet> {
        None
    }
    fn translator(&self) -> Option<&dyn Translator> {
        Some(self)
    }
}

/// Images per forward pass when translating a set of images.
const TRANSLATE_CHUNK: usize = 64;

/// Applies `g` to `images` (`[n, c, s, s]`, any device) in chunks of [`TRANSLATE_CHUNK`] on
/// `dev`, reporting each chunk to `progress`; the result is detached.
fn translate_chunks(
    g: &ResnetGenerator,
    images: &Tensor,
    dev: &Device,
    progress: &mut dyn Progress,
) -> Result<Tensor> {
    let n = images.dim(0)?;
    let mut out = Vec::new();
    for start in (0..n).step_by(TRANSLATE_CHUNK) {
        let len = (n - start).min(TRANSLATE_CHUNK);
        let xs = images.narrow(0, start, len)?.to_device(dev)?;
        out.push(g.forward(&xs)?.detach());
        progress.advance(len);
    }
    if out.is_empty() {
        return Err(ModelError::Config("no image to translate".into()));
    }
    Ok(Tensor::cat(&out, 0)?)
}

/// The two generators of a CycleGAN and their device: what [`Translator`] needs, from the
/// trainer (evaluation during training) or a loaded run.
trait TwoGenerators {
    /// The generator of `dir`: G (A → B) or F (B → A).
    fn generator_of(&self, dir: Direction) -> &ResnetGenerator;
    /// The device the generators are on.
    fn device_of(&self) -> &Device;
}

impl<T: TwoGenerators> Translator for T {
    fn translate_with(
        &self,
        dir: Direction,
        images: &Tensor,
        progress: &mut dyn Progress,
    ) -> Result<Tensor> {
        translate_chunks(self.generator_of(dir), images, self.device_of(), progress)
    }
}

/// The generators in their current training state.
impl TwoGenerators for CycleGanTrainer {
    fn generator_of(&self, dir: Direction) -> &ResnetGenerator {
        match dir {
            Direction::AToB => &self.g_ab.net,
            Direction::BToA => &self.g_ba.net,
        }
    }
    fn device_of(&self) -> &Device {
        &self.device
    }
}

/// Draws the training batches: A in a shuffled order per epoch, B at random, random crops and
/// flips; see the [module docs](self).
#[derive(Debug)]
pub struct UnpairedSampler<'a> {
    data: &'a Unpaired,
    cfg: &'a CycleGanRunConfig,
    order: Vec<usize>,
    order_epoch: Option<u64>,
    dev: Device,
    last_step: u64,
}

/// One step's batches.
#[derive(Debug)]
pub struct UnpairedBatch {
    /// `[b, c, crop, crop]` images of A.
    pub a: Tensor,
    /// `[b, c, crop, crop]` images of B.
    pub b: Tensor,
    /// The epoch of the step.
    pub epoch: u64,
    /// Random choices left for the step (the pools draw from it).
    pub rng: SeededRng,
}

impl<'a> UnpairedSampler<'a> {
    /// A sampler over `data` (loaded at `cfg.data.load_size`).
    pub fn new(data: &'a Unpaired, cfg: &'a CycleGanRunConfig, dev: &Device) -> Result<Self> {
        if data.a.is_empty() || data.b.is_empty() {
            return Err(ModelError::Config(format!(
                "{}: trainA and trainB must both hold images",
                cfg.data.dataroot.display()
            )));
        }
        Ok(Self {
            data,
            cfg,
            order: Vec::new(),
            order_epoch: None,
            dev: dev.clone(),
            last_step: 0,
        })
    }

    /// The batches of step `step` (1-based); the same step always gives the same batches.
    pub fn batch(&mut self, step: u64) -> Result<UnpairedBatch> {
        let cfg = self.cfg;
        if step == 0 {
            return Err(ModelError::Config("sampler steps count from 1".into()));
        }
        let spe = cfg.steps_per_epoch.max(1);
        let (epoch, index) = ((step - 1) / spe, (step - 1) % spe);
        let n_a = self.data.a.len();
        if self.order_epoch != Some(epoch) {
            let mut rng = SeededRng::with_stream(cfg.run.seed, stream::CYCLE_ORDER + epoch);
            self.order = (0..n_a).collect();
            for i in (1..n_a).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                self.order.swap(i, j);
            }
            self.order_epoch = Some(epoch);
        }
        let mut rng = SeededRng::with_stream(cfg.run.seed, stream::CYCLE_STEP + step);
        let bs = cfg.run.batch_size;
        let mut a = Vec::new();
        let mut b = Vec::new();
        for k in 0..bs {
            let ia = self.order[(index as usize * bs + k) % n_a];
            let ib = (rng.next_u64() % self.data.b.len() as u64) as usize;
            a.extend(self.augment(self.data.a.item(ia), &mut rng));
            b.extend(self.augment(self.data.b.item(ib), &mut rng));
        }
        let (c, s) = (cfg.net.channels, cfg.data.crop_size);
        self.last_step = step;
        Ok(UnpairedBatch {
            a: Tensor::from_vec(a, (bs, c, s, s), &self.dev)?,
            b: Tensor::from_vec(b, (bs, c, s, s), &self.dev)?,
            epoch,
            rng,
        })
    }

    /// A random `crop_size` square of a `[c, load, load]` image, flipped at random if enabled.
    fn augment(&self, img: &[f32], rng: &mut SeededRng) -> Vec<f32> {
        let (c, l, s) = (
            self.cfg.net.channels,
            self.cfg.data.load_size,
            self.cfg.data.crop_size,
        );
        let span = (l - s + 1) as u64;
        let (y0, x0) = (
            (rng.next_u64() % span) as usize,
            (rng.next_u64() % span) as usize,
        );
        let flip = self.cfg.data.flip && rng.next_u64() & 1 == 1;
        let mut out = Vec::with_capacity(c * s * s);
        for ch in 0..c {
            for y in 0..s {
                let row = &img[(ch * l + y0 + y) * l + x0..][..s];
                if flip {
                    out.extend(row.iter().rev());
                } else {
                    out.extend_from_slice(row);
                }
            }
        }
        out
    }
}

/// Every batch derives from the step alone, so the position is the step: [`DataPosition::epoch`]
/// is the epoch of the last step drawn and `batch_index` is unused.
impl BatchSource for UnpairedSampler<'_> {
    type Batch = UnpairedBatch;
    fn next_batch(&mut self, step: u64) -> Result<UnpairedBatch> {
        self.batch(step)
    }
    fn position(&self) -> DataPosition {
        DataPosition {
            epoch: self.last_step / self.cfg.steps_per_epoch.max(1),
            batch_index: 0,
        }
    }
    fn seek(&mut self, _pos: DataPosition) {}
}

/// How a CycleGAN training call ended.
pub type CycleFitOutcome = FitOutcome<CycleStepMetrics>;

/// The sample grid: six rows, real A, G(A), F(G(A)), real B, F(B), G(F(B)), of
/// [`translation_grid_width`] tiles each (write it with that many images per row). When the
/// domains hold different numbers of grid images, the shorter domain's rows end in blank tiles
/// ([`pad_rows`]), so each row stands alone.
pub fn translation_grid(t: &CycleGanTrainer, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (g, f) = (&t.g_ab.net, &t.g_ba.net);
    let fake_b = g.forward(a)?;
    let rec_a = f.forward(&fake_b)?;
    let fake_a = f.forward(b)?;
    let rec_b = g.forward(&fake_a)?;
    let rows = [a, &fake_b, &rec_a, b, &fake_a, &rec_b].map(|t| t.detach());
    pad_rows(&rows.each_ref(), translation_grid_width(a, b)?)
}

/// The width in tiles of [`translation_grid`]: the larger domain's count of grid images.
pub fn translation_grid_width(a: &Tensor, b: &Tensor) -> Result<usize> {
    Ok(a.dim(0)?.max(b.dim(0)?).max(1))
}

/// [`GRID_IMAGES`] images of each domain, evenly spaced in sorted order (test split if present,
/// else train).
fn grid_inputs(
    cfg: &CycleGanRunConfig,
    train: &Unpaired,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let (c, s) = (cfg.net.channels, cfg.data.crop_size);
    let pick = |ds: &TensorDataset, crop_from: usize| -> Result<Tensor> {
        let n = ds.len().min(GRID_IMAGES);
        let off = (crop_from - s) / 2;
        let mut v = Vec::with_capacity(n * c * s * s);
        for k in 0..n {
            // Spread over the folder: its files may be sorted by class.
            let img = ds.item(k * ds.len() / n);
            for ch in 0..c {
                for y in 0..s {
                    v.extend_from_slice(&img[(ch * crop_from + off + y) * crop_from + off..][..s]);
                }
            }
        }
        Ok(Tensor::from_vec(v, (n, c, s, s), dev)?)
    };
    // The test split when the data has one; a test folder that exists but cannot be read is an
    // error, not silently replaced by training images.
    let root = &cfg.data.dataroot;
    if root.join("testA").is_dir() || root.join("testB").is_dir() {
        let test = load_test(cfg)?;
        Ok((pick(&test.a, s)?, pick(&test.b, s)?))
    } else {
        tracing::debug!(
            "{}: no testA/testB, the sample grids show training images",
            root.display()
        );
        let l = cfg.data.load_size;
        Ok((pick(&train.a, l)?, pick(&train.b, l)?))
    }
}

/// Trains a CycleGAN run to `cfg.schedule.steps`: a new run in `run` (whose `config.json` is
/// written) or, with `resume`, from its `latest` checkpoint.
pub fn train_cyclegan(
    run: &RunDir,
    cfg: &CycleGanRunConfig,
    data: &Unpaired,
    resume: bool,
    observer: &mut dyn Observer<CycleStepMetrics>,
) -> Result<CycleFitOutcome> {
    let dev = parse_device(&cfg.run.device)?;
    let mut trainer = build_trainer(cfg, &dev)?;
    let mut sampler = UnpairedSampler::new(data, cfg, &dev)?;
    if resume {
        crate::engine::resume(&mut trainer, &mut sampler, run, observer)?;
    }
    let (grid_a, grid_b) = grid_inputs(cfg, data, &dev)?;
    let nrow = translation_grid_width(&grid_a, &grid_b)?;
    let mut write = |t: &CycleGanTrainer, p: &Path| -> Result<()> {
        save_grid(&translation_grid(t, &grid_a, &grid_b)?, nrow, p)
    };
    let fit_cfg = FitConfig {
        lr: cfg.lr_schedule(),
        ..FitConfig::new(cfg.run.schedule)
    };
    fit(
        &mut trainer,
        &mut sampler,
        run,
        &fit_cfg,
        &mut write,
        observer,
    )
}

/// Both trained generators of a run, loaded from a checkpoint.
#[derive(Debug)]
pub struct LoadedCycleGan {
    /// G: A→B.
    pub g_ab: ResnetGenerator,
    /// F: B→A.
    pub g_ba: ResnetGenerator,
    /// The run's configuration.
    pub cfg: CycleGanRunConfig,
    /// The device they live on.
    pub device: Device,
}

/// Loads the generators of the CycleGAN run `run` at checkpoint `name` (`latest`, `step-N`).
pub fn load_cyclegan(run: &RunDir, name: &str, dev: &Device) -> Result<LoadedCycleGan> {
    let cfg: CycleGanRunConfig = RunConfig::read_as(run, "CycleGAN")?;
    let dir = run.checkpoint(name)?;
    let (g_ab, mut v_ab) = build_generator(&cfg.net, dev)?;
    let (g_ba, mut v_ba) = build_generator(&cfg.net, dev)?;
    load_vars(&mut v_ab, &dir.join(NET_FILES[0]))?;
    load_vars(&mut v_ba, &dir.join(NET_FILES[1]))?;
    Ok(LoadedCycleGan {
        g_ab,
        g_ba,
        cfg,
        device: dev.clone(),
    })
}

impl LoadedCycleGan {
    /// The generator of `dir`.
    pub fn generator(&self, dir: Direction) -> &ResnetGenerator {
        match dir {
            Direction::AToB => &self.g_ab,
            Direction::BToA => &self.g_ba,
        }
    }

    /// Applies a generator to `[n, c, s, s]` images in chunks of 64.
    pub fn translate(&self, dir: Direction, images: &Tensor) -> Result<Tensor> {
        self.translate_with(dir, images, &mut ())
    }

    /// Translates every image (PNG or JPEG) in `input` to a PNG of the same stem in `out`,
    /// at the run's crop size and channels; returns the files written, one per input. A file
    /// that cannot be decoded stops with an error naming it, before anything is written.
    ///
    /// Refused before anything is read or written: `out` being `input` itself (the translations
    /// would replace the images they come from), and two inputs whose output names clash
    /// (`photo.png`, `photo.jpg` and `photo.PNG` all give `photo.png`; names are compared
    /// without case, as macOS and Windows file systems do), listing every clashing file.
    pub fn translate_folder(
        &self,
        dir: Direction,
        input: &Path,
        out: &Path,
    ) -> Result<Vec<PathBuf>> {
        let files = list_images(input)?;
        if same_folder(input, out) {
            return Err(ModelError::Image {
                path: out.into(),
                reason: format!(
                    "it is the input folder {}: the translations would replace the images they \
                     come from; write them to another folder",
                    input.display()
                ),
            });
        }
        let names = translated_names(&files, out)?;
        let icfg = self.cfg.image_cfg(self.cfg.data.crop_size);
        // Every file is tried, and an error lists all those that cannot be read.
        let values = gan_data::image_folder::load_images(&files, icfg)?;
        let (c, s) = (icfg.channels, icfg.size);
        let images = Tensor::from_vec(values, (files.len(), c, s, s), &self.device)?;
        let translated = self.translate(dir, &images)?;
        std::fs::create_dir_all(out).map_err(|e| ModelError::io(out, e))?;
        let tmp = tempdir_in(out)?;
        let mut written = Vec::new();
        for (i, name) in names.iter().enumerate() {
            save_images(&translated.narrow(0, i, 1)?, &tmp, 0)?;
            let dest = out.join(name);
            let src = tmp.join("000000.png");
            std::fs::rename(&src, &dest).map_err(|e| ModelError::io(&dest, e))?;
            written.push(dest);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        Ok(written)
    }
}

impl TwoGenerators for LoadedCycleGan {
    fn generator_of(&self, dir: Direction) -> &ResnetGenerator {
        self.generator(dir)
    }
    fn device_of(&self) -> &Device {
        &self.device
    }
}

/// Whether `a` and `b` name one folder (compared after resolving links and `..`; a folder that
/// does not exist yet is no existing one).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The output file name of each input (`<stem>.png`), or an error naming `out` and listing the
/// inputs whose output names clash, compared without case.
fn translated_names(files: &[PathBuf], out: &Path) -> Result<Vec<String>> {
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            let stem = f.file_stem().unwrap_or_default().to_string_lossy();
            format!("{stem}.png")
        })
        .collect();
    let mut by_name: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, name) in names.iter().enumerate() {
        by_name.entry(name.to_lowercase()).or_default().push(i);
    }
    let clashes: Vec<String> = by_name
        .values()
        .filter(|group| group.len() > 1)
        .map(|group| {
            let inputs: Vec<String> = group
                .iter()
                .map(|&i| files[i].display().to_string())
                .collect();
            format!("{} -> {}", inputs.join(", "), names[group[0]])
        })
        .collect();
    if clashes.is_empty() {
        return Ok(names);
    }
    Err(ModelError::Image {
        path: out.into(),
        reason: format!(
            "inputs that differ only in extension or case would be written to one file, one \
             over the other: {}; rename them or translate them from separate folders",
            clashes.join("; ")
        ),
    })
}

fn tempdir_in(dir: &Path) -> Result<PathBuf> {
    let p = dir.join(format!(".translate-{}", std::process::id()));
    std::fs::create_dir_all(&p).map_err(|e| ModelError::io(&p, e))?;
    Ok(p)
}

/// The known-answer evaluation of `thin2thick`: mean absolute pixel errors on `testA`, in
/// units of the pixel range (0 to 1).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranslationEval {
    /// Test images of A evaluated.
    pub images: usize,
    /// mean |G(a) − dilate(a)|: the translation against the true map.
    pub mae_translation: f64,
    /// mean |a − dilate(a)|: the identity map, the baseline to beat.
    pub mae_identity: f64,
    /// `mae_translation / mae_identity`.
    pub ratio: f64,
    /// mean |F(G(a)) − a|: the cycle reconstruction error.
    pub mae_cycle: f64,
}

/// Evaluates `model` on `test_a` (`[n, c, s, s]` in [-1, 1]) against the dilation of radius
/// `radius` (the `thin2thick` map: [`THIN2THICK_RADIUS`]).
pub fn eval_dilation(
    model: &LoadedCycleGan,
    test_a: &Tensor,
    radius: usize,
) -> Result<TranslationEval> {
    let (n, _c, h, w) = test_a.dims4()?;
    if n == 0 {
        return Err(ModelError::Config("no test images to evaluate".into()));
    }
    let a: Vec<f32> = test_a.flatten_all()?.to_vec1()?;
    let target = dilate_batch(&a, h, w, radius);
    let fake_b = model.translate(Direction::AToB, test_a)?;
    let rec_a = model.translate(Direction::BToA, &fake_b)?;
    let fake_b: Vec<f32> = fake_b.flatten_all()?.to_vec1()?;
    let rec_a: Vec<f32> = rec_a.flatten_all()?.to_vec1()?;
    // Values live in [-1, 1]: halve the differences to express them in units of the range.
    let mae = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs() as f64)
            .sum::<f64>()
            / x.len() as f64
            / 2.0
    };
    let mae_translation = mae(&fake_b, &target);
    let mae_identity = mae(&a, &target);
    Ok(TranslationEval {
        images: n,
        mae_translation,
        mae_identity,
        ratio: mae_translation / mae_identity.max(1e-12),
        mae_cycle: mae(&rec_a, &a),
    })
}

/// Loads `dataroot/testA` at the run's crop size and evaluates against the `thin2thick`
/// dilation.
pub fn eval_thin2thick(model: &LoadedCycleGan, dataroot: &Path) -> Result<TranslationEval> {
    let icfg = model.cfg.image_cfg(model.cfg.data.crop_size);
    let test_a = gan_data::ImageFolder::load(dataroot.join("testA"), icfg)?;
    let (c, s) = (icfg.channels, icfg.size);
    let t = Tensor::from_vec(
        test_a.data().to_vec(),
        (test_a.len(), c, s, s),
        &model.device,
    )?;
    eval_dilation(model, &t, THIN2THICK_RADIUS)
}

/// The sample-quality scores of both directions of a translation (see [`score_translations`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranslationScores {
    /// G(testA) scored against the real testB.
    pub a2b: EvalReport,
    /// F(testB) scored against the real testA.
    pub b2a: EvalReport,
}

/// The real test images of both domains and their reference sets on one evaluator network:
/// what translations are scored against ([`TranslationReferences::score`]).
#[derive(Clone, Debug)]
pub struct TranslationReferences {
    /// The test images of A, `[n_a, c, s, s]` in [-1, 1] on the CPU: the inputs of G.
    pub test_a: Tensor,
    /// The test images of B, `[n_b, c, s, s]`: the inputs of F.
    pub test_b: Tensor,
    /// The real `testA` embedded by the network: the reference of F(testB).
    pub ref_a: ReferenceSet,
    /// The real `testB` embedded by the network: the reference of G(testA).
    pub ref_b: ReferenceSet,
}

impl TranslationReferences {
    /// Loads `dataroot/testA` and `dataroot/testB` as `icfg` says (the run's crop size and
    /// channels) and embeds each with `net` (converted to its input: bilinear resize, grey
    /// repeated on 3 channels), named `real testA` and `real testB`. With `cache` (a folder),
    /// through [`cached_reference`]: the statistics of each folder are computed once per
    /// network, weights and images and read back afterwards. Phases go to `progress`.
    /// Errors: a missing, empty or unreadable `testA`/`testB` (named).
    pub fn load(
        net: &dyn FeatureNet,
        dataroot: &Path,
        icfg: ImageFolderConfig,
        cache: Option<&Path>,
        progress: &mut dyn Progress,
    ) -> Result<Self> {
        let test = Unpaired::load(dataroot, Split::Test, icfg)?;
        let (c, s) = (icfg.channels, icfg.size);
        let mut reference = |ds: &TensorDataset, folder: &str| -> Result<ReferenceSet> {
            if ds.is_empty() {
                return Err(ModelError::Config(format!(
                    "{}: no test images to score translations against",
                    dataroot.join(folder).display()
                )));
            }
            let name = format!("real {folder}");
            match cache {
                Some(dir) => Ok(cached_reference(net, ds, &name, dir, progress)?.0),
                None => ReferenceSet::new_with(net, ds, &name, progress),
            }
        };
        let ref_a = reference(&test.a, "testA")?;
        let ref_b = reference(&test.b, "testB")?;
        let images =
            |ds: &TensorDataset| Tensor::from_slice(ds.data(), (ds.len(), c, s, s), &Device::Cpu);
        Ok(Self {
            test_a: images(&test.a)?,
            test_b: images(&test.b)?,
            ref_a,
            ref_b,
        })
    }

    /// Scores both directions of `model` on `net` (the network the references were embedded
    /// with), as a generator is scored against real images: G(testA) against the real `testB`
    /// and F(testB) against the real `testA` (FID, KID, precision/recall, density/coverage, and
    /// with a classifier its class metrics), each with the warnings of
    /// [`crate::evaluator::evaluate`] for too few images. With `max_inputs`, each direction
    /// translates at most that many test images (evenly spaced over the folder's sorted files);
    /// the references keep all of theirs. Phases (translating, embedding) go to `progress`.
    pub fn score(
        &self,
        net: &dyn FeatureNet,
        model: &dyn Translator,
        max_inputs: Option<usize>,
        progress: &mut dyn Progress,
    ) -> Result<TranslationScores> {
        let mut score = |dir: Direction| -> Result<EvalReport> {
            let started = std::time::Instant::now();
            let (from, g, input, reference) = match dir {
                Direction::AToB => ("testA", "G", &self.test_a, &self.ref_b),
                Direction::BToA => ("testB", "F", &self.test_b, &self.ref_a),
            };
            let input = spread_rows(input, max_inputs)?;
            let n = input.dim(0)?;
            progress.start(&format!("translating {from} with {g}"), n);
            let fake = model.translate_with(dir, &input, progress)?;
            progress.start(&format!("embedding {g}({from})"), n);
            let e = embed_images_with(net, &fake.to_device(&Device::Cpu)?, progress)?;
            progress.start(&format!("scoring {g}({from})"), 0);
            score_embedding(&net.name(), &e, reference, started)
        };
        Ok(TranslationScores {
            a2b: score(Direction::AToB)?,
            b2a: score(Direction::BToA)?,
        })
    }
}

/// At most `max` rows of `images`, evenly spaced (all of them without `max`).
fn spread_rows(images: &Tensor, max: Option<usize>) -> Result<Tensor> {
    let n = images.dim(0)?;
    match max {
        Some(k) if k < n => {
            let idx: Vec<u32> = (0..k).map(|i| (i * n / k) as u32).collect();
            let idx = Tensor::from_vec(idx, k, images.device())?;
            Ok(images.index_select(&idx, 0)?)
        }
        _ => Ok(images.clone()),
    }
}

/// Scores the translations of `dataroot`'s test images by `model` with `net`
/// ([`TranslationReferences::load`] at the run's crop size and channels, then
/// [`TranslationReferences::score`] of every test image): G(testA) against the real `testB`
/// and F(testB) against the real `testA`. With `cache`, the references' statistics are cached
/// there. Errors: a missing or unreadable `testA`/`testB` (named), features of the wrong width.
pub fn score_translations(
    model: &LoadedCycleGan,
    dataroot: &Path,
    net: &dyn FeatureNet,
    cache: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<TranslationScores> {
    let icfg = model.cfg.image_cfg(model.cfg.data.crop_size);
    let refs = TranslationReferences::load(net, dataroot, icfg, cache, progress)?;
    refs.score(net, model, None, progress)
}
