//! The theory of the original GAN as tests (Goodfellow et al. 2014, Proposition 1 and Theorem 1):
//! against a fixed generator distribution p_g, the discriminator maximising
//! V(D) = E_{p_data} log D(x) + E_{p_g} log(1 − D(x)) is D*(x) = p_data(x) / (p_data(x) + p_g(x)),
//! and there V(D*) = −log 4 + 2·JSD(p_data ‖ p_g).
//!
//! Discriminators are trained to near-optimality with our Adam and our cross-entropy loss (whose
//! value is −V), then compared with D* and with −log 4 + 2·JSD computed by the `gan_core::metrics`
//! helpers.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use gan_core::init::pytorch_default_init;
use gan_core::loss::{discriminator_loss, softplus};
use gan_core::metrics::js_divergence;
use gan_core::optim::{Adam, AdamConfig};
use gan_core::rng::SeededRng;
use gan_models::toy::{Activation, Mlp, MlpConfig};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// V(D) for a discrete distribution: Σ p log D + Σ q log(1 − D).
fn value_discrete(p: &[f64], q: &[f64], d: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .zip(d)
        .map(|((p, q), d)| p * d.ln() + q * (1.0 - d).ln())
        .sum()
}

/// Over 6 bins, D is one free logit per bin and V is computed exactly (no sampling), so Adam
/// reaches D* to high precision.
#[test]
fn optimal_discriminator_on_a_discrete_distribution() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let p_data = [0.05, 0.10, 0.30, 0.25, 0.20, 0.10];
    let p_g = [0.30, 0.20, 0.10, 0.05, 0.15, 0.20];
    let theta = Var::from_tensor(&Tensor::zeros(6, DType::F64, &dev)?)?;
    let mut opt = Adam::new(
        vec![("theta".into(), theta.clone())],
        AdamConfig {
            lr: 0.05,
            beta1: 0.9,
            ..AdamConfig::default()
        },
    )?;
    let p = Tensor::new(&p_data, &dev)?;
    let q = Tensor::new(&p_g, &dev)?;
    for _ in 0..3000 {
        // −V = Σ p·softplus(−θ) + Σ q·softplus(θ): the cross-entropy with exact expectations.
        let t = theta.as_tensor();
        let loss = ((&p * softplus(&t.neg()?)?)?.sum_all()? + (&q * softplus(t)?)?.sum_all()?)?;
        opt.backward_step(&loss)?;
    }
    let d: Vec<f64> = theta
        .as_tensor()
        .to_vec1::<f64>()?
        .into_iter()
        .map(sigmoid)
        .collect();
    for i in 0..6 {
        let want = p_data[i] / (p_data[i] + p_g[i]);
        assert!(
            (d[i] - want).abs() < 1e-4,
            "bin {i}: D = {}, D* = {want}",
            d[i]
        );
    }
    // The value at the trained D and the closed form agree.
    let v = value_discrete(&p_data, &p_g, &d);
    let want = -(4f64.ln()) + 2.0 * js_divergence(&p_data, &p_g);
    assert!(
        (v - want).abs() < 1e-7,
        "V(D) = {v}, −log 4 + 2·JSD = {want}"
    );
    // And D* is the maximiser: moving any bin away lowers V.
    for i in 0..6 {
        for delta in [-0.01, 0.01] {
            let mut moved = d.clone();
            moved[i] += delta;
            assert!(value_discrete(&p_data, &p_g, &moved) < v);
        }
    }
    Ok(())
}

/// The identity V(D*) = −log 4 + 2·JSD itself, for D* computed in closed form on a few pairs.
#[test]
fn value_at_optimum_is_minus_log4_plus_2jsd() {
    let pairs: [(&[f64], &[f64]); 3] = [
        (&[0.5, 0.5], &[0.5, 0.5]),
        (&[0.9, 0.1, 0.0], &[0.1, 0.1, 0.8]),
        (&[0.2, 0.3, 0.5], &[0.6, 0.3, 0.1]),
    ];
    for (p, q) in pairs {
        // Bins where only one side has mass give D* = 1 or 0 and contribute 0 (0·log 0).
        let v: f64 = p
            .iter()
            .zip(q)
            .map(|(&p, &q)| {
                let d = p / (p + q);
                let a = if p > 0.0 { p * d.ln() } else { 0.0 };
                let b = if q > 0.0 { q * (1.0 - d).ln() } else { 0.0 };
                a + b
            })
            .sum();
        let want = -(4f64.ln()) + 2.0 * js_divergence(p, q);
        assert!(
            (v - want).abs() < 1e-12,
            "{p:?} vs {q:?}: V(D*) = {v}, want {want}"
        );
    }
    // Identical distributions: the global optimum of the game, value −log 4.
    assert!((js_divergence(&[0.5, 0.5], &[0.5, 0.5])).abs() < 1e-15);
}

