//! Folders of PNG and JPEG images, and CycleGAN's unpaired `trainA`/`trainB`/`testA`/`testB`
//! layout.
//!
//! Each image is resized so that its shorter side equals the target size and then
//! center-cropped to a square (torchvision's `Resize(size)` + `CenterCrop(size)`), converted to
//! RGB or grayscale, and mapped to [-1, 1]. Files are read in sorted order, so a folder always
//! gives the same dataset.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::dataset::TensorDataset;
use crate::error::{DataError, Result};

/// How to load images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageFolderConfig {
    /// Side of the square images produced.
    pub size: usize,
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
}

/// The image files (`.png`, `.jpg`, `.jpeg`, any case) directly in `dir`, sorted.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if path.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::EmptyFolder { path: dir.into() });
    }
    Ok(files)
}

/// Loads one image file as `channels × size × size` values in [-1, 1].
pub fn load_image(path: &Path, cfg: ImageFolderConfig) -> Result<Vec<f32>> {
    if cfg.channels != 1 && cfg.channels != 3 {
        return Err(DataError::InvalidArgument(format!(
            "channels must be 1 or 3, got {}",
            cfg.channels
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let img = image::load_from_memory(&bytes).map_err(|e| DataError::BadImage {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(DataError::BadImage {
            path: path.into(),
            reason: "image has no pixels".into(),
        });
    }
    let s = cfg.size;
    let (nw, nh) = if w <= h {
        (s, (h * s).div_ceil(w))
    } else {
        ((w * s).div_ceil(h), s)
    };
    let img = if (nw, nh) == (w, h) {
        img
    } else {
        img.resize_exact(nw as u32, nh as u32, FilterType::Triangle)
    };
    let (x0, y0) = ((nw - s) / 2, (nh - s) / 2);
    let img = img.crop_imm(x0 as u32, y0 as u32, s as u32, s as u32);
    Ok(match cfg.channels {
        1 => img
            .to_luma8()
            .pixels()
            .map(|p| p.0[0] as f32 / 127.5 - 1.0)
            .collect(),
        _ => {
            let rgb = img.to_rgb8();
            let mut out = vec![0f32; 3 * s * s];
            for (i, p) in rgb.pixels().enumerate() {
                for c in 0..3 {
                    out[c * s * s + i] = p.0[c] as f32 / 127.5 - 1.0;
                }
            }
            out
        }
    })
}

/// A folder of images, loaded into memory.
#[derive(Debug)]
pub struct ImageFolder;

impl ImageFolder {
    /// Loads every image in `dir` (not recursive) into an unlabelled dataset of
    /// `[channels, size, size]` items.
    pub fn load(dir: impl AsRef<Path>, cfg: ImageFolderConfig) -> Result<TensorDataset> {
        let files = list_images(dir.as_ref())?;
        let mut data = Vec::with_capacity(files.len() * cfg.channels * cfg.size * cfg.size);
        for f in &files {
            data.extend(load_image(f, cfg)?);
        }
        TensorDataset::new(vec![cfg.channels, cfg.size, cfg.size], data, None)
    }
}

/// Two unpaired image sets, domain A and domain B, of one split.
#[derive(Clone, Debug)]
pub struct Unpaired {
    /// Images of domain A.
    pub a: TensorDataset,
    /// Images of domain B.
    pub b: TensorDataset,
}

/// Which split of an unpaired dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `trainA` and `trainB`.
    Train,
    /// `testA` and `testB`.
    Test,
}

impl Unpaired {
    /// Loads `root/trainA` and `root/trainB` (or the test folders).
    pub fn load(root: impl AsRef<Path>, split: Split, cfg: ImageFolderConfig) -> Result<Self> {
        let root = root.as_ref();
        let name = match split {
            Split::Train => "train",
            Split::Test => "test",
        };
        let a = ImageFolder::load(root.join(format!("{name}A")), cfg)?;
        let b = ImageFolder::load(root.join(format!("{name}B")), cfg)?;
        Ok(Self { a, b })
    }
}
