//! A class-conditional DCGAN run ([`crate::cgan`]): its configuration (`config.json`, model
//! `cgan`), the trainer, training and resuming, and the generator loaded back for sampling by
//! class and walking within or between classes.
//!
//! One step is DCGAN's ([`crate::train`]) with the real batch's labels: the fakes are drawn for
//! the same labels as the reals (so the classes of the fakes follow the data), the discriminator
//! sees the labels of both, and with `acgan` its classifier's cross-entropy on the *real* batch
//! is added to D's loss and on the fakes to G's loss (as PyTorch-StudioGAN's ACGAN; Odena et al.
//! also train D's classifier on fakes, which lets D and G agree on wrong classes).

use crate::train::on_fresh_vars;
use std::borrow::Cow;
use std::path::Path;

use candle_core::{Device, Tensor};
use gan_core::loss::{discriminator_loss, generator_loss, sigmoid_mean};
use gan_core::optim::Adam;
use gan_core::rng::SeededRng;
use gan_data::TensorDataset;
use serde::{Deserialize, Serialize};

use crate::cgan::{
    class_loss, cycling_labels, one_hot, CganConfig, CganDiscriminator, CganGenerator, CganOutput,
    CondMode,
};
use crate::dcgan_run::{init_nets, slerp, DcganRunConfig};
use crate::engine::{Signals, StepRecord, Trainer};
use crate::error::{ModelError, Result};
use crate::grid::save_grid;
use crate::registry::RunConfig;
use crate::run::RunDir;
use crate::streams as stream;
use crate::train::{load_vars, GanNets, GeneratorNet, StepMetrics};

/// Everything that defines a class-conditional run; saved as `config.json`. The DCGAN fields
/// (networks, optimizers, data, schedule, seed …) are those of `train dcgan`, with `model`
/// `"cgan"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CganRunConfig {
    /// The DCGAN settings, `model` being `"cgan"`.
    #[serde(flatten)]
    pub base: DcganRunConfig,
    /// How the networks see the class.
    pub cond: CondMode,
    /// The class names, by label (digits, Fashion-MNIST's garments, or an image folder's
    /// sorted subfolder names).
    pub classes: Vec<String>,
    /// Weight of the auxiliary classifier's loss (acgan).
    pub aux_weight: f64,
    /// Whether the discriminator's auxiliary classifier also learns the classes of the fakes
    /// (acgan), as in the paper's class log-likelihood `L_C`, which sums over real and generated
    /// images (Odena et al. 2017, eq. 2–3). Off by default: on mnist-mini at 3,000 steps (seed 0)
    /// it lowered the evaluator's accuracy on the samples from 96.2 % to 81.2 %, the classifier
    /// learning the generator's early mistakes as truth.
    #[serde(default)]
    pub aux_on_fakes: bool,
}

impl CganRunConfig {
    /// A run of `base`'s settings conditioned by `cond` on `classes`.
    pub fn new(mut base: DcganRunConfig, cond: CondMode, classes: Vec<String>) -> Self {
        base.model = "cgan".into();
        Self {
            base,
            cond,
            classes,
            aux_weight: crate::cgan::CganLoss::default().aux_weight,
            aux_on_fakes: false,
        }
    }

    /// The configuration to build the trainer from: itself, or for a resumed run without its
    /// starting-weight files ([`DcganRunConfig::fresh_or_resumed`]).
    pub fn fresh_or_resumed(&self, resume: bool) -> Cow<'_, Self> {
        match self.base.fresh_or_resumed(resume) {
            Cow::Borrowed(_) => Cow::Borrowed(self),
            Cow::Owned(base) => Cow::Owned(Self {
                base,
                ..self.clone()
            }),
        }
    }

    /// The networks' shape.
    pub fn net(&self) -> CganConfig {
        CganConfig {
            dcgan: self.base.dcgan,
            classes: self.classes.len(),
            cond: self.cond,
        }
    }

    /// The label of a class given by name (`sneaker`) or by number (`7`).
    ///
    /// # Errors
    /// A name that is no class and a number out of range, listing the classes.
    pub fn class_index(&self, class: &str) -> Result<usize> {
        if let Some(i) = self.classes.iter().position(|c| c == class) {
            return Ok(i);
        }
        match class.parse::<usize>() {
            Ok(i) if i < self.classes.len() => Ok(i),
            _ => Err(ModelError::Config(format!(
                "class {class:?} is not one of the run's {} classes: {} (or their numbers 0..{})",
                self.classes.len(),
                self.classes.join(", "),
                self.classes.len() - 1
            ))),
        }
    }
}

