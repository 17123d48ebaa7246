//! `numpack._core.ArrayWriter`: a streaming import of one array (see the engine's
//! `store::writer`). Conversion and GIL release only.

use crate::errors::IntoPy;
use crate::numpy_conv::{input, numpy_dtype};
use numpack::store::ArrayWriter;
use numpy::{PyArrayDescr, PyUntypedArray};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::Mutex;

/// A new array being written batch by batch; invisible until `Store.commit_writers`.
#[pyclass(name = "ArrayWriter", module = "numpack._core", frozen)]
pub struct PyArrayWriter {
    inner: Mutex<Option<ArrayWriter>>,
}

impl PyArrayWriter {
    pub fn new(w: ArrayWriter) -> Self {
        PyArrayWriter {
            inner: Mutex::new(Some(w)),
        }
    }

    /// Takes the writer out (for a commit); fails if it was committed or aborted.
    pub fn take(&self) -> PyResult<ArrayWriter> {
        self.lock().take().ok_or_else(finished)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Option<ArrayWriter>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn finished() -> PyErr {
    PyValueError::new_err("the array writer was already committed or aborted")
}

#[pymethods]
impl PyArrayWriter {
    /// The array name.
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(self.lock().as_ref().ok_or_else(finished)?.name().to_owned())
    }

    /// The element type.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDescr>> {
        let d = self.lock().as_ref().ok_or_else(finished)?.dtype();
        numpy_dtype(py, d)
    }

    /// Bytes written so far.
    #[getter]
    fn nbytes(&self) -> PyResult<u64> {
        Ok(self.lock().as_ref().ok_or_else(finished)?.len())
    }

    /// Appends the elements of a C-contiguous, native-order array of the writer's dtype.
    fn write(&self, py: Python<'_>, array: Bound<'_, PyUntypedArray>) -> PyResult<()> {
        let i = input(&array)?;
        let mut g = self.lock();
        let w = g.as_mut().ok_or_else(finished)?;
        if i.dtype != w.dtype() {
            return Err(PyTypeError::new_err(format!(
                "array '{}' is being written as {}, got {}",
                w.name(),
                w.dtype(),
                i.dtype
            )));
        }
        py.detach(|| w.write(i.bytes)).py_err()
    }

    /// Appends `length` bytes of the file at `path`, from `offset` (copied in the kernel).
    fn copy_from(
        &self,
        py: Python<'_>,
        path: std::path::PathBuf,
        offset: u64,
        length: u64,
    ) -> PyResult<()> {
        let mut g = self.lock();
        let w = g.as_mut().ok_or_else(finished)?;
        py.detach(|| {
            let src = std::fs::File::open(&path).map_err(|e| numpack::NpkError::io(&path, e))?;
            w.copy_from(&src, offset, length)
        })
        .py_err()
    }

    /// Attributes (JSON text of an object) the array gets in the commit that makes it
    /// appear, replacing any it had.
    fn set_attrs(&self, json: &str) -> PyResult<()> {
        let mut g = self.lock();
        g.as_mut().ok_or_else(finished)?.set_attrs(json).py_err()
    }

    /// Abandons the array: its temporary file is removed. Idempotent.
    fn abort(&self) {
        self.lock().take();
    }
}

/// `preallocate(fd, offset, length)`: reserves the blocks of a byte range of an open file
/// before a large write into it (best effort, no byte or size changes). On ext4 this keeps
/// the write out of delayed allocation, so renaming the finished file over an older one does
/// not flush it synchronously (`auto_da_alloc`).
#[pyfunction]
pub fn preallocate(fd: i32, offset: u64, length: u64) -> PyResult<()> {
    if fd < 0 {
        return Err(PyValueError::new_err(format!(
            "preallocate: {fd} is not a file descriptor"
        )));
    }
    #[cfg(unix)]
    {
        use std::os::fd::FromRawFd;
        // SAFETY: `fd` is non-negative and owned by the caller for this call;
        // `ManuallyDrop` never closes it. An invalid descriptor only makes the call fail
        // (EBADF), which `preallocate` ignores.
        let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        numpack::io::preallocate(&file, offset, length);
    }
    #[cfg(not(unix))]
    let _ = (offset, length);
    Ok(())
}
