//! The evaluation metrics against references: closed forms, hand-computed cases, and an
//! independent matrix square root of the non-symmetric product Σ₁Σ₂ (Denman–Beavers, the
//! quantity pytorch-fid takes `scipy.linalg.sqrtm` of).

use gan_core::eval_metrics::{
    class_coverage, density_coverage_given, frechet_distance, inception_score, knn_sq_radii,
    matmul, prdc_given, precision_recall, sqrtm_psd, sym_eigen, trace_sqrt_product, Gaussian,
};
use gan_core::rng::SeededRng;

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{what}: got {got}, want {want} (tolerance {tol})"
    );
}

fn random_matrix(rng: &mut SeededRng, n: usize) -> Vec<f64> {
    rng.normal_vec_f64(n * n, 0.0, 1.0)
}

/// B Bᵀ / n: symmetric positive semi-definite (definite for square B, almost surely).
fn random_psd(rng: &mut SeededRng, n: usize, rank: usize) -> Vec<f64> {
    let b = rng.normal_vec_f64(n * rank, 0.0, 1.0);
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..rank)
                .map(|k| b[i * rank + k] * b[j * rank + k])
                .sum::<f64>()
                / rank as f64;
        }
    }
    out
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn eigen_of_known_matrices() {
    let (vals, vecs) = sym_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
    close(vals[0], 1.0, 1e-14, "λ₀");
    close(vals[1], 3.0, 1e-14, "λ₁");
    // The eigenvector of 3 is (1, 1)/√2 up to sign.
    close(vecs[1].abs(), 0.5f64.sqrt(), 1e-14, "v₁[0]");
    close(vecs[3].abs(), 0.5f64.sqrt(), 1e-14, "v₁[1]");
    let (vals, _) = sym_eigen(&[5.0], 1);
    assert_eq!(vals, vec![5.0]);
    // Diagonal, repeated and zero eigenvalues.
    let d = [3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0];
    let (vals, _) = sym_eigen(&d, 3);
    assert_eq!(vals, vec![0.0, 3.0, 3.0]);
    let (vals, _) = sym_eigen(&[0.0; 16], 4);
    assert!(vals.iter().all(|&v| v == 0.0));
}

#[test]
fn eigen_reconstructs_random_symmetric_matrices() {
    let mut rng = SeededRng::new(1);
    for n in [3, 17, 64] {
        let b = random_matrix(&mut rng, n);
        let a: Vec<f64> = (0..n * n).map(|k| b[k] + b[(k % n) * n + k / n]).collect();
        let (vals, v) = sym_eigen(&a, n);
        assert!(vals.windows(2).all(|w| w[0] <= w[1]), "not sorted");
        // V diag(λ) Vᵀ = A and Vᵀ V = I.
        let mut rec = vec![0.0; n * n];
        let mut gram = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                rec[i * n + j] = (0..n).map(|k| v[i * n + k] * vals[k] * v[j * n + k]).sum();
                gram[i * n + j] = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
            }
        }
        let scale = a.iter().map(|x| x.abs()).fold(0.0, f64::max);
        assert!(
            max_abs_diff(&rec, &a) < 1e-12 * scale * n as f64,
            "n={n}: V Λ Vᵀ ≠ A"
        );
        let eye: Vec<f64> = (0..n * n)
            .map(|k| if k % (n + 1) == 0 { 1.0 } else { 0.0 })
            .collect();
        assert!(
            max_abs_diff(&gram, &eye) < 1e-12 * n as f64,
            "n={n}: Vᵀ V ≠ I"
        );
        // The trace is the sum of the eigenvalues.
        let tr: f64 = (0..n).map(|i| a[i * n + i]).sum();
        close(vals.iter().sum(), tr, 1e-10, "trace");
    }
}

