//! `gan-cli train dcgan`: flags into a [`DcganRunConfig`], then the shared train path
//! ([`crate::train_cmd`]) around `gan_models::dcgan_run::train_dcgan`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use gan_data::ImageSource;
use gan_models::dcgan_run::{
    load_data, parse_device, steps_per_epoch, train_dcgan, DcganRunConfig,
};
use gan_models::registry::RunConfig;
use gan_models::run::RunDir;

use crate::args::TrainDcgan;
use crate::train_cmd::{
    apply_on_resume, check_resume_flags, given, open_for_resume, record_changes, run_training,
    Session,
};

/// Runs `gan-cli train dcgan`.
pub fn train(a: TrainDcgan) -> anyhow::Result<ExitCode> {
    let (run, cfg, data, resume) = match &a.run.resume {
        Some(dir) => {
            let (run, cfg) = open_for_resume(dir, "dcgan", &["dcgan"])?;
            let RunConfig::Dcgan(mut cfg) = cfg else {
                unreachable!("open_for_resume accepts only dcgan runs")
            };
            let before = RunConfig::Dcgan(cfg.clone());
            apply_resume(&a, dir, &mut cfg)?;
            record_changes(&run, &before, &RunConfig::Dcgan(cfg.clone()))?;
            let data = stored_data(&run, &cfg)?;
            (run, cfg, data, true)
        }
        None => {
            let (cfg, data) = new_config(&a)?;
            let out = a
                .run
                .out
                .clone()
                .unwrap_or_else(|| crate::fresh_run_dir("dcgan"));
            (RunDir::create(&out, &cfg)?, cfg, data, false)
        }
    };
    tracing::info!(
        run = %run.root().display(),
        "DCGAN {}px on {} ({} images), {} steps of batch {} on {}{}",
        cfg.dcgan.image_size,
        cfg.data.source,
        cfg.data.items,
        cfg.schedule.steps,
        cfg.batch_size,
        cfg.device,
        if cfg.fast_conv { "" } else { " (candle's convolutions)" }
    );
    let session = Session {
        run,
        cfg: RunConfig::Dcgan(cfg.clone()),
        resume,
        eval: Some(&a.eval),
        datasets_dir: &a.net.datasets_dir,
    };
    run_training(session, |run, resume, observer| {
        train_dcgan(run, &cfg, &data, resume, observer)
    })
}

/// Applies to a resumed DCGAN-family run (`dcgan`, `cgan`) the flags it may change: a new
/// length, the cadences, the device, `--keep-going` and `--lr`; refuses the others.
pub(crate) fn apply_resume(
    a: &TrainDcgan,
    dir: &Path,
    cfg: &mut DcganRunConfig,
) -> anyhow::Result<()> {
    check_resume_flags(dir, &["lr"])?;
    // Extending a run: a new length replaces the saved one.
    if let Some(steps) = a.net.steps {
        cfg.schedule.steps = steps;
    }
    if let Some(epochs) = a.net.epochs {
        cfg.epochs = Some(epochs);
        cfg.schedule.steps = epochs * steps_per_epoch(cfg.data.items, cfg.batch_size);
    }
    let n = &a.net;
    let cadences = [n.sample_every, n.checkpoint_every, n.log_every].map(Some);
    apply_on_resume(&a.run, &mut cfg.schedule, &mut cfg.device, cadences);
    if given("lr") {
        cfg.adam_g.lr = a.lr;
        cfg.adam_d.lr = a.lr;
    }
    Ok(())
}

/// The training data a resumed run's `config.json` names.
pub(crate) fn stored_data(
    run: &RunDir,
    cfg: &DcganRunConfig,
) -> anyhow::Result<gan_data::TensorDataset> {
    let path = crate::locate_stored_data(run.root(), &cfg.data.path)?;
    let source = ImageSource::resolve(Some(&path.to_string_lossy()), Path::new("."))?;
    Ok(load_data(&source, &cfg.dcgan)?)
}

/// The configuration of a new run from the flags, and its training data (loaded before anything
/// is written, so that bad data leaves no run folder behind).
pub(crate) fn new_config(
    a: &TrainDcgan,
) -> anyhow::Result<(DcganRunConfig, gan_data::TensorDataset)> {
    let (source, data, channels) = a.net.data_config()?;
    let mut cfg = DcganRunConfig::new(data, channels);
    cfg.adam_g.lr = a.lr;
    cfg.adam_d.lr = a.lr;
    cfg.step.loss = a.loss.into();
    cfg.step.real_label = a.real_label;
    cfg.batch_size = a.net.batch_size;
    cfg.seed = a.run.seed;
    cfg.device = a.run.device.clone();
    cfg.fast_conv = !a.net.no_fast_conv;
    a.net.apply(&mut cfg.dcgan, &mut cfg.schedule);
    a.run.apply_divergence(&mut cfg.schedule);
    cfg.dcgan.validate()?;
    parse_device(&cfg.device)?; // before anything is written
    let data = load_data(&source, &cfg.dcgan)?;
    cfg.data.items = gan_data::Dataset::len(&data);
    if cfg.data.items < cfg.batch_size {
        bail!(
            "{} holds {} images, fewer than one batch of --batch-size {}: lower --batch-size",
            source.path.display(),
            cfg.data.items,
            cfg.batch_size
        );
    }
    let per_epoch = steps_per_epoch(cfg.data.items, cfg.batch_size);
    match (a.net.steps, a.net.epochs) {
        (Some(_), Some(_)) => bail!("give --steps or --epochs, not both"),
        (Some(s), None) => cfg.schedule.steps = s,
        (None, e) => {
            let e = e.unwrap_or(5);
            cfg.epochs = Some(e);
            cfg.schedule.steps = e * per_epoch;
        }
    }
    Ok((cfg, data))
}
