//! `gan-cli train dcgan` and `train sngan`: flags into a [`DcganRunConfig`] (each model's
//! defaults, then the flags given), then the shared train path ([`crate::train_cmd`]) around
//! `gan_models::dcgan_run::train_image_gan`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use gan_data::ImageSource;
use gan_models::dcgan::DcganConfig;
use gan_models::dcgan_run::train_image_gan;
use gan_models::dcgan_run::{load_data, steps_per_epoch, DataConfig, DcganRunConfig, InitWeights};
use gan_models::run::RunDir;

use crate::args::{GanOptionFlags, TrainDcgan};
use crate::train_cmd::{apply_on_resume, check_resume_flags, open_or_create};
use gan_core::diffaug::DiffAugment;
use gan_core::ema::EmaConfig;
use gan_models::options::R1Config;

/// Runs `gan-cli train dcgan` (`model` "dcgan") or `train sngan` ("sngan").
pub fn train(a: TrainDcgan, model: &str) -> anyhow::Result<ExitCode> {
    let session = open_or_create(
        a.run.resume.as_deref(),
        model,
        &[model],
        |dir, run, cfg: &mut DcganRunConfig| {
            apply_resume(&a, dir, cfg)?;
            stored_data(run, &cfg.data, &cfg.dcgan)
        },
        || {
            let (cfg, data) = new_config(&a, model)?;
            Ok((a.run.out_dir(model), cfg, data))
        },
    )?;
    let cfg = &session.cfg;
    if cfg.options.r1.is_some() {
        // Before the first backward pass and before the Ctrl-C thread: candle reads the switch
        // once per thread (see gan_core::penalty).
        gan_core::penalty::ensure_second_order()
            .map_err(|e| anyhow::anyhow!("cannot turn on second-order gradients for R1: {e}"))?;
    }
    session.train(
        (Some(&a.eval), &a.net.datasets_dir),
        train_image_gan::<DcganRunConfig>,
    )
}

/// Applies to a resumed DCGAN-family run (`dcgan`, `cgan`) the flags it may change: a new
/// length, the cadences, the device, `--keep-going` and `--lr`; refuses the others.
pub(crate) fn apply_resume(
    a: &TrainDcgan,
    dir: &Path,
    cfg: &mut DcganRunConfig,
) -> anyhow::Result<()> {
    check_resume_flags(dir, &[])?;
    // Extending a run: a new length replaces the saved one.
    if let Some(steps) = a.net.steps {
        cfg.run.schedule.steps = steps;
    }
    if let Some(epochs) = a.net.epochs {
        cfg.epochs = Some(epochs);
        cfg.run.schedule.steps = epochs * steps_per_epoch(cfg.data.items, cfg.run.batch_size);
    }
    apply_on_resume(&a.run, &mut cfg.run.schedule, &mut cfg.run.device);
    apply_lr(a, cfg);
    Ok(())
}

/// The training data a resumed run's `config.json` names.
pub(crate) fn stored_data(
    run: &RunDir,
    data: &DataConfig,
    net: &DcganConfig,
) -> anyhow::Result<gan_data::TensorDataset> {
    let path = crate::locate_stored_data(run.root(), &data.path)?;
    let source = ImageSource::resolve(Some(&path.to_string_lossy()), Path::new("."))?;
    Ok(data.limit(load_data(&source, net)?)?)
}

/// Sets the fields of an image GAN's run configuration (`DcganRunConfig`, `WganRunConfig`: the
/// same names) that come from the flags every image GAN takes (`a.net`: [`ImageGanFlags`],
/// `a.run`: [`crate::args::RunFlags`]), checks it with `validate` and the device, then loads the
/// data from `source` (before anything is written), records its size and evaluates to it.
///
/// [`ImageGanFlags`]: crate::args::ImageGanFlags
macro_rules! image_flags_and_data {
    ($a:expr, $cfg:ident, $source:expr, validate: $validate:expr) => {{
        $cfg.run.batch_size = $a.net.batch_size;
        $cfg.run.seed = $a.run.seed;
        $cfg.run.device = $a.run.device.clone();
        $cfg.run.fast_conv = !$a.net.no_fast_conv;
        $a.net.apply(&mut $cfg.dcgan);
        $a.run.apply_schedule(&mut $cfg.run.schedule);
        $validate?;
        gan_models::dcgan_run::parse_device(&$cfg.run.device)?;
        let loaded = gan_models::dcgan_run::load_data($source, &$cfg.dcgan)?;
        let data = $cfg.data.limit(loaded)?;
        $cfg.data.items = gan_data::Dataset::len(&data);
        data
    }};
}
pub(crate) use image_flags_and_data;

