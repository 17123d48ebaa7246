//! Copies of stored rows into new NumPy arrays, each of one committed state: the array is
//! allocated with the GIL for the view the engine hands out, filled without it, and made again
//! if the engine says a writer moved under the copy (`Store::read_view`); under contention
//! the copy is made under the shared lock.

use crate::errors::IntoPy;
use crate::numpy_conv::new_array;
use numpack::{ArraySnapshot, DataType, NpkError, NpkResult, RowSelection, Selected, Store};
use pyo3::prelude::*;
use std::sync::Arc;

/// What to copy: every logical row, or a selection of them.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    /// The whole logical array (0-d arrays too).
    All,
    /// Selected logical rows (the row axis is kept).
    Some(RowSelection<'a>),
}

/// The plan of a copy from one view: the result's dtype and shape, and what to copy.
struct Plan {
    dtype: DataType,
    shape: Vec<u64>,
    picked: Option<Selected>,
}

fn plan(snap: &ArraySnapshot, rows: Rows<'_>) -> NpkResult<Plan> {
    Ok(match rows {
        Rows::All => Plan {
            dtype: snap.meta.dtype,
            shape: snap.logical_shape(),
            picked: None,
        },
        Rows::Some(sel) => {
            let picked = snap.select(&sel)?;
            Plan {
                dtype: snap.meta.dtype,
                shape: snap.selected_shape(&picked),
                picked: Some(picked),
            }
        }
    })
}

fn fill(snap: &ArraySnapshot, plan: &Plan, dst: &mut [u8]) -> NpkResult<()> {
    match &plan.picked {
        None => snap.copy_into(dst),
        Some(p) => snap.copy_selected(p, dst),
    }
}

/// Tries before the copy is made under the shared lock.
const TRIES: usize = 3;

/// A new array of the rows `sel` picks from the view `snap` as its mapping shows them now.
pub fn copy_view<'py>(
    py: Python<'py>,
    snap: &Arc<ArraySnapshot>,
    sel: &RowSelection<'_>,
) -> PyResult<Bound<'py, PyAny>> {
    let named = Some(snap.meta.name.as_str());
    let p = plan(snap, Rows::Some(*sel)).py_err_in(named)?;
    let (arr, mut buf) = new_array(py, p.dtype, &p.shape)?;
    py.detach(|| fill(snap, &p, buf.bytes())).py_err_in(named)?;
    Ok(arr)
}

/// A new array of the rows `sel` picks from the view `snap`, when the view is still the
/// store's current one throughout the copy (`None`: a commit or an in-place write came
/// between; the caller reads another way).
pub fn copy_from_view<'py>(
    py: Python<'py>,
    store: &Arc<Store>,
    snap: &Arc<ArraySnapshot>,
    sel: &RowSelection<'_>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let named = Some(snap.meta.name.as_str());
    let p = plan(snap, Rows::Some(*sel)).py_err_in(named)?;
    let (arr, mut buf) = new_array(py, p.dtype, &p.shape)?;
    let done = py
        .detach(|| store.read_view(snap, |s| fill(s, &p, buf.bytes())))
        .py_err_in(named)?;
    Ok(done.map(|()| arr))
}

/// A new array holding `rows` of array `name`, all of one committed state.
pub fn copy_rows<'py>(
    py: Python<'py>,
    store: &Arc<Store>,
    name: &str,
    rows: Rows<'_>,
) -> PyResult<Bound<'py, PyAny>> {
    let named = Some(name);
    for _ in 0..TRIES {
        let snap = py.detach(|| store.array(name)).py_err_in(named)?;
        let p = plan(&snap, rows).py_err_in(named)?;
        let (arr, mut buf) = new_array(py, p.dtype, &p.shape)?;
        let done = py
            .detach(|| store.read_view(&snap, |s| fill(s, &p, buf.bytes())))
            .py_err_in(named)?;
        if done.is_some() {
            return Ok(arr);
        }
    }
    // Contended: copy under the shared lock into memory of our own, then into the array.
    let (p, bytes) = py
        .detach(|| {
            store.read_locked(name, |s| {
                let p = plan(s, rows)?;
                let len = numpack::format::metadata::check_shape(&p.shape, p.dtype)
                    .map_err(NpkError::InvalidShape)?;
                let mut v = Vec::new();
                usize::try_from(len)
                    .ok()
                    .and_then(|n| v.try_reserve_exact(n).ok().map(|()| n))
                    .map(|n| v.resize(n, 0))
                    .ok_or_else(|| NpkError::OutOfMemory(format!("array '{name}'")))?;
                fill(s, &p, &mut v)?;
                Ok((p, v))
            })
        })
        .py_err_in(named)?;
    let (arr, mut buf) = new_array(py, p.dtype, &p.shape)?;
    buf.bytes().copy_from_slice(&bytes);
    Ok(arr)
}