#[test]
fn sqrtm_squares_back() {
    let mut rng = SeededRng::new(2);
    for (n, rank) in [(5, 5), (40, 40), (30, 10)] {
        let a = random_psd(&mut rng, n, rank);
        let r = sqrtm_psd(&a, n);
        let sq = matmul(&r, &r, n);
        assert!(
            max_abs_diff(&sq, &a) < 1e-10,
            "n={n} rank={rank}: sqrtm(A)² ≠ A"
        );
        // The root is symmetric positive semi-definite.
        let rt: Vec<f64> = (0..n * n).map(|k| r[(k % n) * n + k / n]).collect();
        assert_eq!(max_abs_diff(&r, &rt), 0.0, "n={n}: root not symmetric");
        let (vals, _) = sym_eigen(&r, n);
        assert!(vals[0] > -1e-7, "n={n}: negative eigenvalue {}", vals[0]);
    }
    let d = sqrtm_psd(&[4.0, 0.0, 0.0, 9.0], 2);
    assert!(max_abs_diff(&d, &[2.0, 0.0, 0.0, 3.0]) < 1e-14);
}

#[test]
fn frechet_one_dimensional_and_diagonal_closed_forms() {
    // 1-D: (μ₁ − μ₂)² + (σ₁ − σ₂)².
    let a = Gaussian::new(vec![0.5], vec![9.0]).unwrap();
    let b = Gaussian::new(vec![2.5], vec![0.25]).unwrap();
    close(
        frechet_distance(&a, &b).unwrap(),
        4.0 + 2.5f64.powi(2),
        1e-13,
        "1-D",
    );
    // Commuting (diagonal) covariances: ‖Δμ‖² + Σ (√aᵢ − √bᵢ)².
    let da = [1.0, 4.0, 0.0, 2.0];
    let db = [9.0, 1.0, 3.0, 2.0];
    let diag = |d: &[f64]| {
        let mut m = vec![0.0; 16];
        for i in 0..4 {
            m[i * 5] = d[i];
        }
        m
    };
    let a = Gaussian::new(vec![1.0, 0.0, 0.0, -1.0], diag(&da)).unwrap();
    let b = Gaussian::new(vec![0.0, 0.0, 2.0, -1.0], diag(&db)).unwrap();
    let want = 1.0
        + 4.0
        + da.iter()
            .zip(&db)
            .map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2))
            .sum::<f64>();
    close(frechet_distance(&a, &b).unwrap(), want, 1e-13, "diagonal");
    // Against itself: 0.
    close(frechet_distance(&a, &a).unwrap(), 0.0, 1e-12, "identical");
}

#[test]
fn frechet_two_by_two_non_commuting_closed_form() {
    // For 2 × 2 matrices with real non-negative eigenvalues, tr √M = √(tr M + 2 √det M).
    let mut rng = SeededRng::new(3);
    for _ in 0..20 {
        let s1 = random_psd(&mut rng, 2, 2);
        let s2 = random_psd(&mut rng, 2, 2);
        let p = matmul(&s1, &s2, 2);
        let det = |m: &[f64]| m[0] * m[3] - m[1] * m[2];
        let want = (p[0] + p[3] + 2.0 * (det(&s1) * det(&s2)).sqrt()).sqrt();
        close(trace_sqrt_product(&s1, &s2, 2), want, 1e-12, "tr √(Σ₁Σ₂)");
    }
}

/// Inverse by Gauss–Jordan elimination with partial pivoting.
fn inverse(a: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv: Vec<f64> = (0..n * n)
        .map(|k| if k % (n + 1) == 0 { 1.0 } else { 0.0 })
        .collect();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&x, &y| m[x * n + c].abs().total_cmp(&m[y * n + c].abs()))
            .unwrap();
        for j in 0..n {
            m.swap(c * n + j, p * n + j);
            inv.swap(c * n + j, p * n + j);
        }
        let d = m[c * n + c];
        for j in 0..n {
            m[c * n + j] /= d;
            inv[c * n + j] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = m[r * n + c];
                for j in 0..n {
                    m[r * n + j] -= f * m[c * n + j];
                    inv[r * n + j] -= f * inv[c * n + j];
                }
            }
        }
    }
    inv
}

