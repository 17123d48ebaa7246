//! Unlinks replaced data files off the caller's path.
//!
//! Freeing the pages of a large file takes milliseconds (about 2 ms per 40 MB), which a
//! `save` that replaces an array would otherwise pay before returning. A replaced file is
//! renamed to a temporary name inside the commit (so the commit stays atomic), and this
//! thread unlinks it. A process that exits first leaves the temporary behind; the next open
//! of the store removes it like any stale temporary.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

#[derive(Default)]
struct Queue {
    paths: Vec<PathBuf>,
    busy: bool,
}

/// The process the reaper thread runs in (a forked child has no reaper thread).
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The reaper, when it runs in this process.
fn here() -> Option<&'static Reaper> {
    let r = reaper()?;
    (PID.load(std::sync::atomic::Ordering::Acquire) == std::process::id()).then_some(r)
}

struct Reaper {
    queue: Mutex<Queue>,
    wake: Condvar,
    idle: Condvar,
}

impl Reaper {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static REAPER: OnceLock<Option<&'static Reaper>> = OnceLock::new();

/// The reaper, started on first use; `None` if no thread could be started.
fn reaper() -> Option<&'static Reaper> {
    *REAPER.get_or_init(|| {
        PID.store(std::process::id(), std::sync::atomic::Ordering::Release);
        let r: &'static Reaper = Box::leak(Box::new(Reaper {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            idle: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("numpack-reaper".into())
            .spawn(move || run(r))
            .ok()
            .map(|_| r)
    })
}

fn run(r: &'static Reaper) {
    loop {
        let batch = {
            let mut q = r.lock();
            q.busy = false;
            while q.paths.is_empty() {
                r.idle.notify_all();
                q = r.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            q.busy = true;
            std::mem::take(&mut q.paths)
        };
        for p in batch {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Unlinks `path` soon, on the reaper thread (at once when there is none).
pub fn unlink_later(path: PathBuf) {
    match here() {
        Some(r) => {
            r.lock().paths.push(path);
            r.wake.notify_one();
        }
        None => {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Waits until every file handed to [`unlink_later`] is gone.
pub fn wait_idle() {
    // In a forked child the queue (copied at the fork) has no thread to empty it.
    if let Some(r) = REAPER
        .get()
        .copied()
        .flatten()
        .filter(|_| PID.load(std::sync::atomic::Ordering::Acquire) == std::process::id())
    {
        let mut q = r.lock();
        while q.busy || !q.paths.is_empty() {
            q = r.idle.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}
