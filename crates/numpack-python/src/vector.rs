//! Vector search for Python: typed views of the arrays in, NumPy arrays out, GIL released.
//! The dtype policy, dimension checks and `k` live in the engine (`numpack::vector`); the
//! Python layer only adapts the published signatures' shapes.

use crate::errors::IntoPy;
use crate::numpy_conv::input;
use crate::snapshot::PySnapshot;
use numpack::vector::stream::{
    snapshot_scores, snapshot_top_k, stream_scores, stream_top_k, Queries,
};
use numpack::vector::{self, Metric, Rows};
use numpack::Store;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;

type TopK<'py> = (Bound<'py, PyArray2<u64>>, Bound<'py, PyArray2<f64>>);

pub(crate) fn metric(name: &str) -> PyResult<Metric> {
    name.parse::<Metric>()
        .map_err(|_| PyValueError::new_err(format!("Unknown metric: {name}")))
}

/// The vectors of a 2-d C-contiguous array of any dtype (the engine's promotion table
/// decides what it can be searched with).
fn rows<'a>(arr: &'a Bound<'_, PyUntypedArray>) -> PyResult<Rows<'a>> {
    if crate::numpy_conv::dtype_of(&arr.dtype()).is_err() {
        // Object, string, datetime, longdouble...: no kernel takes them.
        return Err(crate::errors::to_py(numpack::NpkError::DtypeMismatch(
            format!("Unsupported dtype: {}", arr.dtype()),
        )));
    }
    let i = input(arr)?;
    if i.shape.len() != 2 {
        return Err(PyValueError::new_err("expected a 2-d array"));
    }
    Rows::new(i.dtype, i.bytes, i.shape[0] as usize, i.shape[1] as usize).py_err()
}

/// `k` as given: a non-negative int; any larger than the machine's word means "all" (the
/// engine caps it at the candidates).
pub(crate) fn top(k: &Bound<'_, PyAny>) -> PyResult<usize> {
    let not_int = || {
        let t = k
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        PyTypeError::new_err(format!("k must be an int, not {t}"))
    };
    if k.is_instance_of::<pyo3::types::PyBool>() {
        return Err(not_int());
    }
    // Python and NumPy integers alike (`__index__`).
    let k = k.call_method0("__index__").map_err(|_| not_int())?;
    match k.extract::<usize>() {
        Ok(k) => Ok(k),
        Err(_) if k.gt(0).unwrap_or(false) => Ok(usize::MAX),
        Err(_) => Err(PyValueError::new_err(format!("k must be >= 0, got {k}"))),
    }
}

/// `batch_size` as given: an int (not a bool) greater than 0.
pub(crate) fn batch_rows(b: &Bound<'_, PyAny>) -> PyResult<usize> {
    if b.is_instance_of::<pyo3::types::PyBool>() || b.call_method0("__index__").is_err() {
        return Err(PyTypeError::new_err("batch_size must be an int"));
    }
    let b = b.call_method0("__index__")?;
    match b.extract::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        Err(_) if b.gt(0).unwrap_or(false) => Ok(usize::MAX),
        _ => Err(PyValueError::new_err("batch_size must be greater than 0")),
    }
}

fn to_2d<'py, T: numpy::Element>(
    py: Python<'py>,
    v: Vec<T>,
    rows: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    let cols = v.len().checked_div(rows).unwrap_or(0);
    PyArray1::from_vec(py, v).reshape([rows, cols])
}

pub(crate) fn pack_top_k(py: Python<'_>, best: Vec<(Vec<u64>, Vec<f64>)>) -> PyResult<TopK<'_>> {
    let m = best.len();
    let (idx, sc): (Vec<Vec<u64>>, Vec<Vec<f64>>) = best.into_iter().unzip();
    Ok((to_2d(py, idx.concat(), m)?, to_2d(py, sc.concat(), m)?))
}

/// The SIMD level in use.
#[pyfunction]
pub fn simd_capabilities() -> String {
    vector::capabilities()
}

/// `(queries, candidates)` scores, float64.
#[pyfunction]
pub fn vector_scores<'py>(
    py: Python<'py>,
    queries: Bound<'py, PyUntypedArray>,
    candidates: Bound<'py, PyUntypedArray>,
    metric_name: &str,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let m = metric(metric_name)?;
    let (q, c) = (rows(&queries)?, rows(&candidates)?);
    let out = py.detach(|| vector::scores_of(m, &q, &c)).py_err()?;
    to_2d(py, out, q.rows)
}

