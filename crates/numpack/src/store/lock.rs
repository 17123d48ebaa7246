//! The store lock: `.numpack.lock`, locked with `std::fs::File::lock` (flock on Unix).
//!
//! flock locks belong to an open file description, so threads sharing one `Store` would not
//! exclude each other through it; a process-local mutex serialises them first.
//!
//! The lock file's first page is also shared memory between every handle of the store
//! (threads and processes map it): a **generation** counter that each mutation bumps before
//! it changes anything, so readers tell with one memory load whether their cached metadata is
//! current, and **recovery flags** that say a journal may need replaying, so writers and
//! readers skip the journal look-up on the common path, and an **in-place write counter**
//! that readers copying rows use as a sequence lock. The rest of the file holds the undo
//! record of an in-place `replace` (see `commit.rs`). None of it is needed to read a store:
//! a zeroed or missing lock file only costs one journal look-up.

use crate::error::{IoContext, NpkResult};
use crate::io::fs;
use memmap2::MmapMut;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Name of the lock file (never matches a data, bitmap or metadata file).
pub const LOCK_FILE: &str = ".numpack.lock";

/// Bytes of the shared header page.
pub const HEADER_BYTES: u64 = 4096;
/// Offset of the undo record in the lock file (after the header page).
pub const UNDO_OFFSET: u64 = HEADER_BYTES;

/// Recovery flag: a `.numpack.journal` file may exist.
pub const FLAG_JOURNAL: u64 = 1;
/// Recovery flag: an undo record in the lock file is live (its length in the header).
pub const FLAG_UNDO: u64 = 2;
/// Recovery flag: a history record was appended for a commit that may not have happened.
pub const FLAG_HISTORY: u64 = 4;
/// Every flag numpack sets; other bits are cleared by recovery.
pub const KNOWN_FLAGS: u64 = FLAG_JOURNAL | FLAG_UNDO | FLAG_HISTORY;

const GENERATION: usize = 0;
/// Index of the flags word in the header.
pub(crate) const FLAGS: usize = 1;
/// Index of the undo-length word in the header.
pub(crate) const UNDO_LEN: usize = 2;
const WRITES: usize = 3;
/// History words (see `store/history.rs`); each holds its value + 1, 0 meaning "not known
/// yet: read the log".
pub(crate) const VERSION: usize = 4;
pub(crate) const KEEP: usize = 5;
pub(crate) const LOG_END: usize = 6;
pub(crate) const LOG_GEN: usize = 7;
pub(crate) const RECORDS: usize = 8;
/// crc32 of the metadata after the last recorded commit.
pub(crate) const LAST_CRC: usize = 10;
/// Live pin slots (a plain count).
pub(crate) const PINS: usize = 9;
/// First word of the pin slots: `PIN_SLOTS` pairs of (owner pid, pinned version + 1).
pub(crate) const PIN_BASE: usize = 256;
/// Pin slots: one per process that holds snapshots of the store.
pub const PIN_SLOTS: usize = 128;

/// The lock file of one store handle.
#[derive(Debug)]
pub struct StoreLock {
    /// The descriptor flock works on, and the process that opened it.
    file: Mutex<(u32, File)>,
    /// A second descriptor for positional I/O on the undo area (no mutex needed).
    io: File,
    header: MmapMut,
    path: PathBuf,
    /// The history log, open for appends: the log generation it was opened at, the file,
    /// and its length (grown ahead of the records, see `history::append`).
    pub(crate) log: Mutex<Option<(u64, File, u64)>>,
}

/// Ends a run of in-place writes when dropped (also on an error or a panic).
#[derive(Debug)]
pub struct WritesGuard<'a>(&'a StoreLock);

impl Drop for WritesGuard<'_> {
    fn drop(&mut self) {
        self.0.end_writes();
    }
}

/// Held while the store is locked; unlocks on drop.
pub struct LockGuard<'a> {
    file: MutexGuard<'a, (u32, File)>,
}

impl StoreLock {
    /// Opens (creating) the lock file of the store in `dir` and maps its header page.
    pub fn open(dir: &Path) -> NpkResult<Self> {
        let path = dir.join(LOCK_FILE);
        let file = fs::open_or_create(&path)?;
        let links = std::os::unix::fs::MetadataExt::nlink(&file.metadata().at(&path)?);
        if links > 1 {
            // Its header and undo area are written in place: never into another file.
            return Err(crate::error::NpkError::corrupt(
                &path,
                format!(
                    "has {links} hard links; numpack writes this file in place, so it must be the \
                     store's own (remove it: it is recreated)"
                ),
            ));
        }
        if file.metadata().at(&path)?.len() < HEADER_BYTES {
            // Growing never changes existing bytes, so racing openers are harmless.
            file.set_len(HEADER_BYTES).at(&path)?;
        }
        let io = file.try_clone().at(&path)?;
        // SAFETY: the mapping covers the first page of a file that is never shrunk below it
        // (numpack only grows the lock file); its words are only accessed atomically.
        let header = unsafe {
            memmap2::MmapOptions::new()
                .len(HEADER_BYTES as usize)
                .map_mut(&file)
        }
        .at(&path)?;
        Ok(StoreLock {
            file: Mutex::new((std::process::id(), file)),
            io,
            header,
            path,
            log: Mutex::new(None),
        })
    }

