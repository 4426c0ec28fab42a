//! What every train command shares through the one train path: a run folder that fails before
//! its first checkpoint does not block the corrected command, a run of another kind is refused
//! with the command that resumes it, and a WGAN-GP run gets evaluations, health checks and a
//! report of its own numbers.

#[allow(dead_code)] // not every test file uses every helper
mod common;

use std::process::Output;

use common::{gan_cli, ok};

fn fails_with(out: &Output, code: i32, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    assert!(stderr.contains(needle), "wanted {needle:?} in:\n{stderr}");
    stderr
}

const TINY: [&str; 8] = common::TINY_DCGAN;

/// `train MODEL --data mnist-mini --out OUT --steps STEPS`, then `net` (network flags such as
/// [`TINY`]) and `extra`.
fn mini_run<'a>(
    model: &'a str,
    out: &'a str,
    steps: &'a str,
    net: &[&'a str],
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        model,
        "--data",
        "mnist-mini",
        "--out",
        out,
        "--steps",
        steps,
    ];
    args.extend(net);
    args.extend(extra);
    args
}

/// Five images at batch 64: refused before anything is written; the corrected command with the
/// same --out then trains. An evaluator that does not exist fails after the folder was created:
/// the folder is removed again, so the corrected command works there too.
#[test]
fn a_failed_start_leaves_no_dead_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let imgs = d.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    for i in 0..5 {
        image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * 9 + y * i) % 256) as u8]))
            .save(imgs.join(format!("{i}.png")))
            .unwrap();
    }
    let out = gan_cli(
        &[
            "train",
            "dcgan",
            "--data",
            "imgs",
            "--channels",
            "1",
            "--out",
            "run",
            "--steps",
            "1",
        ],
        d,
    );
    fails_with(&out, 2, "fewer than one batch");
    assert!(!d.join("run").exists(), "nothing written");
    let mut args = vec![
        "train",
        "dcgan",
        "--data",
        "imgs",
        "--channels",
        "1",
        "--out",
        "run",
    ];
    args.extend([
        "--steps",
        "1",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--nz",
        "10",
        "--batch-size",
        "4",
    ]);
    ok(&gan_cli(&args, d));

    let mut args = vec![
        "train",
        "wgan-gp",
        "--data",
        "mnist-mini",
        "--out",
        "gp",
        "--steps",
        "1",
    ];
    args.extend(TINY);
    args.extend(["--eval-every", "1", "--evaluator", "no-such-evaluator"]);
    fails_with(&gan_cli(&args, d), 2, "no-such-evaluator");
    assert!(!d.join("gp").exists(), "the failed run folder is removed");
}

/// `train wgan --resume <a DCGAN run>` names the kind and the command that resumes it.
#[test]
fn resuming_with_the_wrong_command_names_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut args = vec![
        "train",
        "dcgan",
        "--data",
        "mnist-mini",
        "--out",
        "run",
        "--steps",
        "1",
    ];
    args.extend(TINY);
    ok(&gan_cli(&args, d));
    let out = gan_cli(&["train", "wgan", "--resume", "run", "--steps", "2"], d);
    fails_with(
        &out,
        2,
        "run is a dcgan run, not a wgan run; resume it with: gan-cli train dcgan --resume run",
    );
    let out = gan_cli(&["train", "toy", "--resume", "run"], d);
    fails_with(&out, 2, "gan-cli train dcgan --resume run");
}

/// WGAN-GP with --eval-every: evaluations in metrics.jsonl, and a report whose curves are the
/// critic's own (Wasserstein estimate, critic scores), never D(x) as a probability.
#[test]
fn wgan_gp_evaluates_and_reports_its_own_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut args = mini_run("wgan-gp", "gp", "4", &TINY, &[]);
    args.extend([
        "--n-critic",
        "2",
        "--eval-every",
        "2",
        "--eval-count",
        "50",
        "--log-every",
        "1",
    ]);
    let stdout = ok(&gan_cli(&args, d));
    assert!(stdout.contains("step 4: W "), "{stdout}");
    let metrics = std::fs::read_to_string(d.join("gp/metrics.jsonl")).unwrap();
    let evals = metrics.lines().filter(|l| l.contains("\"eval\"")).count();
    assert_eq!(evals, 2, "evaluations at steps 2 and 4:\n{metrics}");
    let html = std::fs::read_to_string(d.join("gp/report.html")).unwrap();
    assert!(
        html.contains("wgan-gp on mnist-mini"),
        "the report names its model and data"
    );
    assert!(html.contains("Wasserstein estimate"));
    assert!(html.contains("Critic scores"));
    assert!(!html.contains("Discriminator outputs"));
}

