//! All-or-nothing mutations: temp files, a journal of renames/removals, and recovery.
//!
//! A mutation writes every new file under a temporary name, then commits:
//! - one step (e.g. only `metadata.npkm` changes): a single `rename`, atomic by itself;
//! - several steps: the list is first written to `.numpack.journal` (temp + rename, the
//!   commit point), then applied, then the journal is removed. A crash before the journal
//!   exists leaves only temp files (removed on the next open); after it, the next writer
//!   replays the journal (every step is idempotent).
//!
//! A commit whose only change is a same-length metadata edit within one page (an append) is
//! written in place by one `pwrite`, which a killed process cannot tear (the kernel copies a
//! write within one page entirely or not at all). Durable stores always use the rename.
//!
//! In-place row replacement uses an undo journal instead: the old bytes of every touched row
//! are journaled before the rows are overwritten, and recovery writes them back. Small undo
//! records live in the lock file (no file to create); large ones, and those of durable
//! stores, in `.numpack.journal`. Flags in the lock file's header say when either may need
//! recovery, so the common path does not look for a journal at all.

use super::lock::{StoreLock, FLAG_JOURNAL, FLAG_UNDO, UNDO_OFFSET};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::metadata::MetadataFile;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The journal file name.
pub const JOURNAL: &str = ".numpack.journal";
/// Prefix of every temporary file numpack writes.
pub const TMP_PREFIX: &str = ".numpack.tmp.";
/// The metadata file name.
pub const METADATA: &str = "metadata.npkm";

const JOURNAL_MAGIC: &[u8; 4] = b"NPKJ";
const KIND_REDO: u32 = 1;
const KIND_UNDO: u32 = 2;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique temporary path in `dir` for a file that will become `final_name`.
pub fn tmp_path(dir: &Path, final_name: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let short: String = final_name.chars().take(60).collect();
    dir.join(format!("{TMP_PREFIX}{}.{n}.{short}", std::process::id()))
}

/// Writes `bytes` to a new file at `path` (optionally fsynced); the handle reads and writes.
pub fn write_file(path: &Path, bytes: &[u8], durable: bool) -> NpkResult<File> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .at(path)?;
    f.write_all(bytes).at(path)?;
    if durable {
        f.sync_all().at(path)?;
    }
    Ok(f)
}

/// fsync of a directory, so renames in it are durable.
pub fn sync_dir(dir: &Path) -> NpkResult<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// One step of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Rename a temporary file (bare name) onto its final name.
    Rename(String, String),
    /// Remove a file if it exists.
    Remove(String),
}

/// The metadata file as this handle last read or wrote it, for in-place commits.
#[derive(Debug, Clone, Copy)]
pub struct MetaBase<'a> {
    /// A read-write descriptor of the live `metadata.npkm`.
    pub file: &'a File,
    /// Its exact bytes.
    pub bytes: &'a [u8],
}

/// What a commit did to `metadata.npkm`.
#[derive(Debug)]
pub enum MetaWrite {
    /// Not written.
    Unchanged,
    /// Edited in place: the base file now holds these bytes.
    InPlace(Vec<u8>),
    /// Replaced by a new file (open read-write) holding these bytes.
    Replaced(File, Vec<u8>),
}

/// A mutation being prepared under the exclusive lock.
#[derive(Debug)]
pub struct Txn<'a> {
    dir: PathBuf,
    durable: bool,
    lock: &'a StoreLock,
    base: Option<MetaBase<'a>>,
    /// The metadata as it will be committed.
    pub meta: MetadataFile,
    meta_changed: bool,
    steps: Vec<Step>,
    tmp_files: Vec<PathBuf>,
}

