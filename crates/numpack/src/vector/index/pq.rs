//! Product quantisation of residuals (IVF-PQ): each vector's residual to its list's centroid
//! is cut into `m` sub-vectors of `dim / m` elements, and each sub-vector is stored as the
//! byte naming the nearest of 256 sub-centroids (trained by k-means per sub-space), so a row
//! costs `m` bytes instead of `4 × dim`.
//!
//! Ranked by inner product (dot, and cosine over unit vectors): `q · x ≈ q · c + Σ_s q_s ·
//! r̂_s`, so one table of `q_s · codeword` per query (256 × dim multiply-adds) scores every
//! listed row by `m` lookups. The candidates are then rescored exactly from the array.

use super::kmeans;
use crate::error::{NpkError, NpkResult};

/// Sub-centroids per sub-space (one byte per code).
pub const KSUB: usize = 256;

/// A trained product quantiser.
#[derive(Debug, Clone, PartialEq)]
pub struct Pq {
    /// Sub-spaces (bytes per row).
    pub m: usize,
    /// Width of each sub-space.
    pub dsub: usize,
    /// `m × 256 × dsub` codewords, sub-space by sub-space.
    pub codebooks: Vec<f32>,
}

impl Pq {
    /// Trains `m` sub-quantisers on the residuals `r` (rows of `dim = m × dsub`).
    pub fn train(r: &[f32], dim: usize, m: usize, iters: usize, seed: u64) -> NpkResult<Pq> {
        if m == 0 || !dim.is_multiple_of(m) {
            return Err(NpkError::InvalidShape(format!(
                "ivf_pq needs a number of sub-spaces that divides the vectors' {dim} elements, \
                 not {m}"
            )));
        }
        let dsub = dim / m;
        let n = r.len() / dim;
        let mut codebooks = Vec::with_capacity(m * KSUB * dsub);
        for s in 0..m {
            let sub: Vec<f32> = (0..n)
                .flat_map(|i| {
                    r[i * dim + s * dsub..i * dim + (s + 1) * dsub]
                        .iter()
                        .copied()
                })
                .collect();
            let mut c = kmeans::train(&sub, dsub, KSUB, iters, seed ^ s as u64)?;
            // Fewer rows than codewords: the missing ones repeat the first (never nearer).
            c.resize(KSUB * dsub, 0.0);
            if n < KSUB {
                for j in n.max(1)..KSUB {
                    let (head, tail) = c.split_at_mut(j * dsub);
                    tail[..dsub].copy_from_slice(&head[..dsub]);
                }
            }
            codebooks.extend(c);
        }
        Ok(Pq { m, dsub, codebooks })
    }

    /// The codes (`m` bytes per row) of residuals `r`.
    pub fn encode(&self, r: &[f32]) -> Vec<u8> {
        let dim = self.m * self.dsub;
        let n = r.len() / dim.max(1);
        let mut out = vec![0u8; n * self.m];
        for s in 0..self.m {
            let sub: Vec<f32> = (0..n)
                .flat_map(|i| {
                    r[i * dim + s * self.dsub..i * dim + (s + 1) * self.dsub]
                        .iter()
                        .copied()
                })
                .collect();
            let book = &self.codebooks[s * KSUB * self.dsub..(s + 1) * KSUB * self.dsub];
            let bn = kmeans::norms(book, self.dsub);
            for (i, (j, _)) in kmeans::assign(&sub, book, &bn, self.dsub)
                .into_iter()
                .enumerate()
            {
                out[i * self.m + s] = j as u8;
            }
        }
        out
    }

    /// `q_s · codeword` for every sub-space and codeword: `m × 256` (the query's table).
    pub fn table(&self, q: &[f32]) -> Vec<f32> {
        let mut t = vec![0f32; self.m * KSUB];
        for s in 0..self.m {
            let qs = &q[s * self.dsub..(s + 1) * self.dsub];
            let book = &self.codebooks[s * KSUB * self.dsub..(s + 1) * KSUB * self.dsub];
            for (j, w) in book.chunks_exact(self.dsub).enumerate() {
                t[s * KSUB + j] = qs.iter().zip(w).map(|(a, b)| a * b).sum();
            }
        }
        t
    }

    /// The approximate `q · r̂` of every row of `codes` (`m` bytes each) from the query's
    /// `table`, into `out`.
    pub fn scan(&self, table: &[f32], codes: &[u8], out: &mut [f32]) {
        for (o, code) in out.iter_mut().zip(codes.chunks_exact(self.m)) {
            let mut acc = 0f32;
            for (s, &c) in code.iter().enumerate() {
                acc += table[s * KSUB + c as usize];
            }
            *o = acc;
        }
    }

    /// The residuals the codes stand for (`dim` per row): for tests and diagnostics.
    pub fn decode(&self, codes: &[u8]) -> Vec<f32> {
        let mut out = Vec::with_capacity(codes.len() * self.dsub);
        for code in codes.chunks_exact(self.m) {
            for (s, &c) in code.iter().enumerate() {
                let at = (s * KSUB + c as usize) * self.dsub;
                out.extend_from_slice(&self.codebooks[at..at + self.dsub]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_approximate_and_tables_score_them() {
        let (n, dim, m) = (3000, 16, 4);
        let mut rng = kmeans::Rng::new(9);
        let x: Vec<f32> = (0..n * dim)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect();
        let pq = Pq::train(&x, dim, m, 8, 1).unwrap();
        let codes = pq.encode(&x);
        assert_eq!(codes.len(), n * m);
        let back = pq.decode(&codes);
        let err: f32 = x
            .iter()
            .zip(&back)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            / n as f32;
        let var: f32 = x.iter().map(|a| a * a).sum::<f32>() / n as f32;
        assert!(err < var * 0.5, "quantisation error {err} vs energy {var}");
        // The table's scores are the dot products with the decoded rows.
        let q = &x[..dim];
        let t = pq.table(q);
        let mut s = vec![0f32; n];
        pq.scan(&t, &codes, &mut s);
        for i in 0..n {
            let d: f32 = q.iter().zip(&back[i * dim..]).map(|(a, b)| a * b).sum();
            assert!((d - s[i]).abs() < 1e-4, "{d} vs {}", s[i]);
        }
        assert!(Pq::train(&x, dim, 5, 2, 1).is_err());
    }
}
