//! History: every commit gets a version number, and commits that some reader may still need
//! to see past (history on, a snapshot pinned, a tag) append a record of what they changed,
//! as it was before, to `.numpack.history` before their commit point (format in
//! `format/history.rs`).
//!
//! The lock file's header caches what writers need on every commit (the current version, the
//! log's end, whether history is kept), so a commit that records nothing costs a few memory
//! operations and one that records costs one `pwrite` of the record. A record is appended with
//! a recovery flag set, cleared once the commit is done; a writer that dies in between leaves
//! the flag, and recovery tells from checksums of the metadata (and of the rows) whether the
//! commit happened, marking the record aborted when it did not.

use super::commit::METADATA;
use super::lock::{StoreLock, FLAG_HISTORY, KEEP, LAST_CRC, LOG_END, LOG_GEN, RECORDS, VERSION};
use super::{now_micros, pins, Store};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::history::{
    self as fmt, kept_name, Header, Log, Op, Record, COUNTER_AT, HEADER_BYTES, LOG_FILE, STATE_AT,
    TAGS_FILE,
};
use crate::format::metadata::MetadataFile;
use crate::io::fs;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

/// Largest history log read (history beyond it should be collected with `gc`).
pub const MAX_LOG_BYTES: u64 = 16 << 30;
/// The log file grows by this much at a time.
const GROW_BYTES: u64 = 1 << 20;
/// Records beyond `keep_last` before a commit collects old ones.
pub(super) const GC_SLACK: u64 = 32;
/// Tags: stored with their count in the `KEEP` word's upper half.
pub(super) const TAG_SHIFT: u32 = 32;

/// What a writer does about history in one commit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// The version the commit makes.
    pub version: u64,
    /// Whether it appends a record.
    pub record: bool,
}

/// Reads the log: its header, then the records from the header's start on (the collected
/// records before it are not read).
pub(crate) fn read_log(dir: &Path) -> NpkResult<Option<Log>> {
    let path = dir.join(LOG_FILE);
    let Some(f) = fs::open_read_opt(&path)? else {
        return Ok(None);
    };
    let len = f.metadata().at(&path)?.len();
    let mut head = [0u8; HEADER_BYTES as usize];
    if fs::read_upto(&f, &mut head, 0).at(&path)? < head.len() {
        return Err(NpkError::corrupt(
            &path,
            format!("{len} bytes, shorter than its header"),
        ));
    }
    let header = Header::decode(&head).map_err(|r| NpkError::corrupt(&path, r))?;
    if header.start > len {
        return Err(NpkError::corrupt(
            &path,
            format!("first record at {}, past its {len} bytes", header.start),
        ));
    }
    if len - header.start > MAX_LOG_BYTES {
        return Err(NpkError::corrupt(
            &path,
            format!(
                "{} bytes of history, more than the {MAX_LOG_BYTES} read; remove the file to \
                 drop the history",
                len - header.start
            ),
        ));
    }
    // The log is grown ahead sparsely and its records are contiguous from `start`: they end
    // at the first hole, and a hostile sparse file cannot make this allocate what it lacks.
    let data = fs::data_end(&f, header.start, len);
    let want = (data - header.start) as usize;
    let mut live = Vec::new();
    live.try_reserve_exact(want).map_err(|_| {
        NpkError::OutOfMemory(format!(
            "{want} bytes of history in {} do not fit in memory",
            path.display()
        ))
    })?;
    live.resize(want, 0);
    // A log cut short while it is read (recovery trims a torn tail) ends where it ends.
    let got = fs::read_upto(&f, &mut live, header.start).at(&path)?;
    live.truncate(got);
    Log::decode_live(header, &live)
        .map(Some)
        .map_err(|r| NpkError::corrupt(&path, format!("{r}; remove it to drop the history")))
}

pub(crate) fn read_tags(dir: &Path) -> NpkResult<BTreeMap<String, u64>> {
    let path = dir.join(TAGS_FILE);
    match fs::read_bounded(&path, 4 << 20)? {
        None => Ok(BTreeMap::new()),
        Some(b) => fmt::decode_tags(&b).map_err(|r| NpkError::corrupt(&path, r)),
    }
}

pub(super) fn word(lock: &StoreLock, i: usize) -> Option<u64> {
    lock.word(i).load(Ordering::Acquire).checked_sub(1)
}

pub(super) fn set_word(lock: &StoreLock, i: usize, v: u64) {
    lock.word(i).store(v + 1, Ordering::Release);
}

