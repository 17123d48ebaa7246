//! In-memory search: scores of queries against candidates, and each query's top k. Vectors of
//! any dtypes go through `promote` (the one promotion table) into `dispatch` (the one kernel
//! dispatch); float32 top-k with a filterable metric goes through `filter` (f32 pass + exact
//! rescoring), everything else is scored by the exact kernels directly. Both split the
//! candidates into row ranges run on the rayon pool.

use super::filter::{self, TaskTopK};
use super::kernels::{self, Element, Query};
use super::metric::Metric;
use super::promote::{self, Converted, Rows};
use super::topk::{best_k, key, merge, Candidates};
use crate::error::{NpkError, NpkResult};
use half::{bf16, f16};
use std::ops::Range;

/// Row-major vectors of one element type.
#[derive(Debug, Clone, Copy)]
pub enum Vectors<'a> {
    /// float32 rows.
    F32(&'a [f32]),
    /// float64 rows.
    F64(&'a [f64]),
    /// float16 rows.
    F16(&'a [f16]),
    /// bfloat16 rows.
    BF16(&'a [bf16]),
    /// int8 rows.
    I8(&'a [i8]),
    /// Bit vectors packed in bytes (hamming / jaccard).
    Bits(&'a [u8]),
}

impl Vectors<'_> {
    fn len(&self) -> usize {
        match self {
            Vectors::F32(v) => v.len(),
            Vectors::F64(v) => v.len(),
            Vectors::F16(v) => v.len(),
            Vectors::BF16(v) => v.len(),
            Vectors::I8(v) => v.len(),
            Vectors::Bits(v) => v.len(),
        }
    }

    /// Number of rows of `dim` elements.
    pub fn rows(&self, dim: usize) -> usize {
        self.len().checked_div(dim).unwrap_or(0)
    }
}

/// Work generic over the element type.
trait Job {
    type Out;
    fn run<T: Element>(self, q: &[T], c: &[T]) -> NpkResult<Self::Out>;
    /// float32 may take a faster route.
    fn run_f32(self, q: &[f32], c: &[f32]) -> NpkResult<Self::Out>
    where
        Self: Sized,
    {
        self.run(q, c)
    }
}

/// The dtype dispatch: both operands must have the same element type.
fn dispatch<J: Job>(job: J, q: Vectors<'_>, c: Vectors<'_>) -> NpkResult<J::Out> {
    kernels::init();
    match (q, c) {
        (Vectors::F32(q), Vectors::F32(c)) => job.run_f32(q, c),
        (Vectors::F64(q), Vectors::F64(c)) => job.run(q, c),
        (Vectors::F16(q), Vectors::F16(c)) => job.run(q, c),
        (Vectors::BF16(q), Vectors::BF16(c)) => job.run(q, c),
        (Vectors::I8(q), Vectors::I8(c)) => job.run(q, c),
        (Vectors::Bits(q), Vectors::Bits(c)) => job.run(q, c),
        _ => Err(NpkError::InvalidDtype(
            "query and candidates must have the same element type".into(),
        )),
    }
}

fn scorer<T: Element>(metric: Metric) -> NpkResult<kernels::Scorer<T>> {
    T::scorer(metric).ok_or_else(|| {
        NpkError::InvalidOperation(format!(
            "Compute error: Unsupported metric '{}' for dtype {}",
            metric.as_str(),
            T::NAME
        ))
    })
}

/// Threads of the pool the searches run on.
pub fn threads() -> usize {
    #[cfg(feature = "rayon")]
    return rayon::current_num_threads();
    #[cfg(not(feature = "rayon"))]
    1
}

/// Runs `f` on consecutive ranges of `n` rows (`step` each) and merges the per-query results.
fn over_ranges(
    n: usize,
    step: usize,
    m: usize,
    k: usize,
    similarity: bool,
    f: impl Fn(Range<usize>) -> TaskTopK + Sync + Send,
) -> TaskTopK {
    let ranges: Vec<Range<usize>> = (0..n.div_ceil(step))
        .map(|i| i * step..((i + 1) * step).min(n))
        .collect();
    let empty = || vec![(Vec::new(), Vec::new()); m];
    let combine = |a: TaskTopK, b: TaskTopK| -> TaskTopK {
        a.into_iter()
            .zip(b)
            .map(|(x, y)| merge(x, y, k, similarity))
            .collect()
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        ranges.into_par_iter().map(&f).reduce(empty, combine)
    }
    #[cfg(not(feature = "rayon"))]
    ranges.into_iter().map(f).fold(empty(), combine)
}

struct Scores {
    metric: Metric,
    dim: usize,
}

impl Job for Scores {
    type Out = Vec<f64>;
    fn run<T: Element>(self, q: &[T], c: &[T]) -> NpkResult<Vec<f64>> {
        let score = scorer::<T>(self.metric)?;
        let dim = self.dim;
        let n = c.len().checked_div(dim).unwrap_or(0);
        let queries: Vec<Query<'_, T>> = q
            .chunks_exact(dim.max(1))
            .map(|v| T::query(self.metric, v))
            .collect();
        let mut out = super::zeroed(queries.len().checked_mul(n), "the scores")?;
        if n == 0 {
            return Ok(out);
        }
        let fill = |qi: usize, row: &mut [f64], start: usize| {
            for (i, o) in row.iter_mut().enumerate() {
                let r = (start + i) * dim;
                *o = score(&queries[qi], &c[r..r + dim]);
            }
        };
        const CHUNK: usize = 4096;
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(n).enumerate().for_each(|(qi, row)| {
                row.par_chunks_mut(CHUNK)
                    .enumerate()
                    .for_each(|(b, o)| fill(qi, o, b * CHUNK));
            });
        }
        #[cfg(not(feature = "rayon"))]
        for (qi, row) in out.chunks_mut(n).enumerate() {
            fill(qi, row, 0);
        }
        Ok(out)
    }
}

/// Row-major `(queries, candidates)` score matrix (float64).
pub fn scores(metric: Metric, q: Vectors<'_>, c: Vectors<'_>, dim: usize) -> NpkResult<Vec<f64>> {
    dispatch(Scores { metric, dim }, q, c)
}

struct TopK {
    metric: Metric,
    dim: usize,
    k: usize,
    offset: u64,
}

impl Job for TopK {
    type Out = TaskTopK;

    fn run<T: Element>(self, q: &[T], c: &[T]) -> NpkResult<TaskTopK> {
        let score = scorer::<T>(self.metric)?;
        let (metric, dim, k) = (self.metric, self.dim, self.k);
        let sim = metric.is_similarity();
        let n = c.len().checked_div(dim).unwrap_or(0);
        let queries: Vec<Query<'_, T>> = q
            .chunks_exact(dim.max(1))
            .map(|v| T::query(metric, v))
            .collect();
        let m = queries.len();
        if k == 0 || n == 0 {
            return Ok(vec![(Vec::new(), Vec::new()); m]);
        }
        let step = (n.div_ceil(4 * threads())).clamp(1024, 1 << 15);
        let offset = self.offset;
        Ok(over_ranges(n, step, m, k, sim, |rows| {
            let mut sets = vec![Candidates::new(k); m];
            // Sub-blocks of rows stay in cache while every query scores them.
            const SUB: usize = 256;
            let mut s = rows.start;
            while s < rows.end {
                let e = (s + SUB).min(rows.end);
                for (qv, set) in queries.iter().zip(&mut sets) {
                    for i in s..e {
                        let kk = key(score(qv, &c[i * dim..(i + 1) * dim]), sim);
                        set.push_exact(kk, i as u64);
                    }
                }
                s = e;
            }
            sets.into_iter()
                .zip(&queries)
                .map(|(set, qv)| {
                    let all = set
                        .into_entries()
                        .into_iter()
                        .map(|e| {
                            let i = e.index as usize;
                            (e.index + offset, score(qv, &c[i * dim..(i + 1) * dim]))
                        })
                        .collect();
                    best_k(all, k, sim)
                })
                .collect()
        }))
    }

    fn run_f32(self, q: &[f32], c: &[f32]) -> NpkResult<TaskTopK> {
        if self.metric == Metric::L2 {
            // Same ranking as l2sq (keys and bounds live there); report the square roots.
            let sq = TopK {
                metric: Metric::L2Sq,
                ..self
            };
            let mut best = sq.run_f32(q, c)?;
            for (_, s) in &mut best {
                s.iter_mut().for_each(|v| *v = v.sqrt());
            }
            return Ok(best);
        }
        let (metric, dim, k, offset) = (self.metric, self.dim, self.k, self.offset);
        let n = c.len().checked_div(dim).unwrap_or(0);
        let bounds = (k > 0 && n > 0)
            .then(|| filter::bounds(metric, q, dim))
            .flatten();
        let Some(bounds) = bounds else {
            return self.run(q, c);
        };
        let m = bounds.len();
        let step = filter::task_rows(n, m);
        let sim = metric.is_similarity();
        Ok(if m == 1 {
            over_ranges(n, step, 1, k, sim, |rows| {
                filter::single(metric, &bounds[0], q, c, rows, k, offset)
            })
        } else {
            over_ranges(n, step, m, k, sim, |rows| {
                filter::multi(metric, &bounds, q, c, rows, k, offset)
            })
        })
    }
}

/// Per query, the `min(k, n)` best candidates, best first (ties by lower index), with exact
/// float64 scores. Candidate indices are offset by `offset`.
pub fn top_k(
    metric: Metric,
    q: Vectors<'_>,
    c: Vectors<'_>,
    dim: usize,
    k: usize,
    offset: u64,
) -> NpkResult<TaskTopK> {
    // No more results than candidates, whatever `k` says (nothing is sized by it).
    let k = k.min(c.rows(dim));
    dispatch(
        TopK {
            metric,
            dim,
            k,
            offset,
        },
        q,
        c,
    )
}

/// The kernel and converted operands of a search of `q` against `c` (any dtypes, promoted
/// by [`promote::kernel`]); their widths must agree.
fn promoted<'a, 'b>(
    metric: Metric,
    q: &Rows<'a>,
    c: &Rows<'b>,
) -> NpkResult<(Converted<'a>, Converted<'b>, usize)> {
    if q.dim != c.dim {
        return Err(NpkError::InvalidShape(format!(
            "Query dimension {} does not match candidates dimension {}",
            q.dim, c.dim
        )));
    }
    let k = promote::kernel(metric, q.dtype, c.dtype)?;
    let (qc, dim) = promote::convert(k, q)?;
    let (cc, _) = promote::convert(k, c)?;
    Ok((qc, cc, dim))
}

/// The one score of vectors of width 0 (every pair alike: two vectors of one zero element),
/// after the dtype check; `None` when the vectors have elements.
fn zero_width(metric: Metric, q: &Rows<'_>, c: &Rows<'_>) -> NpkResult<Option<f64>> {
    if q.dim != 0 || c.dim != 0 {
        return Ok(None);
    }
    let k = promote::kernel(metric, q.dtype, c.dtype)?;
    let one = Rows::new(q.dtype, &[], 1, 0)?;
    let (a, _) = promote::convert(k, &one)?;
    Ok(Some(scores(metric, a.vectors(), a.vectors(), 1)?[0]))
}

/// [`scores`] of vectors of any dtypes: row-major `(queries, candidates)`, float64.
pub fn scores_of(metric: Metric, q: &Rows<'_>, c: &Rows<'_>) -> NpkResult<Vec<f64>> {
    if let Some(s) = zero_width(metric, q, c)? {
        // Sized by the caller's request only: nothing is converted or scanned.
        let mut out = super::zeroed(q.rows.checked_mul(c.rows), "the scores")?;
        out.fill(s);
        return Ok(out);
    }
    let (qc, cc, dim) = promoted(metric, q, c)?;
    scores(metric, qc.vectors(), cc.vectors(), dim)
}

/// [`top_k`] of vectors of any dtypes.
pub fn top_k_of(metric: Metric, q: &Rows<'_>, c: &Rows<'_>, k: usize) -> NpkResult<TaskTopK> {
    if let Some(s) = zero_width(metric, q, c)? {
        // All tie: the first rows, whatever their count (a zero-width array costs NumPy no
        // memory, so its row count bounds nothing).
        let n = k.min(c.rows) as u64;
        return Ok(vec![((0..n).collect(), vec![s; n as usize]); q.rows]);
    }
    let (qc, cc, dim) = promoted(metric, q, c)?;
    top_k(metric, qc.vectors(), cc.vectors(), dim, k, 0)
}
