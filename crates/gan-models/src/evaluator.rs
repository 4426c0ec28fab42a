//! Evaluator networks and sample-quality evaluation.
//!
//! A small convolutional classifier per dataset (MNIST, Fashion-MNIST) is trained by the project
//! (`cargo xtask train-evaluator`) and committed under `datasets/evaluators/` as
//! `NAME.safetensors` (weights) and `NAME.json` (an [`EvaluatorCard`]: the network's shape, the
//! training settings and the measured test accuracy). Its penultimate layer gives the features
//! of the Fréchet distance ("FID" in that feature space) and of precision/recall; its class
//! probabilities give the Inception-Score analogue and the class coverage. The math is in
//! [`gan_core::eval_metrics`].
//!
//! [`evaluate`] scores a set of images against a [`ReferenceSet`] (the real test split) with any
//! [`FeatureNet`]: the classifiers here, or the Inception network.

use crate::train::on_fresh_vars;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Linear, VarBuilder, VarMap};
use gan_core::conv::{Conv2d, ConvParams};
use gan_core::eval_metrics::{
    class_coverage, fid_min_samples, inception_score, inception_score_min_samples,
    kernel_inception_distance, kid_subset_size, knn_sq_radii, prdc_given, ClassCoverage,
    DensityCoverage, Gaussian, InceptionScore, Kid, PrecisionRecall, KID_SUBSETS, KID_SUBSET_SIZE,
};
use gan_core::init::pytorch_default_init;
use gan_core::optim::{Adam, AdamConfig};
use gan_core::rng::SeededRng;
use gan_data::{BatchConfig, Batcher, Dataset, TensorDataset};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::run::{read_json, write_json};

/// The shape of an evaluator classifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    /// Input channels.
    pub channels: usize,
    /// Input side (28).
    pub image_size: usize,
    /// Output classes.
    pub classes: usize,
    /// Channels of the first convolution.
    pub conv1: usize,
    /// Channels of the second convolution.
    pub conv2: usize,
    /// Width of the penultimate (feature) layer.
    pub features: usize,
}

impl Default for ClassifierConfig {
    /// 1 × 28 × 28 inputs, 10 classes, convolutions of 32 and 64 channels, 128 features.
    fn default() -> Self {
        Self {
            channels: 1,
            image_size: 28,
            classes: 10,
            conv1: 32,
            conv2: 64,
            features: 128,
        }
    }
}

/// conv 3×3 → ReLU → max-pool 2 → conv 3×3 → ReLU → max-pool 2 → linear → ReLU (the features)
/// → linear (the class logits). Weight names: `conv1`, `conv2`, `fc1`, `fc2`.
#[derive(Debug)]
pub struct Classifier {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
    cfg: ClassifierConfig,
}

impl Classifier {
    /// Builds the network, fetching or creating its variables in `vb`.
    pub fn new(cfg: &ClassifierConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.image_size % 4 != 0 || cfg.image_size == 0 {
            return Err(ModelError::Config(format!(
                "classifier image size {} is not a positive multiple of 4",
                cfg.image_size
            )));
        }
        let p = ConvParams::new(1, 1);
        let flat = cfg.conv2 * (cfg.image_size / 4).pow(2);
        Ok(Self {
            conv1: Conv2d::new(cfg.channels, cfg.conv1, 3, p, true, vb.pp("conv1"))?,
            conv2: Conv2d::new(cfg.conv1, cfg.conv2, 3, p, true, vb.pp("conv2"))?,
            fc1: candle_nn::linear(flat, cfg.features, vb.pp("fc1"))?,
            fc2: candle_nn::linear(cfg.features, cfg.classes, vb.pp("fc2"))?,
            cfg: *cfg,
        })
    }

    /// The shape.
    pub fn config(&self) -> &ClassifierConfig {
        &self.cfg
    }

    /// Features and class logits.
    ///
    /// # Shapes
    /// `xs`: `[b, channels, image_size, image_size]` in [-1, 1] → (`[b, features]`,
    /// `[b, classes]`).
    pub fn forward_features(&self, xs: &Tensor) -> Result<(Tensor, Tensor)> {
        let xs = self.conv1.forward(xs)?.relu()?.max_pool2d(2)?; // [b, conv1, s/2, s/2]
        let xs = self.conv2.forward(&xs)?.relu()?.max_pool2d(2)?; // [b, conv2, s/4, s/4]
        let feats = self.fc1.forward(&xs.flatten_from(1)?)?.relu()?; // [b, features]
        let logits = self.fc2.forward(&feats)?; // [b, classes]
        Ok((feats, logits))
    }
}

/// How an evaluator classifier is trained (`cargo xtask train-evaluator`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluatorTrainConfig {
    /// The network.
    pub classifier: ClassifierConfig,
    /// Passes over the training split.
    pub epochs: usize,
    /// Images per batch.
    pub batch_size: usize,
    /// Adam's initial learning rate, annealed to 0 along a cosine over the run.
    pub lr: f64,
    /// Random translation of the training images by up to this many pixels on each axis
    /// (data augmentation; 0 turns it off).
    pub max_shift: usize,
    /// The seed of the initial weights, the batch order and the augmentation.
    pub seed: u64,
}

impl EvaluatorTrainConfig {
    /// The settings used for the committed evaluators: on `mnist-mini` (9,000 images) more epochs
    /// with 1-pixel shifts, on the 60,000 images of `mnist` or `fashion-mnist` fewer epochs.
    pub fn for_dataset(name: &str, train_items: usize) -> Self {
        let small = train_items < 20_000;
        let fashion = name.contains("fashion");
        Self {
            // 32 and 64 channels: a 16/32 network stayed under 90% on Fashion-MNIST in 5
            // epochs and was not confident enough on MNIST for an IS analogue near 10.
            classifier: ClassifierConfig::default(),
            epochs: if small {
                12
            } else if fashion {
                5
            } else {
                4
            },
            batch_size: 64,
            lr: 1e-3,
            max_shift: if fashion { 0 } else { 1 },
            seed: 0,
        }
    }
}

/// What `NAME.json` beside `NAME.safetensors` records about an evaluator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluatorCard {
    /// `mnist` or `fashion-mnist`.
    pub name: String,
    /// The dataset it was trained on (`mnist`, `mnist-mini`, `fashion-mnist`).
    pub trained_on: String,
    /// Training images.
    pub train_items: usize,
    /// Test images the accuracy was measured on.
    pub test_items: usize,
    /// Accuracy on the test split, in [0, 1].
    pub test_accuracy: f64,
    /// Mean cross-entropy on the test split.
    pub test_loss: f64,
    /// The training settings (with the network's shape).
    pub training: EvaluatorTrainConfig,
    /// Wall-clock seconds the training took.
    pub seconds: f64,
    /// The command that made it.
    pub command: String,
}

