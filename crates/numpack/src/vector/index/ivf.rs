//! IVF: a coarse quantiser (k-means centroids) and one inverted list of physical rows per
//! centroid, with a float32 copy of each listed vector stored contiguously in list order
//! (unit vectors for cosine): a list scan streams its copies, where reading the array's rows
//! by row number costs a cache miss per row (2.8x slower at 1M x 128, nprobe 4, even with
//! software prefetch: `tests/index.rs`).
//! Deleted rows (the [`RowSource`] says so) are never returned, and the rows returned are
//! rescored from the source, so their scores are exact; each row is in one list, so no
//! result repeats. A replaced row's copy must be replaced with it (the maintenance of the
//! index in the commits of the array, to come).
//!
//! A search ranks the centroids, scans the `nprobe` best lists in float32 and rescores the
//! `k × refine` best of them exactly (the engine's float64-accumulating kernels), so every
//! returned score is exact; only which rows are found is approximate.

use super::kmeans;
use super::pq::Pq;
use crate::error::{NpkError, NpkResult};
use crate::vector::metric::Metric;
use std::borrow::Cow;

/// Where an index reads the vectors it scores.
pub trait RowSource: Sync {
    /// Physical row `r`, or `None` when it is deleted (or past the end).
    fn row(&self, r: u64) -> Option<&[f32]>;
}

/// Rows of a row-major slice (`dim` each), with an optional deleted set: for tests and for
/// building from memory.
pub struct SliceRows<'a> {
    /// The vectors.
    pub data: &'a [f32],
    /// Their width.
    pub dim: usize,
    /// Deleted physical rows, if any.
    pub deleted: Option<&'a std::collections::HashSet<u64>>,
}

impl RowSource for SliceRows<'_> {
    fn row(&self, r: u64) -> Option<&[f32]> {
        if self.deleted.is_some_and(|d| d.contains(&r)) {
            return None;
        }
        let r = usize::try_from(r).ok()?;
        self.data.get(r * self.dim..(r + 1) * self.dim)
    }
}

/// How an index is built.
#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    /// Lists (centroids); `None`: about 4√n, at least 1.
    pub nlist: Option<usize>,
    /// Rows sampled to train the centroids (at most all of them).
    pub train_rows: usize,
    /// Lloyd iterations.
    pub iters: usize,
    /// Seed of the sample and the start.
    pub seed: u64,
    /// IVF-PQ with this many sub-spaces (bytes per row; 0: `dim / 8`, or the nearest
    /// divisor of `dim` below it); `None`: IVF-Flat.
    pub pq: Option<usize>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            nlist: None,
            train_rows: 256 * 1024,
            iters: 10,
            seed: 0x6e75_6d70_6163_6b21,
            pq: None,
        }
    }
}

/// What a list keeps of some rows, in list order: float32 copies (IVF-Flat) or PQ codes.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `dim` floats per row.
    Flat(Vec<f32>),
    /// `m` bytes per row.
    Pq(Vec<u8>),
}

/// An IVF index (IVF-Flat, or IVF-PQ) of one array's vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Ivf {
    /// The metric it ranks by.
    pub metric: Metric,
    /// Vector width.
    pub dim: usize,
    /// `nlist × dim` centroids (unit vectors for cosine).
    pub centroids: Vec<f32>,
    /// Per centroid, its physical rows (in the order they were added).
    pub lists: Vec<Vec<u64>>,
    /// Per centroid, the float32 copies of its rows' vectors, in list order (unit vectors
    /// for cosine); empty lists for IVF-PQ.
    pub vecs: Vec<Vec<f32>>,
    /// The product quantiser of an IVF-PQ index.
    pub pq: Option<Pq>,
    /// Per centroid, the PQ codes of its rows (`m` bytes each), in list order; empty lists
    /// for IVF-Flat.
    pub codes: Vec<Vec<u8>>,
}

/// The default sub-spaces of an IVF-PQ index of `dim`-wide vectors: `dim / 8` (two bytes
/// per 16 floats), or the nearest divisor of `dim` below it.
pub fn default_pq_m(dim: usize) -> usize {
    (1..=(dim / 8).max(1))
        .rev()
        .find(|m| dim.is_multiple_of(*m))
        .unwrap_or(1)
}

/// Unit rows for cosine (zero rows stay zero); the rows themselves otherwise.
pub(super) fn prepared(metric: Metric, rows: &[f32], dim: usize) -> Cow<'_, [f32]> {
    if metric != Metric::Cosine {
        return Cow::Borrowed(rows);
    }
    let mut out = rows.to_vec();
    for r in out.chunks_exact_mut(dim) {
        let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            r.iter_mut().for_each(|x| *x /= n);
        }
    }
    Cow::Owned(out)
}

