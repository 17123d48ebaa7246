//! `verify`: check every invariant of the format without changing anything.

use super::commit::{JOURNAL, METADATA};
use super::Store;
use crate::format::bitmap::Bitmap;
use crate::format::metadata::MetadataFile;
use crate::format::names;
use std::fs;
use std::path::Path;

/// What [`verify_dir`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Violations of the format: the store is damaged.
    pub problems: Vec<String>,
    /// Harmless findings (leftovers that the next writer cleans up).
    pub notes: Vec<String>,
}

/// Checks a store directory: the metadata decodes, every data file exists and holds at least
/// the committed bytes, every bitmap decodes and fits, no journal is pending. Read-only: it
/// takes no lock and recovers nothing.
pub fn verify_dir(dir: &Path) -> Report {
    let mut r = Report::default();
    let meta_path = dir.join(METADATA);
    let meta = match fs::read(&meta_path) {
        Ok(b) => match MetadataFile::decode(&b) {
            Ok(m) => m,
            Err(e) => {
                r.problems.push(format!("{METADATA}: {e}"));
                return r;
            }
        },
        Err(e) => {
            r.problems.push(format!("{METADATA}: {e}"));
            return r;
        }
    };
    if dir.join(JOURNAL).exists() {
        r.notes.push(format!(
            "{JOURNAL}: an interrupted mutation will be finished by the next open"
        ));
    }
    if super::lock::pending_undo(dir) {
        r.notes.push(format!(
            "{}: an interrupted row replacement will be rolled back by the next writer",
            super::lock::LOCK_FILE
        ));
    }
    let mut known = Vec::new();
    for a in meta.arrays.values() {
        if !names::is_safe_data_file(&a.data_file) {
            r.problems.push(format!(
                "array '{}': unsafe data file name {:?}",
                a.name, a.data_file
            ));
            continue;
        }
        known.push(a.data_file.clone());
        let path = dir.join(&a.data_file);
        match fs::metadata(&path) {
            Err(e) => r
                .problems
                .push(format!("array '{}': {}: {e}", a.name, a.data_file)),
            Ok(m) if m.len() < a.size_bytes => r.problems.push(format!(
                "array '{}': {} is {} bytes, metadata says {}",
                a.name,
                a.data_file,
                m.len(),
                a.size_bytes
            )),
            Ok(m) if m.len() > a.size_bytes => r.notes.push(format!(
                "array '{}': {} uncommitted bytes past the end (trimmed by the next append)",
                a.name,
                m.len() - a.size_bytes
            )),
            Ok(_) => {}
        }
        if a.compression != 0 {
            r.problems.push(format!(
                "array '{}': compressed data (algorithm {}) cannot be read",
                a.name, a.compression
            ));
        }
        if let Some(b) = names::bitmap_file(&a.data_file) {
            known.push(b.clone());
            if let Ok(bytes) = fs::read(dir.join(&b)) {
                if a.shape.is_empty() {
                    r.problems
                        .push(format!("array '{}': a 0-d array has a bitmap {b}", a.name));
                } else if let Err(e) = Bitmap::decode(&bytes, a.rows()) {
                    r.problems.push(format!("array '{}': {b}: {e}", a.name));
                }
            }
        }
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let ours = (n.starts_with("data_") && n.ends_with(".npkd"))
                || (n.starts_with("deleted_") && n.ends_with(".npkb"));
            if ours && !known.contains(&n) {
                r.notes.push(format!(
                    "{n}: not referenced by the metadata (left by an interrupted save)"
                ));
            }
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
