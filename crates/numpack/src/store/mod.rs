//! A store directory and its mutations.
//!
//! **Atomicity.** Every mutation runs under the store lock (exclusive across threads and
//! processes), re-reads `metadata.npkm` from disk, prepares new files under temporary names
//! and commits them through [`commit::Txn`]: a process killed at any instant leaves every
//! array as it was before the call or after it. In-place row replacement is protected by an
//! undo journal. Appends write past the committed end of the data file first; bytes beyond
//! `size_bytes` are ignored by readers and trimmed by the next writer.
//!
//! **Durability.** Mutations do not fsync by default (a killed process loses nothing; the
//! page cache survives it). [`Store::sync`] and dropping the store fsync every file written
//! through it, the metadata and the directory. With [`OpenOptions::durable`] (or the
//! environment variable `NUMPACK_DURABLE=1`) every commit is fsynced, which also makes each
//! mutation all-or-nothing under power loss.
//!
//! **Visibility.** Every mutation bumps a generation counter in the lock file's shared page
//! first; readers compare it with the one their cache was read at (one memory load) and
//! reload under the shared lock, so changes committed by other handles and processes are
//! seen by the next call (see `state.rs`).

mod append;
pub mod attrs;
mod clone;
mod collect;
pub mod commit;
mod compact;
mod drop;
pub mod history;
mod index;
pub mod lock;
mod pins;
mod reaper;
mod replace;
mod restore;
mod save;
mod segmented;
mod snapshot;
mod staged;
mod state;
pub mod verify;
mod versions;
mod writer;

pub use append::AppendItem;
pub use index::{width as index_width, IndexInfo, SearchOptions, Searched};
pub use replace::ReplaceItem;
pub use save::SaveItem;
pub use snapshot::Snapshot;
pub use staged::StageMode;
pub use state::MAX_METADATA_BYTES;
pub use versions::{GcReport, VersionInfo};
pub use writer::ArrayWriter;

use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::metadata::{ArrayMetadata, MetadataFile};
use crate::format::names;
use crate::io::fs;
use commit::{MetaBase, MetaWrite, Txn, METADATA};
use lock::StoreLock;
use state::{MetadataRead, State};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// How to open a store.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// fsync every commit (slower; all-or-nothing also under power loss).
    pub durable: bool,
}

/// An open store directory. `Send + Sync`: share it between threads, or open several.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    lock: StoreLock,
    state: RwLock<State>,
    durable: bool,
    /// Files written through this handle since the last sync.
    dirty: Mutex<HashSet<PathBuf>>,
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The `last_modified` a commit at `now` gives record `a`: strictly later than its current
/// one (an index tells the array's commits apart by it, even within one microsecond).
pub(crate) fn next_stamp(a: &ArrayMetadata, now: u64) -> u64 {
    now.max(a.last_modified.saturating_add(1))
}

impl Store {
    /// Opens the store in `dir`, creating the directory if needed, and finishes any mutation
    /// a killed process left behind.
    pub fn open(dir: impl AsRef<Path>) -> NpkResult<Self> {
        let durable = std::env::var("NUMPACK_DURABLE").is_ok_and(|v| v == "1");
        Self::open_with(dir, OpenOptions { durable })
    }

