//! The fused BatchNorm2d and LeakyReLU against candle-nn's and against finite differences.

use anyhow::Result;
use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gan_core::batchnorm::{leaky_relu, Activation, BatchNorm2d};
use gan_core::conv::set_fast_conv;
use gan_core::rng::SeededRng;

const ACTS: [Activation; 3] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.2),
];

fn candle_act(xs: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Identity => xs.clone(),
        Activation::Relu => xs.relu()?,
        Activation::LeakyRelu(s) => candle_nn::ops::leaky_relu(xs, s)?,
    })
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok((a - b)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

/// Our layer and candle-nn's over two VarMaps holding the same random affine parameters.
fn pair(
    c: usize,
    dtype: DType,
    act: Activation,
    rng: &mut SeededRng,
) -> Result<(BatchNorm2d, VarMap, candle_nn::BatchNorm, VarMap)> {
    let dev = Device::Cpu;
    let (ours_vars, ref_vars) = (VarMap::new(), VarMap::new());
    let ours =
        BatchNorm2d::new(c, VarBuilder::from_varmap(&ours_vars, dtype, &dev))?.with_activation(act);
    let reference = candle_nn::batch_norm(
        c,
        candle_nn::BatchNormConfig::default(),
        VarBuilder::from_varmap(&ref_vars, dtype, &dev),
    )?;
    for name in ["weight", "bias"] {
        let v = rng.randn_dtype(c, 0.5, 0.5, dtype, &dev)?;
        ours_vars.data().lock().unwrap()[name].set(&v)?;
        ref_vars.data().lock().unwrap()[name].set(&v)?;
    }
    Ok((ours, ours_vars, reference, ref_vars))
}

#[test]
fn forward_running_stats_and_gradients_match_candle_nn() -> Result<()> {
    set_fast_conv(true);
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(3);
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 2e-4 } else { 1e-10 };
        for act in ACTS {
            for (b, c, h, w) in [(4, 3, 5, 7), (2, 16, 1, 1), (3, 5, 9, 4)] {
                let (ours, ours_vars, reference, ref_vars) = pair(c, dtype, act, &mut rng)?;
                for _ in 0..2 {
                    let x =
                        Var::from_tensor(&rng.randn_dtype((b, c, h, w), 1.0, 2.0, dtype, &dev)?)?;
                    let r = rng.randn_dtype((b, c, h, w), 0.0, 1.0, dtype, &dev)?;
                    let y = ours.forward_t(x.as_tensor(), true)?;
                    let y_ref = candle_act(&reference.forward_t(x.as_tensor(), true)?, act)?;
                    assert!(max_abs_diff(&y, &y_ref)? < tol, "forward {act:?} {dtype:?}");

                    let g = (&y * &r)?.sum_all()?.backward()?;
                    let g_ref = (&y_ref * &r)?.sum_all()?.backward()?;
                    let gx = g.get(x.as_tensor()).expect("x grad");
                    let gx_ref = g_ref.get(x.as_tensor()).expect("x grad");
                    assert!(
                        max_abs_diff(gx, gx_ref)? < tol,
                        "dx {act:?} {dtype:?} {b}x{c}x{h}x{w}"
                    );
                    for name in ["weight", "bias"] {
                        let (o, rf) = (
                            &ours_vars.data().lock().unwrap()[name],
                            &ref_vars.data().lock().unwrap()[name],
                        );
                        let (go, gr) = (
                            g.get(o.as_tensor()).unwrap(),
                            g_ref.get(rf.as_tensor()).unwrap(),
                        );
                        assert!(
                            max_abs_diff(go, gr)? < tol * 10.0,
                            "d{name} {act:?} {dtype:?}"
                        );
                    }
                }
                for name in ["running_mean", "running_var"] {
                    let o = ours_vars.data().lock().unwrap()[name].as_tensor().clone();
                    let rf = ref_vars.data().lock().unwrap()[name].as_tensor().clone();
                    assert!(max_abs_diff(&o, &rf)? < tol, "{name} {act:?} {dtype:?}");
                }
                // Evaluation mode uses the running statistics, as candle-nn does.
                let x = rng.randn_dtype((b, c, h, w), 0.0, 1.0, dtype, &dev)?;
                let y = ours.forward_t(&x, false)?;
                let y_ref = candle_act(&reference.forward_t(&x, false)?, act)?;
                assert!(max_abs_diff(&y, &y_ref)? < tol);
            }
        }
    }
    Ok(())
}

