//! An array's deleted rows as read from disk: its bitmap file, checked against the data it
//! describes before anything is sized by the record's row count.
//!
//! Arrays whose rows hold no bytes (shape `(n, 0, ...)`) are kept without per-row state: the
//! data file cannot bound their row count, so a bitmap sized by it could be of any size.
//! Their deleted rows are folded into the row count instead ([`fold_zero_width`]): every row
//! of such an array is the same empty row, so the logical content is unchanged.

use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::bitmap::Bitmap;
use crate::format::metadata::ArrayMetadata;
use crate::format::names;
use crate::io::fs;
use std::path::{Path, PathBuf};

/// Most rows a bitmap of an array whose rows hold no bytes may cover (16 MiB of file): such
/// bitmaps are only counted and folded away, and no data file bounds them.
pub const ZERO_WIDTH_BITMAP_ROWS: u64 = 1 << 27;

/// Whether the rows of `a` hold no bytes (and it has rows: it is not 0-d).
pub fn is_zero_width(a: &ArrayMetadata) -> bool {
    !a.shape.is_empty() && a.row_bytes() == 0
}

/// A data file of `len` bytes must hold the `size_bytes` its record commits (longer is fine:
/// uncommitted bytes of an interrupted append).
pub fn check_file_len(path: &Path, len: u64, a: &ArrayMetadata) -> NpkResult<()> {
    if len < a.size_bytes {
        return Err(NpkError::corrupt(
            path,
            format!(
                "data file is {len} bytes but the metadata of array '{}' says {}",
                a.name, a.size_bytes
            ),
        ));
    }
    Ok(())
}

/// Fails unless the data file is a regular file holding at least the `size_bytes` its record
/// promises. Call it before building anything sized by the record's row count.
pub fn check_data_len(dir: &Path, a: &ArrayMetadata) -> NpkResult<()> {
    let path = dir.join(&a.data_file);
    if names::is_manifest(&a.data_file) {
        return super::segments::open(dir, &path, a).map(drop);
    }
    match fs::file_len(&path)? {
        Some(len) => check_file_len(&path, len, a),
        None => Err(NpkError::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "data file missing"),
        )),
    }
}

/// Most bytes of per-row state (bitmap words and their rank index) beyond four times what the
/// data file actually holds on disk.
const ROW_STATE_SLACK: u64 = 64 << 20;

/// Fails unless the data file holds its committed bytes *and* the per-row state of its rows
/// (16 bytes per 64 rows) is bounded by the data actually on disk: a sparse file of 1 TiB
/// with no blocks must not make numpack build a 16 GiB bitmap. Call it before anything is
/// sized by the record's row count.
pub fn check_row_state(dir: &Path, a: &ArrayMetadata) -> NpkResult<()> {
    let path = dir.join(&a.data_file);
    let segments = if names::is_manifest(&a.data_file) {
        Some(super::segments::open(dir, &path, a)?)
    } else {
        check_data_len(dir, a)?;
        None
    };
    let need = a.rows().div_ceil(64) * 16;
    if need <= ROW_STATE_SLACK {
        return Ok(());
    }
    let present = match segments {
        Some(s) => s.blocks_bytes(),
        None => fs::entry(&path)?.map_or(0, |m| {
            std::os::unix::fs::MetadataExt::blocks(&m).saturating_mul(512)
        }),
    };
    if need > ROW_STATE_SLACK.saturating_add(present.saturating_mul(4)) {
        return Err(NpkError::corrupt(
            &path,
            format!(
                "array '{}' claims {} rows, but the data file holds only {present} bytes on disk \
                 (a sparse file): its deletion state would need {need} bytes",
                a.name,
                a.rows()
            ),
        ));
    }
    Ok(())
}

/// The path of `a`'s bitmap file when one is there (`None` when it has none).
fn bitmap_path(dir: &Path, a: &ArrayMetadata) -> NpkResult<Option<PathBuf>> {
    let Some(file) = names::bitmap_file(&a.data_file) else {
        return Ok(None);
    };
    let path = dir.join(file);
    if fs::entry(&path)?.is_none() {
        return Ok(None);
    }
    if a.shape.is_empty() {
        // A 0-d array has no rows to delete (compaction would index its empty shape).
        return Err(NpkError::corrupt(
            &path,
            format!("array '{}' is 0-d but has a deletion bitmap", a.name),
        ));
    }
    Ok(Some(path))
}

/// The bitmap file of `a`, read whole (`None` when it has none). Its size is bounded by the
/// largest bitmap the array's rows can have, and those rows by its data file.
fn read_file(dir: &Path, a: &ArrayMetadata) -> NpkResult<Option<(PathBuf, Vec<u8>)>> {
    let Some(path) = bitmap_path(dir, a)? else {
        return Ok(None);
    };
    check_row_state(dir, a)?;
    Ok(fs::read_bounded(&path, Bitmap::max_file_len(a.rows()))?.map(|b| (path, b)))
}

