//! CycleGAN through the library: network shapes and weight names, one training step changing
//! all four networks, the image pool, the learning-rate schedule, the sampler, exact resume and
//! the known-answer evaluation.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use gan_core::rng::SeededRng;
use gan_data::Unpaired;
use gan_models::cyclegan::{
    lr_factor, CycleGanConfig, ImagePool, PatchDiscriminator, ResnetGenerator,
};
use gan_models::cyclegan_run::{
    build_trainer, eval_dilation, load_cyclegan, load_train, train_cyclegan, CycleGanRunConfig,
    UnpairedSampler,
};
use gan_models::engine::StepRecord;
use gan_models::run::RunDir;
use gan_models::train::Silent;

fn tiny_net(channels: usize) -> CycleGanConfig {
    CycleGanConfig {
        channels,
        ngf: 4,
        n_blocks: 2,
        ndf: 4,
        n_layers: 2,
    }
}

fn names(vars: &VarMap) -> Vec<String> {
    let mut n: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
    n.sort();
    n
}

fn values(vars: &VarMap) -> HashMap<String, Vec<f32>> {
    vars.data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

#[test]
fn shapes_and_reference_weight_names() {
    let dev = Device::Cpu;
    // The reference's default networks, by name and shape, without running them.
    let cfg = CycleGanConfig::default();
    let vars = VarMap::new();
    ResnetGenerator::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
    let n = names(&vars);
    // 1 stem + 2 down + 9·2 block + 2 up + 1 head convolutions, each with weight and bias.
    assert_eq!(n.len(), 2 * (1 + 2 + 18 + 2 + 1), "{n:?}");
    for (name, shape) in [
        ("model.1.weight", vec![64, 3, 7, 7]),
        ("model.4.weight", vec![128, 64, 3, 3]),
        ("model.7.weight", vec![256, 128, 3, 3]),
        ("model.10.conv_block.1.weight", vec![256, 256, 3, 3]),
        ("model.18.conv_block.5.bias", vec![256]),
        ("model.19.weight", vec![256, 128, 3, 3]), // ConvTranspose2d: [in, out, k, k]
        ("model.22.weight", vec![128, 64, 3, 3]),
        ("model.26.weight", vec![3, 64, 7, 7]),
    ] {
        let t = vars.get(
            shape.clone(),
            name,
            candle_nn::Init::Const(0.),
            DType::F32,
            &dev,
        );
        assert!(t.is_ok(), "{name} {shape:?}: {t:?}");
    }
    let vars = VarMap::new();
    PatchDiscriminator::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
    assert_eq!(
        names(&vars),
        [
            "model.0.bias",
            "model.0.weight",
            "model.11.bias",
            "model.11.weight",
            "model.2.bias",
            "model.2.weight",
            "model.5.bias",
            "model.5.weight",
            "model.8.bias",
            "model.8.weight"
        ]
    );
    let t = vars.get(
        (512, 256, 4, 4),
        "model.8.weight",
        candle_nn::Init::Const(0.),
        DType::F32,
        &dev,
    );
    assert!(t.is_ok());

    // Small networks run: 28 px gray, and a non-square RGB image.
    let cfg = tiny_net(1);
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
    let g = ResnetGenerator::new(&cfg, vb.pp("g")).unwrap();
    let d = PatchDiscriminator::new(&cfg, vb.pp("d")).unwrap();
    let x = Tensor::randn(0f32, 1., (2, 1, 28, 28), &dev).unwrap();
    let y = g.forward(&x).unwrap();
    assert_eq!(y.dims(), &[2, 1, 28, 28]);
    assert!(
        y.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            < 1.0
    );
    // 28 → 14 → 7 → 6 (stride 1) → 5 patches.
    assert_eq!(d.forward(&y).unwrap().dims(), &[2, 1, 5, 5]);
    let cfg = tiny_net(3);
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
    let g = ResnetGenerator::new(&cfg, vb.pp("g")).unwrap();
    let x = Tensor::randn(0f32, 1., (1, 3, 16, 24), &dev).unwrap();
    assert_eq!(g.forward(&x).unwrap().dims(), &[1, 3, 16, 24]);

    assert!(cfg.check_image_size(28).is_ok());
    assert!(cfg.check_image_size(30).is_err());
    let deep = CycleGanConfig { n_layers: 4, ..cfg };
    assert!(deep.check_image_size(28).is_err());
}

#[test]
fn lr_schedule_is_constant_then_linear() {
    // The reference's rule with n_epochs 3, n_epochs_decay 2.
    let f: Vec<f64> = (0..6).map(|e| lr_factor(e, 3, 2)).collect();
    let want = [1.0, 1.0, 1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0];
    for (g, w) in f.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{f:?}");
    }
    assert_eq!(lr_factor(10, 3, 2), 0.0);
    assert_eq!(lr_factor(99, 100, 100), 1.0);
    assert!((lr_factor(100, 100, 100) - (1.0 - 1.0 / 101.0)).abs() < 1e-12);

    let mut cfg = CycleGanRunConfig::new("x".into());
    cfg.epochs = 1;
    cfg.epochs_decay = 1;
    cfg.steps_per_epoch = 10;
    assert_eq!(cfg.lr_at(1), 2e-4);
    assert_eq!(cfg.lr_at(10), 2e-4);
    assert!((cfg.lr_at(11) - 1e-4).abs() < 1e-15);
    assert!((cfg.lr_at(20) - 1e-4).abs() < 1e-15);
}

