//! Sample-quality metrics for image generators, computed on an evaluator network's outputs:
//! features (the penultimate layer) and class probabilities. The networks live in `gan-models`;
//! this module only does the math, in `f64` where precision matters.
//!
//! - [`frechet_distance`]: the Fréchet distance between two Gaussians fitted to feature sets
//!   (FID when the features are Inception's pool features; Heusel et al. 2017):
//!   ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½. The trace of the square root is computed as
//!   Σᵢ √λᵢ over the eigenvalues of the symmetric matrix Σ₁^½ Σ₂ Σ₁^½, which has the same
//!   eigenvalues as Σ₁Σ₂; both square roots come from a symmetric eigendecomposition
//!   ([`sym_eigen`]: Householder tridiagonalisation and implicit QL, as in EISPACK's `tred2` and
//!   `tql2`).
//! - [`inception_score`]: exp(E_x KL(p(y|x) ‖ p(y))) (Salimans et al. 2016), averaged over splits.
//!   Between 1 (every sample classified alike, or every prediction uniform) and the number of
//!   classes (confident predictions spread evenly over all classes).
//! - [`class_coverage`]: the histogram of predicted classes, how many classes are covered and the
//!   KL divergence of the histogram against uniform: mode collapse shows here.
//! - [`precision_recall`]: improved precision and recall (Kynkäänniemi et al. 2019): each set's
//!   manifold is the union of balls around its points with the radius of the k-th nearest
//!   neighbour in the same set; precision is the share of generated samples inside the real
//!   manifold, recall the share of real samples inside the generated one.
//! - [`kernel_inception_distance`]: KID (Bińkowski et al. 2018), the unbiased MMD² estimate with
//!   the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³, averaged over random subsets as in
//!   clean-fid and torch-fidelity (100 subsets of 1,000, capped at half the smaller set:
//!   [`kid_subset_size`]).
//! - [`density_coverage_given`]: density and coverage (Naeem et al. 2020) on the real set's k-NN
//!   balls: how many real balls hold a generated sample on average (over k), and the share of
//!   real balls that hold one; [`prdc_given`] gives them with precision and recall.
//!
//! Sample counts: each metric has a count below which its value is not comparable
//! ([`fid_min_samples`]: more samples than features; [`inception_score_min_samples`]: enough per
//! split; [`KID_SUBSET_SIZE`]; precision/recall needs more than k samples or cannot be computed).
//! The functions here compute whatever is computable; the callers warn below those counts.
//!
//! ```
//! use gan_core::eval_metrics::{frechet_distance, Gaussian};
//! // 1-D: FD = (μ₁ − μ₂)² + (σ₁ − σ₂)².
//! let a = Gaussian::new(vec![1.0], vec![4.0]).unwrap();
//! let b = Gaussian::new(vec![-1.0], vec![1.0]).unwrap();
//! assert!((frechet_distance(&a, &b).unwrap() - 5.0).abs() < 1e-12);
//! ```

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::metrics::kl_divergence;
use crate::rng::SeededRng;

/// What can go wrong computing a metric.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Inputs of inconsistent or empty shape.
    #[error("shape: {0}")]
    Shape(String),
    /// Too few samples for the statistic.
    #[error("{what}: {got} samples, need at least {need}")]
    TooFewSamples {
        /// Which input.
        what: &'static str,
        /// How many were given.
        got: usize,
        /// How many are needed.
        need: usize,
    },
    /// An input holds NaN or infinity.
    #[error("{0} holds a NaN or infinite value")]
    NonFinite(&'static str),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// This module's result type.
pub type Result<T> = std::result::Result<T, EvalError>;

fn check_rows(what: &'static str, xs: &[f32], dim: usize, need: usize) -> Result<usize> {
    if dim == 0 || xs.len() % dim != 0 {
        return Err(EvalError::Shape(format!(
            "{what}: {} values do not make rows of {dim}",
            xs.len()
        )));
    }
    let n = xs.len() / dim;
    if n < need {
        return Err(EvalError::TooFewSamples { what, got: n, need });
    }
    if xs.iter().any(|v| !v.is_finite()) {
        return Err(EvalError::NonFinite(what));
    }
    Ok(n)
}

/// A Gaussian fitted to feature vectors: mean and covariance (row-major `dim × dim`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gaussian {
    /// The mean, length `dim`.
    pub mean: Vec<f64>,
    /// The covariance, row-major, `dim × dim`, symmetric.
    pub cov: Vec<f64>,
    /// Samples it was fitted to (0 when built from given moments).
    pub count: usize,
}

