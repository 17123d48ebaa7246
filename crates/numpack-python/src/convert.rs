//! `numpack._core.CsvReader` / `CsvWriter`: the engine's CSV and text conversion (see
//! `numpack::convert`). Conversion and GIL release only.

use crate::errors::IntoPy;
use crate::numpy_conv::{dtype_of, input};
use crate::writer::PyArrayWriter;
use numpack::convert::{
    CsvReader, CsvWriter, Delimiter, ReadOptions, RowFormat, Rows, WriteOptions,
};
use numpack::{DataType, NpkError};
use numpy::{PyArray1, PyArrayDescr, PyReadonlyArray1, PyUntypedArray};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn one_byte(what: &str, s: &str) -> PyResult<u8> {
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => Err(PyValueError::new_err(format!(
            "{what} must be one ASCII character, got {s:?}"
        ))),
    }
}

/// A CSV or text file read block by block; iterating yields each block's rows as a 1-d
/// `uint8` array of element bytes (view it as the dtype, `width` values per row).
#[pyclass(name = "CsvReader", module = "numpack._core", frozen)]
pub struct PyCsvReader {
    inner: Mutex<CsvReader<File>>,
}

#[pymethods]
impl PyCsvReader {
    #[new]
    #[pyo3(signature = (path, dtype, delimiter = Some(","), comments = vec![String::from("#")], quote = Some("\""), skip_lines = 0, header_lines = 0, max_rows = None, usecols = None, block_bytes = 64 << 20))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        dtype: &Bound<'_, PyArrayDescr>,
        delimiter: Option<&str>,
        comments: Vec<String>,
        quote: Option<&str>,
        skip_lines: u64,
        header_lines: u64,
        max_rows: Option<u64>,
        usecols: Option<Vec<i64>>,
        block_bytes: usize,
    ) -> PyResult<Self> {
        let opts = ReadOptions {
            dtype: dtype_of(dtype)?,
            delimiter: match delimiter {
                None => Delimiter::Whitespace,
                Some(d) => Delimiter::Byte(one_byte("delimiter", d)?),
            },
            comments: comments.into_iter().map(String::into_bytes).collect(),
            quote: quote.map(|q| one_byte("quotechar", q)).transpose()?,
            skip_lines,
            header_lines,
            max_rows,
            usecols,
            block_bytes,
        };
        let reader = py.detach(|| CsvReader::open(&path, opts)).py_err()?;
        Ok(PyCsvReader {
            inner: Mutex::new(reader),
        })
    }

    /// Values per row, once the first row was read (`None` before, or without rows).
    #[getter]
    fn width(&self) -> Option<usize> {
        lock(&self.inner).width()
    }

    /// Rows read so far.
    #[getter]
    fn rows(&self) -> u64 {
        lock(&self.inner).rows()
    }

    /// Bytes of the file consumed so far.
    #[getter]
    fn position(&self) -> u64 {
        lock(&self.inner).position()
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray1<u8>>>> {
        let mut g = lock(&self.inner);
        let reader = &mut *g;
        let block = py.detach(|| reader.next_block()).py_err()?;
        Ok(block.map(|b| PyArray1::from_vec(py, b.data)))
    }

    /// Parses the next block straight into `writer` (an `ArrayWriter` of the reader's
    /// dtype); returns the rows it held, `None` at the end.
    fn read_into(
        &self,
        py: Python<'_>,
        writer: &Bound<'_, PyArrayWriter>,
    ) -> PyResult<Option<u64>> {
        let mut g = lock(&self.inner);
        let reader = &mut *g;
        let mut wg = writer.get().lock();
        let w = wg.as_mut().ok_or_else(|| {
            PyValueError::new_err("the array writer was already committed or aborted")
        })?;
        if w.dtype() != reader.dtype() {
            return Err(PyTypeError::new_err(format!(
                "array '{}' is being written as {}, the reader parses {}",
                w.name(),
                w.dtype(),
                reader.dtype()
            )));
        }
        py.detach(|| {
            let before = reader.rows();
            match reader.next_rows()? {
                Some(rows) => w.write(rows).map(|()| Some(reader.rows() - before)),
                None => Ok(None),
            }
        })
        .py_err()
    }
}