impl<'a> Txn<'a> {
    /// Starts a mutation of the store in `dir` whose current metadata is `meta` (and, when
    /// known, `base`: the file and bytes it was decoded from).
    pub fn new(
        dir: &Path,
        meta: MetadataFile,
        durable: bool,
        lock: &'a StoreLock,
        base: Option<MetaBase<'a>>,
    ) -> Self {
        Txn {
            dir: dir.to_owned(),
            durable,
            lock,
            base,
            meta,
            meta_changed: false,
            steps: Vec::new(),
            tmp_files: Vec::new(),
        }
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether files must be fsynced as they are committed.
    pub fn durable(&self) -> bool {
        self.durable
    }

    /// Marks the metadata as changed, so the commit writes it.
    pub fn meta_mut(&mut self) -> &mut MetadataFile {
        self.meta_changed = true;
        &mut self.meta
    }

    /// A new temporary path that will be renamed onto `final_name` at commit.
    pub fn stage_file(&mut self, final_name: &str) -> PathBuf {
        let tmp = tmp_path(&self.dir, final_name);
        self.tmp_files.push(tmp.clone());
        let tmp_name = tmp
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 temp name")
            .to_owned();
        self.steps
            .push(Step::Rename(tmp_name, final_name.to_owned()));
        tmp
    }

    /// Takes over an existing temporary file in the store directory, renamed onto
    /// `final_name` at commit (and removed if the mutation is abandoned before that).
    pub fn adopt(&mut self, tmp: &Path, final_name: &str) {
        self.tmp_files.push(tmp.to_owned());
        let tmp_name = tmp
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 temp name")
            .to_owned();
        self.steps
            .push(Step::Rename(tmp_name, final_name.to_owned()));
    }

    /// Removes `final_name` at commit (if it exists).
    pub fn stage_remove(&mut self, final_name: &str) {
        self.steps.push(Step::Remove(final_name.to_owned()));
    }

    /// Commits: bumps the store generation (so every handle reloads), writes the metadata
    /// if changed, then applies every step atomically.
    pub fn commit(mut self) -> NpkResult<(MetadataFile, MetaWrite)> {
        if !self.meta_changed && self.steps.is_empty() {
            return Ok((std::mem::take(&mut self.meta), MetaWrite::Unchanged));
        }
        self.lock.bump_generation();
        let mut written = MetaWrite::Unchanged;
        if self.meta_changed {
            let bytes = self.meta.encode();
            match self.base.filter(|_| self.steps.is_empty() && !self.durable) {
                Some(base) if write_in_place(base, &bytes)? => {
                    written = MetaWrite::InPlace(bytes);
                }
                _ => {
                    let tmp = self.stage_file(METADATA);
                    let f = write_file(&tmp, &bytes, self.durable)?;
                    written = MetaWrite::Replaced(f, bytes);
                }
            }
        }
        if self.durable {
            for t in &self.tmp_files {
                if t.exists() {
                    File::open(t).and_then(|f| f.sync_all()).at(t)?;
                }
            }
        }
        match self.steps.len() {
            0 => {}
            1 => apply(&self.dir, &self.steps[0])?,
            _ => {
                let journal = self.dir.join(JOURNAL);
                let tmp = tmp_path(&self.dir, JOURNAL);
                write_file(&tmp, &encode_redo(&self.steps), self.durable)?;
                self.lock.set_flags(FLAG_JOURNAL);
                fs::rename(&tmp, &journal).at(&journal)?;
                // Committed: from here on the temporaries belong to the journal, and a
                // failure must leave them for recovery to rename, never delete them.
                self.tmp_files.clear();
                if self.durable {
                    sync_dir(&self.dir)?;
                }
                for s in &self.steps {
                    apply_journaled(&self.dir, s)?;
                }
                if self.durable {
                    sync_dir(&self.dir)?;
                }
                fs::remove_file(&journal).at(&journal)?;
                self.lock.clear_flags(FLAG_JOURNAL);
            }
        }
        if self.durable {
            sync_dir(&self.dir)?;
        }
        self.tmp_files.clear();
        let meta = std::mem::take(&mut self.meta);
        Ok((meta, written))
    }
}

/// Writes `new` over the metadata file in place when that is one untearable write: same
/// length, and every changed byte within one page. Returns whether it did.
fn write_in_place(base: MetaBase<'_>, new: &[u8]) -> NpkResult<bool> {
    const PAGE: usize = 4096;
    if new.len() != base.bytes.len() {
        return Ok(false);
    }
    let Some(first) = new.iter().zip(base.bytes).position(|(a, b)| a != b) else {
        return Ok(true);
    };
    let last = new.len()
        - 1
        - new
            .iter()
            .rev()
            .zip(base.bytes.iter().rev())
            .position(|(a, b)| a != b)
            .expect("a byte differs");
    if first / PAGE != last / PAGE {
        return Ok(false);
    }
    let path = Path::new(METADATA);
    base.file
        .write_all_at(&new[first..=last], first as u64)
        .at(path)?;
    Ok(true)
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        // An abandoned mutation leaves nothing behind.
        for t in &self.tmp_files {
            let _ = fs::remove_file(t);
        }
    }
}

fn apply(dir: &Path, step: &Step) -> NpkResult<()> {
    match step {
        Step::Rename(from, to) => {
            let (from, to) = (dir.join(from), dir.join(to));
            match fs::rename(&from, &to) {
                // Already applied by an earlier, interrupted replay.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r.at(&to),
            }
        }
        Step::Remove(name) => {
            let path = dir.join(name);
            match fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r.at(&path),
            }
        }
    }
}

