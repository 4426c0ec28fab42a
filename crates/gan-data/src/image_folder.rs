//! Folders of PNG and JPEG images, unlabelled or in torchvision's `ImageFolder` layout (one
//! subfolder per class), and CycleGAN's unpaired `trainA`/`trainB`/`testA`/`testB` layout.
//!
//! Each image is resized so that its shorter side equals the target size and then
//! center-cropped to a square (torchvision's `Resize(size)` + `CenterCrop(size)`), converted to
//! RGB or grayscale, and mapped to [-1, 1]. Files are read in sorted order, so a folder always
//! gives the same dataset.
//!
//! # Layouts
//! - Images directly in the folder and no subfolder: an unlabelled dataset.
//! - Subfolders only (`root/cat/*.png`, `root/dog/*.png`): torchvision's `ImageFolder`. The
//!   class names are the subfolder names, sorted; an image's label is the index of its class in
//!   that list. Images are found at any depth inside a class subfolder.
//! - Images *and* subfolders, no image at all, or a class subfolder without images: an error
//!   naming the folder and what it holds ([`DataError::MixedFolder`],
//!   [`DataError::EmptyFolder`], [`DataError::EmptyClasses`]).
//!
//! # Files that are not data
//! Hidden files and folders (`.DS_Store`, the `._name.png` AppleDouble files macOS writes on
//! non-Apple disks, `.ipynb_checkpoints`, ...), `__MACOSX`, `Thumbs.db`, `desktop.ini` and a
//! few other system files and folders ([`not_data_reason`]) are skipped wherever a folder is
//! read, each with a `tracing` debug line. Other files that are not PNG or JPEG (by extension)
//! are ignored too.
//!
//! # Errors
//! A missing folder is [`DataError::FolderNotFound`], a file where a folder is expected
//! [`DataError::NotAFolder`]. Unreadable images are all reported at once: one gives
//! [`DataError::BadImage`] (or [`DataError::Io`]), several [`DataError::BadImages`].
//!
//! ```
//! use gan_data::{Dataset, ImageFolder};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = tempfile::tempdir()?;
//! for (class, n) in [("dog", 2), ("cat", 1)] {
//!     std::fs::create_dir(root.path().join(class))?;
//!     for i in 0..n {
//!         image::GrayImage::new(8, 8).save(root.path().join(class).join(format!("{i}.png")))?;
//!     }
//! }
//! // Channels picked from the images: all grayscale, so 1.
//! let folder = ImageFolder::open(root.path(), 4, None)?;
//! assert_eq!(folder.classes(), ["cat", "dog"]);
//! assert_eq!(folder.dataset().item_shape(), &[1, 4, 4]);
//! assert_eq!(folder.dataset().labels(), Some(&[0, 1, 1][..]));
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::ImageDecoder;

use crate::dataset::{Dataset, TensorDataset};
use crate::error::{name_list, plural, DataError, Result};

/// The largest image side accepted.
pub const MAX_SIZE: usize = 8192;

/// Class subfolders are searched this many folders deep at most (a guard against symbolic link
/// loops).
const MAX_DEPTH: usize = 32;

/// How to load images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageFolderConfig {
    /// Side of the square images produced, 1 to [`MAX_SIZE`].
    pub size: usize,
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
}

impl ImageFolderConfig {
    /// Checks the size and the channels.
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] when `size` is 0 or above [`MAX_SIZE`], or `channels` is
    /// neither 1 nor 3.
    pub fn validate(&self) -> Result<()> {
        check_size(self.size)?;
        if self.channels != 1 && self.channels != 3 {
            return Err(DataError::InvalidArgument(format!(
                "channels must be 1 or 3, got {}",
                self.channels
            )));
        }
        Ok(())
    }
}

fn check_size(size: usize) -> Result<()> {
    if size == 0 || size > MAX_SIZE {
        return Err(DataError::InvalidArgument(format!(
            "image size must be 1 to {MAX_SIZE}, got {size}"
        )));
    }
    Ok(())
}

