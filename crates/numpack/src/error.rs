//! The one error type of the engine.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type NpkResult<T> = Result<T, NpkError>;

/// Every failure the engine reports. Variants name the array, file or index at fault.
#[derive(Debug, thiserror::Error)]
pub enum NpkError {
    /// An I/O error without a known path (kept for `?` on `std::io::Error`).
    #[error("IO error: {0}")]
    IoError(#[from] std::io::Error),
    /// An I/O error on a known file.
    #[error("IO error on {path}: {source}")]
    Io {
        /// The file or directory that failed.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The array name cannot be stored (empty or containing NUL).
    #[error("Invalid array name: {0}")]
    InvalidArrayName(String),
    /// No array of that name exists in the store.
    #[error("Array not found: {0}")]
    ArrayNotFound(String),
    /// A shape does not fit the operation (ndim, trailing dimensions, row counts).
    #[error("Invalid shape: {0}")]
    InvalidShape(String),
    /// The element type does not match the stored dtype, or the dtype is unsupported.
    #[error("Invalid dtype: {0}")]
    InvalidDtype(String),
    /// A search was given dtypes it cannot score together (or not with this metric); see
    /// `vector::promote` for what it can.
    #[error("{0}")]
    DtypeMismatch(String),
    /// The metadata is well-formed but describes something this build cannot decode.
    #[error("Invalid metadata: {0}")]
    InvalidMetadata(String),
    /// The operation is not allowed in the current state (e.g. the clone target exists).
    #[error("Invalid operation: {0}")]
    InvalidOperation(String),
    /// A row index outside the logical rows of an array.
    #[error("Index {0} out of bounds (rows: {1})")]
    IndexOutOfBounds(i64, u64),
    /// A row index outside the logical rows of the named array, in a call naming several.
    #[error("Index {index} is out of bounds for array '{array}' with {rows} rows")]
    IndexOutOfBoundsIn {
        /// The array.
        array: String,
        /// The index as given.
        index: i64,
        /// Its logical rows.
        rows: u64,
    },
    /// A result too large for the memory available (the allocation was refused).
    #[error("Out of memory: {0}")]
    OutOfMemory(String),
    /// A package's checksum does not match its contents.
    #[error("Checksum verification failed for {path}: {reason}")]
    Checksum {
        /// The package.
        path: PathBuf,
        /// Stored and computed values.
        reason: String,
    },
    /// A store file is corrupt or truncated.
    #[error("Corrupt store file {path}: {reason}")]
    Corrupt {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl NpkError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NpkError::Io {
            path: path.into(),
            source,
        }
    }

    /// Names the array of an index error (for calls that name several arrays).
    pub fn in_array(self, array: &str) -> Self {
        match self {
            NpkError::IndexOutOfBounds(index, rows) => NpkError::IndexOutOfBoundsIn {
                array: array.to_owned(),
                index,
                rows,
            },
            other => other,
        }
    }

    /// A corruption error naming the file.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        NpkError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Adds the path to an `io::Result`.
pub(crate) trait IoContext<T> {
    /// Maps the error to [`NpkError::Io`] with `path`.
    fn at(self, path: &std::path::Path) -> NpkResult<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> NpkResult<T> {
        self.map_err(|e| NpkError::io(path, e))
    }
}
