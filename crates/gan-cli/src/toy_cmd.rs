//! `gan-cli train toy` and sampling of toy runs (placeholder, filled in by its owner).

use std::path::Path;
use std::process::ExitCode;

/// Flags of `gan-cli train toy`.
#[derive(Debug, clap::Args)]
pub struct TrainToyArgs {}

/// Runs `gan-cli train toy`.
pub fn train(_a: TrainToyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}

/// `gan-cli sample` for a toy run: writes `count` points as `x,y` rows of a CSV file.
pub fn sample(_run: &Path, _checkpoint: &str, _count: usize, _out: &Path, _seed: u64) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
