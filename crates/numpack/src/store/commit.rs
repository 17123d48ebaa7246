//! All-or-nothing mutations: temp files, a journal of renames/removals, and recovery.
//!
//! A mutation writes every new file under a temporary name, then commits:
//! - one step (e.g. only `metadata.npkm` changes): a single `rename`, atomic by itself;
//! - several steps: the list is first written to `.numpack.journal` (temp + rename, the
//!   commit point), then applied, then the journal is removed. A crash before the journal
//!   exists leaves only temp files (removed on the next open); after it, the next writer
//!   replays the journal (every step is idempotent).
//!
//! In-place row replacement uses an undo journal instead: the old bytes of every touched row
//! are journaled before the rows are overwritten, and recovery writes them back.

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

/// Writes `bytes` to a new file at `path` (optionally fsynced).
pub fn write_file(path: &Path, bytes: &[u8], durable: bool) -> NpkResult<File> {
    let mut f = File::create(path).at(path)?;
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

/// A mutation being prepared under the exclusive lock.
#[derive(Debug)]
pub struct Txn {
    dir: PathBuf,
    durable: bool,
    /// The metadata as it will be committed.
    pub meta: MetadataFile,
    meta_changed: bool,
    steps: Vec<Step>,
    tmp_files: Vec<PathBuf>,
}

impl Txn {
    /// Starts a mutation of the store in `dir` whose current metadata is `meta`.
    pub fn new(dir: &Path, meta: MetadataFile, durable: bool) -> Self {
        Txn {
            dir: dir.to_owned(),
            durable,
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

    /// Commits: writes the metadata if changed, then applies every step atomically.
    /// Returns the committed metadata file handle when the metadata was written.
    pub fn commit(mut self) -> NpkResult<(MetadataFile, Option<File>)> {
        let mut meta_file = None;
        if self.meta_changed {
            let tmp = self.stage_file(METADATA);
            meta_file = Some(write_file(&tmp, &self.meta.encode(), self.durable)?);
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
            }
        }
        if self.durable {
            sync_dir(&self.dir)?;
        }
        self.tmp_files.clear();
        let meta = std::mem::take(&mut self.meta);
        Ok((meta, meta_file))
    }
}

impl Drop for Txn {
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

/// Applies a journaled step. A data file is unlinked before its replacement is renamed onto
/// the name: renaming over an existing file makes ext4 flush the new file synchronously
/// (`auto_da_alloc`), which costs milliseconds per megabyte. The journal makes the two steps
/// one; only when the temporary still exists is the step not yet done.
fn apply_journaled(dir: &Path, step: &Step) -> NpkResult<()> {
    if let Step::Rename(from, to) = step {
        if to != METADATA && dir.join(from).exists() {
            let target = dir.join(to);
            match fs::remove_file(&target) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(NpkError::io(target, e))
                }
                _ => {}
            }
        }
    }
    apply(dir, step)
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

/// Writes the undo journal (temp + rename). Call before overwriting; remove with
/// [`finish_undo`] once the new bytes are written.
pub fn begin_undo(dir: &Path, log: &UndoLog, durable: bool) -> NpkResult<()> {
    let mut out = Vec::new();
    out.extend_from_slice(JOURNAL_MAGIC);
    out.extend_from_slice(&KIND_UNDO.to_le_bytes());
    out.extend_from_slice(&(log.rows.len() as u32).to_le_bytes());
    put_str(&mut out, &log.file);
    for (off, bytes) in &log.rows {
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let tmp = tmp_path(dir, JOURNAL);
    write_file(&tmp, &out, durable)?;
    let journal = dir.join(JOURNAL);
    if let Err(e) = fs::rename(&tmp, &journal) {
        let _ = fs::remove_file(&tmp);
        return Err(NpkError::io(journal, e));
    }
    Ok(())
}

/// Removes the undo journal after the new rows were written.
pub fn finish_undo(dir: &Path) -> NpkResult<()> {
    let journal = dir.join(JOURNAL);
    fs::remove_file(&journal).at(&journal)
}

/// Replays or rolls back an interrupted mutation, if any. Call under the exclusive lock.
pub fn recover(dir: &Path, durable: bool) -> NpkResult<()> {
    let journal = dir.join(JOURNAL);
    let bytes = match fs::read(&journal) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(NpkError::io(&journal, e)),
    };
    let corrupt = |why: &str| NpkError::corrupt(&journal, why.to_owned());
    let mut r = Cursor { b: &bytes, pos: 0 };
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
    fs::remove_file(&journal).at(&journal)
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
