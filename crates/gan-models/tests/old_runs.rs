//! Run folders written by the code before the training engine (`tests/data/old-runs`, made with
//! the `gan-cli` of commit 9fa91c5, tiny widths, seed 3) still read, resume and sample.
//!
//! Each fixture is a 3-step run; `straight-5/<kind>` holds the generator of a 5-step run with
//! the same flags, made by that same old binary. Resuming a fixture to 5 steps under the new
//! code must reach that generator (1e-6 relative), so old runs continue exactly as they would
//! have: same checkpoint files, same stream table (version 1), same batch order.
//!
//! The commands (`gan-cli` of 9fa91c5, `GAN_DATASETS` pointing at `datasets/`):
//!
//! ```text
//! T="--ngf 4 --ndf 4 --nz 4 --batch-size 8 --sample-every 100 --checkpoint-every 100 --log-every 1 --seed 3"
//! gan-cli train dcgan --data mnist-mini --steps 3 $T --out dcgan
//! gan-cli train wgan --data mnist-mini --steps 3 $T --n-critic 2 --no-burst --out wgan
//! gan-cli train wgan-gp --data mnist-mini --steps 3 $T --n-critic 2 --out wgan-gp
//! gan-cli train toy --dist ring8 --steps 3 --width 8 --depth 2 --batch-size 32 --eval-samples 50 \
//!     --sample-every 100 --checkpoint-every 100 --log-every 1 --seed 3 --lr-gamma 1 --out toy
//! gan-cli train toy ... --loss wgan-gp --n-critic 2 --out toy-wgan-gp
//! (--lr-gamma 1: the toy's milestones are fractions of the run's length, so a 3-step run and a
//! 5-step run would otherwise decay at different steps)
//! gan-cli train cyclegan --dataroot cyclegan-data --steps 3 --channels 1 --load-size 12 \
//!     --crop-size 12 --no-flip --ngf 4 --ndf 4 --n-blocks 1 --n-layers 1 --pool-size 2 \
//!     --epochs 1 --epochs-decay 1 --sample-every 100 --checkpoint-every 100 --log-every 1 --seed 3
//! ```
//!
//! then the sample grids and reports were deleted (only `config.json`, `metrics.jsonl` and
//! `checkpoints/latest` are kept).

#[allow(dead_code)] // not every test file uses every helper
mod common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use gan_data::{ImageSource, Split, Unpaired};
use gan_models::cyclegan_run::{load_cyclegan, train_cyclegan, Direction};
use gan_models::dcgan_run::load_generator;
use gan_models::dcgan_run::train_image_gan;
use gan_models::registry::RunConfig;
use gan_models::run::RunDir;
use gan_models::toy::{load_toy_generator, train_toy};
use gan_models::train::Silent;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/old-runs")
}

/// A copy of fixture `kind` in a temporary folder (the fixture itself is never written).
fn copy_of(kind: &str, tmp: &Path) -> RunDir {
    let src = fixtures().join(kind);
    assert!(
        src.join("config.json").is_file(),
        "fixture {} is missing",
        src.display()
    );
    let dst = tmp.join(kind);
    copy_dir(&src, &dst);
    RunDir::open(&dst).unwrap()
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

fn mnist_mini(size: usize) -> gan_data::TensorDataset {
    let datasets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
    ImageSource::resolve(Some("mnist-mini"), &datasets)
        .expect("datasets/mnist-mini is committed: it must be present")
        .load_train(size, 1)
        .unwrap()
}

/// The resumed run's `file` equals the old straight 5-step run's, 1e-6 relative.
fn assert_same_as_straight(run: &RunDir, kind: &str, file: &str) {
    let resumed = common::params(&run.checkpoint("latest").unwrap().join(file));
    let straight = common::params(&fixtures().join("straight-5").join(kind).join(file));
    assert_eq!(resumed.len(), straight.len(), "{kind} {file}");
    for ((ka, a), (kb, b)) in resumed.iter().zip(&straight) {
        assert_eq!(ka, kb);
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-6 * (1.0 + y.abs()),
                "{kind} {ka}: resumed {x} vs straight {y}"
            );
        }
    }
}

fn read(run: &RunDir, model: &str) -> RunConfig {
    let cfg = RunConfig::read(run).unwrap();
    assert_eq!(cfg.model(), model);
    assert_eq!(cfg.streams(), 1, "an old run keeps the old stream table");
    cfg
}

