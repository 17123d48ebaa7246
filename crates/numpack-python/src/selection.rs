//! Python row arguments → [`RowSelection`]: a 1-d `int64` array (indexes), a 1-d `bool`
//! array (mask) or a `slice`. The engine resolves them against the array's rows, under the
//! store lock for mutations; nothing here looks at the store.

use numpack::RowSelection;
use numpy::npyffi::flags::{NPY_ARRAY_ALIGNED, NPY_ARRAY_C_CONTIGUOUS};
use numpy::{PyReadonlyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PySlice;

/// A borrowed row argument.
pub enum Rows<'py> {
    /// Indexes (a C-contiguous, aligned array).
    Indices(PyReadonlyArray1<'py, i64>),
    /// A mask (a C-contiguous, aligned array).
    Mask(PyReadonlyArray1<'py, bool>),
    /// `slice(start, stop, step)`, bounds clamped to `i64` (which changes nothing: no array
    /// has more rows).
    Slice(Option<i64>, Option<i64>, i64),
}

/// Whether NumPy says the array's elements are aligned and C-contiguous.
fn borrowable(a: &Bound<'_, PyUntypedArray>) -> bool {
    // SAFETY: reading the flags word of a live ndarray.
    let flags = unsafe { (*a.as_array_ptr()).fields.flags };
    flags & NPY_ARRAY_ALIGNED != 0 && flags & NPY_ARRAY_C_CONTIGUOUS != 0
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
        // Unaligned or strided arrays are first copied by NumPy (aligned, C order), so that
        // the elements can be borrowed as a slice.
        let owned;
        let obj = match obj.cast::<PyUntypedArray>() {
            Ok(a) if !borrowable(a) => {
                owned = obj.call_method0("copy")?;
                &owned
            }
            _ => obj,
        };
        if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, i64>>() {
            return Ok(Rows::Indices(a));
        }
        if let Ok(a) = obj.extract::<PyReadonlyArray1<'py, bool>>() {
            return Ok(Rows::Mask(a));
        }
        Err(PyTypeError::new_err(
            "rows must be a 1-d int64 or bool ndarray, or a slice",
        ))
    }

    /// The selection, borrowing the array's elements (`as_slice` cannot fail: extraction
    /// made sure the array is contiguous and aligned).
    pub fn selection(&self) -> RowSelection<'_> {
        match self {
            Rows::Indices(a) => RowSelection::Indices(a.as_slice().unwrap_or(&[])),
            Rows::Mask(a) => RowSelection::Mask(a.as_slice().unwrap_or(&[])),
            Rows::Slice(start, stop, step) => RowSelection::Slice {
                start: *start,
                stop: *stop,
                step: *step,
            },
        }
    }
}

/// Logical rows `start..stop`, clipped as a slice would be.
pub fn range_of(start: i64, stop: i64) -> numpack::RowSelection<'static> {
    numpack::RowSelection::Slice {
        start: Some(start),
        stop: Some(stop),
        step: 1,
    }
}
