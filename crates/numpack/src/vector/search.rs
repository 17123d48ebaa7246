//! In-memory search: scores of queries against candidates, and per-query top-k computed over
//! candidate blocks in parallel (bounded memory: one block of scores per thread).

use super::kernels::{bit_metric, cosine_from, dot, dot_and_norm, float_metric, Float};
use super::metric::Metric;
use super::topk::{merge, select};
use crate::error::{NpkError, NpkResult};

/// Row-major vectors of one element kind.
#[derive(Debug, Clone, Copy)]
pub enum Vectors<'a> {
    /// float32 rows.
    F32(&'a [f32]),
    /// float64 rows.
    F64(&'a [f64]),
    /// Bit vectors packed in bytes (hamming / jaccard).
    Bits(&'a [u8]),
}

impl Vectors<'_> {
    fn len(&self) -> usize {
        match self {
            Vectors::F32(v) => v.len(),
            Vectors::F64(v) => v.len(),
            Vectors::Bits(v) => v.len(),
        }
    }

    /// Number of rows of `dim` elements.
    pub fn rows(&self, dim: usize) -> usize {
        self.len().checked_div(dim).unwrap_or(0)
    }
}

/// Candidate rows per parallel block.
const BLOCK: usize = 2048;

fn check(metric: Metric, q: &Vectors<'_>, c: &Vectors<'_>) -> NpkResult<()> {
    let ok = match (q, c) {
        (Vectors::F32(_), Vectors::F32(_)) | (Vectors::F64(_), Vectors::F64(_)) => {
            !metric.is_binary()
        }
        (Vectors::Bits(_), Vectors::Bits(_)) => metric.is_binary(),
        _ => {
            return Err(NpkError::InvalidDtype(
                "query and candidates must have the same element type".into(),
            ))
        }
    };
    if !ok {
        return Err(NpkError::InvalidOperation(format!(
            "Compute error: Unsupported metric '{}' for this dtype",
            metric.as_str()
        )));
    }
    Ok(())
}

fn score_block<T: Float>(metric: Metric, q: &[T], cands: &[T], dim: usize, out: &mut [f64]) {
    if metric == Metric::Cosine {
        // The query's norm once, then one fused pass per candidate.
        let nq = dot(q, q);
        for (o, c) in out.iter_mut().zip(cands.chunks_exact(dim)) {
            let (d, nc) = dot_and_norm(q, c);
            *o = cosine_from(d, nq, nc);
        }
        return;
    }
    for (o, c) in out.iter_mut().zip(cands.chunks_exact(dim)) {
        *o = float_metric(metric, q, c);
    }
}

/// Scores of query row `qi` against candidate rows `start..start+out.len()`.
fn score_rows(
    metric: Metric,
    q: &Vectors<'_>,
    c: &Vectors<'_>,
    dim: usize,
    qi: usize,
    start: usize,
    out: &mut [f64],
) {
    let (a, b) = (qi * dim, start * dim);
    let e = b + out.len() * dim;
    match (q, c) {
        (Vectors::F32(q), Vectors::F32(c)) => {
            score_block(metric, &q[a..a + dim], &c[b..e], dim, out)
        }
        (Vectors::F64(q), Vectors::F64(c)) => {
            score_block(metric, &q[a..a + dim], &c[b..e], dim, out)
        }
        (Vectors::Bits(q), Vectors::Bits(c)) => {
            for (o, row) in out.iter_mut().zip(c[b..e].chunks_exact(dim)) {
                *o = bit_metric(metric, &q[a..a + dim], row);
            }
        }
        _ => out.fill(f64::NAN),
    }
}

/// Squared norms of candidate rows `start..start+len` (float candidates only).
fn block_norms(c: &Vectors<'_>, dim: usize, start: usize, len: usize) -> Option<Vec<f64>> {
    let rows = start * dim..(start + len) * dim;
    match c {
        Vectors::F32(v) => Some(v[rows].chunks_exact(dim).map(|r| dot(r, r)).collect()),
        Vectors::F64(v) => Some(v[rows].chunks_exact(dim).map(|r| dot(r, r)).collect()),
        Vectors::Bits(_) => None,
    }
}

/// Squared norm of query row `qi`.
fn query_norm(q: &Vectors<'_>, dim: usize, qi: usize) -> f64 {
    let r = qi * dim..(qi + 1) * dim;
    match q {
        Vectors::F32(v) => dot(&v[r.clone()], &v[r]),
        Vectors::F64(v) => dot(&v[r.clone()], &v[r]),
        Vectors::Bits(_) => f64::NAN,
    }
}

/// Row-major `(queries, candidates)` score matrix.
pub fn scores(metric: Metric, q: Vectors<'_>, c: Vectors<'_>, dim: usize) -> NpkResult<Vec<f64>> {
    check(metric, &q, &c)?;
    let (m, n) = (q.rows(dim), c.rows(dim));
    let mut out = vec![0.0; m * n];
    if dim == 0 || n == 0 {
        out.fill(if metric == Metric::Cosine { 1.0 } else { 0.0 });
        return Ok(out);
    }
    let job = |(qi, row): (usize, &mut [f64])| {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            row.par_chunks_mut(BLOCK)
                .enumerate()
                .for_each(|(bi, o)| score_rows(metric, &q, &c, dim, qi, bi * BLOCK, o));
        }
        #[cfg(not(feature = "rayon"))]
        for (bi, o) in row.chunks_mut(BLOCK).enumerate() {
            score_rows(metric, &q, &c, dim, qi, bi * BLOCK, o);
        }
    };
    out.chunks_mut(n).enumerate().for_each(job);
    Ok(out)
}

