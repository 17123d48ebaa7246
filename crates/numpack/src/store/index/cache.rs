//! Loading an array's index (base file + delta log) into memory, once per process: a cache
//! keyed by the base file's identity, brought up to date by reading only the log records
//! appended since (under the store lock, so no commit is half done).
//!
//! A trailing record that carries a stamp other than the array's `last_modified` belongs to
//! a commit that never happened (an append or drop killed before its commit point): it is
//! never applied, and the next writer cuts it off. An index whose last stamp differs from
//! the array's (a writer that ignores indexes changed the array, or a version was restored)
//! is *stale*: searches go exact until `reindex`.

use super::SnapRows;
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::index::IndexFile;
use crate::format::index_log::{self, Bounds, Record};
use crate::format::metadata::ArrayMetadata;
use crate::format::names;
use crate::io::fs;
use crate::read::snapshot::ArraySnapshot;
use crate::vector::index::Listed;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Indexes kept in memory per process (the least recently used goes first).
const KEPT: usize = 8;

/// An index as loaded: the lists with every committed record applied.
#[derive(Debug)]
pub struct Loaded {
    /// The lists.
    pub listed: Listed,
    /// The stamp of the last commit applied.
    pub stamp: u64,
    /// crc32 of the base file (what its log's header names).
    pub base_crc: u32,
    /// Log bytes applied (header included).
    pub log_valid: u64,
    /// The log file's identity, and the 4 bytes ending at `log_valid` (the last applied
    /// record's checksum), so a log cut and rewritten is noticed.
    log_id: Option<(u64, u64, [u8; 4])>,
    /// A committed record could not apply to the array as it is (stale for good).
    pub stuck: bool,
}

type Key = (u64, u64, u64, i64, i64);
type Entry = Arc<RwLock<Loaded>>;

fn cache() -> &'static Mutex<Vec<(Key, Entry)>> {
    static CACHE: OnceLock<Mutex<Vec<(Key, Entry)>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

fn key(m: &std::fs::Metadata) -> Key {
    (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec())
}

/// The largest base file an index of `a` can have: every physical row listed once, with
/// up to 2^20 centroids (`format/index.rs` bounds).
fn base_bound(a: &ArrayMetadata, dim: u64) -> u64 {
    let lists = u64::from(crate::format::index::MAX_LISTS);
    (64u64)
        .saturating_add(lists.saturating_mul(8 + 4 * dim))
        .saturating_add(256 * 4 * dim)
        .saturating_add(a.rows().saturating_mul(8 + 4 * dim))
}

/// The vector width of an indexable array (2-d float32 with rows of at least one element).
pub fn width(a: &ArrayMetadata) -> NpkResult<usize> {
    if a.dtype != crate::dtype::DataType::Float32 {
        return Err(NpkError::InvalidDtype(format!(
            "array '{}' is {}: an index needs float32 vectors (convert with \
             astype(np.float32) and save it)",
            a.name,
            a.dtype.numpy_name()
        )));
    }
    if a.shape.len() != 2 || a.shape[1] == 0 {
        return Err(NpkError::InvalidShape(format!(
            "array '{}' is {} of shape {:?}: an index needs 2-d float32 vectors",
            a.name,
            a.dtype.numpy_name(),
            a.shape
        )));
    }
    usize::try_from(a.shape[1])
        .ok()
        .filter(|&d| d <= crate::format::index::MAX_DIM as usize)
        .ok_or_else(|| {
            NpkError::InvalidOperation(format!(
                "array '{}' has vectors of {} elements; an index takes at most {}",
                a.name,
                a.shape[1],
                crate::format::index::MAX_DIM
            ))
        })
}

/// The index of the array `snap` views, up to date with the log (call under the store
/// lock): `None` when it has none. A damaged base file or log is [`NpkError::Corrupt`].
pub fn load(dir: &Path, snap: &ArraySnapshot) -> NpkResult<Option<Entry>> {
    let a = &snap.meta;
    let Some(base_name) = names::index_file(&a.data_file) else {
        return Ok(None);
    };
    let base_path = dir.join(&base_name);
    // Anything but a regular file there is an error (links are never followed).
    if fs::file_len(&base_path)?.is_none() {
        return Ok(None);
    }
    let Some(m) = fs::entry(&base_path)? else {
        return Ok(None);
    };
    let k = key(&m);
    let hit = {
        let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
        let at = c.iter().position(|(ck, _)| *ck == k);
        at.map(|i| {
            let e = c.remove(i);
            let entry = Arc::clone(&e.1);
            c.push(e);
            entry
        })
    };
    let entry = match hit {
        Some(e) => e,
        None => {
            let loaded = read_base(&base_path, a)?;
            let e = Arc::new(RwLock::new(loaded));
            let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
            c.retain(|(ck, _)| (ck.0, ck.1) != (k.0, k.1));
            c.push((k, Arc::clone(&e)));
            if c.len() > KEPT {
                c.remove(0);
            }
            e
        }
    };
    let fresh = {
        let mut l = entry.write().unwrap_or_else(|e| e.into_inner());
        let dim = l.listed.ivf.dim;
        SnapRows::new(snap, dim).and_then(|rows| catch_up(dir, a, rows.physical(), &mut l))
    };
    if let Err(e) = fresh {
        // Never keep a half-applied state.
        let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
        c.retain(|(_, ce)| !Arc::ptr_eq(ce, &entry));
        return Err(e);
    }
    Ok(Some(entry))
}

/// A damaged index file, and the way out.
fn damaged(path: &Path, name: &str, why: &str) -> NpkError {
    NpkError::corrupt(
        path,
        format!(
            "{why}; the array is intact: remove the index with drop_index('{name}') and \
             create it again"
        ),
    )
}

