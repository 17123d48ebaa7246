//! Exact similarity search: metrics, kernels, top-k selection, in memory and streamed from a
//! store's mapped arrays (logical rows only).
//!
//! Scores are exact: the per-pair kernels accumulate float inputs in f64. float32 top-k
//! searches with dot, cosine, l2 or l2sq first filter in f32 (a SIMD row scan for one query, a
//! blocked matrix product for several) with guaranteed error bounds, then rescore the few rows
//! that can still make the top k.

mod bounds;
mod filter;
pub mod index;
pub mod kernels;
pub mod metric;
pub mod promote;
pub mod search;
pub mod stream;
pub mod topk;

pub use metric::Metric;
pub use promote::Rows;
pub use search::{scores, scores_of, top_k, top_k_of, Vectors};

/// The SIMD levels in use, best first: `"CPU: AVX-512, AVX2"`, `"CPU: NEON"`, or
/// `"CPU: scalar (no SIMD)"`.
pub fn capabilities() -> String {
    use kernels::scan::{level, Level};
    let mut found: Vec<&str> = Vec::new();
    match level() {
        Level::Avx512 => found.extend(["AVX-512", "AVX2"]),
        Level::Avx2 => found.push("AVX2"),
        Level::Portable => {}
    }
    #[cfg(target_arch = "aarch64")]
    {
        found.push("NEON");
        if std::arch::is_aarch64_feature_detected!("sve") {
            found.push("SVE");
        }
    }
    if found.is_empty() {
        "CPU: scalar (no SIMD)".to_owned()
    } else {
        format!("CPU: {}", found.join(", "))
    }
}

/// `len` zeros, or [`crate::NpkError::OutOfMemory`] when the length overflows or the memory
/// cannot be had (a score matrix is sized by the caller's arrays).
pub(crate) fn zeroed(len: Option<usize>, what: &str) -> crate::NpkResult<Vec<f64>> {
    let oom = || crate::NpkError::OutOfMemory(format!("{what} do not fit in memory"));
    let len = len.ok_or_else(oom)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| oom())?;
    v.resize(len, 0.0);
    Ok(v)
}
