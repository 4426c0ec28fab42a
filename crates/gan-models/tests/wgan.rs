//! WGAN and WGAN-GP through the library: the critic's shape and names, the critic schedule, a
//! step changes both networks, clipping keeps the critic in its box, exact resume, and the
//! generator of a WGAN run loads for sampling.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use gan_data::{BatchConfig, Batcher, Dataset, ImageSource, TensorDataset};
use gan_models::dcgan::{DcganConfig, DcganDiscriminator};
use gan_models::dcgan_run::train_image_gan;
use gan_models::dcgan_run::{load_generator, DataConfig};
use gan_models::engine::{StepRecord, Trainer};
use gan_models::run::RunDir;
use gan_models::train::Silent;
use gan_models::wgan::{
    CriticNorm, CriticSchedule, Lipschitz, WganCritic, WganRunConfig, WganTrainer,
};

fn datasets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

/// A tiny configuration on the first 128 images of mnist-mini, batch 16, widths 8.
fn small(gp: bool, steps: u64) -> (WganRunConfig, TensorDataset) {
    let src = ImageSource::resolve(Some("mnist-mini"), &datasets_dir())
        .expect("datasets/mnist-mini is committed: it must be present");
    let ds = src
        .load_train(28, 1)
        .unwrap()
        .subset(&(0..128).collect::<Vec<_>>());
    let data = DataConfig {
        source: src.name.clone(),
        path: src.path.clone(),
        items: ds.len(),
        max_items: None,
    };
    let mut cfg = if gp {
        WganRunConfig::wgan_gp(data, 1)
    } else {
        WganRunConfig::wgan(data, 1)
    };
    cfg.dcgan = DcganConfig {
        nz: 8,
        ngf: 8,
        ndf: 8,
        channels: 1,
        image_size: 28,
        spectral_norm: false,
    };
    cfg.critic = CriticSchedule::constant(2);
    cfg.run.batch_size = 16;
    cfg.run.seed = 3;
    cfg.run.schedule.steps = steps;
    cfg.run.schedule.sample_every = 0;
    cfg.run.schedule.checkpoint_every = 0;
    cfg.run.schedule.log_every = 1;
    (cfg, ds)
}

fn snapshot(vars: &VarMap) -> Vec<(String, Vec<f32>)> {
    let mut v: Vec<_> = vars
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn changed(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x.1 != y.1).count()
}

#[test]
fn critic_is_dcgan_discriminator_body_with_linear_output() {
    let dev = Device::Cpu;
    for (size, c) in [(28, 1), (32, 3), (64, 3)] {
        let cfg = DcganConfig {
            nz: 8,
            ngf: 8,
            ndf: 8,
            channels: c,
            image_size: size,
            spectral_norm: false,
        };
        let d_vars = VarMap::new();
        DcganDiscriminator::new(&cfg, VarBuilder::from_varmap(&d_vars, DType::F32, &dev)).unwrap();
        let shapes = |vm: &VarMap| {
            let mut v: Vec<_> = vm
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.dims().to_vec()))
                .collect();
            v.sort();
            v
        };
        let c_vars = VarMap::new();
        let critic = WganCritic::new(
            &cfg,
            CriticNorm::BatchNorm,
            VarBuilder::from_varmap(&c_vars, DType::F32, &dev),
        )
        .unwrap();
        assert_eq!(
            shapes(&c_vars),
            shapes(&d_vars),
            "BatchNorm critic = DCGAN discriminator ({size})"
        );
        let xs = Tensor::randn(0f32, 1.0, (3, c, size, size), &dev).unwrap();
        assert_eq!(critic.forward_t(&xs, true).unwrap().dims(), &[3]);

        for norm in [CriticNorm::LayerNorm, CriticNorm::None] {
            let vm = VarMap::new();
            let critic =
                WganCritic::new(&cfg, norm, VarBuilder::from_varmap(&vm, DType::F32, &dev))
                    .unwrap();
            let names: Vec<String> = shapes(&vm).into_iter().map(|(k, _)| k).collect();
            assert!(
                names.iter().all(|n| !n.contains("running")),
                "{norm:?}: {names:?}"
            );
            // Per sample: a sample's score does not depend on the rest of the batch.
            let one = critic
                .forward_t(&xs.narrow(0, 0, 1).unwrap(), true)
                .unwrap();
            let all = critic.forward_t(&xs, true).unwrap();
            let d = (one.to_vec1::<f32>().unwrap()[0] - all.to_vec1::<f32>().unwrap()[0]).abs();
            assert!(d < 1e-5, "{norm:?}: score depends on the batch ({d})");
        }
    }
}

