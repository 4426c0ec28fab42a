//! The EMA of a network's variables against a hand computation: copies up to the start step,
//! θ̄ ← βθ̄ + (1 − β)θ after it, BatchNorm running statistics copied; mismatched maps refused.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use gan_core::ema::{copy_vars, EmaConfig};

fn net() -> VarMap {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    vb.get_with_hints((2, 2), "conv.weight", Init::Const(0.0))
        .unwrap();
    vb.get_with_hints(2, "bn.running_mean", Init::Const(0.0))
        .unwrap();
    vm
}

fn set(vm: &VarMap, name: &str, v: &[f64]) {
    let var = vm.data().lock().unwrap()[name].clone();
    let t = Tensor::from_slice(v, var.shape(), &Device::Cpu).unwrap();
    var.set(&t).unwrap();
}

fn get(vm: &VarMap, name: &str) -> Vec<f64> {
    vm.data().lock().unwrap()[name]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn ema_update_by_hand() {
    let (g, avg) = (net(), net());
    let cfg = EmaConfig {
        decay: 0.9,
        start: 2,
    };
    // Steps 1 and 2 (≤ start): copies.
    set(&g, "conv.weight", &[1.0, 2.0, 3.0, 4.0]);
    cfg.update(&avg, &g, 1).unwrap();
    set(&g, "conv.weight", &[2.0, 2.0, 2.0, 2.0]);
    set(&g, "bn.running_mean", &[5.0, 6.0]);
    cfg.update(&avg, &g, 2).unwrap();
    assert_eq!(get(&avg, "conv.weight"), vec![2.0; 4]);
    // Steps 3 and 4: averages. θ̄₃ = 0.9·2 + 0.1·θ₃, θ̄₄ = 0.9·θ̄₃ + 0.1·θ₄.
    let (t3, t4) = ([0.0, 10.0, -10.0, 1.0], [1.0, 1.0, 1.0, 1.0]);
    set(&g, "conv.weight", &t3);
    cfg.update(&avg, &g, 3).unwrap();
    set(&g, "conv.weight", &t4);
    set(&g, "bn.running_mean", &[7.0, 8.0]);
    cfg.update(&avg, &g, 4).unwrap();
    let got = get(&avg, "conv.weight");
    for i in 0..4 {
        let a3 = 0.9 * 2.0 + 0.1 * t3[i];
        let want = 0.9 * a3 + 0.1 * t4[i];
        assert!((got[i] - want).abs() < 1e-12, "{i}: {} vs {want}", got[i]);
    }
    // Running statistics are copied, not averaged.
    assert_eq!(get(&avg, "bn.running_mean"), vec![7.0, 8.0]);
    // The network itself is untouched.
    assert_eq!(get(&g, "conv.weight"), t4.to_vec());

    copy_vars(&avg, &g).unwrap();
    assert_eq!(get(&avg, "conv.weight"), t4.to_vec());
}

#[test]
fn ema_refuses_bad_decay_and_other_networks() {
    assert!(EmaConfig {
        decay: 1.0,
        start: 0
    }
    .validate()
    .is_err());
    assert!(EmaConfig {
        decay: -0.1,
        start: 0
    }
    .validate()
    .is_err());
    assert!(EmaConfig {
        decay: 0.999,
        start: 0
    }
    .validate()
    .is_ok());
    let other = VarMap::new();
    VarBuilder::from_varmap(&other, DType::F64, &Device::Cpu)
        .get_with_hints((2, 2), "other.weight", Init::Const(0.0))
        .unwrap();
    VarBuilder::from_varmap(&other, DType::F64, &Device::Cpu)
        .get_with_hints(2, "bn.running_mean", Init::Const(0.0))
        .unwrap();
    let err = EmaConfig {
        decay: 0.5,
        start: 0,
    }
    .update(&other, &net(), 1)
    .unwrap_err()
    .to_string();
    assert!(err.contains("conv.weight"), "{err}");
}