/// The configuration of a new run from the flags, and its training data (loaded before anything
/// is written, so that bad data leaves no run folder behind).
pub(crate) fn new_config(
    a: &TrainDcgan,
    model: &str,
) -> anyhow::Result<(DcganRunConfig, gan_data::TensorDataset)> {
    let (source, data, channels) = a.net.data_config()?;
    if a.classic && model == "sngan" {
        bail!("--classic is a setting of train dcgan; train sngan always uses spectral norm");
    }
    let mut cfg = match model {
        "sngan" => DcganRunConfig::sngan(data, channels),
        "dcgan" if !a.classic => DcganRunConfig::tuned(data, channels),
        _ => DcganRunConfig::new(data, channels),
    };
    apply_lr(a, &mut cfg);
    if let Some(loss) = a.loss {
        cfg.step.loss = loss.into();
    }
    cfg.step.real_label = a.real_label;
    apply_options(&a.tricks, &mut cfg)?;
    cfg.init = InitWeights {
        generator: init_file(a.init_generator.as_deref(), "--init-generator")?,
        discriminator: init_file(a.init_discriminator.as_deref(), "--init-discriminator")?,
    };
    let data = image_flags_and_data!(a, cfg, &source, validate: cfg.dcgan.validate());
    if cfg.data.items < cfg.run.batch_size {
        bail!(
            "{} holds {} images, fewer than one batch of --batch-size {}: lower --batch-size",
            source.path.display(),
            cfg.data.items,
            cfg.run.batch_size
        );
    }
    let per_epoch = steps_per_epoch(cfg.data.items, cfg.run.batch_size);
    (cfg.run.schedule.steps, cfg.epochs) = a.net.length(|e| e * per_epoch)?;
    Ok((cfg, data))
}

/// The absolute path of a starting-weights file given to `flag`, which must exist (its
/// contents are checked against the network when the trainer is built).
fn init_file(path: Option<&Path>, flag: &str) -> anyhow::Result<Option<PathBuf>> {
    let Some(path) = path else { return Ok(None) };
    if !path.is_file() {
        bail!(
            "{flag} {}: no such file (give a .safetensors file of network weights, such as \
             RUN/checkpoints/latest/generator.safetensors)",
            path.display()
        );
    }
    Ok(Some(std::path::absolute(path)?))
}

/// `--lr` (both networks), then `--lr-g` and `--lr-d` (TTUR), where given.
fn apply_lr(a: &TrainDcgan, cfg: &mut DcganRunConfig) {
    a.lr.apply(&mut cfg.adam_g.lr, &mut cfg.adam_d.lr);
}

/// The flags of [`GanOptionFlags`] over the model's defaults, checked.
fn apply_options(f: &GanOptionFlags, cfg: &mut DcganRunConfig) -> anyhow::Result<()> {
    let o = &mut cfg.options;
    if let Some(n) = f.n_dis {
        o.n_dis = n;
    }
    if let Some(decay) = f.ema {
        o.ema = (decay != 0.0).then_some(EmaConfig {
            decay,
            start: o.ema.map_or(0, |e| e.start),
        });
    }
    if let (Some(start), Some(ema)) = (f.ema_start, o.ema.as_mut()) {
        ema.start = start;
    }
    o.raw_generator = f.raw_g;
    if let Some(policy) = &f.diffaug {
        o.diffaug = match policy.as_str() {
            "none" => None,
            p => Some(DiffAugment::parse(p).map_err(|e| anyhow::anyhow!("--diffaug: {e}"))?),
        };
    }
    if let Some(gamma) = f.r1 {
        o.r1 = (gamma != 0.0).then_some(R1Config {
            gamma,
            every: f.r1_every,
        });
    }
    if f.spectral_norm {
        cfg.dcgan.spectral_norm = true;
    }
    o.validate()?;
    if o.r1.is_some() && !cfg.dcgan.spectral_norm {
        bail!(
            "--r1 needs a discriminator without BatchNorm (BatchNorm mixes the samples of a \
             batch): add --spectral-norm, or leave out --classic"
        );
    }
    Ok(())
}
