//! The undo record of an in-place write: the old bytes of every range about to be
//! overwritten (rows of a `replace`; bitmap words and metadata bytes of a drop or an append
//! to an array with deleted rows), written (and, when durable, synced) before the first byte
//! changes, retired once every new byte is written. Recovery writes the old bytes back.
//!
//! ```text
//! "NPKJ" | u32 kind = 3 | u32 file count
//! per file: str data file name | u64 range count
//!           per range: u64 offset | u64 length | old bytes
//! "NPKJ" | u32 kind = 4 | u32 file count
//! per file: str file name | u64 old length + 1 (0: the length is unchanged) | u64 range count
//!           per range: u64 offset | u64 length | old bytes
//! ```
//! Kind 2 (one file: `u32 row count | str name | rows`) is still read. A kind-3 entry may only
//! name a data file; a kind-4 entry a data file (never with a length), a bitmap file, an
//! index's delta log (cut back to the length it had: the record a replace added to it) or
//! `metadata.npkm`. Recovery checks every `offset + length` against the file's length before
//! it writes anything, so a record can only write inside the file it belongs to.

use super::journal::MAGIC;
use super::{tmp_path, JOURNAL};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::cursor::Cursor;
use crate::format::names;
use crate::io::fs;
use crate::store::lock::{StoreLock, FLAG_JOURNAL, FLAG_UNDO, UNDO_OFFSET};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Kind of a single-file undo record (older numpack).
pub const KIND_UNDO_ONE: u32 = 2;
/// Kind of an undo record over the rows of several data files.
pub const KIND_UNDO: u32 = 3;
/// Kind of an undo record over data, bitmap and metadata files, with lengths to restore.
pub const KIND_UNDO_FILES: u32 = 4;

/// Undo records up to this size live in the lock file.
pub const UNDO_IN_LOCK_FILE: usize = 1 << 20;

/// Where the live undo record of a lock file of `file_len` bytes lies, when its header says
/// it is `len` bytes long: checked against the limit and the file before anything is read.
pub fn lock_area(len: u64, file_len: u64) -> Result<std::ops::Range<usize>, String> {
    let end = usize::try_from(len)
        .ok()
        .filter(|&n| n <= UNDO_IN_LOCK_FILE)
        .and_then(|n| (UNDO_OFFSET as usize).checked_add(n))
        .filter(|&end| end as u64 <= file_len);
    end.map(|end| UNDO_OFFSET as usize..end).ok_or_else(|| {
        format!(
            "its header says an undo record of {len} bytes is live, but the file is {file_len} \
             bytes and records are at most {UNDO_IN_LOCK_FILE}"
        )
    })
}

/// The old bytes of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoFile<B> {
    /// The file (bare name).
    pub file: String,
    /// The length to cut the file back to (it was extended), if any.
    pub len: Option<u64>,
    /// `(offset, old bytes)` of each touched range.
    pub rows: Vec<(u64, B)>,
}

