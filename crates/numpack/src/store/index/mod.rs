//! Vector indexes of arrays, kept in the store and maintained by the commits of the array.
//!
//! An index of a 2-d float32 array is two files numpack owns (the published package ignores
//! them; docs/FORMAT.md): the base `index_<stem>.npki`, written whole by `create_index`,
//! `reindex` and compaction, and the delta log `index_<stem>.npkx`, to which every append,
//! replace and drop of the array adds a record before its commit point:
//! - an append's record (the new rows' lists and copies) goes past the log's committed end,
//!   like the rows past the data file's; a killed append leaves a record whose stamp the
//!   metadata never got, which readers skip and the next writer cuts off;
//! - a replace's record is covered by the replace's undo record, which cuts the log back
//!   with the rows;
//! - a drop adds a stamp (deleted rows are the bitmap's business: searches ask it);
//! - compaction writes a new base with the rows renumbered, in the compaction's journal.
//!
//! Searches run under the store's shared lock against one committed state and rescore their
//! candidates from the array, so every returned row is live and its score exact.

mod cache;
mod maintain;

pub(crate) use maintain::{forget_files, upkeep, Upkeep};

use super::Store;
use crate::error::{NpkError, NpkResult};
use crate::format::bitmap::Bitmap;
use crate::format::index::IndexFile;
use crate::format::index_log;
use crate::format::metadata::ArrayMetadata;
use crate::format::names;
use crate::io::fs;
use crate::read::snapshot::ArraySnapshot;
use crate::vector::index::{BuildOptions, Ivf, RowSource};
use crate::vector::metric::Metric;
use crate::vector::stream::{stream_top_k, Queries};
use std::borrow::Cow;
use std::path::Path;

pub use cache::width;

/// What `index_info` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexInfo {
    /// The metric it ranks by.
    pub metric: Metric,
    /// `"ivf_flat"` or `"ivf_pq"`.
    pub kind: &'static str,
    /// PQ sub-spaces (bytes per row) of an IVF-PQ index.
    pub m: Option<usize>,
    /// Lists.
    pub nlist: usize,
    /// Vector width.
    pub dim: usize,
    /// Rows listed (deleted ones included until compaction).
    pub listed: u64,
    /// Largest list over the mean list (1.0 when balanced; `reindex` when it drifts).
    pub imbalance: f64,
    /// Whether it describes the array as committed (else searches go exact until
    /// `reindex`).
    pub current: bool,
    /// Bytes of the base file.
    pub base_bytes: u64,
    /// Bytes of the delta log.
    pub log_bytes: u64,
}

/// How a search runs.
#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    /// Results per query (capped at the array's rows).
    pub k: usize,
    /// Lists probed (default: `max(8, nlist / 64)`).
    pub nprobe: Option<usize>,
    /// Candidates rescored exactly per result (default 2 for IVF-Flat, 10 for IVF-PQ).
    pub refine: Option<usize>,
    /// Search every row exactly (the exact engine), index or not.
    pub exact: bool,
    /// The metric (default: the index's; cosine without one). Another metric than the
    /// index's is searched exactly.
    pub metric: Option<Metric>,
    /// Rows per batch of an exact search.
    pub batch: usize,
}

/// Per query, `(logical rows, scores)`.
pub type Results = Vec<(Vec<u64>, Vec<f64>)>;

/// A search's answer: per query, logical rows and exact scores, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Searched {
    /// Per query, `(logical rows, scores)`.
    pub results: Results,
    /// Whether the index answered (else the exact engine did).
    pub indexed: bool,
}

/// Rows of a mapped float32 array, the deleted ones absent.
pub(crate) struct SnapRows<'a> {
    data: Cow<'a, [f32]>,
    dim: usize,
    rows: u64,
    bitmap: Option<&'a Bitmap>,
}

impl<'a> SnapRows<'a> {
    pub(crate) fn new(snap: &'a ArraySnapshot, dim: usize) -> NpkResult<Self> {
        let bytes = snap.physical()?;
        let data = match bytemuck::try_cast_slice::<u8, f32>(bytes) {
            Ok(v) => Cow::Borrowed(v),
            Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
        };
        let rows = (data.len() / dim.max(1)) as u64;
        Ok(SnapRows {
            data,
            dim,
            rows: rows.min(snap.meta.rows()),
            bitmap: snap.bitmap(),
        })
    }
}

impl SnapRows<'_> {
    /// Every physical row, deleted ones included (row-major).
    pub(crate) fn physical(&self) -> &[f32] {
        &self.data[..(self.rows as usize * self.dim).min(self.data.len())]
    }
}

impl RowSource for SnapRows<'_> {
    fn row(&self, r: u64) -> Option<&[f32]> {
        if r >= self.rows || self.bitmap.is_some_and(|b| r < b.rows() && !b.is_active(r)) {
            return None;
        }
        let at = r as usize * self.dim;
        self.data.get(at..at + self.dim)
    }
}

fn no_index(name: &str) -> NpkError {
    NpkError::InvalidOperation(format!(
        "array '{name}' has no index; create one with create_index('{name}')"
    ))
}

