//! `cargo xtask fid-parity --python PATH`: regenerate the pytorch-fid parity fixture of
//! `crates/gan-models/tests/inception_parity.rs` with `xtask/scripts/fid_parity.py`, run by a
//! Python that has torch, torchvision and pytorch-fid (no weights are downloaded: the script
//! gives pytorch-fid's network deterministic formula weights). Not run in CI.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::Args;

#[derive(Debug, Args)]
pub struct FidParityArgs {
    /// A Python with torch, torchvision and pytorch-fid installed.
    #[arg(long)]
    python: PathBuf,
    /// The fixture to write.
    #[arg(
        long,
        default_value = "crates/gan-models/tests/data/inception_parity.safetensors"
    )]
    out: PathBuf,
    /// Images in each of the two FID sets.
    #[arg(long, default_value_t = 16)]
    fid_count: usize,
    /// Feature indices kept for the FID (below --fid-count, for full-rank covariances).
    #[arg(long, default_value_t = 8)]
    fid_dims: usize,
    /// torch's CPU threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

pub fn run(root: &Path, a: FidParityArgs) -> anyhow::Result<()> {
    let script = root.join("xtask/scripts/fid_parity.py");
    let out = root.join(&a.out);
    let status = Command::new(&a.python)
        .arg(&script)
        .arg("--out")
        .arg(&out)
        .args(["--fid-count", &a.fid_count.to_string()])
        .args(["--fid-dims", &a.fid_dims.to_string()])
        .args(["--threads", &a.threads.to_string()])
        .status()
        .with_context(|| format!("cannot run {}", a.python.display()))?;
    if !status.success() {
        bail!(
            "{} {} failed ({status}); it needs torch, torchvision and pytorch-fid",
            a.python.display(),
            script.display()
        );
    }
    println!(
        "wrote {}; check it with: cargo test -p gan-models --test inception_parity",
        out.display()
    );
    Ok(())
}
