//! `numpack._core.Store`: the engine's [`Store`] for Python. Conversion and GIL release only.

use crate::copy::{copy_rows, Rows as CopyRows};
use crate::errors::IntoPy;
use crate::numpy_conv::{
    dtype_of, input, mapped_array, numpy_dtype, Input, MappedFile, MappingKind,
};
use crate::rows::PyRowSource;
use crate::selection::Rows;
use crate::snapshot::PySnapshot;
use crate::writer::PyArrayWriter;
use numpack::{ArraySnapshot, ReplaceItem, RowSelection, SaveItem, Store};
use numpy::{PyArrayDescr, PyUntypedArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::sync::{Arc, RwLock};

/// An open store directory.
#[pyclass(name = "Store", module = "numpack._core", frozen)]
pub struct PyStore {
    inner: RwLock<Option<Arc<Store>>>,
    path: String,
}

/// The bytes of every `(name, array)`, all checked before any is used.
fn inputs_of<'a>(arrays: &'a [(String, Bound<'_, PyUntypedArray>)]) -> PyResult<Vec<Input<'a>>> {
    arrays.iter().map(|(_, a)| input(a)).collect()
}

/// The engine's items of `(name, array)` pairs (saved whole or appended as rows).
fn items_of<'a>(
    arrays: &'a [(String, Bound<'_, PyUntypedArray>)],
    inputs: &'a [Input<'a>],
) -> Vec<SaveItem<'a>> {
    arrays
        .iter()
        .zip(inputs)
        .map(|((name, _), i)| SaveItem {
            name,
            dtype: i.dtype,
            shape: &i.shape,
            data: i.bytes,
        })
        .collect()
}

/// The one array a call names, for error messages (`None` when it names several).
fn single_name<T>(items: &[(String, T)]) -> Option<&str> {
    (items.len() == 1).then(|| items[0].0.as_str())
}

