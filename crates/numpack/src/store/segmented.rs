//! Writing arrays kept in segments (the published 0.7 layout; FORMAT.md, "Segmented
//! arrays"). Appends write as 0.7 does: they fill the last segment, then start new ones, and
//! the manifest is replaced in the same commit as the metadata. Drops only touch the bitmap.
//! Every other rewrite (replace, a writable mapping, compaction) first turns the array into
//! one data file of the same rows, which 0.7 reads as well.

use super::commit::Txn;
use super::Store;
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::history::parse_kept_name;
use crate::format::metadata::ArrayMetadata;
use crate::format::names;
use crate::format::segments::{rows_per_segment, Segment};
use crate::io::fs;
use crate::read::segments::{open, open_folder};
use std::path::Path;
use std::sync::Arc;

/// Whether array `a` is kept in segments.
pub(crate) fn is_segmented(a: &ArrayMetadata) -> bool {
    names::is_manifest(&a.data_file)
}

fn stem(a: &ArrayMetadata) -> &str {
    names::data_stem(&a.data_file).expect("a data file name has a stem")
}

/// Appends `data` (whole rows) to the segmented array `a` in `txn`: into the last segment
/// past its committed end until it holds a segment's worth, then into new segment files; the
/// new manifest is renamed onto the old one at the commit.
pub(super) fn append(
    store: &Store,
    txn: &mut Txn<'_>,
    a: &ArrayMetadata,
    data: &[u8],
) -> NpkResult<()> {
    let dir = txn.dir().to_owned();
    let manifest_path = dir.join(&a.data_file);
    let mut manifest = open(&dir, &manifest_path, a)?.manifest;
    let row = a.row_bytes();
    let per = rows_per_segment(row);
    let stem = stem(a).to_owned();
    let mut rest = data;
    let take = |rest: &[u8], room: u64| -> u64 { (rest.len() as u64 / row).min(room) };
    let folder_path = dir.join(names::segment_dir(&stem));
    let base = |file: &str| {
        file.rsplit('/')
            .next()
            .expect("checked: folder/name")
            .to_owned()
    };
    if let Some(last) = manifest.segments.last_mut().filter(|l| l.rows < per) {
        let n = take(rest, per - last.rows);
        let path = dir.join(&last.file);
        let folder = open_folder(&folder_path)?;
        let f = fs::open_at(&folder, &folder_path, &base(&last.file), fs::At::ReadWrite)?;
        let m = f.metadata().at(&path)?;
        if std::os::unix::fs::MetadataExt::nlink(&m) > 1 {
            return Err(NpkError::InvalidOperation(format!(
                "a segment of array '{}' has other hard links: appending in place would change \
                 every copy; save the array again to give it files of its own",
                a.name
            )));
        }
        if m.len() > last.bytes {
            // Leftover of an append whose commit never happened.
            fs::set_len(&f, &path, last.bytes)?;
        }
        let (now, later) = rest.split_at((n * row) as usize);
        fs::write_at(&f, &path, now, last.bytes)?;
        store.mark_dirty(path.clone());
        txn.wrote_in_place(Arc::new(f), path);
        last.rows += n;
        last.bytes += n * row;
        rest = later;
    }
    if !rest.is_empty() {
        let folder = folder_path.clone();
        let created = match fs::entry(&folder)? {
            None => {
                std::fs::create_dir(&folder).at(&folder)?;
                true
            }
            Some(_) => false,
        };
        let dirf = open_folder(&folder)?;
        let mut next = match manifest.segments.last() {
            Some(s) => names::segment_number(&stem, &s.file).expect("checked when decoded") + 1,
            None => 0,
        };
        while !rest.is_empty() {
            let n = take(rest, per).max(1);
            let file = names::segment_file(&stem, next);
            if names::segment_number(&stem, &file) != Some(next) {
                return Err(NpkError::InvalidOperation(format!(
                    "array '{}' has as many segments as a manifest can name; call \
                     update('{}') to store it as one file",
                    a.name, a.name
                )));
            }
            let path = dir.join(&file);
            // No committed manifest names it: a leftover of a killed append, or nothing. It is
            // removed (a link or another file's hard link there is never written through)
            // and created anew.
            let name = base(&file);
            // Removed relative to the folder (`unlinkat` never follows a link).
            unlink_at(&dirf, &path, &name)?;
            let f = fs::open_at(&dirf, &folder, &name, fs::At::CreateNew)?;
            let (now, later) = rest.split_at((n * row) as usize);
            fs::write_at(&f, &path, now, 0)?;
            store.mark_dirty(path.clone());
            txn.wrote_in_place(Arc::new(f), path);
            manifest.segments.push(Segment {
                file,
                rows: n,
                bytes: n * row,
            });
            rest = later;
            next += 1;
        }
        if txn.durable() {
            // The new entries are durable before the manifest names them.
            fs::sync_dir(&folder)?;
            if created {
                fs::sync_dir(&dir)?;
            }
        }
        store.mark_dirty(folder);
    }
    let bytes = manifest.encode();
    if bytes.len() as u64 > crate::format::segments::MAX_MANIFEST_BYTES {
        return Err(NpkError::InvalidOperation(format!(
            "array '{}' would need a segment manifest over 16 MiB; call update('{}') to store \
             it as one file",
            a.name, a.name
        )));
    }
    let tmp = txn.stage_file(&a.data_file);
    fs::write_new(&tmp, &bytes, false)?;
    store.mark_dirty(dir.join(&a.data_file));
    Ok(())
}