/// Per query the best `min(k, n)` candidates: `(indices uint64 (m, k'), scores (m, k'))`.
#[pyfunction]
pub fn vector_top_k<'py>(
    py: Python<'py>,
    queries: Bound<'py, PyUntypedArray>,
    candidates: Bound<'py, PyUntypedArray>,
    metric_name: &str,
    k: Bound<'py, PyAny>,
) -> PyResult<TopK<'py>> {
    let k = top(&k)?;
    let m = metric(metric_name)?;
    let (q, c) = (rows(&queries)?, rows(&candidates)?);
    let best = py.detach(|| vector::top_k_of(m, &q, &c, k)).py_err()?;
    pack_top_k(py, best)
}

pub(crate) fn queries(arr: &Bound<'_, PyUntypedArray>) -> PyResult<Queries> {
    let r = rows(arr)?;
    Queries::new(r.dtype, r.bytes.to_vec(), r.rows, r.dim).py_err()
}

/// Where a streamed search reads: the store at a path, or an open snapshot.
#[derive(FromPyObject)]
pub enum Source<'py> {
    /// An open snapshot (searched at its version).
    Snapshot(PyRef<'py, PySnapshot>),
    /// A store directory.
    Path(PathBuf),
}

/// An engine error as a Python exception, a missing array in the published vector engine's
/// wording.
pub(crate) fn search_err(py: Python<'_>, name: &str, e: numpack::NpkError) -> PyErr {
    match e {
        numpack::NpkError::ArrayNotFound(_) => crate::errors::numpack_error(
            py,
            "ArrayNotFoundError",
            format!("Array '{name}' not found in NumPack"),
        ),
        other => crate::errors::to_py_in(other, Some(name)),
    }
}

fn with_source<R: Send>(
    py: Python<'_>,
    src: &Source<'_>,
    name: &str,
    store_fn: impl FnOnce(&Store) -> numpack::NpkResult<R> + Send,
    snap_fn: impl FnOnce(&numpack::store::Snapshot) -> numpack::NpkResult<R> + Send,
) -> PyResult<R> {
    match src {
        Source::Path(path) => py
            .detach(|| {
                // A search never creates a store where there is none.
                if !path.join("metadata.npkm").is_file() {
                    return Err(numpack::NpkError::ArrayNotFound(name.to_owned()));
                }
                let store = Store::open(path)?;
                store_fn(&store)
            })
            .map_err(|e| search_err(py, name, e)),
        Source::Snapshot(s) => s.with(|snap| {
            py.detach(|| snap_fn(snap))
                .map_err(|e| search_err(py, name, e))
        }),
    }
}

/// Top-k streamed from array `name` of a store (path) or snapshot (logical rows).
#[pyfunction]
pub fn vector_stream_top_k<'py>(
    py: Python<'py>,
    source: Source<'py>,
    name: &str,
    queries_arr: Bound<'py, PyUntypedArray>,
    metric_name: &str,
    k: Bound<'py, PyAny>,
    batch: Bound<'py, PyAny>,
) -> PyResult<TopK<'py>> {
    let batch = batch_rows(&batch)?;
    let k = top(&k)?;
    let m = metric(metric_name)?;
    let q = queries(&queries_arr)?;
    let best = with_source(
        py,
        &source,
        name,
        |store| stream_top_k(store, name, m, &q, k, batch),
        |snap| snapshot_top_k(snap, name, m, &q, k, batch),
    )?;
    pack_top_k(py, best)
}

/// Scores streamed from array `name` of a store (path) or snapshot: `(queries, logical rows)`.
#[pyfunction]
pub fn vector_stream_scores<'py>(
    py: Python<'py>,
    source: Source<'py>,
    name: &str,
    queries_arr: Bound<'py, PyUntypedArray>,
    metric_name: &str,
    batch: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let batch = batch_rows(&batch)?;
    let m = metric(metric_name)?;
    let q = queries(&queries_arr)?;
    let out = with_source(
        py,
        &source,
        name,
        |store| stream_scores(store, name, m, &q, batch),
        |snap| snapshot_scores(snap, name, m, &q, batch),
    )?;
    to_2d(py, out, q.len())
}
