//! Tests for Adam and RMSprop: a float64 hand reference of PyTorch's update rules, fused vs
//! tensor-op paths, skipped parameters, and bitwise-exact state save/restore.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use gan_core::optim::*;

/// Gradients of L = Σ c_i·p_i² + Σ p_i, i.e. g_i = 2·c_i·p_i + 1, a gradient that changes with p.
fn quad_loss(p: &Tensor) -> Tensor {
    let n = p.elem_count();
    let c: Vec<f32> = (0..n).map(|i| 0.5 + 0.25 * i as f32).collect();
    let c = Tensor::from_vec(c, p.shape(), p.device()).unwrap();
    ((p.sqr().unwrap() * c).unwrap().sum_all().unwrap() + p.sum_all().unwrap()).unwrap()
}

fn coeffs(n: usize) -> Vec<f64> {
    // The same coefficients as quad_loss, as f32 values widened to f64.
    (0..n).map(|i| f64::from(0.5 + 0.25 * i as f32)).collect()
}

/// PyTorch's Adam, in f64, for the quadratic loss above.
fn adam_reference(p0: &[f64], cfg: AdamConfig, steps: usize) -> Vec<f64> {
    let c = coeffs(p0.len());
    let mut p = p0.to_vec();
    let mut m = vec![0.0; p.len()];
    let mut v = vec![0.0; p.len()];
    for t in 1..=steps {
        let bc1 = 1.0 - cfg.beta1.powi(t as i32);
        let bc2 = 1.0 - cfg.beta2.powi(t as i32);
        for i in 0..p.len() {
            let g = 2.0 * c[i] * p[i] + 1.0;
            m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
            v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g * g;
            let denom = v[i].sqrt() / bc2.sqrt() + cfg.eps;
            p[i] -= cfg.lr / bc1 * m[i] / denom;
        }
    }
    p
}

/// PyTorch's RMSprop (not centred, no momentum), in f64.
fn rmsprop_reference(p0: &[f64], cfg: RmsPropConfig, steps: usize) -> Vec<f64> {
    let c = coeffs(p0.len());
    let mut p = p0.to_vec();
    let mut s = vec![0.0; p.len()];
    for _ in 0..steps {
        for i in 0..p.len() {
            let g = 2.0 * c[i] * p[i] + 1.0;
            s[i] = cfg.alpha * s[i] + (1.0 - cfg.alpha) * g * g;
            p[i] -= cfg.lr * g / (s[i].sqrt() + cfg.eps);
        }
    }
    p
}

const P0: [f32; 6] = [0.3, -1.2, 0.05, 2.0, -0.7, 0.0];

fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "element {i}: got {g}, want {w}"
        );
    }
}

fn run_adam(fused: bool, cfg: AdamConfig, steps: usize) -> Vec<f32> {
    let w = Var::from_tensor(
        &Tensor::new(&P0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap(),
    )
    .unwrap();
    let mut opt = Adam::new(vec![("w".into(), w.clone())], cfg).unwrap();
    opt.set_fused(fused);
    for _ in 0..steps {
        opt.backward_step(&quad_loss(w.as_tensor())).unwrap();
    }
    assert_eq!(opt.step_count(), steps as u64);
    w.as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn adam_fused_and_tensor_paths_match_f64_reference() {
    let p0: Vec<f64> = P0.iter().map(|&x| f64::from(x)).collect();
    // A large learning rate so that 3 steps move the parameters visibly; plus the defaults.
    for cfg in [
        AdamConfig {
            lr: 0.1,
            ..AdamConfig::default()
        },
        AdamConfig::default(),
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
    ] {
        let want = adam_reference(&p0, cfg, 3);
        let fused = run_adam(true, cfg, 3);
        let ops = run_adam(false, cfg, 3);
        assert_close(&fused, &want, 1e-6);
        assert_close(&ops, &want, 1e-6);
        let diff = fused
            .iter()
            .zip(&ops)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-6, "fused vs tensor ops differ by {diff}");
    }
}

#[test]
fn adam_first_step_hand_value() {
    // Step 1: m̂ = g, v̂ = g², so p moves by lr·g/(|g| + ε) ≈ lr·sign(g).
    let w = Var::new(&[1.0f32, -3.0], &Device::Cpu).unwrap();
    let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::default()).unwrap();
    let loss = (w.as_tensor().sum_all().unwrap() * 5.0).unwrap(); // g = 5 everywhere
    opt.backward_step(&loss).unwrap();
    let got = w.as_tensor().to_vec1::<f32>().unwrap();
    let delta = 2e-4 * 5.0 / (5.0 + 1e-8);
    assert_close(&got, &[1.0 - delta, -3.0 - delta], 1e-7);
}

