//! `numpack._core.RowSource`: the batches of `stream_load`, all of the version current when
//! the stream began: copies (`read`) through the store's view while no commit has moved on,
//! else through a snapshot pinned at the start; or private copy-on-write mappings of the rows
//! (`take`, writable, nothing copied up front, live like a `LazyArray`).

use crate::errors::IntoPy;
use crate::numpy_conv::{mapped_array, mapped_array_at, new_array, MappingKind};
use numpack::{ArraySnapshot, Snapshot, Store};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::{Arc, Mutex};

/// The rows of one array version, independent of the store handle (iteration survives
/// `close()`).
#[pyclass(name = "RowSource", module = "numpack._core", frozen)]
pub struct PyRowSource {
    name: String,
    store: Arc<Store>,
    snap: Arc<ArraySnapshot>,
    /// The version `snap` shows, pinned (`None` once released, or when a stream of commits
    /// never let it be taken together with the view).
    pinned: Mutex<Option<Arc<Snapshot>>>,
}

/// Attempts at pinning a version and taking the view of that version.
const PIN_TRIES: usize = 16;

impl PyRowSource {
    /// The current version of array `name`, pinned.
    pub fn open(store: Arc<Store>, name: &str) -> numpack::NpkResult<Self> {
        for _ in 0..PIN_TRIES {
            let pin = store.snapshot()?;
            if let Some(snap) = pin.current_view(name)? {
                return Ok(PyRowSource {
                    name: name.to_owned(),
                    store,
                    snap,
                    pinned: Mutex::new(Some(Arc::new(pin))),
                });
            }
        }
        // Writers kept committing in between: batches then come from the view as it is
        // (live, like a `LazyArray`).
        let snap = store.array(name)?;
        Ok(PyRowSource {
            name: name.to_owned(),
            store,
            snap,
            pinned: Mutex::new(None),
        })
    }
}

/// `(physical rows as a read-only mapped array, active physical rows or None)`.
pub fn view_of<'py>(py: Python<'py>, snap: &Arc<ArraySnapshot>) -> PyResult<Bound<'py, PyTuple>> {
    let active = snap.active_rows().map(|rows| {
        let rows: Vec<i64> = rows.into_iter().map(|r| r as i64).collect();
        numpy::PyArray1::from_vec(py, rows).into_any()
    });
    let map = (snap.meta.size_bytes > 0).then(|| MappingKind::Read(Arc::clone(snap)));
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

    /// `(dtype, physical shape, active physical rows or None)`, mapping nothing (a
    /// segmented array's one view may mean reading it into memory; batches never need it).
    fn layout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let active = self.snap.active_rows().map(|rows| {
            let rows: Vec<i64> = rows.into_iter().map(|r| r as i64).collect();
            numpy::PyArray1::from_vec(py, rows).into_any()
        });
        let dtype = crate::numpy_conv::numpy_dtype(py, self.snap.meta.dtype)?;
        PyTuple::new(
            py,
            [
                dtype.into_any(),
                PyTuple::new(py, &self.snap.meta.shape)?.into_any(),
                active.unwrap_or_else(|| py.None().into_bound(py)),
            ],
        )
    }

    /// Physical rows.
    #[getter]
    fn rows(&self) -> u64 {
        self.snap.meta.rows()
    }

    /// Logical rows `start..stop` of the stream's version, as a new array: copied through the
    /// view while no commit of any process has begun since the pin (checked before and after
    /// the copy), else through the pinned version.
    fn read<'py>(&self, py: Python<'py>, start: i64, stop: i64) -> PyResult<Bound<'py, PyAny>> {
        let sel = crate::selection::range_of(start, stop);
        // Not held across the copy: another thread may read the same source meanwhile.
        let pin = self
            .pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(pin) = pin else {
            return crate::copy::copy_view(py, &self.snap, &sel);
        };
        if pin.is_current() {
            let copied = crate::copy::copy_from_view(py, &self.store, &self.snap, &sel)?;
            if let Some(arr) = copied.filter(|_| pin.is_current()) {
                return Ok(arr);
            }
        }
        crate::snapshot::copy_selected(py, &pin, &self.name, &sel)
    }

    /// Lets the version go (batches are then only taken as mappings).
    fn release(&self) {
        self.pinned.lock().unwrap_or_else(|e| e.into_inner()).take();
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