#[test]
fn critic_schedule_follows_the_wgan_paper() {
    let s = CriticSchedule::wgan(5);
    assert!((0..25).all(|i| s.iters_at(i) == 100));
    assert_eq!(s.iters_at(25), 5);
    assert_eq!(s.iters_at(499), 5);
    assert_eq!(s.iters_at(500), 100);
    assert_eq!(s.iters_at(501), 5);
    assert_eq!(s.iters_at(1000), 100);
    let c = CriticSchedule::constant(5);
    assert!([0, 1, 24, 500, 1000].iter().all(|&i| c.iters_at(i) == 5));
}

#[test]
fn configs_follow_the_papers_and_reject_batchnorm_with_a_penalty() {
    let (clip, _) = small(false, 1);
    assert_eq!(clip.lipschitz, Lipschitz::WeightClipping { clip: 0.01 });
    assert_eq!(
        WganRunConfig::wgan(clip.data.clone(), 1).critic,
        CriticSchedule::wgan(5)
    );
    let (mut gp, _) = small(true, 1);
    assert_eq!(gp.lipschitz, Lipschitz::GradientPenalty { lambda: 10.0 });
    assert_eq!(gp.critic_norm, CriticNorm::LayerNorm);
    let json = serde_json::to_string(&gp).unwrap();
    assert!(json.contains("\"model\":\"wgan-gp\""), "{json}");
    assert_eq!(serde_json::from_str::<WganRunConfig>(&json).unwrap(), gp);
    gp.critic_norm = CriticNorm::BatchNorm;
    let err = gp.validate().unwrap_err().to_string();
    assert!(err.contains("BatchNorm"), "{err}");
}

/// One generator iteration changes every generator and critic parameter, for both variants, and
/// with clipping every critic parameter stays within ±clip.
#[test]
fn a_step_changes_both_networks_and_clipping_holds() {
    // WGAN-GP first: its trainer must be built before this thread's first backward.
    for gp in [true, false] {
        let (mut cfg, ds) = small(gp, 1);
        if !gp {
            cfg.critic = CriticSchedule {
                n_critic: 2,
                burst_iters: 3,
                burst_first: 1,
                burst_every: 0,
            };
        }
        let dev = Device::Cpu;
        let mut t = WganTrainer::new(&cfg, &dev).unwrap();
        let bc = BatchConfig {
            batch_size: 16,
            shuffle: true,
            drop_last: true,
            seed: 0,
        };
        let mut batcher = Batcher::new(&ds, bc, &dev).unwrap();
        let (g0, c0) = (snapshot(&t.g_vars), snapshot(&t.c_vars));
        let m = t.train_step(&mut batcher).unwrap();
        let (g1, c1) = (snapshot(&t.g_vars), snapshot(&t.c_vars));
        assert!(m.is_finite(), "{m:?}");
        assert_eq!(m.step, 1);
        assert_eq!(m.critic_iters, if gp { 2 } else { 3 });
        assert!((m.wasserstein - (m.critic_real - m.critic_fake)).abs() < 1e-6);
        let trained =
            |v: &[(String, Vec<f32>)]| v.iter().filter(|(k, _)| !k.contains("running")).count();
        assert_eq!(
            changed(&g0, &g1),
            g0.len(),
            "gp={gp}: every generator variable moves"
        );
        assert!(
            changed(&c0, &c1) >= trained(&c0),
            "gp={gp}: every critic parameter moves"
        );
        if gp {
            assert!(
                m.penalty > 0.0 && m.grad_norm.is_some_and(|n| n > 0.0),
                "{m:?}"
            );
            assert!(
                (m.loss_d - (m.penalty - m.wasserstein)).abs() < 1e-5,
                "{m:?}"
            );
        } else {
            assert_eq!(m.penalty, 0.0);
            for _ in 0..2 {
                t.train_step(&mut batcher).unwrap();
            }
            for (name, v) in snapshot(&t.c_vars) {
                if !name.contains("running") {
                    let worst = v.iter().fold(0f32, |a, x| a.max(x.abs()));
                    assert!(worst <= 0.01 + 1e-7, "{name}: |w| up to {worst}");
                }
            }
        }
    }
}