/// Per query, the `min(k, n)` best candidates, best first: flattened `(indices, scores)`.
/// Candidate indices are offset by `offset`.
pub fn top_k(
    metric: Metric,
    q: Vectors<'_>,
    c: Vectors<'_>,
    dim: usize,
    k: usize,
    offset: u64,
) -> NpkResult<Vec<(Vec<u64>, Vec<f64>)>> {
    check(metric, &q, &c)?;
    let (m, n) = (q.rows(dim), c.rows(dim));
    let sim = metric.is_similarity();
    let block_best = |bi: usize| -> Vec<(Vec<u64>, Vec<f64>)> {
        let start = bi * BLOCK;
        let len = BLOCK.min(n - start);
        let mut buf = vec![0.0; len];
        // Several queries: the block's norms once, then only dot products per query.
        let norms = (metric == Metric::Cosine && m > 1 && dim > 0)
            .then(|| block_norms(&c, dim, start, len))
            .flatten();
        (0..m)
            .map(|qi| {
                if dim == 0 {
                    buf.fill(if metric == Metric::Cosine { 1.0 } else { 0.0 });
                } else if let Some(nc) = &norms {
                    score_rows(Metric::Dot, &q, &c, dim, qi, start, &mut buf);
                    let nq = query_norm(&q, dim, qi);
                    for (s, &n) in buf.iter_mut().zip(nc) {
                        *s = cosine_from(*s, nq, n);
                    }
                } else {
                    score_rows(metric, &q, &c, dim, qi, start, &mut buf);
                }
                select(&buf, k, sim, offset + start as u64)
            })
            .collect()
    };
    let blocks = n.div_ceil(BLOCK);
    let empty = || vec![(Vec::new(), Vec::new()); m];
    let combine = |a: Vec<(Vec<u64>, Vec<f64>)>, b: Vec<(Vec<u64>, Vec<f64>)>| {
        a.into_iter()
            .zip(b)
            .map(|(x, y)| merge(x, y, k, sim))
            .collect::<Vec<_>>()
    };
    #[cfg(feature = "rayon")]
    let best = {
        use rayon::prelude::*;
        (0..blocks)
            .into_par_iter()
            .map(block_best)
            .reduce(empty, combine)
    };
    #[cfg(not(feature = "rayon"))]
    let best = (0..blocks).map(block_best).fold(empty(), combine);
    Ok(best)
}
