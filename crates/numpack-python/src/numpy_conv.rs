//! rust-numpy glue: dtype mapping, input bytes, new arrays, mmap-backed views.

use numpack::{ArraySnapshot, DataType};
use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::npyffi::flags::NPY_ARRAY_WRITEABLE;
use numpy::npyffi::{get_type_object, npy_intp, NpyTypes, PyArrayObject, PY_ARRAY_API};
use numpy::{PyArray, PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::Arc;

/// The format's dtype for a NumPy dtype (native byte order required).
pub fn dtype_of(d: &Bound<'_, PyArrayDescr>) -> PyResult<DataType> {
    if matches!(d.kind(), b'V' | b'f') && d.itemsize() <= 2 && !d.has_fields() {
        // ml_dtypes' types (void- or float-kind, by version) are told apart by name.
        let name: String = d.getattr("name")?.extract()?;
        match name.as_str() {
            "bfloat16" if d.itemsize() == 2 => return Ok(DataType::Bfloat16),
            "float8_e4m3fn" if d.itemsize() == 1 => return Ok(DataType::Float8E4M3FN),
            "float8_e5m2" if d.itemsize() == 1 => return Ok(DataType::Float8E5M2),
            _ => {}
        }
    }
    let code = match (d.kind(), d.itemsize()) {
        (b'b', 1) => DataType::Bool,
        (b'u', 1) => DataType::Uint8,
        (b'u', 2) => DataType::Uint16,
        (b'u', 4) => DataType::Uint32,
        (b'u', 8) => DataType::Uint64,
        (b'i', 1) => DataType::Int8,
        (b'i', 2) => DataType::Int16,
        (b'i', 4) => DataType::Int32,
        (b'i', 8) => DataType::Int64,
        (b'f', 2) => DataType::Float16,
        (b'f', 4) => DataType::Float32,
        (b'f', 8) => DataType::Float64,
        (b'c', 8) => DataType::Complex64,
        (b'c', 16) => DataType::Complex128,
        _ => {
            let name = d.str().map(|s| s.to_string()).unwrap_or_default();
            return Err(PyValueError::new_err(format!("Unsupported dtype: {name}")));
        }
    };
    if d.has_fields() || d.has_subarray() {
        return Err(PyValueError::new_err(format!(
            "Unsupported dtype: {}",
            d.str()?
        )));
    }
    Ok(code)
}

/// `dtype_code(dtype) -> int`: the format's code of a NumPy dtype.
#[pyfunction]
pub fn dtype_code(dtype: &Bound<'_, PyArrayDescr>) -> PyResult<u8> {
    dtype_of(dtype).map(DataType::code)
}

/// The NumPy dtype object of a format dtype; the `ml_dtypes` types need that package (the
/// `ml` extra), imported on first use.
pub fn numpy_dtype<'py>(py: Python<'py>, d: DataType) -> PyResult<Bound<'py, PyArrayDescr>> {
    if !d.is_ml_dtype() {
        // (The ml arms are never taken: their integer stand-ins keep the dispatch total.)
        return Ok(numpack::with_dtype!(d, T => numpy::dtype::<T>(py);
            bool = bool, bf16 = u16, f8 = (u8, u8)));
    }
    // The one lazy import of the optional dependencies, with its error naming the extra.
    let ml = py
        .import("numpack._deps")?
        .call_method1("require", ("ml_dtypes",))?;
    let t = ml.getattr(d.numpy_name())?;
    PyArrayDescr::new(py, &t)
}

/// `arr` (made of same-sized unsigned integers for the `ml_dtypes` types) viewed as `d`.
fn viewed<'py>(
    py: Python<'py>,
    arr: Bound<'py, PyAny>,
    d: DataType,
) -> PyResult<Bound<'py, PyAny>> {
    if !d.is_ml_dtype() {
        return Ok(arr);
    }
    arr.call_method1("view", (numpy_dtype(py, d)?,))
}

/// A C-contiguous native-order input array: its bytes, shape and dtype.
pub struct Input<'a> {
    /// The element bytes.
    pub bytes: &'a [u8],
    /// The shape.
    pub shape: Vec<u64>,
    /// The element type.
    pub dtype: DataType,
}