/// Flags given with `--resume` are applied and recorded in config.json's `history` when they can
/// change in a run (learning rate, length, cadences), and refused, naming the flag, when they
/// cannot (the networks' widths, the batch size).
#[test]
fn resume_flags_are_applied_and_recorded_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut args = vec![
        "train",
        "dcgan",
        "--data",
        "mnist-mini",
        "--out",
        "run",
        "--steps",
        "2",
    ];
    args.extend(TINY);
    ok(&gan_cli(&args, d));
    let out = gan_cli(
        &[
            "train",
            "dcgan",
            "--resume",
            "run",
            "--ngf",
            "16",
            "--batch-size",
            "4",
        ],
        d,
    );
    let stderr = fails_with(
        &out,
        2,
        "--batch-size, --ngf cannot change when resuming run",
    );
    assert!(
        stderr.contains("--lr"),
        "the message lists what may change: {stderr}"
    );
    let out = gan_cli(
        &[
            "train",
            "dcgan",
            "--resume",
            "run",
            "--steps",
            "3",
            "--lr",
            "1e-4",
            "--sample-every",
            "1",
        ],
        d,
    );
    let stdout = ok(&out);
    assert!(stdout.contains("step 3:"), "{stdout}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["adam_g"]["lr"], 1e-4);
    assert_eq!(cfg["adam_d"]["lr"], 1e-4);
    assert_eq!(cfg["schedule"]["steps"], 3);
    assert_eq!(cfg["schedule"]["sample_every"], 1);
    let h = &cfg["history"][0];
    assert_eq!(h["step"], 2, "{cfg}");
    assert_eq!(
        h["changed"]["adam_g.lr"],
        serde_json::json!([0.0002, 0.0001])
    );
    assert_eq!(h["changed"]["schedule.steps"], serde_json::json!([2, 3]));
    assert!(h["changed"].get("dcgan.ngf").is_none());
    assert!(d.join("run/samples/step-000003.png").is_file());
}

/// Resuming with a longer length, Ctrl-C, then the printed hint (no length given): the new
/// length was recorded in config.json, so the hint trains on. A finished run resumed without a
/// longer length is refused, naming the length, instead of training nothing and exiting 0.
#[cfg(unix)]
#[test]
fn resume_after_ctrl_c_of_a_lengthened_run_trains_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = d.join("run");
    let mut args = common::TINY_TOY.to_vec();
    args.extend(["--steps", "20", "--out", "run"]);
    ok(&gan_cli(&args, d));
    assert_eq!(common::latest_step(&run), 20);

    let resume = vec!["train", "toy", "--resume", "run"];
    let stderr = fails_with(&gan_cli(&resume, d), 2, "has finished its 20 steps");
    assert!(stderr.contains("--steps or --epochs"), "{stderr}");

    let mut longer = resume.clone();
    longer.extend(["--steps", "1000000"]);
    let out = common::interrupt_when(&longer, d, || common::last_logged_step(&run) > 40);
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let hint = stdout
        .lines()
        .find_map(|l| l.split_once("continue with: gan-cli ").map(|(_, c)| c))
        .unwrap_or_else(|| panic!("no resume hint in:\n{stdout}"));
    assert_eq!(hint, "train toy --resume run");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["schedule"]["steps"], 1_000_000, "{cfg}");
    let stopped = common::latest_step(&run);
    assert!(stopped > 40, "{stopped}");

    // The hint, as printed: it trains on from the checkpoint.
    let hint: Vec<&str> = hint.split(' ').collect();
    let out = common::interrupt_when(&hint, d, || common::last_logged_step(&run) > stopped + 20);
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(common::latest_step(&run) > stopped + 20);
}

/// `--init-generator`/`--init-discriminator` start a new run from another run's checkpoint files
/// and are recorded in its `config.json`; a file of another network's shape or a missing file
/// exits 2 naming it and leaves no run folder; with `--resume` the flags are refused.
#[test]
fn a_new_run_starts_from_given_weights() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = |out: &str, extra: &[&str]| gan_cli(&mini_run("dcgan", out, "1", &TINY, extra), d);
    ok(&train("a", &[]));
    let ck = d.join("a/checkpoints/latest");
    let (g, disc) = (
        ck.join("generator.safetensors"),
        ck.join("discriminator.safetensors"),
    );
    let (g, disc) = (g.to_str().unwrap(), disc.to_str().unwrap());
    ok(&train(
        "b",
        &["--init-generator", g, "--init-discriminator", disc],
    ));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("b/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["init"]["generator"], g);
    assert_eq!(cfg["init"]["discriminator"], disc);

    let mut wide = TINY;
    wide[1] = "16"; // --ngf
    let out = gan_cli(
        &mini_run("dcgan", "c", "1", &wide, &["--init-generator", g]),
        d,
    );
    let stderr = fails_with(&out, 2, "of another shape");
    assert!(stderr.contains("generator.safetensors"), "{stderr}");
    assert!(!d.join("c").exists(), "the failed run folder is removed");
    fails_with(
        &train("c", &["--init-discriminator", "nowhere.safetensors"]),
        2,
        "--init-discriminator nowhere.safetensors: no such file",
    );
    assert!(!d.join("c").exists());
    let out = gan_cli(
        &["train", "dcgan", "--resume", "b", "--init-generator", g],
        d,
    );
    fails_with(&out, 2, "--init-generator cannot change when resuming");
}

/// `--max-items N` trains on N images, recorded in `config.json`; the resumed run reads the same
/// N, and the flag cannot change on resume.
#[test]
fn max_items_trains_on_a_recorded_subset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&gan_cli(
        &mini_run("dcgan", "run", "1", &TINY, &["--max-items", "40"]),
        d,
    ));
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("run/config.json")).unwrap()).unwrap()
    };
    let cfg = read();
    assert_eq!(cfg["data"]["items"], 40);
    assert_eq!(cfg["data"]["max_items"], 40);
    ok(&gan_cli(
        &["train", "dcgan", "--resume", "run", "--steps", "2"],
        d,
    ));
    assert_eq!(read()["data"]["items"], 40);
    let out = gan_cli(
        &[
            "train",
            "dcgan",
            "--resume",
            "run",
            "--steps",
            "3",
            "--max-items",
            "80",
        ],
        d,
    );
    fails_with(&out, 2, "--max-items cannot change when resuming");
}