/// What one class-conditional step measured: DCGAN's numbers and, for acgan, the classifier's
/// losses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CganMetrics {
    /// Losses and D's probabilities, as DCGAN logs them (the losses include the class terms).
    #[serde(flatten)]
    pub base: StepMetrics,
    /// The auxiliary classifier's cross-entropy on the real batch (acgan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cls_real: Option<f32>,
    /// Its cross-entropy on the fakes, as the generator's step sees them (acgan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cls_fake: Option<f32>,
}

impl StepRecord for CganMetrics {
    fn step(&self) -> u64 {
        self.base.step
    }
    fn values(&self) -> Vec<(&'static str, f32)> {
        let mut v = self.base.values();
        v.extend(self.cls_real.map(|c| ("Cls_real", c)));
        v.extend(self.cls_fake.map(|c| ("Cls_fake", c)));
        v
    }
    fn signals(&self) -> Signals {
        self.base.signals()
    }
}

/// The class-conditional trainer: the networks, their optimizers and the noise source.
pub struct CganTrainer {
    /// The networks and their variables.
    pub nets: GanNets<CganGenerator, CganDiscriminator>,
    /// The generator's optimizer.
    pub opt_g: Adam,
    /// The discriminator's optimizer.
    pub opt_d: Adam,
    /// Noise for the training steps.
    pub noise: SeededRng,
    /// The run's settings.
    pub cfg: CganRunConfig,
    /// Steps done.
    pub step: u64,
    /// The device.
    pub device: Device,
    last_items: usize,
}

impl std::fmt::Debug for CganTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CganTrainer")
            .field("step", &self.step)
            .field("cond", &self.cfg.cond)
            .finish()
    }
}

/// Builds a freshly initialised trainer (DCGAN initialisation from the seed, the streams of
/// `train dcgan`).
pub fn build_trainer(cfg: &CganRunConfig, dev: &Device) -> Result<CganTrainer> {
    gan_core::conv::set_fast_conv(cfg.base.run.fast_conv);
    let net = cfg.net();
    let nets = init_nets(
        cfg.base.run.seed,
        &cfg.base.init,
        dev,
        |vb| CganGenerator::new(&net, vb),
        |vb| CganDiscriminator::new(&net, vb),
    )?;
    Ok(CganTrainer {
        opt_g: Adam::from_varmap(&nets.g_vars, cfg.base.adam_g)?,
        opt_d: Adam::from_varmap(&nets.d_vars, cfg.base.adam_d)?,
        nets,
        noise: SeededRng::with_stream(cfg.base.run.seed, stream::NOISE),
        cfg: cfg.clone(),
        step: 0,
        device: dev.clone(),
        last_items: 0,
    })
}