/// crc32 of the metadata file's bytes as read (`bytes` empty: no file, an empty store).
pub(crate) fn bytes_crc(m: &MetadataFile, bytes: &[u8]) -> u32 {
    if bytes.is_empty() {
        meta_crc(m)
    } else {
        crc32fast::hash(bytes)
    }
}

/// crc32 of the metadata file `m` encodes to.
pub(crate) fn meta_crc(m: &MetadataFile) -> u32 {
    crc32fast::hash(&m.encode())
}

/// Fills the history words of the lock header from the log when they are not known (a new
/// lock file). Call under a lock.
pub(crate) fn ensure_words(dir: &Path, lock: &StoreLock) -> NpkResult<()> {
    let known = [VERSION, KEEP, LOG_END, RECORDS]
        .iter()
        .all(|&i| word(lock, i).is_some());
    if known {
        return Ok(());
    }
    let log = read_log(dir)?;
    let tags = read_tags(dir)?.len() as u64;
    let (version, keep, end, records) = match &log {
        None => (0, 0, 0, 0),
        Some(l) => (
            l.last_version(),
            l.header.keep_last,
            l.end,
            l.records.len() as u64,
        ),
    };
    if let Some((_, r)) = log.as_ref().and_then(|l| l.records.last()) {
        set_word(lock, LAST_CRC, u64::from(r.post_meta_crc));
    }
    // Never go back: a version number once given is never given again.
    let version = version.max(word(lock, VERSION).unwrap_or(0));
    set_word(lock, VERSION, version);
    set_word(lock, KEEP, keep.min(u32::MAX as u64) | (tags << TAG_SHIFT));
    set_word(lock, LOG_END, end);
    set_word(lock, RECORDS, records);
    Ok(())
}

/// The version word as it is (`None` when not yet set up), without the lock or the log.
pub(crate) fn current_word(lock: &StoreLock) -> Option<u64> {
    word(lock, VERSION)
}

/// The current version (a lock held).
pub(crate) fn current(dir: &Path, lock: &StoreLock) -> NpkResult<u64> {
    ensure_words(dir, lock)?;
    Ok(word(lock, VERSION).unwrap_or(0))
}

pub(super) fn keep_last(lock: &StoreLock) -> u64 {
    word(lock, KEEP).unwrap_or(0) & u64::from(u32::MAX)
}

pub(super) fn tag_count(lock: &StoreLock) -> u64 {
    word(lock, KEEP).unwrap_or(0) >> TAG_SHIFT
}

/// Decides what the next commit does about history (exclusive lock held).
pub(crate) fn plan(dir: &Path, lock: &StoreLock) -> NpkResult<Plan> {
    let version = current(dir, lock)? + 1;
    let record = keep_last(lock) > 0 || tag_count(lock) > 0 || pins::oldest(lock).is_some();
    Ok(Plan { version, record })
}

/// Opens the log for writing in place (`None` when absent): never through a hard link, which
/// would write into another store's (or anyone's) file.
fn open_log_rw(path: &Path) -> NpkResult<Option<File>> {
    let Some(f) = fs::open_rw_opt(path)? else {
        return Ok(None);
    };
    let links = std::os::unix::fs::MetadataExt::nlink(&f.metadata().at(path)?);
    if links > 1 {
        return Err(NpkError::corrupt(
            path,
            format!(
                "has {links} hard links; numpack writes the history log in place, so it must be \
                 the store's own (remove it to drop the history)"
            ),
        ));
    }
    Ok(Some(f))
}

/// The store's cached handle of the log at `path` with the file's length, reopened when a
/// rewrite replaced the file since it was cached; `None` inside when there is no log. The
/// caller holds the store lock, under which the generation only moves by its own hand.
pub(crate) type LogHandle<'a> = MutexGuard<'a, Option<(u64, File, u64)>>;

pub(crate) fn log_handle<'a>(lock: &'a StoreLock, path: &Path) -> NpkResult<LogHandle<'a>> {
    let mut cached = lock.log.lock().unwrap_or_else(|e| e.into_inner());
    let gen = lock.word(LOG_GEN).load(Ordering::Acquire);
    if cached.as_ref().is_some_and(|(g, _, _)| *g != gen) {
        *cached = None;
    }
    if cached.is_none() {
        if let Some(f) = open_log_rw(path)? {
            let len = f.metadata().at(path)?.len();
            *cached = Some((gen, f, len));
        }
    }
    Ok(cached)
}