impl Gaussian {
    /// A Gaussian from its moments; `cov` must be `mean.len()²` long and symmetric.
    pub fn new(mean: Vec<f64>, cov: Vec<f64>) -> Result<Self> {
        let d = mean.len();
        if d == 0 || cov.len() != d * d {
            return Err(EvalError::Shape(format!(
                "a covariance of {} values for a mean of {d}",
                cov.len()
            )));
        }
        if mean.iter().chain(&cov).any(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite("gaussian moments"));
        }
        for i in 0..d {
            for j in 0..i {
                let (a, b) = (cov[i * d + j], cov[j * d + i]);
                if (a - b).abs() > 1e-9 * (a.abs() + b.abs()).max(1.0) {
                    return Err(EvalError::Shape(format!(
                        "covariance is not symmetric at ({i}, {j}): {a} vs {b}"
                    )));
                }
            }
        }
        Ok(Self {
            mean,
            cov,
            count: 0,
        })
    }

    /// Fits mean and unbiased covariance (divided by n − 1, as numpy's `cov`) to the rows of
    /// `features` (`n × dim`, row-major); needs n ≥ 2.
    pub fn fit(features: &[f32], dim: usize) -> Result<Self> {
        let n = check_rows("features", features, dim, 2)?;
        let xs = Tensor::from_slice(features, (n, dim), &Device::Cpu)?.to_dtype(DType::F64)?;
        let mean = xs.mean(0)?;
        let xc = xs.broadcast_sub(&mean)?;
        let cov = xc.t()?.matmul(&xc)?.affine(1.0 / (n as f64 - 1.0), 0.0)?;
        let mut cov: Vec<f64> = cov.flatten_all()?.to_vec1()?;
        // Exact symmetry (the product is symmetric up to rounding).
        for i in 0..dim {
            for j in 0..i {
                let v = 0.5 * (cov[i * dim + j] + cov[j * dim + i]);
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        Ok(Self {
            mean: mean.to_vec1()?,
            cov,
            count: n,
        })
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

/// `a · b` for row-major `n × n` matrices.
pub fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        let row = &mut out[i * n..(i + 1) * n];
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            for (o, &bkj) in row.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                *o += aik * bkj;
            }
        }
    }
    out
}

/// Eigenvalues (ascending) and eigenvectors of the symmetric row-major `n × n` matrix `a`.
///
/// Returns `(values, vectors)` with `vectors[r * n + c]` the `r`-th coordinate of the eigenvector
/// of `values[c]` (eigenvectors are the columns, orthonormal), so `a = V diag(λ) Vᵀ`. Only the
/// lower triangle of `a` is read. Householder reduction to tridiagonal form, then the implicit
/// QL method with shifts (EISPACK `tred2`/`tql2`, as in JAMA), all in `f64`.
///
/// # Panics
/// If `a.len() != n * n`.
pub fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "sym_eigen: a is not n × n");
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    // v[i][j] = v[i * n + j]; start from the lower triangle mirrored.
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            v[i * n + j] = a[i * n + j];
            v[j * n + i] = a[i * n + j];
        }
    }
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    tred2(n, &mut v, &mut d, &mut e);
    // tql2 rotates pairs of columns of v: work on the transpose so they are contiguous rows.
    let mut vt = transpose(&v, n);
    tql2(n, &mut vt, &mut d, &mut e);
    // Sort ascending.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| d[x].total_cmp(&d[y]));
    let values = order.iter().map(|&i| d[i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (c, &i) in order.iter().enumerate() {
        for r in 0..n {
            vectors[r * n + c] = vt[i * n + r];
        }
    }
    (values, vectors)
}

fn transpose(a: &[f64], n: usize) -> Vec<f64> {
    let mut t = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            t[j * n + i] = a[i * n + j];
        }
    }
    t
}