impl PyStore {
    pub(crate) fn get(&self) -> PyResult<Arc<Store>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PyValueError::new_err("the store is not opened or has been closed"))
    }

    fn opened(&self, py: Python<'_>, name: &str) -> PyResult<Arc<ArraySnapshot>> {
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

    /// Pins `version` (the current one when `None`).
    #[pyo3(signature = (version=None))]
    fn snapshot(&self, py: Python<'_>, version: Option<u64>) -> PyResult<PySnapshot> {
        let store = self.get()?;
        let s = py
            .detach(|| match version {
                None => store.snapshot(),
                Some(v) => store.snapshot_at(v),
            })
            .py_err()?;
        Ok(PySnapshot::new(s))
    }

    fn version(&self, py: Python<'_>) -> PyResult<u64> {
        let store = self.get()?;
        py.detach(|| store.version()).py_err()
    }

    /// Every readable version as `(version, time_us, op, arrays, bytes_kept, tags, aborted)`.
    #[allow(clippy::type_complexity)]
    fn versions(
        &self,
        py: Python<'_>,
    ) -> PyResult<Vec<(u64, u64, String, Vec<String>, u64, Vec<String>, bool)>> {
        let store = self.get()?;
        let v = py.detach(|| store.versions()).py_err()?;
        Ok(v.into_iter()
            .map(|v| {
                (
                    v.version,
                    v.time_us,
                    v.op.to_owned(),
                    v.arrays,
                    v.bytes_kept,
                    v.tags,
                    v.aborted,
                )
            })
            .collect())
    }

    #[pyo3(signature = (name, version=None))]
    fn tag(&self, py: Python<'_>, name: &str, version: Option<u64>) -> PyResult<u64> {
        let store = self.get()?;
        py.detach(|| store.tag(name, version)).py_err()
    }

    fn untag(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let store = self.get()?;
        py.detach(|| store.untag(name)).py_err()
    }

    fn tags(&self, py: Python<'_>) -> PyResult<Vec<(String, u64)>> {
        let store = self.get()?;
        Ok(py.detach(|| store.tags()).py_err()?.into_iter().collect())
    }

    fn tagged(&self, py: Python<'_>, name: &str) -> PyResult<u64> {
        let store = self.get()?;
        py.detach(|| store.tagged(name)).py_err()
    }

    fn set_history(&self, py: Python<'_>, keep_last: u64) -> PyResult<()> {
        let store = self.get()?;
        py.detach(|| store.set_history(keep_last)).py_err()
    }

    fn history_setting(&self, py: Python<'_>) -> PyResult<u64> {
        let store = self.get()?;
        py.detach(|| store.history_setting()).py_err()
    }

    /// `(versions_removed, bytes_freed, oldest)`.
    #[pyo3(signature = (keep_last=None, older_than_us=None))]
    fn gc(
        &self,
        py: Python<'_>,
        keep_last: Option<u64>,
        older_than_us: Option<u64>,
    ) -> PyResult<(u64, u64, u64)> {
        let store = self.get()?;
        let r = py.detach(|| store.gc(keep_last, older_than_us)).py_err()?;
        Ok((r.versions_removed, r.bytes_freed, r.oldest))
    }

    fn restore(&self, py: Python<'_>, version: u64) -> PyResult<u64> {
        let store = self.get()?;
        py.detach(|| store.restore(version)).py_err()
    }

    fn save(
        &self,
        py: Python<'_>,
        arrays: Vec<(String, Bound<'_, PyUntypedArray>)>,
    ) -> PyResult<()> {
        let store = self.get()?;
        let inputs = inputs_of(&arrays)?;
        let items = items_of(&arrays, &inputs);
        py.detach(|| store.save(&items)).py_err()
    }

    /// Appends rows to every `(name, array)` at once: all arrays grow, or none does.
    fn append(
        &self,
        py: Python<'_>,
        arrays: Vec<(String, Bound<'_, PyUntypedArray>)>,
    ) -> PyResult<()> {
        let store = self.get()?;
        let inputs = inputs_of(&arrays)?;
        let items = items_of(&arrays, &inputs);
        let only = single_name(&arrays);
        py.detach(|| store.append_many(&items)).py_err_in(only)
    }

    /// Overwrites rows of every `(name, array, rows)` at once, under one undo record.
    fn replace(
        &self,
        py: Python<'_>,
        items: Vec<(String, Bound<'_, PyUntypedArray>, Bound<'_, PyAny>)>,
    ) -> PyResult<()> {
        let store = self.get()?;
        let mut inputs = Vec::with_capacity(items.len());
        for (_, a, r) in &items {
            inputs.push((input(a)?, Rows::extract(r)?));
        }
        let plan: Vec<ReplaceItem<'_>> = items
            .iter()
            .zip(&inputs)
            .map(|((name, _, _), (i, rows))| ReplaceItem {
                name,
                dtype: i.dtype,
                shape: &i.shape,
                data: i.bytes,
                rows: rows.selection(),
            })
            .collect();
        let only = (items.len() == 1).then(|| items[0].0.as_str());
        py.detach(|| store.replace_many(&plan)).py_err_in(only)
    }

    /// Deletes rows of every `(name, rows)` in one commit.
    fn drop_rows(&self, py: Python<'_>, items: Vec<(String, Bound<'_, PyAny>)>) -> PyResult<()> {
        let store = self.get()?;
        let rows = items
            .iter()
            .map(|(_, r)| Rows::extract(r))
            .collect::<PyResult<Vec<_>>>()?;
        let sel: Vec<(&str, RowSelection<'_>)> = items
            .iter()
            .zip(&rows)
            .map(|((n, _), r)| (n.as_str(), r.selection()))
            .collect();
        let only = single_name(&items);
        py.detach(|| store.drop_selected(&sel)).py_err_in(only)
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

    /// The logical rows, of one committed state.
    fn load<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        copy_rows(py, &self.get()?, name, CopyRows::All)
    }

    /// Rows of one version of the array: `rows` is an int64 array, a bool mask or a slice
    /// over the logical rows, resolved against that version.
    fn getitem<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        rows: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let store = self.get()?;
        let rows = Rows::extract(&rows)?;
        copy_rows(py, &store, name, CopyRows::Some(rows.selection()))
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
        copy_rows(py, &self.get()?, name, CopyRows::Some(sel))
    }

    fn view<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyTuple>> {
        let snap = self.opened(py, name)?;
        crate::rows::view_of(py, &snap)
    }

    /// The rows of the current version of array `name`, pinned, for streaming.
    fn row_source(&self, py: Python<'_>, name: &str) -> PyResult<PyRowSource> {
        let store = self.get()?;
        py.detach(|| PyRowSource::open(store, name)).py_err()
    }

    fn writable_view<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyTuple>> {
        // A shared mapping needs one data file (a segmented array becomes one).
        let store = self.get()?;
        py.detach(|| store.to_single_files(&[name])).py_err()?;
        let snap = self.opened(py, name)?;
        let map = py.detach(|| snap.map_writable()).py_err()?;
        let (arr, owner) = mapped_array(
            py,
            snap.meta.dtype,
            &snap.meta.shape,
            map.map(MappingKind::Write),
        )?;
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
        Ok((numpy_dtype(py, dtype)?, PyTuple::new(py, shape)?))
    }

    fn dtype<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArrayDescr>> {
        let store = self.get()?;
        let meta = py.detach(|| store.array_metadata(name)).py_err()?;
        numpy_dtype(py, meta.dtype)
    }

    fn info<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let snap = self.opened(py, name)?;
        let file_bytes = snap.file_bytes();
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
        d.set_item("segments", snap.segment_count())?;
        Ok(d)
    }

    /// The attributes of array `name` as JSON text of an object.
    fn attrs(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let store = self.get()?;
        py.detach(|| store.attrs(name)).py_err()
    }

    /// Sets the keys of `set` (JSON text of an object) and removes those of `remove`, or
    /// with `replace` makes the attributes exactly `set`; one commit.
    #[pyo3(signature = (name, set, remove, replace))]
    fn update_attrs(
        &self,
        py: Python<'_>,
        name: &str,
        set: &str,
        remove: Vec<String>,
        replace: bool,
    ) -> PyResult<()> {
        let store = self.get()?;
        py.detach(|| store.update_attrs(name, set, &remove, replace))
            .py_err()
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
