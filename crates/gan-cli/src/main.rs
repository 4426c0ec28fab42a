//! `gan-cli`: train, sample and explore GANs from the command line. A thin front over the
//! `gan-models` and `gan-data` libraries: it parses flags, resolves paths, draws progress and
//! reports errors; all training logic lives in the libraries.
//!
//! Exit codes: 0 success, 2 error, 130 interrupted by Ctrl-C (after writing a checkpoint).

mod args;
mod cgan_cmd;
mod cyclegan_cmd;
mod dcgan_cmd;
mod embedded;
mod eval_cmd;
mod progress;
mod toy_cmd;
mod train_cmd;
mod wgan_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use gan_models::cgan_run::load_cgan;
use gan_models::dcgan_run::{load_generator_from, parse_device};
use gan_models::grid::{save_grid, save_images};
use gan_models::registry::RunConfig;
use gan_models::run::RunDir;

use crate::args::{Cli, Command, InterpolateArgs, SampleArgs, TrainModel};

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
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    train_cmd::set_given_flags(&matches);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Command::Train(TrainModel::Dcgan(a)) => dcgan_cmd::train(*a, "dcgan"),
        Command::Train(TrainModel::Sngan(a)) => dcgan_cmd::train(*a, "sngan"),
        Command::Train(TrainModel::Toy(a)) => toy_cmd::train(*a),
        Command::Train(TrainModel::Wgan(a)) => wgan_cmd::train(*a, false),
        Command::Train(TrainModel::WganGp(a)) => wgan_cmd::train(*a, true),
        Command::Sample(a) => sample(a),
        Command::Interpolate(a) => interpolate(a),
        Command::Train(TrainModel::Cyclegan(a)) => cyclegan_cmd::train(*a),
        Command::Train(TrainModel::Cgan(a)) => cgan_cmd::train(*a),
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

/// Picks `runs/<base>`, or `runs/<base>-2`, `-3`, ... if taken (saying so: the README's
/// examples name `runs/<base>`).
pub(crate) fn fresh_run_dir(base: &str) -> PathBuf {
    let dir = unused_path(Path::new("runs"), base, "");
    let wanted = Path::new("runs").join(base);
    if dir != wanted {
        tracing::warn!(
            "{} holds an earlier run: this run goes to {} (give --out to choose the folder)",
            wanted.display(),
            dir.display()
        );
    }
    dir
}

/// `dir/<stem>.<ext>` (no extension when `ext` is empty), or `dir/<stem>-2.<ext>`, `-3`, ... :
/// the first name not taken, so that a default output never replaces an earlier one.
pub(crate) fn unused_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    let name = |suffix: String| {
        let mut n = format!("{stem}{suffix}");
        if !ext.is_empty() {
            n = format!("{n}.{ext}");
        }
        dir.join(n)
    };
    let mut path = name(String::new());
    let mut i = 2;
    while path.exists() {
        path = name(format!("-{i}"));
        i += 1;
    }
    path
}

/// The `--out` of a command about a run: as given, or by default a new file `<stem>.<ext>` in
/// the run's folder (outputs about a run stay with it, not in the working directory).
pub(crate) fn out_or_in_run(out: Option<&Path>, run: &Path, stem: &str, ext: &str) -> PathBuf {
    out.map(Path::to_path_buf)
        .unwrap_or_else(|| unused_path(run, stem, ext))
}

