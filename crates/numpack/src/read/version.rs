//! Reading an older version: its metadata, and each array's data, bitmap and overwritten rows,
//! rebuilt from the current files and the records of the commits after it.
//!
//! Records are applied newest first for the metadata (each holds the records it replaced).
//! For an array's bytes they are walked oldest first from the version on: the first commit
//! that replaced or removed its data file kept the file as it was (a hard link), and rows
//! overwritten in place before that are taken from the oldest record that holds them.

use super::snapshot::ArraySnapshot;
use crate::error::{NpkError, NpkResult};
use crate::format::bitmap::Bitmap;
use crate::format::history::{kept_name, Record};
use crate::format::metadata::{ArrayMetadata, MetadataFile};
use crate::format::names;
use crate::io::fs;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The metadata as it was at `version`, from the current one and the records after it
/// (versions ascending; aborted records change nothing).
pub fn meta_at(current: &MetadataFile, records: &[&Record], version: u64) -> MetadataFile {
    let mut m = current.clone();
    for r in records.iter().rev() {
        if r.version <= version || r.aborted {
            continue;
        }
        for (name, before) in &r.arrays {
            match before {
                Some(a) => {
                    m.arrays.insert(name.clone(), a.clone());
                }
                None => {
                    m.arrays.remove(name);
                }
            }
        }
    }
    m
}

/// Where one file of an array was at a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The file of that name now.
    Current,
    /// Kept under this name by a later commit.
    Kept(String),
    /// It did not exist.
    Absent,
}

/// How to read one array at a version.
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    /// The data file.
    pub data: Option<Source>,
    /// The bitmap file.
    pub bitmap: Option<Source>,
    /// Overwritten rows: physical row → old bytes (the oldest record's).
    pub rows: HashMap<u64, Vec<u8>>,
    /// Bitmap words written in place since: word index (the header's two included) → old
    /// bytes (the oldest record's).
    pub bitmap_words: HashMap<u64, Vec<u8>>,
    /// Names of the kept files it reads (a later record keeping one of them changes nothing).
    pub files: Vec<String>,
}

/// Resolves where array `a` (its record at `version`) was, from the records after it.
pub fn lineage(records: &[&Record], version: u64, a: &ArrayMetadata) -> Lineage {
    let mut out = Lineage::default();
    out.extend(records, version, a);
    out
}

impl Lineage {
    /// Takes in records newer than every record seen so far (versions ascending). What an
    /// older record said wins, so later records only fill in what is still unknown; returns
    /// whether anything changed.
    pub fn extend(&mut self, records: &[&Record], version: u64, a: &ArrayMetadata) -> bool {
        let data = a.data_file.as_str();
        let bitmap = names::bitmap_file(data).unwrap_or_default();
        let mut changed = false;
        // Rows past the version's row count (appended after it) are not part of it.
        let rows = a.rows();
        for r in records {
            if r.version <= version || r.aborted {
                continue;
            }
            if self.data.is_none() {
                for s in r.rows.iter().filter(|s| s.file == data) {
                    for (row, old) in s.iter().filter(|(row, _)| *row < rows) {
                        if let std::collections::hash_map::Entry::Vacant(e) = self.rows.entry(row) {
                            e.insert(old.to_vec());
                            changed = true;
                        }
                    }
                }
            }
            if self.bitmap.is_none() {
                for s in r.rows.iter().filter(|s| s.file == bitmap) {
                    for (word, old) in s.iter() {
                        if let std::collections::hash_map::Entry::Vacant(e) =
                            self.bitmap_words.entry(word)
                        {
                            e.insert(old.to_vec());
                            changed = true;
                        }
                    }
                }
            }
            for (f, kept) in &r.files {
                let slot = if f == data {
                    &mut self.data
                } else if *f == bitmap {
                    &mut self.bitmap
                } else {
                    continue;
                };
                if slot.is_none() {
                    *slot = Some(if *kept {
                        Source::Kept(kept_name(r.version, f))
                    } else {
                        Source::Absent
                    });
                    changed = true;
                }
            }
        }
        if changed {
            self.files = [&self.data, &self.bitmap]
                .into_iter()
                .filter_map(|s| match s {
                    Some(Source::Kept(k)) => Some(k.clone()),
                    _ => None,
                })
                .collect();
        }
        changed
    }
}

