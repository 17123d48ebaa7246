//! A consistent, mmap-backed view of one array: its record, its data and its bitmap.

use super::deleted::{check_file_len, fold_zero_width, is_zero_width, read_bitmap};
use super::segments::Segments;
use super::select::{physical, RowSelection};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::bitmap::Bitmap;
use crate::format::metadata::ArrayMetadata;
use crate::io::composite::Composite;
use crate::io::{copy_parallel, fs};
use memmap2::{Advice, Mmap, MmapMut, MmapOptions};

/// The system page size (mapping offsets are multiples of it).
fn page_size() -> u64 {
    // Every platform numpack runs on uses 4 KiB or a multiple that is a power of two up to
    // 64 KiB; mapping at a 64 KiB boundary is valid for all of them.
    64 << 10
}

/// How a mapped array is about to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessHint {
    /// Front to back: read ahead aggressively.
    Sequential,
    /// Scattered rows: no read-ahead.
    Random,
    /// Soon, all of it: prefetch now.
    WillNeed,
}
use std::fs::File;
use std::path::{Path, PathBuf};

/// A resolved selection of rows of one array version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected {
    /// Logical rows `start..stop`.
    Range(u64, u64),
    /// Physical rows, in order.
    Rows(Vec<u64>),
    /// This many rows of an array whose rows hold no bytes.
    Empty(u64),
}

/// Where an array's bytes are: its data file (mapped when the snapshot opens), or its
/// segments (read directly by copies; laid end to end in one view the first time a caller
/// needs a slice of the whole array, since that may mean reading it into memory).
#[derive(Debug)]
enum Source {
    File(File, Option<Mmap>),
    Segments(Segments, std::sync::OnceLock<Composite>),
}

/// A writable mapping of an array's rows: shared with its data file (writes reach it), or
/// a private view of rows of its segments (writes never reach them).
#[derive(Debug)]
pub enum WritableMap {
    /// A mapping of the data file (shared, or private when asked for).
    File(MmapMut),
    /// A private view of a segmented array's rows.
    Private(Composite),
}

impl std::ops::Deref for WritableMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            WritableMap::File(m) => m,
            WritableMap::Private(c) => c,
        }
    }
}

impl std::ops::DerefMut for WritableMap {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            WritableMap::File(m) => m,
            WritableMap::Private(c) => c,
        }
    }
}

impl WritableMap {
    /// Writes a shared mapping's dirty pages to the file (a no-op for private ones).
    pub fn flush(&self) -> std::io::Result<()> {
        match self {
            WritableMap::File(m) => m.flush(),
            WritableMap::Private(c) => c.flush(),
        }
    }
}

/// An opened array. Reads never go past the committed bytes, and the mapping stays valid
/// whatever later writers do: numpack never truncates committed bytes of a data file (it
/// replaces files by rename and only trims uncommitted bytes past `size_bytes`).
#[derive(Debug)]
pub struct ArraySnapshot {
    /// The array's record.
    pub meta: ArrayMetadata,
    path: PathBuf,
    /// The data file and its mapping, or the segments.
    source: Source,
    bitmap: Option<Bitmap>,
}

impl ArraySnapshot {
    /// Opens the array described by `meta` in `dir`, reading its bitmap from disk. An array
    /// whose rows hold no bytes gets its deleted rows folded into its row count instead.
    pub fn open(dir: &Path, meta: ArrayMetadata) -> NpkResult<Self> {
        if is_zero_width(&meta) {
            let (folded, _) = fold_zero_width(dir, &meta)?;
            return Self::open_with_bitmap(dir, folded, None);
        }
        let bitmap = read_bitmap(dir, &meta)?;
        Self::open_with_bitmap(dir, meta, bitmap)
    }

    /// Opens the array with a bitmap already read.
    pub fn open_with_bitmap(
        dir: &Path,
        meta: ArrayMetadata,
        bitmap: Option<Bitmap>,
    ) -> NpkResult<Self> {
        Self::open_path(dir.join(&meta.data_file), meta, bitmap)
    }

