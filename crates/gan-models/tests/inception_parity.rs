//! Parity of our FID Inception network and Fréchet distance with pytorch-fid, without its
//! downloaded weights: `xtask/scripts/fid_parity.py` ran pytorch-fid's own `InceptionV3`
//! (`resize_input=True`, `normalize_input=True`, FID blocks) with deterministic weights from a
//! formula and wrote the pool3 features of fixed images, and pytorch-fid's FID of two image sets,
//! into `tests/data/inception_parity.safetensors`. This test builds our network with the same
//! formula, runs the same images and compares. The formula and the images are documented in the
//! script's docstring; regenerate the fixture with `cargo xtask fid-parity --python PATH`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use gan_core::eval_metrics::{frechet_distance, Gaussian};
use gan_models::inception::{
    formula_weight as formula, formula_weights, splitmix64 as mix, FidInception, InceptionConfig,
};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/inception_parity.safetensors"
);

/// The named images of the script: (name, seed, channels, height, width).
const NAMED: [(&str, u64, usize, usize, usize); 5] = [
    ("grey28", 1, 1, 28, 28),
    ("rgb32", 2, 3, 32, 32),
    ("rgb299", 3, 3, 299, 299),
    ("rgb40x64", 4, 3, 40, 64),
    ("rgb320x200", 5, 3, 320, 200),
];
/// The FID sets: (first seed, channels, height, width).
const FID_A: (u64, usize, usize, usize) = (100, 1, 28, 28);
const FID_B: (u64, usize, usize, usize) = (200, 3, 32, 32);

/// Features may differ from pytorch-fid's by this much, relative to their largest magnitude
/// (float32 convolutions summed in another order over 40 layers).
const FEATURE_TOL: f32 = 1e-3;
/// The FID may differ by this much, relative.
const FID_TOL: f64 = 1e-3;

/// The full-width network with the formula's weights.
fn formula_network() -> FidInception {
    let cfg = InceptionConfig::default();
    let tensors = formula_weights(cfg).unwrap();
    FidInception::new(
        cfg,
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
    )
    .unwrap()
}

/// Image `seed` in [-1, 1], `[1, channels, h, w]` (the script's [0, 1] image v as 2v − 1).
fn image(seed: u64, channels: usize, h: usize, w: usize) -> Tensor {
    let [p, q, r, t] = [0, 1, 2, 3].map(|j| (mix(seed + j) & 0xff) as i64 + 1);
    let mut data = Vec::with_capacity(channels * h * w);
    for c in 0..channels as i64 {
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                let v = (p * x * x + q * y + r * x * y + t * c + seed as i64).rem_euclid(256);
                let v01 = (v as f64 / 255.0) as f32;
                data.push(2.0 * v01 - 1.0);
            }
        }
    }
    Tensor::from_vec(data, (1, channels, h, w), &Device::Cpu).unwrap()
}

