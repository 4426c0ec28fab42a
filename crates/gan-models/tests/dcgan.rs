//! DCGAN end to end through the library: shapes, learning on mnist-mini, exact resume.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use gan_data::{Dataset, ImageSource, TensorDataset};
use gan_models::dcgan::{DcganConfig, DcganDiscriminator, DcganGenerator};
use gan_models::dcgan_run::train_image_gan;
use gan_models::dcgan_run::{build_trainer, load_generator, DataConfig, DcganRunConfig};
use gan_models::engine::StepRecord;
use gan_models::run::RunDir;
use gan_models::train::Silent;

fn datasets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

fn mnist_mini() -> (ImageSource, TensorDataset) {
    let src = ImageSource::resolve(Some("mnist-mini"), &datasets_dir())
        .expect("datasets/mnist-mini is committed: it must be present");
    let ds = src.load_train(28, 1).unwrap();
    (src, ds)
}

fn config(src: &ImageSource, ds: &TensorDataset, steps: u64) -> DcganRunConfig {
    let data = DataConfig {
        source: src.name.clone(),
        path: src.path.clone(),
        items: ds.len(),
        max_items: None,
    };
    let mut cfg = DcganRunConfig::new(data, 1);
    cfg.run.schedule.steps = steps;
    cfg.run.schedule.sample_every = 0;
    cfg.run.schedule.checkpoint_every = 0;
    cfg.run.schedule.log_every = 1;
    cfg.run.seed = 1;
    cfg
}

#[test]
fn shapes_of_all_sizes() {
    for (size, c) in [(28, 1), (32, 3), (64, 3)] {
        let cfg = DcganConfig {
            nz: 16,
            ngf: 8,
            ndf: 8,
            channels: c,
            image_size: size,
            spectral_norm: false,
        };
        let vars = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let g = DcganGenerator::new(&cfg, vb.pp("g")).unwrap();
        let d = DcganDiscriminator::new(&cfg, vb.pp("d")).unwrap();
        let z = Tensor::randn(0f32, 1.0, (3, 16), &Device::Cpu).unwrap();
        let x = g.forward_t(&z, true).unwrap();
        assert_eq!(x.dims(), &[3, c, size, size]);
        assert_eq!(d.forward_t(&x, true).unwrap().dims(), &[3]);
    }
    let bad = DcganConfig {
        image_size: 48,
        ..DcganConfig::default()
    };
    assert!(bad.validate().is_err());
}

/// A discriminator without BatchNorm gives each sample the logit it gets alone, so the trainer
/// may put reals and fakes through one pass (`per_sample`); one with BatchNorm does not.
#[test]
fn spectral_norm_discriminator_scores_samples_independently() {
    use gan_models::train::DiscriminatorNet;
    let dev = Device::Cpu;
    for spectral_norm in [true, false] {
        let cfg = DcganConfig {
            ndf: 8,
            spectral_norm,
            ..DcganConfig::default()
        };
        let vars = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vars, DType::F32, &dev);
        let d = DcganDiscriminator::new(&cfg, vb.pp("d")).unwrap();
        assert_eq!(d.per_sample(), spectral_norm);
        let a = Tensor::randn(0f32, 1.0, (5, 1, 28, 28), &dev).unwrap();
        let b = Tensor::randn(0.5f32, 1.0, (3, 1, 28, 28), &dev).unwrap();
        // Spectral norm without a power iteration (u fixed); BatchNorm with batch statistics.
        let train = !spectral_norm;
        let both = d
            .logits(&Tensor::cat(&[&a, &b], 0).unwrap(), train)
            .unwrap();
        let apart = Tensor::cat(
            &[&d.logits(&a, train).unwrap(), &d.logits(&b, train).unwrap()],
            0,
        )
        .unwrap();
        let diff = (both - apart)
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        if spectral_norm {
            assert!(diff < 1e-5, "one pass and two differ by {diff}");
        } else {
            assert!(diff > 1e-3, "BatchNorm should mix the batch: {diff}");
        }
    }
}

