//! `restore`: a new commit whose state equals an older version.

use super::save::target_file;
use super::{now_micros, Store};
use crate::error::NpkResult;
use crate::format::history::Op;
use crate::format::metadata::ArrayMetadata;
use crate::io::fs;
use std::sync::Arc;

impl Store {
    /// Makes the current state equal to `version`'s, as one new commit (history keeps the
    /// versions in between). Arrays the version did not change are left as they are; the
    /// others are written again whole. Returns the new version.
    pub fn restore(self: &Arc<Self>, version: u64) -> NpkResult<u64> {
        let snap = self.snapshot_at(version)?;
        let now = self.metadata_file()?;
        let mut arrays: Vec<(ArrayMetadata, Vec<u8>)> = Vec::new();
        for name in snap.names() {
            let then = snap.array_metadata(&name)?;
            let (shape, _, bytes) = snap.load_bytes(&name)?;
            let mut rec = then;
            rec.shape = shape;
            arrays.push((rec, bytes));
        }
        let keep: Vec<String> = snap.names();
        // Arrays that already hold the version's rows (checked now, trusted if no commit
        // runs before the mutation's lock is taken).
        let seen_at = self.version()?;
        let same: Vec<bool> = arrays
            .iter()
            .map(|(rec, bytes)| {
                now.arrays.get(&rec.name).is_some_and(|cur| {
                    cur.shape == rec.shape && cur.dtype == rec.dtype && self.same_rows(cur, bytes)
                })
            })
            .collect();
        self.mutate(|txn| {
            let at = super::history::current(txn.dir(), self.store_lock())?;
            let unchanged = at == seen_at;
            txn.op = Op::Restore;
            let stamp = now_micros();
            let gone: Vec<ArrayMetadata> = txn
                .meta
                .arrays
                .values()
                .filter(|a| !keep.contains(&a.name))
                .cloned()
                .collect();
            for a in gone {
                super::remove_array(txn, &a.name);
            }
            for ((rec, bytes), same) in arrays.iter().zip(&same) {
                if *same && unchanged {
                    continue;
                }
                let (file, path) = target_file(txn, &rec.name);
                fs::write_new(&path, bytes, false)?;
                self.mark_dirty(txn.dir().join(&file));
                let r = ArrayMetadata::new(&rec.name, rec.shape.clone(), rec.dtype, file, stamp);
                txn.meta_mut().arrays.insert(rec.name.clone(), r);
            }
            // The version this commit makes (when it changes nothing, the current one).
            Ok(at)
        })
        .and_then(|at| Ok(self.version()?.min(at + 1)))
    }

    /// Whether array `cur` holds exactly `bytes` as its logical rows now.
    fn same_rows(&self, cur: &ArrayMetadata, bytes: &[u8]) -> bool {
        self.array(&cur.name)
            .and_then(|s| s.to_bytes())
            .is_ok_and(|b| b == bytes)
    }
}
