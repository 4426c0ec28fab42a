//! `cargo xtask ci`: the checks CI runs, cheapest first.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// A step: its name, cargo's arguments and extra environment.
type Step = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

pub fn run(root: &Path) -> anyhow::Result<()> {
    let steps: [Step; 4] = [
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
        ("test", &["test", "--workspace"], &[]),
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
    Ok(())
}
