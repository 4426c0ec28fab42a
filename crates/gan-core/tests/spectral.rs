//! Spectral normalisation against singular values computed in f64 (the eigenvalues of W̄W̄ᵀ by
//! `eval_metrics::sym_eigen`), one power iteration against a hand computation, and u as saved
//! state.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use gan_core::conv::{Conv2d, ConvParams};
use gan_core::eval_metrics::sym_eigen;
use gan_core::rng::SeededRng;
use gan_core::spectral::{SnConv2d, SpectralNorm};

/// The largest singular value of `w` read as `[rows, rest]`, in f64: √λmax(W̄W̄ᵀ).
fn top_singular_value(w: &Tensor) -> f64 {
    let rows = w.dim(0).unwrap();
    let m: Vec<f64> = w
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let cols = m.len() / rows;
    let mut wwt = vec![0.0; rows * rows];
    for i in 0..rows {
        for j in 0..rows {
            wwt[i * rows + j] = (0..cols).map(|k| m[i * cols + k] * m[j * cols + k]).sum();
        }
    }
    let (values, _) = sym_eigen(&wwt, rows);
    values.iter().cloned().fold(f64::MIN, f64::max).sqrt()
}

fn conv(vm: &VarMap, seed: u64) -> SnConv2d {
    let vb = VarBuilder::from_varmap(vm, DType::F32, &Device::Cpu);
    let conv = Conv2d::new(6, 16, 4, ConvParams::new(2, 1), true, vb.pp("c")).unwrap();
    let c = SnConv2d::new(conv, &vb.pp("c")).unwrap();
    let w = SeededRng::new(seed)
        .randn((16, 6, 4, 4), 0.0, 0.3, &Device::Cpu)
        .unwrap();
    vm.data().lock().unwrap()["c.weight"].set(&w).unwrap();
    c
}

/// After training forwards (one power iteration each), σ̂ matches the f64 singular value and the
/// normalised weight's largest singular value is 1 (relative 1e-4, f32 arithmetic).
#[test]
fn normalised_weight_has_unit_spectral_norm() {
    let vm = VarMap::new();
    let c = conv(&vm, 1);
    let xs = Tensor::ones((2, 6, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let want = top_singular_value(c.conv().weight());
    for _ in 0..100 {
        c.forward_t(&xs, true).unwrap();
    }
    let sigma = c.spectral_norm().sigma(c.conv().weight()).unwrap();
    println!("σ̂ {sigma}, f64 SVD {want}");
    assert!((sigma - want).abs() < 1e-4 * want, "σ̂ {sigma}, want {want}");
    let normalised = c.weight_t(false).unwrap();
    let s = top_singular_value(&normalised);
    assert!((s - 1.0).abs() < 1e-4, "σ(W/σ̂) = {s}");
    // The layer's output is the plain convolution with the normalised weight.
    let plain = gan_core::conv::conv2d(&xs, &normalised, ConvParams::new(2, 1))
        .unwrap()
        .broadcast_add(&c.conv().bias().unwrap().reshape((1, 16, 1, 1)).unwrap())
        .unwrap();
    let diff = (c.forward_t(&xs, false).unwrap() - plain)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-6, "{diff}");
}

/// One power iteration by hand in f64: v = W̄ᵀu/‖W̄ᵀu‖, u' = W̄v/‖W̄v‖, σ = u'ᵀW̄v; evaluation
/// leaves u unchanged; u lives in the VarMap as `weight_u` (so checkpoints hold it).
#[test]
fn one_power_iteration_by_hand_and_u_is_state() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let sn = SpectralNorm::new(3, &vb.pp("l")).unwrap();
    let w = Tensor::new(&[[1.0f64, 2.0], [0.5, -1.0], [3.0, 0.0]], &Device::Cpu).unwrap();
    let u0 = [1.0 / 3f64.sqrt(); 3];
    let wm = [1.0, 2.0, 0.5, -1.0, 3.0, 0.0];
    let mut v = [0.0; 2];
    for j in 0..2 {
        v[j] = (0..3).map(|i| wm[i * 2 + j] * u0[i]).sum();
    }
    let nv = (v[0] * v[0] + v[1] * v[1]).sqrt();
    v.iter_mut().for_each(|x| *x /= nv);
    let wv: Vec<f64> = (0..3)
        .map(|i| wm[i * 2] * v[0] + wm[i * 2 + 1] * v[1])
        .collect();
    let nu = wv.iter().map(|x| x * x).sum::<f64>().sqrt();
    let u1: Vec<f64> = wv.iter().map(|x| x / nu).collect();
    let sigma: f64 = u1.iter().zip(&wv).map(|(a, b)| a * b).sum();

    let before = sn.normalise(&w, false).unwrap();
    assert_eq!(
        sn.u().to_vec1::<f64>().unwrap(),
        u0.to_vec(),
        "eval must not update u"
    );
    let out = sn.normalise(&w, true).unwrap();
    let got_u = sn.u().to_vec1::<f64>().unwrap();
    for (a, b) in got_u.iter().zip(&u1) {
        assert!((a - b).abs() < 1e-12, "u {got_u:?}, want {u1:?}");
    }
    let out: Vec<f64> = out.flatten_all().unwrap().to_vec1().unwrap();
    for (a, b) in out.iter().zip(&wm) {
        assert!((a - b / sigma).abs() < 1e-12, "{out:?}");
    }
    // Before the iteration, σ̂ came from u0: ‖W̄ᵀu0‖.
    let before: Vec<f64> = before.flatten_all().unwrap().to_vec1().unwrap();
    assert!((before[0] - 1.0 / nv).abs() < 1e-12, "{before:?} vs 1/{nv}");
    let stored = vm.data().lock().unwrap()["l.weight_u"]
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(stored, got_u);
}
