//! Helpers of the end-to-end tests: run the built `gan-cli` and check how it ended.

use std::path::Path;
use std::process::{Command, Output};

/// Flags of a DCGAN small enough to train in a test.
pub const TINY_DCGAN: [&str; 8] = [
    "--ngf",
    "8",
    "--ndf",
    "8",
    "--nz",
    "10",
    "--batch-size",
    "8",
];

/// `train toy` on ring8 with a narrow network (add `--steps`).
pub const TINY_TOY: [&str; 8] = [
    "train",
    "toy",
    "--dist",
    "ring8",
    "--width",
    "8",
    "--batch-size",
    "16",
];

/// Runs `gan-cli args` in `cwd`, with `GAN_DATASETS` pointing at the repository's `datasets/`
/// and the cache of reference statistics in `cwd/.gan-cache`.
pub fn gan_cli(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gan-cli"))
        .args(args)
        .current_dir(cwd)
        .env(
            "GAN_DATASETS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets"),
        )
        .env("GAN_CACHE", cwd.join(".gan-cache"))
        .output()
        .expect("gan-cli runs")
}

/// Asserts success (printing both streams if not) and returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `gan-cli args` in `cwd`, waits until `ready()` holds (polling; at most two minutes,
/// then the test fails), sends it SIGINT (Ctrl-C) and returns how it ended.
#[cfg(unix)]
pub fn interrupt_when(args: &[&str], cwd: &Path, ready: impl Fn() -> bool) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_gan-cli"))
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gan-cli starts");
    let start = std::time::Instant::now();
    while !ready() {
        assert!(
            start.elapsed().as_secs() < 120,
            "gan-cli {args:?} never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.wait_with_output().unwrap()
}

/// The step of the `latest` checkpoint of the run folder `run`.
pub fn latest_step(run: &Path) -> u64 {
    let path = run.join("checkpoints/latest/state.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["step"].as_u64().unwrap()
}

/// The last step logged in the run's `metrics.jsonl` (0 before any).
pub fn last_logged_step(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["step"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Writes the Inception network of width / 16 with the deterministic weights of the FID parity
/// test (`gan_models::inception::formula_weights`) to `path` (a `.safetensors` file): what
/// `--inception-weights` takes, without a download.
pub fn tiny_inception_weights(path: &Path) {
    let cfg = gan_models::inception::InceptionConfig { width_divisor: 16 };
    let tensors = gan_models::inception::formula_weights(cfg).unwrap();
    candle_core::safetensors::save(&tensors, path).unwrap();
}
