//! Tests for the GAN losses: hand-computed values, stability at extreme logits, and the
//! vanishing-gradient argument for the non-saturating generator loss, checked through backward.

use candle_core::{DType, Device, Tensor, Var};
use gan_core::loss::*;

const TOL: f64 = 1e-6;

fn t64(v: &[f64]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Float64 reference: −t·log σ(x) − (1−t)·log(1−σ(x)), fine for moderate x.
fn bce_ref(x: f64, t: f64) -> f64 {
    let s = sigmoid(x);
    -t * s.ln() - (1.0 - t) * (1.0 - s).ln()
}

fn assert_close(got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "got {got}, want {want}"
    );
}

#[test]
fn bce_matches_reference() {
    let xs = [-3.0, -0.5, 0.0, 0.25, 2.0, 7.0];
    for &t in &[0.0, 0.9, 1.0] {
        let want = xs.iter().map(|&x| bce_ref(x, t)).sum::<f64>() / xs.len() as f64;
        assert_close(scalar(&bce_with_logits(&t64(&xs), t).unwrap()), want, TOL);
    }
    // f32 input keeps its dtype and value.
    let x32 = t64(&xs).to_dtype(DType::F32).unwrap();
    let l = bce_with_logits(&x32, 1.0).unwrap();
    assert_eq!(l.dtype(), DType::F32);
    assert_eq!(l.rank(), 0);
    let want = xs.iter().map(|&x| bce_ref(x, 1.0)).sum::<f64>() / xs.len() as f64;
    assert_close(scalar(&l), want, 1e-6);
}

#[test]
fn half_everywhere_gives_log4_and_log2() {
    let zeros = Tensor::zeros((4, 1), DType::F32, &Device::Cpu).unwrap();
    let d = scalar(&discriminator_loss(&zeros, &zeros, 1.0).unwrap());
    assert_close(d, 4f64.ln(), 1e-6);
    let g = scalar(&generator_loss(&zeros, GeneratorLoss::NonSaturating).unwrap());
    assert_close(g, 2f64.ln(), 1e-6);
    let g = scalar(&generator_loss(&zeros, GeneratorLoss::Minimax).unwrap());
    assert_close(g, -(2f64.ln()), 1e-6);
}

#[test]
fn discriminator_loss_hand_values_with_label_smoothing() {
    let real = [2.0, -1.0];
    let fake = [-2.0, 0.5, 1.0];
    for &label in &[1.0, 0.9] {
        let want = real.iter().map(|&x| bce_ref(x, label)).sum::<f64>() / 2.0
            + fake.iter().map(|&x| bce_ref(x, 0.0)).sum::<f64>() / 3.0;
        let got = scalar(&discriminator_loss(&t64(&real), &t64(&fake), label).unwrap());
        assert_close(got, want, TOL);
    }
}

#[test]
fn generator_losses_hand_values() {
    let fake = [-2.0, 0.5, 3.0];
    let ns = fake.iter().map(|&x| -sigmoid(x).ln()).sum::<f64>() / 3.0;
    let mm = fake.iter().map(|&x| (1.0 - sigmoid(x)).ln()).sum::<f64>() / 3.0;
    assert_close(
        scalar(&generator_loss(&t64(&fake), GeneratorLoss::NonSaturating).unwrap()),
        ns,
        TOL,
    );
    assert_close(
        scalar(&generator_loss(&t64(&fake), GeneratorLoss::Minimax).unwrap()),
        mm,
        TOL,
    );
}

#[test]
fn extreme_logits_give_finite_values_and_gradients() {
    let x = Var::new(&[1e4f32, -1e4, 0.0, 88.0, -104.0], &Device::Cpu).unwrap();
    let losses = [
        bce_with_logits(x.as_tensor(), 1.0).unwrap(),
        bce_with_logits(x.as_tensor(), 0.0).unwrap(),
        discriminator_loss(x.as_tensor(), x.as_tensor(), 0.9).unwrap(),
        generator_loss(x.as_tensor(), GeneratorLoss::NonSaturating).unwrap(),
        generator_loss(x.as_tensor(), GeneratorLoss::Minimax).unwrap(),
    ];
    for loss in &losses {
        assert!(scalar(loss).is_finite(), "loss {loss}");
        let grads = loss.backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "grad {g:?}");
    }
    // BCE(1e4, 1) = 0, BCE(−1e4, 1) = 1e4 exactly in the stable form.
    let x = t64(&[1e4]);
    assert_eq!(scalar(&bce_with_logits(&x, 1.0).unwrap()), 0.0);
    assert_eq!(scalar(&bce_with_logits(&x, 0.0).unwrap()), 1e4);
    let s = sigmoid_mean(&t64(&[1e4, -1e4])).unwrap();
    assert!((s - 0.5).abs() < 1e-7);
}

