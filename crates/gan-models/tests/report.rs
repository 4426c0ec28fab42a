//! Health warnings from hand-made metric sequences, and the report built from a hand-made run
//! folder: self-contained, with every chart, grid and warning.

use candle_core::{Device, Tensor};
use gan_core::eval_metrics::{ClassCoverage, DensityCoverage, PrecisionRecall};
use gan_models::cyclegan_run::TranslationScores;
use gan_models::evaluator::EvalReport;
use gan_models::grid::save_grid;
use gan_models::health::{HealthMonitor, WarningKind};
use gan_models::monitor::{EvalLine, TranslationEvalLine, WarningLine};
use gan_models::report::{read_history, render_report, write_report};
use gan_models::run::RunDir;
use gan_models::train::StepMetrics;
use serde_json::json;

fn step(step: u64, d_x: f32, d_g_z: f32) -> StepMetrics {
    StepMetrics {
        step,
        epoch: 0,
        loss_d: 0.5,
        loss_g: 2.0,
        d_x,
        d_g_z1: d_g_z,
        d_g_z2: d_g_z,
        r1: None,
    }
}

fn eval(covered: usize, histogram: Vec<usize>, kl: f64, fid: f64) -> EvalReport {
    EvalReport {
        evaluator: "mnist".into(),
        samples: 100,
        reference: "mnist-mini test split".into(),
        reference_samples: 1000,
        fid,
        inception_score: None,
        coverage: Some(ClassCoverage {
            histogram,
            covered,
            classes: 10,
            min_count: 1,
            kl_uniform: kl,
        }),
        precision_recall: PrecisionRecall {
            precision: 0.5,
            recall: 0.4,
            k: 3,
        },
        density_coverage: Some(DensityCoverage {
            density: 0.9,
            coverage: 0.7,
            k: 3,
        }),
        kid: None,
        warnings: Vec::new(),
        seconds: 1.0,
    }
}

#[test]
fn non_finite_warns_once_per_episode() {
    let mut h = HealthMonitor::default();
    let mut bad = step(3, 0.5, 0.5);
    bad.loss_g = f32::INFINITY;
    let w = h.observe_step(&bad).unwrap();
    assert_eq!((w.kind, w.step), (WarningKind::NonFinite, 3));
    bad.step = 4;
    assert!(h.observe_step(&bad).is_none(), "warned twice");
    assert!(h.observe_step(&step(5, 0.5, 0.5)).is_none());
    bad.step = 6;
    assert!(h.observe_step(&bad).is_some(), "a new episode warns again");
}

#[test]
fn saturated_discriminator_warns_after_many_steps() {
    let mut h = HealthMonitor::default();
    for s in 1..=100 {
        assert!(h.observe_step(&step(s, 0.7, 0.3)).is_none());
    }
    // D(x) → 1, D(G(z)) → 0 from step 101: the warning comes 200 steps later, once.
    let mut raised = Vec::new();
    for s in 101..=400 {
        raised.extend(h.observe_step(&step(s, 0.999, 0.001)));
    }
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].kind, WarningKind::DiscriminatorWins);
    assert_eq!(raised[0].step, 301);
    assert!(
        raised[0].message.contains("since step 101"),
        "{}",
        raised[0].message
    );
    // A short saturation is no warning.
    let mut h = HealthMonitor::default();
    for s in 1..=150 {
        assert!(h.observe_step(&step(s, 0.999, 0.001)).is_none());
    }
    assert!(h.observe_step(&step(151, 0.8, 0.2)).is_none());
}

#[test]
fn coverage_drop_and_imbalance_warn() {
    let mut h = HealthMonitor::default();
    let even = vec![10; 10];
    assert!(h
        .observe_eval(100, &eval(10, even.clone(), 0.01, 50.0))
        .is_empty());
    // One class fewer: normal noise, no warning.
    assert!(h
        .observe_eval(200, &eval(9, even.clone(), 0.05, 40.0))
        .is_empty());
    // Collapse onto 3 classes: both warnings.
    let collapsed = vec![50, 30, 20, 0, 0, 0, 0, 0, 0, 0];
    let w = h.observe_eval(300, &eval(3, collapsed.clone(), 1.2, 80.0));
    let kinds: Vec<_> = w.iter().map(|w| w.kind).collect();
    assert_eq!(
        kinds,
        vec![WarningKind::CoverageDrop, WarningKind::ClassImbalance]
    );
    assert!(
        w[0].message.contains("from 10/10 (step 100) to 3/10"),
        "{}",
        w[0].message
    );
    // Still collapsed: no repeat.
    assert!(h
        .observe_eval(400, &eval(3, collapsed, 1.2, 80.0))
        .is_empty());
}

