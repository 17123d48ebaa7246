//! Rows of one dtype → CSV / text, formatted in parallel and written in order.
//!
//! By default every value is written in its shortest round-trip form
//! ([`super::number_format`]); a printf row format ([`RowFormat`]) is applied as Python's
//! `%` operator applies it, as `np.savetxt` does.

use super::number_format::Shortest;
use super::printf::{Piece, RowFormat};
use crate::dtype::DataType;
use crate::error::{IoContext, NpkError, NpkResult};
use crate::read::snapshot::ArraySnapshot;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How to write rows.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Between values (shortest form only; a row format holds its own separators).
    pub delimiter: Vec<u8>,
    /// After each row.
    pub newline: Vec<u8>,
    /// A printf row format with one conversion per column; `None`: the shortest text.
    pub format: Option<RowFormat>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            delimiter: b",".to_vec(),
            newline: b"\n".to_vec(),
            format: None,
        }
    }
}

/// Rows to format: contiguous, or picked by physical row number.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// `data` holds whole rows back to back.
    Contiguous(&'a [u8]),
    /// Rows `rows` of `data`.
    Gathered(&'a [u8], &'a [u64]),
}

impl<'a> Rows<'a> {
    fn len(&self, row_bytes: usize) -> usize {
        match self {
            Rows::Contiguous(d) => d.len().checked_div(row_bytes).unwrap_or(0),
            Rows::Gathered(_, r) => r.len(),
        }
    }

    #[inline]
    fn row(&self, i: usize, row_bytes: usize) -> &'a [u8] {
        let r = match self {
            Rows::Contiguous(_) => i,
            Rows::Gathered(_, rows) => rows[i] as usize,
        };
        let d = match self {
            Rows::Contiguous(d) | Rows::Gathered(d, _) => d,
        };
        &d[r * row_bytes..(r + 1) * row_bytes]
    }
}

/// A CSV writer of rows of `width` values of one dtype.
#[derive(Debug)]
pub struct CsvWriter<W: Write> {
    out: W,
    label: String,
    dtype: DataType,
    width: usize,
    opts: WriteOptions,
    rows: u64,
}

/// Rows per formatting task, at least.
const MIN_TASK_ROWS: usize = 2048;

impl<W: Write> CsvWriter<W> {
    /// A writer to `out`; `label` (the array name) appears in messages.
    pub fn new(
        out: W,
        label: &str,
        dtype: DataType,
        width: usize,
        opts: WriteOptions,
    ) -> NpkResult<Self> {
        if let Some(f) = &opts.format {
            if matches!(dtype, DataType::Complex64 | DataType::Complex128) {
                return Err(NpkError::InvalidOperation(format!(
                    "array '{label}': a printf format for complex values is not supported here"
                )));
            }
            if f.conversions() != width {
                return Err(NpkError::InvalidOperation(format!(
                    "fmt has wrong number of % formats: {} for {width} columns",
                    f.conversions()
                )));
            }
        }
        Ok(CsvWriter {
            out,
            label: label.to_owned(),
            dtype,
            width,
            opts,
            rows: 0,
        })
    }

    /// Writes `bytes` as they are (a header or footer).
    pub fn write_raw(&mut self, bytes: &[u8]) -> NpkResult<()> {
        self.out.write_all(bytes).map_err(NpkError::IoError)
    }

    /// Writes `n` rows without values (an array of width 0): one newline each.
    pub fn write_blank_rows(&mut self, n: u64) -> NpkResult<()> {
        for _ in 0..n {
            self.out
                .write_all(&self.opts.newline)
                .map_err(NpkError::IoError)?;
        }
        self.rows += n;
        Ok(())
    }

