//! The WGAN-GP gradient penalty and the R1 penalty: their values by hand, its gradient with respect to every critic
//! parameter against central finite differences in f64 (conv2d with our kernels and with
//! candle's, layer norm, leaky ReLU, a linear layer), and the regression guard for candle's
//! detaching default.
//!
//! candle reads `CANDLE_GRAD_DO_NOT_DETACH` once per thread, so every check runs on a fresh
//! thread, and the tests of this file run one at a time (`ENV`), because they set the variable
//! (and the fast-convolution switch) for the whole process.

use std::sync::Mutex;

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gan_core::conv::{set_fast_conv, Conv2d, ConvParams};
use gan_core::norm::LayerNorm;
use gan_core::penalty::{
    ensure_second_order, gradient_penalty, interpolate, penalty_at, r1_penalty,
    second_order_enabled, DO_NOT_DETACH_VAR,
};
use gan_core::rng::SeededRng;
use gan_core::spectral::SnConv2d;

static ENV: Mutex<()> = Mutex::new(());

/// Runs `f` on a fresh thread that read `CANDLE_GRAD_DO_NOT_DETACH` as `value` ("1" or "0").
fn on_fresh_thread<T: Send + 'static>(value: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var(DO_NOT_DETACH_VAR, value);
    std::thread::spawn(f)
        .join()
        .expect("the test thread panicked")
}

/// A small critic with every layer type a WGAN-GP critic may use:
/// conv2d (4×4, stride 2, pad 1, bias) → leaky ReLU(0.2) → layer norm over [c, h, w] (affine)
/// → conv2d (3×3, no bias) → leaky ReLU(0.2) → flatten → linear (weight and bias) → `[b]`.
struct SmallCritic {
    conv1: Conv2d,
    norm: LayerNorm,
    conv2: Conv2d,
    linear: candle_nn::Linear,
}

impl SmallCritic {
    /// Builds the critic for `[b, 2, 6, 6]` inputs with f64 weights drawn from `rng` (so that
    /// biases and norm weights are away from their trivial initial values).
    fn new(vm: &VarMap, rng: &mut SeededRng) -> SmallCritic {
        let vb = VarBuilder::from_varmap(vm, DType::F64, &Device::Cpu);
        let conv1 = Conv2d::new(2, 3, 4, ConvParams::new(2, 1), true, vb.pp("conv1")).unwrap();
        let norm = LayerNorm::new((3, 3, 3), true, 1e-5, vb.pp("norm")).unwrap();
        let conv2 = Conv2d::new(3, 4, 3, ConvParams::new(1, 0), false, vb.pp("conv2")).unwrap();
        let w = vb.get((1, 4), "linear.weight").unwrap();
        let b = vb.get(1, "linear.bias").unwrap();
        let linear = candle_nn::Linear::new(w, Some(b));
        let mut names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        for name in names {
            let var = vm.data().lock().unwrap()[&name].clone();
            let std = if name.contains("norm.weight") {
                0.3
            } else {
                0.5
            };
            let mean = if name.contains("norm.weight") {
                1.0
            } else {
                0.0
            };
            let v = rng
                .randn_dtype(var.dims(), mean, std, DType::F64, &Device::Cpu)
                .unwrap();
            var.set(&v).unwrap();
        }
        SmallCritic {
            conv1,
            norm,
            conv2,
            linear,
        }
    }

    /// # Shapes
    /// `xs`: `[b, 2, 6, 6]` → `[b]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let b = xs.dim(0)?;
        let h = candle_nn::ops::leaky_relu(&self.conv1.forward(xs)?, 0.2)?; // [b, 3, 3, 3]
        let h = self.norm.forward(&h)?;
        let h = candle_nn::ops::leaky_relu(&self.conv2.forward(&h)?, 0.2)?; // [b, 4, 1, 1]
        self.linear.forward(&h.reshape((b, 4))?)?.reshape(b)
    }
}