/// Removes `name` from the folder `dir` if it is there (the entry itself, never what a link
/// there points to).
fn unlink_at(dir: &std::fs::File, path: &Path, name: &str) -> NpkResult<()> {
    use std::os::fd::AsRawFd;
    let c = std::ffi::CString::new(name).map_err(|_| NpkError::corrupt(path, "has a NUL"))?;
    // SAFETY: a valid directory descriptor and a NUL-terminated name.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(NpkError::io(path, e));
        }
    }
    Ok(())
}

/// In `txn`: array `a`'s rows move to one data file (`data_<stem>.npkd`); its manifest is
/// removed at the commit and its segment folder after it. Returns the new record.
fn to_single_file(txn: &mut Txn<'_>, a: &ArrayMetadata) -> NpkResult<ArrayMetadata> {
    let dir = txn.dir().to_owned();
    let segs = open(&dir, &dir.join(&a.data_file), a)?;
    let single = names::data_file(stem(a));
    let tmp = txn.stage_new_file(&single);
    let out = fs::create_new(&tmp)?;
    let mut at = 0;
    for s in &segs.open {
        crate::io::copy_range(&s.file, 0, &out, at, s.bytes).at(&s.path)?;
        at += s.bytes;
    }
    txn.stage_remove(&a.data_file);
    txn.remove_folder_after(names::segment_dir(stem(a)), a.data_file.clone());
    let mut r = a.clone();
    r.data_file = single;
    Ok(r)
}

impl Store {
    /// Turns each of the named arrays that is kept in segments into one data file holding
    /// the same physical rows (deleted ones, their bitmap and index stay valid), in one
    /// commit. Arrays not kept in segments, or missing, are left alone.
    pub fn to_single_files(&self, names: &[&str]) -> NpkResult<()> {
        let meta = self.metadata_file()?;
        let any = |m: &crate::format::metadata::MetadataFile| {
            names
                .iter()
                .any(|n| m.arrays.get(*n).is_some_and(is_segmented))
        };
        if !any(&meta) {
            return Ok(());
        }
        self.mutate(|txn| {
            for n in names {
                let Some(a) = txn.meta.arrays.get(*n).filter(|a| is_segmented(a)).cloned() else {
                    continue;
                };
                let r = to_single_file(txn, &a)?;
                self.mark_dirty(txn.dir().join(&r.data_file));
                txn.meta_mut().arrays.insert(a.name.clone(), r);
            }
            Ok(())
        })
    }
}

/// Removes every segment folder of `dir` whose manifest neither a record (`current`, the
/// data files the metadata names) nor a version kept by history names: leftovers of a kill
/// between a commit and its folder's removal, or of versions since collected.
pub(crate) fn reap_folders<'a>(dir: &Path, current: impl Iterator<Item = &'a str>) {
    let named: std::collections::HashSet<&str> = current.collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Some(n) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(stem) = n
            .strip_prefix("data_")
            .and_then(|s| s.strip_suffix("_segments"))
        else {
            continue;
        };
        let manifest = names::manifest_file(stem);
        if !stem.is_empty() && !named.contains(manifest.as_str()) {
            remove_folder(dir, &n, &manifest);
        }
    }
}

/// After a commit that removed the manifest `manifest`: removes its segment folder unless a
/// version kept by history still names it (best effort; a leftover folder is harmless).
pub(crate) fn remove_folder(dir: &Path, folder: &str, manifest: &str) {
    let kept = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_str()
                .and_then(parse_kept_name)
                .is_some_and(|(_, f)| f == manifest)
        });
    if kept || fs::entry(&dir.join(manifest)).ok().flatten().is_some() {
        return;
    }
    let path = dir.join(folder);
    match fs::entry(&path) {
        Ok(Some(m)) if m.file_type().is_dir() => {
            let _ = std::fs::remove_dir_all(&path);
        }
        _ => {}
    }
}