fn normal_pdf(x: f64, mean: f64, std: f64) -> f64 {
    let z = (x - mean) / std;
    (-0.5 * z * z).exp() / (std * (2.0 * std::f64::consts::PI).sqrt())
}

/// p_data = N(0, 1) and p_g = N(1, 0.7²) on the line. A small MLP discriminator is trained on
/// samples with the library's cross-entropy loss and Adam; it must approach D* wherever either
/// density has mass, and its value (by quadrature) must approach −log 4 + 2·JSD.
#[test]
fn optimal_discriminator_between_two_gaussians() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m_data, s_data, m_g, s_g) = (0.0, 1.0, 1.0, 0.7);
    let vars = VarMap::new();
    let cfg = MlpConfig {
        width: 32,
        depth: 2,
        activation: Activation::Tanh,
    };
    let d = Mlp::new(&cfg, 1, 1, VarBuilder::from_varmap(&vars, DType::F32, &dev))?;
    pytorch_default_init(&vars, &mut SeededRng::new(7))?;
    let mut opt = Adam::from_varmap(
        &vars,
        AdamConfig {
            lr: 3e-3,
            beta1: 0.9,
            ..AdamConfig::default()
        },
    )?;
    let mut rng = SeededRng::new(11);
    let batch = 512;
    let steps = 1500;
    for step in 0..steps {
        if step == steps * 3 / 5 {
            opt.set_lr(1e-3);
        }
        if step == steps * 4 / 5 {
            opt.set_lr(3e-4);
        }
        let real = rng.randn((batch, 1), m_data, s_data, &dev)?;
        let fake = rng.randn((batch, 1), m_g, s_g, &dev)?;
        let loss = discriminator_loss(&d.forward(&real)?, &d.forward(&fake)?, 1.0)?;
        opt.backward_step(&loss)?;
    }

    // D on a fine grid, against D*.
    let (lo, hi, n) = (-6.0f64, 6.0f64, 2401usize);
    let h = (hi - lo) / (n - 1) as f64;
    let xs: Vec<f64> = (0..n).map(|i| lo + h * i as f64).collect();
    let x_t = Tensor::from_vec(
        xs.iter().map(|&x| x as f32).collect::<Vec<_>>(),
        (n, 1),
        &dev,
    )?;
    let logits = d
        .forward(&x_t)?
        .flatten_all()?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?;
    let dx: Vec<f64> = logits.iter().map(|&l| sigmoid(l)).collect();
    let p: Vec<f64> = xs.iter().map(|&x| normal_pdf(x, m_data, s_data)).collect();
    let q: Vec<f64> = xs.iter().map(|&x| normal_pdf(x, m_g, s_g)).collect();
    let mut worst = 0.0f64;
    for i in 0..n {
        // Where both densities are tiny D is unconstrained; check where either has real mass.
        if p[i].max(q[i]) > 0.05 {
            let opt_d = p[i] / (p[i] + q[i]);
            worst = worst.max((dx[i] - opt_d).abs());
        }
    }
    assert!(
        worst < 0.03,
        "max |D − D*| = {worst} where p_data or p_g > 0.05"
    );

    // V(D) by the trapezoid-free Riemann sum on the grid, against −log 4 + 2·JSD with the JSD of
    // the same discretisation.
    let v: f64 = (0..n)
        .map(|i| h * (p[i] * dx[i].max(1e-300).ln() + q[i] * (1.0 - dx[i]).max(1e-300).ln()))
        .sum();
    let v_star: f64 = (0..n)
        .map(|i| {
            // log D* = log p − log(p + q) and log(1 − D*) = log q − log(p + q), never log 0.
            let lpq = (p[i] + q[i]).ln();
            h * (p[i] * (p[i].ln() - lpq) + q[i] * (q[i].ln() - lpq))
        })
        .sum();
    let jsd = js_divergence(&p, &q);
    let want = -(4f64.ln()) + 2.0 * jsd;
    assert!(
        (v_star - want).abs() < 1e-6,
        "V(D*) = {v_star}, −log 4 + 2·JSD = {want}"
    );
    assert!(
        v <= v_star + 1e-9,
        "a trained D cannot beat D*: {v} > {v_star}"
    );
    assert!(
        (v - want).abs() < 5e-3,
        "V(D) = {v}, −log 4 + 2·JSD = {want} (JSD {jsd})"
    );
    Ok(())
}