fn files(a: &ArrayMetadata) -> (String, String) {
    (
        names::index_file(&a.data_file).expect("data files have index names"),
        names::index_log_file(&a.data_file).expect("data files have index names"),
    )
}

/// Writes a new base and an empty log after it, each through a temporary and a rename, the
/// base first: a kill between the two leaves the new base with the old log, which names the
/// old base and so is void.
fn install(dir: &Path, a: &ArrayMetadata, file: &IndexFile, durable: bool) -> NpkResult<()> {
    let (base, log) = files(a);
    let tmp = super::commit::tmp_path(dir, &base);
    let crc = match write_base(&tmp, file, durable) {
        Ok(crc) => crc,
        Err(e) => {
            let _ = fs::remove(&tmp);
            return Err(e);
        }
    };
    for (name, body) in [(&base, None), (&log, Some(index_log::header(crc)))] {
        let tmp = match body {
            None => tmp.clone(),
            Some(_) => super::commit::tmp_path(dir, name),
        };
        let written = match &body {
            Some(b) => fs::write_new(&tmp, b, durable).map(|_| ()),
            None => Ok(()),
        };
        let done = written.and_then(|_| {
            let to = dir.join(name);
            cache::forget(&to);
            fs::rename(&tmp, &to).map_err(|e| NpkError::io(&to, e))
        });
        if let Err(e) = done {
            let _ = fs::remove(&tmp);
            return Err(e);
        }
        if durable {
            // The base's rename before the log's: a log naming a base that power loss took
            // back would void the old base's log.
            fs::sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Writes `file` to the new file `path` in pieces (never a second copy of a large index in
/// memory), synced when `durable`; its crc32.
pub(crate) fn write_base(path: &Path, file: &IndexFile, durable: bool) -> NpkResult<u32> {
    let f = fs::create_new(path)?;
    let mut at = 0u64;
    let mut last = [0u8; 4];
    let wrote = file.encode_with(8 << 20, |piece| {
        fs::write_at(&f, path, piece, at)?;
        at += piece.len() as u64;
        if piece.len() >= 4 {
            last.copy_from_slice(&piece[piece.len() - 4..]);
        }
        Ok::<(), NpkError>(())
    })?;
    if wrote.is_none() {
        return Err(NpkError::InvalidOperation(
            "this metric cannot be stored in an index".into(),
        ));
    }
    if durable {
        fs::sync(&f, path)?;
    }
    Ok(u32::from_le_bytes(last))
}

impl Store {
    /// Builds an IVF index of array `name` (2-d float32) ranking by `metric` (cosine, dot,
    /// l2 or l2sq), replacing any index it has. From then on every append, replace, drop
    /// and compaction of the array keeps it up to date in its own commit.
    pub fn create_index(&self, name: &str, metric: Metric, opts: &BuildOptions) -> NpkResult<()> {
        self.locked(|meta| {
            let a = meta
                .arrays
                .get(name)
                .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))?;
            let dim = width(a)?;
            let snap = ArraySnapshot::open(self.dir(), a.clone())?;
            let src = SnapRows::new(&snap, dim)?;
            let ivf = Ivf::build(metric, &src, a.rows(), dim, opts)?;
            let file = IndexFile {
                stamp: a.last_modified,
                rows: a.rows(),
                ivf,
            };
            install(self.dir(), a, &file, self.durable())
        })
    }

    /// Trains the index of `name` again on the array as it is now (same metric and lists):
    /// for data that drifted from the centroids (see [`IndexInfo::imbalance`]), or an index
    /// left stale by a writer that ignores indexes.
    pub fn reindex(&self, name: &str, opts: &BuildOptions) -> NpkResult<()> {
        let info = self.index_info(name)?.ok_or_else(|| no_index(name))?;
        let opts = BuildOptions {
            nlist: Some(opts.nlist.unwrap_or(info.nlist)),
            pq: info.m,
            ..*opts
        };
        self.create_index(name, info.metric, &opts)
    }

    /// Removes the index of `name`; whether it had one.
    pub fn drop_index(&self, name: &str) -> NpkResult<bool> {
        self.locked(|meta| {
            let a = meta
                .arrays
                .get(name)
                .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))?;
            let (base, log) = files(a);
            let base = self.dir().join(base);
            cache::forget(&base);
            // The base first: a log alone is no index.
            let had = fs::remove(&base)?;
            fs::remove(&self.dir().join(log))?;
            if self.durable() {
                fs::sync_dir(self.dir())?;
            }
            Ok(had)
        })
    }

    /// What the index of `name` is, `None` when it has none.
    pub fn index_info(&self, name: &str) -> NpkResult<Option<IndexInfo>> {
        self.read_locked(name, |snap| {
            let a = &snap.meta;
            let Some(entry) = cache::load(self.dir(), snap)? else {
                return Ok(None);
            };
            let l = entry.read().unwrap_or_else(|e| e.into_inner());
            let (base, log) = files(a);
            let len = |n: &str| fs::file_len(&self.dir().join(n)).map(Option::unwrap_or_default);
            Ok(Some(IndexInfo {
                metric: l.listed.ivf.metric,
                kind: if l.listed.ivf.pq.is_some() {
                    "ivf_pq"
                } else {
                    "ivf_flat"
                },
                m: l.listed.ivf.pq.as_ref().map(|p| p.m),
                nlist: l.listed.ivf.nlist(),
                dim: l.listed.ivf.dim,
                listed: l.listed.len() as u64,
                imbalance: l.listed.ivf.imbalance(),
                current: cache::is_current(&l, a),
                base_bytes: len(&base)?,
                log_bytes: len(&log)?,
            }))
        })
    }

    /// The metric of the index of `name`, from its header alone (`None` without one).
    fn index_metric(&self, name: &str) -> NpkResult<Option<Metric>> {
        let a = self.array_metadata(name)?;
        let path = self.dir().join(files(&a).0);
        let Some(f) = fs::open_read_opt(&path)? else {
            return Ok(None);
        };
        let mut head = [0u8; 64];
        let n = fs::read_upto(&f, &mut head, 0).map_err(|e| NpkError::io(&path, e))?;
        Ok(IndexFile::peek_metric(&head[..n]))
    }

    /// The `k` best rows of array `name` for each query: through its index when it has a
    /// current one of the asked metric (exact scores of approximately found rows), else, or
    /// with `exact`, by the exact engine.
    pub fn search(&self, name: &str, q: &Queries, opts: &SearchOptions) -> NpkResult<Searched> {
        let indexed = if opts.exact {
            None
        } else {
            self.read_locked(name, |snap| search_indexed(self.dir(), snap, q, opts))?
        };
        if let Some(results) = indexed {
            return Ok(Searched {
                results,
                indexed: true,
            });
        }
        let metric = match opts.metric {
            Some(m) => m,
            None => self.index_metric(name)?.unwrap_or(Metric::Cosine),
        };
        Ok(Searched {
            results: stream_top_k(self, name, metric, q, opts.k, opts.batch)?,
            indexed: false,
        })
    }
}

