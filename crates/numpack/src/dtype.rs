//! The element types of the format and their Rust counterparts: the published package's 14,
//! and numpack's bfloat16 and two float8 types (codes 14-16, which the published package
//! refuses as unknown).

use crate::error::{NpkError, NpkResult};
use std::fmt;

#[cfg(target_endian = "big")]
compile_error!("numpack stores little-endian data and supports little-endian targets only");

/// Element type codes of `metadata.npkm` (FORMAT.md, "dtype codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DataType {
    /// `bool`, one byte 0/1.
    Bool = 0,
    /// `u8`.
    Uint8 = 1,
    /// `u16`.
    Uint16 = 2,
    /// `u32`.
    Uint32 = 3,
    /// `u64`.
    Uint64 = 4,
    /// `i8`.
    Int8 = 5,
    /// `i16`.
    Int16 = 6,
    /// `i32`.
    Int32 = 7,
    /// `i64`.
    Int64 = 8,
    /// `half::f16`.
    Float16 = 9,
    /// `f32`.
    Float32 = 10,
    /// `f64`.
    Float64 = 11,
    /// `num_complex::Complex32`.
    Complex64 = 12,
    /// `num_complex::Complex64`.
    Complex128 = 13,
    /// `half::bf16` (`ml_dtypes.bfloat16`); numpack's own code.
    Bfloat16 = 14,
    /// [`F8E4M3FN`] (`ml_dtypes.float8_e4m3fn`: no infinities, NaN at 0x7f/0xff); numpack's own.
    Float8E4M3FN = 15,
    /// [`F8E5M2`] (`ml_dtypes.float8_e5m2`: IEEE-like, with infinities); numpack's own.
    Float8E5M2 = 16,
}

/// A float8 E4M3FN element (bits as stored; [`F8E4M3FN::to_f32`] decodes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct F8E4M3FN(pub u8);

/// A float8 E5M2 element (bits as stored; [`F8E5M2::to_f32`] decodes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct F8E5M2(pub u8);

impl F8E4M3FN {
    /// The value (exact: every float8 value is a float32).
    pub fn to_f32(self) -> f32 {
        let (s, e, m) = (self.0 >> 7, (self.0 >> 3) & 0xf, self.0 & 0x7);
        let v = if e == 0xf && m == 0x7 {
            f32::NAN
        } else if e == 0 {
            f32::from(m) / 8.0 * 2f32.powi(-6)
        } else {
            (1.0 + f32::from(m) / 8.0) * 2f32.powi(i32::from(e) - 7)
        };
        if s == 1 {
            -v
        } else {
            v
        }
    }
}

/// The float8 code nearest to `v` (ties to an even code), of the type decoded by `decode`;
/// `over` is the code of a value past the largest finite one, `nan` the NaN code.
fn nearest_f8(v: f64, decode: fn(u8) -> f32, over: u8, nan: u8, ties_over: bool) -> u8 {
    if v.is_nan() {
        return nan;
    }
    let sign = if v.is_sign_negative() { 0x80 } else { 0 };
    let a = v.abs();
    let finite: Vec<(u8, f64)> = (0..0x80u8)
        .map(|b| (b, f64::from(decode(b))))
        .filter(|(_, d)| d.is_finite())
        .collect();
    let (max_b, max) = finite[finite.len() - 1];
    let step = max - finite[finite.len() - 2].1;
    let beyond = a - max;
    if beyond > step / 2.0 || (ties_over && beyond == step / 2.0) {
        return over | sign;
    }
    let mut best = (max_b, (a - max).abs());
    for &(b, d) in &finite {
        let e = (a - d).abs();
        if e < best.1 || (e == best.1 && b % 2 == 0) {
            best = (b, e);
        }
    }
    best.0 | sign
}

impl F8E4M3FN {
    /// The nearest value (ties to even; past 448, NaN, as `ml_dtypes` does: no infinities).
    pub fn from_f64(v: f64) -> Self {
        F8E4M3FN(nearest_f8(v, |b| F8E4M3FN(b).to_f32(), 0x7f, 0x7f, false))
    }
}

impl F8E5M2 {
    /// The nearest value (ties to even; past 57344, infinity).
    pub fn from_f64(v: f64) -> Self {
        F8E5M2(nearest_f8(v, |b| F8E5M2(b).to_f32(), 0x7c, 0x7e, true))
    }
}

impl F8E5M2 {
    /// The value (exact): the upper half of a float16.
    pub fn to_f32(self) -> f32 {
        half::f16::from_bits(u16::from(self.0) << 8).to_f32()
    }
}