#[test]
fn adam_f64_params_use_tensor_path_and_match_reference() {
    let p0: Vec<f64> = P0.iter().map(|&x| f64::from(x)).collect();
    let w = Var::new(p0.as_slice(), &Device::Cpu).unwrap();
    let cfg = AdamConfig {
        lr: 0.05,
        ..AdamConfig::default()
    };
    let mut opt = Adam::new(vec![("w".into(), w.clone())], cfg).unwrap();
    let c: Vec<f64> = coeffs(p0.len());
    let c = Tensor::new(c.as_slice(), &Device::Cpu).unwrap();
    for _ in 0..3 {
        let p = w.as_tensor();
        let loss =
            ((p.sqr().unwrap() * &c).unwrap().sum_all().unwrap() + p.sum_all().unwrap()).unwrap();
        opt.backward_step(&loss).unwrap();
    }
    let got = w.as_tensor().to_vec1::<f64>().unwrap();
    let want = adam_reference(&p0, cfg, 3);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
}

fn run_rmsprop(fused: bool, cfg: RmsPropConfig, steps: usize) -> Vec<f32> {
    let w = Var::new(&P0, &Device::Cpu).unwrap();
    let mut opt = RmsProp::new(vec![("w".into(), w.clone())], cfg).unwrap();
    opt.set_fused(fused);
    for _ in 0..steps {
        opt.backward_step(&quad_loss(w.as_tensor())).unwrap();
    }
    w.as_tensor().to_vec1::<f32>().unwrap()
}

#[test]
fn rmsprop_fused_and_tensor_paths_match_f64_reference() {
    let p0: Vec<f64> = P0.iter().map(|&x| f64::from(x)).collect();
    for cfg in [
        RmsPropConfig {
            lr: 0.01,
            ..RmsPropConfig::default()
        },
        RmsPropConfig::default(),
    ] {
        let want = rmsprop_reference(&p0, cfg, 3);
        assert_close(&run_rmsprop(true, cfg, 3), &want, 1e-6);
        assert_close(&run_rmsprop(false, cfg, 3), &want, 1e-6);
    }
}

#[test]
fn large_tensor_parallel_update_matches_tensor_ops() {
    // Above the threshold where the fused loop splits over threads.
    let n = 100_003;
    let init: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin()).collect();
    let run = |fused: bool| {
        let w = Var::new(init.as_slice(), &Device::Cpu).unwrap();
        let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::default()).unwrap();
        opt.set_fused(fused);
        for _ in 0..3 {
            let loss = (w.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        w.as_tensor().to_vec1::<f32>().unwrap()
    };
    let (a, b) = (run(true), run(false));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff <= 1e-6, "max diff {diff}");
}

#[test]
fn variables_without_gradient_are_skipped() {
    let a = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
    let b = Var::new(&[3.0f32], &Device::Cpu).unwrap();
    let mut opt = Adam::new(
        vec![("a".into(), a.clone()), ("b".into(), b.clone())],
        AdamConfig::default(),
    )
    .unwrap();
    opt.backward_step(&a.as_tensor().sum_all().unwrap())
        .unwrap();
    assert_eq!(b.as_tensor().to_vec1::<f32>().unwrap(), vec![3.0]);
    let state: HashMap<_, _> = opt.state_tensors().into_iter().collect();
    let step = |k: &str| state[k].to_vec1::<f64>().unwrap()[0];
    assert_eq!(step("step"), 1.0);
    assert_eq!(step("a.step"), 1.0);
    assert_eq!(step("b.step"), 0.0);
    assert_eq!(state["b.exp_avg"].to_vec1::<f32>().unwrap(), vec![0.0]);
}

fn model(dev: &Device) -> (VarMap, Vec<Var>) {
    let vm = VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, dev);
    let init = candle_nn::Init::Const(0.5);
    let w = vb.get_with_hints((3, 4), "layer.weight", init).unwrap();
    let b = vb
        .get_with_hints(3, "layer.bias", candle_nn::Init::Const(-0.25))
        .unwrap();
    let _ = (w, b);
    let vars = gan_core_vars(&vm);
    (vm, vars)
}

fn gan_core_vars(vm: &VarMap) -> Vec<Var> {
    let mut v: Vec<(String, Var)> = vm.data().lock().unwrap().clone().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(_, v)| v).collect()
}

/// A loss depending on both variables and on the step index, so every step differs.
fn model_loss(vars: &[Var], k: usize) -> Tensor {
    let (b, w) = (vars[0].as_tensor(), vars[1].as_tensor());
    let x: Vec<f32> = (0..4).map(|i| ((i + k) as f32 * 0.7).cos()).collect();
    let x = Tensor::from_vec(x, (4, 1), &Device::Cpu).unwrap();
    let y = (w.matmul(&x).unwrap().squeeze(1).unwrap() + b).unwrap();
    y.tanh().unwrap().sqr().unwrap().sum_all().unwrap()
}

