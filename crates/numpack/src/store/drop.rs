//! `drop`: delete rows logically through the bitmap, or whole arrays.

use super::{check_row_state, check_unique, fold_away, now_micros, require_rows, Store};
use crate::error::{NpkError, NpkResult};
use crate::format::bitmap::Bitmap;
use crate::format::names;
use crate::io::fs;
use crate::read::deleted::read_bitmap_bytes;
use crate::read::select::{physical, RowSelection};

impl Store {
    /// Marks logical rows deleted (duplicates allowed). The data file is untouched; reads
    /// no longer see the rows. A drop that deletes the last rows of an array removes the
    /// array, in the same commit (as the published 0.6 does); an array that had no rows
    /// stays.
    pub fn drop_rows(&self, name: &str, indices: &[i64]) -> NpkResult<()> {
        self.drop_selected(&[(name, RowSelection::Indices(indices))])
    }

    /// Deletes rows of several arrays in one commit; each selection is resolved under the
    /// store lock against the array as it is then. All or nothing.
    pub fn drop_selected(&self, items: &[(&str, RowSelection<'_>)]) -> NpkResult<()> {
        check_unique(items.iter().map(|(n, _)| *n))?;
        self.mutate(|txn| {
            txn.op = crate::format::history::Op::DropRows;
            let now = now_micros();
            let several = items.len() > 1;
            for (name, sel) in items {
                // Index errors name the array when the call names several.
                let named = |e: NpkError| if several { e.in_array(name) } else { e };
                let a = txn
                    .meta
                    .arrays
                    .get(*name)
                    .cloned()
                    .ok_or_else(|| NpkError::ArrayNotFound((*name).to_owned()))?;
                require_rows(&a)?;
                let bitmap_file =
                    names::bitmap_file(&a.data_file).expect("data file has a bitmap name");
                if a.row_bytes() == 0 {
                    // Rows of no bytes keep no per-row state: deleting k distinct rows is
                    // keeping k rows fewer (all rows are the same empty row).
                    let (folded, had_bitmap) = fold_away(txn, &a)?;
                    let (_, distinct) = sel.count(name, folded.rows()).map_err(named)?;
                    if distinct == 0 && !had_bitmap {
                        continue;
                    }
                    if distinct > 0 && distinct == folded.rows() {
                        super::remove_array(txn, name);
                        continue;
                    }
                    let r = txn.meta_mut().arrays.get_mut(*name).expect("record exists");
                    r.shape[0] = folded.rows() - distinct;
                    r.last_modified = now;
                    continue;
                }
                // Before the bitmap is sized by the record's row count.
                check_row_state(txn.dir(), &a)?;
                let (mut bitmap, old) = match read_bitmap_bytes(txn.dir(), &a)? {
                    Some((b, bytes)) => (b, Some(bytes)),
                    None => (Bitmap::all_active(a.rows()), None),
                };
                let rows = physical(
                    sel.resolve(name, bitmap.active()).map_err(named)?,
                    Some(&bitmap),
                );
                if rows.is_empty() {
                    continue;
                }
                let words = Bitmap::words_holding(&rows);
                bitmap.delete(rows);
                if bitmap.active() == 0 {
                    // The last rows went: the array goes with them.
                    super::remove_array(txn, name);
                    continue;
                }
                match old {
                    // Only the words that change are written, in place when the commit can be.
                    Some(old) if bitmap.is_file_of(&old) => {
                        txn.patch(&bitmap_file, old.len() as u64, bitmap.word_writes(&words))
                    }
                    // A first bitmap, or one in the legacy or a short layout: a new file.
                    _ => {
                        let tmp = txn.stage_file(&bitmap_file);
                        fs::write_new(&tmp, &bitmap.encode(), false)?;
                    }
                }
                self.mark_dirty(txn.dir().join(&bitmap_file));
                // Deleted rows are the bitmap's: the index only learns the new stamp.
                let stamp = super::next_stamp(&a, now);
                if let Some(up) = super::index::upkeep(txn.dir(), &a, txn.durable())? {
                    up.write(&crate::format::index_log::Record::Stamp(stamp))?;
                    self.mark_dirty(up.path.clone());
                    txn.wrote_in_place(up.log, up.path);
                }
                let r = txn.meta_mut().arrays.get_mut(*name).expect("record exists");
                r.last_modified = stamp;
            }
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
            txn.op = crate::format::history::Op::DropArrays;
            for name in names_to_drop {
                super::remove_array(txn, name);
            }
            Ok(())
        })
    }
}
