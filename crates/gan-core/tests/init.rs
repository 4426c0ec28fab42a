//! Tests for DCGAN and PyTorch-default initialisation: shapes kept, statistics, determinism.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use gan_core::init::{dcgan_init, pytorch_default_init};
use gan_core::rng::SeededRng;

/// A small DCGAN-like model: conv, conv-transpose, batch norm, linear. `reverse` creates the
/// layers in the opposite order, to check that the result does not depend on creation order.
fn build(reverse: bool) -> VarMap {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let conv_cfg = candle_nn::Conv2dConfig {
        padding: 1,
        stride: 2,
        ..Default::default()
    };
    let tconv_cfg = candle_nn::ConvTranspose2dConfig {
        padding: 1,
        stride: 2,
        ..Default::default()
    };
    let mut steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| {
            candle_nn::conv2d_no_bias(128, 256, 4, conv_cfg, vb.pp("disc.conv")).unwrap();
        }),
        Box::new(|| {
            candle_nn::conv_transpose2d(64, 32, 4, tconv_cfg, vb.pp("gen.tconv")).unwrap();
        }),
        Box::new(|| {
            candle_nn::batch_norm(512, 1e-5, vb.pp("gen.bn")).unwrap();
        }),
        Box::new(|| {
            candle_nn::linear(1000, 300, vb.pp("gen.fc")).unwrap();
        }),
        Box::new(|| {
            vb.get_with_hints(7, "lonely.bias", candle_nn::Init::Const(3.0))
                .unwrap();
        }),
    ];
    if reverse {
        steps.reverse();
    }
    for s in &steps {
        s();
    }
    vm
}

fn get(vm: &VarMap, name: &str) -> Tensor {
    vm.data().lock().unwrap()[name].as_tensor().clone()
}

fn values(vm: &VarMap, name: &str) -> Vec<f64> {
    get(vm, name)
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, v.sqrt())
}

const NAMES: [&str; 10] = [
    "disc.conv.weight",
    "gen.tconv.weight",
    "gen.tconv.bias",
    "gen.bn.weight",
    "gen.bn.bias",
    "gen.bn.running_mean",
    "gen.bn.running_var",
    "gen.fc.weight",
    "gen.fc.bias",
    "lonely.bias",
];

#[test]
fn dcgan_init_statistics_and_shapes() {
    let vm = build(false);
    let shapes: Vec<Vec<usize>> = NAMES.iter().map(|n| get(&vm, n).dims().to_vec()).collect();
    dcgan_init(&vm, &mut SeededRng::new(1)).unwrap();
    let after: Vec<Vec<usize>> = NAMES.iter().map(|n| get(&vm, n).dims().to_vec()).collect();
    assert_eq!(shapes, after);

    // 524,288 samples of N(0, 0.02²): the standard error of the mean is 2.8e-5, of the std 2e-5.
    let (m, s) = mean_std(&values(&vm, "disc.conv.weight"));
    assert!(m.abs() < 1.5e-4, "mean {m}");
    assert!((s - 0.02).abs() < 2e-4, "std {s}");
    let (m, s) = mean_std(&values(&vm, "gen.fc.weight"));
    assert!(m.abs() < 2e-4, "mean {m}");
    assert!((s - 0.02).abs() < 3e-4, "std {s}");
    // 512 samples of N(1, 0.02²): standard error of the mean 8.8e-4.
    let (m, s) = mean_std(&values(&vm, "gen.bn.weight"));
    assert!((m - 1.0).abs() < 4e-3, "mean {m}");
    assert!((s - 0.02).abs() < 4e-3, "std {s}");
    for b in [
        "gen.tconv.bias",
        "gen.bn.bias",
        "gen.fc.bias",
        "lonely.bias",
    ] {
        assert!(values(&vm, b).iter().all(|&x| x == 0.0), "{b}");
    }
    // Running statistics are left as candle-nn created them.
    assert!(values(&vm, "gen.bn.running_mean").iter().all(|&x| x == 0.0));
    assert!(values(&vm, "gen.bn.running_var").iter().all(|&x| x == 1.0));
}

