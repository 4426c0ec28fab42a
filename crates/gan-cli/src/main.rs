//! `gan-cli`: train, sample and explore GANs from the command line. A thin front over the
//! `gan-models` and `gan-data` libraries: it parses flags, resolves paths, draws progress and
//! reports errors; all training logic lives in the libraries.
//!
//! Exit codes: 0 success, 2 error, 130 interrupted by Ctrl-C (after writing a checkpoint).

mod args;
mod cyclegan_cmd;
mod eval_cmd;
mod progress;
mod toy_cmd;
mod wgan_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;
use gan_data::ImageSource;
use gan_models::dcgan_run::{
    load_generator, parse_device, steps_per_epoch, train_dcgan, DataConfig, DcganRunConfig,
};
use gan_models::grid::{save_grid, save_images};
use gan_models::monitor::RunMonitor;
use gan_models::run::RunDir;

use crate::args::{Cli, Command, InterpolateArgs, SampleArgs, TrainDcgan, TrainModel};

/// Keeps freed memory in the process instead of handing it back to the kernel.
///
/// A training step allocates and frees the same large tensors (activations, gradients, im2col
/// buffers) every step. glibc serves blocks over its mmap threshold (128 KiB at first) with fresh
/// `mmap`s and unmaps them on free, so each step re-faults and re-zeroes those pages: a third of
/// a WGAN-GP step's time went to the kernel's page faults. A 1 GiB threshold and no trimming let
/// the heap reuse them (`cargo xtask bench` sets the same). Peak memory is unchanged: what is
/// kept is what the previous step already used.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    // candle's element-wise thread pool spin-waits on its helpers; our CPU kernels run on rayon,
    // so one candle thread keeps two pools from fighting over the cores (read once, at first use).
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Train(TrainModel::Dcgan(a)) => train(*a),
        Command::Train(TrainModel::Toy(a)) => toy_cmd::train(*a),
        Command::Train(TrainModel::Wgan(a)) => wgan_cmd::train(*a, false),
        Command::Train(TrainModel::WganGp(a)) => wgan_cmd::train(*a, true),
        Command::Sample(a) => sample(a),
        Command::Interpolate(a) => interpolate(a),
        Command::Train(TrainModel::Cyclegan(a)) => cyclegan_cmd::train(*a),
        Command::Translate(a) => cyclegan_cmd::translate(a),
        Command::EvalTranslation(a) => cyclegan_cmd::eval_translation(a),
        Command::Eval(a) => eval_cmd::eval(*a),
        Command::Report(a) => eval_cmd::report(a),
    }
}

/// Installs the Ctrl-C handler of a training command: the first Ctrl-C sets the returned flag
/// (the loop then writes a checkpoint and stops), a second one exits at once with code 130.
pub(crate) fn stop_on_ctrl_c() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130); // a second Ctrl-C does not wait
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

/// Picks `runs/<base>`, or `runs/<base>-2`, `-3`, ... if taken.
pub(crate) fn fresh_run_dir(base: &str) -> PathBuf {
    let root = PathBuf::from("runs");
    let mut dir = root.join(base);
    let mut i = 2;
    while dir.exists() {
        dir = root.join(format!("{base}-{i}"));
        i += 1;
    }
    dir
}

fn train(a: TrainDcgan) -> anyhow::Result<ExitCode> {
    let (run, cfg, resume) = match &a.run.resume {
        Some(dir) => {
            let run = RunDir::open(dir)?;
            let mut cfg: DcganRunConfig = run.config()?;
            // Extending a run: a new length replaces the saved one.
            if let Some(steps) = a.steps {
                cfg.schedule.steps = steps;
            }
            if let Some(epochs) = a.epochs {
                cfg.epochs = Some(epochs);
                cfg.schedule.steps = epochs * steps_per_epoch(cfg.data.items, cfg.batch_size);
            }
            (run, cfg, true)
        }
        None => {
            let source = ImageSource::resolve(a.data.as_deref(), &a.datasets_dir)?;
            if a.data.is_none() {
                tracing::info!(
                    "no --data given: training on {} ({})",
                    source.name,
                    source.path.display()
                );
            }
            let channels = if source.idx { 1 } else { a.channels };
            let mut cfg = DcganRunConfig::new(
                DataConfig {
                    source: source.name.clone(),
                    path: source.path.clone(),
                    items: 0,
                },
                channels,
            );
            cfg.dcgan.image_size = a.image_size;
            cfg.dcgan.nz = a.nz;
            cfg.dcgan.ngf = a.ngf;
            cfg.dcgan.ndf = a.ndf;
            cfg.adam_g.lr = a.lr;
            cfg.adam_d.lr = a.lr;
            cfg.step.loss = a.loss.into();
            cfg.step.real_label = a.real_label;
            cfg.batch_size = a.batch_size;
            cfg.seed = a.run.seed;
            cfg.device = a.run.device.clone();
            cfg.fast_conv = !a.no_fast_conv;
            cfg.schedule.sample_every = a.sample_every;
            cfg.schedule.checkpoint_every = a.checkpoint_every;
            cfg.schedule.log_every = a.log_every;
            cfg.dcgan.validate()?;
            parse_device(&cfg.device)?; // before anything is written
            let data = gan_models::dcgan_run::load_data(&source, &cfg.dcgan)?;
            cfg.data.items = gan_data::Dataset::len(&data);
            let per_epoch = steps_per_epoch(cfg.data.items, cfg.batch_size);
            match (a.steps, a.epochs) {
                (Some(_), Some(_)) => bail!("give --steps or --epochs, not both"),
                (Some(s), None) => cfg.schedule.steps = s,
                (None, e) => {
                    let e = e.unwrap_or(5);
                    cfg.epochs = Some(e);
                    cfg.schedule.steps = e * per_epoch;
                }
            }
            let out = a.run.out.clone().unwrap_or_else(|| fresh_run_dir("dcgan"));
            let run = RunDir::create(&out, &cfg)?;
            return train_with(run, cfg, Some(data), false, &a);
        }
    };
    train_with(run, cfg, None, resume, &a)
}