#[test]
fn dcgan28_matches_the_reference_parameter_names_and_count() {
    // torch_dcgan.py's dcgan28: G 100·256·49 + 256·128·16 + 128·16 conv weights and 2 BatchNorms,
    // D 64·16 + 64·128·16 + 128·49 conv weights and 1 BatchNorm.
    let cfg = DcganConfig::dcgan28();
    let vars = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
    DcganGenerator::new(&cfg, vb.pp("g")).unwrap();
    DcganDiscriminator::new(&cfg, vb.pp("d")).unwrap();
    let data = vars.data().lock().unwrap();
    let count = |prefix: &str| -> usize {
        data.iter()
            .filter(|(k, _)| k.starts_with(prefix) && !k.contains("running"))
            .map(|(_, v)| v.elem_count())
            .sum()
    };
    assert_eq!(
        count("g."),
        100 * 256 * 49 + 256 * 128 * 16 + 128 * 16 + 2 * (256 + 128)
    );
    assert_eq!(count("d."), 64 * 16 + 64 * 128 * 16 + 128 * 49 + 2 * 128);
    assert!(data.contains_key("g.main.0.weight") && data.contains_key("g.main.1.running_mean"));
    assert!(data.contains_key("d.main.2.weight") && data.contains_key("d.main.3.weight"));
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().map(|&x| x as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa.sqrt() * sbb.sqrt()).max(1e-12)
}

/// Mean image and mean per-pixel standard deviation of 256 samples.
fn sample_stats(run: &RunDir, name: &str) -> (Vec<f32>, f64) {
    let g = load_generator(run, name, &Device::Cpu).unwrap();
    let x = g.sample(256, 99).unwrap().flatten_from(1).unwrap();
    let mean: Vec<f32> = x.mean(0).unwrap().to_vec1().unwrap();
    let std = x
        .var_keepdim(0)
        .unwrap()
        .sqrt()
        .unwrap()
        .mean_all()
        .unwrap();
    (mean, std.to_scalar::<f32>().unwrap() as f64)
}

#[test]
fn learns_mnist_mini_in_300_steps() {
    let (src, ds) = mnist_mini();
    let mut cfg = config(&src, &ds, 300);
    // dcgan28 at half width (a quarter of the arithmetic) keeps the test near a minute on 2 cores.
    cfg.dcgan.ngf = 32;
    cfg.dcgan.ndf = 32;
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path().join("run"), &cfg).unwrap();
    let mean_train = ds.mean_item();

    // The untrained generator, saved as a checkpoint so that it is sampled the same way.
    let trainer = build_trainer(&cfg, &Device::Cpu).unwrap();
    let state = gan_models::train::TrainState {
        step: 0,
        epoch: 0,
        batch_index: 0,
        noise_rng: Some(trainer.noise.state()),
    };
    run.write_checkpoint("step-000000", |d| {
        gan_models::engine::save_checkpoint(&trainer, d, &state)
    })
    .unwrap();
    let (mean0, _) = sample_stats(&run, "step-000000");
    let r0 = pearson(&mean0, &mean_train);

    let out = train_image_gan(&run, &cfg, &ds, false, &mut Silent).unwrap();
    assert_eq!(out.step, 300);
    let (mean1, spread) = sample_stats(&run, "latest");
    let r1 = pearson(&mean1, &mean_train);
    eprintln!("correlation with the mean training image: {r0:.3} at init, {r1:.3} after 300 steps; spread {spread:.3}");
    assert!(r0.abs() < 0.3, "untrained samples already correlate: {r0}");
    assert!(
        r1 > 0.8,
        "after 300 steps the mean sample correlates only {r1}"
    );
    assert!(
        spread > 0.15,
        "samples collapsed: mean per-pixel std {spread}"
    );

    // Every logged number is finite.
    let text = std::fs::read_to_string(run.metrics_path()).unwrap();
    assert_eq!(text.lines().count(), 300);
    for line in text.lines() {
        let m: gan_models::train::StepMetrics = serde_json::from_str(line).unwrap();
        assert!(m.is_finite(), "{line}");
    }
    assert!(run.sample_path(300).is_file());
}

fn small_config(steps: u64) -> (DcganRunConfig, TensorDataset) {
    let (src, full) = mnist_mini();
    let ds = full.subset(&(0..256).collect::<Vec<_>>());
    let mut cfg = config(&src, &ds, steps);
    cfg.dcgan = DcganConfig {
        nz: 8,
        ngf: 8,
        ndf: 8,
        channels: 1,
        image_size: 28,
        spectral_norm: false,
    };
    cfg.run.batch_size = 32;
    (cfg, ds)
}

