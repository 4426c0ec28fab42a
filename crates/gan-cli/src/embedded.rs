//! `mnist-mini` and the two evaluators, built into the binary, so that the default training run
//! and `eval` work from any folder (and after `cargo install`), not only from the checkout.
//!
//! Files on disk take precedence: a datasets folder (`--datasets-dir`, `GAN_DATASETS`, by
//! default `./datasets`) that holds `mnist-mini` and `evaluators/` is used as it is. Otherwise
//! the embedded files are written once into a cache folder (`$XDG_CACHE_HOME/gan-rs` or
//! `~/.cache/gan-rs`), and the folder used is a view of both: the entries of the given folder
//! (a fetched `mnist`, the user's own data) linked first, the embedded ones where it has none.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// One embedded file: its path under the datasets folder and its bytes.
type File = (&'static str, &'static [u8]);

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        [$(($path, include_bytes!(concat!("../../../datasets/", $path)) as &[u8])),*]
    };
}

const FILES: [File; 8] = embed!(
    "mnist-mini/train-images-idx3-ubyte.gz",
    "mnist-mini/train-labels-idx1-ubyte.gz",
    "mnist-mini/t10k-images-idx3-ubyte.gz",
    "mnist-mini/t10k-labels-idx1-ubyte.gz",
    "evaluators/mnist.json",
    "evaluators/mnist.safetensors",
    "evaluators/fashion-mnist.json",
    "evaluators/fashion-mnist.safetensors",
);

/// The top-level entries the embedded files fill.
const ENTRIES: [&str; 2] = ["mnist-mini", "evaluators"];

/// The datasets folder to read named datasets and evaluators from: `given` when it holds every
/// embedded file, else a folder where `given`'s entries come first and the embedded files fill
/// in the rest.
pub fn datasets_dir(given: &Path) -> anyhow::Result<PathBuf> {
    if FILES.iter().all(|(p, _)| given.join(p).is_file()) {
        return Ok(given.to_path_buf());
    }
    let cache = cache_root();
    let embedded = cache.join(format!("embedded-{}", env!("CARGO_PKG_VERSION")));
    extract(&embedded)?;
    let Ok(given_abs) = std::fs::canonicalize(given) else {
        tracing::debug!(
            "no datasets folder {}: using the embedded mnist-mini and evaluators",
            given.display()
        );
        return Ok(embedded);
    };
    overlay(&cache, &given_abs, &embedded)
}

/// `$XDG_CACHE_HOME/gan-rs`, `~/.cache/gan-rs`, or the temporary folder's `gan-rs`.
fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("gan-rs")
}

/// Writes each embedded file under `dir` unless it is there with the same bytes (through a
/// temporary file renamed into place, so a concurrent or interrupted run never sees half a file).
fn extract(dir: &Path) -> anyhow::Result<()> {
    for (path, bytes) in FILES {
        let dest = dir.join(path);
        if std::fs::read(&dest).is_ok_and(|b| b == bytes) {
            continue;
        }
        let parent = dest.parent().expect("embedded paths have a folder");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let tmp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
    }
    Ok(())
}

/// A folder under `cache` (one per given folder) linking every entry of `given`, and the
/// embedded entries that `given` lacks.
#[cfg(unix)]
fn overlay(cache: &Path, given: &Path, embedded: &Path) -> anyhow::Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    given.hash(&mut h);
    let dir = cache.join(format!("view-{:016x}", h.finish()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut links: Vec<(String, PathBuf)> = Vec::new();
    for entry in
        std::fs::read_dir(given).with_context(|| format!("cannot read {}", given.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        links.push((name, entry.path()));
    }
    for name in ENTRIES {
        let complete = FILES
            .iter()
            .filter(|(p, _)| p.starts_with(&format!("{name}/")))
            .all(|(p, _)| given.join(p).is_file());
        if !complete {
            tracing::debug!(
                "{name}: the embedded copy (none complete in {})",
                given.display()
            );
            links.retain(|(n, _)| n != name);
            links.push((name.to_string(), embedded.join(name)));
        }
    }
    // Stale links (an entry since removed) go; current ones are (re)made.
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.is_symlink() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    for (name, target) in links {
        let link = dir.join(&name);
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))?;
    }
    Ok(dir)
}

/// Without symbolic links: the embedded folder when `given` lacks an embedded entry.
#[cfg(not(unix))]
fn overlay(_cache: &Path, given: &Path, embedded: &Path) -> anyhow::Result<PathBuf> {
    tracing::info!(
        "{} lacks mnist-mini or evaluators/: using the embedded copies (and none of its datasets)",
        given.display()
    );
    Ok(embedded.to_path_buf())
}

#[cfg(test)]
mod tests {
    /// The embedded files are the committed ones, byte for byte.
    #[test]
    fn embedded_files_are_the_committed_ones() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets");
        for (path, bytes) in super::FILES {
            assert_eq!(std::fs::read(root.join(path)).unwrap(), bytes, "{path}");
        }
    }
}
