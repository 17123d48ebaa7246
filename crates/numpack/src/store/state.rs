//! What a handle caches of the store, and when the cache is current.
//!
//! Every mutation, by any handle of any process, bumps the generation counter in the lock
//! file's shared header before it changes a file (see `lock.rs`). A handle's cached metadata,
//! opened arrays, bitmap look-ups and write descriptors are valid exactly while the
//! generation is the one they were read at: checking costs one memory load. A writer that
//! does not know the counter (another program) is still noticed: at most every
//! [`STAMP_INTERVAL`] the metadata file's identity, size and mtime are compared too.

use super::commit::METADATA;
use super::Store;
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::metadata::{ArrayMetadata, MetadataFile};
use crate::format::names;
use crate::io::fs;
use crate::read::snapshot::ArraySnapshot;
use memmap2::MmapMut;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// How often the metadata file itself is compared with what was read (foreign writers).
pub const STAMP_INTERVAL: Duration = Duration::from_millis(20);

/// Largest metadata file read (about two million arrays); longer is corruption.
pub const MAX_METADATA_BYTES: u64 = 256 << 20;

/// `(dev, ino, len, mtime ns)` of the metadata file.
pub(crate) type Stamp = (u64, u64, u64, i128);

pub(crate) fn stamp_of(m: &std::fs::Metadata) -> Stamp {
    (
        m.dev(),
        m.ino(),
        m.len(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    )
}

/// A decoded metadata file with everything needed to trust and edit it later.
#[derive(Debug, Default)]
pub(crate) struct MetadataRead {
    pub meta: MetadataFile,
    pub bytes: Vec<u8>,
    /// Open descriptor of the file read (read-write when permitted); `None` when absent.
    pub file: Option<Arc<File>>,
    pub writable: bool,
    pub stamp: Option<Stamp>,
}

/// A shared writable mapping of a data file's committed bytes.
pub(crate) type WriteMap = Arc<Mutex<MmapMut>>;

/// A data file opened for writing: descriptor and (for in-place row writes) a shared mapping
/// of its committed bytes.
#[derive(Debug)]
pub(crate) struct WriteHandle {
    pub data_file: String,
    pub file: Arc<File>,
    pub map: Option<(u64, WriteMap)>,
}

/// A handle's cache; valid while `gen` equals the lock file's generation.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub meta: Arc<MetadataFile>,
    pub bytes: Arc<Vec<u8>>,
    pub gen: Option<u64>,
    pub stamp: Option<Stamp>,
    pub checked: Option<Instant>,
    /// Held open also so its inode cannot be reused by a later metadata file (no ABA).
    pub meta_file: Option<Arc<File>>,
    pub meta_writable: bool,
    pub arrays: HashMap<String, Arc<ArraySnapshot>>,
    /// Whether an array has a bitmap file.
    pub bitmaps: HashMap<String, bool>,
    pub writers: HashMap<String, WriteHandle>,
}

impl Store {
    pub(crate) fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn meta_path(&self) -> std::path::PathBuf {
        self.dir.join(METADATA)
    }