fn features(net: &FidInception, (seed, c, h, w): (u64, usize, usize, usize)) -> Vec<f32> {
    net.forward(&image(seed, c, h, w))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn fixture() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(FIXTURE, &Device::Cpu).unwrap()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// max |a − b| / max |b|.
fn rel_max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

fn fid(a: &[f32], b: &[f32], dim: usize) -> f64 {
    let (ga, gb) = (
        Gaussian::fit(a, dim).unwrap(),
        Gaussian::fit(b, dim).unwrap(),
    );
    frechet_distance(&ga, &gb).unwrap()
}

#[test]
fn formula_matches_the_script() {
    // What the script's formula_tensor and image give (float32 values printed by Python).
    let w = formula("Conv2d_1a_3x3.conv.weight", &[32, 3, 3, 3]).unwrap();
    assert_eq!(w.len(), 864);
    let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let first = [
        -0.15198442339897156,
        0.12142249196767807,
        -0.30463361740112305,
    ];
    assert_eq!(wide(&w[..3]), first);
    let a = (6.0f64 / 27.0).sqrt() as f32;
    assert!(w.iter().all(|v| v.abs() <= a));
    let var = formula("Mixed_7c.branch_pool.bn.running_var", &[192]).unwrap();
    assert_eq!(wide(&var[..2]), [0.9528053998947144, 0.8933947086334229]);
    assert!(var.iter().all(|v| (0.8..=1.2).contains(v)));
    assert_eq!(formula("fc.weight", &[1008, 2048]), None);
    // image(7, 3, 4, 5)[2, 3, :] in [0, 1]; ours is 2v − 1.
    let img = f32s(&image(7, 3, 4, 5));
    let want = [
        0.7137255072593689f64,
        0.32549020648002625,
        0.10196078568696976,
        0.04313725605607033,
        0.14901961386203766,
    ];
    for (x, (g, v)) in img[2 * 20 + 3 * 5..2 * 20 + 4 * 5]
        .iter()
        .zip(want)
        .enumerate()
    {
        assert_eq!(*g, 2.0 * v as f32 - 1.0, "x = {x}");
    }
}

#[test]
fn fixture_fid_through_our_frechet_distance() {
    let fx = fixture();
    let (a, b) = (&fx["fid.a"], &fx["fid.b"]);
    let dim = a.dim(1).unwrap();
    let want = fx["fid.value"].to_vec1::<f64>().unwrap()[0];
    let got = fid(&f32s(a), &f32s(b), dim);
    let rel = (got - want).abs() / want.abs();
    eprintln!("pytorch-fid FID {want}, ours on its features {got} (relative {rel:.2e})");
    assert!(rel < 1e-6, "ours {got}, pytorch-fid {want}");
}

#[test]
fn features_and_fid_match_pytorch_fid() {
    let fx = fixture();
    let net = formula_network();
    let mut worst = 0f32;
    for (name, seed, c, h, w) in NAMED {
        let got = features(&net, (seed, c, h, w));
        let want = f32s(&fx[&format!("features.{name}")]);
        let rel = rel_max_diff(&got, &want);
        eprintln!("{name} ({c}×{h}×{w}): max |ours − pytorch-fid| / max |pytorch-fid| = {rel:.2e}");
        assert!(rel <= FEATURE_TOL, "{name}: relative difference {rel}");
        worst = worst.max(rel);
    }
    let dims: Vec<usize> = fx["fid.dims"]
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|d| d as usize)
        .collect();
    let n = fx["fid.a"].dim(0).unwrap();
    // One batch per set (the network's batch dimension is checked on the way).
    let set = |(s0, c, h, w): (u64, usize, usize, usize)| -> Vec<f32> {
        let batch: Vec<Tensor> = (0..n as u64).map(|k| image(s0 + k, c, h, w)).collect();
        let feats: Vec<f32> = f32s(&net.forward(&Tensor::cat(&batch, 0).unwrap()).unwrap());
        feats
            .chunks_exact(feats.len() / n)
            .flat_map(|f| dims.iter().map(|&d| f[d]).collect::<Vec<_>>())
            .collect()
    };
    let (a, b) = (set(FID_A), set(FID_B));
    for (ours, key) in [(&a, "fid.a"), (&b, "fid.b")] {
        let rel = rel_max_diff(ours, &f32s(&fx[key]));
        eprintln!(
            "{key}: {n} images × {} dims, relative max difference {rel:.2e}",
            dims.len()
        );
        assert!(rel <= FEATURE_TOL, "{key}: relative difference {rel}");
        worst = worst.max(rel);
    }
    let want = fx["fid.value"].to_vec1::<f64>().unwrap()[0];
    let got = fid(&a, &b, dims.len());
    let rel = (got - want).abs() / want.abs();
    eprintln!("FID: pytorch-fid {want}, ours {got}, relative difference {rel:.2e}; worst feature {worst:.2e}");
    assert!(rel <= FID_TOL, "FID ours {got}, pytorch-fid {want}");
}