impl Ivf {
    /// Trains the centroids on a seeded sample of the live rows among the first `rows`
    /// physical rows of `src` and lists every live row.
    pub fn build(
        metric: Metric,
        src: &dyn RowSource,
        rows: u64,
        dim: usize,
        opts: &BuildOptions,
    ) -> NpkResult<Ivf> {
        if !matches!(
            metric,
            Metric::Cosine | Metric::Dot | Metric::L2 | Metric::L2Sq
        ) {
            return Err(NpkError::InvalidOperation(format!(
                "an index ranks by the metric cosine, dot, l2 or l2sq, not {}",
                metric.as_str()
            )));
        }
        let m = opts.pq.map(|m| if m == 0 { default_pq_m(dim) } else { m });
        if let Some(m) = m {
            if !matches!(metric, Metric::Cosine | Metric::Dot) {
                return Err(NpkError::InvalidOperation(format!(
                    "an ivf_pq index ranks by cosine or dot, not {} (use ivf_flat)",
                    metric.as_str()
                )));
            }
            if !dim.is_multiple_of(m) || m > 4096 {
                return Err(NpkError::InvalidOperation(format!(
                    "ivf_pq needs sub-spaces (m) that divide the vectors' {dim} elements, \
                     not {m}"
                )));
            }
        }
        let live: Vec<u64> = (0..rows).filter(|&r| src.row(r).is_some()).collect();
        let n = live.len();
        let nlist = opts
            .nlist
            .unwrap_or_else(|| (n as f64).sqrt().round() as usize)
            .clamp(1, n.max(1));
        let mut rng = kmeans::Rng::new(opts.seed);
        let picked = kmeans::sample(n, opts.train_rows.max(nlist).min(n), &mut rng);
        let mut train = Vec::with_capacity(picked.len() * dim);
        for i in picked {
            train.extend_from_slice(src.row(live[i]).expect("live row"));
        }
        let train = prepared(metric, &train, dim).into_owned();
        let centroids = kmeans::train(&train, dim, nlist, opts.iters, opts.seed)?;
        let mut ivf = Ivf {
            metric,
            dim,
            centroids: prepared(metric, &centroids, dim).into_owned(),
            lists: Vec::new(),
            vecs: Vec::new(),
            pq: None,
            codes: Vec::new(),
        };
        ivf.lists = vec![Vec::new(); ivf.nlist()];
        ivf.vecs = vec![Vec::new(); ivf.nlist()];
        ivf.codes = vec![Vec::new(); ivf.nlist()];
        if let Some(m) = m {
            // Sub-quantisers of the residuals of (up to 64k of) the training rows.
            let take = train.len().min(65_536 * dim);
            let sample = &train[..take];
            let lists = ivf.assign(sample);
            let r = ivf.residuals(sample, &lists);
            ivf.pq = Some(Pq::train(&r, dim, m, opts.iters, opts.seed)?);
        }
        ivf.add(src, &live);
        Ok(ivf)
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.centroids.len() / self.dim.max(1)
    }

    /// The list each vector of `rows` (row-major) belongs to: the nearest centroid (by l2
    /// of unit vectors for cosine, which is the best cosine; by l2 for dot and l2).
    pub fn assign(&self, rows: &[f32]) -> Vec<u32> {
        self.assign_prepared(&prepared(self.metric, rows, self.dim))
    }

    fn assign_prepared(&self, x: &[f32]) -> Vec<u32> {
        let cn = kmeans::norms(&self.centroids, self.dim);
        kmeans::assign(x, &self.centroids, &cn, self.dim)
            .into_iter()
            .map(|(j, _)| j)
            .collect()
    }

    /// Rows (prepared) minus the centroids of their lists.
    fn residuals(&self, prepared_rows: &[f32], lists: &[u32]) -> Vec<f32> {
        let dim = self.dim;
        let mut r = prepared_rows.to_vec();
        for (row, &j) in r.chunks_exact_mut(dim).zip(lists) {
            let c = &self.centroids[j as usize * dim..(j as usize + 1) * dim];
            row.iter_mut().zip(c).for_each(|(x, c)| *x -= c);
        }
        r
    }

    /// What the index keeps of `rows` (row-major) in lists `lists`: their copies (unit
    /// vectors for cosine), or the PQ codes of their residuals.
    pub fn payload(&self, rows: &[f32], lists: &[u32]) -> Payload {
        self.payload_prepared(prepared(self.metric, rows, self.dim), lists)
    }

