//! `gan-cli train cgan`: the flags of `train dcgan` plus `--cond` and `--aux-weight` into a
//! [`CganRunConfig`], then the shared train path ([`crate::train_cmd`]) around
//! `gan_models::dcgan_run::train_image_gan`; and what `sample`, `interpolate` and `eval` do for a
//! class-conditional run.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use gan_data::ImageSource;
use gan_models::cgan::CondMode;
use gan_models::cgan_run::{check_labels, load_cgan, CganRunConfig, LoadedCgan};
use gan_models::dcgan_run::train_image_gan;
use gan_models::grid::{save_grid, save_images};
use gan_models::run::RunDir;

use crate::args::{InterpolateArgs, SampleArgs, TrainDcgan};
use crate::dcgan_cmd::{apply_resume, new_config, stored_data};
use crate::train_cmd::open_or_create;
use crate::{image_out, ImageOut};

/// How the class reaches the networks.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CondArg {
    /// Projection discriminator (Miyato & Koyama 2018) and class-conditional BatchNorm in G.
    Projection,
    /// Auxiliary classifier on D (Odena et al. 2017) and class-conditional BatchNorm in G.
    Acgan,
    /// One-hot label concatenated to z and to D's input (Mirza & Osindero 2014).
    Concat,
}

impl From<CondArg> for CondMode {
    fn from(c: CondArg) -> Self {
        match c {
            CondArg::Projection => Self::Projection,
            CondArg::Acgan => Self::Acgan,
            CondArg::Concat => Self::Concat,
        }
    }
}

/// Flags of `gan-cli train cgan`.
#[derive(Debug, Args)]
pub struct TrainCganArgs {
    #[command(flatten)]
    pub dcgan: TrainDcgan,
    /// How the networks are conditioned on the class.
    #[arg(long, value_enum, default_value_t = CondArg::Projection)]
    pub cond: CondArg,
    /// Weight of the auxiliary classifier's cross-entropy in both losses (--cond acgan; the
    /// paper's is 1).
    #[arg(long, default_value_t = gan_models::cgan::CganLoss::default().aux_weight)]
    pub aux_weight: f64,
    /// Whether the discriminator's auxiliary classifier also learns the fakes' classes, as in
    /// the ACGAN paper (--cond acgan); by default it learns the real images' classes only.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub aux_on_fakes: bool,
}

/// Runs `gan-cli train cgan`.
pub fn train(a: TrainCganArgs) -> anyhow::Result<ExitCode> {
    let d = &a.dcgan;
    let session = open_or_create(
        d.run.resume.as_deref(),
        "cgan",
        &["cgan"],
        |dir, run, cfg: &mut CganRunConfig| {
            apply_resume(d, dir, &mut cfg.base)?;
            stored_data(run, &cfg.base.data, &cfg.base.dcgan)
        },
        || {
            let (base, data) = new_config(d, "cgan")?;
            if base.options != gan_models::options::GanOptions::default()
                || base.dcgan.spectral_norm
                || base.step.loss != gan_core::loss::GeneratorLoss::NonSaturating
            {
                anyhow::bail!(
                    "train cgan does not take --n-dis, --ema, --diffaug, --r1, --spectral-norm or \
                     --loss yet (its trainer has the plain DCGAN step)"
                );
            }
            let source =
                ImageSource::resolve(Some(&base.data.path.to_string_lossy()), Path::new("."))?;
            let classes = source.class_names()?;
            let what = base.data.path.display().to_string();
            check_labels(&data, &classes, &what)?;
            let mut cfg = CganRunConfig::new(base, a.cond.into(), classes);
            cfg.aux_weight = a.aux_weight;
            cfg.aux_on_fakes = a.aux_on_fakes;
            cfg.net().validate()?;
            Ok((d.run.out_dir("cgan"), cfg, data))
        },
    )?;
    session.train(
        (Some(&d.eval), &d.net.datasets_dir),
        train_image_gan::<CganRunConfig>,
    )
}

/// `gan-cli sample` for a class-conditional run: `--class` (a name or a number) gives `--count`
/// samples of that class; without it, one row per class of `⌈count / classes⌉` samples.
pub fn sample(a: &SampleArgs, g: &LoadedCgan, out: &Path) -> anyhow::Result<ExitCode> {
    let kind = image_out(out, true)?;
    let k = g.cfg.classes.len();
    let (imgs, nrow, what) = match &a.class {
        Some(c) => {
            let class = g.cfg.class_index(c)?;
            let imgs = g.sample_class(class, a.count, a.generator.seed)?;
            let nrow = (a.count as f64).sqrt().ceil() as usize;
            (imgs, nrow, format!("class {}", g.cfg.classes[class]))
        }
        None => {
            let per_class = a.count.div_ceil(k).max(1);
            let imgs = g.sample_every_class(per_class, a.generator.seed)?;
            (imgs, per_class, format!("one row per class ({k})"))
        }
    };
    let n = imgs.dim(0)?;
    if kind == ImageOut::Grid {
        save_grid(&imgs, nrow, out)?;
        println!("wrote a grid of {n} samples, {what}, to {}", out.display());
    } else {
        save_images(&imgs, out, 0)?;
        println!("wrote {n} images, {what}, to {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `gan-cli interpolate` for a class-conditional run: `--class K` walks z within class K
/// (one row per pair of random z), `--between-classes A,B` keeps z and blends the class
/// embeddings from A to B.
pub fn interpolate(a: &InterpolateArgs, run: &RunDir, out: &Path) -> anyhow::Result<ExitCode> {
    let dev = gan_models::dcgan_run::parse_device(&a.generator.device)?;
    let g = load_cgan(run, &a.generator.checkpoint, &dev)?;
    if a.dim.is_some() {
        bail!("--dim is for unconditional runs: give --class K or --between-classes A,B");
    }
    let (imgs, what) = match (&a.class, &a.between_classes) {
        (Some(c), None) => {
            let class = g.cfg.class_index(c)?;
            let imgs = g.walk_class(class, a.rows, a.steps, a.generator.seed)?;
            let what = format!(
                "walks between two random z in class {}",
                g.cfg.classes[class]
            );
            (imgs, what)
        }
        (None, Some(pair)) => {
            let Some((from, to)) = pair.split_once(',') else {
                bail!("--between-classes {pair:?}: give two classes as A,B (e.g. 3,8)");
            };
            let (from, to) = (
                g.cfg.class_index(from.trim())?,
                g.cfg.class_index(to.trim())?,
            );
            let imgs = g.between_classes(from, to, a.rows, a.steps, a.generator.seed)?;
            let (a_name, b_name) = (&g.cfg.classes[from], &g.cfg.classes[to]);
            (imgs, format!("blends from class {a_name} to {b_name}"))
        }
        _ => bail!(
            "{} is a class-conditional run: give --class K (walk within a class) or \
             --between-classes A,B (blend two classes)",
            run.root().display()
        ),
    };
    save_grid(&imgs, a.steps.max(2), out)?;
    println!("wrote {} rows of {what} to {}", a.rows, out.display());
    Ok(ExitCode::SUCCESS)
}