/// Shifts each `[c, s, s]` image of `xs` by a random offset in `[-max, max]²`, filling with -1
/// (the background of images in [-1, 1]).
fn random_shift(xs: &mut [f32], c: usize, s: usize, max: usize, rng: &mut SeededRng) {
    if max == 0 {
        return;
    }
    let span = 2 * max as u64 + 1;
    for img in xs.chunks_exact_mut(c * s * s) {
        let dx = (rng.next_u64() % span) as isize - max as isize;
        let dy = (rng.next_u64() % span) as isize - max as isize;
        let src = img.to_vec();
        for ch in 0..c {
            for y in 0..s as isize {
                for x in 0..s as isize {
                    let (sx, sy) = (x - dx, y - dy);
                    let inside = (0..s as isize).contains(&sx) && (0..s as isize).contains(&sy);
                    img[ch * s * s + (y as usize) * s + x as usize] = if inside {
                        src[ch * s * s + (sy as usize) * s + sx as usize]
                    } else {
                        -1.0
                    };
                }
            }
        }
    }
}

/// Accuracy and mean cross-entropy of `net` on a labelled dataset.
pub fn test_accuracy(net: &Classifier, ds: &TensorDataset, dev: &Device) -> Result<(f64, f64)> {
    let labels = ds.labels().ok_or_else(|| {
        ModelError::Config("the test split has no labels: cannot measure accuracy".into())
    })?;
    let (mut correct, mut loss) = (0usize, 0f64);
    for (lo, xs) in chunks(ds, 500, dev)? {
        let (_, logits) = net.forward_features(&xs)?;
        let n = xs.dim(0)?;
        let target = Tensor::from_slice(&labels[lo..lo + n], n, dev)?;
        loss +=
            candle_nn::loss::cross_entropy(&logits, &target)?.to_scalar::<f32>()? as f64 * n as f64;
        let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
        correct += pred
            .iter()
            .zip(&labels[lo..lo + n])
            .filter(|(p, l)| p == l)
            .count();
    }
    let n = ds.len().max(1) as f64;
    Ok((correct as f64 / n, loss / n))
}

/// Consecutive batches of `ds` as tensors, with the index of their first item.
fn chunks(ds: &TensorDataset, size: usize, dev: &Device) -> Result<Vec<(usize, Tensor)>> {
    let shape = ds.item_shape().to_vec();
    let item: usize = shape.iter().product();
    let mut out = Vec::new();
    for lo in (0..ds.len()).step_by(size.max(1)) {
        let hi = (lo + size).min(ds.len());
        let mut dims = vec![hi - lo];
        dims.extend(&shape);
        let data = &ds.data()[lo * item..hi * item];
        out.push((lo, Tensor::from_slice(data, dims, dev)?));
    }
    Ok(out)
}

/// Trains a classifier on `train` and measures it on `test`; `log` receives one line per epoch.
/// Returns the network, its variables and the card (with `name`, `trained_on` and `command` to
/// be filled in by the caller).
pub fn train_classifier(
    cfg: &EvaluatorTrainConfig,
    train: &TensorDataset,
    test: &TensorDataset,
    dev: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<(Classifier, VarMap, EvaluatorCard)> {
    let c = &cfg.classifier;
    let want = [c.channels, c.image_size, c.image_size];
    for (what, ds) in [("training", train), ("test", test)] {
        if ds.item_shape() != want {
            return Err(ModelError::Config(format!(
                "{what} images have shape {:?}, the classifier takes {want:?}",
                ds.item_shape()
            )));
        }
    }
    if train.labels().is_none() {
        return Err(ModelError::Config(
            "the training split has no labels".into(),
        ));
    }
    let start = Instant::now();
    let (net, vars) = on_fresh_vars(dev, |vb| Classifier::new(c, vb))?;
    pytorch_default_init(&vars, &mut SeededRng::with_stream(cfg.seed, 0))?;
    let mut opt = Adam::from_varmap(
        &vars,
        AdamConfig {
            lr: cfg.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
    )?;
    let mut batcher = Batcher::new(
        train,
        BatchConfig {
            batch_size: cfg.batch_size,
            shuffle: true,
            drop_last: true,
            seed: cfg.seed,
        },
        dev,
    )?;
    let mut aug = SeededRng::with_stream(cfg.seed, 1);
    let per_epoch = train.len() / cfg.batch_size;
    let total = (per_epoch * cfg.epochs).max(1);
    let mut step = 0usize;
    for epoch in 0..cfg.epochs {
        let (mut sum, mut count) = (0f64, 0usize);
        for _ in 0..per_epoch {
            let batch = batcher.next_batch()?;
            let labels = batch
                .labels
                .ok_or_else(|| ModelError::Config("a batch without labels".into()))?;
            let xs = if cfg.max_shift > 0 {
                let dims = batch.items.dims().to_vec();
                let mut v: Vec<f32> = batch.items.flatten_all()?.to_vec1()?;
                random_shift(&mut v, c.channels, c.image_size, cfg.max_shift, &mut aug);
                Tensor::from_vec(v, dims, dev)?
            } else {
                batch.items
            };
            let lr =
                cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total as f64).cos());
            opt.set_lr(lr);
            let (_, logits) = net.forward_features(&xs)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
            opt.backward_step(&loss)?;
            sum += loss.to_scalar::<f32>()? as f64;
            count += 1;
            step += 1;
        }
        let (acc, test_loss) = test_accuracy(&net, test, dev)?;
        log(&format!(
            "epoch {}/{}: train loss {:.4}, test accuracy {:.2}% (loss {:.4}), {:.0} s",
            epoch + 1,
            cfg.epochs,
            sum / count.max(1) as f64,
            acc * 100.0,
            test_loss,
            start.elapsed().as_secs_f64()
        ));
    }
    let (acc, test_loss) = test_accuracy(&net, test, dev)?;
    let card = EvaluatorCard {
        name: String::new(),
        trained_on: String::new(),
        train_items: train.len(),
        test_items: test.len(),
        test_accuracy: acc,
        test_loss,
        training: cfg.clone(),
        seconds: start.elapsed().as_secs_f64(),
        command: String::new(),
    };
    Ok((net, vars, card))
}

/// Saves an evaluator as `dir/NAME.safetensors` and `dir/NAME.json`.
pub fn save_evaluator(dir: &Path, vars: &VarMap, card: &EvaluatorCard) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let weights = dir.join(format!("{}.safetensors", card.name));
    vars.save(&weights).map_err(|e| ModelError::Checkpoint {
        path: weights.clone(),
        reason: e.to_string(),
    })?;
    write_json(&dir.join(format!("{}.json", card.name)), card)
}

/// What an evaluator network gives for a batch of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    /// Features, `n × dim`, row-major.
    pub features: Vec<f32>,
    /// Feature width.
    pub dim: usize,
    /// Class probabilities, `n × classes`, when the network classifies.
    pub probs: Option<Vec<f32>>,
    /// Number of classes (0 without probabilities).
    pub classes: usize,
}

