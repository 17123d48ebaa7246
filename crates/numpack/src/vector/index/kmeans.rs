//! k-means for the coarse quantiser: Lloyd iterations over a seeded sample, assignments by
//! blocked matrix products (‖x − c‖² = ‖x‖² − 2x·c + ‖c‖², the x·c of a block of rows
//! against every centroid in one `sgemm`), empty clusters re-seeded by splitting the largest.
//! Deterministic for a seed (the sample, the start and the splits; sums are per block, added
//! in block order).

use crate::error::{NpkError, NpkResult};

/// Rows assigned per matrix product (a block's distances to 256 centroids are 1 MiB, in cache).
const BLOCK: usize = 1024;

/// A small, fast, seeded generator (splitmix64): the sample and the start depend only on
/// the seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// `k` distinct indices of `0..n` (`k <= n`), in increasing order (a partial Fisher–Yates over
/// a sparse map, so `n` may be large).
pub fn sample(n: usize, k: usize, rng: &mut Rng) -> Vec<usize> {
    let mut swapped = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(k);
    for i in 0..k.min(n) {
        let j = i + rng.below(n - i);
        let vj = *swapped.get(&j).unwrap_or(&j);
        let vi = *swapped.get(&i).unwrap_or(&i);
        swapped.insert(j, vi);
        out.push(vj);
    }
    out.sort_unstable();
    out
}

/// ‖v‖² of each row.
pub fn norms(rows: &[f32], dim: usize) -> Vec<f32> {
    rows.chunks_exact(dim.max(1))
        .map(|r| r.iter().map(|x| x * x).sum())
        .collect()
}

/// `out[i * k + j] = x_i · c_j` for a block of rows `x` (n × dim) and centroids `c` (k × dim).
pub fn dots(x: &[f32], c: &[f32], dim: usize, out: &mut [f32]) {
    let n = x.len() / dim;
    let k = c.len() / dim;
    debug_assert!(out.len() >= n * k);
    if n == 0 || k == 0 {
        return;
    }
    // SAFETY: x is n x dim row-major, c is k x dim row-major read as its transpose (dim x k),
    // out has room for n x k row-major; every stride matches those shapes.
    unsafe {
        matrixmultiply::sgemm(
            n,
            dim,
            k,
            1.0,
            x.as_ptr(),
            dim as isize,
            1,
            c.as_ptr(),
            1,
            dim as isize,
            0.0,
            out.as_mut_ptr(),
            k as isize,
            1,
        );
    }
}

/// The first index of the least value of `v` and that value (`(0, inf)` when every value is
/// NaN or `v` is empty): 16 lanes of branch-free selects, which the compiler vectorises.
fn argmin(v: &[f32]) -> (u32, f32) {
    const L: usize = 16;
    let mut best = [f32::INFINITY; L];
    let mut at = [0u32; L];
    let chunks = v.chunks_exact(L);
    let tail = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        for l in 0..L {
            let better = chunk[l] < best[l];
            best[l] = if better { chunk[l] } else { best[l] };
            at[l] = if better { (c * L + l) as u32 } else { at[l] };
        }
    }
    let (mut j, mut least) = (0u32, f32::INFINITY);
    for l in 0..L {
        if best[l] < least || (best[l] == least && at[l] < j) {
            least = best[l];
            j = at[l];
        }
    }
    let base = v.len() - tail.len();
    for (t, &x) in tail.iter().enumerate() {
        if x < least {
            least = x;
            j = (base + t) as u32;
        }
    }
    (j, least)
}

/// `out[i * k + j] = ‖c_j‖² - 2 x_i · c_j` (the squared distance less ‖x_i‖²): one matrix
/// product onto the norms.
fn partial_dists(x: &[f32], c: &[f32], cn: &[f32], dim: usize, out: &mut [f32]) {
    let n = x.len() / dim;
    let k = cn.len();
    for row in out[..n * k].chunks_exact_mut(k.max(1)) {
        row.copy_from_slice(cn);
    }
    if n == 0 || k == 0 {
        return;
    }
    // SAFETY: as in `dots`; beta = 1 adds the product onto the norms already in `out`.
    unsafe {
        matrixmultiply::sgemm(
            n,
            dim,
            k,
            -2.0,
            x.as_ptr(),
            dim as isize,
            1,
            c.as_ptr(),
            1,
            dim as isize,
            1.0,
            out.as_mut_ptr(),
            k as isize,
            1,
        );
    }
}

