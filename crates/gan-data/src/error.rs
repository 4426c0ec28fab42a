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
    /// A folder that should hold images holds none.
    #[error("{path}: no images found (looked for .png, .jpg, .jpeg)")]
    EmptyFolder {
        /// The folder.
        path: PathBuf,
    },
    /// An image file could not be decoded.
    #[error("{path}: cannot decode image: {reason}")]
    BadImage {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// A value given by the caller is invalid (batch size 0, unknown distribution name, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
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