/// Applies a journaled step. A file about to be replaced or removed is first renamed to a
/// temporary name and unlinked later by the reaper thread: unlinking a large file frees its
/// pages, which costs milliseconds, and renaming a new file over an existing one makes ext4
/// flush the new file synchronously (`auto_da_alloc`). The journal makes the steps one; a
/// rename step is not yet done exactly when its temporary still exists.
fn apply_journaled(dir: &Path, step: &Step) -> NpkResult<()> {
    let victim = match step {
        Step::Rename(from, to) if to != METADATA && dir.join(from).exists() => Some(to),
        Step::Remove(name) => Some(name),
        Step::Rename(..) => None,
    };
    if let Some(name) = victim {
        let target = dir.join(name);
        match fs::metadata(&target) {
            // Small files are cheap to unlink: no temporary shows up in the directory.
            Ok(m) if m.len() < REAP_BYTES => remove_if_exists(&target)?,
            Ok(_) => {
                let trash = tmp_path(dir, "replaced");
                fs::rename(&target, &trash).at(&target)?;
                super::reaper::unlink_later(trash);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NpkError::io(target, e)),
        }
    }
    apply(dir, step)
}

/// Files at least this large are unlinked by the reaper thread.
const REAP_BYTES: u64 = 1 << 20;

fn remove_if_exists(path: &Path) -> NpkResult<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NpkError::io(path, e)),
        _ => Ok(()),
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode_redo(steps: &[Step]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(JOURNAL_MAGIC);
    out.extend_from_slice(&KIND_REDO.to_le_bytes());
    out.extend_from_slice(&(steps.len() as u32).to_le_bytes());
    for s in steps {
        match s {
            Step::Rename(a, b) => {
                out.push(1);
                put_str(&mut out, a);
                put_str(&mut out, b);
            }
            Step::Remove(a) => {
                out.push(2);
                put_str(&mut out, a);
            }
        }
    }
    out
}

/// Old bytes of the rows an in-place replacement is about to overwrite.
pub struct UndoLog {
    /// The data file (bare name).
    pub file: String,
    /// `(offset, old bytes)` of each touched row.
    pub rows: Vec<(u64, Vec<u8>)>,
}

/// Undo records up to this size live in the lock file.
const UNDO_IN_LOCK_FILE: usize = 1 << 20;

fn encode_undo(log: &UndoLog) -> Vec<u8> {
    let payload: usize = log.rows.iter().map(|(_, b)| 16 + b.len()).sum();
    let mut out = Vec::with_capacity(16 + log.file.len() + payload);
    out.extend_from_slice(JOURNAL_MAGIC);
    out.extend_from_slice(&KIND_UNDO.to_le_bytes());
    out.extend_from_slice(&(log.rows.len() as u32).to_le_bytes());
    put_str(&mut out, &log.file);
    for (off, bytes) in &log.rows {
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Where an undo record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndoSlot {
    /// The lock file's undo area.
    LockFile,
    /// `.numpack.journal`.
    Journal,
}

/// Records the undo log before rows are overwritten in place; remove it with
/// [`finish_undo`] once the new bytes are written.
pub fn begin_undo(
    dir: &Path,
    lock: &StoreLock,
    log: &UndoLog,
    durable: bool,
) -> NpkResult<UndoSlot> {
    let out = encode_undo(log);
    if !durable && out.len() <= UNDO_IN_LOCK_FILE {
        // The record is complete in the page cache before the flag makes it live.
        lock.file()
            .write_all_at(&out, UNDO_OFFSET)
            .at(lock.path())?;
        lock.set_undo_len(out.len() as u64);
        lock.set_flags(FLAG_UNDO);
        return Ok(UndoSlot::LockFile);
    }
    let tmp = tmp_path(dir, JOURNAL);
    write_file(&tmp, &out, durable)?;
    let journal = dir.join(JOURNAL);
    lock.set_flags(FLAG_JOURNAL);
    if let Err(e) = fs::rename(&tmp, &journal) {
        let _ = fs::remove_file(&tmp);
        return Err(NpkError::io(journal, e));
    }
    Ok(UndoSlot::Journal)
}

/// Retires the undo record after the new rows were written.
pub fn finish_undo(dir: &Path, lock: &StoreLock, slot: UndoSlot) -> NpkResult<()> {
    match slot {
        UndoSlot::LockFile => {
            lock.clear_flags(FLAG_UNDO);
            lock.set_undo_len(0);
            Ok(())
        }
        UndoSlot::Journal => {
            let journal = dir.join(JOURNAL);
            fs::remove_file(&journal).at(&journal)?;
            lock.clear_flags(FLAG_JOURNAL);
            Ok(())
        }
    }
}

/// Whether a mutation may have been interrupted (a flag in the lock file says so).
pub fn may_need_recovery(lock: &StoreLock) -> bool {
    lock.flags() != 0
}

/// Replays or rolls back an interrupted mutation, if any. Call under the exclusive lock.
/// Looks for a journal file only when the lock file's flags say one may exist, or when
/// `look` asks for it (on open: the flags may be lost, e.g. a fresh lock file).
pub fn recover(dir: &Path, lock: &StoreLock, durable: bool, look: bool) -> NpkResult<()> {
    let flags = lock.flags();
    if flags & FLAG_UNDO != 0 {
        let len = usize::try_from(lock.undo_len()).unwrap_or(usize::MAX);
        let path = lock.path();
        if len > UNDO_IN_LOCK_FILE {
            return Err(NpkError::corrupt(path, "undo record length out of range"));
        }
        let mut bytes = vec![0u8; len];
        lock.file()
            .read_exact_at(&mut bytes, UNDO_OFFSET)
            .map_err(|_| NpkError::corrupt(path, "undo record truncated"))?;
        replay(dir, path, &bytes, durable)?;
        lock.clear_flags(FLAG_UNDO);
        lock.set_undo_len(0);
    }
    if flags & FLAG_JOURNAL == 0 && !look {
        return Ok(());
    }
    let journal = dir.join(JOURNAL);
    let bytes = match fs::read(&journal) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            lock.clear_flags(FLAG_JOURNAL);
            return Ok(());
        }
        Err(e) => return Err(NpkError::io(&journal, e)),
    };
    replay(dir, &journal, &bytes, durable)?;
    fs::remove_file(&journal).at(&journal)?;
    lock.clear_flags(FLAG_JOURNAL);
    Ok(())
}

