//! The store lock: `.numpack.lock`, locked with `std::fs::File::lock` (flock on Unix).
//!
//! flock locks belong to an open file description, so threads sharing one `Store` would not
//! exclude each other through it; a process-local mutex serialises them first.

use crate::error::{IoContext, NpkResult};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Name of the lock file (never matches a data, bitmap or metadata file).
pub const LOCK_FILE: &str = ".numpack.lock";

/// The lock file of one store handle.
#[derive(Debug)]
pub struct StoreLock {
    file: Mutex<File>,
    path: PathBuf,
}

/// Held while the store is locked; unlocks on drop.
pub struct LockGuard<'a> {
    file: MutexGuard<'a, File>,
}

impl StoreLock {
    /// Opens (creating) the lock file of the store in `dir`.
    pub fn open(dir: &Path) -> NpkResult<Self> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        Ok(StoreLock {
            file: Mutex::new(file),
            path,
        })
    }

    fn guard(&self) -> MutexGuard<'_, File> {
        // A panic while locked leaves nothing half-done on disk that recovery can't handle.
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive lock: one writer across threads and processes.
    pub fn exclusive(&self) -> NpkResult<LockGuard<'_>> {
        let file = self.guard();
        file.lock().at(&self.path)?;
        Ok(LockGuard { file })
    }

    /// Shared lock: excludes writers while a reader loads metadata and opens data files.
    pub fn shared(&self) -> NpkResult<LockGuard<'_>> {
        let file = self.guard();
        file.lock_shared().at(&self.path)?;
        Ok(LockGuard { file })
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
