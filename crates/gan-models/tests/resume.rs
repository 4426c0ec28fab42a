//! One resume check for every model kind: N + M steps with a resume in between reach the
//! parameters, optimizer states and logged metrics of N + M steps straight (1e-6 relative).
//!
//! The configurations are the tiny ones of the old-run fixtures (`tests/data/old-runs`), moved
//! to the current stream table, so every kind is checked with the same helper and the same
//! small networks.

#[allow(dead_code)] // not every test file uses every helper
mod common;

use std::path::{Path, PathBuf};

use gan_data::{ImageSource, Split, Unpaired};
use gan_models::cgan::CondMode;
use gan_models::cgan_run::CganRunConfig;
use gan_models::cyclegan_run::train_cyclegan;
use gan_models::dcgan_run::train_image_gan;
use gan_models::registry::RunConfig;
use gan_models::run::RunDir;
use gan_models::toy::train_toy;
use gan_models::train::Silent;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/old-runs")
}

/// The fixture's configuration of `kind`, on the current stream table, `steps` long, logging
/// every step and checkpointing only at the end.
///
/// `cgan-projection` and `cgan-acgan` are the DCGAN fixture made class-conditional on the ten
/// digits. `sngan-all` is the DCGAN fixture as an SNGAN (spectral norm, hinge) with every option
/// of `GanOptions` on: 2 discriminator steps, DiffAugment, lazy R1 and the EMA generator.
fn config(kind: &str, steps: u64) -> RunConfig {
    let cond = match kind {
        "cgan-projection" => Some(CondMode::Projection),
        "cgan-acgan" => Some(CondMode::Acgan),
        _ => None,
    };
    let fixture = if kind == "sngan-all" || cond.is_some() {
        "dcgan"
    } else {
        kind
    };
    let run = RunDir::open(fixtures().join(fixture)).unwrap();
    let mut cfg = RunConfig::read(&run).unwrap();
    if let (Some(cond), RunConfig::Dcgan(base)) = (cond, &cfg) {
        let digits = (0..10).map(|d| d.to_string()).collect();
        cfg = RunConfig::Cgan(CganRunConfig::new(base.clone(), cond, digits));
    }
    let schedule = match &mut cfg {
        RunConfig::Dcgan(c) => {
            c.run.streams = gan_models::streams::CURRENT;
            if kind == "sngan-all" {
                c.model = "sngan".into();
                c.dcgan.spectral_norm = true;
                c.step.loss = gan_core::loss::GeneratorLoss::Hinge;
                c.options = gan_models::options::GanOptions {
                    n_dis: 2,
                    diffaug: Some(
                        gan_core::diffaug::DiffAugment::parse("color,translation,cutout").unwrap(),
                    ),
                    r1: Some(gan_models::options::R1Config {
                        gamma: 1.0,
                        every: 2,
                    }),
                    ema: Some(gan_core::ema::EmaConfig {
                        decay: 0.9,
                        start: 1,
                    }),
                    raw_generator: false,
                };
            }
            &mut c.run.schedule
        }
        RunConfig::Wgan(c) => {
            c.run.streams = gan_models::streams::CURRENT;
            &mut c.run.schedule
        }
        RunConfig::Toy(c) => {
            c.streams = gan_models::streams::CURRENT;
            &mut c.schedule
        }
        RunConfig::CycleGan(c) => {
            c.run.streams = gan_models::streams::CURRENT;
            c.data.dataroot = fixtures().join("cyclegan-data");
            &mut c.run.schedule
        }
        RunConfig::Cgan(c) => {
            c.base.run.streams = gan_models::streams::CURRENT;
            &mut c.base.run.schedule
        }
    };
    schedule.steps = steps;
    schedule.log_every = 1;
    schedule.checkpoint_every = 0;
    cfg
}

