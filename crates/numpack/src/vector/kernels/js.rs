//! Jensen–Shannon distance √(½ Σ [aᵢ ln((aᵢ+ε)/(mᵢ+ε)) + bᵢ ln((bᵢ+ε)/(mᵢ+ε))]),
//! m = (a+b)/2 (a distance), as numkong defines it (ε as for `kl`).

use super::{nk_bf16, nk_f16};
use half::{bf16, f16};

/// Jensen–Shannon distance.
pub trait Js: Sized {
    /// JS(a, b) (NaN if the lengths differ).
    fn js(a: &[Self], b: &[Self]) -> f64;
}

impl Js for f32 {
    fn js(a: &[f32], b: &[f32]) -> f64 {
        <f32 as numkong::JensenShannon>::js(a, b).unwrap_or(f64::NAN)
    }
}

impl Js for f64 {
    fn js(a: &[f64], b: &[f64]) -> f64 {
        <f64 as numkong::JensenShannon>::js(a, b).unwrap_or(f64::NAN)
    }
}

impl Js for f16 {
    fn js(a: &[f16], b: &[f16]) -> f64 {
        <numkong::f16 as numkong::JensenShannon>::js(nk_f16(a), nk_f16(b))
            .map_or(f64::NAN, f64::from)
    }
}

impl Js for bf16 {
    fn js(a: &[bf16], b: &[bf16]) -> f64 {
        <numkong::bf16 as numkong::JensenShannon>::js(nk_bf16(a), nk_bf16(b))
            .map_or(f64::NAN, f64::from)
    }
}
