//! The one error type of this crate: every variant names the file (or value) at fault.

use std::path::PathBuf;

/// What can go wrong while loading data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying IO error (in the message, not as `source()`, so that an error chain
        /// does not print it twice).
        error: std::io::Error,
    },
    /// A required file is missing (neither the raw nor the `.gz` form exists).
    #[error("{path}: file not found (also looked for the .gz form)")]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// The file ends before the length its header announces.
    #[error("{path}: truncated: expected {expected} bytes of data, found {found}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces (after the header).
        expected: u64,
        /// Bytes actually present.
        found: u64,
    },
    /// The file holds more bytes than its header announces.
    #[error(
        "{path}: {extra} unexpected bytes after the {expected} bytes of data the header announces"
    )]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        expected: u64,
        /// At least this many extra bytes follow.
        extra: u64,
    },
    /// The gzip stream is corrupt (bad CRC, bad deflate data).
    #[error("{path}: corrupt gzip stream: {reason}")]
    CorruptGzip {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// The IDX magic number is not `00 00 08 <rank>`.
    #[error("{path}: bad IDX magic number {magic:#010x} (expected 0x0000080{expected_rank} for unsigned bytes of rank {expected_rank})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The four bytes read, big-endian.
        magic: u32,
        /// The rank the caller expected.
        expected_rank: usize,
    },
    /// The IDX file has a different number of dimensions than expected.
    #[error("{path}: wrong rank: expected {expected} dimensions, the header has {found}")]
    WrongRank {
        /// The file.
        path: PathBuf,
        /// Rank expected (1 for labels, 3 for images).
        expected: usize,
        /// Rank in the header.
        found: usize,
    },
    /// The header announces more data than the file can possibly hold.
    #[error("{path}: header too large: it announces {claimed} bytes of data but the file can hold at most {limit}")]
    HeaderTooLarge {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        claimed: u128,
        /// The most the file can hold (its size, or for gzip the trailer's length).
        limit: u64,
    },
    /// Image and label files disagree on the number of items.
    #[error("count mismatch: {images_path} holds {images} images but {labels_path} holds {labels} labels")]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// A named dataset (`mnist`, `fashion-mnist`, `mnist-mini`) is not where it should be, or
    /// lacks some of its four IDX files.
    #[error("{name}: dataset not found in {path}: {} ({how})", missing_files(.missing))]
    DatasetNotFound {
        /// The dataset's name.
        name: String,
        /// The folder looked in.
        path: PathBuf,
        /// The IDX files missing (in neither raw nor `.gz` form); empty when the folder itself
        /// is missing.
        missing: Vec<String>,
        /// How to get it.
        how: String,
    },
    /// A folder given by the caller does not exist.
    #[error("{path}: folder not found{hint}")]
    FolderNotFound {
        /// The folder.
        path: PathBuf,
        /// Empty, or a hint starting with a space (the known dataset names when the path looks
        /// like a misspelt name).
        hint: String,
    },
    /// A path that should be a folder is a file.
    #[error(
        "{path}: is a file, not a folder (give the folder that holds the images or the IDX files)"
    )]
    NotAFolder {
        /// The path.
        path: PathBuf,
    },
    /// A folder that should hold images holds none (and, where class subfolders are read, no
    /// class subfolder either).
    #[error("{path}: holds no images (PNG/JPEG); {found}")]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
        /// What the folder holds instead, e.g. `found 2 other files: notes.txt, a.gif`.
        found: String,
    },
    /// A folder holds both images and subfolders, so it is neither an unlabelled folder nor
    /// torchvision's `ImageFolder` layout (one subfolder per class).
    #[error("{path}: holds both images ({images}, e.g. {example}) and subfolders ({}): put every image in a class subfolder for a labelled set, or move the subfolders out for an unlabelled one", name_list(.subfolders))]
    MixedFolder {
        /// The folder.
        path: PathBuf,
        /// Number of images directly in it.
        images: usize,
        /// The first image's file name.
        example: String,
        /// The subfolders' names, sorted.
        subfolders: Vec<String>,
    },
    /// Class subfolders hold no image (searched recursively).
    #[error("{path}: {} without images (PNG/JPEG): {}", plural(.empty.len(), "class subfolder"), empty_classes(.empty))]
    EmptyClasses {
        /// The dataset folder.
        path: PathBuf,
        /// Each empty class subfolder's name and what it holds instead.
        empty: Vec<(String, String)>,
    },
    /// An image file could not be decoded.
    #[error("{path}: cannot decode image: {reason}")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// Several image files could not be read or decoded; each error names its file.
    #[error("{} of {total} images cannot be read:{}", .errors.len(), error_list(.errors))]
    BadImages {
        /// Number of images that were read.
        total: usize,
        /// One error per unreadable file ([`DataError::BadImage`] or [`DataError::Io`]), in
        /// file order; the message lists the first [`MAX_LISTED`].
        errors: Vec<DataError>,
    },
    /// A value given by the caller is invalid (batch size 0, unknown distribution name, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// How many files, folders or errors a message lists before it says "and N more".
pub const MAX_LISTED: usize = 10;

/// `n thing` or `n things`.
pub(crate) fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// `a, b, c` with at most [`MAX_LISTED`] names, then `and N more`.
pub(crate) fn name_list<S: AsRef<str>>(names: &[S]) -> String {
    let mut out = names
        .iter()
        .take(MAX_LISTED)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED {
        out.push_str(&format!(" and {} more", names.len() - MAX_LISTED));
    }
    out
}

fn missing_files(missing: &[String]) -> String {
    if missing.is_empty() {
        "the folder does not exist".into()
    } else {
        format!("missing {}, raw or .gz", name_list(missing))
    }
}

fn empty_classes(empty: &[(String, String)]) -> String {
    let items: Vec<String> = empty
        .iter()
        .map(|(name, found)| format!("{name} ({found})"))
        .collect();
    name_list(&items)
}

fn error_list(errors: &[DataError]) -> String {
    let mut out = String::new();
    for e in errors.iter().take(MAX_LISTED) {
        out.push_str(&format!("\n  {e}"));
    }
    if errors.len() > MAX_LISTED {
        out.push_str(&format!("\n  and {} more", errors.len() - MAX_LISTED));
    }
    out
}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            error: source,
        }
    }
}
