//! KID against a float64 reference computed here: the unbiased MMD² of Bińkowski et al. (2018)
//! with the cubic polynomial kernel, written out as its double sums, and the subset average of
//! clean-fid's `kernel_distance` with the same draws.

use gan_core::eval_metrics::{
    kernel_inception_distance, kid_subset_size, mmd2_unbiased_poly, KID_SUBSETS, KID_SUBSET_SIZE,
};
use gan_core::rng::SeededRng;

/// k(a, b) = (aᵀb / d + 1)³ in f64.
fn k(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    (dot / a.len() as f64 + 1.0).powi(3)
}

/// 1/(m(m−1)) Σᵢ≠ⱼ [k(xᵢ, xⱼ) + k(yᵢ, yⱼ)] − 2/m² Σᵢⱼ k(xᵢ, yⱼ), all in f64.
fn mmd2_reference(x: &[f32], y: &[f32], dim: usize) -> f64 {
    let rows = |v: &[f32]| v.chunks_exact(dim).map(<[f32]>::to_vec).collect::<Vec<_>>();
    let (x, y) = (rows(x), rows(y));
    let m = x.len() as f64;
    let (mut same, mut cross) = (0.0, 0.0);
    for i in 0..x.len() {
        for j in 0..x.len() {
            if i != j {
                same += k(&x[i], &x[j]) + k(&y[i], &y[j]);
            }
            cross += k(&x[i], &y[j]);
        }
    }
    same / (m * (m - 1.0)) - 2.0 * cross / (m * m)
}

/// `n × dim` features: ReLU of Gaussians with mean `mu` (like pooled CNN features).
fn features(seed: u64, n: usize, dim: usize, mu: f32) -> Vec<f32> {
    SeededRng::new(seed)
        .normal_vec(n * dim, mu, 1.0)
        .into_iter()
        .map(|v| v.max(0.0))
        .collect()
}

#[test]
fn mmd2_matches_the_f64_double_sums() {
    for (dim, m, shift) in [(16, 40, 0.0), (16, 40, 0.5), (64, 25, 1.0), (3, 2, 0.2)] {
        let x = features(1, m, dim, 0.0);
        let y = features(2, m, dim, shift);
        let got = mmd2_unbiased_poly(&x, &y, dim).unwrap();
        let want = mmd2_reference(&x, &y, dim);
        // The kernel values are O(1) to O(10); the dot products are f32 products.
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "d={dim} m={m} shift={shift}: {got} vs {want}"
        );
        eprintln!("d={dim} m={m} shift={shift}: MMD² {got:.6e}, reference {want:.6e}");
    }
    // The same sample twice: the two diagonal-free means minus the full mean.
    let x = features(3, 10, 8, 0.0);
    let same = mmd2_unbiased_poly(&x, &x, 8).unwrap();
    let want = mmd2_reference(&x, &x, 8);
    assert!((same - want).abs() < 1e-6, "{same} vs {want}");
}

#[test]
fn kid_averages_subsets_like_clean_fid() {
    let dim = 12;
    let real = features(10, 30, dim, 0.0);
    let fake = features(11, 50, dim, 0.3);
    // 12 is below half the smaller set (15), so it is used as asked.
    let (subsets, size, seed) = (7, 12, 5);
    let got = kernel_inception_distance(&real, &fake, dim, subsets, size, seed).unwrap();
    // The same draws: per subset, `size` fake rows then `size` real rows, each by a partial
    // Fisher–Yates shuffle driven by one SeededRng.
    let mut rng = SeededRng::new(seed);
    let mut draw = |n: usize| {
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..size {
            let j = i + (rng.next_u64() % (n - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(size);
        idx
    };
    let gather = |xs: &[f32], idx: &[usize]| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| xs[i * dim..(i + 1) * dim].to_vec())
            .collect()
    };
    let values: Vec<f64> = (0..subsets)
        .map(|_| {
            let f = gather(&fake, &draw(50));
            let r = gather(&real, &draw(30));
            mmd2_reference(&f, &r, dim)
        })
        .collect();
    let mean = values.iter().sum::<f64>() / subsets as f64;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / subsets as f64).sqrt();
    assert_eq!((got.subsets, got.subset_size), (subsets, size));
    assert!((got.mean - mean).abs() < 1e-6, "{got:?} vs mean {mean}");
    assert!((got.std - std).abs() < 1e-6, "{got:?} vs std {std}");
    assert!(got.std > 0.0);
}