/// Borrows the bytes of a C-contiguous array.
pub fn input<'a>(arr: &'a Bound<'_, PyUntypedArray>) -> PyResult<Input<'a>> {
    let dtype_obj = arr.dtype();
    let dtype = dtype_of(&dtype_obj)?;
    if dtype_obj.is_native_byteorder() == Some(false) {
        return Err(PyTypeError::new_err("array is not in native byte order"));
    }
    if !arr.is_c_contiguous() {
        return Err(PyTypeError::new_err("array is not C-contiguous"));
    }
    let shape: Vec<u64> = arr.shape().iter().map(|&d| d as u64).collect();
    let len = arr.shape().iter().product::<usize>() * dtype.size_bytes();
    let bytes = if len == 0 {
        &[][..]
    } else {
        // SAFETY: a C-contiguous array of `len` bytes starts at `data`; `arr` is borrowed
        // for `'a`, so the buffer outlives the slice (NumPy cannot free or resize an array
        // that is referenced).
        unsafe { std::slice::from_raw_parts((*arr.as_array_ptr()).fields.data as *const u8, len) }
    };
    Ok(Input {
        bytes,
        shape,
        dtype,
    })
}

/// A raw, writable byte range of a freshly created array, movable to a thread without the GIL.
pub struct OutBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer belongs to a new array that no other thread can see until it is returned.
unsafe impl Send for OutBuf {}

impl OutBuf {
    /// The bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: `ptr..ptr+len` is the data of a new C-contiguous array kept alive by the
        // caller, and this is the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A new, uninitialised C-contiguous array and its buffer (the caller fills every byte).
/// Fails with `ValueError` for a shape NumPy cannot hold and `MemoryError` when NumPy cannot
/// allocate it; never panics.
pub fn new_array<'py>(
    py: Python<'py>,
    dtype: DataType,
    shape: &[u64],
) -> PyResult<(Bound<'py, PyAny>, OutBuf)> {
    let len = numpack::format::metadata::check_shape(shape, dtype)
        .map_err(|e| PyValueError::new_err(format!("cannot make an array: {e}")))?;
    let len = usize::try_from(len).map_err(|_| PyValueError::new_err("array too large"))?;
    // Every dimension is at most intp::MAX (checked above with the item size >= 1).
    let mut dims: Vec<npy_intp> = shape.iter().map(|&d| d as npy_intp).collect();
    let descr = numpy_dtype(py, dtype)?;
    // SAFETY: the NumPy C API is initialised (rust-numpy does it on first use, which
    // `numpy_dtype` just did); `dims` holds `ndim` (<= 32) valid dimensions; the descriptor
    // reference is stolen by the call, so one is added; NULL strides and data ask NumPy to
    // allocate a C-contiguous buffer. A NULL result has a Python error set.
    let arr = unsafe {
        let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            get_type_object(py, NpyTypes::PyArray_Type),
            descr.into_dtype_ptr(),
            dims.len() as std::os::raw::c_int,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        );
        Bound::from_owned_ptr_or_err(py, ptr)?
    };
    // SAFETY: `arr` is the ndarray just created; reading its data pointer.
    let ptr = unsafe { (*(arr.as_ptr() as *mut PyArrayObject)).fields.data as *mut u8 };
    // The bytes are filled completely before Python sees the array (every caller writes all
    // `len` bytes; for bool only 0/1 bytes are written by numpack's readers).
    Ok((arr, OutBuf { ptr, len }))
}

/// Owner of a mapping that NumPy arrays borrow; keeps it alive while any view exists.
#[pyclass(module = "numpack._core", frozen)]
pub struct MappedFile {
    map: Mapping,
}

enum Mapping {
    Empty,
    Read(Arc<ArraySnapshot>),
    Write(numpack::WritableMap),
}

#[pymethods]
impl MappedFile {
    /// Access hint for the kernel: "sequential", "random" or "willneed".
    fn advise(&self, hint: &str) -> PyResult<()> {
        let hint = match hint {
            "sequential" => numpack::AccessHint::Sequential,
            "random" => numpack::AccessHint::Random,
            "willneed" => numpack::AccessHint::WillNeed,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown hint {other:?}: use 'sequential', 'random' or 'willneed'"
                )))
            }
        };
        match &self.map {
            Mapping::Read(s) => s.advise(hint).map_err(crate::errors::to_py),
            Mapping::Empty | Mapping::Write(_) => Ok(()),
        }
    }

    /// msync the mapping to the file (a no-op for read-only mappings).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        match &self.map {
            Mapping::Empty | Mapping::Read(_) => Ok(()),
            Mapping::Write(m) => py
                .detach(|| m.flush())
                .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string())),
        }
    }
}

