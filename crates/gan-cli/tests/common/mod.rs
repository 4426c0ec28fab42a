//! Helpers of the end-to-end tests: run the built `gan-cli` and check how it ended.

use std::path::Path;
use std::process::{Command, Output};

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

/// Writes the Inception network of width / 16 with the deterministic weights of the FID parity
/// test (`gan_models::inception::formula_weights`) to `path` (a `.safetensors` file): what
/// `--inception-weights` takes, without a download.
pub fn tiny_inception_weights(path: &Path) {
    let cfg = gan_models::inception::InceptionConfig { width_divisor: 16 };
    let tensors = gan_models::inception::formula_weights(cfg).unwrap();
    candle_core::safetensors::save(&tensors, path).unwrap();
}
