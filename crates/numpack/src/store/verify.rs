//! `verify`: check every invariant of the format without changing anything.

use super::commit::undo::{self, UNDO_IN_LOCK_FILE};
use super::commit::{journal, JOURNAL, METADATA};
use super::lock::{FLAGS, FLAG_UNDO, HEADER_BYTES, LOCK_FILE, UNDO_LEN};
use super::state::MAX_METADATA_BYTES;
use super::Store;
use crate::format::metadata::MetadataFile;
use crate::format::names;
use crate::io::fs;
use crate::read::deleted::{check_row_state, fold_zero_width, is_zero_width, read_bitmap};
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
        || names::is_index_file(n)
        || names::is_attrs_file(n)
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
        match pending_journal(dir) {
            Ok(()) => r.notes.push(format!(
                "{JOURNAL}: an interrupted mutation will be finished by the next open"
            )),
            Err(e) => r.problems.push(e),
        }
    }
    match pending_undo(dir) {
        Ok(false) => {}
        Ok(true) => r.notes.push(format!(
            "{LOCK_FILE}: an interrupted row replacement will be rolled back by the next writer"
        )),
        Err(e) => r.problems.push(e),
    }
    let mut known = HashSet::new();
    for a in meta.arrays.values() {
        known.insert(a.data_file.clone());
        let path = dir.join(&a.data_file);
        if names::is_manifest(&a.data_file) {
            // The manifest, each segment's name, rows and length.
            match crate::read::segments::open(dir, &path, a) {
                Ok(s) => {
                    let extra: u64 = s
                        .open
                        .iter()
                        .filter_map(|o| Some(o.file.metadata().ok()?.len().saturating_sub(o.bytes)))
                        .sum();
                    if extra > 0 {
                        r.notes.push(format!(
                            "array '{}': {extra} uncommitted bytes past the ends of its segments \
                             (trimmed by the next append)",
                            a.name
                        ));
                    }
                }
                Err(e) => r
                    .problems
                    .push(format!("array '{}': {}", a.name, reason(e))),
            }
        } else {
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
        }
        if a.compression != 0 {
            r.problems.push(format!(
                "array '{}': compressed data (algorithm {}) cannot be read",
                a.name, a.compression
            ));
        }
        known.extend(names::attrs_file(&a.data_file));
        if let Err(e) = crate::store::attrs::read(dir, a) {
            r.problems
                .push(format!("array '{}': {}", a.name, reason(e)));
        }
        known.extend(names::index_file(&a.data_file));
        known.extend(names::index_log_file(&a.data_file));
        match crate::store::index::check(dir, a) {
            Ok(Some(note)) => r.notes.push(format!("array '{}': {note}", a.name)),
            Ok(None) => {}
            Err(e) => r
                .problems
                .push(format!("array '{}': index: {}", a.name, reason(e))),
        }
        let Some(b) = names::bitmap_file(&a.data_file) else {
            continue;
        };
        known.insert(b.clone());
        let bpath = dir.join(&b);
        if matches!(fs::entry(&bpath), Ok(None)) {
            continue;
        }
        if a.shape.is_empty() {
            r.problems
                .push(format!("array '{}': a 0-d array has a bitmap {b}", a.name));
            continue;
        }
        if is_zero_width(a) {
            // Counted (and bounded) as every reader counts it.
            if let Err(e) = fold_zero_width(dir, a) {
                r.problems
                    .push(format!("array '{}': {b}: {}", a.name, reason(e)));
            }
            continue;
        }
        // The rows are checked against the data before a bitmap is sized by them.
        if let Err(e) = check_row_state(dir, a) {
            r.problems.push(format!(
                "array '{}': {b} not checked: {}",
                a.name,
                reason(e)
            ));
            continue;
        }
        if let Err(e) = read_bitmap(dir, a) {
            r.problems
                .push(format!("array '{}': {b}: {}", a.name, reason(e)));
        }
    }
    for n in entries {
        let ours = names::is_safe_data_file(&n)
            || names::is_bitmap_file(&n)
            || names::is_index_file(&n)
            || names::is_attrs_file(&n);
        if ours && !known.contains(&n) {
            r.notes.push(format!(
                "{n}: not referenced by the metadata (left by an interrupted save)"
            ));
        }
    }
    r
}

/// What is wrong, without the path the caller names already.
fn reason(e: crate::error::NpkError) -> String {
    match e {
        crate::error::NpkError::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Whether the journal could be replayed: it decodes as recovery would decode it.
fn pending_journal(dir: &Path) -> Result<(), String> {
    let path = dir.join(JOURNAL);
    let bytes = fs::read_bounded(&path, MAX_JOURNAL_CHECKED)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let why = match journal::kind(&bytes) {
        Ok(journal::KIND_REDO) => journal::decode(&bytes).err(),
        Ok(_) => undo::decode(&bytes).err(),
        Err(e) => Some(e),
    };
    why.map_or(Ok(()), |w| {
        Err(format!(
            "{JOURNAL}: {w}: the next open cannot finish or roll back its mutation"
        ))
    })
}

/// Journals longer than this are not decoded by `verify` (they are by recovery).
const MAX_JOURNAL_CHECKED: u64 = 1 << 30;

/// Whether the lock file holds a live undo record, after checking the header as recovery
/// does (the undo length within its bounds, the record decoding).
fn pending_undo(dir: &Path) -> Result<bool, String> {
    let path = dir.join(LOCK_FILE);
    let Some(bytes) = fs::read_bounded(&path, HEADER_BYTES + UNDO_IN_LOCK_FILE as u64 + 4096)
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    let word = |i: usize| {
        bytes
            .get(i * 8..i * 8 + 8)
            .map_or(0, |w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
    };
    if word(FLAGS) & FLAG_UNDO == 0 {
        return Ok(false);
    }
    let area = undo::lock_area(word(UNDO_LEN), bytes.len() as u64)
        .map_err(|w| format!("{LOCK_FILE}: {w}"))?;
    undo::decode(&bytes[area]).map_err(|w| {
        format!("{LOCK_FILE}: the live undo record does not decode ({w}): the next open cannot roll it back")
    })?;
    Ok(true)
}

impl Store {
    /// [`verify_dir`] on this store.
    pub fn verify(&self) -> Report {
        verify_dir(self.dir())
    }
}
