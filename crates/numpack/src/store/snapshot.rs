//! Snapshots: the whole read API pinned to one version while other handles and processes
//! keep writing.
//!
//! Opening one takes the shared lock for a moment: it reads the current version and pins the
//! one asked for in the lock file's pin slots, so every later commit (of any process) appends
//! a record of what it changes before it changes it. A read copies from the files as they
//! are and patches in what the records say was there at the version; when a record was
//! appended while it copied (a commit ran meanwhile), it reads again with the new records,
//! and under the shared lock after a few tries. Without writers a read costs two memory
//! loads more than a read of the current state.

use super::history::{self, read_log};
use super::lock::{LOG_END, LOG_GEN};
use super::{pins, Store};
use crate::dtype::DataType;
use crate::error::{NpkError, NpkResult};
use crate::format::history::{decode_records, Record, HEADER_BYTES, LOG_FILE};
use crate::format::metadata::{ArrayMetadata, MetadataFile};
use crate::io::fs;
use crate::read::version::{meta_at, Lineage, VersionedArray};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// Reads that raced a commit are tried again this many times before the shared lock.
const TRIES: usize = 3;

#[derive(Debug, Default)]
struct Cache {
    /// The log generation and end the records were read at.
    gen: u64,
    end: u64,
    /// The newest record read.
    last: Option<u64>,
    /// Where each array of the version is, from every record read so far (records are
    /// folded in as they are read, never kept: a long-lived snapshot beside a busy writer
    /// costs what the arrays' changed rows take, not what the log holds).
    lineages: HashMap<String, Lineage>,
    /// Bumped whenever a lineage changes.
    epoch: u64,
    arrays: HashMap<String, Arc<VersionedArray>>,
}

impl Cache {
    /// Takes in records newer than those read so far; an array whose lineage changes is
    /// opened again.
    fn fold(&mut self, meta: &MetadataFile, version: u64, records: &[Record]) {
        let Some(newest) = records.last() else {
            return;
        };
        self.last = Some(newest.version);
        let refs: Vec<&Record> = records.iter().collect();
        for (name, a) in &meta.arrays {
            if self
                .lineages
                .entry(name.clone())
                .or_default()
                .extend(&refs, version, a)
            {
                self.arrays.remove(name);
            }
        }
    }

    /// Starts again from `records` (all those after the version).
    fn reset(&mut self, meta: &MetadataFile, version: u64, records: &[Record]) {
        self.last = None;
        self.lineages.clear();
        self.arrays.clear();
        self.epoch += 1;
        self.fold(meta, version, records);
    }
}

/// One version of a store, readable while others write. Dropping it releases the version.
#[derive(Debug)]
pub struct Snapshot {
    store: Arc<Store>,
    version: u64,
    meta: MetadataFile,
    key: PathBuf,
    cache: Mutex<Cache>,
}

impl Store {
    /// A snapshot of the current version.
    pub fn snapshot(self: &Arc<Self>) -> NpkResult<Snapshot> {
        Snapshot::open(Arc::clone(self), None)
    }

    /// A snapshot of `version` (which history must still keep).
    pub fn snapshot_at(self: &Arc<Self>, version: u64) -> NpkResult<Snapshot> {
        Snapshot::open(Arc::clone(self), Some(version))
    }
}

impl Snapshot {
    /// Pins `version` (the current one when `None`) of `store`.
    pub fn open(store: Arc<Store>, version: Option<u64>) -> NpkResult<Self> {
        let key = store.store_lock().path().to_owned();
        let (version, meta, cache) = {
            let _g = store.shared_lock()?;
            let lock = store.store_lock();
            let now = history::current(store.dir(), lock)?;
            let v = version.unwrap_or(now);
            store.check_readable(v)?;
            store.refresh_locked()?;
            let current = Arc::clone(&store.state().meta);
            pins::pin(lock, &key, v)?;
            let mut cache = Cache {
                gen: lock.word(LOG_GEN).load(Ordering::Acquire),
                end: lock.word(LOG_END).load(Ordering::Acquire).saturating_sub(1),
                ..Cache::default()
            };
            let meta = if v == now {
                (*current).clone()
            } else {
                let log = read_log(store.dir());
                let log = match log {
                    Ok(l) => l.unwrap_or_default(),
                    Err(e) => {
                        pins::unpin(lock, &key, v);
                        return Err(e);
                    }
                };
                cache.end = log.end;
                let after: Vec<Record> = log
                    .records
                    .into_iter()
                    .map(|(_, r)| r)
                    .filter(|r| r.version > v)
                    .collect();
                let refs: Vec<&Record> = after.iter().collect();
                let meta = meta_at(&current, &refs, v);
                cache.reset(&meta, v, &after);
                meta
            };
            (v, meta, cache)
        };
        Ok(Snapshot {
            store,
            version,
            meta,
            key,
            cache: Mutex::new(cache),
        })
    }

