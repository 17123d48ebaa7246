//! Squared Euclidean distance Σ(aᵢ−bᵢ)² (a distance); `l2` is its square root.

use super::{nk_bf16, nk_f16};
use half::{bf16, f16};

/// Σ(aᵢ−bᵢ)² for equal-length vectors.
pub trait L2: Sized {
    /// The squared distance (NaN if the lengths differ).
    fn l2sq(a: &[Self], b: &[Self]) -> f64;
}

impl L2 for f32 {
    fn l2sq(a: &[f32], b: &[f32]) -> f64 {
        <f32 as numkong::Euclidean>::sqeuclidean(a, b).unwrap_or(f64::NAN)
    }
}

impl L2 for f64 {
    fn l2sq(a: &[f64], b: &[f64]) -> f64 {
        <f64 as numkong::Euclidean>::sqeuclidean(a, b).unwrap_or(f64::NAN)
    }
}

impl L2 for f16 {
    fn l2sq(a: &[f16], b: &[f16]) -> f64 {
        <numkong::f16 as numkong::Euclidean>::sqeuclidean(nk_f16(a), nk_f16(b))
            .map_or(f64::NAN, f64::from)
    }
}

impl L2 for bf16 {
    fn l2sq(a: &[bf16], b: &[bf16]) -> f64 {
        <numkong::bf16 as numkong::Euclidean>::sqeuclidean(nk_bf16(a), nk_bf16(b))
            .map_or(f64::NAN, f64::from)
    }
}

impl L2 for i8 {
    fn l2sq(a: &[i8], b: &[i8]) -> f64 {
        <i8 as numkong::Euclidean>::sqeuclidean(a, b).map_or(f64::NAN, f64::from)
    }
}
