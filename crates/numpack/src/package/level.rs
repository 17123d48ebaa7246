//! Choosing the zstd level of each member from samples of its bytes.
//!
//! Numeric arrays hold few long repeats: a deeper match search (higher level) often buys
//! nothing, or even loses, against a cheaper level's entropy coding (random float32
//! embeddings: level 1 is 0.1% smaller than level 3 and twice as fast). So the requested level
//! is the most effort spent, and each large member is compressed at the cheapest level among
//! 1, 2, 3 and the requested one (never above it) whose output on a few 1 MiB samples is
//! within 0.05% of the smallest. The package stays standard zstd; any reader decodes it.

use super::shuffle::{shuffle, BLOCK};
use crate::error::{IoContext, NpkResult};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Samples taken from a member (each one shuffle block long).
const SAMPLES: u64 = 4;

/// Members smaller than this are compressed at the requested level without sampling.
const MIN_SAMPLED: u64 = 8 * BLOCK as u64;

/// How much larger (in 1/2000ths, 0.05%) a cheaper level's samples may come out.
const TOLERANCE: usize = 2000;

/// The level for a member of `size` bytes at `path` (byte-shuffled by `item` when > 1).
pub fn choose(path: &Path, size: u64, item: u8, requested: i32) -> NpkResult<i32> {
    let mut candidates: Vec<i32> = [1, 2, 3, requested]
        .into_iter()
        .filter(|&l| (1..=requested).contains(&l))
        .collect();
    candidates.dedup();
    if size < MIN_SAMPLED || candidates.len() < 2 {
        return Ok(requested);
    }
    let file = crate::io::fs::open_read(path)?;
    // Block-aligned, like the shuffle blocks the member is compressed in.
    let blocks = size / BLOCK as u64;
    let mut samples = Vec::with_capacity(SAMPLES as usize);
    for i in 0..SAMPLES {
        let at = i * (blocks - 1) / (SAMPLES - 1) * BLOCK as u64;
        let mut raw = vec![0u8; BLOCK];
        file.read_exact_at(&mut raw, at).at(path)?;
        if item > 1 {
            let mut s = vec![0u8; BLOCK];
            shuffle(&raw, &mut s, usize::from(item));
            raw = s;
        }
        samples.push(raw);
    }
    let sizes = candidates
        .iter()
        .map(|&l| {
            samples.iter().try_fold(0usize, |acc, s| {
                zstd::bulk::compress(s, l).map(|c| acc + c.len())
            })
        })
        .collect::<std::io::Result<Vec<usize>>>()
        .at(path)?;
    let best = *sizes.iter().min().expect("two candidates or more");
    let pick = candidates
        .iter()
        .zip(&sizes)
        .find(|(_, &s)| s <= best + best / TOLERANCE)
        .map_or(requested, |(&l, _)| l);
    Ok(pick)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m");
        std::fs::write(&p, bytes).unwrap();
        (d, p)
    }

    #[test]
    fn small_members_and_level_one_are_left_alone() {
        let (_d, p) = member(&[7u8; 1000]);
        assert_eq!(choose(&p, 1000, 0, 3).unwrap(), 3);
        assert_eq!(choose(&p, 1000, 0, 1).unwrap(), 1);
    }

    #[test]
    fn never_above_the_requested_level_and_cheaper_for_noise() {
        // splitmix64 noise: no level finds matches, so the cheapest wins.
        let mut x = 1u64;
        let noise: Vec<u8> = (0..(9 * BLOCK))
            .map(|_| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                (z ^ (z >> 27)) as u8
            })
            .collect();
        let (_d, p) = member(&noise);
        let n = noise.len() as u64;
        assert_eq!(choose(&p, n, 0, 3).unwrap(), 1);
        assert_eq!(choose(&p, n, 4, 19).unwrap(), 1);
        // Text-like data with long repeats: a deeper level may pay; whatever is picked is
        // one of the candidates and never above the request.
        let text: Vec<u8> = b"numpack stores arrays; "
            .iter()
            .copied()
            .cycle()
            .take(9 * BLOCK)
            .collect();
        let (_e, q) = member(&text);
        let l = choose(&q, text.len() as u64, 0, 2).unwrap();
        assert!((1..=2).contains(&l));
    }
}