fn read_base(path: &Path, a: &ArrayMetadata) -> NpkResult<Loaded> {
    // Indexes are only built of 2-d float32 arrays: one beside another array was planted.
    if a.dtype != crate::dtype::DataType::Float32 || a.shape.len() != 2 {
        return Err(damaged(
            path,
            &a.name,
            &format!(
                "an index file beside a {} array of {} dimensions",
                a.dtype,
                a.shape.len()
            ),
        ));
    }
    let dim = a.shape.get(1).copied().unwrap_or(1).max(1);
    let bytes = fs::read_bounded(path, base_bound(a, dim))?
        .ok_or_else(|| NpkError::corrupt(path, "vanished while it was read"))?;
    let f = IndexFile::decode(&bytes).map_err(|why| damaged(path, &a.name, &why))?;
    let base_crc = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes"));
    if f.rows > a.rows() || f.ivf.dim as u64 != dim {
        return Err(NpkError::corrupt(
            path,
            format!(
                "indexes {} rows of {} elements; the array has {} rows of {dim}",
                f.rows,
                f.ivf.dim,
                a.rows()
            ),
        ));
    }
    let listed = Listed::new(f.ivf, f.rows).map_err(|why| damaged(path, &a.name, &why))?;
    Ok(Loaded {
        listed,
        stamp: f.stamp,
        base_crc,
        log_valid: 0,
        log_id: None,
        stuck: false,
    })
}

/// Applies the log records committed since `l` was last brought up to date (copies from
/// `data`, the array's physical rows).
fn catch_up(dir: &Path, a: &ArrayMetadata, data: &[f32], l: &mut Loaded) -> NpkResult<()> {
    let log_name = names::index_log_file(&a.data_file).expect("an index has a data file name");
    let path = dir.join(log_name);
    let Some(f) = fs::open_read_opt(&path)? else {
        // No log: the base alone (a create killed before its log was written).
        return if l.log_id.is_some() {
            Err(NpkError::corrupt(
                &path,
                "vanished while its index is in use",
            ))
        } else {
            Ok(())
        };
    };
    let m = f.metadata().at(&path)?;
    let len = m.len();
    let continues = l.log_id.is_some_and(|(dev, ino, last)| {
        let mut tail = [0u8; 4];
        (dev, ino) == (m.dev(), m.ino())
            && len >= l.log_valid
            && fs::read_upto(&f, &mut tail, l.log_valid - 4).ok() == Some(4)
            && tail == last
    });
    if l.log_id.is_some() && !continues {
        // Cut back and rewritten, or replaced: this state is not a prefix of the log.
        return Err(NpkError::corrupt(
            &path,
            "changed under its index (reopen the store)",
        ));
    }
    let from = if continues { l.log_valid } else { 0 };
    if continues && len == from {
        return Ok(());
    }
    let n = usize::try_from(len - from)
        .map_err(|_| NpkError::corrupt(&path, "is too large to read"))?;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(n)
        .map_err(|_| NpkError::OutOfMemory(format!("{n} bytes of index log")))?;
    bytes.resize(n, 0);
    let got = fs::read_upto(&f, &mut bytes, from).at(&path)?;
    bytes.truncate(got);
    let (body, at) = if continues {
        (&bytes[..], from)
    } else {
        if !index_log::follows(&bytes, l.base_crc) {
            // A log of another base (a reindex killed between its two renames): void.
            return Ok(());
        }
        (&bytes[index_log::HEADER..], index_log::HEADER as u64)
    };
    // Rows are checked once a record is known to be committed: an uncommitted append's
    // rows lie past the array's end.
    let b = Bounds {
        nlist: l.listed.ivf.nlist() as u32,
        rows: u64::MAX,
    };
    let recs = index_log::records(body, at, b).map_err(|why| damaged(&path, &a.name, &why))?;
    if !continues {
        l.log_valid = index_log::HEADER as u64;
        l.log_id = Some((m.dev(), m.ino(), bytes[12..16].try_into().expect("4 bytes")));
    }
    let count = recs.len();
    for (i, (rec, end)) in recs.into_iter().enumerate() {
        let stamp = match rec {
            Record::Added { stamp, .. } | Record::Stamp(stamp) => Some(stamp),
            Record::Moved { .. } => None,
        };
        if i + 1 == count && stamp.is_some_and(|s| s != a.last_modified) {
            // A commit that never happened (see the module documentation).
            break;
        }
        if let Record::Added { rows, .. } | Record::Moved { rows, .. } = &rec {
            if rows.iter().any(|&r| r >= a.rows()) {
                // The array is shorter than its index says: changed by a writer that
                // ignores indexes. Stale until reindexed.
                l.stuck = true;
                break;
            }
        }
        l.listed.apply(&rec, data);
        if let Some(s) = stamp {
            l.stamp = s;
        }
        let mut tail = [0u8; 4];
        fs::read_upto(&f, &mut tail, end - 4).at(&path)?;
        l.log_valid = end;
        l.log_id = Some((m.dev(), m.ino(), tail));
    }
    Ok(())
}

impl Loaded {
    /// Whether a log following this base was found (else it is missing or void).
    pub fn has_log(&self) -> bool {
        self.log_id.is_some()
    }
}

/// Whether a loaded index describes the array as committed: its last stamp is the array's
/// and it lists no row past the array's end.
pub fn is_current(l: &Loaded, a: &ArrayMetadata) -> bool {
    !l.stuck && l.stamp == a.last_modified && l.listed.end() <= a.rows()
}

/// Forgets every cached index of the base file at `path` (it is being replaced or removed).
pub fn forget(path: &Path) {
    if let Ok(Some(m)) = fs::entry(path) {
        let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
        c.retain(|(k, _)| (k.0, k.1) != (m.dev(), m.ino()));
    }
}
