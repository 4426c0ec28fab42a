//! Tests for reflection padding, instance norm and layer norm: hand-computed values, and
//! gradients (first and second order) against central finite differences in f64.

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gan_core::norm::{reflection_pad2d, InstanceNorm2d, LayerNorm};
use gan_core::rng::SeededRng;

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn flat(x: &Tensor) -> Vec<f64> {
    x.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn assert_all_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "element {i}: got {g}, want {w}");
    }
}

#[test]
fn reflection_pad_matches_torch() {
    let xs = Tensor::arange(1f32, 10., &Device::Cpu)
        .unwrap()
        .reshape((1, 1, 3, 3))
        .unwrap();
    let ys = reflection_pad2d(&xs, 1).unwrap();
    // torch.nn.ReflectionPad2d(1)(torch.arange(1., 10.).view(1, 1, 3, 3))
    #[rustfmt::skip]
    let want = [
        5., 4., 5., 6., 5.,
        2., 1., 2., 3., 2.,
        5., 4., 5., 6., 5.,
        8., 7., 8., 9., 8.,
        5., 4., 5., 6., 5.,
    ];
    assert_eq!(ys.dims(), &[1, 1, 5, 5]);
    assert_eq!(flat(&ys), want.to_vec());

    // Non-square, pad 2 on a 3×4 input: rows [2,1,0,1,2,1,0], cols [2,1,0,1,2,3,2,1].
    let xs = Tensor::arange(0f64, 24., &Device::Cpu)
        .unwrap()
        .reshape((2, 1, 3, 4))
        .unwrap();
    let ys = reflection_pad2d(&xs, 2).unwrap();
    assert_eq!(ys.dims(), &[2, 1, 7, 8]);
    let rows = [2, 1, 0, 1, 2, 1, 0];
    let cols = [2, 1, 0, 1, 2, 3, 2, 1];
    let got = flat(&ys);
    for b in 0..2 {
        for (i, &r) in rows.iter().enumerate() {
            for (j, &c) in cols.iter().enumerate() {
                assert_eq!(got[b * 56 + i * 8 + j], (b * 12 + r * 4 + c) as f64);
            }
        }
    }
    assert_eq!(flat(&reflection_pad2d(&xs, 0).unwrap()), flat(&xs));
    assert!(reflection_pad2d(&xs, 3).is_err());
}

#[test]
fn instance_norm_hand_values() {
    let eps = 1e-5;
    // Sample 0: channel 0 = [1, 2, 3, 4] (mean 2.5, biased var 1.25), channel 1 constant 7.
    // Sample 1: channel 0 = [0, 0, 0, 8] (mean 2, var 12), channel 1 = [−1, 1, −1, 1] (var 1).
    let xs = t(
        &[
            1., 2., 3., 4., 7., 7., 7., 7., 0., 0., 0., 8., -1., 1., -1., 1.,
        ],
        &[2, 2, 2, 2],
    );
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let plain = InstanceNorm2d::new(2, false, eps, vb.pp("plain")).unwrap();
    let s = |v: f64| (v + eps).sqrt();
    let want = [
        -1.5 / s(1.25),
        -0.5 / s(1.25),
        0.5 / s(1.25),
        1.5 / s(1.25),
        0.,
        0.,
        0.,
        0.,
        -2. / s(12.),
        -2. / s(12.),
        -2. / s(12.),
        6. / s(12.),
        -1. / s(1.),
        1. / s(1.),
        -1. / s(1.),
        1. / s(1.),
    ];
    assert_all_close(&flat(&plain.forward(&xs).unwrap()), &want, 1e-12);
    assert!(vm.all_vars().is_empty(), "no parameters without affine");

    let affine = InstanceNorm2d::new(2, true, eps, vb.pp("in")).unwrap();
    {
        let data = vm.data().lock().unwrap();
        assert_eq!(flat(data["in.weight"].as_tensor()), vec![1., 1.]);
        assert_eq!(flat(data["in.bias"].as_tensor()), vec![0., 0.]);
        data["in.weight"].set(&t(&[2., 0.5], &[2])).unwrap();
        data["in.bias"].set(&t(&[1., -1.], &[2])).unwrap();
    }
    let got = flat(&affine.forward(&xs).unwrap());
    let (gamma, beta) = ([2., 0.5], [1., -1.]);
    let want_affine: Vec<f64> = want
        .iter()
        .enumerate()
        .map(|(i, w)| w * gamma[(i / 4) % 2] + beta[(i / 4) % 2])
        .collect();
    assert_all_close(&got, &want_affine, 1e-12);
    assert!(affine.forward(&t(&[0.; 12], &[1, 3, 2, 2])).is_err());
}

