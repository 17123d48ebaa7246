//! Exact similarity search: metrics, kernels, top-k selection, in memory and streamed from a
//! store's mapped arrays (logical rows only).

pub mod kernels;
pub mod metric;
pub mod search;
pub mod stream;
pub mod topk;

pub use metric::Metric;
pub use search::{scores, top_k, Vectors};

/// The SIMD level the kernels are compiled for / run with (`"CPU: AVX-512, AVX2"`, ...).
pub fn capabilities() -> String {
    let mut found: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            found.push("AVX-512");
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            found.push("AVX2");
        }
    }
    #[cfg(target_arch = "aarch64")]
    found.push("NEON");
    if found.is_empty() {
        "CPU: scalar (no SIMD)".to_owned()
    } else {
        format!("CPU: {}", found.join(", "))
    }
}
