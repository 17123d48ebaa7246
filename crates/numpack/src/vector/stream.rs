//! Search streamed from a store or a snapshot: candidates are read from the array's mapping (in
//! place when no row is deleted or patched, else in batches of logical rows copied out), never
//! loaded whole; deleted rows are skipped and indices are logical rows. Arrays of every dtype
//! are searched, promoted with the queries by `promote` as in memory. A search sees one
//! committed state: it runs again when a writer changed rows under it
//! (`Store::read_consistent`, `Snapshot::read`).

use super::metric::Metric;
use super::promote::{self, Kernel, Rows};
use super::search::{scores, top_k};
use super::topk::merge;
use crate::dtype::DataType;
use crate::error::{NpkError, NpkResult};
use crate::read::snapshot::ArraySnapshot;
use crate::read::version::VersionedArray;
use crate::store::{Snapshot, Store};

/// Query vectors for a streamed search (owned, row-major, little-endian).
#[derive(Debug, Clone)]
pub struct Queries {
    dtype: DataType,
    bytes: Vec<u8>,
    rows: usize,
    dim: usize,
}

impl Queries {
    /// `rows` queries of `dim` elements of `dtype`.
    pub fn new(dtype: DataType, bytes: Vec<u8>, rows: usize, dim: usize) -> NpkResult<Self> {
        Rows::new(dtype, &bytes, rows, dim)?;
        Ok(Queries {
            dtype,
            bytes,
            rows,
            dim,
        })
    }

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether there are no queries.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Width of each query.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The queries as float32 (an index searches in float32): borrowed when they are.
    pub fn as_f32(&self) -> NpkResult<std::borrow::Cow<'_, [f32]>> {
        use promote::Converted;
        let r = self.as_rows();
        let k = if self.dtype == DataType::Float32 {
            Kernel::F32
        } else {
            Kernel::F64
        };
        Ok(match promote::convert(k, &r)?.0 {
            Converted::F32(v) => v,
            Converted::F64(v) => std::borrow::Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            _ => {
                return Err(NpkError::DtypeMismatch(format!(
                    "queries of {} cannot be searched as float32",
                    self.dtype.numpy_name()
                )))
            }
        })
    }

    fn as_rows(&self) -> Rows<'_> {
        Rows {
            dtype: self.dtype,
            bytes: &self.bytes,
            rows: self.rows,
            dim: self.dim,
        }
    }
}

/// Where a streamed search reads its candidates: an array of the store, or of a snapshot.
pub trait Candidates {
    /// The mapped view (record, data, bitmap).
    fn view(&self) -> &ArraySnapshot;
    /// Whether some rows read differently from the mapping (a snapshot's patched rows).
    fn patched(&self) -> bool;
    /// Copies logical rows `start..stop` into `dst`.
    fn range_into(&self, start: u64, stop: u64, dst: &mut [u8]) -> NpkResult<()>;
}

impl Candidates for ArraySnapshot {
    fn view(&self) -> &ArraySnapshot {
        self
    }
    fn patched(&self) -> bool {
        false
    }
    fn range_into(&self, start: u64, stop: u64, dst: &mut [u8]) -> NpkResult<()> {
        ArraySnapshot::range_into(self, start, stop, dst)
    }
}

impl Candidates for VersionedArray {
    fn view(&self) -> &ArraySnapshot {
        &self.view
    }
    fn patched(&self) -> bool {
        !self.rows.is_empty()
    }
    fn range_into(&self, start: u64, stop: u64, dst: &mut [u8]) -> NpkResult<()> {
        VersionedArray::range_into(self, start, stop, dst)
    }
}

/// The kernel for array `name` (its view `snap`) and the queries, after checking dimensions.
fn plan(snap: &ArraySnapshot, name: &str, metric: Metric, q: &Queries) -> NpkResult<Kernel> {
    let adim = match snap.meta.shape.len() {
        1 => 1,
        2 => usize::try_from(snap.meta.shape[1]).unwrap_or(usize::MAX),
        n => {
            return Err(NpkError::InvalidShape(format!(
                "array '{name}' is {n}-d; 1-d or 2-d needed"
            )))
        }
    };
    if adim == 0 {
        // Its row count is backed by no data: a hostile 100-byte store could claim 2^60.
        return Err(NpkError::InvalidShape(format!(
            "array '{name}' holds vectors of dimension 0, which cannot be searched"
        )));
    }
    if adim != q.dim {
        return Err(NpkError::InvalidShape(format!(
            "Dimension mismatch: query dim {} vs array dim {adim}",
            q.dim
        )));
    }
    promote::kernel(metric, q.dtype, snap.meta.dtype)
}

