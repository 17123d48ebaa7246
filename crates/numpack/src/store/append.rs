//! `append`: add rows at the end of arrays, in place. Cost grows with the new rows only.

use super::commit::Txn;
use super::{
    check_dtype, check_row_bytes, check_rows_shape, check_unique, fold_away, now_micros, Store,
};
use crate::dtype::DataType;
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::bitmap::extension_writes;
use crate::format::metadata::{check_shape, ArrayMetadata};
use crate::format::names;
use crate::io::fs;
use crate::read::deleted::{read_bitmap, read_bitmap_tail};

/// Rows to append to one array: the fields of a save, `shape` being that of the new rows
/// (same trailing dimensions as the array), `dtype` the stored one, the array existing.
pub type AppendItem<'a> = super::SaveItem<'a>;

/// Checks one item against its record; returns the record and the row count after it.
fn check(
    txn_meta: &crate::format::metadata::MetadataFile,
    it: &AppendItem<'_>,
) -> NpkResult<(ArrayMetadata, u64)> {
    let a = txn_meta
        .arrays
        .get(it.name)
        .cloned()
        .ok_or_else(|| NpkError::ArrayNotFound(it.name.to_owned()))?;
    check_dtype(&a, it.dtype)?;
    check_rows_shape(&a, it.shape)?;
    let new_rows = it.shape[0];
    check_row_bytes(&a, new_rows, it.data)?;
    let mut shape = a.shape.clone();
    shape[0] = a.rows().checked_add(new_rows).ok_or_else(|| {
        NpkError::InvalidShape(format!("array '{}' would have too many rows", it.name))
    })?;
    check_shape(&shape, a.dtype)
        .map_err(|e| NpkError::InvalidShape(format!("array '{}' would have {e}", it.name)))?;
    Ok((a, new_rows))
}

/// Extends the bitmap of `a` (if it has one) to `rows` rows, the new ones active: in place
/// from its header and last word alone when it is in the headered layout, so the cost grows
/// with the new rows only; else (the legacy layout) rewritten whole as a new file.
fn extend_bitmap(txn: &mut Txn<'_>, a: &ArrayMetadata, rows: u64) -> NpkResult<()> {
    let file = names::bitmap_file(&a.data_file).expect("data file has a bitmap name");
    if let Some(t) = read_bitmap_tail(txn.dir(), a)? {
        let writes = extension_writes(t.rows, t.deleted, t.last, rows);
        txn.patch(&file, t.len, writes);
        return Ok(());
    }
    if let Some(mut bitmap) = read_bitmap(txn.dir(), a)? {
        bitmap.extend_to(rows);
        let tmp = txn.stage_file(&file);
        fs::write_new(&tmp, &bitmap.encode(), false)?;
    }
    Ok(())
}

impl Store {
    /// Appends rows (`shape` = shape of the new rows, `data` their bytes). The bytes go past
    /// the committed end of the data file first; the metadata commit makes them visible.
    pub fn append(&self, name: &str, dtype: DataType, shape: &[u64], data: &[u8]) -> NpkResult<()> {
        self.append_many(&[AppendItem {
            name,
            dtype,
            shape,
            data,
        }])
    }

    /// Appends rows to several arrays in one commit: every item is checked before anything is
    /// written, and either all arrays grow or none does (also if the process is killed).
    pub fn append_many(&self, items: &[AppendItem<'_>]) -> NpkResult<()> {
        check_unique(items.iter().map(|it| it.name))?;
        self.mutate(|txn| {
            txn.op = crate::format::history::Op::Append;
            let checked = items
                .iter()
                .map(|it| check(&txn.meta, it))
                .collect::<NpkResult<Vec<_>>>()?;
            let now = now_micros();
            for (it, (a, new_rows)) in items.iter().zip(checked) {
                if new_rows == 0 {
                    continue;
                }
                let a = if a.row_bytes() == 0 {
                    fold_away(txn, &a)?.0
                } else {
                    a
                };
                let stamp = super::next_stamp(&a, now);
                if a.row_bytes() > 0 {
                    if super::segmented::is_segmented(&a) {
                        super::segmented::append(self, txn, &a, it.data)?;
                    } else {
                        let path = txn.dir().join(&a.data_file);
                        let (f, _) = self.write_handle(&a, false)?;
                        let len = f.metadata().at(&path)?.len();
                        super::check_file_len(&path, len, &a)?;
                        if len > a.size_bytes {
                            // Leftover of an append whose commit never happened.
                            fs::set_len(&f, &path, a.size_bytes)?;
                        }
                        fs::write_at(&f, &path, it.data, a.size_bytes)?;
                        self.mark_dirty(path.clone());
                        txn.wrote_in_place(f, path);
                    }
                    if let Some(up) = super::index::upkeep(txn.dir(), &a, txn.durable())? {
                        up.write(&up.added(stamp, a.rows(), it.data))?;
                        self.mark_dirty(up.path.clone());
                        txn.wrote_in_place(up.log, up.path);
                    }
                    if self.has_bitmap(&a) {
                        extend_bitmap(txn, &a, a.rows() + new_rows)?;
                        let file =
                            names::bitmap_file(&a.data_file).expect("data file has a bitmap name");
                        self.mark_dirty(txn.dir().join(&file));
                    }
                }
                let r = txn
                    .meta_mut()
                    .arrays
                    .get_mut(it.name)
                    .expect("record exists");
                r.shape[0] = a.shape[0] + new_rows;
                r.size_bytes = a.size_bytes + it.data.len() as u64;
                r.last_modified = stamp;
            }
            Ok(())
        })
    }
}