impl Embedding {
    fn extend(&mut self, other: Embedding) {
        self.features.extend(other.features);
        if let (Some(p), Some(o)) = (&mut self.probs, other.probs) {
            p.extend(o);
        }
    }

    /// Number of images embedded.
    pub fn len(&self) -> usize {
        self.features.len() / self.dim.max(1)
    }

    /// Whether no image was embedded.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }
}

/// A network that embeds images for evaluation.
pub trait FeatureNet: std::fmt::Debug {
    /// A short name for reports (`mnist`, `inception`).
    fn name(&self) -> String;
    /// The input it takes: (channels, side). Images are converted to it first.
    fn input(&self) -> (usize, usize);
    /// Embeds a batch `[b, channels, side, side]` in [-1, 1].
    fn embed(&self, xs: &Tensor) -> Result<Embedding>;
    /// The device it runs on.
    fn device(&self) -> &Device;
    /// Images per forward pass.
    fn batch_size(&self) -> usize {
        500
    }
    /// The width of its features, when known before embedding anything.
    fn feature_dim(&self) -> Option<usize> {
        None
    }
    /// A hash of its weights (FNV-1a of the weights file), when known: what keys cached
    /// reference statistics ([`cached_reference`]) to the network. `None`: never cached.
    fn weights_hash(&self) -> Option<u64> {
        None
    }
}

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// [`fnv1a`] of the file at `path`.
pub fn fnv1a_file(path: &Path) -> Result<u64> {
    Ok(fnv1a(
        &std::fs::read(path).map_err(|e| ModelError::io(path, e))?,
    ))
}

/// A trained evaluator classifier loaded from `datasets/evaluators/`.
#[derive(Debug)]
pub struct ClassifierEvaluator {
    net: Classifier,
    /// Its card.
    pub card: EvaluatorCard,
    device: Device,
    weights_hash: u64,
}

/// The folder of the committed evaluators, under a datasets folder.
pub fn evaluators_dir(datasets_dir: &Path) -> PathBuf {
    datasets_dir.join("evaluators")
}

impl ClassifierEvaluator {
    /// Loads `dir/NAME.json` and `dir/NAME.safetensors`.
    pub fn load(dir: &Path, name: &str, dev: &Device) -> Result<Self> {
        let card_path = dir.join(format!("{name}.json"));
        if !card_path.is_file() {
            return Err(ModelError::Checkpoint {
                path: card_path,
                reason: format!(
                    "no evaluator named {name:?} (train one with `cargo xtask train-evaluator {name}`)"
                ),
            });
        }
        let card: EvaluatorCard = read_json(&card_path)?;
        let (net, mut vars) =
            on_fresh_vars(dev, |vb| Classifier::new(&card.training.classifier, vb))?;
        let weights = dir.join(format!("{name}.safetensors"));
        crate::train::load_vars(&mut vars, &weights)?;
        Ok(Self {
            net,
            card,
            device: dev.clone(),
            weights_hash: fnv1a_file(&weights)?,
        })
    }

    /// The network.
    pub fn classifier(&self) -> &Classifier {
        &self.net
    }
}

impl FeatureNet for ClassifierEvaluator {
    fn name(&self) -> String {
        self.card.name.clone()
    }

    fn input(&self) -> (usize, usize) {
        let c = self.net.config();
        (c.channels, c.image_size)
    }

    fn feature_dim(&self) -> Option<usize> {
        Some(self.net.config().features)
    }

    fn weights_hash(&self) -> Option<u64> {
        Some(self.weights_hash)
    }

    fn embed(&self, xs: &Tensor) -> Result<Embedding> {
        let (feats, logits) = self.net.forward_features(xs)?;
        let probs = candle_nn::ops::softmax_last_dim(&logits)?;
        let cfg = self.net.config();
        Ok(Embedding {
            features: feats.flatten_all()?.to_vec1()?,
            dim: cfg.features,
            probs: Some(probs.flatten_all()?.to_vec1()?),
            classes: cfg.classes,
        })
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

/// Converts images `[n, c, h, w]` in [-1, 1] to the `(channels, side)` a network takes:
/// grey ↔ RGB (mean of the channels, or the grey value repeated) and a bilinear resize.
pub fn to_input(images: &Tensor, channels: usize, side: usize) -> Result<Tensor> {
    let (_, c, h, w) = images.dims4()?;
    let images = images.to_dtype(DType::F32)?;
    let xs = match (c, channels) {
        (a, b) if a == b => images,
        (3, 1) => images.mean_keepdim(1)?,
        (1, 3) => images.repeat((1, 3, 1, 1))?,
        (a, b) => {
            return Err(ModelError::Config(format!(
                "cannot convert {a}-channel images to {b} channels"
            )))
        }
    };
    if (h, w) == (side, side) {
        return Ok(xs);
    }
    bilinear_resize(&xs, side)
}

/// Bilinear resize (align_corners = false, as PyTorch's `interpolate`) of `[n, c, h, w]` to
/// `[n, c, side, side]`, on the host.
pub fn bilinear_resize(xs: &Tensor, side: usize) -> Result<Tensor> {
    let (n, c, h, w) = xs.dims4()?;
    let src: Vec<f32> = xs.flatten_all()?.to_vec1()?;
    let mut out = vec![0f32; n * c * side * side];
    let coords = |size: usize| -> Vec<(usize, usize, f32)> {
        (0..side)
            .map(|o| {
                let x = ((o as f32 + 0.5) * size as f32 / side as f32 - 0.5).max(0.0);
                let x0 = (x.floor() as usize).min(size - 1);
                let x1 = (x0 + 1).min(size - 1);
                (x0, x1, x - x0 as f32)
            })
            .collect()
    };
    let (ys, xs_) = (coords(h), coords(w));
    for (plane, dst) in src
        .chunks_exact(h * w)
        .zip(out.chunks_exact_mut(side * side))
    {
        for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
            for (ox, &(x0, x1, fx)) in xs_.iter().enumerate() {
                let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
                let bot = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
                dst[oy * side + ox] = top * (1.0 - fy) + bot * fy;
            }
        }
    }
    Ok(Tensor::from_vec(out, (n, c, side, side), xs.device())?)
}

/// Told how a long phase of an evaluation goes (sampling, embedding): [`Progress::start`] when a
/// phase begins, with the items it will do (0 when unknown), then [`Progress::advance`] as
/// items are done. `()` ignores both.
pub trait Progress {
    /// A phase named `phase` (`sampling`, `embedding the samples`) begins.
    fn start(&mut self, phase: &str, total: usize);
    /// `items` more items of the current phase are done.
    fn advance(&mut self, items: usize);
}

impl Progress for () {
    fn start(&mut self, _phase: &str, _total: usize) {}
    fn advance(&mut self, _items: usize) {}
}

/// Embeds batches `[b, c, h, w]` in [-1, 1] one after the other, reporting each to `progress`.
fn embed_batches(
    net: &dyn FeatureNet,
    batches: impl Iterator<Item = Result<Tensor>>,
    progress: &mut dyn Progress,
) -> Result<Embedding> {
    let (channels, side) = net.input();
    let mut all: Option<Embedding> = None;
    for xs in batches {
        let xs = xs?;
        let len = xs.dim(0)?;
        let e = net.embed(&to_input(&xs, channels, side)?.to_device(net.device())?)?;
        match &mut all {
            None => all = Some(e),
            Some(a) => a.extend(e),
        }
        progress.advance(len);
    }
    all.ok_or_else(|| ModelError::Config("no image to evaluate".into()))
}

/// Embeds `images` (`[n, c, h, w]` in [-1, 1], any device) in batches, reporting the images
/// embedded to `progress` (the caller starts the phase; `&mut ()` reports nowhere).
pub fn embed_images_with(
    net: &dyn FeatureNet,
    images: &Tensor,
    progress: &mut dyn Progress,
) -> Result<Embedding> {
    let n = images.dim(0)?;
    let bs = net.batch_size().max(1);
    let batches = (0..n)
        .step_by(bs)
        .map(|lo| Ok(images.narrow(0, lo, bs.min(n - lo))?));
    embed_batches(net, batches, progress)
}

/// Embeds the items of an image dataset (`[c, h, w]` items in [-1, 1]), reporting the items
/// embedded to `progress` (the caller starts the phase; `&mut ()` reports nowhere).
pub fn embed_dataset_with(
    net: &dyn FeatureNet,
    ds: &TensorDataset,
    progress: &mut dyn Progress,
) -> Result<Embedding> {
    let batches = chunks(ds, net.batch_size(), &Device::Cpu)?
        .into_iter()
        .map(|(_, xs)| Ok(xs));
    embed_batches(net, batches, progress)
}

/// The real images generated samples are compared with: their features, Gaussian and k-NN radii.
#[derive(Clone, Debug)]
pub struct ReferenceSet {
    /// What they are, for reports (`mnist-mini test split`).
    pub name: String,
    /// Their embedding.
    pub embedding: Embedding,
    /// The Gaussian fitted to their features.
    pub gaussian: Gaussian,
    /// Squared radius of each one's k-th nearest neighbour (k = [`PR_K`]); empty when the set
    /// has k images or fewer, or only a Gaussian.
    pub radii: Vec<f32>,
    /// Their class labels, when the images were labelled (the per-class scores of
    /// [`crate::class_eval`] need them).
    pub labels: Option<Vec<u32>>,
}

/// The neighbourhood size of precision and recall.
pub const PR_K: usize = 3;

impl ReferenceSet {
    /// Embeds the images of `ds` with `net`.
    pub fn new(net: &dyn FeatureNet, ds: &TensorDataset, name: &str) -> Result<Self> {
        Self::new_with(net, ds, name, &mut ())
    }

