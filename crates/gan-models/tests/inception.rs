//! The FID Inception network: a tiny network of the same structure and tensor names (width / 16)
//! with seeded random weights, saved as safetensors and loaded back through the real loader
//! (from a path and from an hf-hub cache folder), and its pooling and resizing by hand.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use gan_core::rng::SeededRng;
use gan_models::evaluator::{bilinear_resize, FeatureNet};
use gan_models::inception::{
    avg_pool3_exclude_pad, load_inception, load_inception_file, FidInception, InceptionConfig,
    InceptionSource,
};

const CFG: InceptionConfig = InceptionConfig { width_divisor: 16 };

/// A tiny network with seeded random weights and BatchNorm statistics.
fn tiny() -> (VarMap, FidInception) {
    let vars = VarMap::new();
    let net = FidInception::new(
        CFG,
        VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let mut rng = SeededRng::new(7);
    let data = vars.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let shape = var.shape().clone();
        let n = shape.elem_count();
        let vals = if name.ends_with("conv.weight") {
            let fan_in = (n / shape.dims()[0]) as f32;
            let a = (6.0 / fan_in).sqrt();
            rng.uniform_vec(n, -a, a)
        } else if name.ends_with("running_var") || name.ends_with("bn.weight") {
            rng.uniform_vec(n, 0.5, 1.5)
        } else {
            rng.uniform_vec(n, -0.2, 0.2)
        };
        var.set(&Tensor::from_vec(vals, shape, &Device::Cpu).unwrap())
            .unwrap();
    }
    drop(data);
    // Rebuild so that the folded BatchNorm sees the values just set.
    let net2 = FidInception::new(
        CFG,
        VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
    )
    .unwrap();
    drop(net);
    (vars, net2)
}

fn images() -> Tensor {
    let mut rng = SeededRng::new(3);
    Tensor::from_vec(
        rng.uniform_vec(2 * 3 * 40 * 40, -1.0, 1.0),
        (2, 3, 40, 40),
        &Device::Cpu,
    )
    .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn tiny_network_saved_and_loaded_from_a_file_and_an_hf_hub_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (vars, net) = tiny();
    let xs = images();
    let want = net.forward(&xs).unwrap();
    assert_eq!(want.dims(), &[2, 128]);
    let v: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
    assert!(v.iter().any(|&x| x > 0.0), "all features are zero");

    let path = dir.path().join("tiny.safetensors");
    vars.save(&path).unwrap();
    let loaded = load_inception_file(&path, &Device::Cpu).unwrap();
    assert_eq!(loaded.net.config(), &CFG);
    assert_eq!(loaded.input(), (3, 299));
    let e = loaded.embed(&xs).unwrap();
    assert_eq!((e.dim, e.len(), e.probs.is_none()), (128, 2, true));
    let got = Tensor::from_vec(e.features, (2, 128), &Device::Cpu).unwrap();
    assert!(max_diff(&got, &want) < 1e-5);

    // The layout of an hf-hub 0.4 cache: models--ORG--NAME/{refs/main, snapshots/REV/FILE}.
    let cache = dir.path().join("hub");
    let repo = cache.join("models--someone--tiny-inception");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots/0123abcd")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    std::fs::copy(&path, repo.join("snapshots/0123abcd/fid.safetensors")).unwrap();
    let source = InceptionSource::Hub {
        repo: "someone/tiny-inception".into(),
        file: "fid.safetensors".into(),
        cache: Some(cache),
    };
    let hub = load_inception(&source, &Device::Cpu).unwrap();
    assert_eq!(hub.path, repo.join("snapshots/0123abcd/fid.safetensors"));
    let got = hub.net.forward(&xs).unwrap();
    assert!(max_diff(&got, &want) < 1e-5);

    // 299 × 299 input is not resized; a grey image is its grey value on 3 channels.
    let grey = Tensor::full(0.25f32, (1, 1, 299, 299), &Device::Cpu).unwrap();
    let rgb = Tensor::full(0.25f32, (1, 3, 299, 299), &Device::Cpu).unwrap();
    assert!(max_diff(&net.forward(&grey).unwrap(), &net.forward(&rgb).unwrap()) < 1e-6);
}

#[test]
fn missing_or_misshaped_tensors_and_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (vars, _) = tiny();
    let full = dir.path().join("full.safetensors");
    vars.save(&full).unwrap();
    let mut tensors = candle_core::safetensors::load(&full, &Device::Cpu).unwrap();

    let name = "Mixed_6c.branch7x7dbl_3.bn.running_var";
    let removed = tensors.remove(name).unwrap();
    let path = dir.path().join("missing.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let err = load_inception_file(&path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing.safetensors") && err.contains(name),
        "{err}"
    );

    tensors.insert(
        name.into(),
        Tensor::ones(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let path = dir.path().join("misshaped.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let err = load_inception_file(&path, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("misshaped.safetensors") && err.contains(name),
        "{err}"
    );
    assert_eq!(removed.dims(), &[160 / 16]);

    // Not a zip-format PyTorch file: the error names it and says how to convert it.
    let old = dir.path().join("old.pth");
    std::fs::write(&old, b"\x80\x02not a zip").unwrap();
    let err = load_inception_file(&old, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("old.pth") && err.contains("safetensors"),
        "{err}"
    );

    let nowhere = dir.path().join("nowhere.pth");
    let err = load_inception(&InceptionSource::File(nowhere), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nowhere.pth"), "{err}");
}

#[test]
fn average_pool_leaves_the_padding_out() {
    let xs = Tensor::arange(1f32, 10.0, &Device::Cpu)
        .unwrap()
        .reshape((1, 1, 3, 3))
        .unwrap();
    let got: Vec<f32> = avg_pool3_exclude_pad(&xs)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // Corner (0, 0): (1 + 2 + 4 + 5) / 4; edge (0, 1): (1 + ... + 6) / 6; centre: 45 / 9.
    let want = [3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?}");
    }
}

#[test]
fn bilinear_resize_by_hand() {
    // [[0, 1], [2, 3]] to 4 × 4 with align_corners=False: source coordinates (o + 0.5) / 2 - 0.5
    // clamped to [0, 1]: 0, 0.25, 0.75, 1 on each axis; the image is 2y + x.
    let xs = Tensor::new(&[[[[0f32, 1.0], [2.0, 3.0]]]], &Device::Cpu).unwrap();
    let got: Vec<f32> = bilinear_resize(&xs, 4)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let c = [0.0f32, 0.25, 0.75, 1.0];
    for y in 0..4 {
        for x in 0..4 {
            assert!(
                (got[y * 4 + x] - (2.0 * c[y] + c[x])).abs() < 1e-6,
                "{got:?}"
            );
        }
    }
    let img = images();
    let same = bilinear_resize(&img, 40).unwrap();
    assert_eq!(max_diff(&same, &img), 0.0);
}

#[test]
fn bad_width_is_refused() {
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
    let err = FidInception::new(InceptionConfig { width_divisor: 3 }, vb).unwrap_err();
    assert!(err.to_string().contains("width divisor 3"), "{err}");
}
