//! Guaranteed error bounds for keys computed in f32, so that a search can filter in f32 and
//! still return exactly what a float64 computation returns.
//!
//! For any summation order, with or without FMA, a dot product of d terms computed in
//! precision u = 2⁻²⁴ satisfies |fl(q·c) − q·c| ≤ γ_d Σ|qᵢcᵢ| ≤ γ_d ‖q‖‖c‖ with
//! γ_d = d·u / (1 − d·u), and a sum of squares has relative error ≤ γ_d (Higham, *Accuracy and
//! Stability of Numerical Algorithms*, §3.1). The keys below add a few roundings more (sqrt,
//! division, the final sums), so the slack used is `G = (2d + 16)·u` times the key's scale,
//! well above the sum of those terms. Rows whose squared norm lies outside [2⁻¹⁰⁰, 2¹⁰⁰] (or is
//! not finite) have no bound; the caller scores them exactly.

use super::metric::Metric;
use super::topk::Candidates;

/// Norms² outside this range are scored exactly (no overflow; underflow negligible).
const MIN_NORM2: f32 = 7.888_609e-31; // 2^-100
const MAX_NORM2: f32 = 1.267_650_6e30; // 2^100

/// The bound of one query and metric.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    metric: Metric,
    /// (2d + 16)·2⁻²⁴.
    g: f32,
    /// ‖q‖², ‖q‖ and 1/‖q‖ in f32.
    nq2: f32,
    nq: f32,
    inv_nq: f32,
}

impl Bound {
    /// The bound for a query of squared norm `nq2` (exact, f64) in dimension `d`, or `None`
    /// when the metric has no f32 filter or the query is out of range.
    pub fn new(metric: Metric, d: usize, nq2: f64) -> Option<Bound> {
        let in_range = nq2 >= f64::from(MIN_NORM2) && nq2 <= f64::from(MAX_NORM2);
        // l2 is searched as l2sq (same ranking), so its keys stay in one space.
        let filtered = matches!(metric, Metric::Dot | Metric::Cosine | Metric::L2Sq);
        if !filtered || !in_range || d == 0 || d > 1 << 20 {
            return None;
        }
        let nq = nq2.sqrt();
        Some(Bound {
            metric,
            g: ((2 * d + 16) as f64 * f64::from(f32::EPSILON) / 2.0) as f32,
            nq2: nq2 as f32,
            nq: nq as f32,
            inv_nq: (1.0 / nq) as f32,
        })
    }

    /// The approximate key (higher is better) and its slack, from the f32 dot product with
    /// the query and the row's f32 squared norm; `None` when the row has no bound.
    #[inline(always)]
    pub fn key(&self, dot: f32, norm2: f32) -> Option<(f32, f32)> {
        if !(MIN_NORM2..=MAX_NORM2).contains(&norm2) {
            return None;
        }
        let nc = norm2.sqrt();
        Some(match self.metric {
            Metric::Cosine => (dot / nc * self.inv_nq, self.g),
            Metric::Dot => (dot, self.g * self.nq * nc),
            _ => {
                let s = self.nq2 + norm2 - 2.0 * dot;
                let r = self.nq + nc;
                (-s, self.g * r * r)
            }
        })
    }
}

/// Per-row terms of a block of candidates, shared by every query (NaN where a row has no
/// bound; those rows are listed in `unbounded`).
#[derive(Debug, Default)]
pub struct RowTerms {
    /// Squared norms.
    pub norm2: Vec<f32>,
    /// Cosine: 1/‖c‖; dot and l2: ‖c‖.
    a: Vec<f32>,
    /// l2: −‖c‖²(1 − G) (the rest of the key).
    b: Vec<f32>,
    /// Rows to score exactly.
    pub unbounded: Vec<usize>,
}

impl RowTerms {
    /// Fills the terms from `norm2` (already set) for `metric` with slack factor `g`.
    pub fn prepare(&mut self, metric: Metric, g: f32) {
        let n = self.norm2.len();
        self.a.resize(n, 0.0);
        self.unbounded.clear();
        let cosine = metric == Metric::Cosine;
        let mut all_ok = true;
        // Branch-free, so the loop vectorises.
        for (a, &n2) in self.a.iter_mut().zip(&self.norm2) {
            let ok = (MIN_NORM2..=MAX_NORM2).contains(&n2);
            all_ok &= ok;
            let nc = n2.sqrt();
            let v = if cosine { 1.0 / nc } else { nc };
            *a = if ok { v } else { f32::NAN };
        }
        if metric == Metric::L2Sq {
            self.b.resize(n, 0.0);
            for (b, &n2) in self.b.iter_mut().zip(&self.norm2) {
                *b = -n2 * (1.0 - g);
            }
        }
        if !all_ok {
            let bad = self.a.iter().enumerate().filter(|(_, a)| a.is_nan());
            self.unbounded.extend(bad.map(|(j, _)| j));
        }
    }
}