fn make_run(dir: &std::path::Path) -> RunDir {
    let run = RunDir::create(
        dir.join("run"),
        &json!({"model": "dcgan", "data": {"source": "mnist-mini"}, "schedule": {"steps": 300},
                "note": "<script>alert(1)</script>"}),
    )
    .unwrap();
    for s in (10..=300).step_by(10) {
        let t = s as f32 / 300.0;
        run.append_metrics(&step(s, 0.6 + 0.3 * t, 0.3 - 0.2 * t))
            .unwrap();
    }
    let even = vec![10; 10];
    run.append_metrics(&EvalLine {
        step: 100,
        eval: &eval(10, even.clone(), 0.02, 60.0),
    })
    .unwrap();
    let collapsed = vec![50, 30, 20, 0, 0, 0, 0, 0, 0, 0];
    let e = eval(3, collapsed, 1.2, 80.0);
    run.append_metrics(&EvalLine {
        step: 200,
        eval: &e,
    })
    .unwrap();
    let mut h = HealthMonitor::default();
    h.observe_eval(100, &eval(10, even, 0.02, 60.0));
    for w in h.observe_eval(200, &e) {
        run.append_metrics(&WarningLine {
            step: 200,
            warning: &w,
        })
        .unwrap();
    }
    for s in [100u64, 200, 300] {
        let imgs = Tensor::rand(-1f32, 1.0, (16, 1, 28, 28), &Device::Cpu).unwrap();
        save_grid(&imgs, 4, &run.sample_path(s)).unwrap();
    }
    run
}

#[test]
fn report_is_self_contained_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let run = make_run(dir.path());
    let h = read_history(&run).unwrap();
    assert_eq!((h.steps.len(), h.evals.len(), h.warnings.len()), (30, 2, 2));
    let path = write_report(&run).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    assert_eq!(html, render_report(&run).unwrap());
    // Three sample grids, and charts: losses, D outputs, FID, IS is absent (no IS in these
    // evals), coverage, KL, precision/recall, density/coverage.
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 3);
    assert!(
        html.contains("alt=\"Density and coverage (k = 3)\""),
        "{html}"
    );
    assert_eq!(
        html.matches("src=\"data:image/svg+xml;base64,").count(),
        7,
        "{html}"
    );
    for want in [
        "step 300 of 300",
        "mode collapse: class coverage fell from 10/10 (step 100) to 3/10",
        "partial mode collapse",
        "100 samples",
        "mnist-mini test split (1000 images)",
        "&lt;script&gt;",
    ] {
        assert!(html.contains(want), "report lacks {want:?}");
    }
    assert!(!html.contains("<script>"), "config text was not escaped");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external resource"
    );
    // A malformed metrics line is an error naming the file and the line.
    std::fs::write(run.metrics_path(), "{\"step\": 1}\nnot json\n").unwrap();
    let e = render_report(&run).unwrap_err().to_string();
    assert!(e.contains("metrics.jsonl") && e.contains("line 2"), "{e}");
}

#[test]
fn translation_evaluations_are_read_and_shown_for_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(
        dir.path().join("run"),
        &json!({"model": "cyclegan", "data": {"dataroot": "thin2thick"},
                "schedule": {"steps": 200}}),
    )
    .unwrap();
    let with = |reference: &str, fid: f64| EvalReport {
        reference: reference.into(),
        kid: Some(gan_core::eval_metrics::Kid {
            mean: fid / 10.0,
            std: 1.0,
            subsets: 100,
            subset_size: 250,
        }),
        ..eval(10, vec![10; 10], 0.02, fid)
    };
    for (s, fid) in [(100u64, 90.0), (200, 45.0)] {
        let scores = TranslationScores {
            a2b: with("real testB", fid),
            b2a: with("real testA", fid + 20.0),
        };
        run.append_metrics(&TranslationEvalLine {
            step: s,
            translation_eval: &scores,
        })
        .unwrap();
    }
    let h = read_history(&run).unwrap();
    assert!(h.evals.is_empty());
    let steps: Vec<(u64, f64, f64)> = h
        .translation_evals
        .iter()
        .map(|(s, t)| (*s, t.a2b.fid, t.b2a.fid))
        .collect();
    assert_eq!(steps, [(100, 90.0, 110.0), (200, 45.0, 65.0)]);
    assert_eq!(h.translation_evals[1].1.b2a.reference, "real testA");
    let html = render_report(&run).unwrap();
    for want in [
        "Latest evaluation: G(testA) against the real testB",
        "Latest evaluation: F(testB) against the real testA",
        "FID of the translations",
        "KID of the translations",
    ] {
        assert!(html.contains(want), "no {want:?}");
    }
    assert!(!html.contains("No evaluation yet"));
}
