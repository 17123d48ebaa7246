//! `replace`: overwrite rows in place through shared mappings, under one undo record.

use super::commit::{begin_undo, finish_undo, UndoFile, UndoLog};
use super::{
    check_dtype, check_row_bytes, check_rows_shape, check_unique, fold_zero_width, read_bitmap,
    Store,
};
use crate::dtype::DataType;
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::history::RowSet;
use crate::format::metadata::{ArrayMetadata, MetadataFile};
use crate::io::fs;
use crate::read::select::{physical, RowSelection};

/// New values for some rows of one array.
#[derive(Debug, Clone, Copy)]
pub struct ReplaceItem<'a> {
    /// The array.
    pub name: &'a str,
    /// Element type (must be the stored one).
    pub dtype: DataType,
    /// Shape of the new rows: one row per selected row, or one row written to all of them
    /// (its row axis may be left out).
    pub shape: &'a [u64],
    /// Their bytes.
    pub data: &'a [u8],
    /// The logical rows, resolved under the store lock.
    pub rows: RowSelection<'a>,
}

/// The record a replace adds to an index's log (cut back by the replace's undo record).
type IndexRecord = (super::index::Upkeep, crate::format::index_log::Record);

/// An item checked against its record: the record and the physical rows to write.
struct Plan<'a> {
    item: &'a ReplaceItem<'a>,
    record: ArrayMetadata,
    rows: Vec<u64>,
    /// One row written everywhere.
    broadcast: bool,
}