/// Householder tridiagonalisation: on return `v` holds the orthogonal transformation, `d` the
/// diagonal and `e[1..]` the sub-diagonal.
fn tred2(n: usize, v: &mut [f64], d: &mut [f64], e: &mut [f64]) {
    let at = |i: usize, j: usize| i * n + j;
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for &dk in &d[..i] {
            scale += dk.abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
                v[at(j, i)] = 0.0;
            }
        } else {
            for dk in &mut d[..i] {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in &mut e[..i] {
                *ej = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[at(j, i)] = f;
                g = e[j] + v[at(j, j)] * f;
                for k in j + 1..i {
                    g += v[at(k, j)] * d[k];
                    e[k] += v[at(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[at(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate the transformations.
    for i in 0..n - 1 {
        v[at(n - 1, i)] = v[at(i, i)];
        v[at(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[at(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[at(k, i + 1)] * v[at(k, j)];
                }
                for k in 0..=i {
                    v[at(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[at(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
        v[at(n - 1, j)] = 0.0;
    }
    v[at(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;
}

/// Implicit QL on the tridiagonal matrix (`d`, `e`); `vt` holds the transformation transposed
/// (row i = column i of V) and receives the eigenvectors as rows.
fn tql2(n: usize, vt: &mut [f64], d: &mut [f64], e: &mut [f64]) {
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        if m > l {
            loop {
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in &mut d[l + 2..n] {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    let (lo, hi) = vt.split_at_mut((i + 1) * n);
                    let row_i = &mut lo[i * n..];
                    let row_i1 = &mut hi[..n];
                    for (a, b) in row_i.iter_mut().zip(row_i1.iter_mut()) {
                        let hk = *b;
                        *b = s * *a + c * hk;
                        *a = c * *a - s * hk;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
}

/// The principal square root of a symmetric positive semi-definite matrix (row-major `n × n`):
/// V diag(√max(λ, 0)) Vᵀ. Eigenvalues that rounding made slightly negative are taken as 0.
pub fn sqrtm_psd(a: &[f64], n: usize) -> Vec<f64> {
    let (values, vectors) = sym_eigen(a, n);
    let roots: Vec<f64> = values.iter().map(|&l| l.max(0.0).sqrt()).collect();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = 0.0;
            for (k, r) in roots.iter().enumerate() {
                s += vectors[i * n + k] * r * vectors[j * n + k];
            }
            out[i * n + j] = s;
            out[j * n + i] = s;
        }
    }
    out
}

/// tr((Σ₁Σ₂)^½) for symmetric positive semi-definite Σ₁, Σ₂: Σᵢ √λᵢ over the eigenvalues of
/// Σ₁^½ Σ₂ Σ₁^½ (similar to Σ₁Σ₂ when Σ₁ is invertible, and with the same spectrum always).
pub fn trace_sqrt_product(s1: &[f64], s2: &[f64], n: usize) -> f64 {
    let r1 = sqrtm_psd(s1, n);
    let m = matmul(&matmul(&r1, s2, n), &r1, n);
    // Symmetrise away the rounding of the products.
    let m: Vec<f64> = (0..n * n)
        .map(|k| 0.5 * (m[k] + m[(k % n) * n + k / n]))
        .collect();
    let (values, _) = sym_eigen(&m, n);
    values.iter().map(|&l| l.max(0.0).sqrt()).sum()
}

/// The Fréchet distance between two Gaussians: ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½.
///
/// Zero for identical Gaussians (up to rounding, which can make it a tiny negative number).
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    let n = a.dim();
    if b.dim() != n {
        return Err(EvalError::Shape(format!(
            "Fréchet distance between Gaussians of dimension {n} and {}",
            b.dim()
        )));
    }
    let mean_term: f64 = a
        .mean
        .iter()
        .zip(&b.mean)
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    let tr = |c: &[f64]| (0..n).map(|i| c[i * n + i]).sum::<f64>();
    let cross = trace_sqrt_product(&a.cov, &b.cov, n);
    Ok(mean_term + tr(&a.cov) + tr(&b.cov) - 2.0 * cross)
}

/// An Inception Score: the mean and standard deviation over splits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct InceptionScore {
    /// Mean over the splits.
    pub mean: f64,
    /// Standard deviation over the splits (0 with one split).
    pub std: f64,
    /// Splits used.
    pub splits: usize,
}

/// The mean and the population standard deviation (dividing by n) of the per-split or
/// per-subset scores `xs`.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The Inception Score of class probabilities `probs` (`n × classes`, rows summing to 1):
/// exp(mean over x of KL(p(y|x) ‖ p(y))) with p(y) the mean prediction, computed on each of
/// `splits` consecutive equal parts (fewer if n is smaller) as in the reference implementation.
pub fn inception_score(probs: &[f32], classes: usize, splits: usize) -> Result<InceptionScore> {
    let n = check_rows("class probabilities", probs, classes, 1)?;
    if probs.iter().any(|&p| p < 0.0) {
        return Err(EvalError::Shape("negative class probability".into()));
    }
    let splits = splits.clamp(1, n);
    let mut scores = Vec::with_capacity(splits);
    for s in 0..splits {
        let (lo, hi) = (s * n / splits, (s + 1) * n / splits);
        let rows = &probs[lo * classes..hi * classes];
        let m = (hi - lo) as f64;
        let mut py = vec![0f64; classes];
        for row in rows.chunks_exact(classes) {
            for (a, &p) in py.iter_mut().zip(row) {
                *a += p as f64 / m;
            }
        }
        let mut kl = 0.0;
        for row in rows.chunks_exact(classes) {
            for (&p, &q) in row.iter().zip(&py) {
                let p = p as f64;
                if p > 0.0 && q > 0.0 {
                    kl += p * (p / q).ln();
                }
            }
        }
        scores.push((kl / m).exp());
    }
    let (mean, std) = mean_std(&scores);
    Ok(InceptionScore { mean, std, splits })
}

/// Which classes a set of samples falls into, by the evaluator's most probable class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassCoverage {
    /// Samples per predicted class.
    pub histogram: Vec<usize>,
    /// Classes that receive at least `min_count` samples.
    pub covered: usize,
    /// The number of classes.
    pub classes: usize,
    /// The count a class needs to be covered: a tenth of its fair share n / classes, at least 1.
    pub min_count: usize,
    /// KL(histogram ‖ uniform) in nats: 0 for a perfectly even spread, ln(classes) when every
    /// sample falls into one class.
    pub kl_uniform: f64,
}

/// The class histogram of `probs` (`n × classes`) by arg-max, its coverage and its KL divergence
/// against the uniform distribution; see [`ClassCoverage`].
pub fn class_coverage(probs: &[f32], classes: usize) -> Result<ClassCoverage> {
    let n = check_rows("class probabilities", probs, classes, 1)?;
    let mut histogram = vec![0usize; classes];
    for row in probs.chunks_exact(classes) {
        let mut best = 0;
        for (k, &p) in row.iter().enumerate() {
            if p > row[best] {
                best = k;
            }
        }
        histogram[best] += 1;
    }
    let min_count = (n / (10 * classes)).max(1);
    let counts: Vec<f64> = histogram.iter().map(|&c| c as f64).collect();
    Ok(ClassCoverage {
        covered: histogram.iter().filter(|&&c| c >= min_count).count(),
        classes,
        min_count,
        kl_uniform: kl_divergence(&counts, &vec![1.0; classes]),
        histogram,
    })
}

/// Improved precision and recall, in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrecisionRecall {
    /// Share of generated samples inside the real manifold (fidelity).
    pub precision: f64,
    /// Share of real samples inside the generated manifold (diversity).
    pub recall: f64,
    /// The neighbourhood size.
    pub k: usize,
}

/// Squared Euclidean distances between the rows of `a` (`na × dim`) and `b` (`nb × dim`),
/// row-major `na × nb`.
pub fn pairwise_sq_distances(a: &[f32], b: &[f32], dim: usize) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    distance_blocks(a, b, dim, &mut |_, block| out.extend_from_slice(block))?;
    Ok(out)
}

/// Calls `f(first_row, block)` with the squared distances of consecutive blocks of rows of `a`
/// to every row of `b` (`block` is `rows × nb`, row-major), so that memory stays bounded for
/// large sets. The dot products run as candle matrix products on the CPU.
fn distance_blocks(
    a: &[f32],
    b: &[f32],
    dim: usize,
    f: &mut dyn FnMut(usize, &[f32]),
) -> Result<()> {
    let na = check_rows("points", a, dim, 0)?;
    let nb = check_rows("points", b, dim, 0)?;
    if na == 0 || nb == 0 {
        return Ok(());
    }
    let dev = Device::Cpu;
    let norms = |x: &[f32]| -> Vec<f32> {
        x.chunks_exact(dim)
            .map(|r| r.iter().map(|v| v * v).sum())
            .collect()
    };
    let (na2, nb2) = (norms(a), norms(b));
    let bt = Tensor::from_slice(b, (nb, dim), &dev)?.t()?.contiguous()?;
    const BLOCK: usize = 512;
    for lo in (0..na).step_by(BLOCK) {
        let hi = (lo + BLOCK).min(na);
        let blk = Tensor::from_slice(&a[lo * dim..hi * dim], (hi - lo, dim), &dev)?;
        let mut d: Vec<f32> = blk.matmul(&bt)?.flatten_all()?.to_vec1()?;
        for (r, row) in d.chunks_exact_mut(nb).enumerate() {
            let ai = na2[lo + r];
            for (v, &bj) in row.iter_mut().zip(&nb2) {
                *v = (ai + bj - 2.0 * *v).max(0.0);
            }
        }
        f(lo, &d);
    }
    Ok(())
}

/// The squared distance from each row of `xs` to its k-th nearest neighbour among the other rows
/// (the point itself is excluded; duplicates count as neighbours at distance 0).
pub fn knn_sq_radii(xs: &[f32], dim: usize, k: usize) -> Result<Vec<f32>> {
    let n = check_rows("points", xs, dim, k + 1)?;
    let mut radii = vec![0f32; n];
    let mut row = Vec::with_capacity(n);
    distance_blocks(xs, xs, dim, &mut |lo, block| {
        for (r, dists) in block.chunks_exact(n).enumerate() {
            let i = lo + r;
            row.clear();
            row.extend(
                dists
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, &v)| v),
            );
            let (_, kth, _) = row.select_nth_unstable_by(k - 1, f32::total_cmp);
            radii[i] = *kth;
        }
    })?;
    Ok(radii)
}

/// The share of rows of `queries` within the k-NN ball of at least one row of `support`.
fn share_inside(queries: &[f32], support: &[f32], radii: &[f32], dim: usize) -> Result<f64> {
    Ok(real_balls(queries, support, radii, dim)?.precision)
}

/// What one pass over the distances of generated rows to real rows gives: the share of
/// generated rows inside at least one real k-NN ball (precision), the mean number of real balls
/// holding a generated row (density × k), and the share of real balls holding at least one
/// generated row (coverage). A point on a ball's boundary is inside it.
struct RealBalls {
    precision: f64,
    mean_balls: f64,
    coverage: f64,
}

fn real_balls(fake: &[f32], real: &[f32], radii: &[f32], dim: usize) -> Result<RealBalls> {
    let nf = fake.len() / dim;
    let nr = radii.len();
    let (mut inside, mut balls) = (0usize, 0usize);
    let mut covered = vec![false; nr];
    distance_blocks(fake, real, dim, &mut |_, block| {
        for row in block.chunks_exact(nr) {
            let mut count = 0usize;
            for ((&dist, &r), c) in row.iter().zip(radii).zip(covered.iter_mut()) {
                if dist <= r {
                    count += 1;
                    *c = true;
                }
            }
            inside += usize::from(count > 0);
            balls += count;
        }
    })?;
    Ok(RealBalls {
        precision: inside as f64 / nf as f64,
        mean_balls: balls as f64 / nf as f64,
        coverage: covered.iter().filter(|&&c| c).count() as f64 / nr as f64,
    })
}

/// Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
/// Generative Models", eq. 3 and 4), on the real k-NN balls of precision/recall.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DensityCoverage {
    /// (1 / kM) Σⱼ Σᵢ 1[Yⱼ ∈ B(Xᵢ, NNDₖ(Xᵢ))]: how many real balls hold a generated sample, on
    /// average, over k; about 1 when the two distributions match, above 1 when the samples
    /// crowd dense real regions, unbounded.
    pub density: f64,
    /// (1 / N) Σᵢ 1[∃ j: Yⱼ ∈ B(Xᵢ, NNDₖ(Xᵢ))]: the share of real balls holding at least one
    /// generated sample, in [0, 1].
    pub coverage: f64,
    /// The neighbourhood size.
    pub k: usize,
}

/// [`DensityCoverage`] of generated features `fake` against real features `real` (`n × dim`
/// each, row-major) with the real set's squared k-NN radii `real_radii` (from [`knn_sq_radii`]
/// with the same `k`). As clovaai's `prdc`, except that a point on a ball's boundary counts as
/// inside (as in [`precision_recall`]); the two differ only on ties.
pub fn density_coverage_given(
    real: &[f32],
    real_radii: &[f32],
    fake: &[f32],
    dim: usize,
    k: usize,
) -> Result<DensityCoverage> {
    check_real_balls(real, real_radii, dim, k)?;
    check_rows("generated features", fake, dim, 1)?;
    let b = real_balls(fake, real, real_radii, dim)?;
    Ok(DensityCoverage {
        density: b.mean_balls / k as f64,
        coverage: b.coverage,
        k,
    })
}

/// Checks `k` and that `real_radii` has one radius per row of `real` (which needs `k + 1` rows).
fn check_real_balls(real: &[f32], real_radii: &[f32], dim: usize, k: usize) -> Result<()> {
    if k == 0 {
        return Err(EvalError::Shape("k must be at least 1".into()));
    }
    let nr = check_rows("real features", real, dim, k + 1)?;
    if real_radii.len() != nr {
        return Err(EvalError::Shape(format!(
            "{} radii for {nr} real samples",
            real_radii.len()
        )));
    }
    Ok(())
}

/// Improved precision and recall of generated features `fake` against real features `real`
/// (both `n × dim`), with k-nearest-neighbour manifolds (k = 3 in the paper).
pub fn precision_recall(
    real: &[f32],
    fake: &[f32],
    dim: usize,
    k: usize,
) -> Result<PrecisionRecall> {
    if k == 0 {
        return Err(EvalError::Shape("k must be at least 1".into()));
    }
    let real_radii = knn_sq_radii(real, dim, k)?;
    precision_recall_given(real, &real_radii, fake, dim, k)
}

/// [`precision_recall`] with the real set's squared k-NN radii computed beforehand (by
/// [`knn_sq_radii`] with the same `k`), so that a fixed reference set pays for them once.
pub fn precision_recall_given(
    real: &[f32],
    real_radii: &[f32],
    fake: &[f32],
    dim: usize,
    k: usize,
) -> Result<PrecisionRecall> {
    Ok(prdc_given(real, real_radii, fake, dim, k)?.0)
}

/// Precision, recall, density and coverage at once, all on k-NN balls of the same `k`, as
/// clovaai's `prdc` computes them: one pass over the generated-to-real distances gives
/// precision, density and coverage, a second one (with the generated set's radii) recall.
pub fn prdc_given(
    real: &[f32],
    real_radii: &[f32],
    fake: &[f32],
    dim: usize,
    k: usize,
) -> Result<(PrecisionRecall, DensityCoverage)> {
    check_real_balls(real, real_radii, dim, k)?;
    let fake_radii = knn_sq_radii(fake, dim, k)?;
    let b = real_balls(fake, real, real_radii, dim)?;
    let pr = PrecisionRecall {
        precision: b.precision,
        recall: share_inside(real, fake, &fake_radii, dim)?,
        k,
    };
    let dc = DensityCoverage {
        density: b.mean_balls / k as f64,
        coverage: b.coverage,
        k,
    };
    Ok((pr, dc))
}

/// Samples each set needs for a full-rank covariance of `dim` features (`dim + 1`): below it the
/// fitted covariances are singular and the FID is dominated by the missing directions (it still
/// has a value, but not a comparable one).
pub fn fid_min_samples(dim: usize) -> usize {
    dim + 1
}

/// Samples per class and split the Inception Score should see: the split's marginal p(y) is
/// estimated from its samples, and with few of them its entropy is biased low.
pub const IS_SAMPLES_PER_CLASS_PER_SPLIT: usize = 10;

/// Samples the Inception Score over `splits` splits of `classes` classes should have:
/// `splits · classes ·` [`IS_SAMPLES_PER_CLASS_PER_SPLIT`] (1,000 for 10 classes and 10 splits).
pub fn inception_score_min_samples(classes: usize, splits: usize) -> usize {
    splits * classes * IS_SAMPLES_PER_CLASS_PER_SPLIT
}

/// The subset size of the KID in clean-fid and torch-fidelity (their `max_subset_size` /
/// `kid_subset_size`): each set should hold at least twice this many samples for subsets of
/// this size ([`kid_subset_size`]).
pub const KID_SUBSET_SIZE: usize = 1000;

/// The subset size KID uses for sets of `n_real` and `n_fake` samples when `requested` is
/// asked for: min(`requested`, ⌊min(n_real, n_fake) / 2⌋), and at least 2 (the least the
/// unbiased estimate takes; sets of 2 or 3 samples then give subsets of 2).
///
/// Why half: torch-fidelity refuses sets smaller than its subset size and clean-fid takes
/// min(n, 1000), so with n ≤ 1000 samples every subset is the whole set, every subset gives the
/// same value and the reported ± is 0, which says nothing about the estimate's spread. Subsets
/// of at most half the smaller set differ from draw to draw, so the ± is a real spread (that of
/// an estimate from m samples, a little larger than the full set's). The mean stays unbiased
/// whatever the subset size: the unbiased MMD² has the same expectation for every m ≥ 2; only
/// its variance grows as m shrinks. With 2,000 samples or more in each set this is
/// torch-fidelity's and clean-fid's 1,000.
pub fn kid_subset_size(requested: usize, n_real: usize, n_fake: usize) -> usize {
    requested.min(n_real.min(n_fake) / 2).max(2)
}

/// The number of subsets KID averages over in clean-fid and torch-fidelity.
pub const KID_SUBSETS: usize = 100;

/// A Kernel Inception Distance: the mean and standard deviation over subsets of the unbiased
/// MMD² estimate (no unit: the squared RKHS distance of the cubic polynomial kernel).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kid {
    /// Mean over the subsets (can be slightly negative: the estimate is unbiased).
    pub mean: f64,
    /// Standard deviation over the subsets (population, as torch-fidelity's `np.std`).
    pub std: f64,
    /// Subsets averaged.
    pub subsets: usize,
    /// Samples drawn from each set per subset ([`kid_subset_size`]: min(requested size, half
    /// the smaller set), at least 2).
    pub subset_size: usize,
}

/// The cubic polynomial kernel of KID summed over blocks of a Gram matrix:
/// k(x, y) = (xᵀy / d + 1)³. Returns (Σ over all entries, Σ over the diagonal) of k(xᵢ, yⱼ),
/// with the dot products from a float32 matrix product and the kernel and sums in float64.
fn poly_kernel_sums(x: &[f32], y: &[f32], m: usize, dim: usize) -> Result<(f64, f64)> {
    let dev = Device::Cpu;
    let xs = Tensor::from_slice(x, (m, dim), &dev)?;
    let ys = Tensor::from_slice(y, (m, dim), &dev)?;
    let gram: Vec<f32> = xs.matmul(&ys.t()?)?.flatten_all()?.to_vec1()?;
    let d = dim as f64;
    let k = |g: f32| (g as f64 / d + 1.0).powi(3);
    let total = gram.iter().map(|&g| k(g)).sum();
    let diag = (0..m).map(|i| k(gram[i * m + i])).sum();
    Ok((total, diag))
}

/// The unbiased estimate of MMD² between the rows of `x` and `y` (both `m × dim`, row-major,
/// m ≥ 2) under the kernel k(a, b) = (aᵀb / dim + 1)³ (Bińkowski et al. 2018, "Demystifying MMD
/// GANs", eq. 2 and section 5):
/// 1/(m(m−1)) Σᵢ≠ⱼ [k(xᵢ, xⱼ) + k(yᵢ, yⱼ)] − 2/m² Σᵢⱼ k(xᵢ, yⱼ).
pub fn mmd2_unbiased_poly(x: &[f32], y: &[f32], dim: usize) -> Result<f64> {
    let m = check_rows("KID features", x, dim, 2)?;
    let my = check_rows("KID features", y, dim, 2)?;
    if m != my {
        return Err(EvalError::Shape(format!(
            "MMD² between {m} and {my} samples (the estimate takes sets of one size)"
        )));
    }
    let (xx, xx_diag) = poly_kernel_sums(x, x, m, dim)?;
    let (yy, yy_diag) = poly_kernel_sums(y, y, m, dim)?;
    let (xy, _) = poly_kernel_sums(x, y, m, dim)?;
    let mf = m as f64;
    Ok((xx - xx_diag + yy - yy_diag) / (mf * (mf - 1.0)) - 2.0 * xy / (mf * mf))
}

/// `m` distinct row indices out of `n`, in random order (a partial Fisher–Yates shuffle).
fn sample_rows(n: usize, m: usize, rng: &mut SeededRng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..m.min(n) {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(m);
    idx
}

/// The Kernel Inception Distance (Bińkowski et al. 2018) of generated features `fake` against
/// real features `real` (`n × dim` each, row-major; any counts ≥ 2), as clean-fid's
/// `kernel_distance` and torch-fidelity compute it: `subsets` times, draw
/// m = [`kid_subset_size`]`(subset_size, n_real, n_fake)` rows of each set without replacement
/// (m is at most half the smaller set, so subsets differ) and take [`mmd2_unbiased_poly`] of
/// them; report the mean and the standard deviation over the subsets. The draws come from a
/// [`SeededRng`] seeded with `seed`. Only sets of 2 or 3 samples give subsets that are the
/// whole smaller set (std 0).
pub fn kernel_inception_distance(
    real: &[f32],
    fake: &[f32],
    dim: usize,
    subsets: usize,
    subset_size: usize,
    seed: u64,
) -> Result<Kid> {
    let nr = check_rows("real features", real, dim, 2)?;
    let nf = check_rows("generated features", fake, dim, 2)?;
    if subsets == 0 || subset_size < 2 {
        return Err(EvalError::Shape(format!(
            "KID needs at least 1 subset of at least 2 samples, not {subsets} of {subset_size}"
        )));
    }
    let m = kid_subset_size(subset_size, nr, nf);
    let mut rng = SeededRng::new(seed);
    let gather = |xs: &[f32], idx: &[usize]| -> Vec<f32> {
        idx.iter()
            .flat_map(|&i| xs[i * dim..(i + 1) * dim].iter().copied())
            .collect()
    };
    let mut values = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        let f = gather(fake, &sample_rows(nf, m, &mut rng));
        let r = gather(real, &sample_rows(nr, m, &mut rng));
        values.push(mmd2_unbiased_poly(&f, &r, dim)?);
    }
    let (mean, std) = mean_std(&values);
    Ok(Kid {
        mean,
        std,
        subsets,
        subset_size: m,
    })
}