    /// Reads and decodes `metadata.npkm` (empty when absent). Call under a lock.
    pub(crate) fn read_metadata(&self) -> NpkResult<MetadataRead> {
        let path = self.meta_path();
        let (f, writable) = match fs::open_rw(&path) {
            Ok(f) => (f, true),
            Err(e) if fs::is_not_found(&e) => return Ok(MetadataRead::default()),
            Err(NpkError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                (fs::open_read(&path)?, false)
            }
            Err(e) => return Err(e),
        };
        let m = f.metadata().at(&path)?;
        // A metadata file with other hard links is never written in place (the write would
        // reach the other names): commits replace it by rename.
        let writable = writable && m.nlink() == 1;
        let stamp = stamp_of(&m);
        if m.len() > MAX_METADATA_BYTES {
            return Err(NpkError::corrupt(
                &path,
                format!(
                    "is {} bytes, more than a metadata file can be ({MAX_METADATA_BYTES})",
                    m.len()
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(m.len() as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(&f, MAX_METADATA_BYTES), &mut bytes)
            .at(&path)?;
        let meta = MetadataFile::decode(&bytes).map_err(|r| NpkError::corrupt(&path, r))?;
        Ok(MetadataRead {
            meta,
            bytes,
            file: Some(Arc::new(f)),
            writable,
            stamp: Some(stamp),
        })
    }

    /// Makes `read` the cached metadata as of generation `gen`. With `keep`, opened arrays
    /// whose record did not change survive (an in-place commit changes no file but the
    /// metadata); otherwise every cached view is dropped, because a record can stay
    /// byte-identical while its files changed.
    pub(crate) fn install(&self, read: MetadataRead, gen: u64, keep: bool) -> Arc<MetadataFile> {
        let meta = Arc::new(read.meta);
        let mut st = self.state_mut();
        if keep {
            // Write handles check their file name and mapped length when used.
            st.arrays.retain(|n, s| meta.arrays.get(n) == Some(&s.meta));
        } else {
            st.arrays.clear();
            st.bitmaps.clear();
            st.writers.clear();
        }
        st.meta = Arc::clone(&meta);
        st.bytes = Arc::new(read.bytes);
        st.gen = Some(gen);
        st.stamp = read.stamp;
        st.checked = Some(Instant::now());
        st.meta_file = read.file;
        st.meta_writable = read.writable;
        meta
    }

    /// Whether the cache may be used without looking at the disk.
    fn current(&self, st: &State) -> bool {
        st.gen == Some(self.lock.generation()) && !super::commit::may_need_recovery(&self.lock)
    }

    /// The current metadata, reloaded if any handle changed it since it was read.
    pub fn metadata_file(&self) -> NpkResult<Arc<MetadataFile>> {
        {
            let st = self.state();
            if self.current(&st) {
                let due = st.checked.is_none_or(|t| t.elapsed() >= STAMP_INTERVAL);
                if !due {
                    return Ok(Arc::clone(&st.meta));
                }
                let on_disk = fs::entry(&self.meta_path())?.map(|m| stamp_of(&m));
                if on_disk == st.stamp {
                    let meta = Arc::clone(&st.meta);
                    drop(st);
                    self.state_mut().checked = Some(Instant::now());
                    return Ok(meta);
                }
            }
        }
        let _g = self.shared_lock()?;
        let gen = self.lock.generation();
        let read = self.read_metadata()?;
        Ok(self.install(read, gen, false))
    }

    /// Under the exclusive lock: makes sure the cache matches the disk.
    pub(crate) fn refresh_locked(&self) -> NpkResult<()> {
        let fresh = {
            let st = self.state();
            let due = st.checked.is_none_or(|t| t.elapsed() >= STAMP_INTERVAL);
            let same_stamp = || match fs::entry(&self.meta_path()) {
                Ok(Some(m)) => Some(stamp_of(&m)) == st.stamp,
                _ => st.stamp.is_none(),
            };
            st.gen == Some(self.lock.generation()) && (!due || same_stamp())
        };
        if !fresh {
            let read = self.read_metadata()?;
            self.install(read, self.lock.generation(), false);
        }
        Ok(())
    }

    /// An opened, consistent view of one array (mmap + bitmap), cached until it changes.
    pub fn array(&self, name: &str) -> NpkResult<Arc<ArraySnapshot>> {
        let meta = self.metadata_file()?;
        {
            let st = self.state();
            if Arc::ptr_eq(&st.meta, &meta) {
                if let Some(s) = st.arrays.get(name) {
                    return Ok(Arc::clone(s));
                }
            }
        }
        // Open under the shared lock so no writer swaps files between metadata and data.
        let _g = self.shared_lock()?;
        self.array_locked(name)
    }

    /// Runs `copy` on `snap` (a view from [`Store::array`]) so that what it copies is one
    /// committed state: `Some` unless `snap` is no longer the current view, or rows were
    /// written in place (a `replace` of any process) while `copy` ran; then the caller takes a
    /// fresh view and tries again (a sequence lock: see `StoreLock::writes`).
    pub fn read_view<R>(
        &self,
        snap: &Arc<ArraySnapshot>,
        copy: impl FnOnce(&ArraySnapshot) -> NpkResult<R>,
    ) -> NpkResult<Option<R>> {
        let before = self.lock.writes();
        if before % 2 == 1 || !self.is_current(snap) {
            return Ok(None);
        }
        let out = copy(snap)?;
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        Ok((self.lock.writes() == before).then_some(out))
    }

    /// Runs `f` on the current view of array `name` under the shared lock, which no writer
    /// holds at the same time: the contended path of consistent reads.
    pub fn read_locked<R>(
        &self,
        name: &str,
        f: impl FnOnce(&ArraySnapshot) -> NpkResult<R>,
    ) -> NpkResult<R> {
        let _g = self.shared_lock()?;
        let snap = self.array_locked(name)?;
        f(&snap)
    }

    /// Runs `copy` on the current version of array `name` and returns what it produced from
    /// one committed state ([`Store::read_view`] a few times, then [`Store::read_locked`]).
    pub fn read_consistent<R>(
        &self,
        name: &str,
        mut copy: impl FnMut(&ArraySnapshot) -> NpkResult<R>,
    ) -> NpkResult<R> {
        for _ in 0..3 {
            let snap = self.array(name)?;
            if let Some(out) = self.read_view(&snap, &mut copy)? {
                return Ok(out);
            }
            std::thread::yield_now();
        }
        self.read_locked(name, copy)
    }

    /// Whether `snap` is the view of its array at the current generation.
    fn is_current(&self, snap: &Arc<ArraySnapshot>) -> bool {
        let st = self.state();
        st.gen == Some(self.lock.generation())
            && !super::commit::may_need_recovery(&self.lock)
            && st
                .arrays
                .get(&snap.meta.name)
                .is_some_and(|s| Arc::ptr_eq(s, snap))
    }

    /// [`Store::array`] for a caller that holds the shared lock (no writer commits meanwhile):
    /// the cached view when it is of the current generation, else one opened from the
    /// metadata of this generation, and cached.
    pub(crate) fn array_locked(&self, name: &str) -> NpkResult<Arc<ArraySnapshot>> {
        let gen = self.lock.generation();
        let cached = {
            let st = self.state();
            (st.gen == Some(gen)).then(|| (Arc::clone(&st.meta), st.arrays.get(name).cloned()))
        };
        let meta = match cached {
            Some((_, Some(snap))) => return Ok(snap),
            Some((meta, None)) => meta,
            None => {
                let read = self.read_metadata()?;
                self.install(read, gen, false)
            }
        };
        let record = meta
            .arrays
            .get(name)
            .cloned()
            .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))?;
        let snap = Arc::new(ArraySnapshot::open(&self.dir, record)?);
        let mut st = self.state_mut();
        if st.gen == Some(gen) {
            st.bitmaps.insert(name.to_owned(), snap.bitmap().is_some());
            st.arrays.insert(name.to_owned(), Arc::clone(&snap));
        }
        Ok(snap)
    }

    /// Whether the array of record `a` has a bitmap file (cached per generation).
    pub(crate) fn has_bitmap(&self, a: &ArrayMetadata) -> bool {
        let gen = self.lock.generation();
        {
            let st = self.state();
            if st.gen == Some(gen) {
                if let Some(&b) = st.bitmaps.get(&a.name) {
                    return b;
                }
            }
        }
        // Anything at the bitmap's name counts: reading it refuses what is not a file.
        let found = names::bitmap_file(&a.data_file)
            .is_some_and(|b| !matches!(fs::entry(&self.dir.join(b)), Ok(None)));
        let mut st = self.state_mut();
        if st.gen == Some(gen) {
            st.bitmaps.insert(a.name.clone(), found);
        }
        found
    }

    /// Logical shape and dtype without mapping the data: from the metadata alone when the
    /// array has no bitmap (the common case), else from a full snapshot.
    pub fn describe(&self, name: &str) -> NpkResult<(Vec<u64>, crate::dtype::DataType)> {
        let meta = self.metadata_file()?;
        {
            let st = self.state();
            if Arc::ptr_eq(&st.meta, &meta) {
                if let Some(s) = st.arrays.get(name) {
                    return Ok((s.logical_shape(), s.meta.dtype));
                }
            }
        }
        let rec = meta
            .arrays
            .get(name)
            .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))?;
        if rec.shape.is_empty() || !self.has_bitmap(rec) {
            return Ok((rec.shape.clone(), rec.dtype));
        }
        let snap = self.array(name)?;
        Ok((snap.logical_shape(), snap.meta.dtype))
    }

