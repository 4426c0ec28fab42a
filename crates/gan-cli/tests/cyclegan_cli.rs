//! `gan-cli train cyclegan`, `translate` and `eval-translation` end to end on a tiny dataset the
//! test writes; bad input exits with code 2 and a message naming the file, without a panic.

#[allow(dead_code)] // not every test file uses every helper
mod common;

use std::path::Path;
use std::process::Output;

use common::{gan_cli, ok};

/// Exit code 2, no panic, and stderr containing `needle`.
fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
}

/// `n` gray 12×12 PNGs with a bar of width `thick`.
fn write_pngs(dir: &Path, n: usize, thick: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n as u32 {
        let img = image::GrayImage::from_fn(12, 12, |x, y| {
            let on = x >= 2 + i && x < 2 + i + thick && (3..9).contains(&y);
            image::Luma([if on { 240 } else { 0 }])
        });
        img.save(dir.join(format!("img{i}.png"))).unwrap();
    }
}

const TINY: &[&str] = &[
    "--channels",
    "1",
    "--no-flip",
    "--ngf",
    "4",
    "--ndf",
    "4",
    "--n-blocks",
    "1",
    "--n-layers",
    "1",
    "--epochs",
    "1",
    "--epochs-decay",
    "1",
];

#[test]
fn train_translate_eval_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (s, thick) in [("trainA", 1), ("trainB", 3), ("testA", 1), ("testB", 3)] {
        write_pngs(&d.join("data").join(s), 3, thick);
    }
    let mut args = vec!["train", "cyclegan", "--dataroot", "data", "--out", "run"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--crop-size", "12", "--load-size", "12"]);
    let stdout = ok(&gan_cli(&args, d));
    assert!(stdout.contains("samples in run/samples"), "{stdout}");
    // 1 + 1 epochs of 3 steps.
    let grid = d.join("run/samples/step-000006.png");
    assert_eq!(
        image::image_dimensions(&grid).unwrap(),
        (3 * 14 + 2, 6 * 14 + 2)
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model"], "cyclegan");
    assert_eq!(cfg["schedule"]["steps"], 6);
    assert_eq!(cfg["pool_size"], 50);
    assert_eq!(cfg["loss"]["lambda_identity"], 0.5);

    // Resume to a longer run.
    let stdout = ok(&gan_cli(
        &["train", "cyclegan", "--resume", "run", "--steps", "7"],
        d,
    ));
    assert!(stdout.contains("step 7:"), "{stdout}");

    // Translate a folder, both directions: one PNG per input, same stems, same size.
    for dir in ["a2b", "b2a"] {
        let out = format!("out-{dir}");
        let stdout = ok(&gan_cli(
            &[
                "translate",
                "--run",
                "run",
                "--direction",
                dir,
                "--input",
                "data/testA",
                "--out",
                &out,
            ],
            d,
        ));
        assert!(stdout.contains("translated 3 images"), "{stdout}");
        for i in 0..3 {
            let p = d.join(&out).join(format!("img{i}.png"));
            assert_eq!(
                image::image_dimensions(&p).unwrap(),
                (12, 12),
                "{}",
                p.display()
            );
        }
    }

    // The known-answer evaluation, with JSON.
    let stdout = ok(&gan_cli(
        &[
            "eval-translation",
            "--run",
            "run",
            "--dataroot",
            "data",
            "--json",
            "eval.json",
        ],
        d,
    ));
    assert!(stdout.contains("MAE identity a vs dilate(a)"), "{stdout}");
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("eval.json")).unwrap()).unwrap();
    assert_eq!(e["images"], 3);
    // Bars of width 1 and height 6 → 3×8 after dilation: 18 new pixels of 144 per image.
    assert!((e["mae_identity"].as_f64().unwrap() - 18.0 * 240.0 / 255.0 / 144.0).abs() < 1e-6);
    // FID and KID both ways on the project's evaluator (grey data), with the warnings of 3
    // images; precision/recall need k + 1 = 4 and are n/a.
    for what in [
        "G(testA) against the real testB:",
        "F(testB) against the real testA:",
    ] {
        let part = stdout
            .split(what)
            .nth(1)
            .unwrap_or_else(|| panic!("no {what} in {stdout}"));
        for row in [
            "evaluator",
            "samples",
            "FID (evaluator features)",
            "KID (evaluator features)",
        ] {
            assert!(
                part.contains(&format!("  {row} ")),
                "no {row} after {what}:\n{stdout}"
            );
        }
    }
    for dir in ["a2b", "b2a"] {
        let r = &e["scores"][dir];
        assert_eq!(r["evaluator"], "mnist", "{r}");
        assert_eq!(
            (r["samples"].as_u64(), r["reference_samples"].as_u64()),
            (Some(3), Some(3))
        );
        assert!(r["fid"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["kid"]["mean"].as_f64().is_some(), "{r}");
        assert!(r["precision_recall"]["precision"].is_null(), "{r}");
    }
    assert_eq!(e["scores"]["a2b"]["reference"], "real testB");
    // The Inception network instead (the formula's weights, width / 16).
    common::tiny_inception_weights(&d.join("inception.safetensors"));
    let stdout = ok(&gan_cli(
        &[
            "eval-translation",
            "--run",
            "run",
            "--dataroot",
            "data",
            "--evaluator",
            "inception",
            "--inception-weights",
            "inception.safetensors",
        ],
        d,
    ));
    assert!(
        stdout.contains("  evaluator                 inception (width / 16)"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("KID (evaluator features)").count(),
        2,
        "{stdout}"
    );

    // Bad input: a corrupt image (named), a missing folder, a wrong direction, not a run.
    write_pngs(&d.join("bad"), 1, 1);
    std::fs::write(d.join("bad/broken.png"), b"\x89PNG but not really").unwrap();
    let t = |input: &str, dir: &str, run: &str| {
        gan_cli(
            &[
                "translate",
                "--run",
                run,
                "--direction",
                dir,
                "--input",
                input,
                "--out",
                "o",
            ],
            d,
        )
    };
    fails_with(&t("bad", "a2b", "run"), "broken.png");
    assert!(!d.join("o/img0.png").exists(), "nothing written on error");
    fails_with(&t("missing", "a2b", "run"), "missing");
    fails_with(&t("data/testA", "sideways", "run"), "sideways");
    fails_with(&t("data/testA", "a2b", "data"), "config.json");
    fails_with(
        &gan_cli(
            &["eval-translation", "--run", "run", "--dataroot", "bad"],
            d,
        ),
        "testA",
    );
    // Training: a dataroot without trainB, and a crop size the networks cannot take.
    std::fs::create_dir_all(d.join("half/trainA")).unwrap();
    write_pngs(&d.join("half/trainA"), 1, 1);
    let mut args = vec!["train", "cyclegan", "--dataroot", "half", "--out", "r2"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--crop-size", "12", "--load-size", "12"]);
    fails_with(&gan_cli(&args, d), "trainB");
    assert!(!d.join("r2/config.json").exists());
    let mut args = vec!["train", "cyclegan", "--dataroot", "data", "--out", "r3"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--crop-size", "10", "--load-size", "10"]);
    fails_with(&gan_cli(&args, d), "multiple of 4");
}

/// The `translation_eval` lines of a run's `metrics.jsonl`.
/// `train cyclegan` of the tiny networks on 12-pixel crops of `dataroot` into `out`, with
/// `--eval-every 2`, then `extra`.
fn tiny_eval_every_2<'a>(dataroot: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "cyclegan", "--dataroot", dataroot, "--out", out];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&[
        "--crop-size",
        "12",
        "--load-size",
        "12",
        "--eval-every",
        "2",
    ]);
    args.extend_from_slice(extra);
    args
}