    /// Opens the array from the data file at `path` (a file kept for an older version).
    pub fn open_path(
        path: PathBuf,
        meta: ArrayMetadata,
        bitmap: Option<Bitmap>,
    ) -> NpkResult<Self> {
        let blocks = meta.block_info.as_ref().is_some_and(|b| b.enabled != 0);
        if meta.compression != 0 || blocks {
            return Err(NpkError::InvalidMetadata(format!(
                "array '{}' is stored compressed (algorithm {}), which this version cannot read",
                meta.name, meta.compression
            )));
        }
        if crate::format::names::is_manifest(&meta.data_file) {
            return Self::open_segments(path, meta, bitmap);
        }
        let file = fs::open_read(&path)?;
        check_file_len(&path, file.metadata().at(&path)?.len(), &meta)?;
        let map = if meta.size_bytes == 0 {
            None
        } else {
            let size = usize::try_from(meta.size_bytes).map_err(|_| {
                NpkError::corrupt(&path, "array larger than the address space".to_owned())
            })?;
            // SAFETY: the file is at least `size` bytes (checked above) and numpack never
            // shrinks committed bytes of a data file in place (files are replaced by rename,
            // only uncommitted bytes past `size_bytes` are trimmed). A foreign process
            // truncating the file could still fault; that is outside the store's contract.
            Some(unsafe { MmapOptions::new().len(size).map(&file) }.at(&path)?)
        };
        Ok(ArraySnapshot {
            meta,
            path,
            source: Source::File(file, map),
            bitmap,
        })
    }