/// For each row of `x`, the nearest centroid by squared l2 (ties to the lower index), and the
/// squared distance. `cn` holds the centroids' ‖c‖².
pub fn assign(x: &[f32], c: &[f32], cn: &[f32], dim: usize) -> Vec<(u32, f32)> {
    let n = x.len() / dim.max(1);
    let k = cn.len();
    let mut out = vec![(0u32, 0f32); n];
    // One distance buffer per worker, reused block after block: a fresh one per block would
    // be fresh pages for the kernel to zero (most of a build's system time).
    let work = |d: &mut Vec<f32>, (bi, chunk): (usize, &mut [(u32, f32)])| {
        let rows = &x[bi * BLOCK * dim..(bi * BLOCK + chunk.len()) * dim];
        d.resize(chunk.len() * k, 0.0);
        partial_dists(rows, c, cn, dim, d);
        for (i, slot) in chunk.iter_mut().enumerate() {
            let xn: f32 = rows[i * dim..(i + 1) * dim].iter().map(|v| v * v).sum();
            // Ties go to the lower index; NaN distances never win.
            let (j, least) = argmin(&d[i * k..(i + 1) * k]);
            *slot = (j, (least + xn).max(0.0));
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(BLOCK)
            .enumerate()
            .for_each_init(Vec::new, work);
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut d = Vec::new();
        out.chunks_mut(BLOCK)
            .enumerate()
            .for_each(|b| work(&mut d, b));
    }
    out
}

/// `k` centroids of the rows `x` (n × dim, n ≥ 1) after `iters` Lloyd iterations from `k`
/// distinct sampled rows. With fewer rows than `k`, fewer centroids.
pub fn train(x: &[f32], dim: usize, k: usize, iters: usize, seed: u64) -> NpkResult<Vec<f32>> {
    if dim == 0 {
        return Err(NpkError::InvalidShape(
            "an index needs vectors of at least one dimension".into(),
        ));
    }
    let n = x.len() / dim;
    let k = k.min(n);
    if k == 0 {
        return Err(NpkError::InvalidShape(
            "an index needs at least one vector to train on".into(),
        ));
    }
    let mut rng = Rng::new(seed);
    let mut c: Vec<f32> = sample(n, k, &mut rng)
        .into_iter()
        .flat_map(|i| x[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    for _ in 0..iters {
        let cn = norms(&c, dim);
        let a = assign(x, &c, &cn, dim);
        let (sums, mut counts) = cluster_sums(x, &a, k, dim);
        for j in 0..k {
            if counts[j] > 0 {
                for (cv, s) in c[j * dim..(j + 1) * dim]
                    .iter_mut()
                    .zip(&sums[j * dim..(j + 1) * dim])
                {
                    *cv = (*s / counts[j] as f64) as f32;
                }
            }
        }
        split_empty(&mut c, &mut counts, dim);
    }
    Ok(c)
}

/// Per cluster, the sum of its rows (float64) and their count, blocks of rows in parallel.
fn cluster_sums(x: &[f32], a: &[(u32, f32)], k: usize, dim: usize) -> (Vec<f64>, Vec<usize>) {
    type Acc = (Vec<f64>, Vec<usize>);
    let zero = || (vec![0f64; k * dim], vec![0usize; k]);
    // Each worker sums its blocks into its own float64 accumulator.
    let block = |mut acc: Acc, (bi, rows): (usize, &[(u32, f32)])| -> Acc {
        for (t, &(j, _)) in rows.iter().enumerate() {
            let (j, i) = (j as usize, bi * BLOCK + t);
            acc.1[j] += 1;
            for (s, v) in acc.0[j * dim..(j + 1) * dim].iter_mut().zip(&x[i * dim..]) {
                *s += f64::from(*v);
            }
        }
        acc
    };
    let add = |mut a: Acc, b: Acc| -> Acc {
        a.0.iter_mut().zip(&b.0).for_each(|(t, v)| *t += v);
        a.1.iter_mut().zip(&b.1).for_each(|(t, v)| *t += v);
        a
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        a.par_chunks(BLOCK)
            .enumerate()
            .fold(zero, block)
            .reduce(zero, add)
    }
    #[cfg(not(feature = "rayon"))]
    a.chunks(BLOCK).enumerate().fold(zero(), block)
}

/// Re-seeds each empty cluster with the centroid of the largest one, the two moved apart a
/// little in alternating directions per dimension (the largest then splits in two at the
/// next assignment).
fn split_empty(c: &mut [f32], counts: &mut [usize], dim: usize) {
    const EPS: f32 = 1.0 / 1024.0;
    for j in 0..counts.len() {
        if counts[j] > 0 {
            continue;
        }
        let big = (0..counts.len())
            .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
            .expect("k >= 1");
        if counts[big] < 2 {
            return;
        }
        for t in 0..dim {
            let v = c[big * dim + t];
            let e = if t % 2 == 0 { EPS } else { -EPS };
            c[j * dim + t] = v * (1.0 + e) + e * 1e-3;
            c[big * dim + t] = v * (1.0 - e) - e * 1e-3;
        }
        let half = counts[big] / 2;
        counts[j] = half;
        counts[big] -= half;
    }
}

#[cfg(test)]
mod tests {
    use super::argmin;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn argmin_is_the_first_least(v in proptest::collection::vec(-4i8..4, 0..80)) {
            let v: Vec<f32> = v.into_iter().map(f32::from).collect();
            let mut want = (0u32, f32::INFINITY);
            for (i, &x) in v.iter().enumerate() {
                if x < want.1 {
                    want = (i as u32, x);
                }
            }
            prop_assert_eq!(argmin(&v), want);
        }
    }
}
