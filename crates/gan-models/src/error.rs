//! The error type of the model crate.

use std::path::PathBuf;

/// What can go wrong while building, training, saving or loading models.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Loading data failed.
    #[error(transparent)]
    Data(#[from] gan_data::DataError),
    /// A file or folder could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The IO error.
        error: std::io::Error,
    },
    /// A JSON file is malformed or does not describe what was expected.
    #[error("{path}: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint is missing, incomplete or does not fit the model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A PNG or other image could not be written.
    #[error("{path}: cannot write image: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// The encoder's message.
        reason: String,
    },
}

/// This crate's result type.
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            error: source,
        }
    }
}
