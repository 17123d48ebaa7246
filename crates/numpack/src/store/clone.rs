//! `clone`: an independent, compacted copy of an array under a new name.

use super::save::target_file;
use super::{now_micros, Store};
use crate::error::{NpkError, NpkResult};
use crate::format::metadata::ArrayMetadata;
use crate::format::names;
use crate::read::snapshot::ArraySnapshot;

impl Store {
    /// Copies the logical rows of `source` into a new array `target`.
    pub fn clone_array(&self, source: &str, target: &str) -> NpkResult<()> {
        names::validate(target)?;
        self.mutate(|txn| {
            txn.op = crate::format::history::Op::Clone;
            let a = txn.record(source)?;
            if txn.meta.arrays.contains_key(target) {
                return Err(NpkError::InvalidOperation(format!(
                    "Target array '{target}' already exists"
                )));
            }
            let snap = ArraySnapshot::open(txn.dir(), a.clone())?;
            let bytes = snap.to_bytes()?;
            let (file, path) = target_file(txn, target);
            crate::io::fs::write_new(&path, &bytes, false)?;
            self.mark_dirty(txn.dir().join(&file));
            let record =
                ArrayMetadata::new(target, snap.logical_shape(), a.dtype, file, now_micros());
            super::attrs::stage(txn, &record, &super::attrs::read(txn.dir(), &a)?)?;
            if let Some(f) = names::attrs_file(&record.data_file) {
                self.mark_dirty(txn.dir().join(f));
            }
            txn.meta_mut().arrays.insert(target.to_owned(), record);
            Ok(())
        })
    }
}