/// Applies a redo or undo record read from `source`.
fn replay(dir: &Path, source: &Path, bytes: &[u8], durable: bool) -> NpkResult<()> {
    let corrupt = |why: &str| NpkError::corrupt(source, why.to_owned());
    let mut r = Cursor { b: bytes, pos: 0 };
    if r.take(4).ok_or_else(|| corrupt("truncated"))? != JOURNAL_MAGIC {
        return Err(corrupt("bad magic"));
    }
    let kind = r.u32().ok_or_else(|| corrupt("truncated"))?;
    let count = r.u32().ok_or_else(|| corrupt("truncated"))?;
    match kind {
        KIND_REDO => {
            let mut steps = Vec::new();
            for _ in 0..count {
                let step = match r.u8() {
                    Some(1) => Step::Rename(r.name().ok_or_else(|| corrupt("bad entry"))?, {
                        r.name().ok_or_else(|| corrupt("bad entry"))?
                    }),
                    Some(2) => Step::Remove(r.name().ok_or_else(|| corrupt("bad entry"))?),
                    _ => return Err(corrupt("bad entry")),
                };
                steps.push(step);
            }
            for s in &steps {
                apply_journaled(dir, s)?;
            }
        }
        KIND_UNDO => {
            let file = r.name().ok_or_else(|| corrupt("bad entry"))?;
            let path = dir.join(&file);
            let f = OpenOptions::new().write(true).open(&path).at(&path)?;
            for _ in 0..count {
                let off = r.u64().ok_or_else(|| corrupt("truncated"))?;
                let len = r.u64().ok_or_else(|| corrupt("truncated"))?;
                let len = usize::try_from(len).map_err(|_| corrupt("bad length"))?;
                let old = r.take(len).ok_or_else(|| corrupt("truncated"))?;
                f.write_all_at(old, off).at(&path)?;
            }
            if durable {
                f.sync_all().at(&path)?;
            }
        }
        _ => return Err(corrupt("unknown journal kind")),
    }
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Whether a temporary file name belongs to a process that is gone (or to no process).
/// Temporaries of live processes are imports in progress and must survive other opens.
fn is_stale_temp(name: &str) -> bool {
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
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        if is_stale_temp(&name.to_string_lossy()) {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Whether the directory holds a journal or stale temporary files (checked without the lock).
pub fn needs_recovery(dir: &Path) -> NpkResult<bool> {
    if dir.join(JOURNAL).exists() {
        return Ok(true);
    }
    for entry in fs::read_dir(dir).at(dir)? {
        let name = entry.at(dir)?.file_name();
        if is_stale_temp(&name.to_string_lossy()) {
            return Ok(true);
        }
    }
    Ok(false)
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_le_bytes(s.try_into().expect("4")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8")))
    }
    /// A bare file name (no separator, no NUL, not `.`/`..`).
    fn name(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        let s = std::str::from_utf8(self.take(n)?).ok()?;
        let bare = !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0']);
        bare.then(|| s.to_owned())
    }
}
