//! Top-k selection. Rows are ranked by a key where higher is better (the score for
//! similarities, minus the score for distances; NaN as −∞ while filtering and last in the
//! result). A [`Candidates`] set keeps every row that may still be in the top k: each row comes
//! with an interval `lo ..= hi` that holds its exact key, and a row is kept only if `hi` reaches
//! the threshold, the k-th largest `lo` seen so far; so most rows cost one comparison.

use std::cmp::Ordering;

/// Orders scores best-first for the metric's direction; NaN ranks after every number.
pub fn better(similarity: bool) -> impl Fn(&f64, &f64) -> Ordering + Copy {
    move |a: &f64, b: &f64| match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if similarity => b.total_cmp(a),
        _ => a.total_cmp(b),
    }
}

/// The ranking key of an exact score: higher is better, NaN lowest.
#[inline]
pub fn key(score: f64, similarity: bool) -> f64 {
    if score.is_nan() {
        f64::NEG_INFINITY
    } else if similarity {
        score
    } else {
        -score
    }
}

/// A row that may be in the top k: its key lies in `lo ..= hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// Upper bound of the key.
    pub hi: f64,
    /// Lower bound of the key.
    pub lo: f64,
    /// Row index.
    pub index: u64,
}

/// The rows that may still be among the `k` best, with the pruning threshold.
#[derive(Debug, Clone)]
pub struct Candidates {
    k: usize,
    cap: usize,
    threshold: f64,
    entries: Vec<Entry>,
    scratch: Vec<f64>,
}

impl Candidates {
    /// An empty set for the `k` best rows.
    pub fn new(k: usize) -> Self {
        let cap = k.saturating_mul(4).max(64);
        Candidates {
            k,
            cap,
            threshold: f64::NEG_INFINITY,
            entries: Vec::with_capacity(cap),
            scratch: Vec::new(),
        }
    }

    /// A row whose upper bound is below this cannot be in the top k.
    #[inline]
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The threshold rounded down to f32 (for f32 filters).
    #[inline]
    pub fn threshold_f32(&self) -> f32 {
        let t = self.threshold as f32;
        if f64::from(t) > self.threshold {
            t.next_down()
        } else {
            t
        }
    }

    /// Offers a row; kept only if it may be in the top k.
    #[inline]
    pub fn push(&mut self, hi: f64, lo: f64, index: u64) {
        if self.k == 0 || hi < self.threshold {
            return;
        }
        self.entries.push(Entry { hi, lo, index });
        if self.entries.len() >= self.cap {
            self.compact();
            // Many rows within each other's bounds (near-ties): let the set grow.
            if self.entries.len() * 2 > self.cap {
                self.cap *= 2;
            }
        }
    }

    /// Offers a row with an exact key. Rows arrive in increasing index order, so a key equal
    /// to an established threshold loses its tie to the rows already kept.
    #[inline]
    pub fn push_exact(&mut self, key: f64, index: u64) {
        if key > self.threshold || self.threshold == f64::NEG_INFINITY {
            self.push(key, key, index);
        }
    }

    /// Raises the threshold to the k-th largest lower bound and drops what falls below it.
    fn compact(&mut self) {
        if self.k == 0 {
            self.entries.clear();
            return;
        }
        if self.entries.len() < self.k {
            return;
        }
        self.scratch.clear();
        self.scratch.extend(self.entries.iter().map(|e| e.lo));
        let k = self.k;
        let (_, kth, _) = self
            .scratch
            .select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        self.threshold = self.threshold.max(*kth);
        let t = self.threshold;
        self.entries.retain(|e| e.hi >= t);
    }

    /// The surviving rows (every row of the top k is among them).
    pub fn into_entries(mut self) -> Vec<Entry> {
        self.compact();
        self.entries
    }
}

/// The best `k` of `(index, score)` pairs, best first, ties by lower index.
pub fn best_k(mut all: Vec<(u64, f64)>, k: usize, similarity: bool) -> (Vec<u64>, Vec<f64>) {
    let cmp = better(similarity);
    let order = |x: &(u64, f64), y: &(u64, f64)| cmp(&x.1, &y.1).then(x.0.cmp(&y.0));
    if k == 0 {
        return (Vec::new(), Vec::new());
    }
    if all.len() > k {
        all.select_nth_unstable_by(k - 1, order);
        all.truncate(k);
    }
    all.sort_unstable_by(order);
    all.into_iter().unzip()
}

/// Merges two best-first lists into the best `k`.
pub fn merge(
    a: (Vec<u64>, Vec<f64>),
    b: (Vec<u64>, Vec<f64>),
    k: usize,
    similarity: bool,
) -> (Vec<u64>, Vec<f64>) {
    let all =
        a.0.into_iter()
            .zip(a.1)
            .chain(b.0.into_iter().zip(b.1))
            .collect();
    best_k(all, k, similarity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_first_with_nan_last_and_ties_by_index() {
        let s = [0.5, f64::NAN, 0.9, 0.1, 0.9];
        let all = |s: &[f64]| s.iter().enumerate().map(|(i, &v)| (i as u64, v)).collect();
        assert_eq!(
            best_k(all(&s), 3, true),
            (vec![2, 4, 0], vec![0.9, 0.9, 0.5])
        );
        assert_eq!(best_k(all(&s), 2, false).0, vec![3, 0]);
        assert_eq!(best_k(all(&s), 9, false).0, vec![3, 0, 2, 4, 1]);
        assert!(best_k(all(&s), 0, true).0.is_empty());
        let m = merge((vec![1], vec![0.5]), (vec![7, 8], vec![0.7, 0.1]), 2, true);
        assert_eq!(m, (vec![7, 1], vec![0.7, 0.5]));
        assert_eq!(key(f64::NAN, true), f64::NEG_INFINITY);
        assert_eq!(key(2.0, false), -2.0);
    }

    #[test]
    fn candidates_keep_every_possible_winner() {
        // Keys 0..1000 with bounds ±3: the top 5 (995..999) must survive, and rows whose
        // upper bound is below the 5th lower bound (992) must be gone.
        let mut c = Candidates::new(5);
        for i in 0..1000u64 {
            let key = i as f64;
            c.push(key + 3.0, key - 3.0, i);
        }
        let mut kept: Vec<u64> = c.into_entries().iter().map(|e| e.index).collect();
        kept.sort_unstable();
        assert!(kept.iter().all(|&i| i + 3 >= 992));
        assert!((995..1000).all(|i| kept.contains(&i)));
        // Exact ties are all kept (the caller breaks them by index).
        let mut t = Candidates::new(2);
        for i in 0..500u64 {
            t.push(1.0, 1.0, i);
        }
        assert_eq!(t.into_entries().len(), 500);
        let mut e = Candidates::new(2);
        for i in 0..500u64 {
            e.push_exact(1.0, i);
        }
        assert!(e.into_entries().len() < 100);
        let mut z = Candidates::new(0);
        z.push(1.0, 1.0, 0);
        assert!(z.into_entries().is_empty());
    }
}
