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
use crate::error::{NpkError, NpkResult};
use crate::vector::kernels::{scan, Element};
use crate::vector::metric::Metric;
use crate::vector::topk::{best_k, Candidates};
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
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            nlist: None,
            train_rows: 256 * 1024,
            iters: 10,
            seed: 0x6e75_6d70_6163_6b21,
        }
    }
}

/// An IVF-Flat index of one array's vectors.
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
    /// for cosine).
    pub vecs: Vec<Vec<f32>>,
}

/// Unit rows for cosine (zero rows stay zero); the rows themselves otherwise.
fn prepared(metric: Metric, rows: &[f32], dim: usize) -> Cow<'_, [f32]> {
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

/// The lists of the `nprobe` highest `(score, list)`, best first (ties to the lower list).
fn best_lists(s: &mut Vec<(f32, usize)>, nprobe: usize) -> Vec<usize> {
    let cmp = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if s.len() > nprobe {
        s.select_nth_unstable_by(nprobe - 1, cmp);
        s.truncate(nprobe);
    }
    s.sort_unstable_by(cmp);
    s.iter().map(|&(_, j)| j).collect()
}

/// Queries from which a search goes list by list ([`Ivf::search`]).
#[cfg(feature = "rayon")]
const BATCHED: usize = 32;