/// √A of a (non-symmetric) matrix with positive real eigenvalues by the Denman–Beavers iteration.
fn sqrtm_denman_beavers(a: &[f64], n: usize) -> Vec<f64> {
    let mut y = a.to_vec();
    let mut z: Vec<f64> = (0..n * n)
        .map(|k| if k % (n + 1) == 0 { 1.0 } else { 0.0 })
        .collect();
    for _ in 0..100 {
        let (yi, zi) = (inverse(&y, n), inverse(&z, n));
        let ny: Vec<f64> = y.iter().zip(&zi).map(|(a, b)| 0.5 * (a + b)).collect();
        let nz: Vec<f64> = z.iter().zip(&yi).map(|(a, b)| 0.5 * (a + b)).collect();
        let done = max_abs_diff(&ny, &y) < 1e-15;
        (y, z) = (ny, nz);
        if done {
            break;
        }
    }
    y
}

#[test]
fn frechet_matches_sqrtm_of_the_product() {
    // pytorch-fid: diff·diff + tr Σ₁ + tr Σ₂ − 2 tr sqrtm(Σ₁Σ₂).
    let mut rng = SeededRng::new(4);
    for n in [3, 8, 12] {
        let s1 = random_psd(&mut rng, n, n + 2);
        let s2 = random_psd(&mut rng, n, n + 2);
        let m1 = rng.normal_vec_f64(n, 0.0, 1.0);
        let m2 = rng.normal_vec_f64(n, 0.0, 1.0);
        let root = sqrtm_denman_beavers(&matmul(&s1, &s2, n), n);
        let tr = |m: &[f64]| (0..n).map(|i| m[i * n + i]).sum::<f64>();
        let diff: f64 = m1.iter().zip(&m2).map(|(a, b)| (a - b).powi(2)).sum();
        let want = diff + tr(&s1) + tr(&s2) - 2.0 * tr(&root);
        let got = frechet_distance(
            &Gaussian::new(m1, s1).unwrap(),
            &Gaussian::new(m2, s2).unwrap(),
        )
        .unwrap();
        close(got, want, 1e-10, &format!("FD n={n}"));
    }
}

