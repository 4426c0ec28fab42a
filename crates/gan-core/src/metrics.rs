//! Sample-quality metrics for generators of mixtures: mode coverage by the VEEGAN/PacGAN
//! protocol, and the KL and Jensen–Shannon divergences of discrete distributions.
//!
//! # Mode coverage (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018)
//!
//! The data is a mixture of M isotropic Gaussians with centres μ₁..μ_M and a common standard
//! deviation σ. For each generated point x, its *nearest mode* is the centre closest to it in
//! Euclidean distance, and x is *high quality* if ‖x − μ_nearest‖ ≤ 3σ. Then:
//!
//! - a mode is *captured* if it is the nearest mode of at least one high-quality sample;
//! - the *high-quality share* is the fraction of all samples that are high quality;
//! - the *reverse KL* is KL(p̂ ‖ u) = Σₖ p̂ₖ · ln(p̂ₖ · M), where p̂ is the histogram of the
//!   high-quality samples over their nearest modes (normalised to sum to 1) and u the uniform
//!   distribution over the M modes (the weights of the true mixture). It is 0 when every mode
//!   gets the same share and ln M when all high-quality samples fall on one mode. Empty bins
//!   contribute 0 (the convention 0 · ln 0 = 0); since u gives every mode a positive weight the
//!   divergence is always finite. With no high-quality sample at all the histogram is undefined
//!   and the reverse KL is reported as its maximum, ln M.
//!
//! PacGAN evaluates 2,500 samples per trained generator.
//!
//! ```
//! use gan_core::metrics::mode_metrics;
//! let modes = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]];
//! // Two points on mode 0, one on mode 1, one far from every mode.
//! let pts = [[1.0, 0.0], [1.01, 0.0], [0.0, 0.99], [0.5, 0.5]];
//! let m = mode_metrics(&pts, &modes, 0.01);
//! assert_eq!((m.modes_captured, m.modes_total, m.samples), (2, 4, 4));
//! assert!((m.high_quality_share - 0.75).abs() < 1e-12);
//! // p̂ = (2/3, 1/3, 0, 0) against uniform 1/4.
//! let want = 2.0 / 3.0 * (8.0f64 / 3.0).ln() + 1.0 / 3.0 * (4.0f64 / 3.0).ln();
//! assert!((m.reverse_kl - want).abs() < 1e-12);
//! ```

use serde::{Deserialize, Serialize};

/// Mode coverage of a set of generated points; see the [module docs](self) for the definitions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModeMetrics {
    /// Modes that are the nearest mode of at least one high-quality sample.
    pub modes_captured: usize,
    /// Modes of the mixture.
    pub modes_total: usize,
    /// Fraction of the samples within 3σ of their nearest mode, in [0, 1].
    pub high_quality_share: f64,
    /// KL(p̂ ‖ uniform) of the high-quality samples' mode histogram, in nats, in [0, ln M].
    pub reverse_kl: f64,
    /// Samples evaluated.
    pub samples: usize,
}

/// The index of the centre in `modes` nearest to `p` (the first one on ties).
///
/// # Panics
/// If `modes` is empty.
pub fn nearest_mode(p: [f32; 2], modes: &[[f32; 2]]) -> (usize, f32) {
    assert!(!modes.is_empty(), "nearest_mode needs at least one mode");
    let mut best = (0, f32::INFINITY);
    for (k, m) in modes.iter().enumerate() {
        let (dx, dy) = (p[0] - m[0], p[1] - m[1]);
        let d2 = dx * dx + dy * dy;
        if d2 < best.1 {
            best = (k, d2);
        }
    }
    (best.0, best.1.sqrt())
}

/// How many high-quality samples fall on each mode (the histogram behind [`ModeMetrics`]).
pub fn mode_histogram(points: &[[f32; 2]], modes: &[[f32; 2]], std: f32) -> Vec<usize> {
    let mut counts = vec![0usize; modes.len()];
    if modes.is_empty() {
        return counts;
    }
    let radius = 3.0 * std;
    for &p in points {
        let (k, dist) = nearest_mode(p, modes);
        if dist <= radius {
            counts[k] += 1;
        }
    }
    counts
}

