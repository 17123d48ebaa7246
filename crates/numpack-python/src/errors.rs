//! The one mapping from [`NpkError`] to Python exceptions.
//!
//! numpack-specific classes live in `numpack.exceptions` (so they can inherit from two
//! built-ins, e.g. `ArrayNotFoundError(KeyError, ValueError)`); they are looked up there.

use numpack::NpkError;
use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyMemoryError, PyOSError, PyPermissionError,
    PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use std::io::ErrorKind;

pub(crate) fn numpack_error(py: Python<'_>, class: &str, msg: String) -> PyErr {
    match py
        .import("numpack.exceptions")
        .and_then(|m| m.getattr(class))
    {
        Ok(cls) => match cls.call1((msg.clone(),)) {
            Ok(inst) => PyErr::from_value(inst),
            Err(e) => e,
        },
        Err(_) => PyValueError::new_err(msg),
    }
}

fn os_error(e: &std::io::Error, path: Option<&std::path::Path>) -> PyErr {
    let errno = e.raw_os_error().unwrap_or(0);
    let text = e.to_string();
    let path = path.map(|p| p.display().to_string());
    macro_rules! make {
        ($t:ty) => {
            match path {
                Some(p) => <$t>::new_err((errno, text, p)),
                None => <$t>::new_err((errno, text)),
            }
        };
    }
    match e.kind() {
        ErrorKind::NotFound => make!(PyFileNotFoundError),
        ErrorKind::PermissionDenied => make!(PyPermissionError),
        ErrorKind::AlreadyExists => make!(PyFileExistsError),
        _ => make!(PyOSError),
    }
}

/// Converts an engine error into the most specific Python exception.
pub fn to_py(e: NpkError) -> PyErr {
    to_py_in(e, None)
}

/// [`to_py`] for a call about the one array `array` (named in index errors).
pub fn to_py_in(e: NpkError, array: Option<&str>) -> PyErr {
    Python::attach(|py| match e {
        NpkError::ArrayNotFound(name) => {
            numpack_error(py, "ArrayNotFoundError", format!("Array not found: {name}"))
        }
        NpkError::IndexOutOfBounds(i, rows) => numpack_error(
            py,
            "IndexOutOfRangeError",
            match array {
                Some(a) => format!("Index {i} is out of bounds for array '{a}' with {rows} rows"),
                None => format!("Index {i} is out of bounds for {rows} rows"),
            },
        ),
        NpkError::IndexOutOfBoundsIn { .. } => {
            numpack_error(py, "IndexOutOfRangeError", e.to_string())
        }
        NpkError::OutOfMemory(m) => PyMemoryError::new_err(m),
        NpkError::Checksum { .. } => PyRuntimeError::new_err(e.to_string()),
        NpkError::Corrupt { .. } => numpack_error(py, "CorruptStoreError", e.to_string()),
        NpkError::InvalidDtype(m) => PyTypeError::new_err(m),
        NpkError::DtypeMismatch(m) => numpack_error(py, "DtypeMismatchError", m),
        NpkError::InvalidShape(m)
        | NpkError::InvalidArrayName(m)
        | NpkError::InvalidOperation(m)
        | NpkError::InvalidMetadata(m) => PyValueError::new_err(m),
        NpkError::Io { path, source } => os_error(&source, Some(&path)),
        NpkError::IoError(source) => os_error(&source, None),
    })
}

/// `Result<T, NpkError>` → `PyResult<T>`.
pub trait IntoPy<T> {
    /// Maps the error with [`to_py`].
    fn py_err(self) -> PyResult<T>;
    /// Maps the error with [`to_py_in`].
    fn py_err_in(self, array: Option<&str>) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, NpkError> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }

    fn py_err_in(self, array: Option<&str>) -> PyResult<T> {
        self.map_err(|e| to_py_in(e, array))
    }
}