fn flat(x: &Tensor) -> Vec<f64> {
    x.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn batches(rng: &mut SeededRng) -> (Tensor, Tensor) {
    let real = rng
        .randn_dtype((3, 2, 6, 6), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let fake = rng
        .randn_dtype((3, 2, 6, 6), 0.5, 1.5, DType::F64, &Device::Cpu)
        .unwrap();
    (real, fake)
}

/// The error of the gradient `g` of `loss` with respect to `var` against central differences of
/// step 1e-5: ‖g − g_fd‖₂ / ‖g_fd‖₂, or the absolute ‖g − g_fd‖₂ when g_fd is zero (a parameter
/// the loss does not depend on, such as the last bias for a penalty on input gradients).
fn error_vs_fd(var: &Var, g: &[f64], loss: &dyn Fn() -> f64) -> f64 {
    let x0 = flat(var.as_tensor());
    let shape = var.shape().clone();
    let h = 1e-5;
    let eval = |x: Vec<f64>| {
        var.set(&Tensor::from_vec(x, shape.clone(), &Device::Cpu).unwrap())
            .unwrap();
        loss()
    };
    let mut num = 0.0;
    let mut den = 0.0;
    for i in 0..x0.len() {
        let mut xp = x0.clone();
        xp[i] += h;
        let mut xm = x0.clone();
        xm[i] -= h;
        let fd = (eval(xp) - eval(xm)) / (2.0 * h);
        num += (g[i] - fd).powi(2);
        den += fd * fd;
    }
    var.set(&Tensor::from_vec(x0, shape, &Device::Cpu).unwrap())
        .unwrap();
    if den.sqrt() < 1e-7 {
        num.sqrt()
    } else {
        num.sqrt() / den.sqrt()
    }
}

/// For every parameter of the critic, the relative error of the penalty's gradient against
/// finite differences; `penalty` is evaluated with fixed interpolates.
fn penalty_gradient_errors(vm: &VarMap, penalty: &dyn Fn() -> Tensor) -> Vec<(String, f64)> {
    let grads = penalty().backward().unwrap();
    let mut vars: Vec<(String, Var)> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let value = || penalty().to_scalar::<f64>().unwrap();
    vars.iter()
        .map(|(name, var)| {
            // A missing gradient counts as zero (relative error 1 against a non-zero one).
            let g = match grads.get(var.as_tensor()) {
                Some(g) => flat(g),
                None => vec![0.0; var.elem_count()],
            };
            (name.clone(), error_vs_fd(var, &g, &value))
        })
        .collect()
}

/// The penalty's gradient with respect to every critic parameter matches central finite
/// differences (relative error < 1e-6, f64), with our fast conv kernels and with candle's.
#[test]
fn penalty_gradient_matches_finite_differences_for_every_layer() {
    for fast in [true, false] {
        let errors = on_fresh_thread("1", move || {
            set_fast_conv(fast);
            ensure_second_order().unwrap();
            let mut rng = SeededRng::new(7);
            let vm = VarMap::new();
            let critic = SmallCritic::new(&vm, &mut rng);
            let (real, fake) = batches(&mut rng);
            let x_hat = interpolate(&real, &fake, &mut rng).unwrap();
            let penalty = || {
                penalty_at(|xs| critic.forward(xs), &x_hat, 10.0)
                    .unwrap()
                    .value
            };
            // The whole critic objective, mean D(fake) − mean D(real) + penalty, which also
            // depends on the last bias.
            let objective = || {
                let w = (critic.forward(&fake).unwrap().mean_all().unwrap()
                    - critic.forward(&real).unwrap().mean_all().unwrap())
                .unwrap();
                (w + penalty()).unwrap()
            };
            let errors = [
                ("penalty", penalty_gradient_errors(&vm, &penalty)),
                ("objective", penalty_gradient_errors(&vm, &objective)),
            ];
            set_fast_conv(true);
            errors
        });
        for (what, errors) in &errors {
            assert_eq!(
                errors.len(),
                7,
                "conv1 w/b, norm w/b, conv2 w, linear w/b: {errors:?}"
            );
            for (name, err) in errors {
                println!("fast_conv={fast} {what} {name}: error {err:.2e}");
                assert!(
                    *err < 1e-6,
                    "fast_conv={fast} {what} {name}: error {err:.3e}"
                );
            }
        }
    }
}

/// The penalty's value against a direct computation: for a linear critic D(x) = ⟨w, x⟩ + c the
/// input gradient is w for every sample, so P = λ (‖w‖ − 1)²; and the interpolates lie on the
/// segments between real and fake with one ε per sample.
#[test]
fn penalty_value_and_interpolates_by_hand() {
    on_fresh_thread("1", || {
        ensure_second_order().unwrap();
        let dev = Device::Cpu;
        let w = Tensor::new(&[[0.5f64, -1.0, 2.0, 0.25]], &dev).unwrap();
        let critic =
            |xs: &Tensor| (xs.reshape((xs.dim(0)?, 4))?.matmul(&w.t()?)? + 3.0)?.squeeze(1);
        let mut rng = SeededRng::new(3);
        let (real, fake) = (
            rng.randn_dtype((5, 1, 2, 2), 0.0, 1.0, DType::F64, &dev)
                .unwrap(),
            rng.randn_dtype((5, 1, 2, 2), 0.0, 1.0, DType::F64, &dev)
                .unwrap(),
        );
        let p = gradient_penalty(critic, &real, &fake, &mut SeededRng::new(9), 10.0).unwrap();
        let norm = (0.25f64 + 1.0 + 4.0 + 0.0625).sqrt();
        let want = 10.0 * (norm - 1.0).powi(2);
        let got = p.value.to_scalar::<f64>().unwrap();
        assert!(
            (got - want).abs() < 1e-9 * want,
            "penalty {got}, want {want}"
        );
        assert!((p.mean_grad_norm as f64 - norm).abs() < 1e-5);

        let eps = SeededRng::new(9).uniform_vec_f64(5, 0.0, 1.0);
        let x_hat = flat(&interpolate(&real, &fake, &mut SeededRng::new(9)).unwrap());
        let (r, f) = (flat(&real), flat(&fake));
        for (i, got) in x_hat.iter().enumerate() {
            let e = eps[i / 4];
            assert!(
                (got - (e * r[i] + (1.0 - e) * f[i])).abs() < 1e-12,
                "element {i}"
            );
        }
        assert!(interpolate(&real, &fake.narrow(0, 0, 4).unwrap(), &mut rng).is_err());
    });
}

/// The penalty computed by hand, without the library's guard: what a gradient penalty looks like
/// when nothing checks candle's mode.
fn unguarded_penalty(critic: &SmallCritic, x_hat: &Tensor) -> Tensor {
    let x = Var::from_tensor(x_hat).unwrap();
    let d = critic.forward(x.as_tensor()).unwrap().sum_all().unwrap();
    let g = d.backward().unwrap().remove(x.as_tensor()).unwrap();
    let norms = (g.reshape((3, ())).unwrap().sqr().unwrap().sum(1).unwrap() + 1e-12)
        .unwrap()
        .sqrt()
        .unwrap();
    (norms
        .affine(1.0, -1.0)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        * 10.0)
        .unwrap()
}

/// Regression guard for candle's detaching default. On a thread that read
/// `CANDLE_GRAD_DO_NOT_DETACH` unset, (1) the probe says so, (2) `ensure_second_order` and the
/// penalty refuse to run rather than give a wrong gradient, and (3) a penalty computed there
/// anyway really has a wrong gradient (so the finite-difference test above would catch a
/// detaching backward); with the switch on, the same hand-written penalty is right and equals
/// the library's.
#[test]
fn detaching_default_is_detected_and_refused() {
    let worst_detached = on_fresh_thread("0", || {
        assert!(
            !second_order_enabled().unwrap(),
            "the probe must see candle detaching"
        );
        let err = ensure_second_order().unwrap_err().to_string();
        assert!(err.contains(DO_NOT_DETACH_VAR), "{err}");
        let mut rng = SeededRng::new(7);
        let vm = VarMap::new();
        let critic = SmallCritic::new(&vm, &mut rng);
        let (real, fake) = batches(&mut rng);
        let p = gradient_penalty(|xs| critic.forward(xs), &real, &fake, &mut rng, 10.0);
        assert!(p.unwrap_err().to_string().contains("detaches"));
        let x_hat = interpolate(&real, &fake, &mut rng).unwrap();
        let errors = penalty_gradient_errors(&vm, &|| unguarded_penalty(&critic, &x_hat));
        errors.iter().map(|e| e.1).fold(0.0, f64::max)
    });
    println!("worst relative error of the penalty's gradient with candle detaching: {worst_detached:.3e}");
    assert!(
        worst_detached > 1e-2,
        "with candle detaching, the penalty's gradient should be visibly wrong, worst error \
         {worst_detached:.3e}"
    );

    let worst_kept = on_fresh_thread("1", || {
        assert!(second_order_enabled().unwrap());
        let mut rng = SeededRng::new(7);
        let vm = VarMap::new();
        let critic = SmallCritic::new(&vm, &mut rng);
        let (real, fake) = batches(&mut rng);
        let x_hat = interpolate(&real, &fake, &mut rng).unwrap();
        let ours = penalty_at(|xs| critic.forward(xs), &x_hat, 10.0)
            .unwrap()
            .value;
        let by_hand = unguarded_penalty(&critic, &x_hat);
        let diff = (ours.to_scalar::<f64>().unwrap() - by_hand.to_scalar::<f64>().unwrap()).abs();
        assert!(
            diff < 1e-12,
            "library and hand-written penalties differ by {diff}"
        );
        let errors = penalty_gradient_errors(&vm, &|| unguarded_penalty(&critic, &x_hat));
        errors.iter().map(|e| e.1).fold(0.0, f64::max)
    });
    println!("worst relative error with the graph kept: {worst_kept:.3e}");
    assert!(
        worst_kept < 1e-6,
        "worst error with the graph kept: {worst_kept:.3e}"
    );
}

/// `ensure_second_order` on a thread that has not run backward yet sets the switch and works.
#[test]
fn ensure_second_order_sets_the_switch_on_a_fresh_thread() {
    on_fresh_thread("0", || {
        std::env::remove_var(DO_NOT_DETACH_VAR);
        ensure_second_order().unwrap();
        assert_eq!(std::env::var(DO_NOT_DETACH_VAR).as_deref(), Ok("1"));
        assert!(second_order_enabled().unwrap());
    });
}

/// R1 = γ/2 · mean ‖∇x D(x)‖² for a linear critic D(x) = ⟨w, x⟩ + c, whose input gradient is w
/// for every sample: γ/2 · ‖w‖².
#[test]
fn r1_value_by_hand() {
    on_fresh_thread("1", || {
        ensure_second_order().unwrap();
        let dev = Device::Cpu;
        let w = Tensor::new(&[[0.5f64, -1.0, 2.0, 0.25]], &dev).unwrap();
        let critic =
            |xs: &Tensor| (xs.reshape((xs.dim(0)?, 4))?.matmul(&w.t()?)? + 3.0)?.squeeze(1);
        let real = SeededRng::new(3)
            .randn_dtype((5, 1, 2, 2), 0.0, 1.0, DType::F64, &dev)
            .unwrap();
        let p = r1_penalty(critic, &real, 10.0).unwrap();
        let sq = 0.25f64 + 1.0 + 4.0 + 0.0625;
        let got = p.value.to_scalar::<f64>().unwrap();
        assert!(
            (got - 5.0 * sq).abs() < 1e-12,
            "R1 {got}, want {}",
            5.0 * sq
        );
        assert!((p.mean_grad_norm as f64 - sq.sqrt()).abs() < 1e-5);
    });
}

/// The R1 penalty's gradient with respect to every critic parameter matches central finite
/// differences (relative error < 1e-6, f64): on the small critic (our conv kernels and candle's,
/// layer norm, leaky ReLU, linear) and on a critic of spectrally normalised convolutions (in
/// evaluation mode, so that u stays fixed between the evaluations), both with R1 alone and
/// with the whole hinge objective plus R1.
#[test]
fn r1_gradient_matches_finite_differences() {
    for fast in [true, false] {
        let errors = on_fresh_thread("1", move || {
            set_fast_conv(fast);
            ensure_second_order().unwrap();
            let mut rng = SeededRng::new(11);
            let vm = VarMap::new();
            let critic = SmallCritic::new(&vm, &mut rng);
            let (real, _) = batches(&mut rng);
            let r1 = || {
                r1_penalty(|xs| critic.forward(xs), &real, 10.0)
                    .unwrap()
                    .value
            };
            let errors = penalty_gradient_errors(&vm, &r1);
            set_fast_conv(true);
            errors
        });
        assert_eq!(errors.len(), 7, "{errors:?}");
        for (name, err) in &errors {
            println!("fast_conv={fast} R1 {name}: error {err:.2e}");
            assert!(*err < 1e-6, "fast_conv={fast} R1 {name}: error {err:.3e}");
        }
    }
    let errors = on_fresh_thread("1", || {
        ensure_second_order().unwrap();
        let mut rng = SeededRng::new(12);
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
        let sn = |i, o, k, p, bias, name| {
            let conv = Conv2d::new(i, o, k, p, bias, vb.pp(name)).unwrap();
            SnConv2d::new(conv, &vb.pp(name)).unwrap()
        };
        let c1 = sn(2, 3, 4, ConvParams::new(2, 1), true, "c1");
        let c2 = sn(3, 1, 3, ConvParams::new(1, 0), false, "c2");
        for (name, var) in vm.data().lock().unwrap().iter() {
            if !name.ends_with("weight_u") {
                let v = rng
                    .randn_dtype(var.dims(), 0.0, 0.5, DType::F64, &Device::Cpu)
                    .unwrap();
                var.set(&v).unwrap();
            }
        }
        // A few power iterations, then u stays fixed.
        let (real, fake) = batches(&mut rng);
        for _ in 0..3 {
            c1.forward_t(&real, true).unwrap();
            c2.forward_t(&c1.forward_t(&real, false).unwrap(), true)
                .unwrap();
        }
        let critic = |xs: &Tensor| -> Result<Tensor> {
            let h = c1.forward_leaky_relu(xs, 0.2, false, true)?;
            c2.forward_t(&h, false)?.reshape(xs.dim(0)?)
        };
        let r1 = || r1_penalty(critic, &real, 10.0).unwrap().value;
        let objective = || {
            let d = gan_core::loss::hinge_discriminator_loss(
                &critic(&real).unwrap(),
                &critic(&fake).unwrap(),
            )
            .unwrap();
            (d + r1()).unwrap()
        };
        let mut errors = penalty_gradient_errors(&vm, &r1);
        errors.extend(penalty_gradient_errors(&vm, &objective));
        errors
    });
    for (name, err) in &errors {
        println!("spectral-norm critic {name}: error {err:.2e}");
        // u gets no gradient and the loss depends on it only through σ's estimate; with u
        // fixed the finite difference of u is a real derivative that the gradient leaves out.
        if !name.ends_with("weight_u") {
            assert!(*err < 1e-6, "spectral-norm critic {name}: error {err:.3e}");
        }
    }
}
