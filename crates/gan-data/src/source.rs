//! Where training images come from: a named dataset under `datasets/` or a path.
//!
//! Names: `mnist`, `fashion-mnist` (fetched by `cargo xtask fetch-…`), `mnist-mini` (embedded).
//! A path is either a folder holding the four IDX files or a folder of PNG/JPEG images. With no
//! name, `datasets/mnist` is used when it has been fetched, else `datasets/mnist-mini`.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{ImageBuffer, Luma};

use crate::dataset::{Dataset, TensorDataset};
use crate::error::{DataError, Result};
use crate::image_folder::{ImageFolder, ImageFolderConfig};
use crate::mnist::{is_complete, Mnist, Splits};

/// A resolved image source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSource {
    /// What the user asked for, or the default chosen (`mnist`, `mnist-mini`, or a path).
    pub name: String,
    /// The folder.
    pub path: PathBuf,
    /// Whether the folder holds IDX files (otherwise images).
    pub idx: bool,
}

impl ImageSource {
    /// Resolves `spec` (a name, a path, or `None` for the default) against `datasets_dir`.
    pub fn resolve(spec: Option<&str>, datasets_dir: &Path) -> Result<Self> {
        let named = |name: &str, how: &str| -> Result<Self> {
            let path = datasets_dir.join(name);
            if is_complete(&path) {
                Ok(Self {
                    name: name.into(),
                    path,
                    idx: true,
                })
            } else {
                Err(DataError::MissingFile {
                    path: path.join(format!("train-images-idx3-ubyte ({how})")),
                })
            }
        };
        match spec {
            None => {
                let full = datasets_dir.join("mnist");
                if is_complete(&full) {
                    named("mnist", "")
                } else {
                    named(
                        "mnist-mini",
                        "the embedded dataset; is this the project's root?",
                    )
                }
            }
            Some("mnist") => named("mnist", "run `cargo xtask fetch-mnist`"),
            Some("fashion-mnist") => {
                named("fashion-mnist", "run `cargo xtask fetch-fashion-mnist`")
            }
            Some("mnist-mini") => named(
                "mnist-mini",
                "the embedded dataset; is this the project's root?",
            ),
            Some(p) => {
                let path = PathBuf::from(p);
                if !path.is_dir() {
                    return Err(DataError::MissingFile { path });
                }
                Ok(Self {
                    name: p.into(),
                    idx: is_complete(&path),
                    path,
                })
            }
        }
    }

    /// Loads the training images (IDX train split, or every image of the folder) as
    /// `[channels, size, size]` items in [-1, 1]. IDX images are resized if `size` differs from
    /// theirs; folder images are resized and center-cropped.
    pub fn load_train(&self, size: usize, channels: usize) -> Result<TensorDataset> {
        if self.idx {
            let Splits { train, .. } = Mnist::load(&self.path)?;
            resize_gray(&train, size)
        } else {
            ImageFolder::load(&self.path, ImageFolderConfig { size, channels })
        }
    }

    /// Loads the test split of an IDX source.
    pub fn load_test(&self, size: usize) -> Result<TensorDataset> {
        if !self.idx {
            return Err(DataError::InvalidArgument(format!(
                "{} is an image folder: it has no test split",
                self.path.display()
            )));
        }
        resize_gray(&Mnist::load(&self.path)?.test, size)
    }
}

/// Resizes single-channel square items to `size` (bilinear); returns the dataset unchanged when
/// the size already fits.
pub fn resize_gray(ds: &TensorDataset, size: usize) -> Result<TensorDataset> {
    let shape = ds.item_shape().to_vec();
    if shape.len() != 3 || shape[0] != 1 {
        return Err(DataError::InvalidArgument(format!(
            "cannot resize items of shape {shape:?}"
        )));
    }
    if shape[1] == size && shape[2] == size {
        return Ok(ds.clone());
    }
    let (h, w) = (shape[1] as u32, shape[2] as u32);
    let mut data = Vec::with_capacity(ds.len() * size * size);
    for i in 0..ds.len() {
        let img: ImageBuffer<Luma<f32>, Vec<f32>> =
            ImageBuffer::from_raw(w, h, ds.item(i).to_vec()).expect("item size matches its shape");
        let r = image::imageops::resize(&img, size as u32, size as u32, FilterType::Triangle);
        data.extend(r.into_raw());
    }
    TensorDataset::new(vec![1, size, size], data, ds.labels().map(|l| l.to_vec()))
}