/// Appends `rec` at the log's end (creating the log), with the recovery flag set first.
pub(crate) fn append(dir: &Path, lock: &StoreLock, rec: &Record, durable: bool) -> NpkResult<()> {
    let path = dir.join(LOG_FILE);
    let bytes = rec.encode();
    if bytes.len() - fmt::RECORD_HEAD > u32::MAX as usize {
        return Err(NpkError::InvalidOperation(format!(
            "this commit would keep {} bytes of old rows in one history record (at most 4 GiB); \
             replace fewer rows per call, or save the array again (history then keeps its old \
             file without copying it)",
            bytes.len()
        )));
    }
    // Opened (and refused, if it is not the store's own) before the flag that makes the next
    // opener recover through it.
    let mut cached = log_handle(lock, &path)?;
    lock.set_flags(FLAG_HISTORY);
    if cached.is_none() {
        let header = Header {
            counter: rec.version - 1,
            floor: rec.version - 1,
            keep_last: keep_last(lock),
            start: HEADER_BYTES,
        };
        let f = fs::create_new(&path)?;
        fs::write_at(&f, &path, &header.encode(), 0)?;
        if durable {
            fs::sync(&f, &path)?;
            fs::sync_dir(dir)?;
        }
        set_word(lock, LOG_END, HEADER_BYTES);
        *cached = Some((lock.word(LOG_GEN).load(Ordering::Acquire), f, HEADER_BYTES));
    }
    let (_, file, len) = cached.as_mut().expect("opened above");
    let end = word(lock, LOG_END).unwrap_or(0).max(HEADER_BYTES);
    let need = end + bytes.len() as u64;
    if need > *len {
        // Writing past the end costs the file system a size update per record (several µs
        // on ext4); growing the file ahead (sparse: no blocks) makes appends overwrites.
        // Readers stop at the zeros after the last record.
        let grown = need.next_multiple_of(GROW_BYTES);
        fs::set_len(file, &path, grown)?;
        *len = grown;
    }
    let file = &*file;
    if word(lock, LAST_CRC).is_some_and(|c| c != u64::from(rec.pre_meta_crc)) {
        // The metadata is not what the last record left: something committed without a
        // record (history was off, or another program wrote). Older versions cannot be
        // rebuilt past that change.
        fs::write_at(file, &path, &rec.version.to_le_bytes(), COUNTER_AT + 8)?;
        // Snapshots below the new floor must look again (and fail: their history is gone).
        lock.word(LOG_GEN).fetch_add(1, Ordering::AcqRel);
    }
    fs::write_at(file, &path, &bytes, end)?;
    if durable {
        fs::sync_data(file, &path)?;
    }
    set_word(lock, LAST_CRC, u64::from(rec.post_meta_crc));
    set_word(lock, LOG_END, end + bytes.len() as u64);
    set_word(lock, RECORDS, word(lock, RECORDS).unwrap_or(0) + 1);
    set_word(lock, VERSION, rec.version);
    Ok(())
}

/// A commit that records nothing: the version number moves on.
pub(crate) fn bump(lock: &StoreLock) {
    set_word(lock, VERSION, word(lock, VERSION).unwrap_or(0) + 1);
    // The metadata may change without a record now: the next record must not take that for
    // another program's write (which would make the version before it unreadable, though a
    // snapshot may have pinned it). The versions before this one lack a record anyway.
    lock.word(LAST_CRC).store(0, Ordering::Release);
}

/// Marks the record at `offset` aborted (its commit did not happen) and removes what it kept.
fn abort_at(
    dir: &Path,
    lock: &StoreLock,
    offset: u64,
    rec: &Record,
    durable: bool,
) -> NpkResult<()> {
    let path = dir.join(LOG_FILE);
    let f = open_log_rw(&path)?
        .ok_or_else(|| NpkError::corrupt(&path, "went missing while the store was locked"))?;
    fs::write_at(&f, &path, &[1], offset + STATE_AT)?;
    if durable {
        fs::sync_data(&f, &path)?;
    }
    // Snapshots that read the record read the log again before its links go.
    lock.word(LOG_GEN).fetch_add(1, Ordering::AcqRel);
    for (file, kept) in &rec.files {
        if *kept {
            fs::remove(&dir.join(kept_name(rec.version, file)))?;
        }
    }
    Ok(())
}

/// After a failed commit (exclusive lock still held): the full recovery, files first (a
/// commit that failed after its commit point is finished by its journal, and only then is
/// its record judged).
pub(crate) fn settle(dir: &Path, lock: &StoreLock, durable: bool) -> NpkResult<()> {
    super::commit::recover(dir, lock, durable, false)
}