    /// [`ReferenceSet::new`], showing the embedding as a phase of `progress`.
    pub fn new_with(
        net: &dyn FeatureNet,
        ds: &TensorDataset,
        name: &str,
        progress: &mut dyn Progress,
    ) -> Result<Self> {
        progress.start(&format!("embedding the {name}"), gan_data::Dataset::len(ds));
        let embedding = embed_dataset_with(net, ds, progress)?;
        Ok(Self {
            labels: ds.labels().map(<[u32]>::to_vec),
            ..Self::from_embedding(embedding, name)?
        })
    }

    /// A reference set from an embedding computed elsewhere.
    pub fn from_embedding(embedding: Embedding, name: &str) -> Result<Self> {
        let gaussian = Gaussian::fit(&embedding.features, embedding.dim)
            .map_err(|e| ModelError::Config(format!("reference set {name}: {e}")))?;
        let radii = if embedding.len() > PR_K {
            knn_sq_radii(&embedding.features, embedding.dim, PR_K)
                .map_err(|e| ModelError::Config(format!("reference set {name}: {e}")))?
        } else {
            Vec::new()
        };
        Ok(Self {
            name: name.into(),
            embedding,
            gaussian,
            radii,
            labels: None,
        })
    }

    /// A reference set known only by its Gaussian (a pytorch-fid statistics file, see
    /// [`load_fid_stats`]): FID only, no precision/recall or KID, which need the features.
    pub fn from_gaussian(gaussian: Gaussian, name: &str) -> Self {
        Self {
            name: name.into(),
            embedding: Embedding {
                features: Vec::new(),
                dim: gaussian.dim(),
                probs: None,
                classes: 0,
            },
            gaussian,
            radii: Vec::new(),
            labels: None,
        }
    }

    /// Whether the reference holds the images' features (not only their Gaussian).
    pub fn has_features(&self) -> bool {
        !self.embedding.is_empty()
    }

    /// Number of reference images (0 for a reference known only by its Gaussian).
    pub fn len(&self) -> usize {
        self.embedding.len()
    }

    /// Whether the set is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.embedding.is_empty()
    }
}

/// The scores of a set of images; every report states both sample counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The evaluator network (`mnist`, `fashion-mnist`, `inception`).
    pub evaluator: String,
    /// Images scored.
    pub samples: usize,
    /// The reference set.
    pub reference: String,
    /// Images in the reference set.
    pub reference_samples: usize,
    /// Fréchet distance between the feature Gaussians (NaN, `null` in JSON, when a set has
    /// fewer than 2 samples).
    pub fid: f64,
    /// The Inception-Score analogue (10 splits), when the network classifies.
    pub inception_score: Option<InceptionScore>,
    /// Class coverage and KL against uniform, when the network classifies.
    pub coverage: Option<ClassCoverage>,
    /// Improved precision and recall (k = 3; NaN when a set has k samples or fewer).
    pub precision_recall: PrecisionRecall,
    /// Density and coverage (Naeem et al. 2020) on the same k-NN balls of the real set (none
    /// when precision/recall is NaN, or in reports written before they were added).
    #[serde(default)]
    pub density_coverage: Option<DensityCoverage>,
    /// Kernel Inception Distance on the same features ([`KID_SUBSETS`] subsets of up to
    /// [`KID_SUBSET_SIZE`], at most half the smaller set ([`kid_subset_size`]); none when a set
    /// has fewer than 2 samples).
    #[serde(default)]
    pub kid: Option<Kid>,
    /// Why some values above are not comparable or missing: too few samples for a metric (see
    /// [`sample_warnings`]). Empty when every metric had the samples it needs.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Seconds the scoring took (embedding included).
    pub seconds: f64,
}