/// A CSV writer of rows of `width` values of `dtype` into a new file at `path`.
#[pyclass(name = "CsvWriter", module = "numpack._core", frozen)]
pub struct PyCsvWriter {
    inner: Mutex<Option<CsvWriter<BufWriter<File>>>>,
    dtype: DataType,
    width: usize,
}

fn closed() -> PyErr {
    PyValueError::new_err("the CSV writer is closed")
}

#[pymethods]
impl PyCsvWriter {
    #[new]
    #[pyo3(signature = (path, dtype, width, delimiter = ",", newline = "\n", fmt = None, label = "array"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        dtype: &Bound<'_, PyArrayDescr>,
        width: usize,
        delimiter: &str,
        newline: &str,
        fmt: Option<&str>,
        label: &str,
    ) -> PyResult<Self> {
        let dtype = dtype_of(dtype)?;
        let format = fmt
            .map(RowFormat::parse)
            .transpose()
            .map_err(PyValueError::new_err)?;
        let opts = WriteOptions {
            delimiter: delimiter.as_bytes().to_vec(),
            newline: newline.as_bytes().to_vec(),
            format,
        };
        let writer = py
            .detach(|| {
                let file = File::create(&path).map_err(|e| NpkError::io(&path, e))?;
                CsvWriter::new(
                    BufWriter::with_capacity(1 << 20, file),
                    label,
                    dtype,
                    width,
                    opts,
                )
            })
            .py_err()?;
        Ok(PyCsvWriter {
            inner: Mutex::new(Some(writer)),
            dtype,
            width,
        })
    }

    /// Writes `data` (UTF-8 text or bytes) as it is: a header or a footer.
    fn write_raw(&self, py: Python<'_>, data: Vec<u8>) -> PyResult<()> {
        let mut g = lock(&self.inner);
        let w = g.as_mut().ok_or_else(closed)?;
        py.detach(|| w.write_raw(&data)).py_err()
    }

    /// Formats and writes the rows of the C-contiguous `array` (of the writer's dtype,
    /// `width` values per row), or with `rows` only those rows (physical row numbers).
    #[pyo3(signature = (array, rows = None))]
    fn write(
        &self,
        py: Python<'_>,
        array: Bound<'_, PyUntypedArray>,
        rows: Option<PyReadonlyArray1<'_, i64>>,
    ) -> PyResult<()> {
        let i = input(&array)?;
        if i.dtype != self.dtype {
            return Err(PyTypeError::new_err(format!(
                "the CSV writer takes {}, got {}",
                self.dtype, i.dtype
            )));
        }
        let picked: Option<Vec<u64>> = match &rows {
            None => None,
            Some(r) => Some(
                r.as_array()
                    .iter()
                    .map(|&x| u64::try_from(x))
                    .collect::<Result<_, _>>()
                    .map_err(|_| PyValueError::new_err("row numbers must not be negative"))?,
            ),
        };
        let mut g = lock(&self.inner);
        let w = g.as_mut().ok_or_else(closed)?;
        py.detach(|| match &picked {
            None => w.write_rows(Rows::Contiguous(i.bytes)),
            Some(p) => w.write_rows(Rows::Gathered(i.bytes, p)),
        })
        .py_err()
    }

    /// Writes `n` empty rows (an array with 0 values per row).
    fn write_blank(&self, py: Python<'_>, n: u64) -> PyResult<()> {
        if self.width != 0 {
            return Err(PyValueError::new_err(
                "write_blank is for rows without values",
            ));
        }
        let mut g = lock(&self.inner);
        let w = g.as_mut().ok_or_else(closed)?;
        py.detach(|| w.write_blank_rows(n)).py_err()
    }

    /// Flushes and closes the file. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = lock(&self.inner).take();
        match taken {
            None => Ok(()),
            Some(w) => py
                .detach(|| {
                    let out = w.finish()?;
                    out.into_inner()
                        .map(drop)
                        .map_err(|e| NpkError::IoError(e.into_error()))
                })
                .py_err(),
        }
    }
}

/// `csv_format_columns(fmt) -> int | None`: the number of conversions of a printf row
/// format, or `None` when the Rust writer does not support it.
#[pyfunction]
pub fn csv_format_columns(fmt: &str) -> Option<usize> {
    RowFormat::parse(fmt).ok().map(|f| f.conversions())
}
