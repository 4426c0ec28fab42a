//! MNIST and Fashion-MNIST from a folder holding the four standard IDX files.
//!
//! The files are `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`
//! and `t10k-labels-idx1-ubyte`, each raw or with a `.gz` suffix. Images become `[1, 28, 28]`
//! items in [-1, 1], labels integers 0–9.

use std::path::{Path, PathBuf};

use crate::dataset::TensorDataset;
use crate::error::{DataError, Result};
use crate::idx::{read_idx_images, read_idx_labels};

/// The standard file stems, without `.gz`.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// Training labels.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// Test images.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// Test labels.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
/// All four stems.
pub const FILES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// The class names of Fashion-MNIST, by label.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// A train and a test split.
#[derive(Clone, Debug)]
pub struct Splits {
    /// The training split.
    pub train: TensorDataset,
    /// The test split.
    pub test: TensorDataset,
}

/// MNIST (or anything in its layout, like the embedded `mnist-mini`).
#[derive(Debug)]
pub struct Mnist;

impl Mnist {
    /// Loads both splits from `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Splits> {
        load_splits(dir.as_ref())
    }
}

/// Fashion-MNIST: the same layout and shapes as MNIST, with [`FASHION_CLASSES`].
#[derive(Debug)]
pub struct FashionMnist;

impl FashionMnist {
    /// Loads both splits from `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Splits> {
        load_splits(dir.as_ref())
    }
}

/// Finds `stem` or `stem.gz` in `dir`.
pub fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let raw = dir.join(stem);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::MissingFile { path: raw })
}

/// Whether `dir` holds all four files (raw or gz).
pub fn is_complete(dir: &Path) -> bool {
    FILES.iter().all(|f| find_file(dir, f).is_ok())
}

fn load_split(dir: &Path, images: &str, labels: &str) -> Result<TensorDataset> {
    let images_path = find_file(dir, images)?;
    let labels_path = find_file(dir, labels)?;
    let imgs = read_idx_images(&images_path)?;
    let lbls = read_idx_labels(&labels_path)?;
    if imgs.count != lbls.len() {
        return Err(DataError::CountMismatch {
            images_path,
            images: imgs.count,
            labels_path,
            labels: lbls.len(),
        });
    }
    let labels = lbls.into_iter().map(u32::from).collect();
    TensorDataset::from_u8_images(vec![1, imgs.rows, imgs.cols], &imgs.pixels, Some(labels))
}

fn load_splits(dir: &Path) -> Result<Splits> {
    Ok(Splits {
        train: load_split(dir, TRAIN_IMAGES, TRAIN_LABELS)?,
        test: load_split(dir, TEST_IMAGES, TEST_LABELS)?,
    })
}