/// Mode coverage of `points` against a mixture with centres `modes` and per-component standard
/// deviation `std`, by the VEEGAN/PacGAN protocol (see the [module docs](self)).
///
/// With no points the share is 0 and the reverse KL ln M; with no modes everything is 0.
pub fn mode_metrics(points: &[[f32; 2]], modes: &[[f32; 2]], std: f32) -> ModeMetrics {
    let counts = mode_histogram(points, modes, std);
    let high: usize = counts.iter().sum();
    let m = modes.len();
    let reverse_kl = if m == 0 {
        0.0
    } else if high == 0 {
        (m as f64).ln()
    } else {
        let hist: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        kl_divergence(&hist, &vec![1.0; m])
    };
    ModeMetrics {
        modes_captured: counts.iter().filter(|&&c| c > 0).count(),
        modes_total: m,
        high_quality_share: if points.is_empty() {
            0.0
        } else {
            high as f64 / points.len() as f64
        },
        reverse_kl,
        samples: points.len(),
    }
}

fn normalised(p: &[f64]) -> Vec<f64> {
    assert!(
        p.iter().all(|&x| x >= 0.0 && x.is_finite()),
        "weights must be finite and non-negative"
    );
    let total: f64 = p.iter().sum();
    assert!(total > 0.0, "weights must not all be zero");
    p.iter().map(|x| x / total).collect()
}

/// KL(p ‖ q) = Σᵢ pᵢ · ln(pᵢ / qᵢ), in nats, for discrete distributions over the same bins.
///
/// `p` and `q` are non-negative weights (counts or probabilities), each normalised here to sum
/// to 1. Bins with pᵢ = 0 contribute 0 (0 · ln 0 = 0); a bin with pᵢ > 0 and qᵢ = 0 makes the
/// divergence +∞.
///
/// # Panics
/// If the lengths differ, a weight is negative or not finite, or either side sums to 0.
///
/// ```
/// use gan_core::metrics::kl_divergence;
/// let kl = kl_divergence(&[0.5, 0.5], &[0.25, 0.75]);
/// assert!((kl - (0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln())).abs() < 1e-12);
/// assert_eq!(kl_divergence(&[1.0, 0.0], &[0.0, 1.0]), f64::INFINITY);
/// ```
pub fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    assert_eq!(
        p.len(),
        q.len(),
        "kl_divergence over different numbers of bins"
    );
    let (p, q) = (normalised(p), normalised(q));
    p.iter()
        .zip(&q)
        .map(|(&pi, &qi)| match (pi > 0.0, qi > 0.0) {
            (false, _) => 0.0,
            (true, false) => f64::INFINITY,
            (true, true) => pi * (pi / qi).ln(),
        })
        .sum()
}

/// The Jensen–Shannon divergence JSD(p ‖ q) = ½·KL(p ‖ m) + ½·KL(q ‖ m) with m = (p + q)/2, in
/// nats: symmetric, always finite, between 0 and ln 2.
///
/// `p` and `q` are non-negative weights, each normalised here to sum to 1. At the optimal
/// discriminator the GAN game's value is −ln 4 + 2·JSD(p_data ‖ p_g) (Goodfellow et al. 2014).
///
/// # Panics
/// As [`kl_divergence`].
///
/// ```
/// use gan_core::metrics::js_divergence;
/// assert!((js_divergence(&[1.0, 0.0], &[0.0, 1.0]) - 2f64.ln()).abs() < 1e-12);
/// assert_eq!(js_divergence(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
/// ```
pub fn js_divergence(p: &[f64], q: &[f64]) -> f64 {
    assert_eq!(
        p.len(),
        q.len(),
        "js_divergence over different numbers of bins"
    );
    let (p, q) = (normalised(p), normalised(q));
    let m: Vec<f64> = p.iter().zip(&q).map(|(a, b)| 0.5 * (a + b)).collect();
    0.5 * kl_divergence(&p, &m) + 0.5 * kl_divergence(&q, &m)
}
