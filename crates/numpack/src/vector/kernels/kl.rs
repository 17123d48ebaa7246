//! Kullback–Leibler divergence Σ aᵢ ln((aᵢ+ε)/(bᵢ+ε)) (a distance) as numkong (SimSIMD's
//! successor) defines it: inputs are not normalised, ε = 1e-7 for float16/float32 and 1e-15
//! for float64, logarithms from numkong's own series (relative error about 1e-7).

use super::{nk_bf16, nk_f16};
use half::{bf16, f16};

/// Kullback–Leibler divergence.
pub trait Kl: Sized {
    /// KL(a ‖ b) (NaN if the lengths differ).
    fn kl(a: &[Self], b: &[Self]) -> f64;
}

impl Kl for f32 {
    fn kl(a: &[f32], b: &[f32]) -> f64 {
        <f32 as numkong::KullbackLeibler>::kl(a, b).unwrap_or(f64::NAN)
    }
}

impl Kl for f64 {
    fn kl(a: &[f64], b: &[f64]) -> f64 {
        <f64 as numkong::KullbackLeibler>::kl(a, b).unwrap_or(f64::NAN)
    }
}

impl Kl for f16 {
    fn kl(a: &[f16], b: &[f16]) -> f64 {
        <numkong::f16 as numkong::KullbackLeibler>::kl(nk_f16(a), nk_f16(b))
            .map_or(f64::NAN, f64::from)
    }
}

impl Kl for bf16 {
    fn kl(a: &[bf16], b: &[bf16]) -> f64 {
        <numkong::bf16 as numkong::KullbackLeibler>::kl(nk_bf16(a), nk_bf16(b))
            .map_or(f64::NAN, f64::from)
    }
}
