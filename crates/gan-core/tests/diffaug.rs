//! DiffAugment: shapes kept; with a shared draw, identical images come out identical; the same
//! seed gives the same result; each transformation by hand; gradients against finite
//! differences; bad policies named.

use candle_core::{DType, Device, Tensor, Var};
use gan_core::diffaug::{Augment, DiffAugment};
use gan_core::rng::SeededRng;

fn images(b: usize, c: usize, seed: u64) -> Tensor {
    SeededRng::new(seed)
        .randn_dtype((b, c, 12, 10), 0.0, 0.5, DType::F64, &Device::Cpu)
        .unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn shapes_seeds_and_shared_draws() {
    let aug = DiffAugment::parse("color,translation,cutout").unwrap();
    assert_eq!(aug.to_string(), "color,translation,cutout");
    let one = images(1, 3, 1);
    let batch = one.repeat((5, 1, 1, 1)).unwrap();
    let shared = aug.apply(&batch, &mut SeededRng::new(4), true).unwrap();
    assert_eq!(shared.dims(), &[5, 3, 12, 10]);
    let first = flat(&shared.get(0).unwrap());
    for i in 1..5 {
        assert_eq!(flat(&shared.get(i).unwrap()), first, "image {i} differs");
    }
    assert_ne!(first, flat(&one), "the augmentation changed nothing");
    // Per-image draws: the copies come out different; the same seed repeats them.
    let a = aug.apply(&batch, &mut SeededRng::new(4), false).unwrap();
    let b = aug.apply(&batch, &mut SeededRng::new(4), false).unwrap();
    assert_eq!(flat(&a), flat(&b));
    assert_ne!(flat(&a.get(0).unwrap()), flat(&a.get(1).unwrap()));
}

/// Translation moves pixels by whole steps within ±⌊side/8 + ½⌋ and fills with 0; cutout zeroes
/// one square of ⌊side/2 + ½⌋ (clipped); color on a constant image keeps it constant.
#[test]
fn each_transformation_by_hand() {
    let dev = Device::Cpu;
    let xs = Tensor::arange(1.0f64, 121.0, &dev)
        .unwrap()
        .reshape((1, 1, 12, 10))
        .unwrap()
        .repeat((8, 1, 1, 1))
        .unwrap();
    let t = DiffAugment {
        ops: vec![Augment::Translation],
    };
    let out = t.apply(&xs, &mut SeededRng::new(2), false).unwrap();
    for i in 0..8 {
        let img = flat(&out.get(i).unwrap());
        // Find the shift from a pixel that stayed inside, then check every pixel.
        let (dy, dx) = (-2i64..=2)
            .flat_map(|dy| (-1i64..=1).map(move |dx| (dy, dx)))
            .find(|&(dy, dx)| {
                (0..12i64).all(|y| {
                    (0..10i64).all(|x| {
                        let (sy, sx) = (y + dy, x + dx);
                        let want = if (0..12).contains(&sy) && (0..10).contains(&sx) {
                            (sy * 10 + sx + 1) as f64
                        } else {
                            0.0
                        };
                        img[(y * 10 + x) as usize] == want
                    })
                })
            })
            .unwrap_or_else(|| panic!("image {i} is no translation within ±2, ±1: {img:?}"));
        assert!(dy.abs() <= 2 && dx.abs() <= 1);
    }
    let c = DiffAugment {
        ops: vec![Augment::Cutout],
    };
    let out = c.apply(&xs, &mut SeededRng::new(3), false).unwrap();
    for i in 0..8 {
        let img = flat(&out.get(i).unwrap());
        let zeros: Vec<(usize, usize)> = (0..120)
            .filter(|&k| img[k] == 0.0)
            .map(|k| (k / 10, k % 10))
            .collect();
        let (y0, y1) = (
            zeros.iter().map(|p| p.0).min().unwrap(),
            zeros.iter().map(|p| p.0).max().unwrap(),
        );
        let (x0, x1) = (
            zeros.iter().map(|p| p.1).min().unwrap(),
            zeros.iter().map(|p| p.1).max().unwrap(),
        );
        assert_eq!(
            zeros.len(),
            (y1 - y0 + 1) * (x1 - x0 + 1),
            "image {i}: not a rectangle"
        );
        assert!(y1 - y0 < 6 && x1 - x0 < 5, "image {i}: box too large");
        for (k, v) in img.iter().enumerate() {
            assert!(*v == 0.0 || *v == (k + 1) as f64);
        }
    }
    let col = DiffAugment {
        ops: vec![Augment::Color],
    };
    let constant = Tensor::full(0.25f64, (4, 3, 12, 10), &dev).unwrap();
    let out = col.apply(&constant, &mut SeededRng::new(5), false).unwrap();
    for i in 0..4 {
        let img = flat(&out.get(i).unwrap());
        assert!(img.iter().all(|v| (v - img[0]).abs() < 1e-12));
        assert!(
            (img[0] - 0.25).abs() <= 0.5 + 1e-12,
            "brightness within ±0.5"
        );
    }
}

/// The gradient of ⟨a, DiffAugment(x)⟩ with respect to x against central differences (f64),
/// with a fixed seed so that every evaluation draws the same transformation.
#[test]
fn gradients_pass_through() {
    let aug = DiffAugment::parse("color,translation,cutout").unwrap();
    let x = Var::from_tensor(&images(2, 3, 7)).unwrap();
    let a = images(2, 3, 8);
    let f = |xs: &Tensor| {
        let ys = aug.apply(xs, &mut SeededRng::new(9), false).unwrap();
        (ys * &a).unwrap().sum_all().unwrap()
    };
    let g = flat(
        &f(x.as_tensor())
            .backward()
            .unwrap()
            .get(x.as_tensor())
            .unwrap()
            .clone(),
    );
    let x0 = flat(x.as_tensor());
    let h = 1e-6;
    let (mut num, mut den) = (0.0, 0.0);
    for i in (0..x0.len()).step_by(7) {
        let eval = |d: f64| {
            let mut v = x0.clone();
            v[i] += d;
            let t = Tensor::from_vec(v, x.shape(), &Device::Cpu).unwrap();
            f(&t).to_scalar::<f64>().unwrap()
        };
        let fd = (eval(h) - eval(-h)) / (2.0 * h);
        num += (g[i] - fd).powi(2);
        den += fd * fd;
    }
    let err = num.sqrt() / den.sqrt();
    assert!(den > 0.0 && err < 1e-6, "relative error {err:.3e}");
}

#[test]
fn bad_policies_are_named() {
    let err = DiffAugment::parse("color,blur").unwrap_err().to_string();
    assert!(err.contains("\"blur\""), "{err}");
    assert!(DiffAugment::parse("").is_err());
    assert!(DiffAugment::parse("color,color").is_err());
}
