//! Search streamed from a store: candidates are read from the array's mapping (in place when no
//! row is deleted, else in batches of logical rows copied out), never loaded whole; deleted
//! rows are skipped and indices are logical rows. A search sees one committed state: it runs
//! again when a writer changed rows under it (`Store::read_consistent`).

use super::metric::Metric;
use super::search::{scores, top_k, Vectors};
use super::topk::merge;
use crate::dtype::DataType;
use crate::error::{NpkError, NpkResult};
use crate::read::snapshot::ArraySnapshot;
use crate::store::Store;

/// Query vectors for a streamed search (owned, row-major).
#[derive(Debug, Clone)]
pub enum Queries {
    /// float32 rows (searches a Float32 array).
    F32(Vec<f32>),
    /// float64 rows (searches a Float64 array).
    F64(Vec<f64>),
}

impl Queries {
    fn dtype(&self) -> DataType {
        match self {
            Queries::F32(_) => DataType::Float32,
            Queries::F64(_) => DataType::Float64,
        }
    }
}

/// The error for a missing array, in the message the vector engine has always used.
fn not_found(name: &str) -> impl Fn(NpkError) -> NpkError + '_ {
    move |e| match e {
        NpkError::ArrayNotFound(_) => {
            NpkError::ArrayNotFound(format!("Array '{name}' not found in NumPack"))
        }
        other => other,
    }
}

/// Checks array `name` (its view `snap`) against the queries: dtype and dimension.
fn check(snap: &ArraySnapshot, name: &str, q: &Queries, dim: usize) -> NpkResult<()> {
    if snap.meta.dtype != q.dtype() {
        return Err(NpkError::InvalidDtype(format!(
            "Array dtype mismatch: array '{name}' is {}, query is {}",
            snap.meta.dtype,
            q.dtype()
        )));
    }
    let adim = match snap.meta.shape.len() {
        1 => 1,
        2 => snap.meta.shape[1] as usize,
        n => {
            return Err(NpkError::InvalidShape(format!(
                "array '{name}' is {n}-d; 1-d or 2-d needed"
            )))
        }
    };
    if adim == 0 {
        return Err(NpkError::InvalidShape(format!(
            "array '{name}' holds vectors of dimension 0, which cannot be searched"
        )));
    }
    if adim != dim {
        return Err(NpkError::InvalidShape(format!(
            "Dimension mismatch: query dim {dim} vs array dim {adim}"
        )));
    }
    Ok(())
}

/// Calls `f(first logical row, candidates)` for each batch of logical rows.
fn for_batches(
    snap: &ArraySnapshot,
    q: &Queries,
    batch: usize,
    mut f: impl FnMut(u64, Vectors<'_>) -> NpkResult<()>,
) -> NpkResult<()> {
    let rows = snap.logical_rows();
    let row_bytes = snap.row_bytes();
    // Without deleted rows the mapping is searched in place: batches would bound nothing (no
    // copy is made) and only cost merges. With deleted rows, `batch` rows are copied at a time.
    let batch = if snap.bitmap().is_none() {
        rows.max(1)
    } else {
        batch.max(1) as u64
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut start = 0u64;
    while start < rows {
        let stop = rows.min(start + batch);
        let bytes: &[u8] = if snap.bitmap().is_none() {
            &snap.physical()[start as usize * row_bytes..stop as usize * row_bytes]
        } else {
            buf.resize((stop - start) as usize * row_bytes, 0);
            snap.range_into(start, stop, &mut buf)?;
            &buf
        };
        // Mappings are page-aligned and rows are whole elements, so the casts cannot fail;
        // a copy covers any other case.
        match q {
            Queries::F32(_) => match bytemuck::try_cast_slice::<u8, f32>(bytes) {
                Ok(v) => f(start, Vectors::F32(v))?,
                Err(_) => f(start, Vectors::F32(&bytemuck::pod_collect_to_vec(bytes)))?,
            },
            Queries::F64(_) => match bytemuck::try_cast_slice::<u8, f64>(bytes) {
                Ok(v) => f(start, Vectors::F64(v))?,
                Err(_) => f(start, Vectors::F64(&bytemuck::pod_collect_to_vec(bytes)))?,
            },
        }
        start = stop;
    }
    Ok(())
}

fn as_vectors(q: &Queries) -> Vectors<'_> {
    match q {
        Queries::F32(v) => Vectors::F32(v),
        Queries::F64(v) => Vectors::F64(v),
    }
}

/// Per query, the best `k` logical rows of array `name`, best first.
pub fn stream_top_k(
    store: &Store,
    name: &str,
    metric: Metric,
    q: &Queries,
    dim: usize,
    k: usize,
    batch: usize,
) -> NpkResult<Vec<(Vec<u64>, Vec<f64>)>> {
    // One committed state: searched again if a writer changed rows meanwhile (after three
    // tries, under the shared lock), as every eager read of the store is.
    store
        .read_consistent(name, |snap| {
            check(snap, name, q, dim)?;
            let k = k.min(usize::try_from(snap.logical_rows()).unwrap_or(usize::MAX));
            let m = as_vectors(q).rows(dim);
            let mut best = vec![(Vec::new(), Vec::new()); m];
            for_batches(snap, q, batch, |start, cands| {
                let part = top_k(metric, as_vectors(q), cands, dim, k, start)?;
                best = std::mem::take(&mut best)
                    .into_iter()
                    .zip(part)
                    .map(|(a, b)| merge(a, b, k, metric.is_similarity()))
                    .collect();
                Ok(())
            })?;
            Ok(best)
        })
        .map_err(not_found(name))
}

/// Row-major `(queries, logical rows)` scores against array `name`.
pub fn stream_scores(
    store: &Store,
    name: &str,
    metric: Metric,
    q: &Queries,
    dim: usize,
    batch: usize,
) -> NpkResult<Vec<f64>> {
    store
        .read_consistent(name, |snap| {
            check(snap, name, q, dim)?;
            let m = as_vectors(q).rows(dim);
            let n = snap.logical_rows() as usize;
            let cells = m.checked_mul(n).ok_or_else(|| {
                NpkError::InvalidShape(format!("{m} x {n} scores do not fit in memory"))
            })?;
            let mut out = vec![0.0; cells];
            for_batches(snap, q, batch, |start, cands| {
                let s = scores(metric, as_vectors(q), cands, dim)?;
                let len = cands.rows(dim);
                for qi in 0..m {
                    let dst = qi * n + start as usize;
                    out[dst..dst + len].copy_from_slice(&s[qi * len..(qi + 1) * len]);
                }
                Ok(())
            })?;
            Ok(out)
        })
        .map_err(not_found(name))
}
