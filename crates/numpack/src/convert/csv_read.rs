//! CSV / text files → rows of one dtype, in blocks of about `block_bytes` parsed in parallel.
//!
//! [`CsvReader`] reads the file in blocks cut at line boundaries, splits each block into
//! pieces and parses the pieces in parallel (rayon) straight into the block's row bytes.
//! Memory stays below about two blocks (the text and its rows) whatever the file size: a
//! block whose rows would take more than `block_bytes` is cut shorter. Errors name the file,
//! the line (1-based, counting every physical line) and the column.

use super::csv_line::{Delimiter, Layout, LineError, Syntax};
use super::number_parse::Field;
use crate::dtype::DataType;
use crate::error::{IoContext, NpkError, NpkResult};
use crate::store::Store;
use memchr::{memchr, memchr_iter, memrchr};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// How to read a file.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Element type of the array (every value is parsed directly into it).
    pub dtype: DataType,
    /// Field separator.
    pub delimiter: Delimiter,
    /// Comment markers (empty: none); a marker runs to the end of the line.
    pub comments: Vec<Vec<u8>>,
    /// Quote byte around a field (`None`: quotes are not special).
    pub quote: Option<u8>,
    /// Physical lines skipped at the start (`skiprows`).
    pub skip_lines: u64,
    /// Lines holding fields skipped after that (a header).
    pub header_lines: u64,
    /// At most this many rows.
    pub max_rows: Option<u64>,
    /// Columns to keep (negative from the end of the first row), in this order.
    pub usecols: Option<Vec<i64>>,
    /// Bytes of text per block (and the bound of a block's rows).
    pub block_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            dtype: DataType::Float64,
            delimiter: Delimiter::Byte(b','),
            comments: vec![b"#".to_vec()],
            quote: Some(b'"'),
            skip_lines: 0,
            header_lines: 0,
            max_rows: None,
            usecols: None,
            block_bytes: 64 << 20,
        }
    }
}

/// Rows parsed from one block: `rows * width * itemsize` little-endian bytes, C order.
#[derive(Debug)]
pub struct Block {
    /// The rows' element bytes.
    pub data: Vec<u8>,
    /// Number of rows.
    pub rows: u64,
}

/// A streaming reader of a CSV or text file.
#[derive(Debug)]
pub struct CsvReader<R> {
    src: R,
    label: String,
    opts: ReadOptions,
    syntax: Syntax,
    buf: Vec<u8>,
    /// Rows of the last block (reused, so its pages stay mapped).
    out: Vec<u8>,
    /// The next block's text, read while the current one is parsed (swapped with `buf`).
    spare: Vec<u8>,
    /// A read-ahead error, reported by the next call.
    read_failed: Option<std::io::Error>,
    start: usize,
    eof: bool,
    started: bool,
    done: bool,
    /// Physical lines before `buf[start..]`.
    line: u64,
    rows: u64,
    consumed: u64,
    layout: Option<Layout>,
    skip_left: u64,
    header_left: u64,
}

/// What one piece of a block parsed to.
struct Piece {
    rows: usize,
    lines: usize,
    /// `(rows before it in the piece, 0-based line in the piece, error)`.
    error: Option<(usize, usize, LineError)>,
}

/// Smallest piece worth a task of its own.
const MIN_PIECE: usize = 64 << 10;

/// Text per block at most, whatever `block_bytes` allows: small blocks stay in cache and
/// reuse the same memory (fresh pages cost more than parsing them).
const MAX_BLOCK: usize = 4 << 20;

fn check_syntax(opts: &ReadOptions, label: &str) -> NpkResult<()> {
    let bad = |what: String| Err(NpkError::InvalidOperation(format!("{label}: {what}")));
    if let Delimiter::Byte(d) = opts.delimiter {
        if d.is_ascii_alphanumeric() || b"+-.()\"\r\n".contains(&d) || !d.is_ascii() {
            return bad(format!(
                "delimiter {:?} cannot separate numbers",
                char::from(d)
            ));
        }
        if opts.comments.iter().any(|c| c.as_slice() == [d]) {
            return bad("the comment marker is the delimiter".into());
        }
    }
    if opts.comments.iter().any(|c| c.contains(&b'\n')) {
        return bad("a comment marker cannot contain a newline".into());
    }
    Ok(())
}

