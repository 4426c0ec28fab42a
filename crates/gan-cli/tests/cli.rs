//! The `gan-cli` binary end to end: train a tiny run, then sample and interpolate from the run
//! folder alone; bad input exits with code 2 and a message naming the problem.

#[allow(dead_code)] // not every test file uses every helper
mod common;

use std::path::Path;

use common::{gan_cli, ok};

fn png_size(path: &Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn train_sample_interpolate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut args = vec![
        "train",
        "dcgan",
        "--data",
        "mnist-mini",
        "--steps",
        "3",
        "--out",
        "run",
        "--sample-every",
        "2",
    ];
    args.extend(common::TINY_DCGAN);
    let out = gan_cli(&args, d);
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("samples in run/samples"), "{stdout}");
    let run = d.join("run");
    for f in [
        "config.json",
        "metrics.jsonl",
        "real.png",
        "samples/step-000000.png",
        "samples/step-000002.png",
        "samples/step-000003.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // 64 real training images, in a grid like the samples'.
    assert_eq!(png_size(&run.join("real.png")), (8 * 30 + 2, 8 * 30 + 2));
    // The log went to a pipe: plain text, no colour codes.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "colour codes in a piped log:\n{stderr}"
    );
    for f in [
        "generator.safetensors",
        "discriminator.safetensors",
        "optimizers.safetensors",
        "state.json",
    ] {
        assert!(
            run.join("checkpoints/latest").join(f).is_file(),
            "{f} missing"
        );
    }
    // 64 samples: an 8×8 grid of 28-pixel cells with 2-pixel padding.
    assert_eq!(
        png_size(&run.join("samples/step-000003.png")),
        (8 * 30 + 2, 8 * 30 + 2)
    );

    // From the run folder alone: one grid, or a folder of single 28×28 grayscale images.
    ok(&gan_cli(
        &[
            "sample", "--run", "run", "--count", "9", "--out", "grid.png",
        ],
        d,
    ));
    assert_eq!(png_size(&d.join("grid.png")), (3 * 30 + 2, 3 * 30 + 2));
    ok(&gan_cli(
        &["sample", "--run", "run", "--count", "5", "--out", "singles"],
        d,
    ));
    let files: Vec<_> = std::fs::read_dir(d.join("singles")).unwrap().collect();
    assert_eq!(files.len(), 5);
    let one = image::open(d.join("singles/000004.png")).unwrap();
    assert_eq!((one.width(), one.height()), (28, 28));
    assert!(matches!(one.color(), image::ColorType::L8));

    ok(&gan_cli(
        &[
            "interpolate",
            "--run",
            "run",
            "--out",
            "walk.png",
            "--rows",
            "3",
            "--steps",
            "6",
        ],
        d,
    ));
    assert_eq!(png_size(&d.join("walk.png")), (6 * 30 + 2, 3 * 30 + 2));
    ok(&gan_cli(
        &[
            "interpolate",
            "--run",
            "run",
            "--out",
            "dim.png",
            "--dim",
            "4",
            "--rows",
            "2",
        ],
        d,
    ));
    assert_eq!(png_size(&d.join("dim.png")), (10 * 30 + 2, 2 * 30 + 2));

    // Without --out, outputs about a run go into its folder, never over an earlier one, and
    // nothing lands in the working directory.
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let run_arg = run.to_str().unwrap();
    for _ in 0..2 {
        for args in [
            &["sample", "--run", run_arg, "--count", "4"][..],
            &["interpolate", "--run", run_arg, "--dim", "4", "--rows", "1"][..],
        ] {
            ok(&gan_cli(args, &elsewhere));
        }
    }
    for f in [
        "sample-latest.png",
        "sample-latest-2.png",
        "walk-latest-dim4.png",
        "walk-latest-dim4-2.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    assert_eq!(
        png_size(&run.join("sample-latest.png")),
        (2 * 30 + 2, 2 * 30 + 2)
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // Resume extends the run; a second train into the same folder is refused.
    ok(&gan_cli(
        &["train", "dcgan", "--resume", "run", "--steps", "4"],
        d,
    ));
    let state = std::fs::read_to_string(run.join("checkpoints/latest/state.json")).unwrap();
    assert!(state.contains("\"step\": 4"), "{state}");
    let again = gan_cli(&["train", "dcgan", "--steps", "1", "--out", "run"], d);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a run"));
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["sample", "--run", "nowhere", "--out", "x.png"],
            "not a run folder",
        ),
        (
            vec!["train", "dcgan", "--data", "no-such-folder"],
            "no-such-folder",
        ),
        (
            vec!["train", "dcgan", "--image-size", "48", "--steps", "1"],
            "28, 32 or 64",
        ),
        (
            vec!["train", "dcgan", "--device", "tpu", "--steps", "1"],
            "unknown device",
        ),
        (
            vec!["train", "sngan", "--classic", "--steps", "1"],
            "--classic is a setting of train dcgan",
        ),
        (
            vec!["train", "dcgan", "--classic", "--r1", "0.1", "--steps", "1"],
            "leave out --classic",
        ),
    ];
    if !cfg!(feature = "cuda") {
        cases.push((
            vec!["train", "dcgan", "--device", "cuda", "--steps", "1"],
            "rebuild with `--features cuda`",
        ));
    }
    for (args, needle) in cases {
        let out = gan_cli(&args, d);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(
        !d.join("runs").exists(),
        "a failed start left a run folder behind"
    );
    // A folder with a text file named .png.
    std::fs::create_dir(d.join("imgs")).unwrap();
    std::fs::write(d.join("imgs/fake.png"), "text").unwrap();
    let out = gan_cli(&["train", "dcgan", "--data", "imgs", "--steps", "1"], d);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fake.png"));
}

