//! Where training images come from: a named dataset under `datasets/` or a path.
//!
//! Names: `mnist`, `fashion-mnist` (fetched by `cargo xtask fetch-…`), `mnist-mini` (embedded).
//! A path is either a folder holding the four IDX files or a folder of PNG/JPEG images
//! (unlabelled, or one subfolder per class: see [`crate::image_folder`]). With no name,
//! `datasets/mnist` is used when it has been fetched, else `datasets/mnist-mini`.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{ImageBuffer, Luma};

use crate::dataset::{Dataset, TensorDataset};
use crate::error::{DataError, Result};
use crate::image_folder::{self, check_folder, ImageFolder, ImageLayout};
use crate::mnist::{find_file, is_complete, Mnist, Splits, FASHION_CLASSES, FILES};

/// The dataset names [`ImageSource::resolve`] knows.
pub const NAMES: [&str; 3] = ["mnist", "fashion-mnist", "mnist-mini"];

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
    ///
    /// # Errors
    /// [`DataError::DatasetNotFound`] when a named dataset is missing or incomplete (with how to
    /// get it); for a path, [`DataError::FolderNotFound`] (with the known names when `spec`
    /// looks like one) or [`DataError::NotAFolder`]. The folder's content is checked when it is
    /// loaded.
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
                let missing = if path.is_dir() {
                    FILES
                        .iter()
                        .filter(|f| find_file(&path, f).is_err())
                        .map(|f| f.to_string())
                        .collect()
                } else {
                    Vec::new()
                };
                Err(DataError::DatasetNotFound {
                    name: name.into(),
                    path,
                    missing,
                    how: how.into(),
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
                if let Err(mut e) = check_folder(&path) {
                    if let DataError::FolderNotFound { hint, .. } = &mut e {
                        let looks_like_a_name = !p.contains(['/', '\\', '.']);
                        if looks_like_a_name {
                            *hint = format!(" (known dataset names: {})", NAMES.join(", "));
                        }
                    }
                    return Err(e);
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
    /// theirs; folder images are resized and center-cropped, and labelled by class when the
    /// folder has class subfolders ([`ImageFolder`]). `channels` is ignored for IDX data (always
    /// 1).
    ///
    /// # Errors
    /// Those of [`Mnist::load`] or [`ImageFolder::open`].
    pub fn load_train(&self, size: usize, channels: usize) -> Result<TensorDataset> {
        self.load_train_with(size, Some(channels))
    }

    /// [`load_train`](Self::load_train) with `channels` `None` picking the channels from the
    /// data ([`detect_channels`](Self::detect_channels)).
    ///
    /// # Errors
    /// Those of [`Mnist::load`] or [`ImageFolder::open`].
    pub fn load_train_with(&self, size: usize, channels: Option<usize>) -> Result<TensorDataset> {
        if self.idx {
            let Splits { train, .. } = Mnist::load(&self.path)?;
            resize_gray(&train, size)
        } else {
            Ok(ImageFolder::open(&self.path, size, channels)?.into_dataset())
        }
    }

    /// The channels of the data: 1 for IDX; for a folder, 1 when every image is stored
    /// grayscale, else 3 (only the headers are read).
    ///
    /// # Errors
    /// Those of [`image_folder::detect_channels`].
    pub fn detect_channels(&self) -> Result<usize> {
        if self.idx {
            Ok(1)
        } else {
            image_folder::detect_channels(&self.path)
        }
    }

    /// The class names, by label: for a folder with class subfolders their sorted names,
    /// empty for an unlabelled folder; for IDX data the ten [`FASHION_CLASSES`] when the
    /// source is named or its folder is called `fashion-mnist`, else the digits `0`–`9`.
    ///
    /// # Errors
    /// Those of [`ImageLayout::read`] for a folder.
    pub fn class_names(&self) -> Result<Vec<String>> {
        if !self.idx {
            return Ok(ImageLayout::read(&self.path)?.class_names());
        }
        let fashion = self.name == "fashion-mnist"
            || self.path.file_name().is_some_and(|n| n == "fashion-mnist");
        Ok(if fashion {
            FASHION_CLASSES.iter().map(|c| c.to_string()).collect()
        } else {
            (0..10).map(|d| d.to_string()).collect()
        })
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