    pub(crate) fn word(&self, i: usize) -> &AtomicU64 {
        let base = self.header.as_ptr() as *mut u64;
        // SAFETY: the mapping is page-aligned and at least 4096 bytes, so word `i` (< 512) is
        // in bounds and 8-byte aligned; it lives as long as `self`. Shared memory between
        // processes is only ever read and written through atomics.
        unsafe { AtomicU64::from_ptr(base.add(i)) }
    }

    /// The store's generation: changes whenever any handle starts a mutation.
    pub fn generation(&self) -> u64 {
        self.word(GENERATION).load(Ordering::Acquire)
    }

    /// Bumps the generation. Call under the exclusive lock, before changing any file.
    pub fn bump_generation(&self) -> u64 {
        self.word(GENERATION).fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The recovery flags.
    pub fn flags(&self) -> u64 {
        self.word(FLAGS).load(Ordering::Acquire)
    }

    /// Sets recovery flags (exclusive lock held).
    pub fn set_flags(&self, f: u64) {
        self.word(FLAGS).fetch_or(f, Ordering::AcqRel);
    }

    /// Clears recovery flags (exclusive lock held).
    pub fn clear_flags(&self, f: u64) {
        self.word(FLAGS).fetch_and(!f, Ordering::AcqRel);
    }

    /// Length of the live undo record.
    pub fn undo_len(&self) -> u64 {
        self.word(UNDO_LEN).load(Ordering::Acquire)
    }

    /// Records the length of the undo record just written.
    pub fn set_undo_len(&self, n: u64) {
        self.word(UNDO_LEN).store(n, Ordering::Release);
    }

    /// The in-place write counter: odd while rows are being written in place (a `replace`,
    /// or recovery writing old rows back). Readers that copy rows compare it before and after
    /// (a sequence lock), so a copy never mixes two states.
    pub fn writes(&self) -> u64 {
        self.word(WRITES).load(Ordering::Acquire)
    }

    /// Marks the start of in-place row writes (exclusive lock held): the counter becomes odd.
    pub fn begin_writes(&self) {
        if self.word(WRITES).fetch_add(1, Ordering::AcqRel) % 2 == 1 {
            // Left odd by a writer that died: start from even again.
            self.word(WRITES).fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Marks the end of in-place row writes: the counter becomes even.
    pub fn end_writes(&self) {
        let w = self.word(WRITES);
        if w.load(Ordering::Acquire) % 2 == 1 {
            w.fetch_add(1, Ordering::Release);
        }
    }

    /// [`StoreLock::begin_writes`] now and [`StoreLock::end_writes`] when the guard drops.
    pub fn writing(&self) -> WritesGuard<'_> {
        self.begin_writes();
        WritesGuard(self)
    }

    /// The lock file, for positional I/O on the undo area.
    pub fn file(&self) -> &File {
        &self.io
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fsync of the lock file (undo record and header), for durable stores.
    pub fn sync(&self) -> NpkResult<()> {
        self.header.flush().at(&self.path)?;
        self.io.sync_data().at(&self.path)
    }

    fn guard(&self) -> NpkResult<MutexGuard<'_, (u32, File)>> {
        // A panic while locked leaves nothing half-done on disk that recovery can't handle.
        let mut g = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        if g.0 != pid {
            // A forked child shares the parent's open file description, and with it the
            // parent's flock: locking through it would convert the parent's lock instead of
            // waiting for it. The child locks through a descriptor of its own.
            let f = fs::open_read(&self.path)?;
            if !fs::same_file(
                &f.metadata().at(&self.path)?,
                &self.io.metadata().at(&self.path)?,
            ) {
                // Replaced since this handle mapped it: locking the new file would not
                // exclude the writers of the one mapped.
                return Err(crate::error::NpkError::InvalidOperation(format!(
                    "{} was replaced after this store handle opened it; open the store \
                     again in this process",
                    self.path.display()
                )));
            }
            *g = (pid, f);
        }
        Ok(g)
    }

    /// Exclusive lock: one writer across threads and processes.
    pub fn exclusive(&self) -> NpkResult<LockGuard<'_>> {
        let file = self.guard()?;
        file.1.lock().at(&self.path)?;
        Ok(LockGuard { file })
    }

    /// Shared lock: excludes writers while a reader loads metadata and opens data files.
    pub fn shared(&self) -> NpkResult<LockGuard<'_>> {
        let file = self.guard()?;
        file.1.lock_shared().at(&self.path)?;
        Ok(LockGuard { file })
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.file.1.unlock();
    }
}
