//! Evaluation with the Inception network during training (`--eval-every N --evaluator inception
//! --inception-weights PATH`), on weights from the FID parity test's formula (the network of
//! width / 16: same structure and tensor names, no download).

#[allow(dead_code)] // not every test file uses every helper
mod common;

use common::{gan_cli, ok, tiny_inception_weights};

#[test]
fn every_image_model_evaluates_with_inception_during_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tiny_inception_weights(&d.join("inception.safetensors"));
    for model in ["dcgan", "wgan", "wgan-gp"] {
        let out = format!("run-{model}");
        let mut args = vec![
            "train",
            model,
            "--data",
            "mnist-mini",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--ngf",
            "4",
            "--ndf",
            "4",
            "--nz",
            "8",
            "--out",
            &out,
            "--eval-every",
            "2",
            "--eval-count",
            "10",
            "--evaluator",
            "inception",
            "--inception-weights",
            "inception.safetensors",
        ];
        if model == "wgan" {
            args.extend_from_slice(&["--n-critic", "1", "--no-burst"]);
        } else if model == "wgan-gp" {
            args.extend_from_slice(&["--n-critic", "1"]);
        }
        let output = gan_cli(&args, d);
        ok(&output);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("eval at step 2 (10 samples vs 1000"),
            "{model}: {stderr}"
        );
        let metrics = std::fs::read_to_string(d.join(&out).join("metrics.jsonl")).unwrap();
        let evals: Vec<serde_json::Value> = metrics
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v.get("eval").cloned())
            .collect();
        assert_eq!(evals.len(), 1, "{model}: {metrics}");
        let e = &evals[0];
        assert_eq!(e["evaluator"], "inception (width / 16)", "{model}: {e}");
        assert_eq!(e["samples"], 10);
        assert_eq!(e["reference_samples"], 1000);
        let fid = e["fid"].as_f64().unwrap();
        assert!(fid.is_finite() && fid > 0.0, "{model}: FID {fid}");
        assert!(e["kid"]["mean"].as_f64().is_some(), "{model}: {e}");
        assert!(e["inception_score"].is_null(), "no classes: {e}");
    }
}