/// A bitmap file as it was, from its bytes now and the old bytes of the words written in
/// place since: the words put back, then the file cut to the length its old header says.
fn old_bitmap(mut b: Vec<u8>, words: &HashMap<u64, Vec<u8>>) -> Result<Vec<u8>, String> {
    for (&w, old) in words {
        let at = usize::try_from(w.saturating_mul(8)).unwrap_or(usize::MAX);
        match b.get_mut(at..at.saturating_add(8)) {
            Some(dst) if old.len() == 8 => dst.copy_from_slice(old),
            _ => {
                return Err(format!(
                    "says bitmap word {w} was written, which is not there"
                ))
            }
        }
    }
    if b.len() >= 16 {
        let rows = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        let len = Bitmap::max_file_len(rows);
        if len < b.len() as u64 {
            b.truncate(len as usize);
        }
    }
    Ok(b)
}

fn path_of(dir: &Path, src: &Option<Source>, name: &str) -> Option<PathBuf> {
    match src {
        None | Some(Source::Current) => Some(dir.join(name)),
        Some(Source::Kept(k)) => Some(dir.join(k)),
        Some(Source::Absent) => None,
    }
}

/// An array as it was at a version: a mapped view of the file that held it, and the rows
/// overwritten since, patched into every copy.
#[derive(Debug)]
pub struct VersionedArray {
    /// The mapped view (record, data and bitmap of that version).
    pub view: ArraySnapshot,
    /// Overwritten rows: physical row → bytes at the version.
    pub rows: HashMap<u64, Vec<u8>>,
    /// One bit per physical row: set when `rows` holds it (a gather tests a bit per row
    /// instead of hashing every index).
    marks: Vec<u64>,
}

impl VersionedArray {
    /// Opens array `a` (its record at the version) as `lin` says.
    pub fn open(dir: &Path, a: &ArrayMetadata, lin: Lineage) -> NpkResult<Self> {
        let data_path = path_of(dir, &lin.data, &a.data_file).ok_or_else(|| {
            NpkError::corrupt(
                dir.join(crate::format::history::LOG_FILE),
                format!("says the data file of array '{}' did not exist", a.name),
            )
        })?;
        // The record's row count is checked against the data file before it sizes a bitmap.
        let mut data_len = 0;
        if names::is_manifest(&a.data_file) {
            // Segments are checked when they are opened; appends only add rows after them.
            data_len = a.size_bytes;
        } else if let Some(m) = fs::entry(&data_path)? {
            super::deleted::check_file_len(&data_path, m.len(), a)?;
            data_len = m.len();
        }
        let bitmap_name = names::bitmap_file(&a.data_file).unwrap_or_default();
        let bitmap = match path_of(dir, &lin.bitmap, &bitmap_name) {
            None => None,
            Some(p) if a.row_bytes() > 0 => {
                let bytes = if lin.bitmap_words.is_empty() {
                    fs::read_bounded(&p, Bitmap::max_file_len(a.rows()))?
                } else {
                    // Appends since may have grown it in place: bounded by the rows the data
                    // file holds now.
                    let now_rows = data_len / a.row_bytes();
                    fs::read_bounded(&p, Bitmap::max_file_len(now_rows.max(a.rows())))?
                        .map(|b| old_bitmap(b, &lin.bitmap_words))
                        .transpose()
                        .map_err(|r| {
                            NpkError::corrupt(dir.join(crate::format::history::LOG_FILE), r)
                        })?
                };
                match bytes {
                    None => None,
                    Some(b) => {
                        Some(Bitmap::decode(&b, a.rows()).map_err(|r| NpkError::corrupt(&p, r))?)
                    }
                }
            }
            Some(_) => None,
        };
        let rb = a.row_bytes() as usize;
        if let Some((r, b)) = lin.rows.iter().find(|(_, b)| b.len() != rb) {
            return Err(NpkError::corrupt(
                dir.join(crate::format::history::LOG_FILE),
                format!(
                    "row {r} of array '{}' has {} bytes, not {rb}",
                    a.name,
                    b.len()
                ),
            ));
        }
        // Rows past the version's row count were appended later: not part of it.
        let mut rows = lin.rows;
        rows.retain(|r, _| *r < a.rows());
        let view = ArraySnapshot::open_path(data_path, a.clone(), bitmap)?;
        let mut marks = vec![
            0u64;
            if rows.is_empty() {
                0
            } else {
                a.rows().div_ceil(64) as usize
            }
        ];
        for &r in rows.keys() {
            marks[(r / 64) as usize] |= 1 << (r % 64);
        }
        Ok(VersionedArray { view, rows, marks })
    }