#[test]
fn same_seed_gives_identical_weights_whatever_the_creation_order() {
    let a = build(false);
    let b = build(true);
    let c = build(false);
    dcgan_init(&a, &mut SeededRng::new(42)).unwrap();
    dcgan_init(&b, &mut SeededRng::new(42)).unwrap();
    dcgan_init(&c, &mut SeededRng::new(43)).unwrap();
    for n in NAMES {
        assert_eq!(values(&a, n), values(&b, n), "{n}");
    }
    assert_ne!(values(&a, "gen.fc.weight"), values(&c, "gen.fc.weight"));

    pytorch_default_init(&a, &mut SeededRng::new(5)).unwrap();
    pytorch_default_init(&b, &mut SeededRng::new(5)).unwrap();
    for n in NAMES {
        assert_eq!(values(&a, n), values(&b, n), "{n}");
    }
}

fn check_uniform(xs: &[f64], bound: f64, name: &str) {
    assert!(
        xs.iter().all(|x| x.abs() <= bound),
        "{name} outside ±{bound}"
    );
    let (m, s) = mean_std(xs);
    let want_std = bound / 3f64.sqrt();
    let n = xs.len() as f64;
    // Five standard errors for the mean; 5% for the std (generous for n ≥ 32).
    assert!(m.abs() < 5.0 * want_std / n.sqrt(), "{name}: mean {m}");
    assert!(
        (s - want_std).abs() < 0.05 * want_std,
        "{name}: std {s} vs {want_std}"
    );
}

#[test]
fn pytorch_default_init_bounds_and_statistics() {
    let vm = build(false);
    pytorch_default_init(&vm, &mut SeededRng::new(9)).unwrap();
    // Linear(1000 → 300): fan_in 1000.
    let b = 1.0 / 1000f64.sqrt();
    check_uniform(&values(&vm, "gen.fc.weight"), b, "fc.weight");
    check_uniform(&values(&vm, "gen.fc.bias"), b, "fc.bias");
    // Conv2d(128 → 256, k 4): weight [256, 128, 4, 4], fan_in 128·16.
    check_uniform(
        &values(&vm, "disc.conv.weight"),
        1.0 / 2048f64.sqrt(),
        "conv.weight",
    );
    // ConvTranspose2d(64 → 32, k 4): weight [64, 32, 4, 4], fan_in 32·16 as in PyTorch.
    let b = 1.0 / 512f64.sqrt();
    check_uniform(&values(&vm, "gen.tconv.weight"), b, "tconv.weight");
    let bias = values(&vm, "gen.tconv.bias");
    assert!(bias.iter().all(|x| x.abs() <= b) && bias.iter().any(|&x| x != 0.0));
    // Norm γ = 1, β = 0; running stats untouched; a bias without a weight is zeroed.
    assert!(values(&vm, "gen.bn.weight").iter().all(|&x| x == 1.0));
    assert!(values(&vm, "gen.bn.bias").iter().all(|&x| x == 0.0));
    assert!(values(&vm, "gen.bn.running_var").iter().all(|&x| x == 1.0));
    assert!(values(&vm, "lonely.bias").iter().all(|&x| x == 0.0));
}

#[test]
fn f64_varmap_is_initialised_in_its_dtype() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    candle_nn::linear(400, 500, vb.pp("fc")).unwrap();
    dcgan_init(&vm, &mut SeededRng::new(3)).unwrap();
    let w = get(&vm, "fc.weight");
    assert_eq!(w.dtype(), DType::F64);
    let (m, s) = mean_std(&w.flatten_all().unwrap().to_vec1::<f64>().unwrap());
    assert!(m.abs() < 2e-4 && (s - 0.02).abs() < 3e-4, "{m} {s}");
}