impl CganTrainer {
    /// One adversarial step on a real batch `[b, …]` with its labels `[b]` (u32).
    ///
    /// # Errors
    /// A label outside the run's classes.
    pub fn step_on(&mut self, real: &Tensor, labels: &Tensor, epoch: u64) -> Result<CganMetrics> {
        let b = real.dim(0)?;
        self.last_items = b;
        let y = one_hot(labels, self.cfg.classes.len())?;
        let z = self
            .noise
            .randn((b, self.cfg.base.dcgan.nz), 0.0, 1.0, &self.device)?;
        let (g, d) = (&self.nets.g, &self.nets.d);
        let fake = g.forward_t(&z, &y, true)?;
        let w = self.cfg.aux_weight;
        let step = self.cfg.base.step;

        // Discriminator: reals, and fakes detached so that no gradient reaches G.
        let real_out = d.forward_t(real, &y, true)?;
        let fake_out = d.forward_t(&fake.detach(), &y, true)?;
        let loss_d = discriminator_loss(&real_out.logits, &fake_out.logits, step.real_label)?;
        let (loss_d, cls_real) = with_class_loss(loss_d, &real_out, labels, w)?;
        let loss_d = match self.cfg.aux_on_fakes {
            true => with_class_loss(loss_d, &fake_out, labels, w)?.0,
            false => loss_d,
        };
        self.opt_d.backward_step(&loss_d)?;

        // Generator, through the updated D (its parameters frozen).
        let out = {
            let _frozen = gan_core::freeze::freeze_params();
            self.nets.d.forward_t(&fake, &y, true)?
        };
        let loss_g = generator_loss(&out.logits, step.loss)?;
        let (loss_g, cls_fake) = with_class_loss(loss_g, &out, labels, w)?;
        self.opt_g.backward_step(&loss_g)?;

        self.step += 1;
        Ok(CganMetrics {
            base: StepMetrics {
                step: self.step,
                epoch,
                loss_d: loss_d.to_scalar::<f32>()?,
                loss_g: loss_g.to_scalar::<f32>()?,
                d_x: sigmoid_mean(&real_out.logits)?,
                d_g_z1: sigmoid_mean(&fake_out.logits)?,
                d_g_z2: sigmoid_mean(&out.logits)?,
                r1: None,
            },
            cls_real,
            cls_fake,
        })
    }
}

/// `loss` plus `w` times the auxiliary classifier's cross-entropy on `labels` when `out` has
/// class logits (acgan), and that cross-entropy.
fn with_class_loss(
    loss: Tensor,
    out: &CganOutput,
    labels: &Tensor,
    w: f64,
) -> Result<(Tensor, Option<f32>)> {
    match &out.class_logits {
        Some(c) => {
            let l = class_loss(c, labels)?;
            Ok(((loss + (&l * w)?)?, Some(l.to_scalar::<f32>()?)))
        }
        None => Ok((loss, None)),
    }
}

impl Trainer for CganTrainer {
    type Batch = gan_data::Batch;
    type Metrics = CganMetrics;

    crate::engine::trainer_fields!(step: step, device: device, noise: noise);
    fn train_step(&mut self, data: &mut crate::engine::Batches<'_>) -> Result<CganMetrics> {
        let batch = data.next_batch(self.step + 1)?;
        let labels = batch.labels.as_ref().ok_or_else(|| {
            ModelError::Config("a class-conditional GAN needs labelled data".into())
        })?;
        self.step_on(&batch.items, labels, batch.epoch as u64)
    }
    fn items(&self, _m: &CganMetrics) -> usize {
        self.last_items
    }
    crate::engine::trainer_parts! {
        "generator", "generator" => nets.g_vars, opt_g;
        "discriminator", "discriminator" => nets.d_vars, opt_d;
    }
    fn base_lrs(&self) -> Vec<f64> {
        vec![self.cfg.base.adam_g.lr, self.cfg.base.adam_d.lr]
    }
    fn generator(&self) -> Option<&dyn GeneratorNet> {
        Some(&self.nets.g)
    }
}