/// Reads an array's bitmap from disk (`None` when it has none, and always for arrays whose
/// rows hold no bytes: see [`fold_zero_width`]).
pub fn read_bitmap(dir: &Path, a: &ArrayMetadata) -> NpkResult<Option<Bitmap>> {
    if is_zero_width(a) {
        return Ok(None);
    }
    let Some((path, bytes)) = read_file(dir, a)? else {
        return Ok(None);
    };
    Bitmap::decode(&bytes, a.rows())
        .map(Some)
        .map_err(|r| NpkError::corrupt(&path, r))
}

/// [`read_bitmap`] with the file's bytes as read (to write only what a change changes).
pub fn read_bitmap_bytes(dir: &Path, a: &ArrayMetadata) -> NpkResult<Option<(Bitmap, Vec<u8>)>> {
    if is_zero_width(a) {
        return Ok(None);
    }
    let Some((path, bytes)) = read_file(dir, a)? else {
        return Ok(None);
    };
    let b = Bitmap::decode(&bytes, a.rows()).map_err(|r| NpkError::corrupt(&path, r))?;
    Ok(Some((b, bytes)))
}

/// The end of a bitmap file in the headered layout: what an append needs to extend it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitmapTail {
    /// File length.
    pub len: u64,
    /// Rows it covers (at most the array's).
    pub rows: u64,
    /// The header's deleted count.
    pub deleted: u64,
    /// Its last word, when `rows` is not a multiple of 64.
    pub last: Option<u64>,
}

/// Reads only the header and last word of `a`'s bitmap file: `None` when it has none, or when
/// the file is not exactly a headered bitmap of at most the array's rows (the caller then
/// reads it whole, which tells corruption from the legacy layout).
pub fn read_bitmap_tail(dir: &Path, a: &ArrayMetadata) -> NpkResult<Option<BitmapTail>> {
    use std::os::unix::fs::FileExt;
    if is_zero_width(a) {
        return Ok(None);
    }
    let Some(path) = bitmap_path(dir, a)? else {
        return Ok(None);
    };
    let Some(file) = fs::open_read_opt(&path)? else {
        return Ok(None);
    };
    let len = file.metadata().at(&path)?.len();
    let mut head = [0u8; 16];
    if len < 16 || file.read_exact_at(&mut head, 0).is_err() {
        return Ok(None);
    }
    let rows = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let deleted = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
    if rows > a.rows() || Bitmap::max_file_len(rows) != len {
        return Ok(None);
    }
    let last = if rows.is_multiple_of(64) {
        None
    } else {
        let mut w = [0u8; 8];
        file.read_exact_at(&mut w, len - 8).at(&path)?;
        Some(u64::from_le_bytes(w))
    };
    Ok(Some(BitmapTail {
        len,
        rows,
        deleted,
        last,
    }))
}

/// For an array whose rows hold no bytes: its record with deleted rows folded into the row
/// count, and whether a bitmap file is there (to be removed by the next mutation). Other
/// arrays come back unchanged.
pub fn fold_zero_width(dir: &Path, a: &ArrayMetadata) -> NpkResult<(ArrayMetadata, bool)> {
    if !is_zero_width(a) {
        return Ok((a.clone(), false));
    }
    let Some(path) = bitmap_path(dir, a)? else {
        return Ok((a.clone(), false));
    };
    // Counted through a mapping: nothing is allocated, and the length is bounded so that a
    // sparse file cannot make the count take hours.
    let Some(file) = fs::open_read_opt(&path)? else {
        return Ok((a.clone(), false));
    };
    let len = file.metadata().at(&path)?.len();
    let max = Bitmap::max_file_len(a.rows().min(ZERO_WIDTH_BITMAP_ROWS));
    if len > max {
        return Err(NpkError::corrupt(
            &path,
            format!(
                "is {len} bytes; the bitmap of array '{}' (whose rows hold no bytes) may cover \
                 at most {ZERO_WIDTH_BITMAP_ROWS} rows ({max} bytes)",
                a.name
            ),
        ));
    }
    let len = len as usize;
    let map = if len == 0 {
        None
    } else {
        // SAFETY: a read-only mapping of a regular file of `len` bytes; numpack replaces
        // bitmap files by rename, never truncates them.
        Some(unsafe { memmap2::MmapOptions::new().len(len).map(&file) }.at(&path)?)
    };
    let bytes = map.as_deref().unwrap_or(&[]);
    let active = Bitmap::count_active(bytes, a.rows()).map_err(|r| NpkError::corrupt(&path, r))?;
    let mut folded = a.clone();
    folded.shape[0] = active;
    Ok((folded, true))
}