impl MappedFile {
    /// An owner with nothing mapped (for 0-byte arrays).
    pub fn empty() -> Self {
        MappedFile {
            map: Mapping::Empty,
        }
    }

    fn len(&self) -> usize {
        match &self.map {
            Mapping::Empty => 0,
            // Built when the mapping was handed out (`mapped_array_at` checks it).
            Mapping::Read(s) => s.physical().map_or(0, <[u8]>::len),
            Mapping::Write(m) => m.len(),
        }
    }

    fn ptr(&self) -> *const u8 {
        match &self.map {
            Mapping::Empty => std::ptr::NonNull::dangling().as_ptr(),
            Mapping::Read(s) => s
                .physical()
                .map_or(std::ptr::NonNull::dangling().as_ptr(), <[u8]>::as_ptr),
            Mapping::Write(m) => m.as_ptr(),
        }
    }
}

/// An ndarray of `shape`/`dtype` over a mapping, borrowing it (the array's base).
pub fn mapped_array<'py>(
    py: Python<'py>,
    dtype: DataType,
    shape: &[u64],
    map: Option<MappingKind>,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, MappedFile>>)> {
    mapped_array_at(py, dtype, shape, map, 0)
}

/// [`mapped_array`] starting `offset` bytes into the mapping (a multiple of the item size).
pub fn mapped_array_at<'py>(
    py: Python<'py>,
    dtype: DataType,
    shape: &[u64],
    map: Option<MappingKind>,
    offset: usize,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, MappedFile>>)> {
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let Some(map) = map else {
        // Nothing to map (0 bytes): an ordinary empty array.
        let (arr, _) = new_array(py, dtype, shape)?;
        return Ok((arr, None));
    };
    let writable = matches!(map, MappingKind::Write(_));
    if let MappingKind::Read(s) = &map {
        // A segmented array's one view is built here, where its failure can be raised.
        s.physical().map_err(crate::errors::to_py)?;
    }
    let owner = Bound::new(
        py,
        MappedFile {
            map: match map {
                MappingKind::Read(m) => Mapping::Read(m),
                MappingKind::Write(m) => Mapping::Write(m),
            },
        },
    )?;
    let need = dims.iter().product::<usize>() * dtype.size_bytes();
    if !offset.is_multiple_of(dtype.size_bytes()) || offset + need > owner.get().len() {
        return Err(PyValueError::new_err("array outside its mapping"));
    }
    // SAFETY: `offset` is within the mapping (checked above).
    let ptr = unsafe { owner.get().ptr().add(offset) };
    if dtype.is_ml_dtype() {
        numpy_dtype(py, dtype)?; // the package is there before anything is mapped
    }
    let arr = numpack::with_dtype!(dtype, T => {
        // SAFETY: the mapping is page-aligned and `offset` a multiple of the item size, so
        // `ptr` is aligned; `need` bytes from it lie in the mapping (checked above), which
        // lives as long as `owner`, the array's base object. Bool bytes in a store are 0/1.
        let view = unsafe { ArrayViewD::<T>::from_shape_ptr(IxDyn(&dims), ptr as *const T) };
        // SAFETY: `owner` keeps the memory alive and is never mutated.
        let a = unsafe { PyArray::<T, IxDyn>::borrow_from_array(&view, owner.clone().into_any()) };
        if !writable {
            // SAFETY: clearing a flag of an array we just created; the mapping is
            // read-only, and NumPy refuses to set WRITEABLE again because the base
            // exposes no writable buffer.
            unsafe { (*a.as_array_ptr()).fields.flags &= !NPY_ARRAY_WRITEABLE };
        }
        a.into_any()
    }; bool = bool, bf16 = u16, f8 = (u8, u8));
    let arr = viewed(py, arr, dtype)?;
    Ok((arr, Some(owner)))
}

/// A mapping handed to [`mapped_array`].
pub enum MappingKind {
    /// The read-only mapping of an array snapshot.
    Read(Arc<ArraySnapshot>),
    /// A writable shared mapping.
    Write(numpack::WritableMap),
}