impl CsvReader<File> {
    /// Opens the file at `path` (named by its path in messages).
    pub fn open(path: &Path, opts: ReadOptions) -> NpkResult<Self> {
        let file = File::open(path).at(path)?;
        CsvReader::new(file, path.display().to_string(), opts)
    }
}

impl<R: Read + Send> CsvReader<R> {
    /// Reads from `src`; `label` names it in messages.
    pub fn new(src: R, label: String, opts: ReadOptions) -> NpkResult<Self> {
        check_syntax(&opts, &label)?;
        let syntax = Syntax::new(opts.delimiter, &opts.comments, opts.quote);
        Ok(CsvReader {
            src,
            label,
            syntax,
            buf: Vec::new(),
            out: Vec::new(),
            spare: Vec::new(),
            read_failed: None,
            start: 0,
            eof: false,
            started: false,
            done: false,
            line: 0,
            rows: 0,
            consumed: 0,
            layout: None,
            skip_left: opts.skip_lines,
            header_left: opts.header_lines,
            opts,
        })
    }

    /// Values per row, once the first row was seen (`None` for a file without rows).
    pub fn width(&self) -> Option<usize> {
        self.layout.as_ref().map(Layout::width)
    }

    /// Rows returned so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes of the input consumed so far.
    pub fn position(&self) -> u64 {
        self.consumed
    }

    /// The element type.
    pub fn dtype(&self) -> DataType {
        self.opts.dtype
    }

    fn error(&self, line: u64, what: &str) -> NpkError {
        NpkError::InvalidOperation(format!("{}: line {line}, {what}", self.label))
    }

    fn read_error(&self, e: std::io::Error) -> NpkError {
        NpkError::io(&self.label, e)
    }