/// Ctrl-C (SIGINT) during training: the run stops at the next step, writes its `latest`
/// checkpoint, says how to continue, and exits with 130; `--resume` then finishes the run.
#[cfg(unix)]
#[test]
fn ctrl_c_checkpoints_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("runs/toy");
    let run_arg = run.to_str().unwrap();
    // Once training is under way (metrics are logged every 10 steps), Ctrl-C.
    let metrics = run.join("metrics.jsonl");
    let out = common::interrupt_when(
        &[
            "train",
            "toy",
            "--dist",
            "ring8",
            "--steps",
            "1000000",
            "--width",
            "8",
            "--batch-size",
            "16",
            "--out",
            run_arg,
        ],
        dir.path(),
        || metrics.is_file(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("--resume"), "{stdout}");
    let step = common::latest_step(&run);
    assert!(step > 0 && step < 1_000_000, "{step}");
    // Finish it from the checkpoint: five more steps.
    let out = gan_cli(
        &[
            "train",
            "toy",
            "--resume",
            run_arg,
            "--steps",
            &(step + 5).to_string(),
        ],
        dir.path(),
    );
    ok(&out);
}

/// `RUST_LOG=debug` adds each logged step's numbers to the log.
#[test]
fn rust_log_debug_shows_more() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = common::TINY_TOY.to_vec();
    args.extend(["--steps", "10"]);
    let run = |level: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gan-cli"))
            .args(&args)
            .args(["--out", level])
            .env("RUST_LOG", level)
            .current_dir(dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&ok_output(out)).into_owned()
    };
    let info = run("info");
    let debug = run("debug");
    assert!(!info.contains("DEBUG"), "{info}");
    assert!(debug.contains("DEBUG"), "{debug}");
    assert!(debug.contains("step=10"), "{debug}");
}

/// Asserts success and returns stderr.
fn ok_output(out: std::process::Output) -> Vec<u8> {
    ok(&out);
    out.stderr
}

/// `train dcgan` trains with spectral norm, the hinge loss and Adam(β1 0, β2 0.9) unless
/// `--classic` asks for the PyTorch DCGAN example's setting; `train cgan` keeps that setting.
#[test]
fn dcgan_defaults_and_classic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |run: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(d.join(run).join("config.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    for (run, extra) in [("tuned", &[][..]), ("classic", &["--classic"][..])] {
        let mut args = vec!["train", "dcgan", "--steps", "1", "--out", run];
        args.extend(common::TINY_DCGAN);
        args.extend(extra);
        ok(&gan_cli(&args, d));
    }
    let (tuned, classic) = (config("tuned"), config("classic"));
    assert_eq!(tuned["model"], "dcgan");
    assert_eq!(tuned["dcgan"]["spectral_norm"], true);
    assert_eq!(tuned["step"]["loss"], "hinge");
    for adam in ["adam_g", "adam_d"] {
        assert_eq!(tuned[adam]["beta1"], 0.0);
        assert_eq!(tuned[adam]["beta2"], 0.9);
        assert_eq!(tuned[adam]["lr"], 2e-4);
        assert_eq!(classic[adam]["beta1"], 0.5);
        assert_eq!(classic[adam]["beta2"], 0.999);
    }
    assert!(
        tuned.get("options").is_none(),
        "one discriminator step: {tuned}"
    );
    assert_ne!(classic["dcgan"]["spectral_norm"], true);
    assert_eq!(classic["step"]["loss"], "non-saturating");
    // A flag still overrides the default.
    let mut args = vec!["train", "dcgan", "--steps", "1", "--out", "bce"];
    args.extend(common::TINY_DCGAN);
    args.extend(["--loss", "non-saturating"]);
    ok(&gan_cli(&args, d));
    assert_eq!(config("bce")["step"]["loss"], "non-saturating");
    assert_eq!(config("bce")["dcgan"]["spectral_norm"], true);
}