/// Checks that a dataset's labels fit the run's classes: every item labelled, every label
/// below `classes.len()`, every class present.
///
/// # Errors
/// Names the source (`what`), the first label out of range, or the classes without images.
pub fn check_labels(data: &TensorDataset, classes: &[String], what: &str) -> Result<()> {
    let Some(labels) = data.labels() else {
        return Err(ModelError::Config(format!(
            "{what} has no labels: a class-conditional GAN needs IDX data with its label files \
             or an image folder with one subfolder per class"
        )));
    };
    let mut counts = vec![0usize; classes.len()];
    for (i, &l) in labels.iter().enumerate() {
        match counts.get_mut(l as usize) {
            Some(c) => *c += 1,
            None => {
                return Err(ModelError::Config(format!(
                    "{what}: item {i} has label {l}, outside the {} classes 0..{}",
                    classes.len(),
                    classes.len().saturating_sub(1)
                )))
            }
        }
    }
    let empty: Vec<&str> = classes
        .iter()
        .zip(&counts)
        .filter(|(_, &n)| n == 0)
        .map(|(c, _)| c.as_str())
        .collect();
    if !empty.is_empty() {
        return Err(ModelError::Config(format!(
            "{what}: no image of class {}",
            empty.join(", ")
        )));
    }
    Ok(())
}

/// The sample grid: one row per class, 8 samples each, the same 8 noise vectors in every row
/// (drawn once from the seed).
pub fn grid_noise(cfg: &CganRunConfig, dev: &Device) -> Result<(Tensor, Tensor)> {
    let k = cfg.classes.len();
    let mut rng = SeededRng::with_stream(cfg.base.run.seed, stream::FIXED_NOISE);
    let z = rng.randn((8, cfg.base.dcgan.nz), 0.0, 1.0, dev)?;
    let z = z.repeat((k, 1))?;
    let labels: Vec<u32> = (0..k as u32).flat_map(|c| [c; 8]).collect();
    let y = one_hot(&Tensor::from_vec(labels, k * 8, dev)?, k)?;
    Ok((z, y))
}

impl crate::dcgan_run::ImageGan for CganRunConfig {
    type Trainer = CganTrainer;
    fn settings(&self) -> &crate::train::RunSettings {
        &self.base.run
    }
    /// The labels must be class numbers below the number of classes.
    fn check_data(&self, data: &TensorDataset) -> Result<()> {
        check_labels(
            data,
            &self.classes,
            &self.base.data.path.display().to_string(),
        )
    }
    fn trainer(&self, resume: bool, dev: &Device) -> Result<CganTrainer> {
        build_trainer(&self.fresh_or_resumed(resume), dev)
    }
    fn grid_writer(&self, dev: &Device) -> Result<crate::dcgan_run::GridWriter<CganTrainer>> {
        let (z, y) = grid_noise(self, dev)?;
        Ok(Box::new(move |t: &CganTrainer, p: &Path| {
            save_grid(&t.nets.g.forward_t(&z, &y, false)?, 8, p)
        }))
    }
}

/// A trained class-conditional generator loaded from a run folder's checkpoint.
#[derive(Debug)]
pub struct LoadedCgan {
    /// The network.
    pub g: CganGenerator,
    /// The run's configuration.
    pub cfg: CganRunConfig,
    /// The device it lives on.
    pub device: Device,
}

/// Loads the generator of the class-conditional run `run` at checkpoint `name` onto `dev`.
///
/// # Errors
/// A run of another model (named), a missing checkpoint or file.
pub fn load_cgan(run: &RunDir, name: &str, dev: &Device) -> Result<LoadedCgan> {
    let cfg: CganRunConfig = RunConfig::read_as(run, "class-conditional (cgan)")?;
    let (g, mut vars) = on_fresh_vars(dev, |vb| CganGenerator::new(&cfg.net(), vb))?;
    load_vars(
        &mut vars,
        &run.checkpoint(name)?.join("generator.safetensors"),
    )?;
    Ok(LoadedCgan {
        g,
        cfg,
        device: dev.clone(),
    })
}