#[test]
fn old_dcgan_run_resumes_exactly_and_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_of("dcgan", tmp.path());
    let RunConfig::Dcgan(mut cfg) = read(&run, "dcgan") else {
        panic!("not a DCGAN config")
    };
    cfg.run.schedule.steps = 5;
    let out = train_image_gan(&run, &cfg, &mnist_mini(28), true, &mut Silent).unwrap();
    assert_eq!(out.step, 5);
    assert_same_as_straight(&run, "dcgan", "generator.safetensors");
    let g = load_generator(&run, "latest", &Device::Cpu).unwrap();
    assert_eq!(g.sample(3, 0).unwrap().dims(), &[3, 1, 28, 28]);
}

#[test]
fn old_wgan_run_resumes_and_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_of("wgan", tmp.path());
    let RunConfig::Wgan(mut cfg) = read(&run, "wgan") else {
        panic!("not a WGAN config")
    };
    cfg.run.schedule.steps = 5;
    let out = train_image_gan(&run, &cfg, &mnist_mini(28), true, &mut Silent).unwrap();
    assert_eq!(out.step, 5);
    let metrics = std::fs::read_to_string(run.metrics_path()).unwrap();
    assert_eq!(metrics.lines().count(), 5, "steps 4 and 5 appended");
    let g = load_generator(&run, "latest", &Device::Cpu).unwrap();
    assert_eq!(g.sample(2, 0).unwrap().dims(), &[2, 1, 28, 28]);
}

#[test]
fn old_wgan_gp_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_of("wgan-gp", tmp.path());
    let RunConfig::Wgan(mut cfg) = read(&run, "wgan-gp") else {
        panic!("not a WGAN-GP config")
    };
    cfg.run.schedule.steps = 5;
    train_image_gan(&run, &cfg, &mnist_mini(28), true, &mut Silent).unwrap();
    assert_same_as_straight(&run, "wgan-gp", "generator.safetensors");
}

#[test]
fn old_toy_run_resumes_exactly_and_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_of("toy", tmp.path());
    let RunConfig::Toy(mut cfg) = read(&run, "toy") else {
        panic!("not a toy config")
    };
    cfg.schedule.steps = 5;
    train_toy(&run, &cfg, true, &mut Silent).unwrap();
    assert_same_as_straight(&run, "toy", "generator.safetensors");
    let pts = load_toy_generator(&run, "latest", &Device::Cpu)
        .unwrap()
        .sample(10, 1)
        .unwrap();
    assert!(pts.iter().flatten().all(|v| v.is_finite()));
}

#[test]
fn old_toy_wgan_gp_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_of("toy-wgan-gp", tmp.path());
    let RunConfig::Toy(mut cfg) = read(&run, "toy") else {
        panic!("not a toy config")
    };
    cfg.schedule.steps = 6;
    let out = train_toy(&run, &cfg, true, &mut Silent).unwrap();
    assert_eq!(out.fit.step, 6);
    let metrics = std::fs::read_to_string(run.metrics_path()).unwrap();
    assert!(metrics
        .lines()
        .any(|l| l.starts_with("{\"step\":6,") && l.contains("\"wasserstein\"")));
}

#[test]
fn old_cyclegan_run_resumes_exactly_and_translates() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_of("cyclegan", tmp.path());
    let RunConfig::CycleGan(mut cfg) = read(&run, "cyclegan") else {
        panic!("not a CycleGAN config")
    };
    let data_root = fixtures().join("cyclegan-data");
    cfg.data.dataroot = data_root.clone();
    let data = Unpaired::load(
        &data_root,
        Split::Train,
        gan_data::ImageFolderConfig {
            size: 12,
            channels: 1,
        },
    )
    .unwrap();
    cfg.run.schedule.steps = 5;
    train_cyclegan(&run, &cfg, &data, true, &mut Silent).unwrap();
    assert_same_as_straight(&run, "cyclegan", "generator_ab.safetensors");
    let model = load_cyclegan(&run, "latest", &Device::Cpu).unwrap();
    let a = candle_core::Tensor::from_vec(data.a.data().to_vec(), (4, 1, 12, 12), &Device::Cpu)
        .unwrap();
    let out = model.translate(Direction::AToB, &a).unwrap();
    assert_eq!(out.dims(), &[4, 1, 12, 12]);
}
