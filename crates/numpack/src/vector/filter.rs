//! float32 search by filtering: candidate rows are scored in f32 (one read of each row for one
//! query, a cache-blocked matrix product for several), every score gets a guaranteed interval
//! (`bounds`), and only the rows whose interval can reach the running top-k threshold are
//! rescored by the exact kernels. The result is the exact (float64) top k.

use super::bounds::{Bound, RowTerms};
use super::kernels::scan::{dot_norm_rows, norm_rows};
use super::kernels::Element;
use super::metric::Metric;
use super::topk::{best_k, key, Candidates};
use std::ops::Range;

/// Rows per filtering step of a single query (their dots and norms stay in registers/L1).
const STEP: usize = 64;
/// Candidate rows per matrix-product block: 2048 x 128 floats = 1 MiB, with the (queries x
/// rows) scores beside it still in L2.
const BLOCK: usize = 2048;

/// One query's best rows of one task: `(index, exact score)`, best first.
pub type TaskTopK = Vec<(Vec<u64>, Vec<f64>)>;

/// Bounds for every query, or `None` if one of them cannot be filtered (the caller then
/// scores exactly).
pub fn bounds(metric: Metric, q: &[f32], dim: usize) -> Option<Vec<Bound>> {
    q.chunks_exact(dim)
        .map(|v| Bound::new(metric, dim, <f32 as Element>::norm2(v)))
        .collect()
}

/// Exact top-k of the survivors of one query.
fn finish(
    metric: Metric,
    q: &[f32],
    c: &[f32],
    dim: usize,
    k: usize,
    set: Candidates,
    offset: u64,
) -> (Vec<u64>, Vec<f64>) {
    let Some(score) = f32::scorer(metric) else {
        return (Vec::new(), Vec::new());
    };
    let query = f32::query(metric, q);
    let all = set
        .into_entries()
        .into_iter()
        .map(|e| {
            let i = e.index as usize;
            (e.index + offset, score(&query, &c[i * dim..(i + 1) * dim]))
        })
        .collect();
    best_k(all, k, metric.is_similarity())
}

/// Offers the rows without a bound exactly.
fn offer_unbounded(
    metric: Metric,
    q: &[f32],
    c: &[f32],
    dim: usize,
    rows: impl Iterator<Item = usize>,
    set: &mut Candidates,
) {
    let Some(score) = f32::scorer(metric) else {
        return;
    };
    let query = f32::query(metric, q);
    for i in rows {
        let kk = key(
            score(&query, &c[i * dim..(i + 1) * dim]),
            metric.is_similarity(),
        );
        set.push(kk, kk, i as u64);
    }
}

/// One query over candidate rows `rows` (indices relative to `c`).
pub fn single(
    metric: Metric,
    bound: &Bound,
    q: &[f32],
    c: &[f32],
    rows: Range<usize>,
    k: usize,
    offset: u64,
) -> TaskTopK {
    let dim = q.len();
    let mut set = Candidates::new(k);
    let mut dots = [0.0f32; STEP];
    let mut terms = RowTerms::default();
    let mut start = rows.start;
    while start < rows.end {
        let len = STEP.min(rows.end - start);
        terms.norm2.resize(len, 0.0);
        dot_norm_rows(
            q,
            &c[start * dim..(start + len) * dim],
            &mut dots[..len],
            &mut terms.norm2,
        );
        terms.prepare(metric, bound.g());
        bound.filter(&dots[..len], &terms, start as u64, &mut set);
        if !terms.unbounded.is_empty() {
            let idx = terms.unbounded.iter().map(|&j| start + j);
            offer_unbounded(metric, q, c, dim, idx, &mut set);
        }
        start += len;
    }
    vec![finish(metric, q, c, dim, k, set, offset)]
}

/// Several queries (row-major `q`, one bound each) over candidate rows `rows`: per block, the scores of all
/// queries by one matrix product, then each query's filter.
pub fn multi(
    metric: Metric,
    bounds: &[Bound],
    q: &[f32],
    c: &[f32],
    rows: Range<usize>,
    k: usize,
    offset: u64,
) -> TaskTopK {
    let m = bounds.len();
    let dim = q.len() / m;
    let mut sets = vec![Candidates::new(k); m];
    let mut s = vec![0.0f32; m * BLOCK.min(rows.len())];
    let mut terms = RowTerms::default();
    let mut start = rows.start;
    while start < rows.end {
        let len = BLOCK.min(rows.end - start);
        let block = &c[start * dim..(start + len) * dim];
        terms.norm2.resize(len, 0.0);
        norm_rows(block, dim, &mut terms.norm2);
        terms.prepare(metric, bounds[0].g());
        // SAFETY: q is m x dim row-major, block is len x dim row-major read as its transpose
        // (dim x len, column stride dim), and s has room for m x len; all strides match.
        unsafe {
            matrixmultiply::sgemm(
                m,
                dim,
                len,
                1.0,
                q.as_ptr(),
                dim as isize,
                1,
                block.as_ptr(),
                1,
                dim as isize,
                0.0,
                s.as_mut_ptr(),
                len as isize,
                1,
            );
        }
        for (qi, set) in sets.iter_mut().enumerate() {
            bounds[qi].filter(&s[qi * len..(qi + 1) * len], &terms, start as u64, set);
            if !terms.unbounded.is_empty() {
                let idx = terms.unbounded.iter().map(|&j| start + j);
                offer_unbounded(metric, &q[qi * dim..(qi + 1) * dim], c, dim, idx, set);
            }
        }
        start += len;
    }
    sets.into_iter()
        .enumerate()
        .map(|(qi, set)| finish(metric, &q[qi * dim..(qi + 1) * dim], c, dim, k, set, offset))
        .collect()
}

/// Rows per task: enough tasks for the threads to balance, each long enough that its start
/// (an empty top-k set) costs nothing.
pub fn task_rows(n: usize, m: usize) -> usize {
    let threads = super::search::threads();
    let per = n.div_ceil(4 * threads).max(1);
    if m > 1 {
        per.clamp(4 * BLOCK, 32 * BLOCK)
    } else {
        per.clamp(4096, 1 << 16)
    }
}