/// Recovery (exclusive lock held): whether the last record's commit happened, told from the
/// metadata's checksum and that of the rows it overwrote; an abandoned one is marked
/// aborted. A state that matches neither side was written by another program: history
/// before it can no longer be read, so the log's floor moves up to the current version.
pub(crate) fn recover(dir: &Path, lock: &StoreLock, durable: bool) -> NpkResult<()> {
    let Some(log) = read_log(dir)? else {
        remove_stray_kept(dir, &[])?;
        lock.clear_flags(FLAG_HISTORY);
        return Ok(());
    };
    // The words may be stale: rebuild them from the log.
    set_word(lock, LOG_END, log.end);
    set_word(lock, RECORDS, log.records.len() as u64);
    let v = log.last_version().max(word(lock, VERSION).unwrap_or(0));
    set_word(lock, VERSION, v);
    let path = dir.join(LOG_FILE);
    if let Some(f) = open_log_rw(&path)? {
        // A torn record after the last whole one is cut off.
        if f.metadata().at(&path)?.len() > log.end {
            fs::set_len(&f, &path, log.end)?;
        }
    }
    if let Some((offset, rec)) = log.records.last().filter(|(_, r)| !r.aborted) {
        let meta = match fs::read_bounded(&dir.join(METADATA), super::MAX_METADATA_BYTES)? {
            Some(b) => crc32fast::hash(&b),
            None => meta_crc(&MetadataFile::default()),
        };
        let rows = |new: bool| -> NpkResult<bool> {
            for s in &rec.rows {
                let p = dir.join(&s.file);
                let Some(f) = fs::open_read_opt(&p)? else {
                    return Ok(false);
                };
                let mut h = crc32fast::Hasher::new();
                let mut buf = vec![0u8; s.row_bytes as usize];
                for r in &s.rows {
                    let at = r.saturating_mul(s.row_bytes);
                    if std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, at).is_err() {
                        return Ok(false);
                    }
                    h.update(&buf);
                }
                let want = if new { s.new_crc } else { s.old_crc };
                if h.finalize() != want {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        let committed = meta == rec.post_meta_crc && rows(true)?;
        if !committed {
            if meta == rec.pre_meta_crc && rows(false)? {
                abort_at(dir, lock, *offset, rec, durable)?;
            } else {
                // A link to a file that is still current would make writers refuse it.
                for (file, _) in rec.files.iter().filter(|(_, k)| *k) {
                    let link = dir.join(kept_name(rec.version, file));
                    if let (Some(a), Some(b)) = (fs::entry(&link)?, fs::entry(&dir.join(file))?) {
                        if fs::same_file(&a, &b) {
                            fs::remove(&link)?;
                        }
                    }
                }
                let f = open_log_rw(&path)?.ok_or_else(|| {
                    NpkError::corrupt(&path, "went missing while the store was locked")
                })?;
                fs::write_at(&f, &path, &v.to_le_bytes(), COUNTER_AT + 8)?;
                if durable {
                    fs::sync_data(&f, &path)?;
                }
                lock.word(LOG_GEN).fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    // Links made by a commit killed before its record was written.
    let log = read_log(dir)?.unwrap_or_default();
    let live: Vec<&Record> = log
        .records
        .iter()
        .map(|(_, r)| r)
        .filter(|r| !r.aborted)
        .collect();
    remove_stray_kept(dir, &live)?;
    lock.clear_flags(FLAG_HISTORY);
    Ok(())
}

/// Writes one header word of the log in place.
pub(super) fn write_header_word(dir: &Path, at: u64, v: u64, durable: bool) -> NpkResult<()> {
    let path = dir.join(LOG_FILE);
    let f = match open_log_rw(&path)? {
        Some(f) => f,
        None => {
            let f = fs::create_new(&path)?;
            fs::write_at(&f, &path, &Header::default().encode(), 0)?;
            f
        }
    };
    fs::write_at(&f, &path, &v.to_le_bytes(), at)?;
    if durable {
        fs::sync(&f, &path)?;
        fs::sync_dir(dir)?;
    }
    Ok(())
}

/// Kept files no record refers to (left by a collection that was interrupted).
pub(super) fn remove_stray_kept(dir: &Path, records: &[&Record]) -> NpkResult<()> {
    let wanted: std::collections::HashSet<String> = records
        .iter()
        .flat_map(|r| {
            r.files
                .iter()
                .filter(|(_, k)| *k)
                .map(|(f, _)| kept_name(r.version, f))
        })
        .collect();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if fmt::parse_kept_name(&name).is_some() && !wanted.contains(&name) {
            fs::remove(&entry.path())?;
        }
    }
    Ok(())
}

/// Whether every version after `v` up to `now` has its record (so `v` can be rebuilt).
pub(crate) fn readable(log: &Log, v: u64, now: u64) -> bool {
    v >= log.header.floor && v <= now && {
        let after: Vec<u64> = log
            .records
            .iter()
            .map(|(_, r)| r.version)
            .filter(|&x| x > v)
            .collect();
        after.len() as u64 == now - v && after.first().is_none_or(|&f| f == v + 1)
    }
}

/// The oldest version that can be read.
pub(crate) fn oldest_readable(log: &Log, now: u64) -> u64 {
    let mut v = now;
    for (_, r) in log.records.iter().rev() {
        if r.version != v || v <= log.header.floor {
            break;
        }
        v -= 1;
    }
    v.max(log.header.floor.min(now))
}

/// A commit about to reach its commit point, as history sees it.
pub(crate) struct Commit<'a> {
    pub dir: &'a Path,
    pub lock: &'a StoreLock,
    pub durable: bool,
    pub plan: Plan,
    pub op: Op,
    pub committed: &'a MetadataFile,
    /// crc32 of the committed file's bytes as read (its own encoding may differ from ours).
    pub committed_crc: Option<u32>,
    pub new: &'a MetadataFile,
    /// The new metadata file's bytes, when it changes.
    pub new_bytes: Option<&'a [u8]>,
    /// Old bytes of what the commit writes in place (bitmap words).
    pub rows: Vec<fmt::RowSet>,
}

/// Just before a commit point: gives the commit its version; when it records, keeps every
/// data or bitmap file it replaces or removes under a second name, and appends its record.
pub(crate) fn before_point(c: &Commit<'_>, targets: &[&str]) -> NpkResult<()> {
    if !c.plan.record {
        bump(c.lock);
        return Ok(());
    }
    let v = c.plan.version;
    // Before the first link: a kill from here on leaves the flag, and recovery removes
    // links no record kept.
    c.lock.set_flags(FLAG_HISTORY);
    let mut files = Vec::with_capacity(targets.len());
    for t in targets {
        if files.iter().any(|(f, _): &(String, bool)| f == t) {
            continue;
        }
        let from = c.dir.join(t);
        let exists = fs::entry(&from)?.is_some_and(|m| m.file_type().is_file());
        if exists {
            let to = c.dir.join(kept_name(v, t));
            // Left by an abandoned attempt at this version number.
            fs::remove(&to)?;
            fs::hard_link(&from, &to)?;
        }
        files.push(((*t).to_owned(), exists));
    }
    if c.durable && files.iter().any(|(_, k)| *k) {
        fs::sync_dir(c.dir)?;
    }
    let mut arrays = Vec::new();
    for (name, before) in &c.committed.arrays {
        if c.new.arrays.get(name) != Some(before) {
            arrays.push((name.clone(), Some(before.clone())));
        }
    }
    for name in c.new.arrays.keys() {
        if !c.committed.arrays.contains_key(name) {
            arrays.push((name.clone(), None));
        }
    }
    let pre = c.committed_crc.unwrap_or_else(|| meta_crc(c.committed));
    let post = c.new_bytes.map_or(pre, crc32fast::hash);
    let rec = Record {
        version: v,
        time_us: now_micros(),
        op: c.op,
        aborted: false,
        pre_meta_crc: pre,
        post_meta_crc: post,
        arrays,
        files,
        rows: c.rows.clone(),
    };
    append(c.dir, c.lock, &rec, c.durable)
}

/// After a mutation under the exclusive lock: finishes its history (collects old records
/// when due) or, when it failed after its record was written, settles the record.
pub(crate) fn finish<R>(store: &Store, plan: Plan, out: NpkResult<R>) -> NpkResult<R> {
    let lock = store.store_lock();
    match out {
        Ok(v) => {
            if plan.record {
                lock.clear_flags(FLAG_HISTORY);
            }
            store.after_commit(plan)?;
            Ok(v)
        }
        Err(e) => {
            if lock.flags() & FLAG_HISTORY != 0 {
                settle(store.dir(), lock, store.durable())?;
            }
            Err(e)
        }
    }
}

/// The record of an in-place replace: the old bytes of every row it overwrites.
pub(crate) fn replace_record(
    version: u64,
    meta: &MetadataFile,
    crc: u32,
    sets: Vec<(String, fmt::RowSet)>,
) -> Record {
    Record {
        version,
        time_us: now_micros(),
        op: Op::Replace,
        aborted: false,
        pre_meta_crc: crc,
        post_meta_crc: crc,
        arrays: sets
            .iter()
            .map(|(n, _)| (n.clone(), meta.arrays.get(n).cloned()))
            .collect(),
        files: Vec::new(),
        rows: sets.into_iter().map(|(_, s)| s).collect(),
    }
}