fn img(v: f32) -> Tensor {
    Tensor::full(v, (1, 1, 2, 2), &Device::Cpu).unwrap()
}

fn firsts(t: &Tensor) -> Vec<f32> {
    let n = t.dim(0).unwrap();
    (0..n)
        .map(|i| {
            t.get(i)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()[0]
        })
        .collect()
}

#[test]
fn image_pool_fills_then_swaps_half() {
    let mut rng = SeededRng::new(3);
    // Capacity 0: the input comes back.
    let mut none = ImagePool::new(0);
    let batch = Tensor::cat(&[img(1.), img(2.)], 0).unwrap();
    assert_eq!(firsts(&none.query(&batch, &mut rng).unwrap()), [1., 2.]);
    assert!(none.is_empty());

    // Filling: inputs come back and are stored.
    let mut pool = ImagePool::new(3);
    let out = pool
        .query(&Tensor::cat(&[img(1.), img(2.)], 0).unwrap(), &mut rng)
        .unwrap();
    assert_eq!(firsts(&out), [1., 2.]);
    let out = pool.query(&img(3.), &mut rng).unwrap();
    assert_eq!(firsts(&out), [3.]);
    assert_eq!(pool.len(), 3);
    assert_eq!(firsts(&pool.to_tensor().unwrap().unwrap()), [1., 2., 3.]);

    // Full: each query returns either the new image (pool unchanged) or a stored one, which the
    // new image replaces; about half the time each.
    let mut swapped = 0;
    let trials = 400;
    for k in 0..trials {
        let v = 100. + k as f32;
        let before = firsts(&pool.to_tensor().unwrap().unwrap());
        let out = firsts(&pool.query(&img(v), &mut rng).unwrap())[0];
        let after = firsts(&pool.to_tensor().unwrap().unwrap());
        assert_eq!(pool.len(), 3);
        if out == v {
            assert_eq!(before, after);
        } else {
            swapped += 1;
            let slot = before
                .iter()
                .position(|&b| b == out)
                .expect("a stored image");
            assert_eq!(after[slot], v);
            let mut rest = before.clone();
            rest[slot] = v;
            assert_eq!(rest, after);
        }
    }
    assert!(
        (150..250).contains(&swapped),
        "swapped {swapped} of {trials}"
    );

    // Restore round trip; too many images are refused.
    let saved = pool.to_tensor().unwrap().unwrap();
    let mut other = ImagePool::new(3);
    other.restore(Some(&saved)).unwrap();
    assert_eq!(firsts(&other.to_tensor().unwrap().unwrap()), firsts(&saved));
    assert!(ImagePool::new(2).restore(Some(&saved)).is_err());
}

/// Writes `n` gray `size`×`size` PNGs with a random bright square into `dir`.
fn write_pngs(dir: &Path, n: usize, size: u32, seed: u64, thick: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = SeededRng::new(seed);
    for i in 0..n {
        let x0 = (rng.next_u64() % (size as u64 - thick as u64 - 2)) as u32 + 1;
        let y0 = (rng.next_u64() % (size as u64 - 6)) as u32 + 1;
        let img = image::GrayImage::from_fn(size, size, |x, y| {
            let on = x >= x0 && x < x0 + thick && y >= y0 && y < y0 + 5;
            image::Luma([if on { 230 } else { 10 }])
        });
        img.save(dir.join(format!("{i:03}.png"))).unwrap();
    }
}

fn tiny_dataset(root: &Path) {
    write_pngs(&root.join("trainA"), 6, 12, 1, 1);
    write_pngs(&root.join("trainB"), 5, 12, 2, 3);
    write_pngs(&root.join("testA"), 3, 12, 3, 1);
    write_pngs(&root.join("testB"), 3, 12, 4, 3);
}

