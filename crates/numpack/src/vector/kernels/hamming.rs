//! Hamming distance: the number of differing bits of two bit vectors packed in bytes.

use super::nk_u1;

/// Differing bits.
pub trait Hamming: Sized {
    /// The count of differing bits (NaN if the lengths differ).
    fn hamming(a: &[Self], b: &[Self]) -> f64;
}

impl Hamming for u8 {
    fn hamming(a: &[u8], b: &[u8]) -> f64 {
        <numkong::u1x8 as numkong::Hamming>::hamming(nk_u1(a), nk_u1(b)).map_or(f64::NAN, f64::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bits() {
        assert_eq!(u8::hamming(&[0b1010, 0xff], &[0b0110, 0x00]), 10.0);
        assert!(u8::hamming(&[1], &[1, 2]).is_nan());
    }
}