/// `path` made absolute and canonical (links and `..` resolved), the form in which a new run
/// stores its data paths in `config.json`, so that the run can be resumed, sampled and reported
/// from any working directory. A path that does not exist is returned as given: the loader then
/// reports it, before anything is written.
pub(crate) fn absolute_data_path(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The data folder `stored` recorded in the `config.json` of the run `run_root`, found from the
/// current directory. Runs written before data paths were stored absolute hold them as typed,
/// relative to the folder the command ran in: such a path is tried from the current directory,
/// then from each folder above the run (a run made in `/x` as `runs/dcgan` with `--data imgs`
/// finds `/x/imgs`). Refused, naming the path and how to fix it, when none holds it.
pub(crate) fn locate_stored_data(run_root: &Path, stored: &Path) -> anyhow::Result<PathBuf> {
    if stored.is_absolute() || stored.exists() {
        return Ok(stored.to_path_buf());
    }
    if let Ok(run) = std::fs::canonicalize(run_root) {
        for above in run.ancestors().skip(1) {
            let candidate = above.join(stored);
            if candidate.exists() {
                tracing::info!(
                    "the run's data folder {} (relative, as typed when it was created) is {}",
                    stored.display(),
                    candidate.display()
                );
                return Ok(candidate);
            }
        }
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    bail!(
        "{}: the run's config.json records its data folder as {}, relative to the folder the run \
         was created in, and it is found neither from the current directory {} nor from a folder \
         above the run: run this command from the folder the run was created in",
        run_root.join("config.json").display(),
        stored.display(),
        cwd.display()
    )
}

/// What an image command writes at an `--out` path, told by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ImageOut {
    /// One PNG grid (a path ending in `.png`).
    Grid,
    /// A folder of PNGs (an existing folder, or a path without extension).
    Folder,
}

/// Reads what `out` asks for from its extension: `.png` (any case) is a grid, an existing folder
/// or a path without extension a folder; anything else (`x.csv`, `x.jpg`) is refused, naming
/// the path and the extensions expected, rather than written in a format its name belies.
/// `folder_ok` is false for commands that write only a grid.
pub(crate) fn image_out(out: &std::path::Path, folder_ok: bool) -> anyhow::Result<ImageOut> {
    let ext = out.extension().map(|e| e.to_string_lossy().into_owned());
    let kind = match ext.as_deref() {
        _ if out.is_dir() => ImageOut::Folder,
        Some(e) if e.eq_ignore_ascii_case("png") => ImageOut::Grid,
        None => ImageOut::Folder,
        Some(e) => {
            if folder_ok {
                bail!(
                    "--out {}: cannot write images as .{e}: give a path ending in .png for one \
                     grid, or a folder (a path without extension) for one PNG per image",
                    out.display()
                )
            }
            bail!(
                "--out {}: cannot write images as .{e}: give a path ending in .png",
                out.display()
            )
        }
    };
    if kind == ImageOut::Folder && !folder_ok {
        bail!(
            "--out {}: this command writes one PNG grid: give a path ending in .png{}",
            out.display(),
            if out.is_dir() {
                " (this is a folder)"
            } else {
                ""
            }
        );
    }
    Ok(kind)
}

fn sample(a: SampleArgs) -> anyhow::Result<ExitCode> {
    let run = RunDir::open(&a.run)?;
    let stem = format!("sample-{}", a.generator.checkpoint);
    match RunConfig::read(&run)? {
        RunConfig::Toy(_) => {
            let out = out_or_in_run(a.out.as_deref(), &a.run, &stem, "csv");
            return toy_cmd::sample(
                &a.run,
                &a.generator.checkpoint,
                a.count,
                &out,
                a.generator.seed,
            );
        }
        RunConfig::CycleGan(_) => bail!(
            "{} is a CycleGAN run, which translates images instead of sampling noise: use \
             gan-cli translate --run {} --input DIR --out DIR",
            a.run.display(),
            a.run.display()
        ),
        RunConfig::Cgan(_) => {
            let g = load_cgan(
                &run,
                &a.generator.checkpoint,
                &parse_device(&a.generator.device)?,
            )?;
            let out = out_or_in_run(a.out.as_deref(), &a.run, &stem, "png");
            return cgan_cmd::sample(&a, &g, &out);
        }
        _ => {}
    }
    if let Some(c) = &a.class {
        bail!(
            "--class {c}: {} is not a class-conditional run (train one with gan-cli train cgan)",
            a.run.display()
        );
    }
    let out = out_or_in_run(a.out.as_deref(), &a.run, &stem, "png");
    let kind = image_out(&out, true)?;
    let dev = parse_device(&a.generator.device)?;
    let g = load_generator_from(&run, &a.generator.checkpoint, &dev, a.generator.raw_g)?;
    let imgs = g.sample(a.count, a.generator.seed)?;
    if kind == ImageOut::Grid {
        let nrow = (a.count as f64).sqrt().ceil() as usize;
        save_grid(&imgs, nrow, &out)?;
        println!("wrote a grid of {} samples to {}", a.count, out.display());
    } else {
        save_images(&imgs, &out, 0)?;
        println!("wrote {} images to {}", a.count, out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn interpolate(a: InterpolateArgs) -> anyhow::Result<ExitCode> {
    let run = RunDir::open(&a.run)?;
    let stem = match a.dim {
        Some(k) => format!("walk-{}-dim{k}", a.generator.checkpoint),
        None => format!("walk-{}", a.generator.checkpoint),
    };
    let out = out_or_in_run(a.out.as_deref(), &a.run, &stem, "png");
    image_out(&out, false)?;
    if let RunConfig::Cgan(_) = RunConfig::read(&run)? {
        return cgan_cmd::interpolate(&a, &run, &out);
    }
    if a.class.is_some() || a.between_classes.is_some() {
        bail!(
            "--class and --between-classes need a class-conditional run; {} is not one",
            a.run.display()
        );
    }
    let dev = parse_device(&a.generator.device)?;
    let g = load_generator_from(&run, &a.generator.checkpoint, &dev, a.generator.raw_g)?;
    let imgs = g.latent_walk(a.rows, a.steps, a.dim, a.generator.seed)?;
    save_grid(&imgs, a.steps.max(2), &out)?;
    match a.dim {
        Some(k) => println!(
            "wrote {} rows sweeping z[{k}] over [-3, 3] to {}",
            a.rows,
            out.display()
        ),
        None => println!(
            "wrote {} spherical interpolations to {}",
            a.rows,
            out.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// Every flag of every subcommand says what it does in `--help`.
    #[test]
    fn every_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_long().unwrap_or(id)));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &<crate::args::Cli as clap::CommandFactory>::command(),
            "gan-cli",
            &mut missing,
        );
        assert!(missing.is_empty(), "flags without help: {missing:?}");
    }
}