    fn payload_prepared(&self, x: Cow<'_, [f32]>, lists: &[u32]) -> Payload {
        match &self.pq {
            None => Payload::Flat(x.into_owned()),
            Some(pq) => Payload::Pq(pq.encode(&self.residuals(&x, lists))),
        }
    }

    /// Bytes each listed row takes in a list (its copy or its code).
    pub fn row_bytes(&self) -> usize {
        self.pq.as_ref().map_or(4 * self.dim, |p| p.m)
    }

    /// Lists the physical rows `ids` (read from `src`; deleted ones are skipped). A row must
    /// not be listed already.
    pub fn add(&mut self, src: &dyn RowSource, ids: &[u64]) {
        const CHUNK: usize = 1 << 14;
        let dim = self.dim;
        for part in ids.chunks(CHUNK) {
            let mut rows = Vec::with_capacity(part.len() * dim);
            let mut kept = Vec::with_capacity(part.len());
            for &r in part {
                if let Some(v) = src.row(r) {
                    rows.extend_from_slice(v);
                    kept.push(r);
                }
            }
            let x = prepared(self.metric, &rows, dim);
            let lists = self.assign_prepared(&x);
            let payload = self.payload_prepared(x, &lists);
            for (i, (r, j)) in kept.into_iter().zip(lists).enumerate() {
                self.push(j as usize, r, &payload, i);
            }
        }
    }

    /// Appends row `r` to list `j` with entry `i` of `payload`.
    pub(super) fn push(&mut self, j: usize, r: u64, payload: &Payload, i: usize) {
        self.lists[j].push(r);
        match payload {
            Payload::Flat(v) => {
                self.vecs[j].extend_from_slice(&v[i * self.dim..(i + 1) * self.dim]);
            }
            Payload::Pq(c) => {
                let m = self.pq.as_ref().map_or(0, |p| p.m);
                self.codes[j].extend_from_slice(&c[i * m..(i + 1) * m]);
            }
        }
    }

    /// Mean list size over the largest: 1.0 when balanced (the drift `reindex` reports).
    pub fn imbalance(&self) -> f64 {
        let n: usize = self.lists.iter().map(Vec::len).sum();
        let max = self.lists.iter().map(Vec::len).max().unwrap_or(0);
        if n == 0 {
            return 1.0;
        }
        let mean = n as f64 / self.lists.len() as f64;
        max as f64 / mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::search::{top_k, Vectors};
    use std::collections::HashSet;

    /// `n` vectors around `centers` Gaussian centres (seeded).
    fn mixture(n: usize, dim: usize, centers: usize, seed: u64) -> Vec<f32> {
        let mut rng = kmeans::Rng::new(seed);
        let mut unif = move || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        let c: Vec<f32> = (0..centers * dim).map(|_| unif() * 2.0 - 1.0).collect();
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let j = (i * 7919) % centers;
            for t in 0..dim {
                // Irwin–Hall: a cheap bell around the centre.
                let noise = (unif() + unif() + unif() - 1.5) * 0.1;
                out.push(c[j * dim + t] + noise);
            }
        }
        out
    }

    fn recall(got: &[(Vec<u64>, Vec<f64>)], want: &[(Vec<u64>, Vec<f64>)]) -> f64 {
        let mut hit = 0;
        let mut all = 0;
        for (g, w) in got.iter().zip(want) {
            let w: HashSet<u64> = w.0.iter().copied().collect();
            hit += g.0.iter().filter(|r| w.contains(r)).count();
            all += w.len();
        }
        hit as f64 / all as f64
    }

    #[test]
    fn finds_the_exact_neighbours_of_a_mixture_with_exact_scores() {
        let (n, dim) = (20_000, 16);
        let data = mixture(n, dim, 50, 1);
        let src = SliceRows {
            data: &data,
            dim,
            deleted: None,
        };
        let q = mixture(40, dim, 50, 2);
        for metric in [Metric::Cosine, Metric::L2, Metric::Dot] {
            let ivf = Ivf::build(metric, &src, n as u64, dim, &BuildOptions::default()).unwrap();
            assert_eq!(ivf.lists.iter().map(Vec::len).sum::<usize>(), n);
            let got = ivf.search(&src, &q, 10, 16, 4);
            let want = top_k(metric, Vectors::F32(&q), Vectors::F32(&data), dim, 10, 0).unwrap();
            let r = recall(&got, &want);
            assert!(r >= 0.95, "{metric:?}: recall {r}");
            // Every returned score is the exact one.
            for (g, w) in got.iter().zip(&want) {
                for (row, s) in g.0.iter().zip(&g.1) {
                    if let Some(p) = w.0.iter().position(|x| x == row) {
                        assert!((s - w.1[p]).abs() <= 1e-12 * w.1[p].abs().max(1.0));
                    }
                }
            }
        }
    }

