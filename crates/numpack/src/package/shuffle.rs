//! Blosc-style byte shuffling: within each block, byte `k` of every element is stored
//! together, which makes floating-point data far more compressible.

/// Block size used when packing with shuffle (a multiple of every item size 1..=16).
pub const BLOCK: usize = 1 << 20;

/// Shuffles `src` into `dst` by item size `n` (lengths equal, multiples of `n`).
pub fn shuffle(src: &[u8], dst: &mut [u8], n: usize) {
    let count = src.len() / n;
    for (i, item) in src.chunks_exact(n).enumerate() {
        for (k, &b) in item.iter().enumerate() {
            dst[k * count + i] = b;
        }
    }
}

/// Reverses [`shuffle`].
pub fn unshuffle(src: &[u8], dst: &mut [u8], n: usize) {
    let count = src.len() / n;
    for (i, item) in dst.chunks_exact_mut(n).enumerate() {
        for (k, b) in item.iter_mut().enumerate() {
            *b = src[k * count + i];
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let src: Vec<u8> = (0..64u8).collect();
        let mut s = vec![0; 64];
        let mut back = vec![0; 64];
        super::shuffle(&src, &mut s, 4);
        assert_eq!(&s[..4], &[0, 4, 8, 12]);
        super::unshuffle(&s, &mut back, 4);
        assert_eq!(back, src);
    }
}
