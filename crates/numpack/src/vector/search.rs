//! In-memory search: scores of queries against candidates, and per-query top-k computed over
//! candidate blocks in parallel (bounded memory: one block of scores per thread).

use super::kernels::{bit_metric, float_metric, Float};
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
const BLOCK: usize = 8192;

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
        (0..m)
            .map(|qi| {
                if dim == 0 {
                    buf.fill(if metric == Metric::Cosine { 1.0 } else { 0.0 });
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