/// The splits of the Inception-Score analogue.
pub const IS_SPLITS: usize = 10;

/// The warnings of a scoring of `samples` images against `reference` images with features of
/// width `dim` (and `classes` classes, 0 without): one line per metric whose sample count is
/// below what it needs.
///
/// - FID: each set needs more samples than features ([`fid_min_samples`], `dim + 1`) for a
///   full-rank covariance, and at least 2 for any value.
/// - Inception Score: [`inception_score_min_samples`] (10 per class and split).
/// - KID: [`KID_SUBSET_SIZE`] in each set (the subset size of clean-fid and torch-fidelity),
///   and at least 2 for any value. From 1,000 to 2,000 samples its subsets take half the smaller
///   set ([`kid_subset_size`]): the mean is as good (unbiased, from every sample), only the ±
///   is that of a smaller subset, so no warning.
/// - Precision/recall, density and coverage: more than k = [`PR_K`] samples in each set, or no
///   value.
///
/// Below the first count the value is given with its warning; below the second (the least the
/// formula takes) it is missing, with its warning.
///
/// `reference` is `None` for a reference known only by its Gaussian (a statistics file): its
/// count is unknown, and KID and precision/recall, which need its features, are not computed.
pub fn sample_warnings(
    samples: usize,
    reference: Option<usize>,
    dim: usize,
    classes: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let least = samples.min(reference.unwrap_or(usize::MAX));
    let counts = match reference {
        Some(r) => format!("{samples} samples against {r} reference images"),
        None => format!("{samples} samples"),
    };
    let fid_need = fid_min_samples(dim);
    if least < 2 {
        out.push(format!(
            "FID not computed: {counts}; a covariance needs at least 2 in each set"
        ));
    } else if least < fid_need {
        out.push(format!(
            "FID is not comparable: {counts}; a full-rank covariance of {dim} features needs \
             at least {fid_need} in each set"
        ));
    }
    if classes > 0 {
        let need = inception_score_min_samples(classes, IS_SPLITS);
        if samples < need {
            out.push(format!(
                "Inception Score is biased low: {samples} samples; {IS_SPLITS} splits of {classes} \
                 classes need at least {need}"
            ));
        }
    }
    if reference.is_none() {
        out.push(
            "KID, precision/recall, density and coverage not computed: the reference is a \
             statistics file (mean and covariance only; they need the reference features)"
                .into(),
        );
        return out;
    }
    if least < 2 {
        out.push(format!(
            "KID not computed: {counts}; the unbiased estimate needs at least 2 in each set"
        ));
    } else if least < KID_SUBSET_SIZE {
        let m = kid_subset_size(KID_SUBSET_SIZE, samples, reference.unwrap_or(samples));
        out.push(format!(
            "KID is not comparable: {counts}; it needs {KID_SUBSET_SIZE} in each set (its \
             subsets take {m} from each set, half the smaller set)"
        ));
    }
    if least <= PR_K {
        out.push(format!(
            "precision/recall, density and coverage not computed: {counts}; k = {PR_K} nearest \
             neighbours need at \
             least {} in each set",
            PR_K + 1
        ));
    }
    out
}

/// `v` with `decimals` decimals, without the sign of a value that rounds to zero (`-0.000` is
/// printed `0.000`), and `n/a` for NaN.
pub fn fmt_fixed(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

fn metric_err(e: gan_core::eval_metrics::EvalError) -> ModelError {
    ModelError::Config(format!("evaluation: {e}"))
}

/// Scores an embedding against a reference set.
pub fn score_embedding(
    net_name: &str,
    e: &Embedding,
    reference: &ReferenceSet,
    started: Instant,
) -> Result<EvalReport> {
    if e.dim != reference.embedding.dim {
        return Err(ModelError::Config(format!(
            "features of width {} against a reference of width {}",
            e.dim, reference.embedding.dim
        )));
    }
    let n = e.len();
    if n == 0 {
        return Err(ModelError::Config("no image to evaluate".into()));
    }
    let fid = if n >= 2 {
        let g = Gaussian::fit(&e.features, e.dim).map_err(metric_err)?;
        gan_core::eval_metrics::frechet_distance(&g, &reference.gaussian).map_err(metric_err)?
    } else {
        f64::NAN
    };
    let (is, coverage) = match &e.probs {
        Some(p) => (
            Some(inception_score(p, e.classes, IS_SPLITS).map_err(metric_err)?),
            Some(class_coverage(p, e.classes).map_err(metric_err)?),
        ),
        None => (None, None),
    };
    let with_features = reference.has_features();
    let (pr, dc) = if n > PR_K && reference.len() > PR_K {
        let (pr, dc) = prdc_given(
            &reference.embedding.features,
            &reference.radii,
            &e.features,
            e.dim,
            PR_K,
        )
        .map_err(metric_err)?;
        (pr, Some(dc))
    } else {
        let pr = PrecisionRecall {
            precision: f64::NAN,
            recall: f64::NAN,
            k: PR_K,
        };
        (pr, None)
    };
    let kid = if n >= 2 && with_features {
        Some(
            kernel_inception_distance(
                &reference.embedding.features,
                &e.features,
                e.dim,
                KID_SUBSETS,
                KID_SUBSET_SIZE,
                0,
            )
            .map_err(metric_err)?,
        )
    } else {
        None
    };
    let classes = if e.probs.is_some() { e.classes } else { 0 };
    Ok(EvalReport {
        kid,
        warnings: sample_warnings(n, with_features.then_some(reference.len()), e.dim, classes),
        evaluator: net_name.into(),
        samples: e.len(),
        reference: reference.name.clone(),
        reference_samples: reference.len(),
        fid,
        inception_score: is,
        coverage,
        precision_recall: pr,
        density_coverage: dc,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What a [`FeatureNet`] embeds: a batch of images (`[n, c, h, w]` in [-1, 1], a [`Tensor`])
/// or the items of an image dataset (a [`TensorDataset`]).
pub trait Embed {
    /// Embeds the items with `net`, reporting those done to `progress` (`&mut ()`: nowhere).
    fn embed_with(&self, net: &dyn FeatureNet, progress: &mut dyn Progress) -> Result<Embedding>;
}

impl Embed for Tensor {
    fn embed_with(&self, net: &dyn FeatureNet, progress: &mut dyn Progress) -> Result<Embedding> {
        embed_images_with(net, self, progress)
    }
}

impl Embed for TensorDataset {
    fn embed_with(&self, net: &dyn FeatureNet, progress: &mut dyn Progress) -> Result<Embedding> {
        embed_dataset_with(net, self, progress)
    }
}

/// Scores `items` (images or a dataset, see [`Embed`]) against `reference` with `net`.
pub fn evaluate(
    net: &dyn FeatureNet,
    items: &dyn Embed,
    reference: &ReferenceSet,
) -> Result<EvalReport> {
    let started = Instant::now();
    let e = items.embed_with(net, &mut ())?;
    score_embedding(&net.name(), &e, reference, started)
}

impl EvalReport {
    /// The scores as (label, value) rows: the lines of [`EvalReport::table`] and of the run
    /// report's table.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = vec![
            ("evaluator".into(), self.evaluator.clone()),
            ("samples".into(), self.samples.to_string()),
            (
                "reference".into(),
                if self.reference_samples == 0 {
                    self.reference.clone()
                } else {
                    format!("{} ({} images)", self.reference, self.reference_samples)
                },
            ),
            ("FID (evaluator features)".into(), fmt_fixed(self.fid, 3)),
        ];
        if let Some(kid) = &self.kid {
            let detail = format!("{} subsets of {}", kid.subsets, kid.subset_size);
            let value = mean_pm_std(kid.mean, kid.std, 5, &detail);
            rows.push(("KID (evaluator features)".into(), value));
        }
        if let Some(is) = &self.inception_score {
            let value = mean_pm_std(is.mean, is.std, 3, &format!("{} splits", is.splits));
            rows.push(("Inception Score analogue".into(), value));
        }
        if let Some(c) = &self.coverage {
            rows.push((
                "class coverage".into(),
                format!(
                    "{}/{} (a class needs {} samples)",
                    c.covered, c.classes, c.min_count
                ),
            ));
            rows.push((
                "class KL vs uniform".into(),
                format!("{} nats", fmt_fixed(c.kl_uniform, 4)),
            ));
            rows.push(("class histogram".into(), format!("{:?}", c.histogram)));
        }
        let pr = &self.precision_recall;
        rows.push((
            format!("precision (k={})", pr.k),
            fmt_fixed(pr.precision, 4),
        ));
        rows.push((format!("recall (k={})", pr.k), fmt_fixed(pr.recall, 4)));
        if let Some(dc) = &self.density_coverage {
            rows.push((format!("density (k={})", dc.k), fmt_fixed(dc.density, 4)));
            rows.push((
                format!("coverage (k-NN, k={})", dc.k),
                fmt_fixed(dc.coverage, 4),
            ));
        }
        for w in &self.warnings {
            rows.push(("warning".into(), w.clone()));
        }
        rows.push(("seconds".into(), format!("{:.1}", self.seconds)));
        rows
    }

    /// The scores as an aligned text table.
    pub fn table(&self) -> String {
        let rows = self.rows();
        let w = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<w$}  {v}\n"))
            .collect()
    }
}

/// The evaluator that suits a training data source: `mnist` for MNIST and `mnist-mini`,
/// `fashion-mnist` for Fashion-MNIST (also for folders whose name says so); none otherwise.
pub fn evaluator_for_data(source: &str) -> Option<&'static str> {
    let name = Path::new(source)
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.contains("fashion") {
        Some("fashion-mnist")
    } else if name.contains("mnist") {
        Some("mnist")
    } else {
        None
    }
}