fn plan<'a>(store: &Store, meta: &MetadataFile, it: &'a ReplaceItem<'a>) -> NpkResult<Plan<'a>> {
    let a = meta
        .arrays
        .get(it.name)
        .ok_or_else(|| NpkError::ArrayNotFound(it.name.to_owned()))?;
    check_dtype(a, it.dtype)?;
    // One row without its row axis is one row.
    let shape: Vec<u64> = if !a.shape.is_empty() && it.shape.len() + 1 == a.shape.len() {
        std::iter::once(1).chain(it.shape.iter().copied()).collect()
    } else {
        it.shape.to_vec()
    };
    check_rows_shape(a, &shape)?;
    let n = shape[0];
    check_row_bytes(a, n, it.data)?;
    let count_error = |picked: u64| {
        NpkError::InvalidShape(format!(
            "Cannot replace rows of array '{}': got {n} rows of values for {picked} indexes",
            it.name
        ))
    };
    if a.row_bytes() == 0 {
        // Rows of no bytes: check the selection, write nothing.
        let (folded, _) = fold_zero_width(store.dir(), a)?;
        let (picked, _) = it.rows.count(it.name, folded.rows())?;
        if n != picked && n != 1 {
            return Err(count_error(picked));
        }
        return Ok(Plan {
            item: it,
            record: folded,
            rows: Vec::new(),
            broadcast: false,
        });
    }
    let bitmap = if store.has_bitmap(a) {
        read_bitmap(store.dir(), a)?
    } else {
        None
    };
    let logical = bitmap.as_ref().map_or(a.rows(), |b| b.active());
    let rows = physical(it.rows.resolve(it.name, logical)?, bitmap.as_ref());
    if n != rows.len() as u64 && n != 1 {
        return Err(count_error(rows.len() as u64));
    }
    Ok(Plan {
        item: it,
        record: a.clone(),
        rows,
        broadcast: n == 1,
    })
}

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
        self.replace_many(&[ReplaceItem {
            name,
            dtype,
            shape,
            data,
            rows: RowSelection::Indices(indices),
        }])
    }

    /// Overwrites rows of several arrays at once: every item is checked and its rows resolved
    /// under the store lock before anything is written, and one undo record covers them
    /// all, so a crash leaves every row of every array old or every row new.
    pub fn replace_many(&self, items: &[ReplaceItem<'_>]) -> NpkResult<()> {
        check_unique(items.iter().map(|it| it.name))?;
        // Rows are written in place into one data file (a segmented array becomes one).
        self.to_single_files(&items.iter().map(|it| it.name).collect::<Vec<_>>())?;
        self.locked(|meta| {
            // Index errors name the array when the call names several.
            let several = items.len() > 1;
            let plans = items
                .iter()
                .map(|it| {
                    plan(self, meta, it).map_err(|e| if several { e.in_array(it.name) } else { e })
                })
                .collect::<NpkResult<Vec<_>>>()?;
            let plans: Vec<Plan<'_>> = plans.into_iter().filter(|p| !p.rows.is_empty()).collect();
            if plans.is_empty() {
                return Ok(());
            }
            let mut maps = Vec::with_capacity(plans.len());
            let mut orders = Vec::with_capacity(plans.len());
            let mut undo = UndoLog::default();
            for p in &plans {
                let (_, map) = self.write_handle(&p.record, true)?;
                let map = map.expect("a mapping was asked for");
                let row = usize::try_from(p.record.row_bytes()).expect("row fits in memory");
                let mut old = UndoFile {
                    file: p.record.data_file.clone(),
                    len: None,
                    rows: Vec::with_capacity(p.rows.len()),
                };
                let order = write_order(p);
                {
                    let m = map.lock().unwrap_or_else(|e| e.into_inner());
                    for &(r, _) in &order {
                        let at = r as usize * row;
                        old.rows.push((at as u64, m[at..at + row].to_vec()));
                    }
                }
                undo.files.push(old);
                maps.push((map, row));
                orders.push(order);
            }
            // Each indexed array's record of moved rows, cut back by the same undo record.
            let mut index_records = Vec::new();
            for (p, order) in plans.iter().zip(&orders) {
                let Some(up) = super::index::upkeep(self.dir(), &p.record, self.durable())? else {
                    continue;
                };
                let row = p.record.row_bytes() as usize;
                let mut vals = Vec::with_capacity(order.len() * row);
                for &(_, k) in order {
                    vals.extend_from_slice(&p.item.data[k * row..(k + 1) * row]);
                }
                let rec = up.moved(order.iter().map(|&(r, _)| r).collect(), &vals);
                undo.files.push(UndoFile {
                    file: up.name.clone(),
                    len: Some(up.at),
                    rows: Vec::new(),
                });
                index_records.push((up, rec));
            }
            let plan = super::history::plan(self.dir(), self.store_lock())?;
            let done =
                self.replace_planned(meta, &plans, &orders, &maps, (&undo, &index_records), plan);
            super::history::finish(self, plan, done)
        })
    }

    /// Records the history of planned replacements, then writes them under one undo record.
    fn replace_planned(
        &self,
        meta: &MetadataFile,
        plans: &[Plan<'_>],
        orders: &[Vec<(u64, usize)>],
        maps: &[(super::state::WriteMap, usize)],
        (undo, index_records): (&UndoLog, &[IndexRecord]),
        plan: super::history::Plan,
    ) -> NpkResult<()> {
        let durable = self.durable();
        if plan.record {
            let sets = plans
                .iter()
                .zip(orders)
                .zip(&undo.files)
                .map(|((p, order), old)| (p.item.name.to_owned(), row_set(p, order, old)))
                .filter(|(_, s)| s.row_bytes > 0)
                .collect();
            let crc = super::history::bytes_crc(meta, &self.state().bytes);
            let rec = super::history::replace_record(plan.version, meta, crc, sets);
            super::history::append(self.dir(), self.store_lock(), &rec, durable)?;
        } else {
            super::history::bump(self.store_lock());
        }
        {
            let slot = begin_undo(self.dir(), self.store_lock(), undo, durable)?;
            // Readers copying rows retry while this runs (and after it, if it ran during
            // their copy): see `Store::read_consistent`.
            let _writing = self.store_lock().writing();
            for (p, (map, row)) in plans.iter().zip(maps) {
                let row = *row;
                let path = self.dir().join(&p.record.data_file);
                let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
                // Later duplicates win, as with NumPy's `a[idx] = v`.
                for (k, &r) in p.rows.iter().enumerate() {
                    let src = if p.broadcast { 0 } else { k * row };
                    let at = r as usize * row;
                    let new = &p.item.data[src..src + row];
                    m[at..at + row].copy_from_slice(new);
                    fs::note_mapped_write(&path, at as u64, new);
                }
                if durable {
                    m.flush().at(&path)?;
                    fs::note_synced(&path);
                }
                self.mark_dirty(path);
            }
            for (up, rec) in index_records {
                up.write(rec)?;
                if durable {
                    fs::sync_data(&up.log, &up.path)?;
                }
                self.mark_dirty(up.path.clone());
            }
            finish_undo(self.dir(), self.store_lock(), slot, durable)
        }
    }
}

/// The rows an item writes, ascending, each once, with the position of the value it gets
/// (later duplicates win, as with NumPy's `a[idx] = v`).
fn write_order(p: &Plan<'_>) -> Vec<(u64, usize)> {
    let mut order: Vec<(u64, usize)> = p
        .rows
        .iter()
        .enumerate()
        .map(|(k, &r)| (r, if p.broadcast { 0 } else { k }))
        .collect();
    // Stable: equal rows keep their call order, so the last of each run is the later one.
    order.sort_by_key(|&(r, _)| r);
    order.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 = later.1;
        }
        same
    });
    order
}

/// The old and new bytes of one item's rows (in `order`, whose old bytes `old` holds).
fn row_set(p: &Plan<'_>, order: &[(u64, usize)], old: &UndoFile<Vec<u8>>) -> RowSet {
    let row = p.record.row_bytes();
    let mut bytes = Vec::with_capacity(order.len() * row as usize);
    let (mut o, mut n) = (crc32fast::Hasher::new(), crc32fast::Hasher::new());
    for ((_, b), &(_, k)) in old.rows.iter().zip(order) {
        o.update(b);
        bytes.extend_from_slice(b);
        let at = k * row as usize;
        n.update(&p.item.data[at..at + row as usize]);
    }
    RowSet {
        file: p.record.data_file.clone(),
        row_bytes: row,
        rows: order.iter().map(|&(r, _)| r).collect(),
        old: bytes,
        old_crc: o.finalize(),
        new_crc: n.finalize(),
    }
}