#[test]
fn bce_gradient_is_sigmoid_minus_target() {
    // d/dx mean(BCE) = (σ(x) − t)/n, including at x = 0 where |x| has a kink.
    let xs = [-3.0, 0.0, 1.5, 40.0];
    let x = Var::new(&xs, &Device::Cpu).unwrap();
    let loss = bce_with_logits(x.as_tensor(), 0.9).unwrap();
    let g = loss.backward().unwrap();
    let g = g.get(x.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
    for (gi, &xi) in g.iter().zip(&xs) {
        assert_close(*gi, (sigmoid(xi) - 0.9) / 4.0, 1e-12);
    }
}

#[test]
fn non_saturating_gradient_is_99x_larger_when_d_rejects_fakes() {
    // D(G(z)) = 0.01, i.e. logit ln(0.01/0.99).
    let logit = (0.01f64 / 0.99).ln();
    let grad_of = |kind| {
        let x = Var::new(&[logit], &Device::Cpu).unwrap();
        let loss = generator_loss(x.as_tensor(), kind).unwrap();
        let g = loss.backward().unwrap();
        g.get(x.as_tensor()).unwrap().to_vec1::<f64>().unwrap()[0]
    };
    let mm = grad_of(GeneratorLoss::Minimax);
    let ns = grad_of(GeneratorLoss::NonSaturating);
    assert_close(mm, -0.01, 1e-12);
    assert_close(ns, -0.99, 1e-12);
    assert_close(ns / mm, 99.0, 1e-9);
}

#[test]
fn lsgan_hand_values() {
    let real = t64(&[1.0, 0.0, 2.0]);
    let fake = t64(&[0.5, -1.0]);
    // real: (0 + 1 + 1)/3 = 2/3; fake: (0.25 + 1)/2 = 0.625; D = ½(2/3 + 0.625).
    assert_close(
        scalar(&lsgan_discriminator_loss(&real, &fake).unwrap()),
        0.5 * (2.0 / 3.0 + 0.625),
        TOL,
    );
    // G: ((0.5−1)² + (−1−1)²)/2 = (0.25 + 4)/2.
    assert_close(scalar(&lsgan_generator_loss(&fake).unwrap()), 2.125, TOL);
}

#[test]
fn hinge_hand_values() {
    let real = t64(&[2.0, 0.5, -1.0]);
    let fake = t64(&[-3.0, 0.0]);
    // real: relu(1−2)=0, relu(0.5)=0.5, relu(2)=2 → 2.5/3; fake: relu(−2)=0, relu(1)=1 → 0.5.
    assert_close(
        scalar(&hinge_discriminator_loss(&real, &fake).unwrap()),
        2.5 / 3.0 + 0.5,
        TOL,
    );
    assert_close(scalar(&hinge_generator_loss(&fake).unwrap()), 1.5, TOL);
}

#[test]
fn wasserstein_hand_values() {
    let real = t64(&[1.0, 3.0]);
    let fake = t64(&[-1.0, 0.0, 4.0]);
    assert_close(
        scalar(&wasserstein_critic_loss(&real, &fake).unwrap()),
        1.0 - 2.0,
        TOL,
    );
    assert_close(
        scalar(&wasserstein_generator_loss(&fake).unwrap()),
        -1.0,
        TOL,
    );
}

#[test]
fn sigmoid_mean_hand_value() {
    let x = Tensor::new(&[0.0f32, 2.0, -2.0], &Device::Cpu).unwrap();
    // σ(2) + σ(−2) = 1, so the mean is (0.5 + 1)/3 = 0.5.
    assert!((sigmoid_mean(&x).unwrap() - 0.5).abs() < 1e-7);
    let x = Tensor::new(&[3.0f32], &Device::Cpu).unwrap();
    assert!((f64::from(sigmoid_mean(&x).unwrap()) - sigmoid(3.0)).abs() < 1e-7);
}

#[test]
fn generator_loss_serde_names() {
    assert_eq!(
        serde_json::to_string(&GeneratorLoss::NonSaturating).unwrap(),
        "\"non-saturating\""
    );
    assert_eq!(
        serde_json::from_str::<GeneratorLoss>("\"minimax\"").unwrap(),
        GeneratorLoss::Minimax
    );
    assert_eq!(GeneratorLoss::default(), GeneratorLoss::NonSaturating);
}