/// Why a file or folder named `name` is not data, or `None` when it may be.
///
/// Not data: names starting with `.` (hidden; this covers `.DS_Store`, macOS's AppleDouble
/// `._*` files and `.ipynb_checkpoints`), `__MACOSX`, `Thumbs.db`, `ehthumbs.db`,
/// `desktop.ini`, `$RECYCLE.BIN`, `System Volume Information`, `@eaDir`, `__pycache__` and
/// `lost+found` (case-insensitive).
///
/// ```
/// use gan_data::image_folder::not_data_reason;
/// assert_eq!(not_data_reason("._img_000.png"), Some("macOS AppleDouble metadata"));
/// assert_eq!(not_data_reason("img_000.png"), None);
/// ```
pub fn not_data_reason(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        _ if name.starts_with("._") => "macOS AppleDouble metadata",
        ".ds_store" => "macOS Finder metadata",
        "__macosx" => "macOS archive metadata",
        ".ipynb_checkpoints" => "Jupyter checkpoints",
        "thumbs.db" | "ehthumbs.db" | "ehthumbs_vista.db" => "Windows thumbnail cache",
        "desktop.ini" => "Windows folder settings",
        "$recycle.bin" | "system volume information" => "Windows system folder",
        "@eadir" => "Synology metadata",
        "__pycache__" => "Python cache",
        "lost+found" => "file system recovery folder",
        _ if name.starts_with('.') => "hidden",
        _ => return None,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn has_image_extension(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
}

/// `Ok` when `dir` is a folder; [`DataError::FolderNotFound`] or [`DataError::NotAFolder`]
/// otherwise.
pub(crate) fn check_folder(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(DataError::NotAFolder { path: dir.into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DataError::FolderNotFound {
            path: dir.into(),
            hint: String::new(),
        }),
        Err(e) => Err(DataError::io(dir, e)),
    }
}

/// What a folder holds, each list sorted.
#[derive(Debug, Default)]
struct Entries {
    images: Vec<PathBuf>,
    subfolders: Vec<PathBuf>,
    /// Files that are not PNG or JPEG, and anything neither file nor folder (a broken link).
    others: Vec<PathBuf>,
    /// Files and folders that are not data ([`not_data_reason`]).
    skipped: Vec<PathBuf>,
}

impl Entries {
    fn read(dir: &Path) -> Result<Self> {
        check_folder(dir)?;
        let mut out = Self::default();
        for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
            let path = entry.map_err(|e| DataError::io(dir, e))?.path();
            if let Some(reason) = not_data_reason(&file_name(&path)) {
                tracing::debug!(path = %path.display(), "skipped: not data ({reason})");
                out.skipped.push(path);
            } else if path.is_dir() {
                out.subfolders.push(path);
            } else if path.is_file() && has_image_extension(&path) {
                out.images.push(path);
            } else {
                tracing::debug!(path = %path.display(), "ignored: not a PNG or JPEG file");
                out.others.push(path);
            }
        }
        for list in [
            &mut out.images,
            &mut out.subfolders,
            &mut out.others,
            &mut out.skipped,
        ] {
            list.sort();
        }
        Ok(out)
    }

    /// What the folder holds besides images, for error messages: `found nothing`, or e.g.
    /// `found 2 subfolders{subfolder_note}: a, b; 1 other file: notes.txt`.
    fn found(&self, subfolder_note: &str) -> String {
        let names =
            |paths: &[PathBuf]| name_list(&paths.iter().map(|p| file_name(p)).collect::<Vec<_>>());
        let mut parts = Vec::new();
        if !self.subfolders.is_empty() {
            parts.push(format!(
                "{}{subfolder_note}: {}",
                plural(self.subfolders.len(), "subfolder"),
                names(&self.subfolders)
            ));
        }
        if !self.others.is_empty() {
            parts.push(format!(
                "{}: {}",
                plural(self.others.len(), "other file"),
                names(&self.others)
            ));
        }
        if !self.skipped.is_empty() {
            parts.push(format!(
                "{} skipped as not data: {}",
                self.skipped.len(),
                names(&self.skipped)
            ));
        }
        if parts.is_empty() {
            "found nothing".into()
        } else {
            format!("found {}", parts.join("; "))
        }
    }
}

