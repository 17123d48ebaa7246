//! `save`: create or replace arrays whole.

use super::{commit::Txn, now_micros, Store};
use crate::dtype::DataType;
use crate::error::{NpkError, NpkResult};
use crate::format::metadata::{check_shape, ArrayMetadata};
use crate::format::names;
use crate::io::fs;
use std::collections::HashSet;
use std::path::PathBuf;

/// One array to save: little-endian C-order bytes of `shape` elements of `dtype`.
#[derive(Debug, Clone, Copy)]
pub struct SaveItem<'a> {
    /// Array name (any non-empty string without NUL).
    pub name: &'a str,
    /// Element type.
    pub dtype: DataType,
    /// Shape; empty for a 0-d array.
    pub shape: &'a [u64],
    /// `product(shape) * itemsize` bytes.
    pub data: &'a [u8],
}

impl SaveItem<'_> {
    fn check(&self) -> NpkResult<()> {
        names::validate(self.name)?;
        let need = check_shape(self.shape, self.dtype)
            .map_err(|e| NpkError::InvalidShape(format!("array '{}': {e}", self.name)))?;
        if need != self.data.len() as u64 {
            return Err(NpkError::InvalidShape(format!(
                "array '{}': shape {:?} of {} needs {need} bytes, got {}",
                self.name,
                self.shape,
                self.dtype,
                self.data.len()
            )));
        }
        Ok(())
    }
}

/// A data file name for a new array that no other record uses.
/// Files named by the committed metadata count as taken too: a new file is renamed onto its
/// name before the commit point, so it must not replace a file that a record being removed
/// in the same commit still names.
pub(crate) fn fresh_data_file(txn: &Txn, name: &str) -> String {
    // By stem: a manifest `data_<stem>.npkseg` takes `data_<stem>.npkd` too.
    let taken: HashSet<&str> = txn
        .meta
        .arrays
        .values()
        .map(|a| a.data_file.as_str())
        .chain(txn.committed_files())
        .map(|f| names::data_stem(f).unwrap_or(f))
        .collect();
    (0u32..)
        .map(|salt| names::stem(name, salt))
        .find(|s| !taken.contains(s.as_str()))
        .map(|s| names::data_file(&s))
        .expect("some salt is free")
}

/// The data file an array saved in `txn` ends up in: its current file when it exists, else a
/// fresh name. Stages the removal of the bitmap that would otherwise apply to it.
pub(crate) fn final_data_file(txn: &mut Txn, name: &str) -> String {
    match txn.meta.arrays.get(name).map(|a| a.data_file.clone()) {
        Some(manifest) if names::is_manifest(&manifest) => {
            // numpack writes one file: the manifest goes, and its segments after the commit.
            let stem = names::data_stem(&manifest)
                .expect("a manifest has a stem")
                .to_owned();
            if let Some(bitmap) = names::bitmap_file(&manifest) {
                txn.stage_remove(&bitmap);
            }
            super::index::forget_files(txn, &manifest);
            txn.stage_remove(&manifest);
            txn.remove_folder_after(names::segment_dir(&stem), manifest);
            names::data_file(&stem)
        }
        Some(file) => {
            if let Some(bitmap) = names::bitmap_file(&file) {
                txn.stage_remove(&bitmap);
            }
            // The array is new: an index of the old rows would be stale.
            super::index::forget_files(txn, &file);
            file
        }
        None => {
            let file = fresh_data_file(txn, name);
            super::attrs::forget(txn, &file);
            // A stale bitmap of a killed earlier array must not apply to this one.
            if let Some(bitmap) = names::bitmap_file(&file) {
                if !matches!(fs::entry(&txn.dir().join(&bitmap)), Ok(None)) {
                    txn.stage_remove(&bitmap);
                }
            }
            super::index::forget_files(txn, &file);
            file
        }
    }
}

/// Whether saving `name` renames over a data file of its own (not when it is new, nor when
/// it is kept in segments: its one-file name is then unreferenced).
fn replaces_file(txn: &Txn, name: &str) -> bool {
    txn.meta
        .arrays
        .get(name)
        .is_some_and(|a| !names::is_manifest(&a.data_file))
}

/// Where the bytes of an array saved in `txn` go: a new temporary file, renamed at commit
/// onto the array's data file (over the old one under the journal, or onto a fresh name).
pub(crate) fn target_file(txn: &mut Txn, name: &str) -> (String, PathBuf) {
    let exists = replaces_file(txn, name);
    let file = final_data_file(txn, name);
    let path = if exists {
        txn.stage_file(&file)
    } else {
        txn.stage_new_file(&file)
    };
    (file, path)
}

/// [`target_file`] for a temporary that already exists (a streaming import's).
pub(crate) fn adopt_file(txn: &mut Txn, name: &str, tmp: &std::path::Path) -> String {
    let exists = replaces_file(txn, name);
    let file = final_data_file(txn, name);
    if exists {
        txn.adopt(tmp, &file);
    } else {
        txn.adopt_new(tmp, &file);
    }
    file
}

impl Store {
    /// Creates or replaces arrays whole (new shape and dtype allowed; deleted rows forgotten).
    /// All items are validated before anything is written; the call is all-or-nothing.
    pub fn save(&self, items: &[SaveItem<'_>]) -> NpkResult<()> {
        for it in items {
            it.check()?;
        }
        super::check_unique(items.iter().map(|it| it.name))?;
        if items.is_empty() {
            return Ok(());
        }
        self.mutate(|txn| {
            txn.op = crate::format::history::Op::Save;
            let now = now_micros();
            let mut jobs: Vec<(PathBuf, &[u8])> = Vec::with_capacity(items.len());
            for it in items {
                let (file, path) = target_file(txn, it.name);
                self.mark_dirty(txn.dir().join(&file));
                let record = ArrayMetadata::new(it.name, it.shape.to_vec(), it.dtype, file, now);
                txn.meta_mut().arrays.insert(it.name.to_owned(), record);
                jobs.push((path, it.data));
            }
            let durable = txn.durable();
            let write = |(path, data): &(PathBuf, &[u8])| -> NpkResult<()> {
                fs::write_new(path, data, durable).map(|_| ())
            };
            #[cfg(feature = "rayon")]
            {
                use rayon::prelude::*;
                if jobs.len() > 1 && items.iter().map(|i| i.data.len()).sum::<usize>() > 8 << 20 {
                    jobs.par_iter().try_for_each(write)?;
                } else {
                    jobs.iter().try_for_each(write)?;
                }
            }
            #[cfg(not(feature = "rayon"))]
            jobs.iter().try_for_each(write)?;
            Ok(())
        })
    }
}