#[test]
fn layer_norm_hand_values() {
    let eps = 1e-5;
    let xs = t(
        &[1., 2., 3., 4., 5., 6., 10., 10., 10., 10., 10., 13.],
        &[2, 3, 2],
    );
    // over_non_batch: sample 0 = 1..6 (mean 3.5, var 35/12); sample 1 mean 10.5, var 1.25.
    let ln = LayerNorm::over_non_batch(eps);
    assert_eq!(ln.normalized_shape(), None);
    let (s0, s1) = ((35.0 / 12.0 + eps).sqrt(), (1.25 + eps).sqrt());
    let want: Vec<f64> = [1., 2., 3., 4., 5., 6.]
        .iter()
        .map(|x| (x - 3.5) / s0)
        .chain(
            [10., 10., 10., 10., 10., 13.]
                .iter()
                .map(|x| (x - 10.5) / s1),
        )
        .collect();
    assert_all_close(&flat(&ln.forward(&xs).unwrap()), &want, 1e-12);

    // Over the last axis only, with affine weights of shape [2].
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let ln = LayerNorm::new(2, true, eps, vb.pp("ln")).unwrap();
    assert_eq!(ln.normalized_shape(), Some(&[2usize][..]));
    {
        let data = vm.data().lock().unwrap();
        data["ln.weight"].set(&t(&[3., -1.], &[2])).unwrap();
        data["ln.bias"].set(&t(&[0.5, 0.25], &[2])).unwrap();
    }
    // Each pair (a, b) with a < b standardises to (−1, 1)·|b−a|/2/√((b−a)²/4 + ε); equal → 0.
    let pairs = [
        (1., 2.),
        (3., 4.),
        (5., 6.),
        (10., 10.),
        (10., 10.),
        (10., 13.),
    ];
    let mut want = Vec::new();
    for (a, b) in pairs {
        let d: f64 = (b - a) / 2.0;
        let z = d / (d * d + eps).sqrt();
        want.push(-z * 3. + 0.5);
        want.push(-z + 0.25);
    }
    assert_all_close(&flat(&ln.forward(&xs).unwrap()), &want, 1e-12);
    assert!(ln.forward(&t(&[0.; 6], &[2, 3])).is_err());
}

/// Checks the gradient of `loss` with respect to `var` against central finite differences
/// (h = 1e-5, f64), requiring ‖g − g_fd‖₂ / ‖g_fd‖₂ < 1e-6.
fn check_grad(var: &Var, loss: &dyn Fn() -> Tensor, what: &str) {
    let grads = loss().backward().unwrap();
    let g = flat(grads.get(var.as_tensor()).expect("a gradient"));
    let x0 = flat(var.as_tensor());
    let shape = var.shape().clone();
    let h = 1e-5;
    let eval = |x: Vec<f64>| {
        var.set(&Tensor::from_vec(x, shape.clone(), &Device::Cpu).unwrap())
            .unwrap();
        loss().to_scalar::<f64>().unwrap()
    };
    let mut fd = Vec::with_capacity(x0.len());
    for i in 0..x0.len() {
        let mut xp = x0.clone();
        xp[i] += h;
        let mut xm = x0.clone();
        xm[i] -= h;
        fd.push((eval(xp) - eval(xm)) / (2.0 * h));
    }
    var.set(&Tensor::from_vec(x0, shape, &Device::Cpu).unwrap())
        .unwrap();
    let num: f64 = g
        .iter()
        .zip(&fd)
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f64>()
        .sqrt();
    let den: f64 = fd.iter().map(|b| b * b).sum::<f64>().sqrt();
    assert!(den > 1e-3, "{what}: gradient too small to test ({den})");
    assert!(num / den < 1e-6, "{what}: relative error {}", num / den);
}