/// The image files (`.png`, `.jpg`, `.jpeg`, any case) directly in `dir`, sorted; files and
/// folders that are not data ([`not_data_reason`]) are skipped and subfolders are not searched.
///
/// # Errors
/// [`DataError::FolderNotFound`], [`DataError::NotAFolder`], [`DataError::Io`], and
/// [`DataError::EmptyFolder`] (naming the subfolders and other files found) when `dir` holds
/// no image directly.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = Entries::read(dir)?;
    if entries.images.is_empty() {
        return Err(DataError::EmptyFolder {
            path: dir.into(),
            found: entries.found(" (not searched)"),
        });
    }
    Ok(entries.images)
}

/// One class of torchvision's `ImageFolder` layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassFolder {
    /// The subfolder's name, which is the class name.
    pub name: String,
    /// Its images, at any depth, sorted; never empty.
    pub files: Vec<PathBuf>,
}

/// The images of a folder and how they are laid out (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageLayout {
    /// Images directly in the folder, which has no subfolder.
    Unlabelled {
        /// The images, sorted; never empty.
        files: Vec<PathBuf>,
    },
    /// One subfolder per class and no image directly in the folder.
    Classes {
        /// The classes sorted by name: a class's label is its index here.
        classes: Vec<ClassFolder>,
    },
}

impl ImageLayout {
    /// Reads the layout of `dir`, skipping what is not data.
    ///
    /// # Errors
    /// [`DataError::FolderNotFound`], [`DataError::NotAFolder`], [`DataError::Io`];
    /// [`DataError::EmptyFolder`] when `dir` holds neither images nor subfolders;
    /// [`DataError::MixedFolder`] when it holds both; [`DataError::EmptyClasses`] when class
    /// subfolders hold no image; [`DataError::InvalidArgument`] when class subfolders nest more
    /// than 32 folders deep.
    pub fn read(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let entries = Entries::read(dir)?;
        match (entries.images.is_empty(), entries.subfolders.is_empty()) {
            (false, true) => Ok(Self::Unlabelled {
                files: entries.images,
            }),
            (false, false) => Err(DataError::MixedFolder {
                path: dir.into(),
                images: entries.images.len(),
                example: file_name(&entries.images[0]),
                subfolders: entries.subfolders.iter().map(|p| file_name(p)).collect(),
            }),
            (true, true) => Err(DataError::EmptyFolder {
                path: dir.into(),
                found: entries.found(""),
            }),
            (true, false) => {
                let mut classes = Vec::with_capacity(entries.subfolders.len());
                let mut empty = Vec::new();
                for sub in &entries.subfolders {
                    let mut files = Vec::new();
                    walk_images(sub, 1, &mut files)?;
                    let name = file_name(sub);
                    if files.is_empty() {
                        let found = Entries::read(sub)?.found(" (searched)");
                        empty.push((name, found));
                    } else {
                        classes.push(ClassFolder { name, files });
                    }
                }
                if !empty.is_empty() {
                    return Err(DataError::EmptyClasses {
                        path: dir.into(),
                        empty,
                    });
                }
                classes.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(Self::Classes { classes })
            }
        }
    }

    /// Every image, class by class.
    pub fn files(&self) -> Vec<&Path> {
        match self {
            Self::Unlabelled { files } => files.iter().map(PathBuf::as_path).collect(),
            Self::Classes { classes } => classes
                .iter()
                .flat_map(|c| c.files.iter().map(PathBuf::as_path))
                .collect(),
        }
    }

    /// The class names, by label; empty when unlabelled.
    pub fn class_names(&self) -> Vec<String> {
        match self {
            Self::Unlabelled { .. } => Vec::new(),
            Self::Classes { classes } => classes.iter().map(|c| c.name.clone()).collect(),
        }
    }

