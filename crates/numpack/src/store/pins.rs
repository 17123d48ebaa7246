//! Pins: which versions open snapshots still read, shared by every process of a store.
//!
//! The lock file's header page holds [`PIN_SLOTS`] slots of two words: the pid of a process
//! that holds snapshots, and the oldest version it pins + 1. A process claims one slot per
//! store the first time it pins a version and gives it back when its last snapshot closes.
//! Pins are taken under the shared lock, so a writer (which holds the exclusive lock for its
//! whole mutation) sees every pin that was taken before it started. A slot whose process is
//! gone (killed) is cleared by the next writer that looks, so history is not kept forever
//! for a dead reader; a pid reused by an unrelated process keeps the slot until that process
//! exits, which only keeps history longer.

use super::lock::{StoreLock, PINS, PIN_BASE, PIN_SLOTS};
use crate::error::{NpkError, NpkResult};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// The versions this process pins in one store.
#[derive(Debug)]
struct Held {
    pid: u32,
    slot: usize,
    counts: BTreeMap<u64, usize>,
}

static HELD: Mutex<Option<HashMap<PathBuf, Held>>> = Mutex::new(None);

fn owner(lock: &StoreLock, slot: usize) -> &std::sync::atomic::AtomicU64 {
    lock.word(PIN_BASE + 2 * slot)
}

fn pinned(lock: &StoreLock, slot: usize) -> &std::sync::atomic::AtomicU64 {
    lock.word(PIN_BASE + 2 * slot + 1)
}

/// Pins `version` for this process. Call under the shared (or exclusive) lock.
pub(crate) fn pin(lock: &StoreLock, key: &Path, version: u64) -> NpkResult<()> {
    let pid = std::process::id();
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let map = held.get_or_insert_with(HashMap::new);
    // A forked child inherits the parent's table, not its slots.
    map.retain(|_, h| h.pid == pid);
    if !map.contains_key(key) {
        let slot = (0..PIN_SLOTS)
            .find(|&s| {
                owner(lock, s)
                    .compare_exchange(0, u64::from(pid), Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
            .ok_or_else(|| {
                NpkError::InvalidOperation(format!(
                    "{PIN_SLOTS} processes already hold snapshots of this store; close some \
                     snapshots and try again"
                ))
            })?;
        lock.word(PINS).fetch_add(1, Ordering::AcqRel);
        map.insert(
            key.to_owned(),
            Held {
                pid,
                slot,
                counts: BTreeMap::new(),
            },
        );
    }
    let h = map.get_mut(key).expect("inserted");
    *h.counts.entry(version).or_insert(0) += 1;
    let oldest = *h.counts.keys().next().expect("one pin at least");
    pinned(lock, h.slot).store(oldest + 1, Ordering::Release);
    Ok(())
}

/// Drops one pin of `version` taken by [`pin`].
pub(crate) fn unpin(lock: &StoreLock, key: &Path, version: u64) {
    let pid = std::process::id();
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let Some(map) = held.as_mut() else { return };
    let Some(h) = map.get_mut(key).filter(|h| h.pid == pid) else {
        return;
    };
    if let Some(n) = h.counts.get_mut(&version) {
        *n -= 1;
        if *n == 0 {
            h.counts.remove(&version);
        }
    }
    match h.counts.keys().next() {
        Some(&oldest) => pinned(lock, h.slot).store(oldest + 1, Ordering::Release),
        None => {
            let slot = h.slot;
            map.remove(key);
            pinned(lock, slot).store(0, Ordering::Release);
            owner(lock, slot).store(0, Ordering::Release);
            lock.word(PINS).fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn alive(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The oldest version any live process pins, clearing the slots of dead ones. Call under
/// the exclusive lock. One memory load when no slot is in use.
pub(crate) fn oldest(lock: &StoreLock) -> Option<u64> {
    if lock.word(PINS).load(Ordering::Acquire) == 0 {
        return None;
    }
    let mut min: Option<u64> = None;
    for s in 0..PIN_SLOTS {
        let pid = owner(lock, s).load(Ordering::Acquire);
        if pid == 0 {
            continue;
        }
        let v = pinned(lock, s).load(Ordering::Acquire);
        if !alive(pid) {
            if owner(lock, s)
                .compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                pinned(lock, s).store(0, Ordering::Release);
                let _ = lock
                    .word(PINS)
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            }
            continue;
        }
        if v > 0 {
            min = Some(min.map_or(v - 1, |m| m.min(v - 1)));
        }
    }
    min
}