/// The indexed search of [`Store::search`] on one committed view; `None` when the array
/// has no current index of the asked metric.
fn search_indexed(
    dir: &Path,
    snap: &ArraySnapshot,
    q: &Queries,
    opts: &SearchOptions,
) -> NpkResult<Option<Results>> {
    let a = &snap.meta;
    let Some(entry) = cache::load(dir, snap)? else {
        return Ok(None);
    };
    let l = entry.read().unwrap_or_else(|e| e.into_inner());
    let ivf = &l.listed.ivf;
    if !cache::is_current(&l, a) || opts.metric.is_some_and(|m| m != ivf.metric) {
        return Ok(None);
    }
    if q.dim() != ivf.dim {
        return Err(NpkError::InvalidShape(format!(
            "Dimension mismatch: query dim {} vs array dim {}",
            q.dim(),
            ivf.dim
        )));
    }
    let qv = q.as_f32()?;
    let src = SnapRows::new(snap, ivf.dim)?;
    let nlist = ivf.nlist();
    let nprobe = opts.nprobe.unwrap_or((nlist / 64).max(8)).clamp(1, nlist);
    let refine = opts
        .refine
        .unwrap_or(if ivf.pq.is_some() { 10 } else { 2 })
        .max(1);
    let want = opts
        .k
        .min(usize::try_from(snap.logical_rows()).unwrap_or(usize::MAX));
    let mut found = ivf.search(&src, &qv, want, nprobe, refine);
    // Every query gets `want` rows: one whose probed lists held fewer live rows is searched
    // through every list (all live rows are listed).
    for (i, f) in found.iter_mut().enumerate() {
        if f.0.len() < want {
            let one = &qv[i * ivf.dim..(i + 1) * ivf.dim];
            *f = ivf
                .search(&src, one, want, nlist, refine)
                .pop()
                .unwrap_or_default();
        }
    }
    let bitmap = snap.bitmap();
    for (rows, _) in &mut found {
        if let Some(b) = bitmap {
            for r in rows.iter_mut() {
                *r = b.rank(*r);
            }
        }
    }
    Ok(Some(found))
}

/// For `verify`: loads the index of `a` (every byte of it checked), `Some(note)` when it is
/// stale.
pub(crate) fn check(dir: &Path, a: &ArrayMetadata) -> NpkResult<Option<String>> {
    let has = names::index_file(&a.data_file)
        .is_some_and(|n| !matches!(fs::entry(&dir.join(n)), Ok(None)));
    if !has {
        return Ok(None);
    }
    width(a)?;
    let snap = ArraySnapshot::open(dir, a.clone())?;
    let entry = cache::load(dir, &snap)?.ok_or_else(|| no_index(&a.name))?;
    let l = entry.read().unwrap_or_else(|e| e.into_inner());
    Ok((!cache::is_current(&l, a)).then(|| {
        "its index is stale (the array was changed by a writer that ignores indexes, or \
         restored): searches are exact until reindex"
            .to_owned()
    }))
}