    #[test]
    fn pq_codes_with_exact_rescoring_find_the_neighbours() {
        let (n, dim) = (20_000, 16);
        let data = mixture(n, dim, 50, 11);
        let src = SliceRows {
            data: &data,
            dim,
            deleted: None,
        };
        let q = mixture(40, dim, 50, 12);
        for metric in [Metric::Cosine, Metric::Dot] {
            let opts = BuildOptions {
                pq: Some(8),
                ..BuildOptions::default()
            };
            let ivf = Ivf::build(metric, &src, n as u64, dim, &opts).unwrap();
            assert_eq!(ivf.codes.iter().map(Vec::len).sum::<usize>(), n * 8);
            assert!(ivf.vecs.iter().all(Vec::is_empty));
            let got = ivf.search(&src, &q, 10, 16, 10);
            let want = top_k(metric, Vectors::F32(&q), Vectors::F32(&data), dim, 10, 0).unwrap();
            let r = recall(&got, &want);
            assert!(r >= 0.9, "{metric:?}: recall {r}");
        }
        let l2 = BuildOptions {
            pq: Some(4),
            ..BuildOptions::default()
        };
        assert!(Ivf::build(Metric::L2, &src, n as u64, dim, &l2).is_err());
        assert_eq!(default_pq_m(128), 16);
        assert_eq!(default_pq_m(100), 10);
        assert_eq!(default_pq_m(7), 1);
    }

    #[test]
    fn deleted_rows_never_come_back_and_no_row_repeats() {
        let (n, dim) = (5_000, 8);
        let data = mixture(n, dim, 20, 3);
        let deleted: HashSet<u64> = (0..n as u64).filter(|r| r % 3 == 0).collect();
        let src = SliceRows {
            data: &data,
            dim,
            deleted: None,
        };
        let ivf = Ivf::build(Metric::L2, &src, n as u64, dim, &BuildOptions::default()).unwrap();
        let after = SliceRows {
            data: &data,
            dim,
            deleted: Some(&deleted),
        };
        let q = mixture(20, dim, 20, 4);
        for (rows, _) in ivf.search(&after, &q, 50, 1000, 2) {
            assert_eq!(rows.len(), 50);
            assert!(rows.iter().all(|r| !deleted.contains(r)));
            let uniq: HashSet<u64> = rows.iter().copied().collect();
            assert_eq!(uniq.len(), rows.len());
        }
    }

    #[test]
    fn many_queries_list_by_list_find_what_one_at_a_time_finds() {
        let (n, dim) = (8_000, 12);
        let data = mixture(n, dim, 30, 6);
        let deleted: HashSet<u64> = (0..n as u64).filter(|r| r % 5 == 0).collect();
        let src = SliceRows {
            data: &data,
            dim,
            deleted: Some(&deleted),
        };
        let q = mixture(100, dim, 30, 7);
        for metric in [Metric::Cosine, Metric::L2, Metric::Dot] {
            let ivf = Ivf::build(metric, &src, n as u64, dim, &BuildOptions::default()).unwrap();
            let batched = ivf.search(&src, &q, 10, 8, 4);
            for (i, got) in batched.iter().enumerate() {
                let one = ivf.search(&src, &q[i * dim..(i + 1) * dim], 10, 8, 4);
                assert_eq!(got, &one[0], "{metric:?} query {i}");
                assert!(got.0.iter().all(|r| !deleted.contains(r)));
            }
        }
    }

    #[test]
    fn the_same_seed_builds_the_same_index() {
        let (n, dim) = (3_000, 8);
        let data = mixture(n, dim, 10, 5);
        let src = SliceRows {
            data: &data,
            dim,
            deleted: None,
        };
        let opts = BuildOptions {
            nlist: Some(32),
            ..BuildOptions::default()
        };
        let a = Ivf::build(Metric::Cosine, &src, n as u64, dim, &opts).unwrap();
        let b = Ivf::build(Metric::Cosine, &src, n as u64, dim, &opts).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.nlist(), 32);
        assert!(a.imbalance() < 8.0, "{}", a.imbalance());
    }
}