fn tiny_config(root: &Path) -> CycleGanRunConfig {
    let mut cfg = CycleGanRunConfig::new(root.to_path_buf());
    cfg.net = CycleGanConfig {
        n_layers: 1,
        ..tiny_net(1)
    };
    cfg.data.load_size = 14;
    cfg.data.crop_size = 12;
    cfg.data.flip = true;
    cfg.pool_size = 2;
    cfg.run.batch_size = 2;
    cfg.epochs = 1;
    cfg.epochs_decay = 1;
    cfg.run.schedule.sample_every = 0;
    cfg.run.schedule.checkpoint_every = 0;
    cfg.run.schedule.log_every = 1;
    cfg.run.seed = 5;
    cfg
}

#[test]
fn one_step_changes_all_four_networks() {
    let dir = tempfile::tempdir().unwrap();
    tiny_dataset(dir.path());
    let mut cfg = tiny_config(dir.path());
    let data = load_train(&cfg).unwrap();
    cfg.finish(&data, Some(1));
    assert_eq!(cfg.steps_per_epoch, 3); // max(6, 5) / 2
    let dev = Device::Cpu;
    let mut t = build_trainer(&cfg, &dev).unwrap();
    let before: Vec<_> = [&t.g_ab.vars, &t.g_ba.vars, &t.d_a.vars, &t.d_b.vars]
        .map(values)
        .to_vec();
    let mut sampler = UnpairedSampler::new(&data, &cfg, &dev).unwrap();
    let mut batch = sampler.batch(1).unwrap();
    assert_eq!(batch.a.dims(), &[2, 1, 12, 12]);
    let m = t
        .step_on(&batch.a, &batch.b, &mut batch.rng, batch.epoch)
        .unwrap();
    assert!(m.is_finite(), "{m:?}");
    assert!(m.loss_cycle_a > 0.0 && m.loss_idt_a > 0.0 && m.loss_d_a > 0.0);
    let after = [&t.g_ab.vars, &t.g_ba.vars, &t.d_a.vars, &t.d_b.vars].map(values);
    for (net, (b, a)) in ["g_ab", "g_ba", "d_a", "d_b"]
        .iter()
        .zip(before.iter().zip(&after))
    {
        // Convolution biases followed by instance norm get no gradient (the norm removes any
        // per-channel constant), so only the weights must all move.
        for (name, v) in b.iter().filter(|(n, _)| n.ends_with("weight")) {
            let changed = v
                .iter()
                .zip(&a[name])
                .filter(|(x, y)| (*x - *y).abs() > 1e-7)
                .count();
            assert!(changed > 0, "{net}: {name} did not change");
        }
    }
    assert_eq!(t.pool_a.len(), 2);
    assert_eq!(t.pool_b.len(), 2);
}

