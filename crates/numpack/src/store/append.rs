//! `append`: add rows at the end of an array, in place. Cost grows with the new rows only.

use super::{check_dtype, check_rows_shape, now_micros, read_bitmap, Store};
use crate::dtype::DataType;
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::names;
use crate::io::write_at;

impl Store {
    /// Appends rows (`shape` = shape of the new rows, `data` their bytes). The bytes go past
    /// the committed end of the data file first; the metadata commit makes them visible.
    pub fn append(&self, name: &str, dtype: DataType, shape: &[u64], data: &[u8]) -> NpkResult<()> {
        self.mutate(|txn| {
            let a = txn
                .meta
                .arrays
                .get(name)
                .cloned()
                .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))?;
            check_rows_shape(&a, shape)?;
            check_dtype(&a, dtype)?;
            let new_rows = shape[0];
            if new_rows.checked_mul(a.row_bytes()) != Some(data.len() as u64) {
                return Err(NpkError::InvalidShape(format!(
                    "array '{name}': {new_rows} rows need {} bytes, got {}",
                    new_rows.saturating_mul(a.row_bytes()),
                    data.len()
                )));
            }
            if new_rows == 0 {
                return Ok(());
            }
            let path = txn.dir().join(&a.data_file);
            let (f, _) = self.write_handle(&a, false)?;
            let len = f.metadata().at(&path)?.len();
            super::check_file_len(&path, len, &a)?;
            if len > a.size_bytes {
                // Leftover of an append whose commit never happened.
                f.set_len(a.size_bytes).at(&path)?;
            }
            write_at(&f, data, a.size_bytes).at(&path)?;
            self.mark_dirty(path);
            let bitmap = if self.has_bitmap(&a) {
                read_bitmap(txn.dir(), &a)?
            } else {
                None
            };
            if let Some(mut bitmap) = bitmap {
                bitmap.extend_to(a.rows() + new_rows);
                let file = names::bitmap_file(&a.data_file).expect("data file has a bitmap name");
                let tmp = txn.stage_file(&file);
                super::commit::write_file(&tmp, &bitmap.encode(), false)?;
                self.mark_dirty(txn.dir().join(&file));
            }
            let r = txn.meta_mut().arrays.get_mut(name).expect("record exists");
            r.shape[0] += new_rows;
            r.size_bytes += data.len() as u64;
            r.last_modified = now_micros();
            Ok(())
        })
    }
}
