//! Per-class scores of a class-conditional generator ([`crate::cgan`]) on an evaluator
//! classifier: how often a sample asked to be of class y is classified as y (per class and
//! overall), and the intra-class FID, the Fréchet distance between the features of each class's
//! samples and those of that class's real test images, averaged over the classes (Miyato &
//! Koyama 2018, §5.1; PyTorch-StudioGAN's "iFID").
//!
//! Every class gets the same number of samples, drawn from noise of a fixed seed
//! ([`crate::monitor::EVAL_NOISE_SEED`] during training), so that the scores of different steps
//! compare the generator. With fewer samples (or real images) of a class than the evaluator has
//! features, that class's covariance is singular and its FID is biased upwards: the report says
//! so in its warnings.

use std::time::Instant;

use candle_core::Tensor;
use gan_core::eval_metrics::{fid_min_samples, frechet_distance, Gaussian};
use serde::{Deserialize, Serialize};

use crate::cgan::{cycling_labels, one_hot};
use crate::cgan_run::sample_classes;
use crate::error::{ModelError, Result};
use crate::evaluator::{embed_images_with, FeatureNet, ReferenceSet};
use crate::train::GeneratorNet;

/// The scores of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// The class name.
    pub class: String,
    /// Samples generated for it.
    pub samples: usize,
    /// Real test images of it.
    pub reference_samples: usize,
    /// Fraction of its samples the evaluator classifies as it, in [0, 1].
    pub accuracy: f64,
    /// FID of its samples against its real test images.
    pub fid: f64,
}

/// The per-class scores of a class-conditional generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    /// The evaluator network.
    pub evaluator: String,
    /// One row per class, by label.
    pub per_class: Vec<ClassScore>,
    /// Fraction of all samples classified as the class they were drawn for.
    pub accuracy: f64,
    /// The intra-class FID: the mean of the per-class FIDs.
    pub intra_fid: f64,
    /// Classes whose FID was computed on fewer samples than features (biased upwards).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Seconds the scoring took (sampling included).
    pub seconds: f64,
}

impl ClassReport {
    /// The per-class table as text: class, accuracy %, FID, then the overall line.
    pub fn table(&self) -> String {
        let width = self
            .per_class
            .iter()
            .map(|c| c.class.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!("{:<width$}  accuracy  FID\n", "class");
        for c in &self.per_class {
            out.push_str(&format!(
                "{:<width$}  {:>7.1}%  {:.3}\n",
                c.class,
                100.0 * c.accuracy,
                c.fid
            ));
        }
        out.push_str(&format!(
            "{:<width$}  {:>7.1}%  {:.3} (intra-class FID)\n",
            "all",
            100.0 * self.accuracy,
            self.intra_fid
        ));
        out
    }
}

/// Scores the samples `images` `[n, c, h, w]`, sample `i` drawn for class `labels[i]`, against
/// the labelled `reference` with `net`; `names` are the class names by label.
///
/// # Errors
/// A reference without labels, an evaluator whose classes differ from `names.len()`, a class
/// without samples or real images.
pub fn score_classes(
    net: &dyn FeatureNet,
    reference: &ReferenceSet,
    images: &Tensor,
    labels: &[u32],
    names: &[String],
) -> Result<ClassReport> {
    let started = Instant::now();
    let k = names.len();
    let Some(ref_labels) = &reference.labels else {
        return Err(ModelError::Config(format!(
            "the reference {} has no labels: cannot score classes",
            reference.name
        )));
    };
    let e = embed_images_with(net, images, &mut ())?;
    let Some(probs) = &e.probs else {
        return Err(ModelError::Config(format!(
            "the {} evaluator does not classify: no per-class accuracy",
            net.name()
        )));
    };
    if e.classes != k {
        return Err(ModelError::Config(format!(
            "the {} evaluator knows {} classes, the run {k}: per-class scores need an evaluator \
             of the run's classes",
            net.name(),
            e.classes
        )));
    }
    let dim = e.dim;
    let rows = |feats: &[f32], of: &[u32], class: u32| -> Vec<f32> {
        of.iter()
            .enumerate()
            .filter(|(_, &l)| l == class)
            .flat_map(|(i, _)| feats[i * dim..(i + 1) * dim].iter().copied())
            .collect()
    };
    let (mut per_class, mut warnings) = (Vec::with_capacity(k), Vec::new());
    let mut hits_all = 0usize;
    for (c, name) in names.iter().enumerate() {
        let mine: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] as usize == c)
            .collect();
        let hits = mine
            .iter()
            .filter(|&&i| argmax(&probs[i * k..(i + 1) * k]) == c)
            .count();
        hits_all += hits;
        let fake = rows(&e.features, labels, c as u32);
        let real = rows(&reference.embedding.features, ref_labels, c as u32);
        let (n_fake, n_real) = (fake.len() / dim, real.len() / dim);
        if n_fake < 2 || n_real < 2 {
            return Err(ModelError::Config(format!(
                "class {name}: {n_fake} samples and {n_real} real images; the FID needs at \
                 least 2 of each"
            )));
        }
        if n_fake.min(n_real) < fid_min_samples(dim) {
            warnings.push(format!(
                "class {name}: FID of {n_fake} samples against {n_real} real images with \
                 {dim} features (fewer than {}): biased upwards",
                fid_min_samples(dim)
            ));
        }
        let err =
            |e: gan_core::eval_metrics::EvalError| ModelError::Config(format!("class {name}: {e}"));
        let fid = frechet_distance(
            &Gaussian::fit(&fake, dim).map_err(err)?,
            &Gaussian::fit(&real, dim).map_err(err)?,
        )
        .map_err(err)?;
        per_class.push(ClassScore {
            class: name.clone(),
            samples: n_fake,
            reference_samples: n_real,
            accuracy: hits as f64 / n_fake as f64,
            fid,
        });
    }
    let intra_fid = per_class.iter().map(|c| c.fid).sum::<f64>() / k as f64;
    Ok(ClassReport {
        evaluator: net.name(),
        per_class,
        accuracy: hits_all as f64 / labels.len() as f64,
        intra_fid,
        warnings,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Samples `per_class` images of every class from `g` on `dev` (noise from `seed`, sample `i`
/// of class `i mod classes`) and scores them ([`score_classes`]).
///
/// # Errors
/// A generator that is not class-conditional, and those of [`score_classes`].
pub fn evaluate_classes(
    net: &dyn FeatureNet,
    reference: &ReferenceSet,
    g: &dyn GeneratorNet,
    per_class: usize,
    seed: u64,
    names: &[String],
    dev: &candle_core::Device,
) -> Result<ClassReport> {
    let k = g.classes();
    if k == 0 || k != names.len() {
        return Err(ModelError::Config(format!(
            "per-class scores need a class-conditional generator of {} classes",
            names.len()
        )));
    }
    let n = per_class * k;
    let labels = cycling_labels(n, k, dev)?;
    let images = sample_classes(g, &one_hot(&labels, k)?, seed)?;
    score_classes(net, reference, &images, &labels.to_vec1::<u32>()?, names)
}

fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}
