//! Mode metrics and divergences against hand-computed values.

use gan_core::metrics::{
    js_divergence, kl_divergence, mode_histogram, mode_metrics, nearest_mode, ModeMetrics,
};

const TOL: f64 = 1e-12;

fn ring8() -> Vec<[f32; 2]> {
    (0..8)
        .map(|k| {
            let a = 2.0 * std::f32::consts::PI * k as f32 / 8.0;
            [a.cos(), a.sin()]
        })
        .collect()
}

fn check_kl(p: &[f64], q: &[f64], want: f64) {
    let got = kl_divergence(p, q);
    assert!(
        (got - want).abs() < TOL,
        "KL({p:?} ‖ {q:?}) = {got}, want {want}"
    );
}

fn check_jsd(p: &[f64], q: &[f64], want: f64) {
    let got = js_divergence(p, q);
    assert!(
        (got - want).abs() < TOL,
        "JSD({p:?} ‖ {q:?}) = {got}, want {want}"
    );
    let swapped = js_divergence(q, p);
    assert!(
        (got - swapped).abs() < TOL,
        "JSD is not symmetric: {got} vs {swapped}"
    );
}

#[test]
fn kl_hand_computed() {
    // Σ p ln(p/q) worked out by hand.
    check_kl(&[0.5, 0.5], &[0.5, 0.5], 0.0);
    check_kl(
        &[0.5, 0.5],
        &[0.25, 0.75],
        0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln(),
    );
    check_kl(&[1.0, 0.0, 0.0, 0.0], &[0.25; 4], 4f64.ln());
    // 0 · ln 0 = 0: empty bins of p are skipped even where q is zero too.
    check_kl(&[0.0, 1.0], &[0.0, 1.0], 0.0);
    check_kl(
        &[0.0, 0.4, 0.6],
        &[0.2, 0.4, 0.4],
        0.4 * 1f64.ln() + 0.6 * 1.5f64.ln(),
    );
    // Counts are normalised: (1, 3) is (0.25, 0.75).
    check_kl(
        &[2.0, 2.0],
        &[1.0, 3.0],
        0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln(),
    );
    // Mass where q has none.
    assert_eq!(kl_divergence(&[0.5, 0.5], &[1.0, 0.0]), f64::INFINITY);
}

#[test]
fn kl_is_asymmetric() {
    let (p, q) = ([0.9, 0.1], [0.5, 0.5]);
    let pq = 0.9 * 1.8f64.ln() + 0.1 * 0.2f64.ln();
    let qp = 0.5 * (0.5f64 / 0.9).ln() + 0.5 * 5f64.ln();
    check_kl(&p, &q, pq);
    check_kl(&q, &p, qp);
    assert!((pq - qp).abs() > 0.1);
}

#[test]
fn jsd_hand_computed() {
    check_jsd(&[0.3, 0.7], &[0.3, 0.7], 0.0);
    // Disjoint supports: the maximum, ln 2.
    check_jsd(&[1.0, 0.0], &[0.0, 1.0], 2f64.ln());
    check_jsd(&[0.5, 0.5, 0.0, 0.0], &[0.0, 0.0, 0.5, 0.5], 2f64.ln());
    // p = (1, 0), q = (½, ½): m = (¾, ¼);
    // KL(p‖m) = ln(4/3), KL(q‖m) = ½ln(2/3) + ½ln 2 = ½ln(4/3).
    check_jsd(
        &[1.0, 0.0],
        &[0.5, 0.5],
        0.5 * (4f64 / 3.0).ln() + 0.25 * (4f64 / 3.0).ln(),
    );
    // p = (0.2, 0.8), q = (0.6, 0.4): m = (0.4, 0.6).
    let want = 0.5 * (0.2 * 0.5f64.ln() + 0.8 * (0.8f64 / 0.6).ln())
        + 0.5 * (0.6 * 1.5f64.ln() + 0.4 * (0.4f64 / 0.6).ln());
    check_jsd(&[0.2, 0.8], &[0.6, 0.4], want);
}

#[test]
#[should_panic(expected = "different numbers of bins")]
fn kl_rejects_mismatched_lengths() {
    kl_divergence(&[1.0], &[0.5, 0.5]);
}

#[test]
fn nearest_mode_and_histogram() {
    let modes = ring8();
    let (k, d) = nearest_mode([0.0, 1.02], &modes);
    assert_eq!(k, 2);
    assert!((d - 0.02).abs() < 1e-6);
    // σ = 0.01: 3σ = 0.03, so 0.02 away counts and 0.04 away does not.
    let pts = [
        [0.0, 1.02],
        [0.0, 1.04],
        [1.0, 0.0],
        [-1.0, 0.0],
        [-1.0, 0.0],
    ];
    assert_eq!(
        mode_histogram(&pts, &modes, 0.01),
        vec![1, 0, 1, 0, 2, 0, 0, 0]
    );
}

#[test]
fn every_mode_covered_evenly() {
    let modes = ring8();
    let pts: Vec<[f32; 2]> = modes.iter().cycle().take(80).copied().collect();
    let m = mode_metrics(&pts, &modes, 0.01);
    assert_eq!(
        m,
        ModeMetrics {
            modes_captured: 8,
            modes_total: 8,
            high_quality_share: 1.0,
            reverse_kl: 0.0,
            samples: 80
        }
    );
}

#[test]
fn collapsed_generator() {
    // All samples on one mode, plus some off every mode: 1 of 8, reverse KL ln 8.
    let modes = ring8();
    let mut pts = vec![[1.0, 0.0]; 90];
    pts.extend(vec![[0.0, 0.0]; 10]);
    let m = mode_metrics(&pts, &modes, 0.01);
    assert_eq!((m.modes_captured, m.modes_total, m.samples), (1, 8, 100));
    assert!((m.high_quality_share - 0.9).abs() < TOL);
    assert!((m.reverse_kl - 8f64.ln()).abs() < TOL);
}

#[test]
fn uneven_coverage() {
    // High-quality counts (3, 1, 0, 0) over 4 modes; one low-quality point is ignored by the
    // histogram but counts against the share.
    let modes = [[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]];
    let pts = [[0.0, 0.0], [0.1, 0.0], [0.0, -0.1], [2.0, 0.1], [1.0, 1.0]];
    let m = mode_metrics(&pts, &modes, 0.05);
    assert_eq!(m.modes_captured, 2);
    assert!((m.high_quality_share - 0.8).abs() < TOL);
    let want = 0.75 * (0.75f64 * 4.0).ln() + 0.25 * (0.25f64 * 4.0).ln();
    assert!(
        (m.reverse_kl - want).abs() < TOL,
        "{} vs {want}",
        m.reverse_kl
    );
}

#[test]
fn no_high_quality_sample() {
    let modes = ring8();
    let m = mode_metrics(&[[0.0, 0.0]; 5], &modes, 0.01);
    assert_eq!((m.modes_captured, m.high_quality_share), (0, 0.0));
    assert!((m.reverse_kl - 8f64.ln()).abs() < TOL);
    let m = mode_metrics(&[], &modes, 0.01);
    assert_eq!((m.samples, m.high_quality_share), (0, 0.0));
}

#[test]
fn serialises_to_json() {
    let m = ModeMetrics {
        modes_captured: 7,
        modes_total: 8,
        high_quality_share: 0.5,
        reverse_kl: 0.25,
        samples: 10,
    };
    let text = serde_json::to_string(&m).unwrap();
    assert!(text.contains("\"modes_captured\":7"), "{text}");
    let back: ModeMetrics = serde_json::from_str(&text).unwrap();
    assert_eq!(back, m);
}