/// Old bytes of the rows an in-place replacement is about to overwrite, per data file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UndoLog {
    /// One entry per data file.
    pub files: Vec<UndoFile<Vec<u8>>>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Encodes an undo record: kind 3 when it only holds rows of data files (what every numpack
/// since in-place replaces reads), else kind 4.
pub fn encode(log: &UndoLog) -> Vec<u8> {
    let rows_only = log
        .files
        .iter()
        .all(|f| f.len.is_none() && names::is_safe_data_file(&f.file));
    let payload: usize = log
        .files
        .iter()
        .map(|f| 20 + f.file.len() + f.rows.iter().map(|(_, b)| 16 + b.len()).sum::<usize>())
        .sum();
    let mut out = Vec::with_capacity(12 + payload);
    out.extend_from_slice(MAGIC);
    let kind = if rows_only {
        KIND_UNDO
    } else {
        KIND_UNDO_FILES
    };
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&(log.files.len() as u32).to_le_bytes());
    for f in &log.files {
        put_str(&mut out, &f.file);
        if !rows_only {
            let len = f.len.map_or(0, |l| l + 1);
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(&(f.rows.len() as u64).to_le_bytes());
        for (off, bytes) in &f.rows {
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
    out
}

fn rows<'a>(r: &mut Cursor<'a>, count: u64) -> Result<Vec<(u64, &'a [u8])>, String> {
    // Every row takes at least its 16-byte header: bound the count by the bytes left.
    if count > (r.left() / 16) as u64 {
        return Err(format!("{count} rows do not fit in the record"));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let off = r.u64()?;
        let len = usize::try_from(r.u64()?).map_err(|_| "row length out of range".to_owned())?;
        off.checked_add(len as u64)
            .ok_or_else(|| "row extent overflows".to_owned())?;
        out.push((off, r.take(len)?));
    }
    Ok(out)
}

fn data_file(r: &mut Cursor<'_>) -> Result<String, String> {
    let f = r.file_name()?;
    if !names::is_safe_data_file(&f) {
        return Err(format!("{f:?} is not a data file"));
    }
    Ok(f)
}

/// A kind-4 entry's file name and length: a data file (whose length is never cut: bytes past
/// its committed size are ignored anyway), a bitmap file or the metadata file.
fn any_file(r: &mut Cursor<'_>) -> Result<(String, Option<u64>), String> {
    let f = r.file_name()?;
    let len = r.u64()?.checked_sub(1);
    let ok = if names::is_safe_data_file(&f) || f == super::METADATA {
        len.is_none()
    } else {
        names::is_bitmap_file(&f) || names::is_index_log_file(&f)
    };
    if !ok {
        return Err(format!("{f:?} is not a file an undo record may restore"));
    }
    Ok((f, len))
}

/// Decodes an undo record (kind 2, 3 or 4), borrowing the old bytes from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Vec<UndoFile<&[u8]>>, String> {
    let mut r = Cursor::new(bytes);
    if r.take(4)? != MAGIC {
        return Err("bad magic".into());
    }
    let kind = r.u32()?;
    let files = match kind {
        KIND_UNDO_ONE => {
            let count = u64::from(r.u32()?);
            let file = data_file(&mut r)?;
            vec![UndoFile {
                file,
                len: None,
                rows: rows(&mut r, count)?,
            }]
        }
        KIND_UNDO | KIND_UNDO_FILES => {
            let n = r.u32()? as usize;
            if n > r.left() / 12 {
                return Err(format!("{n} files do not fit in the record"));
            }
            let mut files = Vec::with_capacity(n);
            for _ in 0..n {
                let (file, len) = if kind == KIND_UNDO {
                    (data_file(&mut r)?, None)
                } else {
                    any_file(&mut r)?
                };
                let count = r.u64()?;
                files.push(UndoFile {
                    file,
                    len,
                    rows: rows(&mut r, count)?,
                });
            }
            files
        }
        k => return Err(format!("journal kind {k} is not an undo record")),
    };
    r.finish()?;
    Ok(files)
}

/// The committed size of every data file the store's metadata names (recovery runs before
/// any handle has read it). A store whose metadata is missing or corrupt names none.
fn committed_sizes(dir: &Path) -> std::collections::HashMap<String, u64> {
    let path = dir.join(super::METADATA);
    fs::read_bounded(&path, crate::store::MAX_METADATA_BYTES)
        .ok()
        .flatten()
        .and_then(|b| crate::format::metadata::MetadataFile::decode(&b).ok())
        .map(|m| {
            m.arrays
                .into_values()
                .map(|a| (a.data_file, a.size_bytes))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes the old bytes of a decoded record back. Only into data files the metadata names
/// (within their committed bytes), bitmap files and the metadata file (within their
/// length), and never into a file with other hard links (the write would reach them): every
/// extent is checked before anything is written, so a damaged or crafted record changes
/// nothing. A file no record names has nothing to restore. Lengths are cut back last.
pub fn replay(dir: &Path, source: &Path, bytes: &[u8], durable: bool) -> NpkResult<()> {
    let files = decode(bytes).map_err(|why| super::recover::unusable(source, &why))?;
    let sizes = committed_sizes(dir);
    let mut opened = Vec::with_capacity(files.len());
    for f in &files {
        // A bitmap or the metadata is bounded by its length alone: the metadata may be torn
        // (its old bytes are in this record), so it cannot say which bitmaps exist.
        let committed = if f.file == super::METADATA
            || names::is_bitmap_file(&f.file)
            || names::is_index_log_file(&f.file)
        {
            u64::MAX
        } else if let Some(&c) = sizes.get(&f.file) {
            c
        } else {
            continue;
        };
        let path = dir.join(&f.file);
        let file = match fs::open_rw(&path) {
            Ok(file) => file,
            // Nothing to restore in a file that is gone (its array was removed since).
            Err(e) if fs::is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        let m = file.metadata().at(&path)?;
        if std::os::unix::fs::MetadataExt::nlink(&m) > 1 {
            return Err(super::recover::unusable(
                source,
                &format!("it would write into {}, which has other hard links", f.file),
            ));
        }
        let len = m.len().min(committed);
        if let Some(cut) = f.len.filter(|&l| l > len) {
            return Err(super::recover::unusable(
                source,
                &format!(
                    "it would cut {} back to {cut} bytes, but it holds {len}",
                    f.file
                ),
            ));
        }
        let bound = f.len.unwrap_or(len);
        if let Some((off, b)) = f.rows.iter().find(|(o, b)| o + b.len() as u64 > bound) {
            return Err(super::recover::unusable(
                source,
                &format!(
                    "it would write {} bytes at offset {off} of {}, which holds {bound} \
                     committed bytes",
                    b.len(),
                    f.file
                ),
            ));
        }
        opened.push((path, file, f));
    }
    // The metadata last: until it is old again, it still names what the other files hold.
    opened.sort_by_key(|(_, _, f)| f.file == super::METADATA);
    for (path, file, f) in opened {
        for (off, old) in &f.rows {
            fs::write_at(&file, &path, old, *off)?;
        }
        if let Some(l) = f.len {
            fs::set_len(&file, &path, l)?;
        }
        if durable {
            fs::sync_data(&file, &path)?;
        }
    }
    Ok(())
}

/// Where an undo record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndoSlot {
    /// The lock file's undo area.
    LockFile,
    /// `.numpack.journal`.
    Journal,
}

/// Records the undo log before rows are overwritten in place; remove it with
/// [`finish_undo`] once the new bytes are written. Durable: the record is on stable storage
/// (file and directory entry) before this returns.
pub fn begin_undo(
    dir: &Path,
    lock: &StoreLock,
    log: &UndoLog,
    durable: bool,
) -> NpkResult<UndoSlot> {
    let out = encode(log);
    if !durable && out.len() <= UNDO_IN_LOCK_FILE {
        // The record is complete in the page cache before the flag makes it live.
        lock.file()
            .write_all_at(&out, UNDO_OFFSET)
            .at(lock.path())?;
        lock.set_undo_len(out.len() as u64);
        lock.set_flags(FLAG_UNDO);
        return Ok(UndoSlot::LockFile);
    }
    let tmp = tmp_path(dir, JOURNAL);
    if let Err(e) = fs::write_new(&tmp, &out, durable) {
        let _ = fs::remove(&tmp);
        return Err(e);
    }
    let journal = dir.join(JOURNAL);
    lock.set_flags(FLAG_JOURNAL);
    if let Err(e) = fs::rename(&tmp, &journal) {
        let _ = fs::remove(&tmp);
        return Err(NpkError::io(journal, e));
    }
    if durable {
        fs::sync_dir(dir)?;
    }
    Ok(UndoSlot::Journal)
}

/// Retires the undo record after the new rows were written (and, when durable, synced).
/// Durable: the removal is on stable storage before this returns, so a power loss cannot
/// roll back a replace that returned.
pub fn finish_undo(dir: &Path, lock: &StoreLock, slot: UndoSlot, durable: bool) -> NpkResult<()> {
    match slot {
        UndoSlot::LockFile => {
            lock.clear_flags(FLAG_UNDO);
            lock.set_undo_len(0);
            Ok(())
        }
        UndoSlot::Journal => {
            fs::remove(&dir.join(JOURNAL))?;
            if durable {
                fs::sync_dir(dir)?;
            }
            lock.clear_flags(FLAG_JOURNAL);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_truncations_and_names() {
        let log = UndoLog {
            files: vec![
                UndoFile {
                    file: "data_a.npkd".into(),
                    len: None,
                    rows: vec![(0, vec![1, 2]), (8, vec![3])],
                },
                UndoFile {
                    file: "data_b.npkd".into(),
                    len: None,
                    rows: vec![(4, vec![])],
                },
            ],
        };
        let bytes = encode(&log);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].rows, vec![(0, &[1u8, 2][..]), (8, &[3u8][..])]);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut bad = log.clone();
        bad.files[0].file = ".numpack.lock".into();
        assert!(decode(&encode(&bad)).is_err());
        // A kind-3 record names data files only.
        let mut k3 = MAGIC.to_vec();
        k3.extend_from_slice(&KIND_UNDO.to_le_bytes());
        k3.extend_from_slice(&1u32.to_le_bytes());
        put_str(&mut k3, "metadata.npkm");
        k3.extend_from_slice(&0u64.to_le_bytes());
        assert!(decode(&k3).is_err());
        let mut huge = log.clone();
        huge.files[0].rows = vec![(u64::MAX, vec![1])];
        assert!(decode(&encode(&huge)).is_err());
    }

    #[test]
    fn kind_4_names_bitmaps_and_metadata_with_lengths() {
        let log = UndoLog {
            files: vec![
                UndoFile {
                    file: "deleted_a.npkb".into(),
                    len: Some(24),
                    rows: vec![(0, vec![1; 16])],
                },
                UndoFile {
                    file: "metadata.npkm".into(),
                    len: None,
                    rows: vec![(9, vec![7; 8])],
                },
            ],
        };
        let bytes = encode(&log);
        assert_eq!(&bytes[4..8], &KIND_UNDO_FILES.to_le_bytes());
        let back = decode(&bytes).unwrap();
        assert_eq!(back[0].len, Some(24));
        assert_eq!(back[1].file, "metadata.npkm");
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        // A length to restore only for bitmaps; never a lock, journal or history file.
        for (file, len) in [
            ("metadata.npkm", Some(3)),
            ("data_a.npkd", Some(3)),
            (".numpack.lock", None),
            (".numpack.history", None),
            ("../deleted_a.npkb", Some(1)),
        ] {
            let mut bad = log.clone();
            bad.files[0].file = file.into();
            bad.files[0].len = len;
            assert!(decode(&encode(&bad)).is_err(), "{file}");
        }
    }
}
