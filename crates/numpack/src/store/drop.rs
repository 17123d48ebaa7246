//! `drop`: delete rows logically through the bitmap, or whole arrays.

use super::{check_data_len, now_micros, read_bitmap, require_rows, resolve_rows, Store};
use crate::error::{NpkError, NpkResult};
use crate::format::bitmap::Bitmap;
use crate::format::names;

impl Store {
    /// Marks logical rows deleted (duplicates allowed). The data file is untouched; reads
    /// no longer see the rows. Deleting every row leaves an array with 0 logical rows.
    pub fn drop_rows(&self, name: &str, indices: &[i64]) -> NpkResult<()> {
        self.mutate(|txn| {
            let a = txn
                .meta
                .arrays
                .get(name)
                .cloned()
                .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))?;
            require_rows(&a)?;
            // Before the bitmap is sized by the record's row count (see `check_data_len`).
            check_data_len(txn.dir(), &a)?;
            let mut bitmap =
                read_bitmap(txn.dir(), &a)?.unwrap_or_else(|| Bitmap::all_active(a.rows()));
            let rows = resolve_rows(indices, bitmap.active(), Some(&bitmap))?;
            if rows.is_empty() {
                return Ok(());
            }
            bitmap.delete(rows);
            let file = names::bitmap_file(&a.data_file).expect("data file has a bitmap name");
            let tmp = txn.stage_file(&file);
            super::commit::write_file(&tmp, &bitmap.encode(), false)?;
            self.mark_dirty(txn.dir().join(&file));
            let r = txn.meta_mut().arrays.get_mut(name).expect("record exists");
            r.last_modified = now_micros();
            Ok(())
        })
    }

    /// Deletes whole arrays (data file, bitmap, record). Names that do not exist are skipped.
    pub fn drop_arrays(&self, names_to_drop: &[&str]) -> NpkResult<()> {
        let meta = self.metadata_file()?;
        if !names_to_drop.iter().any(|n| meta.arrays.contains_key(*n)) {
            return Ok(());
        }
        self.mutate(|txn| {
            for name in names_to_drop {
                if let Some(a) = txn.meta_mut().arrays.remove(*name) {
                    txn.stage_remove(&a.data_file);
                    if let Some(b) = names::bitmap_file(&a.data_file) {
                        txn.stage_remove(&b);
                    }
                }
            }
            Ok(())
        })
    }
}