    /// Tops the buffer up to one block of text holding at least one whole line (or the
    /// end of the input).
    fn fill(&mut self) -> NpkResult<()> {
        if let Some(e) = self.read_failed.take() {
            return Err(self.read_error(e));
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut target = self.opts.block_bytes.clamp(1, MAX_BLOCK);
        loop {
            if self.buf.len() < target && !self.eof {
                let want = target - self.buf.len();
                self.buf.reserve_exact(want);
                let got = (&mut self.src)
                    .take(want as u64)
                    .read_to_end(&mut self.buf)
                    .map_err(|e| self.read_error(e))?;
                if got < want {
                    self.eof = true;
                }
            }
            if !self.started {
                self.started = true;
                if self.buf.starts_with(b"\xEF\xBB\xBF") {
                    self.start = 3;
                    self.consumed = 3;
                }
            }
            if self.eof || memchr(b'\n', &self.buf[self.start..]).is_some() {
                return Ok(());
            }
            // A line longer than a block: take a bigger one.
            target = self.buf.len().saturating_mul(2).max(target);
        }
    }

    /// Consumes `n` bytes holding `lines` physical lines.
    fn advance(&mut self, n: usize, lines: u64) {
        self.start += n;
        self.consumed += n as u64;
        self.line += lines;
    }

    /// Skips the leading lines, the header, and learns the layout from the first row.
    /// Returns whether rows can be parsed from `buf[start..start + cut]` (`cut` shrinks by
    /// what was skipped: read it again from `start`).
    fn preamble(&mut self, cut: &mut usize) -> NpkResult<bool> {
        let mut spans = Vec::new();
        while self.skip_left > 0 || self.header_left > 0 || self.layout.is_none() {
            if *cut == 0 {
                return Ok(false);
            }
            let region = &self.buf[self.start..self.start + *cut];
            let end = memchr(b'\n', region).map_or(region.len(), |k| k + 1);
            let skip = if self.skip_left > 0 {
                self.skip_left -= 1;
                true
            } else {
                let text = &region[..end];
                let line = self.syntax.trim(text.strip_suffix(b"\n").unwrap_or(text));
                if self.syntax.is_empty_line(line) {
                    true
                } else if self.header_left > 0 {
                    self.header_left -= 1;
                    true
                } else {
                    self.syntax.split(line, &mut spans);
                    false
                }
            };
            if skip {
                self.advance(end, 1);
                *cut -= end;
            } else {
                self.layout = Some(self.layout_for(spans.len())?);
            }
        }
        Ok(*cut > 0)
    }

    fn layout_for(&self, fields: usize) -> NpkResult<Layout> {
        let Some(usecols) = &self.opts.usecols else {
            return Ok(Layout::All { ncols: fields });
        };
        let mut cols = Vec::with_capacity(usecols.len());
        for &c in usecols {
            let k = if c < 0 { fields as i64 + c } else { c };
            if k < 0 || k >= fields as i64 {
                return Err(self.error(
                    self.line + 1,
                    &format!("usecols: column index {c} is out of range for {fields} columns"),
                ));
            }
            cols.push(k as usize);
        }
        let needed = cols.iter().max().map_or(0, |&m| m + 1);
        Ok(Layout::Select { cols, needed })
    }

    /// The next block of rows; `None` at the end.
    pub fn next_block(&mut self) -> NpkResult<Option<Block>> {
        let before = self.rows;
        let data = match self.next_rows()? {
            Some(d) => d.to_vec(),
            None => return Ok(None),
        };
        Ok(Some(Block {
            data,
            rows: self.rows - before,
        }))
    }

    /// The rows of the next block, in a buffer reused by the next call; `None` at the end.
    pub fn next_rows(&mut self) -> NpkResult<Option<&[u8]>> {
        loop {
            if self.done {
                return Ok(None);
            }
            self.fill()?;
            let avail = &self.buf[self.start..];
            if avail.is_empty() {
                self.done = true;
                return Ok(None);
            }
            let cut = if self.eof {
                avail.len()
            } else {
                memrchr(b'\n', avail).map_or(avail.len(), |k| k + 1)
            };
            let mut cut = cut;
            if !self.preamble(&mut cut)? {
                continue;
            }
            if self.opts.max_rows.is_some_and(|m| self.rows >= m) {
                self.done = true;
                return Ok(None);
            }
            if self.parse_region(cut)? > 0 {
                return Ok(Some(&self.out));
            }
        }
    }

    /// Parses whole lines from `buf[start..start + cut]` (fewer if their rows would be too
    /// many bytes or more than `max_rows`) into `out`; returns the rows.
    fn parse_region(&mut self, cut: usize) -> NpkResult<u64> {
        let layout = self.layout.clone().expect("layout known");
        let row_bytes = layout.width() * self.opts.dtype.size_bytes();
        let region = &self.buf[self.start..self.start + cut];
        // Bound the rows: by bytes, and by max_rows (a line holds at most one row).
        let mut max_lines = self
            .opts
            .block_bytes
            .clamp(1, MAX_BLOCK)
            .checked_div(row_bytes)
            .map_or(usize::MAX, |n| n.max(1));
        if let Some(m) = self.opts.max_rows {
            max_lines = max_lines.min(usize::try_from(m - self.rows).unwrap_or(usize::MAX));
        }
        let mut bounds = split_pieces(region);
        let mut lines: Vec<usize> = par_map(&bounds, |&(s, e)| count_lines(&region[s..e]));
        let mut total: usize = lines.iter().sum();
        let mut len = region.len();
        if total > max_lines {
            // Cut after line `max_lines`, inside the piece where it falls.
            let (mut k, mut before) = (0, 0);
            while before + lines[k] < max_lines {
                before += lines[k];
                k += 1;
            }
            let (s, e) = bounds[k];
            let need = max_lines - before;
            let end = memchr_iter(b'\n', &region[s..e])
                .nth(need - 1)
                .map_or(e, |p| s + p + 1);
            bounds.truncate(k + 1);
            bounds[k].1 = end;
            lines.truncate(k + 1);
            lines[k] = need;
            total = max_lines;
            len = end;
        }
        let region = &region[..len];
        let mut data = std::mem::take(&mut self.out);
        data.clear();
        data.resize(total * row_bytes, 0);
        let mut outs: Vec<&mut [u8]> = Vec::with_capacity(bounds.len());
        let mut rest = data.as_mut_slice();
        for &n in &lines {
            let (a, b) = rest.split_at_mut(n * row_bytes);
            outs.push(a);
            rest = b;
        }
        let syntax = &self.syntax;
        let jobs: Vec<((usize, usize), &mut [u8])> = bounds.iter().copied().zip(outs).collect();
        // Read the next block (after the text left over) while this one is parsed.
        let target = self.opts.block_bytes.clamp(1, MAX_BLOCK);
        let ahead = !self.eof
            && self
                .opts
                .max_rows
                .is_none_or(|m| m - self.rows > total as u64);
        let (spare, src) = (&mut self.spare, &mut self.src);
        if ahead {
            spare.clear();
            spare.extend_from_slice(&self.buf[self.start + len..]);
        }
        let want = target.saturating_sub(spare.len());
        let (pieces, read) = join(
            || -> Vec<Piece> {
                crate::convert::with_field!(self.opts.dtype, T => {
                    par_map_owned(jobs, |((s, e), out)| {
                        parse_piece::<T>(&region[s..e], syntax, &layout, out, row_bytes)
                    })
                })
            },
            || {
                if ahead && want > 0 {
                    spare.reserve_exact(want);
                    src.take(want as u64).read_to_end(spare)
                } else {
                    Ok(0)
                }
            },
        );
        let mut remaining = self.opts.max_rows.map_or(u64::MAX, |m| m - self.rows);
        let (mut src_row, mut dst_row, mut line) = (0usize, 0usize, self.line);
        let mut failure = None;
        for (piece, &n) in pieces.iter().zip(&lines) {
            let take = (piece.rows as u64).min(remaining) as usize;
            if let Some((row, at, e)) = &piece.error {
                if (*row as u64) < remaining {
                    failure = Some((line + *at as u64 + 1, e.describe()));
                    break;
                }
            }
            if src_row != dst_row && take > 0 {
                data.copy_within(
                    src_row * row_bytes..(src_row + take) * row_bytes,
                    dst_row * row_bytes,
                );
            }
            dst_row += take;
            remaining -= take as u64;
            src_row += n;
            line += piece.lines as u64;
            if remaining == 0 {
                self.done = true;
                break;
            }
        }
        data.truncate(dst_row * row_bytes);
        self.out = data;
        if let Some((at, what)) = failure {
            self.done = true;
            return Err(self.error(at, &what));
        }
        if ahead {
            std::mem::swap(&mut self.buf, &mut self.spare);
            self.start = 0;
            self.consumed += len as u64;
            match read {
                Ok(got) => self.eof |= got < want,
                Err(e) => self.read_failed = Some(e),
            }
        } else {
            self.advance(len, 0);
        }
        self.line = line;
        self.rows += dst_row as u64;
        Ok(dst_row as u64)
    }
}

/// Lines in `text` (a last line without `\n` counts).
fn count_lines(text: &[u8]) -> usize {
    let n = memchr_iter(b'\n', text).count();
    n + usize::from(!text.is_empty() && !text.ends_with(b"\n"))
}

/// Splits `region` at line boundaries into about one piece per task.
fn split_pieces(region: &[u8]) -> Vec<(usize, usize)> {
    let threads = crate::convert::threads();
    let k = if threads <= 1 {
        1
    } else {
        (region.len() / MIN_PIECE).clamp(1, threads * 4)
    };
    let mut bounds = Vec::with_capacity(k);
    let mut start = 0;
    for i in 1..k {
        let target = region.len() * i / k;
        if target <= start {
            continue;
        }
        let Some(nl) = memchr(b'\n', &region[target..]) else {
            break;
        };
        let end = target + nl + 1;
        bounds.push((start, end));
        start = end;
    }
    if start < region.len() || bounds.is_empty() {
        bounds.push((start, region.len()));
    }
    bounds
}

fn parse_piece<T: Field>(
    text: &[u8],
    syntax: &Syntax,
    layout: &Layout,
    out: &mut [u8],
    row_bytes: usize,
) -> Piece {
    let mut spans = Vec::new();
    let (mut rows, mut lines, mut pos) = (0usize, 0usize, 0usize);
    let fast_cols = match layout {
        Layout::All { ncols } => Some(*ncols),
        Layout::Select { .. } => None,
    };
    while pos < text.len() {
        if let Some(ncols) = fast_cols {
            let row = &mut out[rows * row_bytes..(rows + 1) * row_bytes];
            if let Some(next) = syntax.fast_row::<T>(text, pos, ncols, row) {
                rows += 1;
                lines += 1;
                pos = next;
                continue;
            }
        }
        let end = memchr(b'\n', &text[pos..]).map_or(text.len(), |k| pos + k);
        let line = syntax.trim(&text[pos..end]);
        let row = &mut out[rows * row_bytes..(rows + 1) * row_bytes];
        match syntax.parse_line::<T>(line, layout, row, &mut spans) {
            Ok(true) => rows += 1,
            Ok(false) => {}
            Err(e) => {
                return Piece {
                    rows,
                    lines: lines + 1,
                    error: Some((rows, lines, e)),
                }
            }
        }
        lines += 1;
        pos = end + 1;
    }
    Piece {
        rows,
        lines,
        error: None,
    }
}

fn join<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    #[cfg(feature = "rayon")]
    {
        rayon::join(a, b)
    }
    #[cfg(not(feature = "rayon"))]
    {
        (a(), b())
    }
}