/// Calls `f(first logical row, candidates)` for each batch of logical rows, converted into
/// kernel `k`, with the converted width.
fn for_batches(
    src: &dyn Candidates,
    k: Kernel,
    dim: usize,
    batch: usize,
    mut f: impl FnMut(u64, super::Vectors<'_>, usize) -> NpkResult<()>,
) -> NpkResult<()> {
    let snap = src.view();
    let rows = snap.logical_rows();
    let row_bytes = snap.row_bytes();
    // Rows read straight from the mapping in the kernel's own elements are searched in place:
    // batches would bound nothing (no copy is made) and only cost merges. Otherwise `batch`
    // rows are copied (or converted) at a time, so memory stays one batch.
    // (Segments are read batch by batch: one view of them may mean reading them all.)
    let in_place = snap.bitmap().is_none() && !src.patched() && !snap.is_segmented();
    let batch = if in_place && promote::is_native(k, snap.meta.dtype) {
        rows.max(1)
    } else {
        batch as u64
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut start = 0u64;
    while start < rows {
        let stop = rows.min(start + batch);
        let n = (stop - start) as usize;
        let bytes: &[u8] = if in_place {
            &snap.physical()?[start as usize * row_bytes..stop as usize * row_bytes]
        } else {
            buf.resize(n * row_bytes, 0);
            src.range_into(start, stop, &mut buf)?;
            &buf
        };
        let (c, width) = promote::convert(k, &Rows::new(snap.meta.dtype, bytes, n, dim)?)?;
        f(start, c.vectors(), width)?;
        start = stop;
    }
    Ok(())
}

fn check_batch(batch: usize) -> NpkResult<()> {
    if batch == 0 {
        return Err(NpkError::InvalidOperation(
            "batch_size must be greater than 0".into(),
        ));
    }
    Ok(())
}

fn run_top_k(
    src: &dyn Candidates,
    name: &str,
    metric: Metric,
    q: &Queries,
    k: usize,
    batch: usize,
) -> NpkResult<Vec<(Vec<u64>, Vec<f64>)>> {
    check_batch(batch)?;
    let kernel = plan(src.view(), name, metric, q)?;
    let (qc, _) = promote::convert(kernel, &q.as_rows())?;
    let k = k.min(usize::try_from(src.view().logical_rows()).unwrap_or(usize::MAX));
    let mut best = vec![(Vec::new(), Vec::new()); q.len()];
    for_batches(src, kernel, q.dim, batch, |start, cands, width| {
        let part = top_k(metric, qc.vectors(), cands, width, k, start)?;
        best = std::mem::take(&mut best)
            .into_iter()
            .zip(part)
            .map(|(a, b)| merge(a, b, k, metric.is_similarity()))
            .collect();
        Ok(())
    })?;
    Ok(best)
}

fn run_scores(
    src: &dyn Candidates,
    name: &str,
    metric: Metric,
    q: &Queries,
    batch: usize,
) -> NpkResult<Vec<f64>> {
    check_batch(batch)?;
    let kernel = plan(src.view(), name, metric, q)?;
    let (qc, _) = promote::convert(kernel, &q.as_rows())?;
    let m = q.len();
    let n = usize::try_from(src.view().logical_rows()).unwrap_or(usize::MAX);
    let mut out = super::zeroed(m.checked_mul(n), "the scores")?;
    for_batches(src, kernel, q.dim, batch, |start, cands, width| {
        let s = scores(metric, qc.vectors(), cands, width)?;
        let len = cands.rows(width);
        for qi in 0..m {
            let dst = qi * n + start as usize;
            out[dst..dst + len].copy_from_slice(&s[qi * len..(qi + 1) * len]);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Per query, the best `k` logical rows of array `name` of the store, best first.
pub fn stream_top_k(
    store: &Store,
    name: &str,
    metric: Metric,
    q: &Queries,
    k: usize,
    batch: usize,
) -> NpkResult<Vec<(Vec<u64>, Vec<f64>)>> {
    // One committed state: searched again if a writer changed rows meanwhile (after three
    // tries, under the shared lock), as every eager read of the store is.
    store.read_consistent(name, |snap| run_top_k(snap, name, metric, q, k, batch))
}

/// Row-major `(queries, logical rows)` scores against array `name` of the store.
pub fn stream_scores(
    store: &Store,
    name: &str,
    metric: Metric,
    q: &Queries,
    batch: usize,
) -> NpkResult<Vec<f64>> {
    store.read_consistent(name, |snap| run_scores(snap, name, metric, q, batch))
}

/// [`stream_top_k`] of array `name` at the snapshot's version.
pub fn snapshot_top_k(
    snap: &Snapshot,
    name: &str,
    metric: Metric,
    q: &Queries,
    k: usize,
    batch: usize,
) -> NpkResult<Vec<(Vec<u64>, Vec<f64>)>> {
    snap.read(name, |a| run_top_k(a, name, metric, q, k, batch))
}

/// [`stream_scores`] of array `name` at the snapshot's version.
pub fn snapshot_scores(
    snap: &Snapshot,
    name: &str,
    metric: Metric,
    q: &Queries,
    batch: usize,
) -> NpkResult<Vec<f64>> {
    snap.read(name, |a| run_scores(a, name, metric, q, batch))
}