#[test]
fn gaussian_fit_hand_computed() {
    // Points (0,0), (2,0), (1,3): mean (1,1); unbiased covariance [[1, 0], [0, 3]].
    let g = Gaussian::fit(&[0.0, 0.0, 2.0, 0.0, 1.0, 3.0], 2).unwrap();
    assert_eq!(g.count, 3);
    assert!(max_abs_diff(&g.mean, &[1.0, 1.0]) < 1e-12);
    assert!(max_abs_diff(&g.cov, &[1.0, 0.0, 0.0, 3.0]) < 1e-12);
    // Errors name the problem.
    let e = Gaussian::fit(&[1.0, 2.0], 2).unwrap_err().to_string();
    assert!(e.contains("1 samples, need at least 2"), "{e}");
    let e = Gaussian::fit(&[1.0, 2.0, 3.0], 2).unwrap_err().to_string();
    assert!(e.contains("do not make rows of 2"), "{e}");
    let e = Gaussian::fit(&[1.0, f32::NAN, 3.0, 4.0], 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
    // A set against itself is at distance 0; a shifted copy at ‖shift‖².
    let mut rng = SeededRng::new(5);
    let xs = rng.normal_vec(500 * 6, 0.0, 1.0);
    let a = Gaussian::fit(&xs, 6).unwrap();
    close(frechet_distance(&a, &a).unwrap(), 0.0, 1e-9, "self");
    let shifted: Vec<f32> = xs.iter().map(|v| v + 0.5).collect();
    let b = Gaussian::fit(&shifted, 6).unwrap();
    close(frechet_distance(&a, &b).unwrap(), 6.0 * 0.25, 1e-5, "shift");
}

#[test]
fn inception_score_hand_computed() {
    // Confident and evenly spread over 10 classes: 10.
    let mut probs = vec![0f32; 100 * 10];
    for i in 0..100 {
        probs[i * 10 + i % 10] = 1.0;
    }
    let s = inception_score(&probs, 10, 1).unwrap();
    close(s.mean, 10.0, 1e-12, "even");
    // Everything in one class, or uniform predictions: 1.
    let mut one = vec![0f32; 50 * 10];
    for i in 0..50 {
        one[i * 10 + 3] = 1.0;
    }
    close(
        inception_score(&one, 10, 5).unwrap().mean,
        1.0,
        1e-12,
        "one class",
    );
    let flat = vec![0.1f32; 20 * 10];
    close(
        inception_score(&flat, 10, 2).unwrap().mean,
        1.0,
        1e-6,
        "uniform",
    );
    // Two samples: p(y) = (0.75, 0.25).
    let p = [1.0f32, 0.0, 0.5, 0.5];
    let kl1 = (1.0f64 / 0.75).ln();
    let kl2 = 0.5 * (0.5f64 / 0.75).ln() + 0.5 * (0.5f64 / 0.25).ln();
    close(
        inception_score(&p, 2, 1).unwrap().mean,
        ((kl1 + kl2) / 2.0).exp(),
        1e-7,
        "two samples",
    );
    // Splits: two halves, one even and one collapsed: mean (2 + 1)/2, std 0.5.
    let p = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
    let s = inception_score(&p, 2, 2).unwrap();
    close(s.mean, 1.5, 1e-12, "split mean");
    close(s.std, 0.5, 1e-12, "split std");
}

#[test]
fn class_coverage_hand_computed() {
    // 200 samples over 10 classes: a class needs 2 to be covered.
    let mut probs = vec![0f32; 200 * 10];
    let mut labels = Vec::new();
    for i in 0..200 {
        let c = if i < 150 {
            0
        } else if i < 199 {
            1 + i % 3
        } else {
            9
        };
        labels.push(c);
        probs[i * 10 + c] = 0.9;
        probs[i * 10 + (c + 1) % 10] = 0.1;
    }
    let cov = class_coverage(&probs, 10).unwrap();
    let mut want = vec![0usize; 10];
    for &c in &labels {
        want[c] += 1;
    }
    assert_eq!(cov.histogram, want);
    assert_eq!(cov.min_count, 2);
    assert_eq!(cov.covered, 4, "class 9 has a single sample");
    let p: Vec<f64> = want.iter().map(|&c| c as f64 / 200.0).collect();
    let kl: f64 = p
        .iter()
        .filter(|&&x| x > 0.0)
        .map(|x| x * (x * 10.0).ln())
        .sum();
    close(cov.kl_uniform, kl, 1e-12, "KL vs uniform");
}

#[test]
fn precision_recall_hand_computed() {
    // 1-D, k = 1. Real 0..4: every radius 1. Fake 0, 0.4, 20, 21: radii 0.4, 0.4, 1, 1.
    let real = [0.0f32, 1.0, 2.0, 3.0, 4.0];
    let fake = [0.0f32, 0.4, 20.0, 21.0];
    let r = knn_sq_radii(&fake, 1, 1).unwrap();
    for (got, want) in r.iter().zip([0.16f32, 0.16, 1.0, 1.0]) {
        assert!((got - want).abs() < 1e-5, "{r:?}");
    }
    let pr = precision_recall(&real, &fake, 1, 1).unwrap();
    close(pr.precision, 0.5, 1e-12, "precision");
    close(pr.recall, 0.2, 1e-12, "recall");
    // A set against itself: both 1. k must leave neighbours.
    let mut rng = SeededRng::new(6);
    let xs = rng.normal_vec(300 * 4, 0.0, 1.0);
    let pr = precision_recall(&xs, &xs, 4, 3).unwrap();
    assert_eq!((pr.precision, pr.recall), (1.0, 1.0));
    let e = precision_recall(&xs[..12], &xs, 4, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("3 samples, need at least 4"), "{e}");
}

#[test]
fn precision_recall_sees_collapse() {
    // Fakes on one small cluster of the real data: high precision, low recall.
    let mut rng = SeededRng::new(7);
    let real = rng.normal_vec(1000 * 2, 0.0, 1.0);
    let fake: Vec<f32> = rng.normal_vec(1000 * 2, 0.0, 0.02);
    let pr = precision_recall(&real, &fake, 2, 3).unwrap();
    assert!(pr.precision > 0.85, "{pr:?}");
    assert!(pr.recall < 0.05, "{pr:?}");
}

#[test]
fn density_coverage_hand_computed() {
    // 1-D. Real 0, 2, 4, 6, 8; fake 0.5, 1, 3, 20.
    let real = [0.0f32, 2.0, 4.0, 6.0, 8.0];
    let fake = [0.5f32, 1.0, 3.0, 20.0];
    // k = 1: every squared radius 4. The fakes lie in 2, 2, 2 and 0 balls: density
    // 6 / (1 · 4); the balls of 0, 2 and 4 hold a fake: coverage 3 / 5.
    let radii = knn_sq_radii(&real, 1, 1).unwrap();
    let dc = density_coverage_given(&real, &radii, &fake, 1, 1).unwrap();
    close(dc.density, 1.5, 1e-12, "density k=1");
    close(dc.coverage, 0.6, 1e-12, "coverage k=1");
    // k = 2: squared radii 16, 4, 4, 4, 16. Fake 3 is also in the ball of 0: density
    // 7 / (2 · 4), coverage still 3 / 5.
    let radii = knn_sq_radii(&real, 1, 2).unwrap();
    assert_eq!(radii, vec![16.0, 4.0, 4.0, 4.0, 16.0]);
    let (pr, dc) = prdc_given(&real, &radii, &fake, 1, 2).unwrap();
    close(dc.density, 0.875, 1e-12, "density k=2");
    close(dc.coverage, 0.6, 1e-12, "coverage k=2");
    assert_eq!(dc.k, 2);
    close(pr.precision, 0.75, 1e-12, "precision k=2");
    assert_eq!(pr, precision_recall(&real, &fake, 1, 2).unwrap());
    // Too few real samples for k, and radii of another set, are errors.
    assert!(density_coverage_given(&real[..2], &radii[..2], &fake, 1, 2).is_err());
    assert!(density_coverage_given(&real, &radii[..4], &fake, 1, 2).is_err());
}

/// Density and coverage straight from their definitions in float64 (Naeem et al. 2020, eq. 3
/// and 4), with a point on a ball's boundary inside it.
fn density_coverage_f64(real: &[f64], fake: &[f64], dim: usize, k: usize) -> (f64, f64) {
    let d2 = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
    let rows = |x: &[f64]| x.chunks(dim).map(<[f64]>::to_vec).collect::<Vec<_>>();
    let (real, fake) = (rows(real), rows(fake));
    let radii: Vec<f64> = real
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let mut d: Vec<f64> = real
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, y)| d2(x, y))
                .collect();
            d.sort_by(f64::total_cmp);
            d[k - 1]
        })
        .collect();
    let inside = |x: &[f64], i: usize| d2(x, &real[i]) <= radii[i];
    let balls: usize = fake
        .iter()
        .map(|y| (0..real.len()).filter(|&i| inside(y, i)).count())
        .sum();
    let covered = (0..real.len())
        .filter(|&i| fake.iter().any(|y| inside(y, i)))
        .count();
    (
        balls as f64 / (k * fake.len()) as f64,
        covered as f64 / real.len() as f64,
    )
}

#[test]
fn density_coverage_match_a_float64_reference() {
    // Integer coordinates: every squared distance is exact in float32 too, so the counts, ties
    // included, must agree exactly.
    let mut rng = SeededRng::new(8);
    let mut ints = |n: usize, span: u64, shift: f64| -> Vec<f64> {
        (0..n)
            .map(|_| (rng.next_u64() % span) as f64 + shift)
            .collect()
    };
    let dim = 4;
    let real = ints(200 * dim, 9, 0.0);
    let fake = ints(150 * dim, 7, 2.0);
    let f32s = |x: &[f64]| x.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    for k in [1, 3, 5] {
        let radii = knn_sq_radii(&f32s(&real), dim, k).unwrap();
        let dc = density_coverage_given(&f32s(&real), &radii, &f32s(&fake), dim, k).unwrap();
        let (density, coverage) = density_coverage_f64(&real, &fake, dim, k);
        close(dc.density, density, 1e-12, &format!("density k={k}"));
        close(dc.coverage, coverage, 1e-12, &format!("coverage k={k}"));
        assert!(
            coverage > 0.1 && coverage < 1.0,
            "a case that can fail: {coverage}"
        );
    }
}