    /// [`Store::open`] with options.
    pub fn open_with(dir: impl AsRef<Path>, options: OpenOptions) -> NpkResult<Self> {
        let dir = dir.as_ref().to_path_buf();
        let created = !dir.exists();
        std::fs::create_dir_all(&dir).at(&dir)?;
        if created && options.durable {
            // The new directory's entry in its parent must survive a power loss too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::sync_dir(parent)?;
            }
        }
        if !dir.is_dir() {
            return Err(NpkError::io(
                &dir,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "not a directory"),
            ));
        }
        let lock = StoreLock::open(&dir)?;
        let store = Store {
            dir,
            lock,
            state: RwLock::new(State::default()),
            durable: options.durable,
            dirty: Mutex::new(HashSet::new()),
        };
        // A lock file without history words (new, or repaired after a power loss) has lost
        // the flags too: the last history record, if any, is judged again.
        let words_lost = history::current_word(&store.lock).is_none()
            && fs::entry(&store.dir.join(crate::format::history::LOG_FILE))?.is_some();
        if commit::may_need_recovery(&store.lock)
            || words_lost
            || commit::needs_recovery(&store.dir)?
        {
            let _g = store.lock.exclusive()?;
            commit::recover(&store.dir, &store.lock, store.durable, true)?;
            commit::remove_stale_temps(&store.dir)?;
        }
        if store.durable {
            // A lock file written back by an earlier, non-durable session may still hold a
            // live undo flag on disk: sync its cleared header once, so that a power loss
            // cannot bring an old undo record back over rows this session made durable.
            store.lock.sync()?;
        }
        if fs::entry(&store.dir.join(METADATA))?.is_none() {
            // A store directory always holds its metadata, so a store that was opened but
            // never written to is still a valid (empty) store for packers and other readers.
            store.mutate(|txn| {
                txn.meta_mut();
                Ok(())
            })?;
        }
        store.metadata_file()?;
        Ok(store)
    }

    /// Holds the store's shared lock: no writer (thread or process) commits while the guard
    /// lives, so files read meanwhile form one consistent state.
    pub fn read_lock(&self) -> NpkResult<lock::LockGuard<'_>> {
        self.shared_lock()
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The shared lock, after finishing a mutation whose writer died (a recovery flag seen
    /// while no writer can be running means it was left behind).
    fn shared_lock(&self) -> NpkResult<lock::LockGuard<'_>> {
        loop {
            let g = self.lock.shared()?;
            if !commit::may_need_recovery(&self.lock) {
                return Ok(g);
            }
            drop(g);
            let _x = self.lock.exclusive()?;
            commit::recover(&self.dir, &self.lock, self.durable, false)?;
        }
    }

    /// The record of one array.
    pub fn array_metadata(&self, name: &str) -> NpkResult<ArrayMetadata> {
        self.metadata_file()?
            .arrays
            .get(name)
            .cloned()
            .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))
    }

    /// Array names, sorted.
    pub fn names(&self) -> NpkResult<Vec<String>> {
        Ok(self.metadata_file()?.arrays.keys().cloned().collect())
    }

    /// Whether the array exists.
    pub fn has(&self, name: &str) -> NpkResult<bool> {
        Ok(self.metadata_file()?.arrays.contains_key(name))
    }

    /// Path of an array's data file.
    pub fn data_path(&self, name: &str) -> NpkResult<PathBuf> {
        Ok(self.dir.join(self.array_metadata(name)?.data_file))
    }

    /// Takes the exclusive lock and brings the cache up to date with the disk, finishing a
    /// dead writer's mutation first.
    fn lock_for_write(&self) -> NpkResult<lock::LockGuard<'_>> {
        let g = self.lock.exclusive()?;
        if commit::may_need_recovery(&self.lock) {
            commit::recover(&self.dir, &self.lock, self.durable, false)?;
        }
        self.refresh_locked()?;
        Ok(g)
    }

    /// Runs a mutation under the exclusive lock and commits it.
    pub(crate) fn mutate<R>(&self, f: impl FnOnce(&mut Txn) -> NpkResult<R>) -> NpkResult<R> {
        let _g = self.lock_for_write()?;
        let (meta, bytes, file) = {
            let st = self.state();
            let file = st.meta_file.clone().filter(|_| st.meta_writable);
            (Arc::clone(&st.meta), Arc::clone(&st.bytes), file)
        };
        let base = file.as_deref().map(|file| MetaBase {
            file,
            bytes: &bytes,
        });
        let plan = history::plan(&self.dir, &self.lock)?;
        let meta_for_crc = Arc::clone(&meta);
        let mut txn = Txn::new(&self.dir, meta, self.durable, &self.lock, base);
        txn.history = Some(plan);
        if plan.record {
            txn.committed_crc = Some(history::bytes_crc(&meta_for_crc, &bytes));
        }
        let done = f(&mut txn).and_then(|out| txn.commit().map(|c| (out, c)));
        let (out, (meta, written)) = history::finish(self, plan, done)?;
        let gen = self.lock.generation();
        // Views survive an edit of the metadata alone, not one of a bitmap too.
        let keep_views = matches!(written, MetaWrite::InPlace(_));
        match written {
            MetaWrite::Unchanged => {
                let mut st = self.state_mut();
                if st.gen != Some(gen) {
                    // Files may have been swapped under an unchanged metadata file.
                    st.arrays.clear();
                    st.bitmaps.clear();
                    st.writers.clear();
                    st.gen = Some(gen);
                }
            }
            MetaWrite::InPlace(bytes) | MetaWrite::Patched(bytes) => {
                self.mark_dirty(self.dir.join(METADATA));
                let file = file.expect("an in-place commit has the file");
                let path = self.dir.join(METADATA);
                let stamp = Some(state::stamp_of(&file.metadata().at(&path)?));
                let read = MetadataRead {
                    meta,
                    bytes,
                    file: Some(file),
                    writable: true,
                    stamp,
                };
                self.install(read, gen, keep_views);
            }
            MetaWrite::Replaced(file, bytes) => {
                self.mark_dirty(self.dir.join(METADATA));
                let path = self.dir.join(METADATA);
                let stamp = Some(state::stamp_of(&file.metadata().at(&path)?));
                let read = MetadataRead {
                    meta,
                    bytes,
                    file: Some(Arc::new(file)),
                    writable: true,
                    stamp,
                };
                self.install(read, gen, false);
            }
        }
        Ok(out)
    }

    /// Runs an in-place mutation (no metadata change) under the exclusive lock.
    pub(crate) fn locked<R>(&self, f: impl FnOnce(&MetadataFile) -> NpkResult<R>) -> NpkResult<R> {
        let _g = self.lock_for_write()?;
        let meta = Arc::clone(&self.state().meta);
        f(&meta)
    }

    pub(crate) fn mark_dirty(&self, path: PathBuf) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path);
    }

    pub(crate) fn durable(&self) -> bool {
        self.durable
    }

    pub(crate) fn store_lock(&self) -> &StoreLock {
        &self.lock
    }

    /// Makes everything written through this handle durable: fsync of the data and bitmap
    /// files, the metadata and the directory. Free when this handle wrote nothing.
    pub fn sync(&self) -> NpkResult<()> {
        let files: Vec<PathBuf> = self
            .dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        // Replaced files this process handed to the reaper are gone before sync returns.
        reaper::wait_idle();
        if files.is_empty() {
            return Ok(());
        }
        // Every commit marks the metadata dirty, so it is among `files`.
        for p in &files {
            // A segment folder that got new entries is synced as a directory.
            if fs::entry(p)?.is_some_and(|m| m.file_type().is_dir()) {
                fs::sync_dir(p)?;
            } else if let Some(f) = fs::open_read_opt(p)? {
                fs::sync(&f, p)?;
            }
        }
        fs::sync_dir(&self.dir)
    }

    /// Removes every array.
    pub fn reset(&self) -> NpkResult<()> {
        self.mutate(|txn| {
            txn.op = crate::format::history::Op::Reset;
            let records: Vec<ArrayMetadata> = txn.meta_mut().arrays.values().cloned().collect();
            txn.meta_mut().arrays.clear();
            let mut files: Vec<String> = Vec::new();
            for r in &records {
                files.push(r.data_file.clone());
                files.extend(names::bitmap_file(&r.data_file));
                files.extend(names::index_file(&r.data_file));
                files.extend(names::index_log_file(&r.data_file));
                files.extend(names::attrs_file(&r.data_file));
                if let Some(stem) =
                    names::data_stem(&r.data_file).filter(|_| names::is_manifest(&r.data_file))
                {
                    txn.remove_folder_after(names::segment_dir(stem), r.data_file.clone());
                }
            }
            // Orphans of killed saves too, so a later array never inherits a stale file.
            for entry in std::fs::read_dir(txn.dir()).at(txn.dir())? {
                let entry = entry.at(txn.dir())?;
                // A directory of such a name is not numpack's: left alone.
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let n = entry.file_name().to_string_lossy().into_owned();
                let ours = names::is_safe_data_file(&n)
                    || names::is_bitmap_file(&n)
                    || names::is_index_file(&n)
                    || names::is_attrs_file(&n);
                if ours && !files.contains(&n) {
                    files.push(n);
                }
            }
            for f in files {
                txn.stage_remove(&f);
            }
            Ok(())
        })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

pub(crate) use crate::read::deleted::{
    check_file_len, check_row_state, fold_zero_width, read_bitmap,
};

/// For an array whose rows hold no bytes, in a mutation: its record with deleted rows folded
/// into the row count, and whether a bitmap was there; the commit removes that bitmap (such
/// arrays keep no per-row state). Other arrays come back unchanged.
pub(crate) fn fold_away(txn: &mut Txn, a: &ArrayMetadata) -> NpkResult<(ArrayMetadata, bool)> {
    let (folded, had_bitmap) = fold_zero_width(txn.dir(), a)?;
    if had_bitmap {
        txn.stage_remove(&names::bitmap_file(&a.data_file).expect("data file has a bitmap name"));
    }
    Ok((folded, had_bitmap))
}

/// Removes array `name` from the commit: its record now, its data file and bitmap at the
/// commit. Whether it existed.
pub(crate) fn remove_array(txn: &mut Txn, name: &str) -> bool {
    let Some(a) = txn.meta_mut().arrays.remove(name) else {
        return false;
    };
    txn.stage_remove(&a.data_file);
    if let Some(b) = names::bitmap_file(&a.data_file) {
        txn.stage_remove(&b);
    }
    index::forget_files(txn, &a.data_file);
    attrs::forget(txn, &a.data_file);
    if let Some(stem) = names::data_stem(&a.data_file).filter(|_| segmented::is_segmented(&a)) {
        txn.remove_folder_after(names::segment_dir(stem), a.data_file.clone());
    }
    true
}

/// Fails unless `data` holds exactly `n` rows of array `a`.
pub(crate) fn check_row_bytes(a: &ArrayMetadata, n: u64, data: &[u8]) -> NpkResult<()> {
    let row = a.row_bytes();
    if n.checked_mul(row) != Some(data.len() as u64) {
        return Err(NpkError::InvalidShape(format!(
            "array '{}': {n} rows need {} bytes, got {}",
            a.name,
            n.saturating_mul(row),
            data.len()
        )));
    }
    Ok(())
}

/// Fails when a call names one array twice: each array is one item of its commit.
pub(crate) fn check_unique<'a>(names: impl IntoIterator<Item = &'a str>) -> NpkResult<()> {
    let mut seen = HashSet::new();
    match names.into_iter().find(|n| !seen.insert(*n)) {
        Some(dup) => Err(NpkError::InvalidOperation(format!(
            "array '{dup}' given twice"
        ))),
        None => Ok(()),
    }
}

