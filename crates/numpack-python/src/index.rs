//! Vector indexes for Python: `create_index`, `reindex`, `drop_index`, `index_info` and the
//! search that uses an index when there is a current one. Conversion and GIL release only;
//! what is indexable, the defaults and the fallback to the exact engine live in the engine
//! (`numpack::store::index`).

use crate::snapshot::PySnapshot;
use crate::store::PyStore;
use crate::vector::{batch_rows, metric, pack_top_k, queries, search_err, top};
use numpack::store::SearchOptions;
use numpack::vector::index::BuildOptions;
use numpack::vector::stream::snapshot_top_k;
use numpack::vector::Metric;
use numpack::Store;
use numpy::{PyArray2, PyUntypedArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;

/// Where an index search reads: an open store, a store at a path, or a snapshot (searched
/// exactly at its version: indexes are not versioned).
#[derive(FromPyObject)]
pub enum IndexSource<'py> {
    /// An open snapshot.
    Snapshot(PyRef<'py, PySnapshot>),
    /// An open store.
    Store(PyRef<'py, PyStore>),
    /// A store directory.
    Path(PathBuf),
}

fn positive(what: &str, v: Option<usize>) -> PyResult<Option<usize>> {
    match v {
        Some(0) => Err(PyValueError::new_err(format!("{what} must be at least 1"))),
        v => Ok(v),
    }
}

fn build_options(
    nlist: Option<usize>,
    train_rows: Option<usize>,
    iters: Option<usize>,
    seed: Option<u64>,
) -> PyResult<BuildOptions> {
    let d = BuildOptions::default();
    Ok(BuildOptions {
        nlist: positive("nlist", nlist)?,
        train_rows: positive("train_rows", train_rows)?.unwrap_or(d.train_rows),
        iters: iters.unwrap_or(d.iters),
        seed: seed.unwrap_or(d.seed),
        pq: None,
    })
}

/// The PQ sub-spaces of an index kind: `None` for `"ivf_flat"`, `Some(m)` (0: the default)
/// for `"ivf_pq"`.
fn kind_of(kind: &str, m: Option<usize>) -> PyResult<Option<usize>> {
    match (kind, m) {
        ("ivf_flat", None) => Ok(None),
        ("ivf_flat", Some(_)) => Err(PyValueError::new_err(
            "m (PQ sub-spaces) is for kind='ivf_pq'",
        )),
        ("ivf_pq", m) => Ok(Some(positive("m", m)?.unwrap_or(0))),
        (other, _) => Err(PyValueError::new_err(format!(
            "unknown index kind {other:?}: 'ivf_flat' or 'ivf_pq'"
        ))),
    }
}

/// Builds an index of array `name` (replacing any it has).
#[pyfunction]
#[pyo3(signature = (store, name, metric_name, kind="ivf_flat", nlist=None, m=None, train_rows=None, iters=None, seed=None))]
#[allow(clippy::too_many_arguments)]
pub fn index_create(
    py: Python<'_>,
    store: PyRef<'_, PyStore>,
    name: &str,
    metric_name: &str,
    kind: &str,
    nlist: Option<usize>,
    m: Option<usize>,
    train_rows: Option<usize>,
    iters: Option<usize>,
    seed: Option<u64>,
) -> PyResult<()> {
    let metric_ = metric(metric_name)?;
    let opts = BuildOptions {
        pq: kind_of(kind, m)?,
        ..build_options(nlist, train_rows, iters, seed)?
    };
    let s = store.get()?;
    py.detach(|| s.create_index(name, metric_, &opts))
        .map_err(|e| crate::errors::to_py_in(e, Some(name)))
}

/// Trains the index of `name` again (same metric; same lists unless `nlist` is given).
#[pyfunction]
#[pyo3(signature = (store, name, nlist=None, train_rows=None, iters=None, seed=None))]
pub fn index_rebuild(
    py: Python<'_>,
    store: PyRef<'_, PyStore>,
    name: &str,
    nlist: Option<usize>,
    train_rows: Option<usize>,
    iters: Option<usize>,
    seed: Option<u64>,
) -> PyResult<()> {
    let opts = build_options(nlist, train_rows, iters, seed)?;
    let s = store.get()?;
    py.detach(|| s.reindex(name, &opts))
        .map_err(|e| crate::errors::to_py_in(e, Some(name)))
}

/// Removes the index of `name`; whether it had one.
#[pyfunction]
pub fn index_drop(py: Python<'_>, store: PyRef<'_, PyStore>, name: &str) -> PyResult<bool> {
    let s = store.get()?;
    py.detach(|| s.drop_index(name))
        .map_err(|e| crate::errors::to_py_in(e, Some(name)))
}

/// What the index of `name` is (`None` without one).
#[pyfunction]
pub fn index_info<'py>(
    py: Python<'py>,
    store: PyRef<'_, PyStore>,
    name: &str,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let s = store.get()?;
    let Some(i) = py
        .detach(|| s.index_info(name))
        .map_err(|e| crate::errors::to_py_in(e, Some(name)))?
    else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    d.set_item("kind", i.kind)?;
    d.set_item("m", i.m)?;
    d.set_item("metric", i.metric.as_str())?;
    d.set_item("nlist", i.nlist)?;
    d.set_item("dim", i.dim)?;
    d.set_item("listed", i.listed)?;
    d.set_item("imbalance", i.imbalance)?;
    d.set_item("current", i.current)?;
    d.set_item("base_bytes", i.base_bytes)?;
    d.set_item("log_bytes", i.log_bytes)?;
    Ok(Some(d))
}

type Found<'py> = (Bound<'py, PyArray2<u64>>, Bound<'py, PyArray2<f64>>, bool);

/// The `k` best logical rows of `name` per query, through its index when it has a current
/// one of the asked metric (else exactly): `(indices (m, k'), scores (m, k'), indexed)`.
#[pyfunction]
#[pyo3(signature = (source, name, queries_arr, k, metric_name=None, nprobe=None, refine=None, exact=false, batch=None))]
#[allow(clippy::too_many_arguments)]
pub fn index_search<'py>(
    py: Python<'py>,
    source: IndexSource<'py>,
    name: &str,
    queries_arr: Bound<'py, PyUntypedArray>,
    k: Bound<'py, PyAny>,
    metric_name: Option<&str>,
    nprobe: Option<usize>,
    refine: Option<usize>,
    exact: bool,
    batch: Option<Bound<'py, PyAny>>,
) -> PyResult<Found<'py>> {
    let k = top(&k)?;
    let batch = match batch {
        Some(b) => batch_rows(&b)?,
        None => 10_000,
    };
    let m = metric_name.map(metric).transpose()?;
    let opts = SearchOptions {
        k,
        nprobe: positive("nprobe", nprobe)?,
        refine: positive("refine", refine)?,
        exact,
        metric: m,
        batch,
    };
    let q = queries(&queries_arr)?;
    let run = |s: &Store| s.search(name, &q, &opts);
    let found = match &source {
        IndexSource::Snapshot(snap) => snap.with(|sn| {
            py.detach(|| {
                let r = snapshot_top_k(sn, name, m.unwrap_or(Metric::Cosine), &q, k, batch)?;
                Ok(numpack::store::Searched {
                    results: r,
                    indexed: false,
                })
            })
            .map_err(|e| search_err(py, name, e))
        })?,
        IndexSource::Store(s) => {
            let s = s.get()?;
            py.detach(|| run(&s)).map_err(|e| search_err(py, name, e))?
        }
        IndexSource::Path(path) => py
            .detach(|| {
                if !path.join("metadata.npkm").is_file() {
                    return Err(numpack::NpkError::ArrayNotFound(name.to_owned()));
                }
                run(&Store::open(path)?)
            })
            .map_err(|e| search_err(py, name, e))?,
    };
    let (idx, sc) = pack_top_k(py, found.results)?;
    Ok((idx, sc, found.indexed))
}