/// An evaluator network with its reference set.
#[derive(Debug)]
pub struct EvalSetup {
    /// The network.
    pub net: Box<dyn FeatureNet>,
    /// The real test images it compares with.
    pub reference: ReferenceSet,
}

/// Loads evaluator `kind` (`mnist`, `fashion-mnist`) from `DATASETS/evaluators/` and embeds its
/// reference set: the test split of `DATASETS/mnist` (or of the embedded `mnist-mini` when the
/// full MNIST is not there) or of `DATASETS/fashion-mnist`.
pub fn load_setup(kind: &str, datasets_dir: &Path, dev: &Device) -> Result<EvalSetup> {
    load_setup_with(kind, datasets_dir, dev, None, None)
}

/// [`load_setup`], also for `inception` (the standard FID network) with its weights from
/// `inception`; its reference set is the MNIST test split (`mnist`, else `mnist-mini`),
/// grey repeated on 3 channels and resized to 299 × 299. With `cache`, the reference set's
/// statistics are read from that folder when computed before ([`cached_reference`]).
pub fn load_setup_with(
    kind: &str,
    datasets_dir: &Path,
    dev: &Device,
    inception: Option<&crate::inception::InceptionSource>,
    cache: Option<&Path>,
) -> Result<EvalSetup> {
    let (net, data) = load_evaluator(kind, datasets_dir, dev, inception)?;
    let reference = real_reference(net.as_ref(), &data, datasets_dir, cache, &mut ())?;
    Ok(EvalSetup { net, reference })
}

/// The side at which to load dataset images for `net`: its input side, except for a network
/// that resizes by itself (inception, bilinear as pytorch-fid), which takes the 28-pixel
/// images as they are.
pub fn dataset_side(net: &dyn FeatureNet) -> usize {
    if net.input().1 == crate::inception::INCEPTION_SIDE {
        28
    } else {
        net.input().1
    }
}

/// The reference set of `net`: the embedded test split of `data` (`mnist`, `mnist-mini`,
/// `fashion-mnist`), named `DATA test split`; its embedding is a phase of `progress`. With
/// `cache` (a folder), through [`cached_reference`]: computed once per network and images.
pub fn real_reference(
    net: &dyn FeatureNet,
    data: &str,
    datasets_dir: &Path,
    cache: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<ReferenceSet> {
    let source = gan_data::ImageSource::resolve(Some(data), datasets_dir)?;
    let test = source.load_test(dataset_side(net))?;
    let name = format!("{data} test split");
    match cache {
        Some(dir) => Ok(cached_reference(net, &test, &name, dir, progress)?.0),
        None => ReferenceSet::new_with(net, &test, &name, progress),
    }
}

/// Whether [`cached_reference`] read its statistics from the cache or computed and wrote them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheUse {
    /// Read from this file.
    Reused(PathBuf),
    /// Computed and written to this file.
    Written(PathBuf),
    /// Computed; the network has no [`FeatureNet::weights_hash`], so nothing is cached.
    Uncached,
}

/// The version of the cache files' layout, part of their key.
const REFERENCE_CACHE_VERSION: u64 = 1;

/// The cache file of the reference set `name` of the images `ds` embedded by `net`, under
/// `dir`: `reference-<name>-<net>-<count>-<key>.safetensors`, where the key hashes the layout
/// version, the network's name and [`FeatureNet::weights_hash`], and the images' shape and
/// values, so that a change of any of them gives another file. `None` when the network has no
/// weights hash.
pub fn reference_cache_file(
    net: &dyn FeatureNet,
    ds: &TensorDataset,
    name: &str,
    dir: &Path,
) -> Option<PathBuf> {
    let weights = net.weights_hash()?;
    let mut key = Vec::new();
    key.extend_from_slice(&REFERENCE_CACHE_VERSION.to_le_bytes());
    key.extend_from_slice(net.name().as_bytes());
    key.extend_from_slice(&weights.to_le_bytes());
    for d in ds.item_shape() {
        key.extend_from_slice(&(*d as u64).to_le_bytes());
    }
    key.extend(ds.data().iter().flat_map(|v| v.to_le_bytes()));
    let slug = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    };
    Some(dir.join(format!(
        "reference-{}-{}-{}-{:016x}.safetensors",
        slug(name),
        slug(&net.name()),
        ds.len(),
        fnv1a(&key)
    )))
}