    /// Under the exclusive lock: a write descriptor of the data file of record `a`, and with
    /// `map`, a shared writable mapping of its committed bytes. Cached per generation.
    pub(crate) fn write_handle(
        &self,
        a: &ArrayMetadata,
        map: bool,
    ) -> NpkResult<(Arc<File>, Option<WriteMap>)> {
        let path = self.dir.join(&a.data_file);
        let mut st = self.state_mut();
        if st.gen != Some(self.lock.generation()) {
            st.writers.clear();
        }
        let reuse = st
            .writers
            .get(&a.name)
            .is_some_and(|h| h.data_file == a.data_file);
        if !reuse {
            let f = fs::open_rw(&path)?;
            let links = f.metadata().at(&path)?.nlink();
            if links > 1 {
                // An in-place write would change the file under every other name too, which
                // may lie outside the store (a hard-linked copy or backup).
                return Err(NpkError::InvalidOperation(format!(
                    "the data file {} of array '{}' has {links} hard links: writing it in place \
                     would change every copy; save the array again (or clone it) to give it a \
                     file of its own",
                    a.data_file, a.name
                )));
            }
            st.writers.insert(
                a.name.clone(),
                WriteHandle {
                    data_file: a.data_file.clone(),
                    file: Arc::new(f),
                    map: None,
                },
            );
        }
        let h = st.writers.get_mut(&a.name).expect("present");
        if !map {
            return Ok((Arc::clone(&h.file), None));
        }
        if !matches!(&h.map, Some((len, _)) if *len == a.size_bytes) {
            super::check_file_len(&path, h.file.metadata().at(&path)?.len(), a)?;
            let len = usize::try_from(a.size_bytes)
                .map_err(|_| NpkError::corrupt(&path, "array larger than the address space"))?;
            // SAFETY: the file holds at least `len` committed bytes (checked above), and
            // numpack never shrinks committed bytes in place; the mapping is only written
            // under the store's exclusive lock, through the mutex.
            let m = unsafe { memmap2::MmapOptions::new().len(len).map_mut(&*h.file) }.at(&path)?;
            h.map = Some((a.size_bytes, Arc::new(Mutex::new(m))));
        }
        let m = h.map.as_ref().map(|(_, m)| Arc::clone(m));
        Ok((Arc::clone(&h.file), m))
    }
}