/// `L = Σ y·r` for the layer's output with the given input and affine parameters.
fn loss(bn: &BatchNorm2d, x: &Tensor, r: &Tensor) -> Result<f64> {
    Ok((bn.forward_t(x, true)? * r)?
        .sum_all()?
        .to_scalar::<f64>()?)
}

#[test]
fn gradients_match_finite_differences() -> Result<()> {
    set_fast_conv(true);
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(11);
    let (b, c, h, w) = (3, 2, 3, 4);
    for act in ACTS {
        let (bn, vars, _, _) = pair(c, DType::F64, act, &mut rng)?;
        let x0 = rng.randn_dtype((b, c, h, w), 0.3, 1.5, DType::F64, &dev)?;
        let r = rng.randn_dtype((b, c, h, w), 0.0, 1.0, DType::F64, &dev)?;
        let x = Var::from_tensor(&x0)?;
        let grads = (bn.forward_t(x.as_tensor(), true)? * &r)?
            .sum_all()?
            .backward()?;
        let eps = 1e-6;
        // Input: every element.
        let gx = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()?
            .to_vec1::<f64>()?;
        let xv = x0.flatten_all()?.to_vec1::<f64>()?;
        for i in 0..xv.len() {
            let at = |d: f64| -> Result<f64> {
                let mut v = xv.clone();
                v[i] += d;
                loss(&bn, &Tensor::from_vec(v, (b, c, h, w), &dev)?, &r)
            };
            let fd = (at(eps)? - at(-eps)?) / (2.0 * eps);
            assert!(
                (fd - gx[i]).abs() < 1e-5,
                "dx[{i}] {act:?}: {fd} vs {}",
                gx[i]
            );
        }
        // Weight and bias.
        for name in ["weight", "bias"] {
            let var = vars.data().lock().unwrap()[name].clone();
            let g = grads.get(var.as_tensor()).unwrap().to_vec1::<f64>()?;
            let v0 = var.as_tensor().to_vec1::<f64>()?;
            for ch in 0..c {
                let at = |d: f64| -> Result<f64> {
                    let mut v = v0.clone();
                    v[ch] += d;
                    var.set(&Tensor::new(v, &dev)?)?;
                    loss(&bn, &x0, &r)
                };
                let fd = (at(eps)? - at(-eps)?) / (2.0 * eps);
                var.set(&Tensor::new(v0.clone(), &dev)?)?;
                assert!(
                    (fd - g[ch]).abs() < 1e-5,
                    "d{name}[{ch}] {act:?}: {fd} vs {}",
                    g[ch]
                );
            }
        }
    }
    Ok(())
}

#[test]
fn leaky_relu_matches_candle() -> Result<()> {
    set_fast_conv(true);
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(5);
    for dtype in [DType::F32, DType::F64] {
        let x = Var::from_tensor(&rng.randn_dtype((3, 4, 5, 6), 0.0, 1.0, dtype, &dev)?)?;
        let r = rng.randn_dtype((3, 4, 5, 6), 0.0, 1.0, dtype, &dev)?;
        let y = leaky_relu(x.as_tensor(), 0.2)?;
        let y_ref = candle_nn::ops::leaky_relu(x.as_tensor(), 0.2)?;
        assert!(max_abs_diff(&y, &y_ref)? < 1e-6);
        let g = (&y * &r)?.sum_all()?.backward()?;
        let g_ref = (&y_ref * &r)?.sum_all()?.backward()?;
        let d = max_abs_diff(
            g.get(x.as_tensor()).unwrap(),
            g_ref.get(x.as_tensor()).unwrap(),
        )?;
        assert!(d < 1e-6, "{dtype:?}: {d}");
        // A non-contiguous input.
        let xt = x.as_tensor().transpose(1, 3)?;
        let d = max_abs_diff(
            &leaky_relu(&xt, 0.2)?,
            &candle_nn::ops::leaky_relu(&xt, 0.2)?,
        )?;
        assert!(d < 1e-6);
    }
    Ok(())
}

