//! Vector search for Python: typed views of the arrays in, NumPy arrays out, GIL released.
//! Argument checking and dtype policy live in `numpack/vector_engine.py`.

use crate::errors::IntoPy;
use crate::numpy_conv::input;
use numpack::vector::stream::{stream_scores, stream_top_k, Queries};
use numpack::vector::{self, Metric, Vectors};
use numpack::{DataType, Store};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArray};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::path::PathBuf;

type TopK<'py> = (Bound<'py, PyArray2<u64>>, Bound<'py, PyArray2<f64>>);

fn metric(name: &str) -> PyResult<Metric> {
    name.parse::<Metric>()
        .map_err(|_| PyValueError::new_err(format!("Unknown metric: {name}")))
}

/// The elements of an aligned buffer (an empty array may have a dangling pointer).
fn cast<T: bytemuck::Pod>(bytes: &[u8]) -> PyResult<&[T]> {
    if bytes.is_empty() {
        return Ok(&[]);
    }
    bytemuck::try_cast_slice(bytes)
        .map_err(|_| PyTypeError::new_err("array data is not aligned for its dtype"))
}

/// Row-major data of a 2-d C-contiguous float32/float64/float16/int8/uint8 array, and its
/// width (uint8 rows are packed bits for hamming / jaccard).
fn rows<'a>(arr: &'a Bound<'_, PyUntypedArray>) -> PyResult<(Vectors<'a>, usize)> {
    let i = input(arr)?;
    if i.shape.len() != 2 {
        return Err(PyValueError::new_err("expected a 2-d array"));
    }
    let dim = i.shape[1] as usize;
    let v = match i.dtype {
        DataType::Float32 => Vectors::F32(cast(i.bytes)?),
        DataType::Float64 => Vectors::F64(cast(i.bytes)?),
        DataType::Float16 => Vectors::F16(cast(i.bytes)?),
        DataType::Int8 => Vectors::I8(bytemuck::cast_slice(i.bytes)),
        DataType::Uint8 => Vectors::Bits(i.bytes),
        d => return Err(PyTypeError::new_err(format!("Unsupported dtype: {d}"))),
    };
    Ok((v, dim))
}

/// `k` as given: a non-negative int; any larger than the machine's word means "all" (the
/// engine caps it at the candidates).
fn top(k: &Bound<'_, PyAny>) -> PyResult<usize> {
    match k.extract::<usize>() {
        Ok(k) => Ok(k),
        Err(_) if k.is_instance_of::<pyo3::types::PyInt>() && k.gt(0).unwrap_or(false) => {
            Ok(usize::MAX)
        }
        Err(_) => Err(PyValueError::new_err(format!(
            "k must be a non-negative int, got {k}"
        ))),
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

fn pack_top_k(py: Python<'_>, best: Vec<(Vec<u64>, Vec<f64>)>) -> PyResult<TopK<'_>> {
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
    let (q, dim) = rows(&queries)?;
    let (c, _) = rows(&candidates)?;
    let n_q = q.rows(dim);
    let out = py.detach(|| vector::scores(m, q, c, dim)).py_err()?;
    to_2d(py, out, n_q)
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
    let (q, dim) = rows(&queries)?;
    let (c, _) = rows(&candidates)?;
    let best = py.detach(|| vector::top_k(m, q, c, dim, k, 0)).py_err()?;
    pack_top_k(py, best)
}

fn queries(arr: &Bound<'_, PyUntypedArray>) -> PyResult<(Queries, usize)> {
    let (v, dim) = rows(arr)?;
    let q = match v {
        Vectors::F32(x) => Queries::F32(x.to_vec()),
        Vectors::F64(x) => Queries::F64(x.to_vec()),
        _ => {
            return Err(PyTypeError::new_err(
                "streaming search needs float32 or float64 queries",
            ))
        }
    };
    Ok((q, dim))
}

/// Top-k streamed from array `name` of the store at `path` (logical rows).
#[pyfunction]
pub fn vector_stream_top_k<'py>(
    py: Python<'py>,
    path: PathBuf,
    name: &str,
    queries_arr: Bound<'py, PyUntypedArray>,
    metric_name: &str,
    k: Bound<'py, PyAny>,
    batch: usize,
) -> PyResult<TopK<'py>> {
    let k = top(&k)?;
    let m = metric(metric_name)?;
    let (q, dim) = queries(&queries_arr)?;
    let best = py
        .detach(|| {
            let store = Store::open(&path)?;
            stream_top_k(&store, name, m, &q, dim, k, batch)
        })
        .py_err()?;
    pack_top_k(py, best)
}

/// Scores streamed from array `name` of the store at `path`: `(queries, logical rows)`.
#[pyfunction]
pub fn vector_stream_scores<'py>(
    py: Python<'py>,
    path: PathBuf,
    name: &str,
    queries_arr: Bound<'py, PyUntypedArray>,
    metric_name: &str,
    batch: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let m = metric(metric_name)?;
    let (q, dim) = queries(&queries_arr)?;
    let n_q = match &q {
        Queries::F32(v) => v.len() / dim.max(1),
        Queries::F64(v) => v.len() / dim.max(1),
    };
    let out = py
        .detach(|| {
            let store = Store::open(&path)?;
            stream_scores(&store, name, m, &q, dim, batch)
        })
        .py_err()?;
    to_2d(py, out, n_q)
}