/// Trains `cfg` in `run` (new, or resumed from its latest checkpoint) through the model's own
/// train function.
fn train(run: &RunDir, cfg: &RunConfig, resume: bool) {
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    let mnist_at = |items: &[usize]| {
        ImageSource::resolve(Some("mnist-mini"), &datasets)
            .expect("datasets/mnist-mini is committed: it must be present")
            .load_train(28, 1)
            .unwrap()
            .subset(items)
    };
    let mnist = || mnist_at(&(0..64).collect::<Vec<_>>());
    match cfg {
        RunConfig::Dcgan(c) => {
            train_image_gan(run, c, &mnist(), resume, &mut Silent).unwrap();
        }
        RunConfig::Wgan(c) => {
            train_image_gan(run, c, &mnist(), resume, &mut Silent).unwrap();
        }
        RunConfig::Toy(c) => {
            train_toy(run, c, resume, &mut Silent).unwrap();
        }
        RunConfig::CycleGan(c) => {
            let data = Unpaired::load(
                &c.data.dataroot,
                Split::Train,
                gan_data::ImageFolderConfig {
                    size: c.data.load_size,
                    channels: c.net.channels,
                },
            )
            .unwrap();
            train_cyclegan(run, c, &data, resume, &mut Silent).unwrap();
        }
        RunConfig::Cgan(c) => {
            // mnist-mini is sorted by class: every 140th image holds all ten.
            let every_class: Vec<usize> = (0..64).map(|i| i * 140).collect();
            train_image_gan(run, c, &mnist_at(&every_class), resume, &mut Silent).unwrap();
        }
    }
}

/// The checkpoint files of a kind.
fn files(cfg: &RunConfig) -> Vec<&'static str> {
    match cfg {
        RunConfig::Dcgan(c) if c.options.ema.is_some() => {
            vec!["generator", "generator_ema", "discriminator", "optimizers"]
        }
        RunConfig::Dcgan(_) | RunConfig::Cgan(_) => {
            vec!["generator", "discriminator", "optimizers"]
        }
        RunConfig::Wgan(_) => vec!["generator", "critic", "optimizers"],
        RunConfig::Toy(c) if c.loss == gan_models::toy::ToyLoss::WganGp => {
            vec!["generator", "critic", "optimizers"]
        }
        RunConfig::Toy(_) => vec!["generator", "discriminator", "optimizers"],
        RunConfig::CycleGan(_) => vec![
            "generator_ab",
            "generator_ba",
            "discriminator_a",
            "discriminator_b",
            "optimizers",
            "pools",
        ],
    }
}

/// The helper: `first` steps, then a resume to `total`, against `total` straight. Runs on a
/// fresh thread, as WGAN-GP's second-order gradients need (see `gan_core::penalty`).
fn assert_resume_is_exact(kind: &'static str, first: u64, total: u64) {
    std::thread::spawn(move || {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(kind, total);
        let short = config(kind, first);
        let straight = RunDir::create(tmp.path().join("straight"), &cfg).unwrap();
        train(&straight, &cfg, false);
        let split = RunDir::create(tmp.path().join("split"), &short).unwrap();
        train(&split, &short, false);
        train(&split, &cfg, true);
        let names: Vec<String> = files(&cfg)
            .iter()
            .map(|f| format!("{f}.safetensors"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        common::assert_same_latest(&straight, &split, &names, kind);
        // The same lines logged, each step once (evaluations of the toy's plots included).
        let steps_only = |run: &RunDir| -> Vec<String> {
            std::fs::read_to_string(run.metrics_path())
                .unwrap()
                .lines()
                .filter(|l| l.contains("loss"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(steps_only(&straight), steps_only(&split), "{kind}: metrics");
        assert_eq!(
            steps_only(&straight).len() as u64,
            total,
            "{kind}: one line a step"
        );
    })
    .join()
    .unwrap_or_else(|_| panic!("{kind}: resume check failed"));
}

#[test]
fn dcgan_resumes_exactly() {
    assert_resume_is_exact("dcgan", 5, 11);
}

#[test]
fn cgan_projection_resumes_exactly() {
    assert_resume_is_exact("cgan-projection", 5, 11);
}

#[test]
fn cgan_acgan_resumes_exactly() {
    assert_resume_is_exact("cgan-acgan", 3, 6);
}

#[test]
fn wgan_resumes_exactly() {
    assert_resume_is_exact("wgan", 3, 6);
}

#[test]
fn wgan_gp_resumes_exactly() {
    assert_resume_is_exact("wgan-gp", 3, 6);
}

#[test]
fn toy_resumes_exactly() {
    assert_resume_is_exact("toy", 7, 12);
}

#[test]
fn toy_wgan_gp_resumes_exactly() {
    assert_resume_is_exact("toy-wgan-gp", 3, 6);
}

#[test]
fn cyclegan_resumes_exactly() {
    assert_resume_is_exact("cyclegan", 3, 6);
}

/// Spectral norm's u, the EMA generator, DiffAugment's draws, R1 and extra discriminator steps
/// all resume exactly.
#[test]
fn sngan_with_every_option_resumes_exactly() {
    assert_resume_is_exact("sngan-all", 3, 6);
}