#[test]
fn weight_names_are_those_of_candle_nn() -> Result<()> {
    let vars = VarMap::new();
    let _bn = BatchNorm2d::new(
        4,
        VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu).pp("bn"),
    )?;
    let mut names: Vec<String> = vars.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        ["bn.bias", "bn.running_mean", "bn.running_var", "bn.weight"]
    );
    Ok(())
}

/// Under `freeze_params` the layers give the same output and input gradient, and no gradient
/// for their parameters; after the guard is dropped they train again.
#[test]
fn frozen_parameters_get_no_gradient_and_change_nothing_else() -> Result<()> {
    use candle_core::Module;
    use gan_core::conv::{Conv2d, ConvParams, ConvTranspose2d};
    use gan_core::freeze::{freeze_params, params_frozen};
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(5);
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let conv = Conv2d::new(3, 4, 4, ConvParams::new(2, 1), true, vb.pp("c"))?;
    let bn = BatchNorm2d::new(4, vb.pp("bn"))?.with_activation(Activation::LeakyRelu(0.2));
    let convt = ConvTranspose2d::new(4, 2, 4, ConvParams::new(2, 1), true, vb.pp("t"))?;
    let x = Var::from_tensor(&rng.randn((3, 3, 8, 8), 0.0, 1.0, &dev)?)?;
    let run = |frozen: bool| -> Result<(Tensor, candle_core::backprop::GradStore)> {
        let y = {
            let _guard = frozen.then(freeze_params);
            assert_eq!(params_frozen(), frozen);
            let h = bn.forward_t(&conv.forward(x.as_tensor())?, true)?;
            convt.forward(&h)?
        };
        assert!(!params_frozen());
        let grads = (y.sqr()?.sum_all()?).backward()?;
        Ok((y, grads))
    };
    let (y0, g0) = run(false)?;
    let (y1, g1) = run(true)?;
    assert_eq!(max_abs_diff(&y0, &y1)?, 0.0);
    let (gx0, gx1) = (g0.get(x.as_tensor()), g1.get(x.as_tensor()));
    assert_eq!(max_abs_diff(gx0.unwrap(), gx1.unwrap())?, 0.0);
    let vars = vm.all_vars();
    assert_eq!(
        vars.len(),
        8,
        "weights, biases, γ, β and running statistics"
    );
    let trained = vars
        .iter()
        .filter(|v| g0.get(v.as_tensor()).is_some())
        .count();
    assert_eq!(trained, 6, "conv w+b, γ, β, convT w+b");
    assert!(vars.iter().all(|v| g1.get(v.as_tensor()).is_none()));
    Ok(())
}

