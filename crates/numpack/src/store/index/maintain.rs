//! Keeping an index up in the commits of its array (under the exclusive lock): the record
//! each mutation adds to the delta log, and the files a mutation that replaces or removes
//! the array removes with it.

use super::cache::{self, Loaded};
use super::files;
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::index::IndexFile;
use crate::format::index_log::{self, Record};
use crate::format::metadata::ArrayMetadata;
use crate::format::names;
use crate::io::fs;
use crate::store::commit::Txn;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// A current index being kept up by a mutation of its array: its log open at the committed
/// end (an uncommitted tail already cut off).
pub(crate) struct Upkeep {
    entry: Arc<RwLock<Loaded>>,
    /// The log, open read-write.
    pub log: Arc<File>,
    /// Its path.
    pub path: PathBuf,
    /// Its bare name.
    pub name: String,
    /// Where the next record goes.
    pub at: u64,
}

/// The index of `a` to keep up in a mutation, `None` when it has none or a stale one (which
/// stays stale: searches go exact until `reindex`).
pub(crate) fn upkeep(
    dir: &std::path::Path,
    a: &ArrayMetadata,
    durable: bool,
) -> NpkResult<Option<Upkeep>> {
    for _ in 0..2 {
        if let Some(up) = try_upkeep(dir, a, durable)? {
            return Ok(up);
        }
    }
    let (_, name) = files(a);
    Err(NpkError::corrupt(
        dir.join(name),
        "does not follow its index's base file",
    ))
}

/// [`upkeep`], or `None` after writing an empty log for a base that had none of its own.
fn try_upkeep(
    dir: &std::path::Path,
    a: &ArrayMetadata,
    durable: bool,
) -> NpkResult<Option<Option<Upkeep>>> {
    // Only an array that has an index pays for a view of it.
    let has = names::index_file(&a.data_file)
        .is_some_and(|n| !matches!(fs::entry(&dir.join(n)), Ok(None)));
    if !has {
        return Ok(Some(None));
    }
    let snap = crate::read::snapshot::ArraySnapshot::open(dir, a.clone())?;
    let Some(entry) = cache::load(dir, &snap)? else {
        return Ok(Some(None));
    };
    let (at, crc, has_log) = {
        let l = entry.read().unwrap_or_else(|e| e.into_inner());
        if !cache::is_current(&l, a) {
            return Ok(Some(None));
        }
        (l.log_valid, l.base_crc, l.has_log())
    };
    let (_, name) = files(a);
    let path = dir.join(&name);
    let log = match fs::open_rw_opt(&path)? {
        Some(f) if has_log => f,
        _ => {
            // A create killed between its two renames: the new base alone, with no log or
            // the old base's (void). It gets an empty log of its own.
            let tmp = crate::store::commit::tmp_path(dir, &name);
            fs::write_new(&tmp, &index_log::header(crc), durable)?;
            fs::rename(&tmp, &path).map_err(|e| NpkError::io(&path, e))?;
            if durable {
                fs::sync_dir(dir)?;
            }
            return Ok(None);
        }
    };
    let m = log.metadata().at(&path)?;
    if m.nlink() > 1 {
        // A write would reach the other names too, perhaps outside the store.
        return Err(NpkError::corrupt(
            &path,
            "has other hard links; remove it (drop_index) and create the index again",
        ));
    }
    let at = at.max(index_log::HEADER as u64);
    if m.len() > at {
        // What a commit that never happened left.
        fs::set_len(&log, &path, at)?;
    } else if m.len() < at {
        return Err(NpkError::corrupt(
            &path,
            "is shorter than what was read of it",
        ));
    }
    Ok(Some(Some(Upkeep {
        entry,
        log: Arc::new(log),
        path,
        name,
        at,
    })))
}

impl Upkeep {
    /// The lists of `rows` (row-major float32 vectors).
    pub fn assign(&self, rows: &[f32]) -> Vec<u32> {
        let l = self.entry.read().unwrap_or_else(|e| e.into_inner());
        l.listed.ivf.assign(rows)
    }

    /// Writes `rec` at the log's committed end (past which nothing is read until the
    /// mutation commits; see the module documentation of `store/index`).
    pub fn write(&self, rec: &Record) -> NpkResult<()> {
        let bytes = index_log::encode(rec);
        fs::write_at(&self.log, &self.path, &bytes, self.at)
    }

    /// Rows appended: `first` is the array's physical row count before, `data` the new
    /// rows' bytes (float32), `stamp` the array's `last_modified` after the commit.
    pub fn added(&self, stamp: u64, first: u64, data: &[u8]) -> Record {
        let v = floats(data);
        let lists = self.assign(&v);
        let rows = (first..first + lists.len() as u64).collect();
        Record::Added {
            stamp,
            first,
            rows,
            lists,
        }
    }

    /// Rows replaced: `rows[i]` gets the vector `vals[i]` (row-major float32 bytes).
    pub fn moved(&self, rows: Vec<u64>, vals: &[u8]) -> Record {
        let lists = self.assign(&floats(vals));
        Record::Moved { rows, lists }
    }

    /// In a compaction of the array (deleted rows go, the others are renumbered by
    /// `renumber`): stages a new base of the remapped lists with `stamp` and an empty log.
    pub fn compacted(
        &self,
        txn: &mut Txn<'_>,
        a: &ArrayMetadata,
        stamp: u64,
        rows: u64,
        renumber: impl Fn(u64) -> Option<u64>,
    ) -> NpkResult<()> {
        let ivf = {
            let l = self.entry.read().unwrap_or_else(|e| e.into_inner());
            l.listed.remapped(renumber)
        };
        let file = IndexFile { stamp, rows, ivf };
        let (base, log) = files(a);
        let tmp = txn.stage_file(&base);
        let crc = super::write_base(&tmp, &file, false)?;
        let tmp = txn.stage_file(&log);
        fs::write_new(&tmp, &index_log::header(crc), false)?;
        Ok(())
    }
}

/// Float32 elements of `bytes`, borrowed when aligned (NumPy arrays are).
fn floats(bytes: &[u8]) -> std::borrow::Cow<'_, [f32]> {
    match bytemuck::try_cast_slice(bytes) {
        Ok(v) => std::borrow::Cow::Borrowed(v),
        Err(_) => std::borrow::Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    }
}

/// Stages the removal of the index files of the array whose data file is `data_file` (the
/// array is removed, or saved anew).
pub(crate) fn forget_files(txn: &mut Txn<'_>, data_file: &str) {
    for name in [
        names::index_file(data_file),
        names::index_log_file(data_file),
    ]
    .into_iter()
    .flatten()
    {
        if !matches!(fs::entry(&txn.dir().join(&name)), Ok(None)) {
            cache::forget(&txn.dir().join(&name));
            txn.stage_remove(&name);
        }
    }
}
