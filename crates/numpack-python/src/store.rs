//! `numpack._core.Store`: the engine's [`Store`] for Python. Conversion and GIL release only.

use crate::errors::IntoPy;
use crate::numpy_conv::{
    dtype_of, input, mapped_array, new_array, numpy_dtype, MappedFile, MappingKind,
};
use crate::rows::PyRowSource;
use crate::writer::PyArrayWriter;
use numpack::{ArraySnapshot, Store};
use numpy::{PyArrayDescr, PyReadonlyArray1, PyUntypedArray};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::sync::{Arc, RwLock};

/// An open store directory.
#[pyclass(name = "Store", module = "numpack._core", frozen)]
pub struct PyStore {
    inner: RwLock<Option<Arc<Store>>>,
    path: String,
}

fn indices(idx: &PyReadonlyArray1<'_, i64>) -> Vec<i64> {
    idx.as_array().iter().copied().collect()
}

impl PyStore {
    fn get(&self) -> PyResult<Arc<Store>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PyValueError::new_err("the store is not opened or has been closed"))
    }

    fn snapshot(&self, py: Python<'_>, name: &str) -> PyResult<Arc<ArraySnapshot>> {
        let store = self.get()?;
        py.detach(|| store.array(name)).py_err()
    }
}

#[pymethods]
impl PyStore {
    #[new]
    fn new(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        // Absolute, so that pickled LazyArrays reopen the same store from any directory.
        let shown = std::path::absolute(&path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string();
        let store = py.detach(|| Store::open(&path)).py_err()?;
        Ok(PyStore {
            inner: RwLock::new(Some(Arc::new(store))),
            path: shown,
        })
    }

    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some(store) => py.detach(|| store.sync()).py_err(),
            None => Ok(()),
        }
    }

    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.get()?;
        py.detach(|| store.sync()).py_err()
    }

    fn save(
        &self,
        py: Python<'_>,
        arrays: Vec<(String, Bound<'_, PyUntypedArray>)>,
    ) -> PyResult<()> {
        let store = self.get()?;
        let inputs = arrays
            .iter()
            .map(|(_, a)| input(a))
            .collect::<PyResult<Vec<_>>>()?;
        let items: Vec<numpack::store::SaveItem<'_>> = arrays
            .iter()
            .zip(&inputs)
            .map(|((name, _), i)| numpack::store::SaveItem {
                name,
                dtype: i.dtype,
                shape: &i.shape,
                data: i.bytes,
            })
            .collect();
        py.detach(|| store.save(&items)).py_err()
    }

    fn append(&self, py: Python<'_>, name: &str, array: Bound<'_, PyUntypedArray>) -> PyResult<()> {
        let store = self.get()?;
        let i = input(&array)?;
        py.detach(|| store.append(name, i.dtype, &i.shape, i.bytes))
            .py_err()
    }

    fn replace(
        &self,
        py: Python<'_>,
        name: &str,
        array: Bound<'_, PyUntypedArray>,
        indices_arr: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<()> {
        let store = self.get()?;
        let i = input(&array)?;
        let idx = indices(&indices_arr);
        py.detach(|| store.replace(name, i.dtype, &i.shape, i.bytes, &idx))
            .py_err()
    }

    fn drop_rows(
        &self,
        py: Python<'_>,
        name: &str,
        indices_arr: PyReadonlyArray1<'_, i64>,
    ) -> PyResult<()> {
        let store = self.get()?;
        let idx = indices(&indices_arr);
        py.detach(|| store.drop_rows(name, &idx)).py_err()
    }

    fn drop_arrays(&self, py: Python<'_>, names: Vec<String>) -> PyResult<()> {
        let store = self.get()?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        py.detach(|| store.drop_arrays(&refs)).py_err()
    }

    fn compact(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let store = self.get()?;
        py.detach(|| store.compact(name)).py_err()
    }

    fn clone(&self, py: Python<'_>, source: &str, target: &str) -> PyResult<()> {
        let store = self.get()?;
        py.detach(|| store.clone_array(source, target)).py_err()
    }

    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        let store = self.get()?;
        py.detach(|| store.reset()).py_err()
    }

    fn load<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let snap = self.snapshot(py, name)?;
        let (arr, mut buf) = new_array(py, snap.meta.dtype, &snap.logical_shape());
        py.detach(|| snap.copy_into(buf.bytes())).py_err()?;
        Ok(arr)
    }

    fn getitem<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        indices_arr: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let snap = self.snapshot(py, name)?;
        let idx = indices(&indices_arr);
        if snap.is_scalar() {
            return snap.resolve(&idx).py_err().map(|_| unreachable!());
        }
        let mut shape = snap.meta.shape.clone();
        shape[0] = idx.len() as u64;
        let (arr, mut buf) = new_array(py, snap.meta.dtype, &shape);
        py.detach(|| snap.gather_into(&idx, buf.bytes())).py_err()?;
        Ok(arr)
    }

    fn read_range<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        start: u64,
        stop: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let snap = self.snapshot(py, name)?;
        let mut shape = snap.logical_shape();
        if shape.is_empty() {
            return snap.resolve(&[]).py_err().map(|_| unreachable!());
        }
        shape[0] = stop.saturating_sub(start);
        if start > stop || stop > snap.logical_rows() {
            return Err(numpack::NpkError::IndexOutOfBounds(
                stop as i64,
                snap.logical_rows(),
            ))
            .py_err();
        }
        let (arr, mut buf) = new_array(py, snap.meta.dtype, &shape);
        py.detach(|| snap.range_into(start, stop, buf.bytes()))
            .py_err()?;
        Ok(arr)
    }

    fn view<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyTuple>> {
        let snap = self.snapshot(py, name)?;
        crate::rows::view_of(py, &snap)
    }

    /// The rows of the current version of array `name`, for streaming.
    fn row_source(&self, py: Python<'_>, name: &str) -> PyResult<PyRowSource> {
        Ok(PyRowSource::new(self.snapshot(py, name)?))
    }

    fn writable_view<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyTuple>> {
        let snap = self.snapshot(py, name)?;
        if snap.bitmap().is_some_and(|b| b.deleted() > 0) {
            return Err(PyValueError::new_err(format!(
                "array '{name}' has deleted rows; compact it (update) before mapping it writable"
            )));
        }
        let path = snap.path().to_owned();
        let size = snap.physical().len();
        let map = if size == 0 {
            None
        } else {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| {
                    PyOSError::new_err((
                        e.raw_os_error().unwrap_or(0),
                        e.to_string(),
                        path.display().to_string(),
                    ))
                })?;
            // SAFETY: the file holds at least `size` committed bytes (checked when the
            // snapshot was opened) and numpack never shrinks committed bytes in place.
            let m = unsafe { memmap2::MmapOptions::new().len(size).map_mut(&file) }
                .map_err(|e| PyOSError::new_err(e.to_string()))?;
            Some(MappingKind::Write(m))
        };
        let (arr, owner) = mapped_array(py, snap.meta.dtype, &snap.meta.shape, map)?;
        let owner = match owner {
            Some(o) => o.into_any(),
            None => Bound::new(py, MappedFile::empty())?.into_any(),
        };
        PyTuple::new(py, [arr, owner])
    }

    fn names(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let store = self.get()?;
        py.detach(|| store.names()).py_err()
    }

    fn has(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        let store = self.get()?;
        py.detach(|| store.has(name)).py_err()
    }

    fn shape<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyTuple>> {
        let store = self.get()?;
        let (shape, _) = py.detach(|| store.describe(name)).py_err()?;
        PyTuple::new(py, shape)
    }

    fn describe<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> PyResult<(Bound<'py, PyArrayDescr>, Bound<'py, PyTuple>)> {
        let store = self.get()?;
        let (shape, dtype) = py.detach(|| store.describe(name)).py_err()?;
        Ok((numpy_dtype(py, dtype), PyTuple::new(py, shape)?))
    }

    fn dtype<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArrayDescr>> {
        let store = self.get()?;
        let meta = py.detach(|| store.array_metadata(name)).py_err()?;
        Ok(numpy_dtype(py, meta.dtype))
    }

    fn info<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let snap = self.snapshot(py, name)?;
        let file_bytes = std::fs::metadata(snap.path()).map(|m| m.len()).unwrap_or(0);
        let m = &snap.meta;
        let d = PyDict::new(py);
        d.set_item("shape", m.shape.clone())?;
        d.set_item("logical_shape", snap.logical_shape())?;
        d.set_item("data_file", &m.data_file)?;
        d.set_item("last_modified", m.last_modified)?;
        d.set_item("size_bytes", m.size_bytes)?;
        d.set_item("dtype", m.dtype.name())?;
        d.set_item("dtype_code", m.dtype.code())?;
        d.set_item("deleted_rows", snap.bitmap().map_or(0, |b| b.deleted()))?;
        d.set_item("file_bytes", file_bytes)?;
        Ok(d)
    }

    fn modify_time(&self, py: Python<'_>, name: &str) -> PyResult<Option<u64>> {
        let store = self.get()?;
        Ok(py
            .detach(|| store.array_metadata(name))
            .ok()
            .map(|m| m.last_modified))
    }

    fn total_size(&self, py: Python<'_>) -> PyResult<u64> {
        let store = self.get()?;
        Ok(py.detach(|| store.metadata_file()).py_err()?.total_size())
    }

    /// Starts a streaming import of array `name` (see `commit_writers`).
    fn array_writer(
        &self,
        py: Python<'_>,
        name: &str,
        dtype: &Bound<'_, PyArrayDescr>,
    ) -> PyResult<PyArrayWriter> {
        let store = self.get()?;
        let d = dtype_of(dtype)?;
        let w = py.detach(|| store.array_writer(name, d)).py_err()?;
        Ok(PyArrayWriter::new(w))
    }

    /// Makes the arrays of `writers` (`[(writer, shape), ...]`) appear at once, all or
    /// nothing; with `only_these`, every other array is removed in the same commit.
    #[pyo3(signature = (writers, only_these = false))]
    fn commit_writers(
        &self,
        py: Python<'_>,
        writers: Vec<(Bound<'_, PyArrayWriter>, Vec<u64>)>,
        only_these: bool,
    ) -> PyResult<()> {
        let store = self.get()?;
        let mut taken = Vec::with_capacity(writers.len());
        for (w, shape) in &writers {
            match w.get().take() {
                Ok(x) => taken.push((x, shape.clone())),
                // Writers taken so far are dropped, which removes their files too.
                Err(e) => return Err(e),
            }
        }
        py.detach(|| store.commit_writers(taken, only_these))
            .py_err()
    }

    fn __repr__(&self) -> String {
        format!("Store({:?})", self.path)
    }
}