fn train_with(
    run: RunDir,
    cfg: DcganRunConfig,
    data: Option<gan_data::TensorDataset>,
    resume: bool,
    a: &TrainDcgan,
) -> anyhow::Result<ExitCode> {
    let (monitor_cfg, setup) = eval_cmd::monitor_setup(
        &a.eval,
        &cfg.data.source,
        &a.datasets_dir,
        &cfg.device,
        cfg.schedule.steps,
    )?;
    let data = match data {
        Some(d) => d,
        None => {
            let source =
                ImageSource::resolve(Some(&cfg.data.path.to_string_lossy()), Path::new("."))?;
            gan_models::dcgan_run::load_data(&source, &cfg.dcgan)?
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
    let stop = crate::stop_on_ctrl_c()?;
    let mut progress = progress::TrainProgress::new(cfg.schedule.steps, stop.clone());
    let dev = parse_device(&cfg.device)?;
    let mut monitor = RunMonitor::new(&mut progress, run.clone(), setup, monitor_cfg, dev);
    let outcome = train_dcgan(&run, &cfg, &data, resume, &mut monitor)?;
    drop(monitor);
    progress.finish();
    let report = gan_models::report::write_report(&run)?;
    if let Some(m) = outcome.last {
        println!(
            "step {}: Loss_D {:.4} Loss_G {:.4} D(x) {:.4} D(G(z)) {:.4} / {:.4}",
            m.step, m.loss_d, m.loss_g, m.d_x, m.d_g_z1, m.d_g_z2
        );
    }
    println!(
        "{:.1} ms per step; samples in {}, checkpoint in {}, report in {}",
        outcome.secs_per_step * 1e3,
        run.samples_dir().display(),
        run.checkpoints_dir().join("latest").display(),
        report.display()
    );
    if outcome.interrupted {
        println!(
            "interrupted at step {}; continue with: gan-cli train dcgan --resume {}",
            outcome.step,
            run.root().display()
        );
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

fn sample(a: SampleArgs) -> anyhow::Result<ExitCode> {
    let run = RunDir::open(&a.run)?;
    let kind: serde_json::Value = run.config()?;
    if kind.get("model").and_then(|m| m.as_str()) == Some("toy") {
        return toy_cmd::sample(&a.run, &a.checkpoint, a.count, &a.out, a.seed);
    }
    let dev = parse_device(&a.device)?;
    let g = load_generator(&run, &a.checkpoint, &dev)?;
    let imgs = g.sample(a.count, a.seed)?;
    let is_png = a
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        let nrow = (a.count as f64).sqrt().ceil() as usize;
        save_grid(&imgs, nrow, &a.out)?;
        println!("wrote a grid of {} samples to {}", a.count, a.out.display());
    } else {
        save_images(&imgs, &a.out, 0)?;
        println!("wrote {} images to {}", a.count, a.out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn interpolate(a: InterpolateArgs) -> anyhow::Result<ExitCode> {
    let run = RunDir::open(&a.run)?;
    let dev = parse_device(&a.device)?;
    let g = load_generator(&run, &a.checkpoint, &dev)?;
    let imgs = g.latent_walk(a.rows, a.steps, a.dim, a.seed)?;
    save_grid(&imgs, a.steps.max(2), &a.out)?;
    match a.dim {
        Some(k) => println!(
            "wrote {} rows sweeping z[{k}] over [-3, 3] to {}",
            a.rows,
            a.out.display()
        ),
        None => println!(
            "wrote {} spherical interpolations to {}",
            a.rows,
            a.out.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