/// Fails unless `a` has a row axis.
pub(crate) fn require_rows(a: &ArrayMetadata) -> NpkResult<()> {
    if a.shape.is_empty() {
        return Err(NpkError::InvalidShape(format!(
            "array '{}' is 0-d and has no rows",
            a.name
        )));
    }
    Ok(())
}

/// Checks that `shape` (of new rows) fits the stored array: same ndim, same trailing dims.
pub(crate) fn check_rows_shape(a: &ArrayMetadata, shape: &[u64]) -> NpkResult<()> {
    require_rows(a)?;
    if shape.len() != a.shape.len() {
        return Err(NpkError::InvalidShape(format!(
            "Dimension mismatch for array '{}': stored {} dimensions {:?}, got {} {:?}",
            a.name,
            a.shape.len(),
            a.shape,
            shape.len(),
            shape
        )));
    }
    if shape[1..] != a.shape[1..] {
        return Err(NpkError::InvalidShape(format!(
            "Shape mismatch for array '{}': rows of shape {:?} expected, got {:?}",
            a.name,
            &a.shape[1..],
            &shape[1..]
        )));
    }
    Ok(())
}

/// Checks the element type of new rows.
pub(crate) fn check_dtype(a: &ArrayMetadata, dtype: crate::dtype::DataType) -> NpkResult<()> {
    if a.dtype != dtype {
        return Err(NpkError::InvalidDtype(format!(
            "array '{}' stores {} but {} was given (no implicit casting)",
            a.name, a.dtype, dtype
        )));
    }
    Ok(())
}