fn par_map<I: Sync, O: Send>(items: &[I], f: impl Fn(&I) -> O + Sync + Send) -> Vec<O> {
    #[cfg(feature = "rayon")]
    if items.len() > 1 {
        use rayon::prelude::*;
        return items.par_iter().map(f).collect();
    }
    items.iter().map(f).collect()
}

fn par_map_owned<I: Send, O: Send>(items: Vec<I>, f: impl Fn(I) -> O + Sync + Send) -> Vec<O> {
    #[cfg(feature = "rayon")]
    if items.len() > 1 {
        use rayon::prelude::*;
        return items.into_par_iter().map(f).collect();
    }
    items.into_iter().map(f).collect()
}

/// Imports the CSV or text file at `path` as array `name` of `store`, all or nothing (with
/// `only_these`, every other array is removed in the same commit). The array is 2-d
/// `(rows, columns)`; a file without rows gives `(0, 0)` (or `(0, len(usecols))`). Returns
/// the shape.
pub fn import_csv(
    store: &Store,
    name: &str,
    path: &Path,
    opts: ReadOptions,
    only_these: bool,
) -> NpkResult<Vec<u64>> {
    let mut reader = CsvReader::open(path, opts)?;
    let mut writer = store.array_writer(name, reader.dtype())?;
    while let Some(rows) = reader.next_rows()? {
        writer.write(rows)?;
    }
    let width = reader
        .width()
        .or_else(|| reader.opts.usecols.as_ref().map(Vec::len))
        .unwrap_or(0);
    let shape = vec![reader.rows(), width as u64];
    store.commit_writers(vec![(writer, shape.clone())], only_these)?;
    Ok(shape)
}