#[test]
fn subsets_are_at_most_half_the_smaller_set() {
    // clean-fid's min(n, 1000) would take whole sets below 2,000 samples; here half.
    assert_eq!(kid_subset_size(KID_SUBSET_SIZE, 1000, 1000), 500);
    assert_eq!(kid_subset_size(KID_SUBSET_SIZE, 10_000, 1500), 750);
    assert_eq!(kid_subset_size(KID_SUBSET_SIZE, 2000, 5000), 1000);
    assert_eq!(kid_subset_size(KID_SUBSET_SIZE, 50_000, 50_000), 1000);
    assert_eq!(kid_subset_size(20, 1000, 1000), 20);
    // The least the unbiased estimate takes.
    assert_eq!(kid_subset_size(KID_SUBSET_SIZE, 5, 3), 2);
    assert_eq!(kid_subset_size(KID_SUBSET_SIZE, 2, 2), 2);
}

#[test]
fn kid_of_1000_samples_has_a_spread_and_stays_unbiased() {
    let (n, dim) = (1000, 16);
    let real = features(20, n, dim, 0.0);
    let fake = features(21, n, dim, 0.0);
    let same =
        kernel_inception_distance(&real, &fake, dim, KID_SUBSETS, KID_SUBSET_SIZE, 0).unwrap();
    eprintln!("same distribution: {same:?}");
    // Subsets of half the set differ: a real spread, not the 0 of whole-set subsets.
    assert_eq!((same.subsets, same.subset_size), (KID_SUBSETS, 500));
    assert!(same.std > 0.0, "{same:?}");
    // Unbiased: identical distributions give a mean near 0, of either sign, within the spread
    // (the subset mean's own spread is about that of a 1,000-sample estimate, std/√2).
    assert!(same.mean.abs() < 3.0 * same.std, "{same:?}");
    // ... and near the full-set estimate.
    let full = mmd2_unbiased_poly(&fake, &real, dim).unwrap();
    assert!(
        (same.mean - full).abs() < 3.0 * same.std,
        "{same:?} vs {full}"
    );
    // A shift stands far outside that spread.
    let shifted = features(22, n, dim, 0.3);
    let far =
        kernel_inception_distance(&real, &shifted, dim, KID_SUBSETS, KID_SUBSET_SIZE, 0).unwrap();
    eprintln!("shifted by 0.3: {far:?}");
    assert!(
        far.mean > 10.0 * same.std.max(far.std),
        "{far:?} vs {same:?}"
    );
    // Averaged over many independent pairs of small sets, the estimate of identical
    // distributions is centred on 0 (the biased V-statistic would sit above it).
    let trials: u64 = 200;
    let mean_of_trials = (0..trials)
        .map(|t| {
            let x = features(1000 + 2 * t, 20, 4, 0.0);
            let y = features(1001 + 2 * t, 20, 4, 0.0);
            kernel_inception_distance(&x, &y, 4, 10, KID_SUBSET_SIZE, t).unwrap()
        })
        .map(|k| k.mean)
        .sum::<f64>()
        / trials as f64;
    let one = kernel_inception_distance(
        &features(7, 20, 4, 0.0),
        &features(8, 20, 4, 0.0),
        4,
        10,
        KID_SUBSET_SIZE,
        0,
    )
    .unwrap();
    eprintln!("mean over {trials} pairs of 20: {mean_of_trials:e}; one pair: {one:?}");
    assert!(
        mean_of_trials.abs() < 0.5 * one.std.max(one.mean.abs()),
        "{mean_of_trials} vs {one:?}"
    );
}

#[test]
fn kid_of_two_samples_is_the_whole_set_estimate() {
    let dim = 10;
    let real = features(30, 2, dim, 0.0);
    let fake = features(31, 3, dim, 0.0);
    let k = kernel_inception_distance(&real, &fake, dim, 3, 1000, 0).unwrap();
    assert_eq!(k.subset_size, 2);
    // The two real rows every time; the fake pair varies.
    assert!(k.mean.is_finite() && k.std >= 0.0, "{k:?}");
    let both = kernel_inception_distance(&real, &real, dim, 3, 1000, 0).unwrap();
    let want = mmd2_unbiased_poly(&real, &real, dim).unwrap();
    assert!(
        (both.mean - want).abs() < 1e-6 && both.std < 1e-6,
        "{both:?} vs {want}"
    );
}

#[test]
fn kid_refuses_what_it_cannot_compute() {
    let x = features(1, 5, 4, 0.0);
    let err = kernel_inception_distance(&x[..4], &x, 4, 10, 100, 0).unwrap_err();
    assert!(err.to_string().contains("need at least 2"), "{err}");
    assert!(kernel_inception_distance(&x, &x, 4, 0, 100, 0).is_err());
    assert!(kernel_inception_distance(&x, &x, 4, 10, 1, 0).is_err());
    assert!(mmd2_unbiased_poly(&x[..8], &x, 4).is_err());
    // Two samples per set is the least the unbiased estimate takes.
    assert!(kernel_inception_distance(&x[..8], &x, 4, 2, 100, 0).is_ok());
}