/// Training 6 generator iterations straight, or 3 then resuming for 3 more, ends with the same
/// networks, optimizer states and metrics (128 items at batch 16 with 2 critic iterations: the
/// run crosses epochs and resumes mid-epoch).
#[test]
fn resume_reaches_the_same_parameters() {
    for gp in [true, false] {
        let (cfg, ds) = small(gp, 6);
        let dir = tempfile::tempdir().unwrap();
        let straight = RunDir::create(dir.path().join("a"), &cfg).unwrap();
        train_image_gan(&straight, &cfg, &ds, false, &mut Silent).unwrap();

        let mut first = cfg.clone();
        first.run.schedule.steps = 3;
        let resumed = RunDir::create(dir.path().join("b"), &first).unwrap();
        train_image_gan(&resumed, &first, &ds, false, &mut Silent).unwrap();
        let out = train_image_gan(&resumed, &cfg, &ds, true, &mut Silent).unwrap();
        assert_eq!(out.step, 6);
        common::assert_same_latest(
            &straight,
            &resumed,
            &[
                "generator.safetensors",
                "critic.safetensors",
                "optimizers.safetensors",
            ],
            &format!("gp={gp}"),
        );
        let la = std::fs::read_to_string(straight.metrics_path()).unwrap();
        let lb = std::fs::read_to_string(resumed.metrics_path()).unwrap();
        assert_eq!(la.lines().count(), 6);
        assert_eq!(
            la, lb,
            "gp={gp}: the resumed run logs what the straight one logged"
        );
        let line: serde_json::Value = serde_json::from_str(la.lines().last().unwrap()).unwrap();
        for key in ["step", "wasserstein", "penalty", "loss_d", "loss_g"] {
            assert!(line.get(key).is_some(), "metrics.jsonl lacks {key}: {line}");
        }

        // The generator of a WGAN run loads for sampling like a DCGAN one.
        let g = load_generator(&straight, "latest", &Device::Cpu).unwrap();
        assert_eq!(g.cfg.model, cfg.model);
        assert_eq!(g.sample(5, 0).unwrap().dims(), &[5, 1, 28, 28]);
        assert!(straight.sample_path(6).is_file());
    }
}

/// The real WGAN-GP critic (layer norm and none), built in f64: the penalty's gradient with
/// respect to each of its parameters matches central finite differences (up to 24 coordinates
/// per tensor). Fails if a layer whose backward cannot be differentiated again (a fused kernel
/// such as `gan_core::batchnorm::leaky_relu`, candle-nn's fused layer norm) enters the critic.
#[test]
fn gp_critic_penalty_gradient_matches_finite_differences() {
    gan_core::penalty::ensure_second_order().unwrap();
    let dev = Device::Cpu;
    let cfg = DcganConfig {
        nz: 4,
        ngf: 2,
        ndf: 2,
        channels: 1,
        image_size: 28,
        spectral_norm: false,
    };
    for norm in [CriticNorm::LayerNorm, CriticNorm::None] {
        let vm = VarMap::new();
        let critic =
            WganCritic::new(&cfg, norm, VarBuilder::from_varmap(&vm, DType::F64, &dev)).unwrap();
        let mut rng = gan_core::rng::SeededRng::new(5);
        let mut vars: Vec<_> = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, var) in &vars {
            let (mean, std) = if name.ends_with("1.weight") && var.rank() == 1 {
                (1.0, 0.2)
            } else {
                (0.0, 0.3)
            };
            var.set(
                &rng.randn_dtype(var.dims(), mean, std, DType::F64, &dev)
                    .unwrap(),
            )
            .unwrap();
        }
        let real = rng
            .randn_dtype((2, 1, 28, 28), 0.0, 1.0, DType::F64, &dev)
            .unwrap();
        let fake = rng
            .randn_dtype((2, 1, 28, 28), 0.0, 1.0, DType::F64, &dev)
            .unwrap();
        let x_hat = gan_core::penalty::interpolate(&real, &fake, &mut rng).unwrap();
        let f = |xs: &Tensor| {
            critic
                .forward_t(xs, true)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
        };
        let penalty = || {
            gan_core::penalty::penalty_at(f, &x_hat, 10.0)
                .unwrap()
                .value
        };
        let grads = penalty().backward().unwrap();
        for (name, var) in &vars {
            // A missing gradient counts as zero (and fails unless finite differences agree).
            let g: Vec<f64> = match grads.get(var.as_tensor()) {
                Some(g) => g.flatten_all().unwrap().to_vec1().unwrap(),
                // (The layer-norm shift only moves leaky-ReLU kinks: the penalty's gradient is 0.)
                None => vec![0.0; var.elem_count()],
            };
            let x0: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let stride = x0.len().div_ceil(24);
            let (mut num, mut den) = (0.0, 0.0);
            for i in (0..x0.len()).step_by(stride) {
                let at = |d: f64| {
                    let mut x = x0.clone();
                    x[i] += d;
                    var.set(&Tensor::from_vec(x, var.shape(), &dev).unwrap())
                        .unwrap();
                    penalty().to_scalar::<f64>().unwrap()
                };
                let fd = (at(1e-5) - at(-1e-5)) / 2e-5;
                num += (g[i] - fd).powi(2);
                den += fd * fd;
            }
            var.set(&Tensor::from_vec(x0, var.shape(), &dev).unwrap())
                .unwrap();
            let err = if den.sqrt() < 1e-7 {
                num.sqrt()
            } else {
                num.sqrt() / den.sqrt()
            };
            assert!(err < 1e-6, "{norm:?} {name}: error {err:.3e}");
        }
    }
}
