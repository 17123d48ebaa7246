//! Python row arguments → [`RowSelection`]: a 1-d `int64` array (indexes), a 1-d `bool`
//! array (mask) or a `slice`. The engine resolves them against the array's rows, under the
//! store lock for mutations; nothing here looks at the store.

use numpack::RowSelection;
use numpy::{PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PySlice;

/// A borrowed row argument.
pub enum Rows<'py> {
    /// Indexes.
    Indices(PyReadonlyArray1<'py, i64>, Option<Vec<i64>>),
    /// A mask.
    Mask(PyReadonlyArray1<'py, bool>, Option<Vec<bool>>),
    /// `slice(start, stop, step)`, bounds clamped to `i64` (which changes nothing: no array
    /// has more rows).
    Slice(Option<i64>, Option<i64>, i64),
}

/// An `int` slice bound, clamped to the `i64` range.
fn bound(v: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if v.is_none() {
        return Ok(None);
    }
    match v.extract::<i64>() {
        Ok(i) => Ok(Some(i)),
        Err(e) if e.is_instance_of::<PyOverflowError>(v.py()) => {
            Ok(Some(if v.gt(0)? { i64::MAX } else { i64::MIN }))
        }
        Err(_) => Err(PyTypeError::new_err(
            "slice indices must be integers or None",
        )),
    }
}

impl<'py> Rows<'py> {
    /// Reads a row argument.
    pub fn extract(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(s) = obj.cast::<PySlice>() {
            let start = bound(&s.getattr("start")?)?;
            let stop = bound(&s.getattr("stop")?)?;
            let step = bound(&s.getattr("step")?)?.unwrap_or(1);
            return Ok(Rows::Slice(start, stop, step));
        }
        if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, i64>>() {
            let copy = (!a.is_c_contiguous()).then(|| a.as_array().iter().copied().collect());
            return Ok(Rows::Indices(a, copy));
        }
        if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, bool>>() {
            let copy = (!a.is_c_contiguous()).then(|| a.as_array().iter().copied().collect());
            return Ok(Rows::Mask(a, copy));
        }
        Err(PyTypeError::new_err(
            "rows must be a 1-d int64 or bool ndarray, or a slice",
        ))
    }

    /// The selection, borrowing the array's elements.
    pub fn selection(&self) -> RowSelection<'_> {
        match self {
            Rows::Indices(a, copy) => RowSelection::Indices(
                copy.as_deref()
                    .unwrap_or_else(|| a.as_slice().expect("contiguous")),
            ),
            Rows::Mask(a, copy) => RowSelection::Mask(
                copy.as_deref()
                    .unwrap_or_else(|| a.as_slice().expect("contiguous")),
            ),
            Rows::Slice(start, stop, step) => RowSelection::Slice {
                start: *start,
                stop: *stop,
                step: *step,
            },
        }
    }
}
