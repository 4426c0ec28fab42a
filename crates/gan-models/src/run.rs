//! The run folder: `config.json` (written first), `metrics.jsonl`, `samples/`, and
//! `checkpoints/{latest,step-NNNNNN}/`.
//!
//! Checkpoints are written into a temporary folder beside their final place and renamed into
//! it, so a crash never leaves a half-written checkpoint. Replacing `latest` takes two renames
//! (`latest` → `.latest-old`, then the new one → `latest`); a reader that finds no `latest` but a
//! `.latest-old` uses that, so at every instant one complete checkpoint is reachable.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ModelError, Result};

/// The name of the most recent checkpoint.
pub const LATEST: &str = "latest";
const LATEST_OLD: &str = ".latest-old";

/// A run folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates a new run folder and writes `config.json` into it before anything else. Refuses
    /// a folder that already holds a run (resume it instead), so nothing is overwritten.
    pub fn create(root: impl Into<PathBuf>, config: &impl Serialize) -> Result<Self> {
        let root = root.into();
        let cfg = root.join("config.json");
        if cfg.exists() {
            let existing = Self { root: root.clone() };
            if existing.checkpoint(LATEST).is_err() {
                return Err(ModelError::Config(format!(
                    "{} already holds a run with no checkpoint (it stopped before its first one); \
                     delete that folder or choose another --out",
                    root.display()
                )));
            }
            return Err(ModelError::Config(format!(
                "{} already holds a run; resume it with --resume or choose another --out",
                root.display()
            )));
        }
        std::fs::create_dir_all(root.join("samples")).map_err(|e| ModelError::io(&root, e))?;
        std::fs::create_dir_all(root.join("checkpoints")).map_err(|e| ModelError::io(&root, e))?;
        let run = Self { root };
        run.write_json_atomic(&cfg, config)?;
        Ok(run)
    }

    /// Opens an existing run folder (it must hold `config.json`).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.join("config.json").is_file() {
            return Err(ModelError::Config(format!(
                "{} is not a run folder (no config.json)",
                root.display()
            )));
        }
        Ok(Self { root })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads `config.json`.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T> {
        read_json(&self.root.join("config.json"))
    }

    /// The path of the sample grid of `step`.
    pub fn sample_path(&self, step: u64) -> PathBuf {
        self.root
            .join("samples")
            .join(format!("step-{step:06}.png"))
    }

    /// The samples folder.
    pub fn samples_dir(&self) -> PathBuf {
        self.root.join("samples")
    }

    /// The `metrics.jsonl` file.
    pub fn metrics_path(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// Appends one line to `metrics.jsonl`.
    pub fn append_metrics(&self, line: &impl Serialize) -> Result<()> {
        let path = self.metrics_path();
        let text = serde_json::to_string(line).map_err(|e| ModelError::Json {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ModelError::io(&path, e))?;
        writeln!(f, "{text}").map_err(|e| ModelError::io(&path, e))
    }

    /// Drops the lines of `metrics.jsonl` logged after `step` (a resumed run logs them again).
    pub fn truncate_metrics_after(&self, step: u64) -> Result<()> {
        let path = self.metrics_path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    .is_none_or(|s| s <= step)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        write_atomic(&path, kept.as_bytes())
    }

    /// The checkpoints folder.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The folder of checkpoint `name` (`latest` or `step-NNNNNN`), falling back for `latest` to
    /// the previous one if a crash came between the two renames of an update.
    pub fn checkpoint(&self, name: &str) -> Result<PathBuf> {
        let dir = self.checkpoints_dir();
        let p = dir.join(name);
        if p.is_dir() {
            return Ok(p);
        }
        if name == LATEST && dir.join(LATEST_OLD).is_dir() {
            return Ok(dir.join(LATEST_OLD));
        }
        let steps = match name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        {
            Some(s) => dir.join(format!("step-{s:06}")),
            None => p.clone(),
        };
        if steps.is_dir() {
            return Ok(steps);
        }
        Err(ModelError::Checkpoint {
            path: p,
            reason: "no such checkpoint".into(),
        })
    }

    /// Writes a checkpoint: `fill` writes the files into a fresh temporary folder, which is then
    /// renamed to `checkpoints/<name>`.
    pub fn write_checkpoint(
        &self,
        name: &str,
        fill: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let dir = self.checkpoints_dir();
        let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
        if let Err(e) = fill(&tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        sync_dir(&tmp);
        let dest = dir.join(name);
        if dest.exists() {
            let old = dir.join(LATEST_OLD);
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(&dest, &old).map_err(|e| ModelError::io(&dest, e))?;
            std::fs::rename(&tmp, &dest).map_err(|e| ModelError::io(&dest, e))?;
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&tmp, &dest).map_err(|e| ModelError::io(&dest, e))?;
        }
        sync_dir(&dir);
        Ok(dest)
    }

    /// Removes the temporary folders of checkpoints whose writing was killed (`kill -9` during
    /// a write leaves a full-size `.tmp-<name>-<pid>`); call it when a run starts or resumes,
    /// since one run is trained by one process at a time. Returns the folders removed.
    pub fn remove_stale_temporaries(&self) -> Vec<PathBuf> {
        let dir = self.checkpoints_dir();
        let mut removed = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return removed;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with(".tmp-") && e.path().is_dir() {
                match std::fs::remove_dir_all(e.path()) {
                    Ok(()) => {
                        tracing::info!(
                            "removed {}, left by an interrupted checkpoint",
                            e.path().display()
                        );
                        removed.push(e.path());
                    }
                    Err(err) => tracing::warn!("cannot remove {}: {err}", e.path().display()),
                }
            }
        }
        removed
    }

    /// Deletes a run that holds no checkpoint yet (its training failed before the first one):
    /// the files this module writes (`config.json`, `metrics.jsonl`, `report.html`, `samples/`,
    /// `checkpoints/`), then the folder itself if nothing else is left in it. Refuses a run with a
    /// checkpoint.
    pub fn discard(&self) -> Result<()> {
        if self.checkpoint(LATEST).is_ok() {
            return Err(ModelError::Config(format!(
                "{} holds a checkpoint: not discarding it",
                self.root.display()
            )));
        }
        for f in ["config.json", "metrics.jsonl", "report.html"] {
            let p = self.root.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| ModelError::io(&p, e))?;
            }
        }
        for d in ["samples", "checkpoints"] {
            let p = self.root.join(d);
            if p.exists() {
                std::fs::remove_dir_all(&p).map_err(|e| ModelError::io(&p, e))?;
            }
        }
        let _ = std::fs::remove_dir(&self.root); // only if empty
        Ok(())
    }

    fn write_json_atomic(&self, path: &Path, value: &impl Serialize) -> Result<()> {
        write_json(path, value)
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ModelError::io(path, e)
    })
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| ModelError::Json {
        path: path.into(),
        reason: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON file into `T`, naming the file in errors.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ModelError::Json {
        path: path.into(),
        reason: e.to_string(),
    })
}
