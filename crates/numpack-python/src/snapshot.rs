//! `numpack._core.Snapshot`: one pinned version of a store ([`Snapshot`]). Conversion only.

use crate::errors::IntoPy;
use crate::numpy_conv::new_array;
use crate::selection::Rows;
use numpack::{RowSelection, Snapshot};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::RwLock;

/// A pinned version; `close()` (or garbage collection) releases it.
#[pyclass(name = "Snapshot", module = "numpack._core", frozen)]
pub struct PySnapshot {
    inner: RwLock<Option<Snapshot>>,
    version: u64,
}

impl PySnapshot {
    pub fn new(s: Snapshot) -> Self {
        PySnapshot {
            version: s.version(),
            inner: RwLock::new(Some(s)),
        }
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&Snapshot) -> PyResult<R>) -> PyResult<R> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(s) => f(s),
            None => Err(PyValueError::new_err(
                "the snapshot is closed; open a new one with snapshot()",
            )),
        }
    }

    fn copy<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        sel: Option<RowSelection<'_>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.with(|s| match sel {
            None => {
                let (shape, dtype, bytes) =
                    py.detach(|| s.load_bytes(name)).py_err_in(Some(name))?;
                let (arr, mut buf) = new_array(py, dtype, &shape)?;
                buf.bytes().copy_from_slice(&bytes);
                Ok(arr)
            }
            Some(sel) => copy_selected(py, s, name, &sel),
        })
    }
}

/// A new array of the rows `sel` picks from array `name` at the snapshot's version, copied
/// straight into the array's memory (the shape first, then the rows: a version's rows never
/// change, so both reads agree).
pub fn copy_selected<'py>(
    py: Python<'py>,
    s: &Snapshot,
    name: &str,
    sel: &RowSelection<'_>,
) -> PyResult<Bound<'py, PyAny>> {
    let (dtype, shape) = py
        .detach(|| {
            s.read(name, |a| {
                let picked = a.view.select(sel)?;
                Ok((a.view.meta.dtype, a.view.selected_shape(&picked)))
            })
        })
        .py_err_in(Some(name))?;
    let (arr, mut buf) = new_array(py, dtype, &shape)?;
    py.detach(|| {
        s.read(name, |a| {
            let picked = a.view.select(sel)?;
            a.copy_selected(&picked, buf.bytes())
        })
    })
    .py_err_in(Some(name))?;
    Ok(arr)
}

#[pymethods]
impl PySnapshot {
    /// The version it reads.
    #[getter]
    fn version(&self) -> u64 {
        self.version
    }

    /// Array names at the version.
    fn names(&self) -> PyResult<Vec<String>> {
        self.with(|s| Ok(s.names()))
    }

    fn has(&self, name: &str) -> PyResult<bool> {
        self.with(|s| Ok(s.has(name)))
    }

    /// Logical shape at the version.
    fn shape(&self, py: Python<'_>, name: &str) -> PyResult<Vec<u64>> {
        self.with(|s| {
            py.detach(|| s.describe(name))
                .py_err_in(Some(name))
                .map(|d| d.0)
        })
    }

    /// The NumPy dtype at the version.
    fn dtype<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let dt = self.with(|s| Ok(s.array_metadata(name).py_err_in(Some(name))?.dtype))?;
        Ok(crate::numpy_conv::numpy_dtype(py, dt)?.into_any())
    }

    /// The whole array at the version.
    fn load<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.copy(py, name, None)
    }

    /// Rows (int64 array, bool mask or slice over the logical rows) at the version.
    fn getitem<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        rows: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let rows = Rows::extract(&rows)?;
        self.copy(py, name, Some(rows.selection()))
    }

    /// Logical rows `start..stop` (clipped as a slice would be).
    fn read_range<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        start: i64,
        stop: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let sel = crate::selection::range_of(start, stop);
        self.copy(py, name, Some(sel))
    }

    /// Releases the version (history may then collect it).
    fn close(&self, py: Python<'_>) {
        // Without the GIL: a search on another thread holds the read lock with the GIL
        // released, and needs the GIL back to finish.
        let s = py.detach(|| self.inner.write().unwrap_or_else(|e| e.into_inner()).take());
        drop(s);
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}