    /// Writes the rows overwritten since the version over a copy of physical `rows`.
    pub fn patch_rows(&self, rows: &[u64], dst: &mut [u8]) {
        if self.rows.is_empty() {
            return;
        }
        let rb = self.view.row_bytes();
        for (k, &r) in rows.iter().enumerate() {
            let marked = self
                .marks
                .get((r / 64) as usize)
                .is_some_and(|w| w & (1 << (r % 64)) != 0);
            if let Some(old) = marked.then(|| self.rows.get(&r)).flatten() {
                dst[k * rb..(k + 1) * rb].copy_from_slice(old);
            }
        }
    }

    /// Copies the logical rows `start..stop` into `dst`, patched.
    pub fn range_into(&self, start: u64, stop: u64, dst: &mut [u8]) -> NpkResult<()> {
        self.view.range_into(start, stop, dst)?;
        if self.rows.is_empty() {
            return Ok(());
        }
        let rb = self.view.row_bytes();
        match self.view.bitmap() {
            // Whichever is shorter is walked, the range (testing the marks) or the patched
            // rows, so a pass in batches costs O(rows) however many rows are patched.
            None if stop - start <= self.rows.len() as u64 => {
                let rows: Vec<u64> = (start..stop).collect();
                self.patch_rows(&rows, dst);
            }
            None => {
                for (&r, old) in &self.rows {
                    if r >= start && r < stop {
                        let k = (r - start) as usize;
                        dst[k * rb..(k + 1) * rb].copy_from_slice(old);
                    }
                }
            }
            Some(b) => {
                let rows: Vec<u64> = (start..stop).map(|j| b.select(j)).collect();
                self.patch_rows(&rows, dst);
            }
        }
        Ok(())
    }

    /// Copies the logical rows `indices` (negative from the end) into `dst`, patched.
    pub fn gather_into(&self, indices: &[i64], dst: &mut [u8]) -> NpkResult<()> {
        let rows = self.view.resolve(indices)?;
        self.view.gather_physical(&rows, dst)?;
        self.patch_rows(&rows, dst);
        Ok(())
    }
}

impl VersionedArray {
    /// Copies a selection's rows (resolved by `view.select`) into `dst`, patched.
    pub fn copy_selected(&self, s: &super::snapshot::Selected, dst: &mut [u8]) -> NpkResult<()> {
        use super::snapshot::Selected;
        match s {
            Selected::Range(a, b) => self.range_into(*a, *b, dst),
            Selected::Rows(rows) => {
                self.view.gather_physical(rows, dst)?;
                self.patch_rows(rows, dst);
                Ok(())
            }
            Selected::Empty(_) => self.view.copy_selected(s, dst),
        }
    }
}