impl DataType {
    /// All dtypes in code order.
    pub const ALL: [DataType; 17] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Float16,
        DataType::Float32,
        DataType::Float64,
        DataType::Complex64,
        DataType::Complex128,
        DataType::Bfloat16,
        DataType::Float8E4M3FN,
        DataType::Float8E5M2,
    ];

    /// Decodes a dtype code; unknown codes are an error, never a default.
    pub fn from_code(code: u8) -> NpkResult<Self> {
        Self::ALL
            .get(usize::from(code))
            .copied()
            .ok_or_else(|| NpkError::InvalidDtype(format!("unknown dtype code {code}")))
    }

    /// The format's code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            DataType::Bool
            | DataType::Uint8
            | DataType::Int8
            | DataType::Float8E4M3FN
            | DataType::Float8E5M2 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Float16 | DataType::Bfloat16 => 2,
            DataType::Uint32 | DataType::Int32 | DataType::Float32 => 4,
            DataType::Uint64 | DataType::Int64 | DataType::Float64 | DataType::Complex64 => 8,
            DataType::Complex128 => 16,
        }
    }

    /// The published package's name of the dtype (`"Float32"`), used in `get_metadata()`.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "Bool",
            DataType::Uint8 => "Uint8",
            DataType::Uint16 => "Uint16",
            DataType::Uint32 => "Uint32",
            DataType::Uint64 => "Uint64",
            DataType::Int8 => "Int8",
            DataType::Int16 => "Int16",
            DataType::Int32 => "Int32",
            DataType::Int64 => "Int64",
            DataType::Float16 => "Float16",
            DataType::Float32 => "Float32",
            DataType::Float64 => "Float64",
            DataType::Complex64 => "Complex64",
            DataType::Complex128 => "Complex128",
            DataType::Bfloat16 => "Bfloat16",
            DataType::Float8E4M3FN => "Float8E4M3FN",
            DataType::Float8E5M2 => "Float8E5M2",
        }
    }

    /// The NumPy name of the dtype (`"float32"`).
    pub fn numpy_name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::Uint8 => "uint8",
            DataType::Uint16 => "uint16",
            DataType::Uint32 => "uint32",
            DataType::Uint64 => "uint64",
            DataType::Int8 => "int8",
            DataType::Int16 => "int16",
            DataType::Int32 => "int32",
            DataType::Int64 => "int64",
            DataType::Float16 => "float16",
            DataType::Float32 => "float32",
            DataType::Float64 => "float64",
            DataType::Complex64 => "complex64",
            DataType::Complex128 => "complex128",
            DataType::Bfloat16 => "bfloat16",
            DataType::Float8E4M3FN => "float8_e4m3fn",
            DataType::Float8E5M2 => "float8_e5m2",
        }
    }

    /// Whether the type comes from `ml_dtypes` (numpack's own codes, not the published 14).
    pub fn is_ml_dtype(self) -> bool {
        matches!(
            self,
            DataType::Bfloat16 | DataType::Float8E4M3FN | DataType::Float8E5M2
        )
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.numpy_name())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust element type that numpack can store. Implemented for the 14 types of [`DataType`].
pub trait NpkElement: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The stored dtype of this element type.
    const DTYPE: DataType;

    /// The elements as little-endian bytes (no copy).
    fn as_bytes(values: &[Self]) -> &[u8];

    /// Decodes little-endian bytes (length a multiple of the item size) into elements.
    fn from_bytes(bytes: &[u8]) -> Vec<Self>;
}

