//! Top-k selection: best first, NaN always last.

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

/// The `k` best `(index, score)` pairs of `scores`, best first (ties by lower index).
pub fn select(scores: &[f64], k: usize, similarity: bool, offset: u64) -> (Vec<u64>, Vec<f64>) {
    let k = k.min(scores.len());
    if k == 0 {
        return (Vec::new(), Vec::new());
    }
    let cmp = better(similarity);
    let order = |a: &usize, b: &usize| cmp(&scores[*a], &scores[*b]).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, order);
        idx.truncate(k);
    }
    idx.sort_unstable_by(order);
    let scores = idx.iter().map(|&i| scores[i]).collect();
    (idx.into_iter().map(|i| i as u64 + offset).collect(), scores)
}

/// Merges two best-first lists into the best `k`.
pub fn merge(
    a: (Vec<u64>, Vec<f64>),
    b: (Vec<u64>, Vec<f64>),
    k: usize,
    similarity: bool,
) -> (Vec<u64>, Vec<f64>) {
    let mut all: Vec<(u64, f64)> =
        a.0.into_iter()
            .zip(a.1)
            .chain(b.0.into_iter().zip(b.1))
            .collect();
    let cmp = better(similarity);
    all.sort_by(|x, y| cmp(&x.1, &y.1).then(x.0.cmp(&y.0)));
    all.truncate(k);
    all.into_iter().unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_best_first_with_nan_last() {
        let s = [0.5, f64::NAN, 0.9, 0.1, 0.9];
        assert_eq!(select(&s, 3, true, 0), (vec![2, 4, 0], vec![0.9, 0.9, 0.5]));
        assert_eq!(select(&s, 2, false, 10).0, vec![13, 10]);
        assert_eq!(select(&s, 9, false, 0).0, vec![3, 0, 2, 4, 1]);
        assert_eq!(select(&s, 0, true, 0).0, Vec::<u64>::new());
        let m = merge((vec![1], vec![0.5]), (vec![7, 8], vec![0.7, 0.1]), 2, true);
        assert_eq!(m, (vec![7, 1], vec![0.7, 0.5]));
    }
}
