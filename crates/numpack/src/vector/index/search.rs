//! Searching an IVF index: rank the centroids, scan the `nprobe` best lists (float32 copies,
//! or PQ codes through a per-query table), and rescore the `k × refine` best exactly from the
//! array. Many queries go list by list (one matrix product per list for all its queries).

use super::ivf::{prepared, Ivf, RowSource};
use super::kmeans;
use crate::vector::kernels::{scan, Element};
use crate::vector::metric::Metric;
use crate::vector::topk::{best_k, Candidates};

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

/// Queries of one list below which it is scanned row by row, not by a matrix product.
#[cfg(feature = "rayon")]
const FEW: usize = 8;

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
        // (PQ lists are scanned through each query's own table: one query at a time.)
        let flat = self.pq.is_none();
        if flat && q.len() / self.dim.max(1) >= BATCHED && k > 0 && !self.lists.is_empty() {
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
                let mut out = Vec::with_capacity(qs.len());
                let best_of = |qi: u32, dots: &[f32], norms: &[f32]| {
                    let mut set = Candidates::new(cap);
                    for (r, &id) in ids.iter().enumerate() {
                        let approx = if l2 {
                            -(qn[qi as usize] - 2.0 * dots[r] + norms[r])
                        } else {
                            dots[r]
                        };
                        let key = f64::from(approx);
                        if key >= set.threshold() && src.row(id).is_some() {
                            set.push_exact(key, id);
                        }
                    }
                    let best = set.into_entries().into_iter().map(|e| (e.hi, e.index));
                    (qi, best.collect::<Vec<_>>())
                };
                if qs.len() < FEW {
                    let (mut dots, mut norms) = (vec![0f32; n], vec![0f32; n]);
                    // A few queries: the row scan reads the copies in place (a matrix
                    // product would first copy the whole list into its panels).
                    for &qi in qs {
                        let qv = &pq[qi as usize * dim..(qi as usize + 1) * dim];
                        scan::dot_norm_rows(qv, vecs, &mut dots, &mut norms);
                        out.push(best_of(qi, &dots, &norms));
                    }
                    return out;
                }
                let norms = if l2 {
                    kmeans::norms(vecs, dim)
                } else {
                    Vec::new()
                };
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
                        out.push(best_of(qi, &s[g * n..(g + 1) * n], &norms));
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
        if let Some(quant) = &self.pq {
            // q · x ≈ q · c + q · r̂ (dot and cosine only).
            let table = quant.table(&pq);
            let mut s = Vec::new();
            for j in self.probe(&pq, nprobe) {
                let ids = &self.lists[j];
                let base = dot32(&pq, &self.centroids[j * self.dim..(j + 1) * self.dim]);
                s.resize(ids.len(), 0.0);
                quant.scan(&table, &self.codes[j], &mut s);
                for (i, &r) in ids.iter().enumerate() {
                    let key = f64::from(base + s[i]);
                    if key >= set.threshold() && src.row(r).is_some() {
                        set.push_exact(key, r);
                    }
                }
            }
            return self.rescore(src, qv, set, k);
        }
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
}