/// The reference set of the images `ds` embedded by `net` (named `name`), computed once:
/// read from its file in `dir` ([`reference_cache_file`]) when there, otherwise embedded (a
/// phase of `progress`) and written there (features, class probabilities, the Gaussian's mean
/// and covariance in float64 and the k-NN radii, as safetensors; written to a temporary file
/// and renamed). A cache file that cannot be read is recomputed and replaced, with a warning in
/// the log; one that cannot be written only logs a warning. Other images, another network or
/// other weights give another file, so a stale one is never read.
pub fn cached_reference(
    net: &dyn FeatureNet,
    ds: &TensorDataset,
    name: &str,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<(ReferenceSet, CacheUse)> {
    let Some(path) = reference_cache_file(net, ds, name, dir) else {
        let set = ReferenceSet::new_with(net, ds, name, progress)?;
        return Ok((set, CacheUse::Uncached));
    };
    if path.is_file() {
        progress.start(
            &format!("reading the {name} statistics from {}", path.display()),
            0,
        );
        match read_reference(&path, name) {
            // The labels are the dataset's own (the file is keyed by its images).
            Ok(set) => {
                let labels = ds.labels().map(<[u32]>::to_vec);
                return Ok((ReferenceSet { labels, ..set }, CacheUse::Reused(path)));
            }
            Err(e) => tracing::warn!("{e}: computing the reference statistics again"),
        }
    }
    let set = ReferenceSet::new_with(net, ds, name, progress)?;
    match write_reference(&path, &set) {
        Ok(()) => Ok((set, CacheUse::Written(path))),
        Err(e) => {
            tracing::warn!("cannot cache the reference statistics: {e}");
            Ok((set, CacheUse::Uncached))
        }
    }
}

fn write_reference(path: &Path, set: &ReferenceSet) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let e = &set.embedding;
    let (n, d) = (e.len(), e.dim);
    let cpu = Device::Cpu;
    let mut tensors = std::collections::HashMap::new();
    tensors.insert(
        "features".to_string(),
        Tensor::from_slice(&e.features, (n, d), &cpu)?,
    );
    if let Some(p) = &e.probs {
        tensors.insert(
            "probs".to_string(),
            Tensor::from_slice(p, (n, e.classes), &cpu)?,
        );
    }
    tensors.insert(
        "mean".to_string(),
        Tensor::from_slice(&set.gaussian.mean, d, &cpu)?,
    );
    tensors.insert(
        "cov".to_string(),
        Tensor::from_slice(&set.gaussian.cov, (d, d), &cpu)?,
    );
    tensors.insert(
        "radii".to_string(),
        Tensor::from_slice(&set.radii, set.radii.len(), &cpu)?,
    );
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    candle_core::safetensors::save(&tensors, &tmp).map_err(|e| ModelError::Checkpoint {
        path: tmp.clone(),
        reason: e.to_string(),
    })?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}

fn read_reference(path: &Path, name: &str) -> Result<ReferenceSet> {
    let bad = |reason: String| ModelError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let t = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| bad(e.to_string()))?;
    let get = |k: &str| t.get(k).ok_or_else(|| bad(format!("no tensor {k}")));
    let features = get("features")?;
    let (n, dim) = features.dims2()?;
    let probs = match t.get("probs") {
        Some(p) => Some((p.flatten_all()?.to_vec1::<f32>()?, p.dims2()?.1)),
        None => None,
    };
    let mut gaussian = Gaussian::new(
        get("mean")?.to_vec1()?,
        get("cov")?.flatten_all()?.to_vec1()?,
    )
    .map_err(|e| bad(e.to_string()))?;
    gaussian.count = n;
    let radii: Vec<f32> = get("radii")?.to_vec1()?;
    if gaussian.dim() != dim || !(radii.is_empty() || radii.len() == n) {
        return Err(bad("inconsistent shapes".into()));
    }
    Ok(ReferenceSet {
        name: name.into(),
        embedding: Embedding {
            features: features.flatten_all()?.to_vec1()?,
            dim,
            classes: probs.as_ref().map_or(0, |p| p.1),
            probs: probs.map(|p| p.0),
        },
        gaussian,
        radii,
        labels: None,
    })
}

/// Evaluator network `kind` (`mnist`, `fashion-mnist`, or `inception` with its weights from
/// `inception`) and the name of the dataset whose test split is its reference (`mnist`, else
/// `mnist-mini`, for `mnist` and `inception`; `fashion-mnist`).
pub fn load_evaluator(
    kind: &str,
    datasets_dir: &Path,
    dev: &Device,
    inception: Option<&crate::inception::InceptionSource>,
) -> Result<(Box<dyn FeatureNet>, String)> {
    let mnist = if gan_data::mnist::is_complete(&datasets_dir.join("mnist")) {
        "mnist"
    } else {
        "mnist-mini"
    };
    match kind {
        "mnist" | "fashion-mnist" => {
            let net = ClassifierEvaluator::load(&evaluators_dir(datasets_dir), kind, dev)?;
            let data = if kind == "mnist" { mnist } else { kind };
            Ok((Box::new(net), data.into()))
        }
        "inception" => {
            let source = inception.ok_or_else(|| {
                ModelError::Config(
                    "the inception evaluator needs its weights: pass --inception-weights PATH \
                     (pytorch-fid's pt_inception-2015-12-05-6726825d.pth, or a safetensors copy) \
                     or --inception-repo ORG/NAME [--inception-file FILE] (hf-hub)"
                        .into(),
                )
            })?;
            let net = crate::inception::load_inception(source, dev)?;
            Ok((Box::new(net), mnist.into()))
        }
        other => Err(ModelError::Config(format!(
            "unknown evaluator {other:?} (expected mnist, fashion-mnist or inception)"
        ))),
    }
}

/// A statistics file that is not what pytorch-fid writes: an error naming the file.
fn stats_err(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Io {
        path: path.to_path_buf(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, reason.into()),
    }
}

