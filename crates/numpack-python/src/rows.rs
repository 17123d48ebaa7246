//! `numpack._core.RowSource`: batches of an array snapshot for `stream_load`, each a private
//! copy-on-write mapping of its rows (writable, nothing copied up front).

use crate::errors::IntoPy;
use crate::numpy_conv::{mapped_array, mapped_array_at, new_array, MappingKind};
use numpack::ArraySnapshot;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::Arc;

/// The physical rows of one array version, independent of the store handle (iteration
/// survives `close()`).
#[pyclass(name = "RowSource", module = "numpack._core", frozen)]
pub struct PyRowSource {
    snap: Arc<ArraySnapshot>,
}

impl PyRowSource {
    pub fn new(snap: Arc<ArraySnapshot>) -> Self {
        PyRowSource { snap }
    }
}

/// `(physical rows as a read-only mapped array, active physical rows or None)`.
pub fn view_of<'py>(py: Python<'py>, snap: &Arc<ArraySnapshot>) -> PyResult<Bound<'py, PyTuple>> {
    let active = snap.active_rows().map(|rows| {
        let rows: Vec<i64> = rows.into_iter().map(|r| r as i64).collect();
        numpy::PyArray1::from_vec(py, rows).into_any()
    });
    let map = (!snap.physical().is_empty()).then(|| MappingKind::Read(Arc::clone(snap)));
    let (arr, _) = mapped_array(py, snap.meta.dtype, &snap.meta.shape, map)?;
    PyTuple::new(
        py,
        [arr, active.unwrap_or_else(|| py.None().into_bound(py))],
    )
}

#[pymethods]
impl PyRowSource {
    /// The same version as [`view_of`]: `(physical array, active rows or None)`.
    fn view<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        view_of(py, &self.snap)
    }

    /// Physical rows.
    #[getter]
    fn rows(&self) -> u64 {
        self.snap.meta.rows()
    }

    /// Physical rows `start..stop` as a writable array over a private mapping.
    fn take<'py>(&self, py: Python<'py>, start: u64, stop: u64) -> PyResult<Bound<'py, PyAny>> {
        let mut shape = self.snap.meta.shape.clone();
        let n = stop.saturating_sub(start);
        if let Some(first) = shape.first_mut() {
            *first = n;
        }
        if n == 0 || self.snap.row_bytes() == 0 {
            let (arr, mut buf) = new_array(py, self.snap.meta.dtype, &shape)?;
            buf.bytes().fill(0);
            return Ok(arr);
        }
        let snap = Arc::clone(&self.snap);
        let (map, offset) = py.detach(|| snap.map_rows_private(start, stop)).py_err()?;
        let (arr, _) = mapped_array_at(
            py,
            self.snap.meta.dtype,
            &shape,
            Some(MappingKind::Write(map)),
            offset,
        )?;
        Ok(arr)
    }
}
