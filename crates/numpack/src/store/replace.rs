//! `replace`: overwrite rows in place through a shared mapping, under an undo journal.

use super::commit::{begin_undo, finish_undo, UndoLog};
use super::{check_dtype, check_rows_shape, read_bitmap, resolve_rows, Store};
use crate::dtype::DataType;
use crate::error::{IoContext, NpkError, NpkResult};

impl Store {
    /// Overwrites the logical rows `indices` with the rows of `data` (shape `shape`, whose
    /// first dimension is `indices.len()`, or 1 to write the same row everywhere). A crash
    /// leaves every row old or every row new.
    pub fn replace(
        &self,
        name: &str,
        dtype: DataType,
        shape: &[u64],
        data: &[u8],
        indices: &[i64],
    ) -> NpkResult<()> {
        self.locked(|meta| {
            let a = meta
                .arrays
                .get(name)
                .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))?;
            check_rows_shape(a, shape)?;
            check_dtype(a, dtype)?;
            let n = shape[0];
            if n != indices.len() as u64 && n != 1 {
                return Err(NpkError::InvalidShape(format!(
                    "array '{name}': {n} rows given for {} indexes",
                    indices.len()
                )));
            }
            let row = a.row_bytes();
            if n.checked_mul(row) != Some(data.len() as u64) {
                return Err(NpkError::InvalidShape(format!(
                    "array '{name}': {n} rows need {} bytes, got {}",
                    n.saturating_mul(row),
                    data.len()
                )));
            }
            let bitmap = if self.has_bitmap(a) {
                read_bitmap(self.dir(), a)?
            } else {
                None
            };
            let logical = bitmap.as_ref().map_or(a.rows(), |b| b.active());
            let rows = resolve_rows(indices, logical, bitmap.as_ref())?;
            if rows.is_empty() || row == 0 {
                return Ok(());
            }
            let (_, map) = self.write_handle(a, true)?;
            let map = map.expect("a mapping was asked for");
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            let row = usize::try_from(row).expect("row fits in memory");
            let mut undo = UndoLog {
                file: a.data_file.clone(),
                rows: Vec::with_capacity(rows.len()),
            };
            let mut seen = std::collections::HashSet::with_capacity(rows.len());
            for &r in &rows {
                if seen.insert(r) {
                    let at = r as usize * row;
                    undo.rows.push((at as u64, map[at..at + row].to_vec()));
                }
            }
            let slot = begin_undo(self.dir(), self.store_lock(), &undo, self.durable())?;
            // Later duplicates win, as with NumPy's `a[idx] = v`.
            for (k, &r) in rows.iter().enumerate() {
                let src = if n == 1 { 0 } else { k * row };
                let at = r as usize * row;
                map[at..at + row].copy_from_slice(&data[src..src + row]);
            }
            let path = self.dir().join(&a.data_file);
            if self.durable() {
                map.flush().at(&path)?;
            }
            self.mark_dirty(path);
            finish_undo(self.dir(), self.store_lock(), slot)
        })
    }
}
