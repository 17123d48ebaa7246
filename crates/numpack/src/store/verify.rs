//! `verify`: check every invariant of the format without changing anything.

use super::commit::{JOURNAL, METADATA};
use super::lock::LOCK_FILE;
use super::state::MAX_METADATA_BYTES;
use super::Store;
use crate::format::bitmap::Bitmap;
use crate::format::metadata::MetadataFile;
use crate::format::names;
use crate::io::fs;
use crate::read::deleted::is_zero_width;
use std::collections::HashSet;
use std::path::Path;

/// What [`verify_dir`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Violations of the format: the store is damaged.
    pub problems: Vec<String>,
    /// Harmless findings (leftovers that the next writer cleans up).
    pub notes: Vec<String>,
}

fn is_store_file(n: &str) -> bool {
    n == METADATA
        || n == LOCK_FILE
        || n == JOURNAL
        || names::is_safe_data_file(n)
        || names::is_bitmap_file(n)
}

/// Checks a store directory: every store file is a regular file (no links, FIFOs or
/// directories), the metadata decodes (no two records share a data file), every data file
/// exists and holds at least the committed bytes, every bitmap decodes and fits, no journal
/// is pending. Read-only: it takes no lock and recovers nothing.
pub fn verify_dir(dir: &Path) -> Report {
    let mut r = Report::default();
    let mut entries: Vec<String> = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(list) => {
            for e in list.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if is_store_file(&n) {
                    if let Err(err) = fs::file_len(&dir.join(&n)) {
                        r.problems.push(err.to_string());
                        continue;
                    }
                }
                entries.push(n);
            }
        }
        Err(e) => {
            r.problems.push(format!("{}: {e}", dir.display()));
            return r;
        }
    }
    let meta = match fs::read_bounded(&dir.join(METADATA), MAX_METADATA_BYTES) {
        Ok(Some(b)) => match MetadataFile::decode(&b) {
            Ok(m) => m,
            Err(e) => {
                r.problems.push(format!("{METADATA}: {e}"));
                return r;
            }
        },
        Ok(None) => {
            r.problems.push(format!("{METADATA}: missing"));
            return r;
        }
        Err(e) => {
            r.problems.push(e.to_string());
            return r;
        }
    };
    if entries.iter().any(|n| n == JOURNAL) {
        r.notes.push(format!(
            "{JOURNAL}: an interrupted mutation will be finished by the next open"
        ));
    }
    if super::lock::pending_undo(dir) {
        r.notes.push(format!(
            "{LOCK_FILE}: an interrupted row replacement will be rolled back by the next writer"
        ));
    }
    let mut known = HashSet::new();
    for a in meta.arrays.values() {
        known.insert(a.data_file.clone());
        let path = dir.join(&a.data_file);
        match fs::file_len(&path) {
            Err(e) => r.problems.push(format!("array '{}': {e}", a.name)),
            Ok(None) => r
                .problems
                .push(format!("array '{}': {} is missing", a.name, a.data_file)),
            Ok(Some(len)) if len < a.size_bytes => r.problems.push(format!(
                "array '{}': {} is {len} bytes, metadata says {}",
                a.name, a.data_file, a.size_bytes
            )),
            Ok(Some(len)) if len > a.size_bytes => r.notes.push(format!(
                "array '{}': {} uncommitted bytes past the end (trimmed by the next append)",
                a.name,
                len - a.size_bytes
            )),
            Ok(Some(_)) => {}
        }
        if a.compression != 0 {
            r.problems.push(format!(
                "array '{}': compressed data (algorithm {}) cannot be read",
                a.name, a.compression
            ));
        }
        let Some(b) = names::bitmap_file(&a.data_file) else {
            continue;
        };
        known.insert(b.clone());
        let bpath = dir.join(&b);
        let max = Bitmap::max_file_len(if is_zero_width(a) { 1 << 32 } else { a.rows() });
        match fs::read_bounded(&bpath, max) {
            Ok(None) => {}
            Err(e) => r.problems.push(format!("array '{}': {e}", a.name)),
            Ok(Some(_)) if a.shape.is_empty() => r
                .problems
                .push(format!("array '{}': a 0-d array has a bitmap {b}", a.name)),
            Ok(Some(bytes)) => {
                let decoded = if is_zero_width(a) {
                    Bitmap::count_active(&bytes, a.rows()).map(|_| ())
                } else {
                    Bitmap::decode(&bytes, a.rows()).map(|_| ())
                };
                if let Err(e) = decoded {
                    r.problems.push(format!("array '{}': {b}: {e}", a.name));
                }
            }
        }
    }
    for n in entries {
        let ours = names::is_safe_data_file(&n) || names::is_bitmap_file(&n);
        if ours && !known.contains(&n) {
            r.notes.push(format!(
                "{n}: not referenced by the metadata (left by an interrupted save)"
            ));
        }
    }
    r
}

impl Store {
    /// [`verify_dir`] on this store.
    pub fn verify(&self) -> Report {
        verify_dir(self.dir())
    }
}