#[test]
fn sampler_crops_flips_and_repeats() {
    let dir = tempfile::tempdir().unwrap();
    tiny_dataset(dir.path());
    let mut cfg = tiny_config(dir.path());
    let data = load_train(&cfg).unwrap();
    cfg.finish(&data, None);
    let dev = Device::Cpu;
    let mut s = UnpairedSampler::new(&data, &cfg, &dev).unwrap();
    let b1 = s.batch(2).unwrap();
    let b1_again = s.batch(2).unwrap();
    assert_eq!(
        b1.a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        b1_again.a.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    // Every crop is a (possibly mirrored) 12×12 window of a 14×14 training image.
    let (l, c) = (14usize, 12usize);
    let mut flipped = 0;
    let mut offsets = std::collections::HashSet::new();
    for step in 1..=30 {
        let b = s.batch(step).unwrap();
        let a: Vec<f32> = b.a.flatten_all().unwrap().to_vec1().unwrap();
        for crop in a.chunks(c * c) {
            let mut found = false;
            for i in 0..gan_data::Dataset::len(&data.a) {
                let src = gan_data::Dataset::item(&data.a, i);
                for y0 in 0..=l - c {
                    for x0 in 0..=l - c {
                        for flip in [false, true] {
                            let same = (0..c).all(|y| {
                                (0..c).all(|x| {
                                    let sx = if flip { c - 1 - x } else { x };
                                    crop[y * c + x] == src[(y0 + y) * l + x0 + sx]
                                })
                            });
                            if same && !found {
                                found = true;
                                flipped += usize::from(flip);
                                offsets.insert((y0, x0));
                            }
                        }
                    }
                }
            }
            assert!(found, "step {step}: a crop that is no window of trainA");
        }
    }
    assert!(flipped > 0, "no flipped crop in 60");
    assert!(offsets.len() > 1, "always the same crop offset");
    assert_eq!(s.batch(4).unwrap().epoch, 1); // 3 steps per epoch
    assert!(s.batch(0).is_err());
    let empty = Unpaired {
        a: data.a.subset(&[]),
        b: data.b.clone(),
    };
    assert!(UnpairedSampler::new(&empty, &cfg, &dev).is_err());
}

#[test]
fn resume_continues_exactly_and_eval_runs() {
    let dir = tempfile::tempdir().unwrap();
    tiny_dataset(dir.path());
    let mut cfg = tiny_config(dir.path());
    let data = load_train(&cfg).unwrap();
    cfg.finish(&data, Some(4));
    cfg.run.schedule.checkpoint_every = 2;
    cfg.run.schedule.sample_every = 2;

    // Uninterrupted: 4 steps (lr decays in the second epoch: step 4).
    let full = RunDir::create(dir.path().join("full"), &cfg).unwrap();
    let out = train_cyclegan(&full, &cfg, &data, false, &mut Silent).unwrap();
    assert_eq!(out.step, 4);
    assert!((out.last.unwrap().lr - 1e-4).abs() < 1e-12);

    // Interrupted after 2, resumed to 4.
    let mut half_cfg = cfg.clone();
    half_cfg.run.schedule.steps = 2;
    let part = RunDir::create(dir.path().join("part"), &half_cfg).unwrap();
    train_cyclegan(&part, &half_cfg, &data, false, &mut Silent).unwrap();
    let out = train_cyclegan(&part, &cfg, &data, true, &mut Silent).unwrap();
    assert_eq!(out.step, 4);

    let dev = Device::Cpu;
    for name in [
        "generator_ab.safetensors",
        "generator_ba.safetensors",
        "discriminator_a.safetensors",
        "discriminator_b.safetensors",
        "pools.safetensors",
    ] {
        let a =
            candle_core::safetensors::load(full.root().join("checkpoints/latest").join(name), &dev)
                .unwrap();
        let b =
            candle_core::safetensors::load(part.root().join("checkpoints/latest").join(name), &dev)
                .unwrap();
        assert_eq!(a.len(), b.len(), "{name}");
        for (k, va) in &a {
            let d = (va - &b[k])
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d <= 1e-6, "{name} {k}: resumed differs by {d}");
        }
    }
    for f in [
        "samples/step-000002.png",
        "samples/step-000004.png",
        "metrics.jsonl",
    ] {
        assert!(full.root().join(f).is_file(), "{f}");
    }
    // The grid: 6 rows (A, G(A), F(G(A)), B, F(B), G(F(B))) of 3 test images of 12 px, padding 2.
    let (w, h) = image::image_dimensions(full.root().join("samples/step-000004.png")).unwrap();
    assert_eq!((w, h), (3 * 14 + 2, 6 * 14 + 2));
    let lines = std::fs::read_to_string(full.root().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 4);
    assert!(lines.contains("\"loss_cycle_a\""));

    // Evaluation against a dilation: the identity baseline is exact, and a loaded model runs.
    let model = load_cyclegan(&full, "latest", &dev).unwrap();
    let a = Tensor::from_vec(
        {
            let mut v = vec![-1f32; 2 * 12 * 12];
            v[5 * 12 + 5] = 1.0; // one lit pixel in image 0 → 9 after dilation
            v
        },
        (2, 1, 12, 12),
        &dev,
    )
    .unwrap();
    let e = eval_dilation(&model, &a, 1).unwrap();
    assert_eq!(e.images, 2);
    // 8 pixels go from −1 to 1 (error 1 each in units of the range) out of 288.
    assert!((e.mae_identity - 8.0 / 288.0).abs() < 1e-9, "{e:?}");
    assert!(e.mae_translation.is_finite() && e.mae_cycle.is_finite());
    assert!((e.ratio - e.mae_translation / e.mae_identity).abs() < 1e-9);
    assert!(load_cyclegan(&full, "step-3", &dev).is_err());
}

/// An unreadable image in the test split is reported (naming the file), not silently replaced
/// by training images in the sample grids; without test folders the grids use training images.
#[test]
fn unreadable_test_image_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    tiny_dataset(&root);
    std::fs::write(root.join("testB/broken.png"), b"not a png").unwrap();
    let mut cfg = tiny_config(&root);
    let data = load_train(&cfg).unwrap();
    cfg.finish(&data, Some(1));
    let run = RunDir::create(tmp.path().join("run"), &cfg).unwrap();
    let e = train_cyclegan(&run, &cfg, &data, false, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.png"), "{e}");

    std::fs::remove_dir_all(root.join("testA")).unwrap();
    std::fs::remove_dir_all(root.join("testB")).unwrap();
    let run = RunDir::create(tmp.path().join("run2"), &cfg).unwrap();
    let out = train_cyclegan(&run, &cfg, &data, false, &mut Silent).unwrap();
    assert_eq!(out.step, 1);
    assert!(run.sample_path(1).is_file());
}