fn translation_evals(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("translation_eval").is_some())
        .collect()
}

#[test]
fn eval_every_scores_translations_both_ways_during_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (s, n, thick) in [
        ("trainA", 3, 1),
        ("trainB", 3, 3),
        ("testA", 6, 1),
        ("testB", 6, 3),
    ] {
        write_pngs(&d.join("data").join(s), n, thick);
    }
    let args = tiny_eval_every_2("data", "run", &["--steps", "3", "--eval-count", "10"]);
    let out = gan_cli(&args, d);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Every N steps and at the last step, on the mnist evaluator (grey data), both directions
    // against the other domain's real test images.
    let evals = translation_evals(&d.join("run"));
    let steps: Vec<u64> = evals.iter().map(|v| v["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [2, 3], "{evals:?}");
    for v in &evals {
        for (dir, reference) in [("a2b", "real testB"), ("b2a", "real testA")] {
            let r = &v["translation_eval"][dir];
            assert_eq!(r["evaluator"], "mnist", "{r}");
            assert_eq!(r["reference"], reference, "{r}");
            assert_eq!(
                (r["samples"].as_u64(), r["reference_samples"].as_u64()),
                (Some(6), Some(6)),
                "{r}"
            );
            let fid = r["fid"].as_f64().unwrap();
            assert!(fid.is_finite() && fid > 0.0, "{r}");
            assert!(r["kid"]["mean"].as_f64().unwrap().is_finite(), "{r}");
        }
    }
    assert!(
        stderr.contains("eval at step 2 (translations): G(testA) vs real testB"),
        "{stderr}"
    );
    let report = std::fs::read_to_string(d.join("run/report.html")).unwrap();
    assert!(report.contains("FID of the translations"), "no chart");
    assert!(
        report.contains("Latest evaluation: G(testA) against the real testB"),
        "no table"
    );
    // The references were cached (one file per test folder) and eval-translation reads them.
    let cached: Vec<_> = std::fs::read_dir(d.join(".gan-cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cached.len(), 2, "{cached:?}");
    assert!(cached.iter().all(|f| f.starts_with("reference-real-test")));
    let out = gan_cli(
        &["eval-translation", "--run", "run", "--dataroot", "data"],
        d,
    );
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for set in ["testA", "testB"] {
        assert!(
            stderr.contains(&format!("reading the real {set} statistics from")),
            "{stderr}"
        );
    }

    // An RGB run has no built-in evaluator: refused before training, naming the flags.
    let mut args = tiny_eval_every_2("data", "rgb", &[]);
    let channels = args.iter().position(|a| *a == "--channels").unwrap();
    args[channels + 1] = "3";
    fails_with(&gan_cli(&args, d), "--evaluator inception");
    assert!(!d.join("rgb/config.json").exists());
    // With Inception weights (the formula's, width / 16) it is scored on Inception features.
    common::tiny_inception_weights(&d.join("inception.safetensors"));
    args.extend_from_slice(&[
        "--steps",
        "2",
        "--inception-weights",
        "inception.safetensors",
    ]);
    ok(&gan_cli(&args, d));
    let evals = translation_evals(&d.join("rgb"));
    assert_eq!(evals.len(), 1, "{evals:?}");
    for dir in ["a2b", "b2a"] {
        let r = &evals[0]["translation_eval"][dir];
        assert_eq!(r["evaluator"], "inception (width / 16)", "{r}");
        assert!(r["fid"].as_f64().unwrap().is_finite(), "{r}");
    }
    // A dataroot without test images: refused, naming the folder.
    std::fs::create_dir_all(d.join("notest")).unwrap();
    for s in ["trainA", "trainB"] {
        write_pngs(&d.join("notest").join(s), 2, 1);
    }
    let args = tiny_eval_every_2("notest", "nt", &[]);
    fails_with(&gan_cli(&args, d), "testA");
}
