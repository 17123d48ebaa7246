//! Jaccard distance over bits: 1 − |a∧b| / |a∨b|; two all-zero vectors give 1.0 (the
//! published rule). Computed in f64 from numkong's Hamming counts:
//! |a∨b| − |a∧b| = hamming(a, b) and |a∨b| = (|a| + |b| + hamming(a, b)) / 2.

use super::Hamming;

/// Jaccard distance of bit vectors.
pub trait Jaccard: Sized {
    /// The distance (NaN if the lengths differ).
    fn jaccard(a: &[Self], b: &[Self]) -> f64;
}

/// Set bits of `v`.
pub fn popcount(v: &[u8]) -> f64 {
    static ZEROS: [u8; 512] = [0; 512];
    v.chunks(ZEROS.len())
        .map(|c| u8::hamming(c, &ZEROS[..c.len()]))
        .sum()
}

impl Jaccard for u8 {
    fn jaccard(a: &[u8], b: &[u8]) -> f64 {
        let diff = u8::hamming(a, b);
        let union = (popcount(a) + popcount(b) + diff) / 2.0;
        if union == 0.0 {
            1.0
        } else {
            1.0 - (union - diff) / union
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(u8::jaccard(&[0b1010], &[0b0110]), 1.0 - 1.0 / 3.0);
        assert_eq!(u8::jaccard(&[0, 0], &[0, 0]), 1.0);
        assert_eq!(u8::jaccard(&[5], &[5]), 0.0);
        assert_eq!(popcount(&[0xff; 1000]), 8000.0);
        assert!(u8::jaccard(&[1], &[1, 2]).is_nan());
    }
}