#[test]
fn resume_reaches_the_same_parameters() {
    // 256 items at batch 32: 8 steps an epoch, so the run crosses epochs and resumes mid-epoch.
    let (cfg, ds) = small_config(20);
    let dir = tempfile::tempdir().unwrap();
    let straight = RunDir::create(dir.path().join("a"), &cfg).unwrap();
    train_image_gan(&straight, &cfg, &ds, false, &mut Silent).unwrap();

    let mut first = cfg.clone();
    first.run.schedule.steps = 11;
    let resumed = RunDir::create(dir.path().join("b"), &first).unwrap();
    train_image_gan(&resumed, &first, &ds, false, &mut Silent).unwrap();
    let out = train_image_gan(&resumed, &cfg, &ds, true, &mut Silent).unwrap();
    assert_eq!(out.step, 20);

    common::assert_same_latest(
        &straight,
        &resumed,
        &[
            "generator.safetensors",
            "discriminator.safetensors",
            "optimizers.safetensors",
        ],
        "dcgan",
    );
    // The metrics of the resumed run are those of the straight one, each step once.
    let la = std::fs::read_to_string(straight.metrics_path()).unwrap();
    let lb = std::fs::read_to_string(resumed.metrics_path()).unwrap();
    assert_eq!(la.lines().count(), lb.lines().count());
}

#[test]
fn a_new_run_never_overwrites_an_old_one() {
    let (cfg, _) = small_config(1);
    let dir = tempfile::tempdir().unwrap();
    RunDir::create(dir.path().join("r"), &cfg).unwrap();
    let err = RunDir::create(dir.path().join("r"), &cfg).unwrap_err();
    assert!(err.to_string().contains("already holds a run"), "{err}");
}

#[test]
fn corrupt_checkpoint_is_a_clear_error() {
    let (cfg, ds) = small_config(2);
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path().join("r"), &cfg).unwrap();
    train_image_gan(&run, &cfg, &ds, false, &mut Silent).unwrap();
    let g = run
        .checkpoint("latest")
        .unwrap()
        .join("generator.safetensors");
    std::fs::write(&g, b"not safetensors").unwrap();
    let err = load_generator(&run, "latest", &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("generator.safetensors"), "{err}");
    let err = load_generator(&run, "step-7", &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("no such checkpoint"), "{err}");
}