    /// The view of array `name` in the store's current files, when the store is still at
    /// this snapshot's version (so the view holds exactly this version's rows): a reader
    /// copies through it at the store's own speed while [`Store::read_view`] says it is
    /// current, and through the snapshot once a commit has moved on. `None` when a commit
    /// came first.
    pub fn current_view(&self, name: &str) -> NpkResult<Option<Arc<crate::ArraySnapshot>>> {
        let _g = self.store.shared_lock()?;
        if history::current(self.store.dir(), self.store.store_lock())? != self.version {
            return Ok(None);
        }
        self.store.array_locked(name).map(Some)
    }

    /// Whether the store is still at this snapshot's version: no commit of any process has
    /// begun since (every commit moves the version word before it changes a file). One
    /// memory load.
    pub fn is_current(&self) -> bool {
        history::current_word(self.store.store_lock()) == Some(self.version)
    }

    /// The version this snapshot reads.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The store it reads.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Array names at the version, sorted.
    pub fn names(&self) -> Vec<String> {
        self.meta.arrays.keys().cloned().collect()
    }

    /// Whether the array existed at the version.
    pub fn has(&self, name: &str) -> bool {
        self.meta.arrays.contains_key(name)
    }

    /// The array's record at the version.
    pub fn array_metadata(&self, name: &str) -> NpkResult<ArrayMetadata> {
        self.meta
            .arrays
            .get(name)
            .cloned()
            .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))
    }

    /// Logical shape and dtype at the version.
    pub fn describe(&self, name: &str) -> NpkResult<(Vec<u64>, DataType)> {
        self.read(name, |a| Ok((a.view.logical_shape(), a.view.meta.dtype)))
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the records appended since the last look; returns the log generation and end
    /// they reach (a read that ran while either moved is read again).
    fn refresh(&self) -> NpkResult<(u64, u64)> {
        let lock = self.store.store_lock();
        for _ in 0..8 {
            let gen = lock.word(LOG_GEN).load(Ordering::Acquire);
            let end = lock.word(LOG_END).load(Ordering::Acquire).saturating_sub(1);
            {
                let c = self.cache();
                if gen == c.gen && end <= c.end {
                    return Ok((c.gen, c.end));
                }
            }
            let fresh = if gen == self.cache().gen {
                self.read_tail(end)
            } else {
                self.read_all().map(Some)
            };
            if lock.word(LOG_GEN).load(Ordering::Acquire) != gen {
                // Collected (or a record aborted) while it read, which may also have made
                // the read fail: read again.
                continue;
            }
            let fresh = fresh?;
            let mut c = self.cache();
            match fresh {
                Some((records, reached)) if gen != c.gen => {
                    c.reset(&self.meta, self.version, &records);
                    c.end = reached;
                    c.gen = gen;
                }
                Some((records, reached)) => {
                    c.fold(&self.meta, self.version, &records);
                    c.end = reached;
                }
                None => {}
            }
            return Ok((c.gen, c.end));
        }
        // Writers collecting all the time: read under the shared lock (no collection then).
        let _g = self.store.shared_lock()?;
        let gen = lock.word(LOG_GEN).load(Ordering::Acquire);
        let (records, reached) = self.read_all()?;
        let mut c = self.cache();
        c.reset(&self.meta, self.version, &records);
        c.end = reached;
        c.gen = gen;
        Ok((c.gen, c.end))
    }

    /// The whole log: the records after the snapshot's version, which must all be there.
    fn read_all(&self) -> NpkResult<(Vec<Record>, u64)> {
        let log = read_log(self.store.dir())?.unwrap_or_default();
        let after: Vec<Record> = log
            .records
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| r.version > self.version)
            .collect();
        let contiguous = after
            .iter()
            .zip(self.version + 1..)
            .all(|(r, v)| r.version == v);
        if log.header.floor > self.version || !contiguous {
            return Err(NpkError::InvalidOperation(format!(
                "the history of version {} was collected while this snapshot read it (its pin \
                 was lost: the process that opened it is gone, or it runs in another PID \
                 namespace); open a new snapshot",
                self.version
            )));
        }
        Ok((after, log.end))
    }

    /// The records between the last look and `end`; `None` when there are none.
    fn read_tail(&self, end: u64) -> NpkResult<Option<(Vec<Record>, u64)>> {
        let (from, last) = {
            let c = self.cache();
            (c.end.max(HEADER_BYTES), c.last)
        };
        if end <= from {
            return Ok(None);
        }
        let path = self.store.dir().join(LOG_FILE);
        let Some(f) = fs::open_read_opt(&path)? else {
            return Err(NpkError::corrupt(
                &path,
                "is gone while a snapshot reads it; open the snapshot again",
            ));
        };
        let mut buf = vec![0u8; usize::try_from(end - from).unwrap_or(0)];
        let got = fs::read_upto(&f, &mut buf, from).map_err(|e| NpkError::io(&path, e))?;
        buf.truncate(got);
        let (new, reached) =
            decode_records(&buf, from, last).map_err(|r| NpkError::corrupt(&path, r))?;
        if reached < end {
            // The end word is published after the record is written: a record that does not
            // decode up to it is damaged, and versions after it cannot be rebuilt.
            return Err(NpkError::corrupt(
                &path,
                format!("a record at {reached} does not decode up to {end}"),
            ));
        }
        let new = new
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| r.version > self.version)
            .collect();
        Ok(Some((new, reached)))
    }

    fn array(&self, name: &str) -> NpkResult<Arc<VersionedArray>> {
        if let Some(a) = self.cache().arrays.get(name) {
            return Ok(Arc::clone(a));
        }
        let a = self.array_metadata(name)?;
        let (lin, epoch) = {
            let c = self.cache();
            (c.lineages.get(name).cloned().unwrap_or_default(), c.epoch)
        };
        let v = Arc::new(VersionedArray::open(self.store.dir(), &a, lin)?);
        let mut c = self.cache();
        // Cached only if no lineage changed meanwhile (another thread's refresh): an array
        // opened from an older lineage serves this one read, which `read` checks and retries.
        if c.epoch == epoch {
            c.arrays.insert(name.to_owned(), Arc::clone(&v));
        }
        Ok(v)
    }

    /// Runs `f` on the array as it was at the version, again when a commit appended a record
    /// while it ran (so what `f` copied is of the version only).
    pub fn read<R>(
        &self,
        name: &str,
        mut f: impl FnMut(&VersionedArray) -> NpkResult<R>,
    ) -> NpkResult<R> {
        for _ in 0..TRIES {
            let before = self.refresh()?;
            // A writer editing a file in place (a bitmap an append grows) may make the open
            // or the copy fail: that is only an error if the log did not move meanwhile.
            let out = self.array(name).and_then(|a| f(&a));
            if self.refresh()? == before {
                return out;
            }
        }
        let _g = self.store.shared_lock()?;
        // No writer runs now, so this look succeeds without falling back to the lock.
        self.refresh()?;
        let a = self.array(name)?;
        f(&a)
    }

    /// The logical array's bytes, with its shape and dtype.
    pub fn load_bytes(&self, name: &str) -> NpkResult<(Vec<u64>, DataType, Vec<u8>)> {
        self.read(name, |a| {
            let shape = a.view.logical_shape();
            let n = if shape.is_empty() { 1 } else { shape[0] };
            let mut out = vec![0u8; a.view.logical_bytes()];
            if a.view.is_scalar() {
                a.view.copy_into(&mut out)?;
            } else {
                a.range_into(0, n, &mut out)?;
            }
            Ok((shape.clone(), a.view.meta.dtype, out))
        })
    }

    /// The bytes of logical rows `indices` (negative from the end).
    pub fn rows_bytes(&self, name: &str, indices: &[i64]) -> NpkResult<Vec<u8>> {
        self.read(name, |a| {
            let mut out = vec![0u8; indices.len() * a.view.row_bytes()];
            a.gather_into(indices, &mut out)?;
            Ok(out)
        })
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        pins::unpin(self.store.store_lock(), &self.key, self.version);
    }
}