    /// Formats and writes `rows` (little-endian element bytes, whole rows).
    pub fn write_rows(&mut self, rows: Rows<'_>) -> NpkResult<()> {
        let row_bytes = self.width * self.dtype.size_bytes();
        let bad = |what: String| {
            Err(NpkError::InvalidShape(format!(
                "array '{}': {what}",
                self.label
            )))
        };
        match rows {
            Rows::Contiguous(d) if row_bytes > 0 && d.len() % row_bytes != 0 => {
                return bad(format!(
                    "{} bytes are not whole rows of {row_bytes} bytes",
                    d.len()
                ));
            }
            Rows::Gathered(d, r)
                if r.iter().any(|&x| {
                    (x as usize).saturating_add(1).saturating_mul(row_bytes) > d.len()
                }) =>
            {
                return bad(format!(
                    "a row number is past the {} rows",
                    d.len().checked_div(row_bytes).unwrap_or(0)
                ));
            }
            _ => {}
        }
        if row_bytes == 0 {
            return Ok(());
        }
        let n = rows.len(row_bytes);
        let threads = crate::convert::threads();
        let per = n.div_ceil(threads * 4).max(MIN_TASK_ROWS);
        let tasks: Vec<(usize, usize)> = (0..n)
            .step_by(per.max(1))
            .map(|s| (s, (s + per).min(n)))
            .collect();
        let (width, opts) = (self.width, &self.opts);
        let texts: Vec<Result<Vec<u8>, (usize, usize, String)>> = crate::convert::with_field!(self.dtype, T => {
            par_map(&tasks, |&(s, e)| format_rows::<T>(rows, s, e, width, row_bytes, opts))
        });
        for t in texts {
            match t {
                Ok(text) => self.out.write_all(&text).map_err(NpkError::IoError)?,
                Err((row, col, msg)) => {
                    return Err(NpkError::InvalidOperation(format!(
                        "array '{}', row {}, column {}: {msg}",
                        self.label,
                        self.rows + row as u64,
                        col + 1
                    )))
                }
            }
        }
        self.rows += n as u64;
        Ok(())
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> NpkResult<W> {
        self.out.flush().map_err(NpkError::IoError)?;
        Ok(self.out)
    }
}

fn format_rows<T: Shortest>(
    rows: Rows<'_>,
    start: usize,
    end: usize,
    width: usize,
    row_bytes: usize,
    opts: &WriteOptions,
) -> Result<Vec<u8>, (usize, usize, String)> {
    let size = std::mem::size_of::<T>();
    let mut out = Vec::with_capacity((end - start) * (width * 14 + opts.newline.len()));
    let mut tmp = String::new();
    for i in start..end {
        let row = rows.row(i, row_bytes);
        let value = |c: usize| bytemuck::pod_read_unaligned::<T>(&row[c * size..(c + 1) * size]);
        match &opts.format {
            None => {
                for c in 0..width {
                    if c > 0 {
                        out.extend_from_slice(&opts.delimiter);
                    }
                    value(c).write_shortest(&mut out);
                }
            }
            Some(f) => {
                let mut c = 0;
                for p in f.pieces() {
                    match p {
                        Piece::Literal(l) => out.extend_from_slice(l),
                        Piece::Conversion(spec) => {
                            spec.write(value(c).printf_value(), &mut out, &mut tmp)
                                .map_err(|e| (i, c, e.0))?;
                            c += 1;
                        }
                    }
                }
            }
        }
        out.extend_from_slice(&opts.newline);
    }
    Ok(out)
}

fn par_map<I: Sync, O: Send>(items: &[I], f: impl Fn(&I) -> O + Sync + Send) -> Vec<O> {
    #[cfg(feature = "rayon")]
    if items.len() > 1 {
        use rayon::prelude::*;
        return items.par_iter().map(f).collect();
    }
    items.iter().map(f).collect()
}

/// Values per row of an array of `shape` written as CSV: 1 for 0-d and 1-d arrays, the
/// product of the trailing dimensions otherwise (a 3-d array's rows are flattened).
pub fn csv_width(shape: &[u64]) -> usize {
    if shape.len() <= 1 {
        1
    } else {
        shape[1..].iter().product::<u64>() as usize
    }
}

/// Writes the logical rows of `snap` as CSV to `path`, through a temporary file beside it
/// renamed into place at the end (nothing is left behind on error). `header` and `footer`
/// are written as they are; rows are formatted about `batch_bytes` of data at a time.
pub fn export_csv(
    snap: &ArraySnapshot,
    path: &Path,
    opts: WriteOptions,
    header: &[u8],
    footer: &[u8],
    batch_bytes: usize,
) -> NpkResult<()> {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp: PathBuf = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp).at(&tmp)?;
        let out = std::io::BufWriter::with_capacity(1 << 20, file);
        let width = csv_width(&snap.meta.shape);
        let mut w = CsvWriter::new(out, &snap.meta.name, snap.meta.dtype, width, opts)?;
        w.write_raw(header)?;
        let row_bytes = width * snap.meta.dtype.size_bytes();
        let rows = if snap.is_scalar() {
            1
        } else {
            snap.logical_rows() as usize
        };
        let per = batch_bytes.checked_div(row_bytes).unwrap_or(rows).max(1);
        let active = snap.active_rows();
        if row_bytes == 0 {
            w.write_blank_rows(rows as u64)?;
        }
        let mut start = if row_bytes == 0 { rows } else { 0 };
        let mut buf = Vec::new();
        while start < rows {
            let end = (start + per).min(rows);
            match &active {
                // Segments are copied a batch at a time (one view of them may mean reading
                // them all into memory).
                _ if snap.is_segmented() => {
                    buf.resize((end - start) * row_bytes, 0);
                    snap.range_into(start as u64, end as u64, &mut buf)?;
                    w.write_rows(Rows::Contiguous(&buf))?
                }
                None => w.write_rows(Rows::Contiguous(
                    &snap.physical()?[start * row_bytes..end * row_bytes],
                ))?,
                Some(a) => w.write_rows(Rows::Gathered(snap.physical()?, &a[start..end]))?,
            }
            start = end;
        }
        w.write_raw(footer)?;
        let out = w.finish()?;
        out.into_inner()
            .map_err(|e| NpkError::io(&tmp, e.into_error()))?
            .sync_all()
            .at(&tmp)?;
        std::fs::rename(&tmp, path).at(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