/// SNGAN (spectral norm, hinge, β1 0) with an EMA generator and DiffAugment learns mnist-mini:
/// after 200 steps of 2 discriminator steps the mean sample of the EMA generator correlates with
/// the mean training image, samples are spread, the EMA is what `load_generator` gives (the raw
/// generator with `raw`), and every spectrally normalised layer's u is in the checkpoint.
#[test]
fn sngan_with_ema_learns_mnist_mini() {
    let (src, ds) = mnist_mini();
    let base = config(&src, &ds, 200);
    let mut cfg = DcganRunConfig::sngan(base.data.clone(), 1);
    cfg.run.schedule = base.run.schedule;
    cfg.run.seed = 1;
    cfg.dcgan.ngf = 32;
    cfg.dcgan.ndf = 32;
    cfg.options.n_dis = 2;
    cfg.options.ema = Some(gan_core::ema::EmaConfig {
        decay: 0.99,
        start: 50,
    });
    cfg.options.diffaug = Some(gan_core::diffaug::DiffAugment::parse("translation").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path().join("run"), &cfg).unwrap();
    let out = train_image_gan(&run, &cfg, &ds, false, &mut Silent).unwrap();
    assert_eq!(out.step, 200);
    let (mean, spread) = sample_stats(&run, "latest");
    let r = pearson(&mean, &ds.mean_item());
    eprintln!("SNGAN + EMA: correlation {r:.3}, spread {spread:.3}");
    assert!(
        r > 0.8,
        "after 200 steps the mean EMA sample correlates only {r}"
    );
    assert!(
        spread > 0.15,
        "samples collapsed: mean per-pixel std {spread}"
    );

    let ema = load_generator(&run, "latest", &Device::Cpu).unwrap();
    let raw =
        gan_models::dcgan_run::load_generator_from(&run, "latest", &Device::Cpu, true).unwrap();
    let (a, b) = (ema.sample(8, 3).unwrap(), raw.sample(8, 3).unwrap());
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    assert!(
        diff.to_scalar::<f32>().unwrap() > 1e-3,
        "EMA and raw generators are the same"
    );
    let d = candle_core::safetensors::load(
        run.checkpoint("latest")
            .unwrap()
            .join("discriminator.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    for i in [0, 2, 5] {
        assert!(
            d.contains_key(&format!("main.{i}.weight_u")),
            "{:?}",
            d.keys()
        );
    }
    assert!(
        !d.keys().any(|k| k.contains("running_mean")),
        "BatchNorm in SNGAN's D"
    );
}

/// The variables of `vars` by name, as flat f32 vectors.
fn var_values(vars: &candle_nn::VarMap) -> std::collections::BTreeMap<String, Vec<f32>> {
    vars.data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect()
}

/// `init` starts a new trainer from the files' weights (the EMA generator too), whatever the
/// seed; a file of another network's shape is refused naming the file and the variables; a
/// resumed run does not read the files.
#[test]
fn a_new_run_starts_from_given_weights() {
    let (src, ds) = mnist_mini();
    let mut a = config(&src, &ds, 1);
    (a.dcgan.ngf, a.dcgan.ndf, a.dcgan.nz) = (8, 8, 10);
    a.run.seed = 1;
    let dir = tempfile::tempdir().unwrap();
    let (g_file, d_file) = (
        dir.path().join("g.safetensors"),
        dir.path().join("d.safetensors"),
    );
    let ta = build_trainer(&a, &Device::Cpu).unwrap();
    ta.g_vars.save(&g_file).unwrap();
    ta.d_vars.save(&d_file).unwrap();

    let mut b = a.clone();
    b.run.seed = 2;
    b.options.ema = Some(gan_core::ema::EmaConfig {
        decay: 0.999,
        start: 0,
    });
    let plain = build_trainer(&b, &Device::Cpu).unwrap();
    assert_ne!(
        var_values(&plain.g_vars),
        var_values(&ta.g_vars),
        "seeds differ"
    );
    b.init.generator = Some(g_file.clone());
    b.init.discriminator = Some(d_file.clone());
    let tb = build_trainer(&b, &Device::Cpu).unwrap();
    assert_eq!(var_values(&tb.g_vars), var_values(&ta.g_vars));
    assert_eq!(var_values(&tb.d_vars), var_values(&ta.d_vars));
    let ema = tb.ema.as_ref().expect("an EMA generator");
    assert_eq!(var_values(&ema.vars), var_values(&ta.g_vars));

    // Resuming builds from the seed: the files are not read (they may be gone).
    assert!(b.fresh_or_resumed(true).init.is_empty());
    assert_eq!(b.fresh_or_resumed(false).init, b.init);

    let mut wide = b.clone();
    wide.dcgan.ngf = 16;
    wide.init.discriminator = None;
    let msg = build_trainer(&wide, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("g.safetensors") && msg.contains("of another shape") && msg.contains("["),
        "{msg}"
    );
    let mut swapped = b.clone();
    swapped.init.generator = Some(d_file.clone());
    let msg = build_trainer(&swapped, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("d.safetensors")
            && msg.contains("missing")
            && msg.contains("not in the network"),
        "{msg}"
    );
    let mut gone = b.clone();
    gone.init.generator = Some(dir.path().join("none.safetensors"));
    let msg = build_trainer(&gone, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("none.safetensors") && msg.contains("no such file"),
        "{msg}"
    );
}

/// `--max-items`: that many items spread evenly over the dataset (item `i · len / max`), with
/// their labels, every digit kept; 0 is refused and a cap above the length changes nothing.
#[test]
fn max_items_keeps_an_even_spread_of_the_data() {
    let (src, ds) = mnist_mini();
    let mut data = DataConfig {
        source: src.name.clone(),
        path: src.path.clone(),
        items: ds.len(),
        max_items: Some(500),
    };
    let small = data.limit(ds.clone()).unwrap();
    assert_eq!(small.len(), 500);
    let (full_labels, labels) = (ds.labels().unwrap(), small.labels().unwrap());
    let item_len = ds.data().len() / ds.len();
    for i in [0, 1, 250, 499] {
        let j = i * ds.len() / 500;
        assert_eq!(labels[i], full_labels[j]);
        assert_eq!(
            &small.data()[i * item_len..][..item_len],
            &ds.data()[j * item_len..][..item_len]
        );
    }
    for digit in 0..10 {
        let n = labels.iter().filter(|&&l| l == digit).count();
        assert!((30..=70).contains(&n), "digit {digit}: {n} of 500");
    }
    data.max_items = Some(0);
    assert!(data
        .limit(ds.clone())
        .unwrap_err()
        .to_string()
        .contains("--max-items 0"));
    data.max_items = Some(20_000);
    assert_eq!(data.limit(ds.clone()).unwrap().len(), ds.len());
}