/// An `.npy` array of float64 values: its shape and values in C (row-major) order.
fn npy_f64(shape: &[usize], values: &[f64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header =
        format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}").into_bytes();
    // numpy pads the header with spaces and a newline so that the data starts 64-aligned.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The value of `key` in an `.npy` header dictionary (`{'descr': '<f8', 'fortran_order': False,
/// 'shape': (3, 3), }`), up to the next top-level comma.
fn npy_header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Parses an `.npy` array of floats (`<f8`, `>f8`, `<f4`, `>f4`; C or Fortran order) into its
/// shape and float64 values in C order. `what` names the array in errors.
fn parse_npy(bytes: &[u8], what: &str) -> std::result::Result<(Vec<usize>, Vec<f64>), String> {
    let bad = |r: &str| format!("{what}: {r}");
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not an .npy array (no \\x93NUMPY magic)"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start.saturating_add(len))
        .ok_or_else(|| bad("truncated .npy header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("the .npy header is not text"))?;
    let descr = npy_header_value(header, "descr")
        .ok_or_else(|| bad("no 'descr' in the .npy header"))?
        .trim_matches(|c| c == '\'' || c == '"');
    let (size, big) = match descr {
        "<f8" | "=f8" | "f8" => (8, false),
        ">f8" => (8, true),
        "<f4" | "=f4" | "f4" => (4, false),
        ">f4" => (4, true),
        d => {
            return Err(bad(&format!(
                "dtype {d}, expected float64 (<f8) or float32"
            )))
        }
    };
    let fortran = match npy_header_value(header, "fortran_order") {
        Some("False") => false,
        Some("True") => true,
        _ => return Err(bad("no valid 'fortran_order' in the .npy header")),
    };
    let shape_text = npy_header_value(header, "shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| bad("no 'shape' tuple in the .npy header"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<Vec<usize>, _>>()
        .map_err(|_| bad(&format!("bad shape ({shape_text})")))?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad("shape too large"))?;
    let data = &bytes[start + len..];
    if Some(data.len()) != count.checked_mul(size) {
        return Err(bad(&format!(
            "{} bytes of data for shape {shape:?} of {descr}",
            data.len()
        )));
    }
    let mut values: Vec<f64> = data
        .chunks_exact(size)
        .map(|c| match (size, big) {
            (8, false) => f64::from_le_bytes(c.try_into().unwrap_or_default()),
            (8, true) => f64::from_be_bytes(c.try_into().unwrap_or_default()),
            (_, false) => f32::from_le_bytes(c.try_into().unwrap_or_default()) as f64,
            (_, true) => f32::from_be_bytes(c.try_into().unwrap_or_default()) as f64,
        })
        .collect();
    if fortran && shape.len() == 2 {
        let (r, c) = (shape[0], shape[1]);
        let f = values;
        values = (0..r * c).map(|k| f[(k % c) * r + k / c]).collect();
    } else if fortran && shape.len() > 2 {
        return Err(bad("Fortran-order arrays of more than 2 dimensions"));
    }
    Ok((shape, values))
}

/// Writes the Gaussian `g` as pytorch-fid's statistics file: an `.npz` holding `mu` (float64,
/// shape `(d,)`) and `sigma` (float64, `(d, d)`), which `pytorch_fid.fid_score` (and
/// `python -m pytorch_fid --save-stats`) reads and writes, and [`load_fid_stats`] reads back.
pub fn save_fid_stats(path: &Path, g: &Gaussian) -> Result<()> {
    use std::io::Write;
    let d = g.dim();
    let file = std::fs::File::create(path).map_err(|e| ModelError::io(path, e))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(8 * d * d > u32::MAX as usize / 2);
    let zerr = |e: zip::result::ZipError| stats_err(path, format!("cannot write the .npz: {e}"));
    for (name, shape, values) in [("mu", vec![d], &g.mean), ("sigma", vec![d, d], &g.cov)] {
        zip.start_file(format!("{name}.npy"), options)
            .map_err(zerr)?;
        zip.write_all(&npy_f64(&shape, values))
            .map_err(|e| ModelError::io(path, e))?;
    }
    let mut inner = zip.finish().map_err(zerr)?;
    inner.flush().map_err(|e| ModelError::io(path, e))?;
    Ok(())
}

/// Reads pytorch-fid's statistics file (an `.npz` with `mu` of shape `(d,)` and `sigma` of
/// shape `(d, d)`, float64 or float32, stored or deflated, as `numpy.savez` and
/// `numpy.savez_compressed` write it). Errors name the file and what is wrong with it.
pub fn load_fid_stats(path: &Path) -> Result<Gaussian> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| stats_err(path, format!("not an .npz (zip) file: {e}")))?;
    let mut read = |name: &str| -> Result<(Vec<usize>, Vec<f64>)> {
        let mut entry = zip.by_name(&format!("{name}.npy")).map_err(|_| {
            stats_err(
                path,
                format!("no array {name:?}: pytorch-fid's statistics hold mu and sigma"),
            )
        })?;
        let mut bytes = Vec::with_capacity(entry.size().min(1 << 30) as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| stats_err(path, format!("cannot read {name}: {e}")))?;
        parse_npy(&bytes, name).map_err(|e| stats_err(path, e))
    };
    let (mu_shape, mu) = read("mu")?;
    let (sigma_shape, sigma) = read("sigma")?;
    let d = match mu_shape.as_slice() {
        [d] if *d > 0 => *d,
        s => {
            return Err(stats_err(
                path,
                format!("mu has shape {s:?}, expected (d,)"),
            ))
        }
    };
    if sigma_shape != [d, d] {
        return Err(stats_err(
            path,
            format!("sigma has shape {sigma_shape:?}, expected ({d}, {d}) for mu of {d}"),
        ));
    }
    Gaussian::new(mu, sigma).map_err(|e| stats_err(path, e.to_string()))
}

/// `"mean ± std (detail)"`, both numbers with `digits` decimals (as [`fmt_fixed`]).
fn mean_pm_std(mean: f64, std: f64, digits: usize, detail: &str) -> String {
    format!(
        "{} ± {} ({detail})",
        fmt_fixed(mean, digits),
        fmt_fixed(std, digits)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_fortran_order_and_zero_sign() {
        let (shape, values) = parse_npy(&npy_f64(&[2, 3], &[1., 2., 3., 4., 5., 6.]), "a").unwrap();
        assert_eq!((shape, values), (vec![2, 3], vec![1., 2., 3., 4., 5., 6.]));
        // Fortran order: [[1, 2, 3], [4, 5, 6]] is stored column by column.
        let header = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }\n";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in [1f64, 4., 2., 5., 3., 6.] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let (shape, values) = parse_npy(&bytes, "a").unwrap();
        assert_eq!((shape, values), (vec![2, 3], vec![1., 2., 3., 4., 5., 6.]));
        // numpy aligns the data to 64 bytes.
        assert_eq!(npy_f64(&[5], &[0.; 5]).len() % 64, 40);
        assert_eq!(fmt_fixed(-1e-12, 3), "0.000");
        assert_eq!(fmt_fixed(-0.0004, 3), "0.000");
        assert_eq!(fmt_fixed(-0.0006, 3), "-0.001");
        assert_eq!(fmt_fixed(f64::NAN, 3), "n/a");
    }
}
