//! Tests for the seeded random source: determinism, exact state round-trips, sample statistics.

use candle_core::{DType, Device};
use gan_core::rng::{RngState, SeededRng};

#[test]
fn same_seed_gives_same_values() {
    let mut a = SeededRng::new(7);
    let mut b = SeededRng::new(7);
    assert_eq!(a.normal_vec(1000, 0.0, 1.0), b.normal_vec(1000, 0.0, 1.0));
    assert_eq!(
        a.uniform_vec(1000, -1.0, 1.0),
        b.uniform_vec(1000, -1.0, 1.0)
    );
    assert_eq!(a.next_u64(), b.next_u64());
    let ta = a.randn((3, 4), 0.5, 2.0, &Device::Cpu).unwrap();
    let tb = b.randn((3, 4), 0.5, 2.0, &Device::Cpu).unwrap();
    assert_eq!(ta.dims(), &[3, 4]);
    assert_eq!(ta.dtype(), DType::F32);
    assert_eq!(ta.to_vec2::<f32>().unwrap(), tb.to_vec2::<f32>().unwrap());
}

#[test]
fn different_seeds_differ() {
    let mut a = SeededRng::new(1);
    let mut b = SeededRng::new(2);
    assert_ne!(a.normal_vec(16, 0.0, 1.0), b.normal_vec(16, 0.0, 1.0));
}

#[test]
fn state_round_trip_through_json_continues_identically() {
    let mut rng = SeededRng::new(123);
    // Leave the generator in the middle of a ChaCha block (odd number of words consumed).
    let _ = rng.normal_vec(37, 0.0, 1.0);
    let _ = rng.uniform_vec(3, 0.0, 1.0);
    let state = rng.state();
    let json = serde_json::to_string(&state).unwrap();
    let back: RngState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
    let mut resumed = SeededRng::from_state(&back);
    assert_eq!(resumed.state(), state);
    for _ in 0..5 {
        assert_eq!(resumed.next_u64(), rng.next_u64());
        assert_eq!(
            resumed.normal_vec(33, 0.0, 1.0),
            rng.normal_vec(33, 0.0, 1.0)
        );
        assert_eq!(
            resumed.uniform_vec(7, -2.0, 3.0),
            rng.uniform_vec(7, -2.0, 3.0)
        );
    }
    let a = rng.randn((5, 5), 0.0, 1.0, &Device::Cpu).unwrap();
    let b = resumed.randn((5, 5), 0.0, 1.0, &Device::Cpu).unwrap();
    assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
}

#[test]
fn large_word_pos_survives_json() {
    let state = RngState {
        seed: 9,
        stream: 3,
        word_pos_hi: 5,
        word_pos_lo: u64::MAX - 12,
    };
    let json = serde_json::to_string(&state).unwrap();
    let back: RngState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
    assert_eq!(back.word_pos(), (5u128 << 64) | u128::from(u64::MAX - 12));
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn normal_samples_have_requested_mean_and_std() {
    // 200k samples: the standard error of the mean is std/√n ≈ 0.0067 for std 3, so a tolerance
    // of 0.03 is more than four standard errors; the std's relative standard error is ≈ 0.0016.
    let mut rng = SeededRng::new(2024);
    let xs: Vec<f64> = rng
        .normal_vec(200_000, 1.5, 3.0)
        .into_iter()
        .map(f64::from)
        .collect();
    let (m, s) = mean_std(&xs);
    assert!((m - 1.5).abs() < 0.03, "mean {m}");
    assert!((s - 3.0).abs() < 0.03, "std {s}");

    let t = rng.randn(200_000, 0.0, 0.02, &Device::Cpu).unwrap();
    let xs: Vec<f64> = t
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    let (m, s) = mean_std(&xs);
    assert!(m.abs() < 2e-4, "mean {m}");
    assert!((s - 0.02).abs() < 2e-4, "std {s}");

    let t = rng
        .randn_dtype(100_000, -1.0, 0.5, DType::F64, &Device::Cpu)
        .unwrap();
    assert_eq!(t.dtype(), DType::F64);
    let (m, s) = mean_std(&t.to_vec1::<f64>().unwrap());
    assert!((m + 1.0).abs() < 0.01, "mean {m}");
    assert!((s - 0.5).abs() < 0.01, "std {s}");
}

#[test]
fn uniform_samples_stay_in_range_with_right_moments() {
    let mut rng = SeededRng::new(5);
    let t = rng.rand(100_000, -1.0, 3.0, &Device::Cpu).unwrap();
    let xs: Vec<f64> = t
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    assert!(xs.iter().all(|&x| (-1.0..3.0).contains(&x)));
    let (m, s) = mean_std(&xs);
    // U(a, b): mean (a+b)/2 = 1, std (b-a)/√12 ≈ 1.1547.
    assert!((m - 1.0).abs() < 0.02, "mean {m}");
    assert!((s - 4.0 / 12f64.sqrt()).abs() < 0.02, "std {s}");
}

#[test]
fn streams_are_independent_and_reproducible() {
    let mut a = SeededRng::with_stream(1, 0);
    let mut b = SeededRng::with_stream(1, 1);
    let mut a2 = SeededRng::new(1);
    let va = a.normal_vec(8, 0.0, 1.0);
    assert_ne!(va, b.normal_vec(8, 0.0, 1.0));
    assert_eq!(va, a2.normal_vec(8, 0.0, 1.0));
    let s = b.state();
    assert_eq!(s.stream, 1);
    assert_eq!(
        SeededRng::from_state(&s).normal_vec(4, 0.0, 1.0),
        b.normal_vec(4, 0.0, 1.0)
    );
}