    /// The label of each image of [`files`](Self::files), or `None` when unlabelled.
    pub fn labels(&self) -> Option<Vec<u32>> {
        match self {
            Self::Unlabelled { .. } => None,
            Self::Classes { classes } => Some(
                classes
                    .iter()
                    .zip(0u32..)
                    .flat_map(|(c, label)| std::iter::repeat_n(label, c.files.len()))
                    .collect(),
            ),
        }
    }
}

/// Appends the images in `dir` and its subfolders, sorted as torchvision walks them (a
/// folder's own images, then each subfolder's in name order).
fn walk_images(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(DataError::InvalidArgument(format!(
            "{}: folders nested more than {MAX_DEPTH} deep (a symbolic link loop?)",
            dir.display()
        )));
    }
    let entries = Entries::read(dir)?;
    out.extend(entries.images);
    for sub in &entries.subfolders {
        walk_images(sub, depth + 1, out)?;
    }
    Ok(())
}

/// The channels that fit the images in `dir` (either layout): 1 when every image is stored
/// grayscale (with or without alpha), else 3. Only the files' headers are read.
///
/// # Errors
/// Those of [`ImageLayout::read`]; [`DataError::BadImage`], [`DataError::Io`] or
/// [`DataError::BadImages`] (all of them) for files whose header cannot be read.
pub fn detect_channels(dir: impl AsRef<Path>) -> Result<usize> {
    channels_of(&ImageLayout::read(dir)?.files())
}

/// 1 when every file is stored grayscale, else 3; reads the headers only.
pub(crate) fn channels_of(files: &[&Path]) -> Result<usize> {
    let mut errors = Vec::new();
    let mut color = false;
    for &f in files {
        match color_type(f) {
            Ok(ct) => color |= ct.has_color(),
            Err(e) => errors.push(e),
        }
    }
    collect_errors(errors, files.len())?;
    Ok(if color { 3 } else { 1 })
}

fn color_type(path: &Path) -> Result<image::ColorType> {
    let reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| DataError::io(path, e))?;
    let decoder = reader.into_decoder().map_err(|e| DataError::BadImage {
        path: path.into(),
        reason: e.to_string(),
    })?;
    Ok(decoder.color_type())
}

/// `Ok` when there is no error, the error itself when there is one, else
/// [`DataError::BadImages`].
fn collect_errors(mut errors: Vec<DataError>, total: usize) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(DataError::BadImages { total, errors }),
    }
}