/// Runs `$body` with `$T` bound to the Rust element type of a [`DataType`] value; bools are
/// `bool` unless another type is given after `bool =` (and the bfloat16 and float8 types
/// theirs unless `bf16 =` and `f8 = (e4m3fn, e5m2)` name others of their sizes). One dispatch for the crate and its
/// bindings.
#[doc(hidden)]
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        $crate::with_dtype!($dtype, $T => $body; bool = bool)
    };
    ($dtype:expr, $T:ident => $body:expr; bool = $B:ty) => {
        $crate::with_dtype!($dtype, $T => $body; bool = $B, bf16 = $crate::dtype::elements::BF16,
            f8 = ($crate::dtype::F8E4M3FN, $crate::dtype::F8E5M2))
    };
    ($dtype:expr, $T:ident => $body:expr; bool = $B:ty, bf16 = $BF:ty, f8 = ($E4:ty, $E5:ty)) => {{
        use $crate::dtype::DataType as D;
        match $dtype {
            D::Bool => {
                type $T = $B;
                $body
            }
            D::Uint8 => {
                type $T = u8;
                $body
            }
            D::Uint16 => {
                type $T = u16;
                $body
            }
            D::Uint32 => {
                type $T = u32;
                $body
            }
            D::Uint64 => {
                type $T = u64;
                $body
            }
            D::Int8 => {
                type $T = i8;
                $body
            }
            D::Int16 => {
                type $T = i16;
                $body
            }
            D::Int32 => {
                type $T = i32;
                $body
            }
            D::Int64 => {
                type $T = i64;
                $body
            }
            D::Float16 => {
                type $T = $crate::dtype::elements::F16;
                $body
            }
            D::Float32 => {
                type $T = f32;
                $body
            }
            D::Float64 => {
                type $T = f64;
                $body
            }
            D::Complex64 => {
                type $T = $crate::dtype::elements::Complex32;
                $body
            }
            D::Complex128 => {
                type $T = $crate::dtype::elements::Complex64;
                $body
            }
            D::Bfloat16 => {
                type $T = $BF;
                $body
            }
            D::Float8E4M3FN => {
                type $T = $E4;
                $body
            }
            D::Float8E5M2 => {
                type $T = $E5;
                $body
            }
        }
    }};
}

/// The element types behind [`with_dtype!`] that come from other crates.
#[doc(hidden)]
pub mod elements {
    pub use half::bf16 as BF16;
    pub use half::f16 as F16;
    pub use num_complex::{Complex32, Complex64};
}

macro_rules! pod_element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl NpkElement for $t {
            const DTYPE: DataType = DataType::$d;
            fn as_bytes(values: &[Self]) -> &[u8] {
                bytemuck::cast_slice(values)
            }
            fn from_bytes(bytes: &[u8]) -> Vec<Self> {
                bytemuck::pod_collect_to_vec(bytes)
            }
        }
    )*};
}

pod_element!(
    u8 => Uint8, u16 => Uint16, u32 => Uint32, u64 => Uint64,
    i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64,
    half::f16 => Float16, f32 => Float32, f64 => Float64,
    num_complex::Complex32 => Complex64, num_complex::Complex64 => Complex128,
    half::bf16 => Bfloat16, F8E4M3FN => Float8E4M3FN, F8E5M2 => Float8E5M2,
);

impl sealed::Sealed for bool {}
impl NpkElement for bool {
    const DTYPE: DataType = DataType::Bool;
    fn as_bytes(values: &[Self]) -> &[u8] {
        bytemuck::cast_slice(values)
    }
    fn from_bytes(bytes: &[u8]) -> Vec<Self> {
        // Any non-zero byte is true: a bool must never hold another bit pattern.
        bytes.iter().map(|&b| b != 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_fail() {
        for (i, d) in DataType::ALL.iter().enumerate() {
            assert_eq!(usize::from(d.code()), i);
            assert_eq!(DataType::from_code(d.code()).unwrap(), *d);
        }
        assert!(DataType::from_code(17).is_err());
        assert!(DataType::from_code(255).is_err());
    }

    #[test]
    fn float8_decodes_as_ml_dtypes_does() {
        let e4 = |b| F8E4M3FN(b).to_f32();
        assert_eq!(
            (e4(0x38), e4(0x7e), e4(0x01), e4(0xb8)),
            (1.0, 448.0, 2f32.powi(-9), -1.0)
        );
        assert!(e4(0x7f).is_nan() && e4(0xff).is_nan());
        let e5 = |b| F8E5M2(b).to_f32();
        assert_eq!(
            (e5(0x3c), e5(0x7b), e5(0x7c)),
            (1.0, 57344.0, f32::INFINITY)
        );
        assert!(e5(0x7d).is_nan());
        for b in 0..=255u8 {
            if !e4(b).is_nan() {
                assert_eq!(F8E4M3FN::from_f64(f64::from(e4(b))).0, b);
            }
            if !e5(b).is_nan() {
                assert_eq!(F8E5M2::from_f64(f64::from(e5(b))).0, b);
            }
        }
        assert_eq!(F8E4M3FN::from_f64(1.0624).0, 0x38);
        assert!(e4(F8E4M3FN::from_f64(1e6).0).is_nan());
        assert_eq!(e5(F8E5M2::from_f64(-1e6).0), f32::NEG_INFINITY);
    }

    #[test]
    fn bool_bytes_are_normalised() {
        assert_eq!(bool::from_bytes(&[0, 1, 7]), vec![false, true, true]);
        assert_eq!(f32::from_bytes(&1.5f32.to_le_bytes()), vec![1.5]);
    }
}
