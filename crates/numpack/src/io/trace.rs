//! A record of what numpack does to one directory (feature `testing`): every create, write,
//! truncation, rename, unlink and sync, in order, with the bytes written. The power-loss
//! tests replay prefixes of it, dropping what was not synced at the cut, to build the disk
//! states a crash could leave. Without the feature every hook is an empty inline function.

use std::path::Path;

/// One operation on a file of the traced directory (files by bare name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new, empty file.
    Create(String),
    /// Bytes written at an offset (through a descriptor or a shared mapping).
    Write(String, u64, Vec<u8>),
    /// The file's length set.
    SetLen(String, u64),
    /// `rename(from, to)`, replacing `to`.
    Rename(String, String),
    /// `link(from, to)`: a second name for the file at `from`.
    Link(String, String),
    /// `unlink`.
    Remove(String),
    /// fsync, fdatasync or msync of the file: its bytes are on stable storage.
    Sync(String),
    /// fsync of the directory: its entries are on stable storage.
    SyncDir,
}

#[cfg(feature = "testing")]
mod imp {
    use super::Event;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static TRACE: Mutex<Option<(PathBuf, Vec<Event>)>> = Mutex::new(None);
    /// Exit the process right after this many events of the traced directory (0: never).
    static EXIT_AFTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn with<R>(f: impl FnOnce(&mut Option<(PathBuf, Vec<Event>)>) -> R) -> R {
        f(&mut TRACE.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts recording what happens to the files of `dir` (one directory at a time).
    pub fn start(dir: &Path) {
        with(|t| *t = Some((dir.to_owned(), Vec::new())));
    }

    /// [`start`], and ends the process (`_exit(77)`, no destructor or buffer flush runs) right
    /// after the `n`-th event: a kill at that instant, for the kill-point tests.
    pub fn start_exiting_after(dir: &Path, n: usize) {
        EXIT_AFTER.store(n, std::sync::atomic::Ordering::SeqCst);
        start(dir);
    }

    /// Stops recording and returns the events.
    pub fn stop() -> Vec<Event> {
        with(|t| t.take().map(|(_, e)| e).unwrap_or_default())
    }

    pub fn note(path: &Path, event: impl FnOnce(String) -> Event) {
        with(|t| {
            if let Some((dir, events)) = t {
                if path.parent() == Some(dir.as_path()) {
                    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                        events.push(event(name.to_owned()));
                        let n = EXIT_AFTER.load(std::sync::atomic::Ordering::SeqCst);
                        if n != 0 && events.len() >= n {
                            // SAFETY: `_exit` ends the process at once; nothing runs after it.
                            unsafe { libc::_exit(77) };
                        }
                    }
                }
            }
        });
    }

    pub fn note_dir(path: &Path) {
        with(|t| {
            if let Some((dir, events)) = t {
                if path == dir.as_path() {
                    events.push(Event::SyncDir);
                    let n = EXIT_AFTER.load(std::sync::atomic::Ordering::SeqCst);
                    if n != 0 && events.len() >= n {
                        // SAFETY: as in `note`.
                        unsafe { libc::_exit(77) };
                    }
                }
            }
        });
    }

    pub fn active() -> bool {
        with(|t| t.is_some())
    }
}

#[cfg(not(feature = "testing"))]
mod imp {
    use super::Event;
    use std::path::Path;

    #[inline(always)]
    pub fn note(_: &Path, _: impl FnOnce(String) -> Event) {}

    #[inline(always)]
    pub fn note_dir(_: &Path) {}

    #[inline(always)]
    pub fn active() -> bool {
        false
    }
}

#[cfg(feature = "testing")]
pub use imp::{start, start_exiting_after, stop};

/// Records `event` if `path` is a file of the traced directory.
pub(crate) fn note(path: &Path, event: impl FnOnce(String) -> Event) {
    imp::note(path, event);
}

/// Records an fsync of `dir` if it is the traced directory.
pub(crate) fn note_dir(dir: &Path) {
    imp::note_dir(dir);
}

/// Whether a trace is being recorded (kernel copies then read back what they wrote).
pub(crate) fn active() -> bool {
    imp::active()
}