fn values(vars: &[Var]) -> Vec<Vec<f32>> {
    vars.iter()
        .map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn check_resume<O: StatefulOptimizer>(make: &dyn Fn(&VarMap) -> O, fused: &dyn Fn(&mut O, bool)) {
    for (fused_before, fused_after) in [(true, true), (false, false), (true, false), (false, true)]
    {
        // Uninterrupted: 5 steps.
        let (vm_a, vars_a) = model(&Device::Cpu);
        let mut opt_a = make(&vm_a);
        fused(&mut opt_a, fused_before);
        for k in 0..3 {
            opt_a.backward_step(&model_loss(&vars_a, k)).unwrap();
        }
        let saved: HashMap<String, Tensor> = opt_a.state_tensors().into_iter().collect();
        let weights = values(&vars_a);
        fused(&mut opt_a, fused_after);
        for k in 3..5 {
            opt_a.backward_step(&model_loss(&vars_a, k)).unwrap();
        }

        // Interrupted after 3: fresh model and optimizer, weights and state restored.
        let (vm_b, vars_b) = model(&Device::Cpu);
        for (v, w) in vars_b.iter().zip(&weights) {
            v.set(&Tensor::from_vec(w.clone(), v.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
        let mut opt_b = make(&vm_b);
        fused(&mut opt_b, fused_after);
        opt_b.load_state(&saved).unwrap();
        assert_eq!(opt_b.step_count(), 3);
        for k in 3..5 {
            opt_b.backward_step(&model_loss(&vars_b, k)).unwrap();
        }
        assert_eq!(opt_b.step_count(), 5);
        assert_eq!(
            values(&vars_a),
            values(&vars_b),
            "bitwise identical after resume"
        );
        let sa: Vec<_> = opt_a.state_tensors();
        let sb: Vec<_> = opt_b.state_tensors();
        for ((ka, ta), (kb, tb)) in sa.iter().zip(&sb) {
            assert_eq!(ka, kb);
            let (ta, tb) = (
                ta.flatten_all().unwrap().to_dtype(DType::F64).unwrap(),
                tb.flatten_all().unwrap().to_dtype(DType::F64).unwrap(),
            );
            assert_eq!(
                ta.to_vec1::<f64>().unwrap(),
                tb.to_vec1::<f64>().unwrap(),
                "{ka}"
            );
        }
    }
}

#[test]
fn adam_state_round_trip_is_bitwise_exact() {
    let cfg = AdamConfig {
        lr: 0.01,
        ..AdamConfig::default()
    };
    check_resume(&|vm| Adam::from_varmap(vm, cfg).unwrap(), &|o, f| {
        o.set_fused(f)
    });
    let (vm, _) = model(&Device::Cpu);
    let names: Vec<String> = Adam::from_varmap(&vm, cfg)
        .unwrap()
        .state_tensors()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        names,
        [
            "step",
            "layer.bias.exp_avg",
            "layer.bias.exp_avg_sq",
            "layer.bias.step",
            "layer.weight.exp_avg",
            "layer.weight.exp_avg_sq",
            "layer.weight.step"
        ]
    );
}

#[test]
fn rmsprop_state_round_trip_is_bitwise_exact() {
    let cfg = RmsPropConfig {
        lr: 0.01,
        ..RmsPropConfig::default()
    };
    check_resume(&|vm| RmsProp::from_varmap(vm, cfg).unwrap(), &|o, f| {
        o.set_fused(f)
    });
}

#[test]
fn load_state_reports_missing_and_misshaped_entries() {
    let (vm, vars) = model(&Device::Cpu);
    let mut opt = Adam::from_varmap(&vm, AdamConfig::default()).unwrap();
    opt.backward_step(&model_loss(&vars, 0)).unwrap();
    let good: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();

    let mut missing = good.clone();
    missing.remove("layer.weight.exp_avg_sq");
    let err = opt.load_state(&missing).unwrap_err().to_string();
    assert!(err.contains("layer.weight.exp_avg_sq"), "{err}");

    let mut no_step = good.clone();
    no_step.remove("step");
    let err = opt.load_state(&no_step).unwrap_err().to_string();
    assert!(err.contains("'step'"), "{err}");

    let mut bad = good.clone();
    bad.insert(
        "layer.bias.exp_avg".into(),
        Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
    );
    let err = opt.load_state(&bad).unwrap_err().to_string();
    assert!(
        err.contains("layer.bias.exp_avg") && err.contains("[4]") && err.contains("[3]"),
        "{err}"
    );

    // The failed loads changed nothing, and the good state loads.
    assert_eq!(opt.step_count(), 1);
    opt.load_state(&good).unwrap();
    assert_eq!(opt.step_count(), 1);
}

#[test]
fn lr_can_be_changed() {
    let w = Var::new(&[1.0f32], &Device::Cpu).unwrap();
    let mut opt = RmsProp::new(vec![("w".into(), w.clone())], RmsPropConfig::default()).unwrap();
    assert_eq!(opt.lr(), 5e-5);
    opt.set_lr(0.5);
    assert_eq!(opt.lr(), 0.5);
    let mut adam = Adam::new(vec![("w".into(), w)], AdamConfig::default()).unwrap();
    assert_eq!(adam.lr(), 2e-4);
    adam.set_lr(1e-3);
    assert_eq!(adam.config().lr, 1e-3);
    assert_eq!(adam.config().beta1, 0.5);
}

#[test]
fn config_round_trips_through_json() {
    let cfg = AdamConfig::default();
    let back: AdamConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    let cfg = RmsPropConfig::default();
    let back: RmsPropConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
}