/// Loads image files as `channels × size × size` values each, in [-1, 1], one after the other.
/// Every file is tried, so that all unreadable ones are reported together.
///
/// # Errors
/// [`DataError::InvalidArgument`] for a bad `cfg`; for unreadable files, the error of the file
/// when there is one ([`DataError::BadImage`] or [`DataError::Io`]), [`DataError::BadImages`]
/// when there are several.
pub fn load_images<P: AsRef<Path>>(files: &[P], cfg: ImageFolderConfig) -> Result<Vec<f32>> {
    cfg.validate()?;
    let item = cfg.channels * cfg.size * cfg.size;
    let mut data = Vec::with_capacity(files.len().saturating_mul(item));
    let mut errors = Vec::new();
    for f in files {
        match load_image(f.as_ref(), cfg) {
            Ok(values) if errors.is_empty() => data.extend(values),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    collect_errors(errors, files.len())?;
    Ok(data)
}

/// Loads one image file as `channels × size × size` values in [-1, 1] (resized so that its
/// shorter side is `size`, then center-cropped).
///
/// # Errors
/// [`DataError::InvalidArgument`] for a bad `cfg`, [`DataError::Io`] when the file cannot be
/// read, [`DataError::BadImage`] when it cannot be decoded or has no pixels.
pub fn load_image(path: &Path, cfg: ImageFolderConfig) -> Result<Vec<f32>> {
    cfg.validate()?;
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

/// A folder of images loaded into memory, unlabelled or with the classes of its subfolders.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    dataset: TensorDataset,
    classes: Vec<String>,
    files: Vec<PathBuf>,
}

impl ImageFolder {
    /// Loads every image of `dir` into a dataset of `[channels, size, size]` items, labelled by
    /// class when `dir` has class subfolders (see the [module docs](self)).
    ///
    /// # Errors
    /// Those of [`ImageFolder::open`].
    pub fn load(dir: impl AsRef<Path>, cfg: ImageFolderConfig) -> Result<TensorDataset> {
        Ok(Self::open(dir, cfg.size, Some(cfg.channels))?.dataset)
    }

    /// Loads every image of `dir` as `[channels, size, size]` items; `channels` `None` picks
    /// them from the images ([`detect_channels`]).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] for a bad size or channel count; those of
    /// [`ImageLayout::read`] for the folder; for unreadable images, [`DataError::BadImage`] or
    /// [`DataError::Io`] when there is one, [`DataError::BadImages`] (naming them all) when
    /// there are several.
    pub fn open(dir: impl AsRef<Path>, size: usize, channels: Option<usize>) -> Result<Self> {
        let dir = dir.as_ref();
        check_size(size)?;
        if let Some(channels) = channels {
            ImageFolderConfig { size, channels }.validate()?;
        }
        let layout = ImageLayout::read(dir)?;
        let files = layout.files();
        let channels = match channels {
            Some(c) => c,
            None => {
                let c = channels_of(&files)?;
                tracing::debug!(folder = %dir.display(), "{c} channel(s) picked from the images");
                c
            }
        };
        let data = load_images(&files, ImageFolderConfig { size, channels })?;
        let dataset = TensorDataset::new(vec![channels, size, size], data, layout.labels())?;
        let classes = layout.class_names();
        tracing::debug!(
            folder = %dir.display(),
            "{} images, {} classes",
            files.len(),
            classes.len()
        );
        let files = files.into_iter().map(Path::to_path_buf).collect();
        Ok(Self {
            dataset,
            classes,
            files,
        })
    }

    /// The images, as `[channels, size, size]` items in [-1, 1], labelled when the folder has
    /// class subfolders.
    pub fn dataset(&self) -> &TensorDataset {
        &self.dataset
    }

    /// The dataset, without the class names.
    pub fn into_dataset(self) -> TensorDataset {
        self.dataset
    }

    /// The class names, by label (sorted subfolder names); empty when unlabelled.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The file of each item, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The channels of the items (1 or 3).
    pub fn channels(&self) -> usize {
        self.dataset.item_shape()[0]
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

impl Split {
    /// The folder names of domains A and B.
    pub fn folders(self) -> [&'static str; 2] {
        match self {
            Split::Train => ["trainA", "trainB"],
            Split::Test => ["testA", "testB"],
        }
    }
}

impl Unpaired {
    /// Loads `root/trainA` and `root/trainB` (or the test folders) as `[channels, size, size]`
    /// items, each folder as [`ImageFolder::load`] reads it.
    ///
    /// # Errors
    /// Those of [`Unpaired::open`].
    pub fn load(root: impl AsRef<Path>, split: Split, cfg: ImageFolderConfig) -> Result<Self> {
        Self::open(root, split, cfg.size, Some(cfg.channels))
    }

    /// Loads `root/trainA` and `root/trainB` (or the test folders) as `[channels, size, size]`
    /// items; `channels` `None` picks them from the images of both folders (1 when all are
    /// grayscale, else 3 for both).
    ///
    /// # Errors
    /// [`DataError::FolderNotFound`] or [`DataError::NotAFolder`] for `root`, then those of
    /// [`ImageFolder::open`] for each folder, A first.
    pub fn open(
        root: impl AsRef<Path>,
        split: Split,
        size: usize,
        channels: Option<usize>,
    ) -> Result<Self> {
        let root = root.as_ref();
        check_folder(root)?;
        let [a_dir, b_dir] = split.folders().map(|name| root.join(name));
        check_size(size)?;
        let channels = match channels {
            Some(c) => c,
            None => detect_channels(&a_dir)?.max(detect_channels(&b_dir)?),
        };
        let a = ImageFolder::open(&a_dir, size, Some(channels))?.dataset;
        let b = ImageFolder::open(&b_dir, size, Some(channels))?.dataset;
        Ok(Self { a, b })
    }
}
