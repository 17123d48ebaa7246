//! Dot product Σ aᵢbᵢ (a similarity), accumulated in f64 for float inputs and exactly for int8.

use super::{nk_bf16, nk_f16};
use half::{bf16, f16};

/// Σ aᵢbᵢ for equal-length vectors.
pub trait Dot: Sized {
    /// The dot product (NaN if the lengths differ).
    fn dot(a: &[Self], b: &[Self]) -> f64;
}

impl Dot for f32 {
    fn dot(a: &[f32], b: &[f32]) -> f64 {
        <f32 as numkong::Dot>::dot(a, b).unwrap_or(f64::NAN)
    }
}

impl Dot for f64 {
    fn dot(a: &[f64], b: &[f64]) -> f64 {
        <f64 as numkong::Dot>::dot(a, b).unwrap_or(f64::NAN)
    }
}

impl Dot for f16 {
    fn dot(a: &[f16], b: &[f16]) -> f64 {
        <numkong::f16 as numkong::Dot>::dot(nk_f16(a), nk_f16(b)).map_or(f64::NAN, f64::from)
    }
}

impl Dot for bf16 {
    fn dot(a: &[bf16], b: &[bf16]) -> f64 {
        <numkong::bf16 as numkong::Dot>::dot(nk_bf16(a), nk_bf16(b)).map_or(f64::NAN, f64::from)
    }
}

impl Dot for i8 {
    fn dot(a: &[i8], b: &[i8]) -> f64 {
        <i8 as numkong::Dot>::dot(a, b).map_or(f64::NAN, f64::from)
    }
}