fn randn(rng: &mut SeededRng, shape: &[usize]) -> Tensor {
    rng.randn_dtype(shape, 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap()
}

fn weight_vars(vm: &VarMap, prefix: &str) -> (Var, Var) {
    let data = vm.data().lock().unwrap();
    (
        data[&format!("{prefix}.weight")].clone(),
        data[&format!("{prefix}.bias")].clone(),
    )
}

/// Gives affine parameters non-trivial values so that their gradients are exercised.
fn perturb(rng: &mut SeededRng, w: &Var, b: &Var) {
    w.set(&randn(rng, w.dims()).affine(0.3, 1.0).unwrap())
        .unwrap();
    b.set(&(randn(rng, b.dims()) * 0.3).unwrap()).unwrap();
}

#[test]
fn reflection_pad_gradient_matches_finite_differences() {
    let mut rng = SeededRng::new(11);
    let x = Var::from_tensor(&randn(&mut rng, &[2, 2, 3, 4])).unwrap();
    let r = randn(&mut rng, &[2, 2, 7, 8]);
    let loss = || {
        (reflection_pad2d(x.as_tensor(), 2).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    check_grad(&x, &loss, "pad input");
}

#[test]
fn instance_norm_gradient_matches_finite_differences() {
    let mut rng = SeededRng::new(12);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let layer = InstanceNorm2d::new(3, true, 1e-5, vb.pp("in")).unwrap();
    let (w, b) = weight_vars(&vm, "in");
    perturb(&mut rng, &w, &b);
    let x = Var::from_tensor(&randn(&mut rng, &[2, 3, 3, 4])).unwrap();
    let r = randn(&mut rng, &[2, 3, 3, 4]);
    let loss = || {
        (layer.forward(x.as_tensor()).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    check_grad(&x, &loss, "instance norm input");
    check_grad(&w, &loss, "instance norm weight");
    check_grad(&b, &loss, "instance norm bias");
}

#[test]
fn layer_norm_gradient_matches_finite_differences() {
    let mut rng = SeededRng::new(13);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let layer = LayerNorm::new((3, 4), true, 1e-5, vb.pp("ln")).unwrap();
    let (w, b) = weight_vars(&vm, "ln");
    perturb(&mut rng, &w, &b);
    let x = Var::from_tensor(&randn(&mut rng, &[2, 2, 3, 4])).unwrap();
    let r = randn(&mut rng, &[2, 2, 3, 4]);
    let loss = || {
        (layer.forward(x.as_tensor()).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    check_grad(&x, &loss, "layer norm input");
    check_grad(&w, &loss, "layer norm weight");
    check_grad(&b, &loss, "layer norm bias");

    let plain = LayerNorm::over_non_batch(1e-5);
    let loss = || {
        (plain.forward(x.as_tensor()).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    check_grad(&x, &loss, "layer norm over non-batch axes");
}

/// A WGAN-GP-style penalty Σ(∂D/∂x)² through pad → layer norm → instance norm, differentiated
/// again with respect to the input and a weight. Needs `CANDLE_GRAD_DO_NOT_DETACH`, which candle
/// reads once per thread, so the check runs on a fresh thread after setting it.
#[test]
fn second_order_gradients_match_finite_differences() {
    std::env::set_var("CANDLE_GRAD_DO_NOT_DETACH", "1");
    std::thread::spawn(|| {
        let mut rng = SeededRng::new(14);
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let inorm = InstanceNorm2d::new(2, true, 1e-5, vb.pp("in")).unwrap();
        let (w, b) = weight_vars(&vm, "in");
        perturb(&mut rng, &w, &b);
        let lnorm = LayerNorm::over_non_batch(1e-5);
        let x = Var::from_tensor(&randn(&mut rng, &[2, 2, 3, 3])).unwrap();
        let r = randn(&mut rng, &[2, 2, 5, 5]);
        let penalty = || {
            let h = reflection_pad2d(x.as_tensor(), 1).unwrap();
            let h = lnorm.forward(&h).unwrap().tanh().unwrap();
            let d = (inorm.forward(&h).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap();
            let gx = d.backward().unwrap().get(x.as_tensor()).unwrap().clone();
            gx.sqr().unwrap().sum_all().unwrap()
        };
        check_grad(&x, &penalty, "penalty w.r.t. input");
        check_grad(&w, &penalty, "penalty w.r.t. instance-norm weight");
    })
    .join()
    .unwrap();
}
