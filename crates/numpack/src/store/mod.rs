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
//! **Visibility.** Readers check (one `stat`) whether `metadata.npkm` was replaced since they
//! last read it, and reload it under the shared lock, so changes committed by other handles
//! and processes are seen by the next call.

mod append;
mod clone;
pub mod commit;
mod compact;
mod drop;
pub mod lock;
mod replace;
mod save;
pub mod verify;
mod writer;

pub use save::SaveItem;
pub use writer::ArrayWriter;

use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::bitmap::Bitmap;
use crate::format::metadata::{ArrayMetadata, MetadataFile};
use crate::format::names;
use crate::read::snapshot::ArraySnapshot;
use commit::{Txn, METADATA};
use lock::StoreLock;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// How to open a store.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// fsync every commit (slower; all-or-nothing also under power loss).
    pub durable: bool,
}

/// A decoded metadata file, the open file it came from and its `(dev, ino)`.
type MetadataRead = (MetadataFile, Option<File>, Option<(u64, u64)>);

/// What a handle last read of `metadata.npkm`.
#[derive(Debug, Default)]
struct State {
    meta: Arc<MetadataFile>,
    /// `(dev, ino)` of the metadata file read; `None` when there was none.
    meta_id: Option<(u64, u64)>,
    /// Held open so its inode cannot be reused by a later metadata file (no ABA).
    _meta_fd: Option<File>,
    /// Opened arrays, valid for `meta`.
    arrays: HashMap<String, Arc<ArraySnapshot>>,
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

fn file_id(m: &fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
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
        fs::create_dir_all(&dir).at(&dir)?;
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
        if commit::needs_recovery(&store.dir)? {
            let _g = store.lock.exclusive()?;
            commit::recover(&store.dir, store.durable)?;
            commit::remove_stale_temps(&store.dir)?;
        }
        if !store.meta_path().exists() {
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

    fn meta_path(&self) -> PathBuf {
        self.dir.join(METADATA)
    }

    /// Reads and decodes `metadata.npkm` (empty when absent), with the open file and its id.
    fn read_metadata(&self) -> NpkResult<MetadataRead> {
        let path = self.meta_path();
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((MetadataFile::default(), None, None))
            }
            Err(e) => return Err(NpkError::io(path, e)),
        };
        let id = file_id(&f.metadata().at(&path)?);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut bytes).at(&path)?;
        let meta = MetadataFile::decode(&bytes).map_err(|r| NpkError::corrupt(&path, r))?;
        for a in meta.arrays.values() {
            if !names::is_safe_data_file(&a.data_file) {
                return Err(NpkError::corrupt(
                    &path,
                    format!(
                        "array '{}': unsafe data file name {:?}",
                        a.name, a.data_file
                    ),
                ));
            }
        }
        Ok((meta, Some(f), Some(id)))
    }

    fn install(&self, meta: MetadataFile, fd: Option<File>) -> NpkResult<Arc<MetadataFile>> {
        let id = match &fd {
            Some(f) => Some(file_id(&f.metadata().at(&self.meta_path())?)),
            None => None,
        };
        let meta = Arc::new(meta);
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        // A record can stay byte-identical while its bitmap changed (two row drops in the
        // same microsecond), so no opened array survives a metadata change.
        st.arrays.clear();
        st.meta = Arc::clone(&meta);
        st.meta_id = id;
        st._meta_fd = fd;
        Ok(meta)
    }

    /// The current metadata, reloaded if another handle replaced it.
    pub fn metadata_file(&self) -> NpkResult<Arc<MetadataFile>> {
        let on_disk = match fs::metadata(self.meta_path()) {
            Ok(m) => Some(file_id(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(NpkError::io(self.meta_path(), e)),
        };
        {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            if st.meta_id == on_disk && (on_disk.is_some() || st.meta.arrays.is_empty()) {
                return Ok(Arc::clone(&st.meta));
            }
        }
        let _g = self.shared_lock()?;
        let (meta, fd, _) = self.read_metadata()?;
        self.install(meta, fd)
    }

    /// The shared lock, after finishing a mutation whose writer died (a journal found while
    /// no writer can be running means it was left behind).
    fn shared_lock(&self) -> NpkResult<lock::LockGuard<'_>> {
        loop {
            let g = self.lock.shared()?;
            if !self.dir.join(commit::JOURNAL).exists() {
                return Ok(g);
            }
            drop(g);
            let _x = self.lock.exclusive()?;
            commit::recover(&self.dir, self.durable)?;
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

    /// An opened, consistent view of one array (mmap + bitmap), cached until it changes.
    pub fn array(&self, name: &str) -> NpkResult<Arc<ArraySnapshot>> {
        let meta = self.metadata_file()?;
        {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = st.arrays.get(name) {
                if Arc::ptr_eq(&st.meta, &meta) {
                    return Ok(Arc::clone(s));
                }
            }
        }
        // Open under the shared lock so no writer swaps files between metadata and data.
        let _g = self.shared_lock()?;
        let (fresh, fd, id) = self.read_metadata()?;
        let record = fresh
            .arrays
            .get(name)
            .cloned()
            .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))?;
        let snap = Arc::new(ArraySnapshot::open(&self.dir, record)?);
        let same = self.state.read().unwrap_or_else(|e| e.into_inner()).meta_id == id;
        if !same {
            self.install(fresh, fd)?;
        }
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.arrays.insert(name.to_owned(), Arc::clone(&snap));
        Ok(snap)
    }

    /// Logical shape and dtype without mapping the data: from the metadata alone when the
    /// array has no bitmap (the common case), else from a full snapshot.
    pub fn describe(&self, name: &str) -> NpkResult<(Vec<u64>, crate::dtype::DataType)> {
        let meta = self.metadata_file()?;
        {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = st.arrays.get(name) {
                if Arc::ptr_eq(&st.meta, &meta) {
                    return Ok((s.logical_shape(), s.meta.dtype));
                }
            }
        }
        let rec = meta
            .arrays
            .get(name)
            .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))?;
        let has_bitmap =
            names::bitmap_file(&rec.data_file).is_some_and(|b| self.dir.join(b).exists());
        if rec.shape.is_empty() || !has_bitmap {
            return Ok((rec.shape.clone(), rec.dtype));
        }
        let snap = self.array(name)?;
        Ok((snap.logical_shape(), snap.meta.dtype))
    }

    /// Path of an array's data file.
    pub fn data_path(&self, name: &str) -> NpkResult<PathBuf> {
        Ok(self.dir.join(self.array_metadata(name)?.data_file))
    }

    /// The metadata on disk, read under a lock held by the caller. Reuses the copy this
    /// handle holds when the file is the one it read (the held fd rules out inode reuse).
    fn locked_metadata(&self) -> NpkResult<MetadataFile> {
        if let Ok(m) = fs::metadata(self.meta_path()) {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            if st.meta_id == Some(file_id(&m)) {
                return Ok((*st.meta).clone());
            }
        }
        Ok(self.read_metadata()?.0)
    }

    /// Runs a mutation under the exclusive lock and commits it.
    pub(crate) fn mutate<R>(&self, f: impl FnOnce(&mut Txn) -> NpkResult<R>) -> NpkResult<R> {
        let _g = self.lock.exclusive()?;
        commit::recover(&self.dir, self.durable)?;
        let meta = self.locked_metadata()?;
        let mut txn = Txn::new(&self.dir, meta, self.durable);
        let out = f(&mut txn)?;
        let (meta, fd) = txn.commit()?;
        self.mark_dirty(self.meta_path());
        match fd {
            Some(fd) => {
                self.install(meta, Some(fd))?;
            }
            None => {
                // Metadata unchanged, but files may have been swapped: drop cached views.
                let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
                st.arrays.clear();
            }
        }
        Ok(out)
    }

    /// Runs an in-place mutation (no metadata change) under the exclusive lock.
    pub(crate) fn locked<R>(&self, f: impl FnOnce(&MetadataFile) -> NpkResult<R>) -> NpkResult<R> {
        let _g = self.lock.exclusive()?;
        commit::recover(&self.dir, self.durable)?;
        let meta = self.locked_metadata()?;
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

    /// Makes everything written through this handle durable: fsync of the data and bitmap
    /// files, the metadata and the directory. Free when this handle wrote nothing.
    pub fn sync(&self) -> NpkResult<()> {
        let files: Vec<PathBuf> = self
            .dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        if files.is_empty() {
            return Ok(());
        }
        // Every commit marks the metadata dirty, so it is among `files`.
        for p in &files {
            match File::open(p) {
                Ok(f) => f.sync_all().at(p)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NpkError::io(p, e)),
            }
        }
        commit::sync_dir(&self.dir)
    }

    /// Removes every array.
    pub fn reset(&self) -> NpkResult<()> {
        self.mutate(|txn| {
            let records: Vec<ArrayMetadata> = txn.meta_mut().arrays.values().cloned().collect();
            txn.meta_mut().arrays.clear();
            let mut files: Vec<String> = Vec::new();
            for r in &records {
                files.push(r.data_file.clone());
                files.extend(names::bitmap_file(&r.data_file));
            }
            // Orphans of killed saves too, so a later array never inherits a stale file.
            for entry in fs::read_dir(txn.dir()).at(txn.dir())? {
                let n = entry
                    .at(txn.dir())?
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                let ours = (n.starts_with("data_") && n.ends_with(".npkd"))
                    || (n.starts_with("deleted_") && n.ends_with(".npkb"));
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

/// Reads an array's bitmap from disk (`None` when it has none).
pub(crate) fn read_bitmap(dir: &Path, a: &ArrayMetadata) -> NpkResult<Option<Bitmap>> {
    let Some(file) = names::bitmap_file(&a.data_file) else {
        return Ok(None);
    };
    let path = dir.join(file);
    match fs::read(&path) {
        Ok(bytes) => {
            // A 0-d array has no rows to delete (compaction would index its empty shape).
            if a.shape.is_empty() {
                return Err(NpkError::corrupt(
                    &path,
                    format!("array '{}' is 0-d but has a deletion bitmap", a.name),
                ));
            }
            // The bitmap is extended to every physical row: make sure the rows exist before
            // allocating for them (a corrupt record may claim 2^50 rows).
            check_data_len(dir, a)?;
            Bitmap::decode(&bytes, a.rows())
                .map(Some)
                .map_err(|r| NpkError::corrupt(&path, r))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NpkError::io(path, e)),
    }
}

/// A data file of `len` bytes must hold the `size_bytes` its record commits (longer is fine:
/// uncommitted bytes of an interrupted append).
pub(crate) fn check_file_len(path: &Path, len: u64, a: &ArrayMetadata) -> NpkResult<()> {
    if len < a.size_bytes {
        return Err(NpkError::corrupt(
            path,
            format!(
                "data file is {len} bytes but the metadata of array '{}' says {}",
                a.name, a.size_bytes
            ),
        ));
    }
    Ok(())
}

/// Most rows a deletion bitmap may cover.
const MAX_BITMAP_ROWS: u64 = 1 << 36;

/// Fails unless the data file holds at least the `size_bytes` its record promises. Call it
/// before building anything sized by the record's row count.
pub(crate) fn check_data_len(dir: &Path, a: &ArrayMetadata) -> NpkResult<()> {
    let path = dir.join(&a.data_file);
    check_file_len(&path, fs::metadata(&path).at(&path)?.len(), a)?;
    // Zero-width rows take no bytes, so the data file cannot bound their count: cap it
    // (2^36 rows is an 8 GiB bitmap) instead of trying to allocate petabytes.
    if a.rows() > MAX_BITMAP_ROWS {
        return Err(NpkError::InvalidShape(format!(
            "array '{}' has {} rows, more than a deletion bitmap can cover ({MAX_BITMAP_ROWS})",
            a.name,
            a.rows()
        )));
    }
    Ok(())
}

/// Maps logical indices (negative from the end) to physical rows; out of range is an error.
pub(crate) fn resolve_rows(
    indices: &[i64],
    logical: u64,
    bitmap: Option<&Bitmap>,
) -> NpkResult<Vec<u64>> {
    indices
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + logical as i64 } else { i };
            if j < 0 || j as u64 >= logical {
                return Err(NpkError::IndexOutOfBounds(i, logical));
            }
            Ok(bitmap.map_or(j as u64, |b| b.select(j as u64)))
        })
        .collect()
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
