//! `compact`: rewrite a data file with only its active rows and remove the bitmap.

use super::{fold_away, now_micros, read_bitmap, Store};
use crate::error::NpkResult;
use crate::format::names;
use crate::read::deleted::is_zero_width;
use crate::read::snapshot::ArraySnapshot;

impl Store {
    /// Physically removes deleted rows. No-op without deletions.
    pub fn compact(&self, name: &str) -> NpkResult<()> {
        // A segmented array is rewritten as one file (0.7 reads both).
        self.to_single_files(&[name])?;
        self.mutate(|txn| {
            txn.op = crate::format::history::Op::Compact;
            let a = txn.record(name)?;
            let bitmap_file = names::bitmap_file(&a.data_file).expect("bitmap name");
            if is_zero_width(&a) {
                // Rows of no bytes: fold the bitmap into the row count.
                let (folded, had_bitmap) = fold_away(txn, &a)?;
                if had_bitmap {
                    let r = txn.meta_mut().arrays.get_mut(name).expect("record exists");
                    r.shape[0] = folded.rows();
                    r.last_modified = now_micros();
                }
                return Ok(());
            }
            let Some(bitmap) = read_bitmap(txn.dir(), &a)? else {
                return Ok(());
            };
            txn.stage_remove(&bitmap_file);
            if bitmap.deleted() == 0 {
                return Ok(());
            }
            let stamp = super::next_stamp(&a, now_micros());
            if let Some(up) = super::index::upkeep(txn.dir(), &a, txn.durable())? {
                // The same renumbering as the rows': the active ones keep their order.
                let rows = a.rows() - bitmap.deleted();
                let b = &bitmap;
                up.compacted(txn, &a, stamp, rows, |r| {
                    (r >= b.rows() || b.is_active(r)).then(|| b.rank(r))
                })?;
            }
            let snap = ArraySnapshot::open_with_bitmap(txn.dir(), a.clone(), Some(bitmap))?;
            let bytes = snap.to_bytes()?;
            let tmp = txn.stage_file(&a.data_file);
            crate::io::fs::write_new(&tmp, &bytes, false)?;
            self.mark_dirty(txn.dir().join(&a.data_file));
            let r = txn.meta_mut().arrays.get_mut(name).expect("record exists");
            r.shape[0] = snap.logical_rows();
            r.size_bytes = bytes.len() as u64;
            r.last_modified = stamp;
            Ok(())
        })
    }
}