/// A bias-free convolution and BatchNorm2d run as one op (`forward_conv`) give the values,
/// running statistics and gradients (input, conv weight, γ, β) of the two layers in turn,
/// exactly: the same kernels run in the same order. Conv2d and ConvTranspose2d, every
/// activation, f32 and f64.
#[test]
fn conv_then_batch_norm_as_one_op_equals_the_two_layers() -> Result<()> {
    use gan_core::conv::{Conv2d, ConvLayer, ConvParams, ConvTranspose2d};
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(41);
    // (transposed, c_in, c_out, k, stride, padding, input size)
    let cases = [
        (false, 3, 5, 4, 2, 1, 9),
        (false, 2, 4, 3, 1, 1, 6),
        (true, 6, 4, 4, 2, 1, 5),
        (true, 7, 3, 7, 1, 0, 1),
    ];
    for dtype in [DType::F32, DType::F64] {
        for (t, c_in, c_out, k, s, p, n) in cases {
            for act in ACTS {
                let build = |vm: &VarMap| -> Result<(Option<Conv2d>, Option<ConvTranspose2d>, BatchNorm2d)> {
                    let vb = VarBuilder::from_varmap(vm, dtype, &dev);
                    let params = ConvParams::new(s, p);
                    let (c, ct) = if t {
                        (None, Some(ConvTranspose2d::new(c_in, c_out, k, params, false, vb.pp("conv"))?))
                    } else {
                        (Some(Conv2d::new(c_in, c_out, k, params, false, vb.pp("conv"))?), None)
                    };
                    let bn = BatchNorm2d::new(c_out, vb.pp("bn"))?.with_activation(act);
                    Ok((c, ct, bn))
                };
                let (vm_a, vm_b) = (VarMap::new(), VarMap::new());
                let (ca, cta, bna) = build(&vm_a)?;
                let (cb, ctb, bnb) = build(&vm_b)?;
                // Same random parameters on both sides (γ and β too, so that they matter).
                for (name, var) in vm_a.data().lock().unwrap().iter() {
                    let v = rng
                        .randn(var.shape().clone(), 0.0, 0.5, &dev)?
                        .to_dtype(dtype)?;
                    var.set(&v)?;
                    vm_b.data().lock().unwrap()[name].set(&v)?;
                }
                fn layer<'a>(
                    c: &'a Option<Conv2d>,
                    ct: &'a Option<ConvTranspose2d>,
                ) -> ConvLayer<'a> {
                    match (c, ct) {
                        (Some(c), _) => ConvLayer::Conv2d(c),
                        (_, Some(ct)) => ConvLayer::ConvTranspose2d(ct),
                        _ => unreachable!(),
                    }
                }
                let x = Var::from_tensor(
                    &rng.randn((4, c_in, n, n), 0.0, 1.0, &dev)?
                        .to_dtype(dtype)?,
                )?;
                let fused = bna.forward_conv(layer(&ca, &cta), x.as_tensor(), true)?;
                let apart = bnb.forward_t(&layer(&cb, &ctb).forward(x.as_tensor())?, true)?;
                let what = format!("{dtype:?} transposed {t} k{k} s{s} p{p} {act:?}");
                assert_eq!(max_abs_diff(&fused, &apart)?, 0.0, "{what}: values");
                assert_eq!(
                    max_abs_diff(bna.running_mean(), bnb.running_mean())?,
                    0.0,
                    "{what}"
                );
                assert_eq!(
                    max_abs_diff(bna.running_var(), bnb.running_var())?,
                    0.0,
                    "{what}"
                );
                let r = rng
                    .randn(fused.shape().clone(), 0.0, 1.0, &dev)?
                    .to_dtype(dtype)?;
                let ga = (fused * &r)?.sum_all()?.backward()?;
                let gb = (apart * &r)?.sum_all()?.backward()?;
                let (xa, xb) = (ga.get(x.as_tensor()), gb.get(x.as_tensor()));
                assert_eq!(
                    max_abs_diff(xa.unwrap(), xb.unwrap())?,
                    0.0,
                    "{what}: input gradient"
                );
                for (name, va) in vm_a.data().lock().unwrap().iter() {
                    let vb = &vm_b.data().lock().unwrap()[name];
                    let (a, b) = (ga.get(va.as_tensor()), gb.get(vb.as_tensor()));
                    assert_eq!(a.is_some(), b.is_some(), "{what}: {name}");
                    if let (Some(a), Some(b)) = (a, b) {
                        assert_eq!(max_abs_diff(a, b)?, 0.0, "{what}: gradient of {name}");
                    }
                }
            }
        }
    }
    Ok(())
}
