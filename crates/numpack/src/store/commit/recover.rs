//! Recovery: finishing (redo journal) or rolling back (undo record) a mutation whose process
//! died, and removing its temporary files. Runs under the exclusive lock, on open and
//! whenever the lock file's flags say a mutation may have been interrupted.
//!
//! Everything recovery reads is untrusted: unknown flag bits in the lock file are cleared
//! (no version of numpack sets them, so nothing can be pending behind them), a journal or
//! undo record that does not decode, or would write outside its file, is reported as
//! corruption with what to do about it, and nothing is ever looped on.

use super::journal::{self, KIND_REDO};
use super::undo;
use super::{is_tmp_name, JOURNAL, TMP_PREFIX};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::io::fs;
use crate::store::lock::{StoreLock, FLAG_HISTORY, FLAG_JOURNAL, FLAG_UNDO, KNOWN_FLAGS};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The error for a journal or undo record that cannot be applied: the store cannot be
/// brought back to a committed state automatically.
pub(crate) fn unusable(source: &Path, why: &str) -> NpkError {
    NpkError::corrupt(
        source,
        format!(
            "{why}. It records a mutation that was interrupted and cannot be finished or rolled \
             back; move this file away to open the store as it is on disk (arrays that \
             mutation touched may then hold part of it), or restore the store from a copy"
        ),
    )
}

/// Whether a mutation may have been interrupted (a flag in the lock file says so).
pub fn may_need_recovery(lock: &StoreLock) -> bool {
    lock.flags() != 0
}

/// Replays or rolls back an interrupted mutation, if any. Call under the exclusive lock.
/// Looks for a journal file only when the lock file's flags say one may exist, or when
/// `look` asks for it (on open: the flags may be lost, e.g. a fresh lock file). On success
/// every flag is clear.
pub fn recover(dir: &Path, lock: &StoreLock, durable: bool, look: bool) -> NpkResult<()> {
    let flags = lock.flags();
    recover_files(dir, lock, durable, look)?;
    // With the files settled, tell whether the last history record's commit happened: when
    // the flag says so, and on open when the lock file's history words are gone (a new or
    // repaired lock file, e.g. after a power loss), which lost the flag too.
    let words_lost = look && crate::store::history::current_word(lock).is_none();
    if flags & FLAG_HISTORY != 0 || words_lost {
        crate::store::history::recover(dir, lock, durable)?;
    }
    Ok(())
}

fn recover_files(dir: &Path, lock: &StoreLock, durable: bool, look: bool) -> NpkResult<()> {
    let flags = lock.flags();
    if flags & !KNOWN_FLAGS != 0 {
        lock.clear_flags(!KNOWN_FLAGS);
    }
    // Old rows written back are in-place writes; this also makes a counter left odd by a
    // writer that died even again.
    let _writing = lock.writing();
    if flags & FLAG_UNDO != 0 {
        let bytes = read_undo_area(lock)?;
        undo::replay(dir, lock.path(), &bytes, durable)?;
        lock.clear_flags(FLAG_UNDO);
        lock.set_undo_len(0);
    }
    if flags & FLAG_JOURNAL == 0 && !look {
        return Ok(());
    }
    let path = dir.join(JOURNAL);
    let Some(file) = fs::open_read_opt(&path)? else {
        lock.clear_flags(FLAG_JOURNAL);
        return Ok(());
    };
    let len = file.metadata().at(&path)?.len();
    let map = if len == 0 {
        None
    } else {
        let len = usize::try_from(len).map_err(|_| unusable(&path, "too large to read"))?;
        // SAFETY: a read-only mapping of a regular file of `len` bytes that only numpack
        // writes, and only under the exclusive lock, which recovery holds.
        Some(unsafe { memmap2::MmapOptions::new().len(len).map(&file) }.at(&path)?)
    };
    let bytes = map.as_deref().unwrap_or(&[]);
    match journal::kind(bytes) {
        Ok(KIND_REDO) => {
            let steps = journal::decode(bytes).map_err(|why| unusable(&path, &why))?;
            for s in &steps {
                journal::apply_journaled(dir, s)?;
            }
        }
        Ok(_) => undo::replay(dir, &path, bytes, durable)?,
        Err(why) => return Err(unusable(&path, &why)),
    }
    if durable {
        fs::sync_dir(dir)?;
    }
    drop(map);
    fs::remove(&path)?;
    if durable {
        fs::sync_dir(dir)?;
    }
    lock.clear_flags(FLAG_JOURNAL);
    Ok(())
}

/// The live undo record of the lock file, after checking its length against the header's
/// limit and the file.
fn read_undo_area(lock: &StoreLock) -> NpkResult<Vec<u8>> {
    let path = lock.path();
    let file_len = lock.file().metadata().at(path)?.len();
    let area = undo::lock_area(lock.undo_len(), file_len).map_err(|why| unusable(path, &why))?;
    let mut bytes = vec![0u8; area.len()];
    lock.file()
        .read_exact_at(&mut bytes, area.start as u64)
        .at(path)?;
    Ok(bytes)
}

/// Whether a temporary file name belongs to a process that is gone (or to no process).
/// Temporaries of live processes are imports in progress and must survive other opens.
pub(crate) fn is_stale_temp(name: &str) -> bool {
    if name.starts_with("metadata.npkm.tmp") {
        return true;
    }
    let Some(rest) = name.strip_prefix(TMP_PREFIX) else {
        return false;
    };
    let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) if pid == std::process::id() => false,
        // Without procfs a live writer cannot be told apart: keep the file.
        Some(pid) => {
            Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
        }
        None => true,
    }
}

/// Removes temporary files left by killed processes. Call under the exclusive lock.
pub fn remove_stale_temps(dir: &Path) -> NpkResult<()> {
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_stale_temp(&name)
            && (is_tmp_name(&name) || name.starts_with("metadata.npkm.tmp"))
            && !crate::store::staged::stage_is_held(dir, &name)
        {
            // Unlinking removes a link or FIFO itself, never what it points to; a directory
            // of that name is left alone.
            let _ = fs::remove(&entry.path());
        }
    }
    Ok(())
}

/// Whether the directory holds a journal or stale temporary files (checked without the lock).
pub fn needs_recovery(dir: &Path) -> NpkResult<bool> {
    if fs::entry(&dir.join(JOURNAL))?.is_some() {
        return Ok(true);
    }
    for entry in std::fs::read_dir(dir).at(dir)? {
        let name = entry.at(dir)?.file_name();
        let name = name.to_string_lossy();
        if is_stale_temp(&name) && !crate::store::staged::stage_is_held(dir, &name) {
            return Ok(true);
        }
    }
    Ok(false)
}