    /// Opens a segmented array from its manifest at `path`.
    fn open_segments(
        path: PathBuf,
        meta: ArrayMetadata,
        bitmap: Option<Bitmap>,
    ) -> NpkResult<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let segs = super::segments::open(dir, &path, &meta)?;
        Ok(ArraySnapshot {
            meta,
            path,
            source: Source::Segments(segs, std::sync::OnceLock::new()),
            bitmap,
        })
    }

    /// Whether the array is kept in segments (the published 0.7 layout).
    pub fn is_segmented(&self) -> bool {
        matches!(self.source, Source::Segments(..))
    }

    /// How many segments its manifest lists (0: one data file; at least 1 when segmented).
    pub fn segment_count(&self) -> usize {
        match &self.source {
            Source::File(..) => 0,
            Source::Segments(s, _) => s.manifest.segments.len().max(1),
        }
    }

    /// Bytes of the files holding the array now (its data file, or its segments).
    pub fn file_bytes(&self) -> u64 {
        let len = |f: &File| f.metadata().map_or(0, |m| m.len());
        match &self.source {
            Source::File(f, _) => len(f),
            Source::Segments(s, _) => s.open.iter().map(|o| len(&o.file)).sum(),
        }
    }

    /// Tells the kernel how the mapping will be read (prefetch or not).
    pub fn advise(&self, hint: AccessHint) -> NpkResult<()> {
        match &self.source {
            Source::File(_, None) => Ok(()),
            Source::File(_, Some(m)) => {
                let advice = match hint {
                    AccessHint::Sequential => Advice::Sequential,
                    AccessHint::Random => Advice::Random,
                    AccessHint::WillNeed => Advice::WillNeed,
                };
                m.advise(advice).at(&self.path)
            }
            Source::Segments(_, view) => {
                let Some(c) = view.get() else {
                    return Ok(()); // read directly, nothing mapped
                };
                c.advise(match hint {
                    AccessHint::Sequential => libc::MADV_SEQUENTIAL,
                    AccessHint::Random => libc::MADV_RANDOM,
                    AccessHint::WillNeed => libc::MADV_WILLNEED,
                });
                Ok(())
            }
        }
    }

    /// A private, writable, copy-on-write mapping of physical rows `start..stop`, and the
    /// offset of row `start` in it (mappings start on a page boundary). Nothing is copied
    /// up front: pages are shared with the page cache until written, and a written page
    /// becomes the mapping's own. Pages not yet written may show later in-place writes to
    /// the file (`replace`), as any view of the file does.
    pub fn map_rows_private(&self, start: u64, stop: u64) -> NpkResult<(WritableMap, usize)> {
        let row = self.meta.row_bytes();
        if stop < start || stop > self.meta.rows() || row == 0 {
            return Err(NpkError::InvalidOperation(format!(
                "rows {start}..{stop} of array '{}' cannot be mapped",
                self.meta.name
            )));
        }
        let (first, end) = (start * row, stop * row);
        let file = match &self.source {
            Source::File(f, _) => f,
            Source::Segments(s, _) => {
                return Ok((
                    WritableMap::Private(s.view(first, end, true, &self.path)?),
                    0,
                ));
            }
        };
        let page = page_size();
        let at = first - first % page;
        let len = usize::try_from(end - at)
            .map_err(|_| NpkError::InvalidShape("row range larger than memory".into()))?;
        // SAFETY: `at..end` lies within the committed bytes (`stop <= rows`, checked against
        // the file's length when the snapshot was opened), which numpack never shrinks in
        // place; the mapping is private, so writes through it never reach the file.
        let map = unsafe { MmapOptions::new().offset(at).len(len).map_copy(file) }.at(&self.path)?;
        Ok((WritableMap::File(map), (first - at) as usize))
    }

    /// Path of the data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the array is 0-d.
    pub fn is_scalar(&self) -> bool {
        self.meta.shape.is_empty()
    }

    /// The bitmap, if some rows are deleted (or were, before compaction).
    pub fn bitmap(&self) -> Option<&Bitmap> {
        self.bitmap.as_ref()
    }

    /// Logical rows (physical rows minus deleted ones; 1 for a 0-d array).
    pub fn logical_rows(&self) -> u64 {
        self.bitmap
            .as_ref()
            .map_or(self.meta.rows(), Bitmap::active)
    }

    /// Logical shape.
    pub fn logical_shape(&self) -> Vec<u64> {
        let mut s = self.meta.shape.clone();
        if let Some(first) = s.first_mut() {
            *first = self.logical_rows();
        }
        s
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        usize::try_from(self.meta.row_bytes()).expect("row fits in memory")
    }

    /// Bytes of the logical array.
    pub fn logical_bytes(&self) -> usize {
        usize::try_from(self.logical_rows() * self.meta.row_bytes()).expect("fits in memory")
    }

    /// The physical data (every row, deleted ones included).
    ///
    /// For a segmented array this builds one view of its segments the first time (reading
    /// into memory the segments whose start is not on a page boundary of the view), which
    /// can fail; the copies below read segments directly instead.
    pub fn physical(&self) -> NpkResult<&[u8]> {
        match &self.source {
            Source::File(_, None) => Ok(&[]),
            Source::File(_, Some(m)) => Ok(m),
            Source::Segments(s, view) => {
                if let Some(c) = view.get() {
                    return Ok(c);
                }
                let built = s.view(0, self.meta.size_bytes, false, &self.path)?;
                // Two threads may both build one: the second is dropped.
                let _ = view.set(built);
                Ok(view.get().expect("set above"))
            }
        }
    }

    /// Copies physical bytes `at..at + dst.len()` (within the committed bytes) into `dst`:
    /// from the mapping, or straight from the segment files.
    fn read_physical(&self, at: usize, dst: &mut [u8]) -> NpkResult<()> {
        match &self.source {
            Source::Segments(s, view) if view.get().is_none() => s.read_at(at as u64, dst),
            _ => {
                dst.copy_from_slice(&self.physical()?[at..at + dst.len()]);
                Ok(())
            }
        }
    }

    /// Physical row numbers of the logical rows, when some rows are deleted.
    pub fn active_rows(&self) -> Option<Vec<u64>> {
        self.bitmap.as_ref().map(Bitmap::active_rows)
    }

    /// Copies the logical array into `dst` (`logical_bytes()` long).
    pub fn copy_into(&self, dst: &mut [u8]) -> NpkResult<()> {
        self.check_len(dst.len(), self.logical_bytes())?;
        if self.is_segmented() {
            let row = self.row_bytes();
            let Some(b) = &self.bitmap else {
                return self.read_physical(0, dst);
            };
            let (mut at, mut done) = (0, Ok(()));
            b.for_each_run(|start, n| {
                let n = n as usize * row;
                if done.is_ok() {
                    done = self.read_physical(start as usize * row, &mut dst[at..at + n]);
                }
                at += n;
            });
            return done;
        }
        let src = self.physical()?;
        match &self.bitmap {
            None => copy_parallel(dst, src),
            Some(b) => {
                let row = self.row_bytes();
                let mut at = 0;
                b.for_each_run(|start, n| {
                    let (s, n) = (start as usize * row, n as usize * row);
                    dst[at..at + n].copy_from_slice(&src[s..s + n]);
                    at += n;
                });
            }
        }
        Ok(())
    }

    /// The logical array as bytes.
    pub fn to_bytes(&self) -> NpkResult<Vec<u8>> {
        let mut out = vec![0u8; self.logical_bytes()];
        self.copy_into(&mut out)?;
        Ok(out)
    }

    /// Maps logical indices (negative from the end) to physical rows.
    pub fn resolve(&self, indices: &[i64]) -> NpkResult<Vec<u64>> {
        self.require_rows()?;
        super::select::resolve_rows(indices, self.logical_rows(), self.bitmap.as_ref())
    }

    /// Resolves a selection of logical rows of this version of the array.
    pub fn select(&self, sel: &RowSelection<'_>) -> NpkResult<Selected> {
        self.require_rows()?;
        let n = self.logical_rows();
        if let Some((start, stop)) = sel.as_range(n) {
            return Ok(Selected::Range(start, stop));
        }
        if self.meta.row_bytes() == 0 {
            return Ok(Selected::Empty(sel.count(&self.meta.name, n)?.0));
        }
        let rows = sel.resolve(&self.meta.name, n)?;
        Ok(Selected::Rows(physical(rows, self.bitmap.as_ref())))
    }

    /// The shape of a selection's result (the row axis is kept).
    pub fn selected_shape(&self, s: &Selected) -> Vec<u64> {
        let mut shape = self.meta.shape.clone();
        shape[0] = match s {
            Selected::Range(a, b) => b - a,
            Selected::Rows(r) => r.len() as u64,
            Selected::Empty(n) => *n,
        };
        shape
    }

    /// Copies a selection's rows into `dst` (`selected_shape` elements).
    pub fn copy_selected(&self, s: &Selected, dst: &mut [u8]) -> NpkResult<()> {
        match s {
            Selected::Range(a, b) => self.range_into(*a, *b, dst),
            Selected::Rows(rows) => self.gather_physical_into(rows, dst),
            Selected::Empty(_) => self.check_len(dst.len(), 0),
        }
    }

    /// A shared writable mapping of the data file (for the writable batch mode; `None` for
    /// an array of 0 bytes). Refused when rows are deleted: the mapping shows physical rows.
    pub fn map_writable(&self) -> NpkResult<Option<WritableMap>> {
        if self.is_segmented() {
            return Err(NpkError::InvalidOperation(format!(
                "array '{}' is kept in segments (the 0.7 layout) and cannot be mapped writable; \
                 the store turns it into one file first",
                self.meta.name
            )));
        }
        if self.bitmap.as_ref().is_some_and(|b| b.deleted() > 0) {
            return Err(NpkError::InvalidOperation(format!(
                "array '{}' has deleted rows; compact it (update) before mapping it writable",
                self.meta.name
            )));
        }
        let size = self.physical()?.len();
        if size == 0 {
            return Ok(None);
        }
        let file = fs::open_rw(&self.path)?;
        let m = file.metadata().at(&self.path)?;
        check_file_len(&self.path, m.len(), &self.meta)?;
        let links = std::os::unix::fs::MetadataExt::nlink(&m);
        if links > 1 {
            return Err(NpkError::InvalidOperation(format!(
                "the data file of array '{}' has {links} hard links: writing it in place \
                 would change every copy; save the array again to give it a file of its own",
                self.meta.name
            )));
        }
        // SAFETY: the file holds at least `size` committed bytes (checked above) and numpack
        // never shrinks committed bytes in place.
        let m = unsafe { MmapOptions::new().len(size).map_mut(&file) }.at(&self.path)?;
        Ok(Some(WritableMap::File(m)))
    }

    /// Copies the rows `indices` (logical, negative from the end, any order, duplicates)
    /// into `dst` (`indices.len() * row_bytes()` long).
    pub fn gather_into(&self, indices: &[i64], dst: &mut [u8]) -> NpkResult<()> {
        let rows = self.resolve(indices)?;
        self.gather_physical_into(&rows, dst)
    }

    /// Copies physical rows (each < `meta.rows()`, as [`ArraySnapshot::resolve`] gives them)
    /// into `dst`.
    pub fn gather_physical(&self, rows: &[u64], dst: &mut [u8]) -> NpkResult<()> {
        self.gather_physical_into(rows, dst)
    }

    fn gather_physical_into(&self, rows: &[u64], dst: &mut [u8]) -> NpkResult<()> {
        let row = self.row_bytes();
        self.check_len(dst.len(), rows.len() * row)?;
        if row == 0 {
            return Ok(());
        }
        if self.is_segmented() {
            // Runs of consecutive rows are one read each.
            let mut i = 0;
            while i < rows.len() {
                let mut n = 1;
                while i + n < rows.len() && rows[i + n] == rows[i] + n as u64 {
                    n += 1;
                }
                self.read_physical(rows[i] as usize * row, &mut dst[i * row..(i + n) * row])?;
                i += n;
            }
            return Ok(());
        }
        let src = self.physical()?;
        let copy = |(d, &r): (&mut [u8], &u64)| {
            let s = r as usize * row;
            d.copy_from_slice(&src[s..s + row]);
        };
        #[cfg(feature = "rayon")]
        if rows.len() * row >= 4 << 20 {
            use rayon::prelude::*;
            dst.par_chunks_mut(row).zip(rows.par_iter()).for_each(copy);
            return Ok(());
        }
        dst.chunks_mut(row).zip(rows.iter()).for_each(copy);
        Ok(())
    }

    /// Copies logical rows `start..stop` into `dst`.
    pub fn range_into(&self, start: u64, stop: u64, dst: &mut [u8]) -> NpkResult<()> {
        self.require_rows()?;
        let rows = self.logical_rows();
        if start > stop || stop > rows {
            return Err(NpkError::IndexOutOfBounds(stop as i64, rows));
        }
        let row = self.row_bytes();
        self.check_len(dst.len(), (stop - start) as usize * row)?;
        if self.is_segmented() {
            let Some(b) = &self.bitmap else {
                return self.read_physical(start as usize * row, dst);
            };
            // Runs of active rows are one read each.
            let mut j = start;
            while j < stop {
                let p = b.select(j);
                let mut n = 1;
                while j + n < stop && p + n < b.rows() && b.is_active(p + n) {
                    n += 1;
                }
                let at = (j - start) as usize * row;
                self.read_physical(p as usize * row, &mut dst[at..at + n as usize * row])?;
                j += n;
            }
            return Ok(());
        }
        let src = self.physical()?;
        match &self.bitmap {
            None => copy_parallel(dst, &src[start as usize * row..stop as usize * row]),
            Some(b) => {
                for (k, j) in (start..stop).enumerate() {
                    let s = b.select(j) as usize * row;
                    dst[k * row..(k + 1) * row].copy_from_slice(&src[s..s + row]);
                }
            }
        }
        Ok(())
    }

    fn require_rows(&self) -> NpkResult<()> {
        if self.is_scalar() {
            return Err(NpkError::InvalidShape(format!(
                "array '{}' is 0-d and has no rows",
                self.meta.name
            )));
        }
        Ok(())
    }

    fn check_len(&self, got: usize, need: usize) -> NpkResult<()> {
        if got != need {
            return Err(NpkError::InvalidShape(format!(
                "array '{}': destination is {got} bytes, {need} needed",
                self.meta.name
            )));
        }
        Ok(())
    }
}
