//! The binary away from the checkout: the default training data (mnist-mini) and the evaluators
//! are built in, so training, `eval` and `report` work from any folder; outputs about a run go
//! into the run's folder.

#[allow(dead_code)] // not every test file uses every helper
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::ok;

/// Runs `gan-cli` in `cwd` with no `GAN_DATASETS`, its cache under `cache` and `PATH` = `path`.
fn gan_cli_away(args: &[&str], cwd: &Path, cache: &Path, path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gan-cli"))
        .args(args)
        .current_dir(cwd)
        .env_remove("GAN_DATASETS")
        .env("XDG_CACHE_HOME", cache)
        .env("PATH", path)
        .output()
        .expect("gan-cli runs")
}

#[test]
fn trains_evaluates_and_reports_outside_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (work, other, cache, bin) = (
        d.join("work"),
        d.join("other"),
        d.join("cache"),
        d.join("bin"),
    );
    for f in [&work, &other, &bin] {
        std::fs::create_dir(f).unwrap();
    }
    let mut args = vec!["train", "dcgan", "--steps", "2", "--out", "run"];
    args.extend(common::TINY_DCGAN);
    let out = gan_cli_away(&args, &work, &cache, &bin);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("training on mnist-mini"), "{stderr}");
    assert!(!work.join("datasets").exists());

    // eval from another folder, the embedded mnist evaluator; the scores go into the run.
    let run = work.join("run");
    let run_arg = run.to_str().unwrap();
    let out = gan_cli_away(
        &["eval", "--run", run_arg, "--count", "50"],
        &other,
        &cache,
        &bin,
    );
    let table = ok(&out);
    assert!(table.contains("FID"), "{table}");
    let scores: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("scores-latest.json")).unwrap())
            .unwrap();
    assert_eq!(scores["report"]["samples"], 50);

    // report --open without any browser opener: the report is written, a warning, exit 0.
    let out = gan_cli_away(&["report", run_arg, "--open"], &other, &cache, &bin);
    ok(&out);
    assert!(run.join("report.html").is_file());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("open it in a browser") || stderr.contains("in a browser"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 0);
}
