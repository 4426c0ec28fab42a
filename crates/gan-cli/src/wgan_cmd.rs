//! `gan-cli train wgan` and `gan-cli train wgan-gp` (placeholder, filled in by its owner).

use std::process::ExitCode;

/// Flags of `gan-cli train wgan` (weight clipping) and `gan-cli train wgan-gp`.
#[derive(Debug, clap::Args)]
pub struct TrainWganArgs {}

/// Runs `gan-cli train wgan` (`gp` false) or `gan-cli train wgan-gp` (`gp` true).
pub fn train(_a: TrainWganArgs, _gp: bool) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