impl Bound {
    /// The slack factor G.
    pub fn g(&self) -> f32 {
        self.g
    }

    /// Offers rows `base + j` with f32 dot products `dots[j]` to `set`: a quick test that can
    /// only err on the side of keeping, then the exact bound for the rows that pass it.
    /// Unbounded rows are skipped (the caller scores them exactly).
    pub fn filter(&self, dots: &[f32], t: &RowTerms, base: u64, set: &mut Candidates) {
        const W: usize = 16;
        let n = dots.len();
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + W).min(n);
            let thr = f64::from(set.threshold_f32());
            let (d, a) = (&dots[j0..j1], &t.a[j0..j1]);
            let any = match self.metric {
                Metric::Cosine => {
                    // dot/‖c‖ ≥ (thr − G)·‖q‖, the threshold moved to the row side.
                    let tt = round_down((thr - f64::from(self.g)) * f64::from(self.nq));
                    d.iter()
                        .zip(a)
                        .fold(false, |acc, (&x, &y)| acc | (x * y >= tt))
                }
                Metric::Dot => {
                    let gq = self.g * self.nq;
                    let tt = round_down(thr);
                    d.iter()
                        .zip(a)
                        .fold(false, |acc, (&x, &y)| acc | (x + gq * y >= tt))
                }
                _ => {
                    // 2dot − ‖q‖²(1−G) − ‖c‖²(1−G) + 2G‖q‖‖c‖ ≥ thr.
                    let bq = 2.0 * self.g * self.nq;
                    let tt = round_down(thr + f64::from(self.nq2) * (1.0 - f64::from(self.g)));
                    let b = &t.b[j0..j1];
                    d.iter().zip(a).zip(b).fold(false, |acc, ((&x, &y), &z)| {
                        acc | (2.0 * x + z + bq * y >= tt)
                    })
                }
            };
            if any {
                for (j, (&dot, &n2)) in d.iter().zip(&t.norm2[j0..j1]).enumerate() {
                    if let Some((key, slack)) = self.key(dot, n2) {
                        let (key, slack) = (f64::from(key), f64::from(slack));
                        set.push(key + slack, key - slack, base + (j0 + j) as u64);
                    }
                }
            }
            j0 = j1;
        }
    }
}

/// `x` as f32, rounded towards −∞ (so a test against it keeps every row it should).
fn round_down(x: f64) -> f32 {
    let t = x as f32;
    if f64::from(t) > x {
        t.next_down()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold_on_hard_rows() {
        // Rows with large cancellation; the f64 truth must lie within key ± slack.
        let d = 64;
        let q: Vec<f32> = (0..d)
            .map(|i| if i % 2 == 0 { 1e3 } else { -1e3 + 0.1 })
            .collect();
        let nq2: f64 = q.iter().map(|&x| f64::from(x).powi(2)).sum();
        for m in [Metric::Dot, Metric::Cosine, Metric::L2Sq] {
            let b = Bound::new(m, d, nq2).unwrap();
            for s in 0..50u32 {
                let c: Vec<f32> = (0..d)
                    .map(|i| q[i] * (1.0 + (s as f32) * 1e-4) + ((i as u32 * s) % 7) as f32)
                    .collect();
                let dot32 = q.iter().zip(&c).fold(0f32, |a, (x, y)| a + x * y);
                let n32 = c.iter().fold(0f32, |a, y| a + y * y);
                let dot: f64 = q
                    .iter()
                    .zip(&c)
                    .map(|(&x, &y)| f64::from(x) * f64::from(y))
                    .sum();
                let n: f64 = c.iter().map(|&y| f64::from(y).powi(2)).sum();
                let truth = match m {
                    Metric::Dot => dot,
                    Metric::Cosine => dot / (n.sqrt() * nq2.sqrt()),
                    _ => -(nq2 + n - 2.0 * dot),
                };
                let (k, slack) = b.key(dot32, n32).unwrap();
                assert!(
                    (f64::from(k) - truth).abs() <= f64::from(slack),
                    "{m:?} {s}"
                );
            }
        }
        assert!(Bound::new(Metric::Kl, d, 1.0).is_none());
        assert!(Bound::new(Metric::Dot, d, 0.0).is_none());
        let b = Bound::new(Metric::Dot, d, 1.0).unwrap();
        assert!(b.key(1.0, 0.0).is_none() && b.key(1.0, f32::NAN).is_none());
    }
}
