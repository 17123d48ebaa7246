//! Staged writes (`Store::stage_*`): rows written by many tasks, committed at once.

use crate::errors::IntoPy;
use crate::numpy_conv::{dtype_of, input};
use crate::store::PyStore;
use numpack::StageMode;
use numpy::{PyArrayDescr, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn mode_of(mode: &str) -> PyResult<StageMode> {
    Ok(match mode {
        "create" => StageMode::Create,
        "overwrite" => StageMode::Overwrite,
        "append" => StageMode::Append,
        _ => {
            return Err(PyValueError::new_err(format!(
                "mode must be 'create', 'overwrite' or 'append', not {mode:?}"
            )))
        }
    })
}

/// `stage_begin(store, name, mode, dtype, shape) -> token`: a stage for `shape` rows.
#[pyfunction]
pub fn stage_begin(
    py: Python<'_>,
    store: &PyStore,
    name: &str,
    mode: &str,
    dtype: &Bound<'_, PyArrayDescr>,
    shape: Vec<u64>,
) -> PyResult<String> {
    let (s, mode, dtype) = (store.get()?, mode_of(mode)?, dtype_of(dtype)?);
    py.detach(|| s.stage_begin(name, mode, dtype, &shape))
        .py_err_in(Some(name))
}

/// `stage_write(store, token, start, rows)`: writes `rows` (an array) at row `start`.
#[pyfunction]
pub fn stage_write(
    py: Python<'_>,
    store: &PyStore,
    token: &str,
    start: u64,
    rows: &Bound<'_, PyUntypedArray>,
) -> PyResult<()> {
    let s = store.get()?;
    if rows.ndim() == 0 {
        return Err(PyValueError::new_err(
            "staged rows must have at least one dimension",
        ));
    }
    let i = input(rows)?;
    py.detach(|| s.stage_write(token, start, i.dtype, &i.shape, i.bytes))
        .py_err()
}

/// `stage_commit(store, token)`: makes every staged row appear at once.
#[pyfunction]
pub fn stage_commit(py: Python<'_>, store: &PyStore, token: &str) -> PyResult<()> {
    let s = store.get()?;
    py.detach(|| s.stage_commit(token)).py_err()
}

/// `stage_abort(store, token)`: drops a stage.
#[pyfunction]
pub fn stage_abort(py: Python<'_>, store: &PyStore, token: &str) -> PyResult<()> {
    let s = store.get()?;
    py.detach(|| s.stage_abort(token)).py_err()
}