/// Samples `[n, c, h, w]` of `g` for the rows of `y` `[n, classes]`, from noise drawn with
/// `seed` in chunks of 250 (the chunks of [`crate::monitor::sample_generator`], so that the
/// same seed gives the same z).
pub fn sample_classes(g: &dyn GeneratorNet, y: &Tensor, seed: u64) -> Result<Tensor> {
    let n = y.dim(0)?;
    let mut rng = SeededRng::new(seed);
    let mut out = Vec::new();
    let mut lo = 0;
    while lo < n {
        let b = (n - lo).min(250);
        let z = rng.randn((b, g.latent_dim()), 0.0, 1.0, y.device())?;
        out.push(g.generate_classes(&z, &y.narrow(0, lo, b)?, false)?);
        lo += b;
    }
    Ok(Tensor::cat(&out, 0)?)
}

impl LoadedCgan {
    fn classes(&self) -> usize {
        self.cfg.classes.len()
    }

    /// `n` samples of class `class` (a label).
    pub fn sample_class(&self, class: usize, n: usize, seed: u64) -> Result<Tensor> {
        let labels = Tensor::from_vec(vec![class as u32; n], n, &self.device)?;
        sample_classes(&self.g, &one_hot(&labels, self.classes())?, seed)
    }

    /// `per_class` samples of every class, class after class (`[classes · per_class, …]`).
    pub fn sample_every_class(&self, per_class: usize, seed: u64) -> Result<Tensor> {
        let k = self.classes();
        let labels: Vec<u32> = (0..k as u32).flat_map(|c| vec![c; per_class]).collect();
        let labels = Tensor::from_vec(labels, k * per_class, &self.device)?;
        sample_classes(&self.g, &one_hot(&labels, k)?, seed)
    }

    /// `n` samples, sample `i` of class `i mod classes` (every class equally often).
    pub fn sample_balanced(&self, n: usize, seed: u64) -> Result<Tensor> {
        let labels = cycling_labels(n, self.classes(), &self.device)?;
        sample_classes(&self.g, &one_hot(&labels, self.classes())?, seed)
    }

    /// A walk within class `class`: `rows` rows of `steps` images, each row the spherical
    /// interpolation between two random z.
    pub fn walk_class(&self, class: usize, rows: usize, steps: usize, seed: u64) -> Result<Tensor> {
        let (nz, k) = (self.cfg.base.dcgan.nz, self.classes());
        let steps = steps.max(2);
        let mut rng = SeededRng::new(seed);
        let mut zs = Vec::with_capacity(rows * steps * nz);
        for _ in 0..rows {
            let (a, b) = (rng.normal_vec(nz, 0.0, 1.0), rng.normal_vec(nz, 0.0, 1.0));
            for s in 0..steps {
                zs.extend(slerp(&a, &b, s as f32 / (steps - 1) as f32));
            }
        }
        let z = Tensor::from_vec(zs, (rows * steps, nz), &self.device)?;
        let labels =
            Tensor::from_vec(vec![class as u32; rows * steps], rows * steps, &self.device)?;
        self.g.forward_t(&z, &one_hot(&labels, k)?, false)
    }

    /// From class `from` to class `to`: `rows` rows of `steps` images, each row one random z
    /// with the class vector blended linearly from `from`'s one-hot to `to`'s (which blends
    /// the class embeddings: the conditional BatchNorm's scales and shifts, or the one-hot input
    /// of concat).
    pub fn between_classes(
        &self,
        from: usize,
        to: usize,
        rows: usize,
        steps: usize,
        seed: u64,
    ) -> Result<Tensor> {
        let (nz, k) = (self.cfg.base.dcgan.nz, self.classes());
        let steps = steps.max(2);
        let mut rng = SeededRng::new(seed);
        let (mut zs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..rows {
            let a = rng.normal_vec(nz, 0.0, 1.0);
            for s in 0..steps {
                let t = s as f32 / (steps - 1) as f32;
                zs.extend_from_slice(&a);
                let mut y = vec![0f32; k];
                y[from] += 1.0 - t;
                y[to] += t;
                ys.extend(y);
            }
        }
        let n = rows * steps;
        let z = Tensor::from_vec(zs, (n, nz), &self.device)?;
        let y = Tensor::from_vec(ys, (n, k), &self.device)?;
        self.g.forward_t(&z, &y, false)
    }
}