fn dot32(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums: the compiler keeps them in vector registers.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, a), b) in acc.iter_mut().zip(x).zip(y) {
            *s += a * b;
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

fn l2sq32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, a), b) in acc.iter_mut().zip(x).zip(y) {
            *s += (a - b) * (a - b);
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    acc.iter().sum::<f32>() + tail
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
        let live: Vec<u64> = (0..rows).filter(|&r| src.row(r).is_some()).collect();
        let n = live.len();
        let nlist = opts
            .nlist
            .unwrap_or_else(|| ((n as f64).sqrt() * 4.0) as usize)
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
        };
        ivf.lists = vec![Vec::new(); ivf.nlist()];
        ivf.vecs = vec![Vec::new(); ivf.nlist()];
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
        let x = prepared(self.metric, rows, self.dim);
        let cn = kmeans::norms(&self.centroids, self.dim);
        kmeans::assign(&x, &self.centroids, &cn, self.dim)
            .into_iter()
            .map(|(j, _)| j)
            .collect()
    }

    /// The copies the index keeps of `rows` (row-major): unit vectors for cosine.
    pub fn copies(&self, rows: &[f32]) -> Vec<f32> {
        prepared(self.metric, rows, self.dim).into_owned()
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
            for (i, (r, j)) in kept.into_iter().zip(self.assign(&rows)).enumerate() {
                self.lists[j as usize].push(r);
                self.vecs[j as usize].extend_from_slice(&x[i * dim..(i + 1) * dim]);
            }
        }
    }

    /// [`Ivf::probe`] of many prepared queries: the centroid scores of a block of queries
    /// are one matrix product.
    #[cfg(feature = "rayon")]
    fn probe_many(&self, pq: &[f32], nprobe: usize) -> Vec<Vec<usize>> {
        use rayon::prelude::*;
        let dim = self.dim;
        let nlist = self.nlist();
        let nprobe = nprobe.clamp(1, nlist.max(1));
        let l2 = matches!(self.metric, Metric::L2 | Metric::L2Sq);
        let cn = if l2 {
            kmeans::norms(&self.centroids, dim)
        } else {
            Vec::new()
        };
        const BLOCK: usize = 64;
        pq.par_chunks(BLOCK * dim)
            .flat_map_iter(|block| {
                let rows = block.len() / dim;
                let mut s = vec![0f32; rows * nlist];
                kmeans::dots(block, &self.centroids, dim, &mut s);
                (0..rows)
                    .map(|i| {
                        let mut v: Vec<(f32, usize)> = s[i * nlist..(i + 1) * nlist]
                            .iter()
                            .enumerate()
                            .map(|(j, &d)| (if l2 { 2.0 * d - cn[j] } else { d }, j))
                            .collect();
                        best_lists(&mut v, nprobe)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The `nprobe` lists best for query `q` (prepared), best first.
    fn probe(&self, q: &[f32], nprobe: usize) -> Vec<usize> {
        let mut s: Vec<(f32, usize)> = self
            .centroids
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(j, c)| {
                let v = match self.metric {
                    Metric::L2 | Metric::L2Sq => -l2sq32(q, c),
                    _ => dot32(q, c),
                };
                (v, j)
            })
            .collect();
        let nprobe = nprobe.clamp(1, s.len().max(1));
        best_lists(&mut s, nprobe)
    }

    /// Per query (`q` row-major), the `k` best rows among the `nprobe` best lists, best first
    /// (ties by lower row), with exact scores: the `k × refine` best by a float32 scan are
    /// rescored exactly.
    pub fn search(
        &self,
        src: &dyn RowSource,
        q: &[f32],
        k: usize,
        nprobe: usize,
        refine: usize,
    ) -> Vec<(Vec<u64>, Vec<f64>)> {
        #[cfg(feature = "rayon")]
        if q.len() / self.dim.max(1) >= BATCHED && k > 0 && !self.lists.is_empty() {
            return self.search_batched(src, q, k, nprobe, refine);
        }
        let one = |qv: &[f32]| self.search_one(src, qv, k, nprobe, refine);
        let queries: Vec<&[f32]> = q.chunks_exact(self.dim.max(1)).collect();
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            queries.into_par_iter().map(one).collect()
        }
        #[cfg(not(feature = "rayon"))]
        queries.into_iter().map(one).collect()
    }

    /// Many queries at once, list by list: each probed list is read once for all the queries
    /// that probe it (one matrix product of those queries against its copies), and every
    /// query keeps the best `k × refine` of each of its lists; the lists' candidates are
    /// merged and rescored exactly per query.
    #[cfg(feature = "rayon")]
    fn search_batched(
        &self,
        src: &dyn RowSource,
        q: &[f32],
        k: usize,
        nprobe: usize,
        refine: usize,
    ) -> Vec<(Vec<u64>, Vec<f64>)> {
        use rayon::prelude::*;
        let dim = self.dim;
        let m = q.len() / dim;
        let cap = k.saturating_mul(refine.max(1));
        let pq = prepared(self.metric, q, dim);
        let qn = kmeans::norms(&pq, dim);
        let probes = self.probe_many(&pq, nprobe);
        let mut by_list: Vec<Vec<u32>> = vec![Vec::new(); self.nlist()];
        for (qi, ps) in probes.iter().enumerate() {
            for &j in ps {
                by_list[j].push(qi as u32);
            }
        }
        let l2 = matches!(self.metric, Metric::L2 | Metric::L2Sq);
        // Per probed list: (query, its best rows of the list as (key, row)).
        type Part = Vec<(u32, Vec<(f64, u64)>)>;
        let parts: Vec<Part> = by_list
            .par_iter()
            .enumerate()
            .filter(|(j, qs)| !qs.is_empty() && !self.lists[*j].is_empty())
            .map(|(j, qs)| {
                let (ids, vecs) = (&self.lists[j], &self.vecs[j]);
                let n = ids.len();
                let vn = if l2 {
                    kmeans::norms(vecs, dim)
                } else {
                    Vec::new()
                };
                let mut out = Vec::with_capacity(qs.len());
                // Queries in groups, so the products stay a few MiB.
                for group in qs.chunks((1 << 20) / n.max(1) + 1) {
                    let qm: Vec<f32> = group
                        .iter()
                        .flat_map(|&qi| pq[qi as usize * dim..(qi as usize + 1) * dim].iter())
                        .copied()
                        .collect();
                    let mut s = vec![0f32; group.len() * n];
                    kmeans::dots(&qm, vecs, dim, &mut s);
                    for (g, &qi) in group.iter().enumerate() {
                        let mut set = Candidates::new(cap);
                        for (r, &id) in ids.iter().enumerate() {
                            let d = s[g * n + r];
                            let approx = if l2 {
                                -(qn[qi as usize] - 2.0 * d + vn[r])
                            } else {
                                d
                            };
                            let key = f64::from(approx);
                            if key >= set.threshold() && src.row(id).is_some() {
                                set.push_exact(key, id);
                            }
                        }
                        let best = set.into_entries().into_iter().map(|e| (e.hi, e.index));
                        out.push((qi, best.collect()));
                    }
                }
                out
            })
            .collect();
        let mut per_query: Vec<Vec<(f64, u64)>> = vec![Vec::new(); m];
        for part in parts {
            for (qi, best) in part {
                per_query[qi as usize].extend(best);
            }
        }
        per_query
            .into_par_iter()
            .enumerate()
            .map(|(qi, cands)| {
                let mut set = Candidates::new(cap);
                for (key, id) in cands {
                    set.push_exact(key, id);
                }
                self.rescore(src, &q[qi * dim..(qi + 1) * dim], set, k)
            })
            .collect()
    }

    /// The best `k` of the candidates `set` for query `qv`, scored exactly from `src`.
    fn rescore(
        &self,
        src: &dyn RowSource,
        qv: &[f32],
        set: Candidates,
        k: usize,
    ) -> (Vec<u64>, Vec<f64>) {
        let score = <f32 as Element>::scorer(self.metric).expect("float metrics");
        let query = <f32 as Element>::query(self.metric, qv);
        let exact: Vec<(u64, f64)> = set
            .into_entries()
            .into_iter()
            .filter_map(|e| src.row(e.index).map(|v| (e.index, score(&query, v))))
            .collect();
        best_k(exact, k, self.metric.is_similarity())
    }

    fn search_one(
        &self,
        src: &dyn RowSource,
        qv: &[f32],
        k: usize,
        nprobe: usize,
        refine: usize,
    ) -> (Vec<u64>, Vec<f64>) {
        if k == 0 || self.lists.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let pq = prepared(self.metric, qv, self.dim);
        let qn = dot32(&pq, &pq);
        let mut set = Candidates::new(k.saturating_mul(refine.max(1)));
        let (mut dots, mut norms) = (Vec::new(), Vec::new());
        for j in self.probe(&pq, nprobe) {
            let (ids, vecs) = (&self.lists[j], &self.vecs[j]);
            dots.resize(ids.len(), 0.0);
            norms.resize(ids.len(), 0.0);
            scan::dot_norm_rows(&pq, vecs, &mut dots, &mut norms);
            for (i, &r) in ids.iter().enumerate() {
                // Copies of cosine rows are unit vectors: the dot is the cosine.
                let approx = match self.metric {
                    Metric::Cosine | Metric::Dot => dots[i],
                    _ => -(qn - 2.0 * dots[i] + norms[i]),
                };
                let key = f64::from(approx);
                // Liveness is asked only of rows that would enter the set.
                if key >= set.threshold() && src.row(r).is_some() {
                    set.push_exact(key, r);
                }
            }
        }
        self.rescore(src, qv, set, k)
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
