//! The 14 element types of the format and their Rust counterparts.

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
}

impl DataType {
    /// All dtypes in code order.
    pub const ALL: [DataType; 14] = [
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
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Float16 => 2,
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
        }
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
/// `bool` unless another type is given after `bool =`. One dispatch for the crate and its
/// bindings.
#[doc(hidden)]
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        $crate::with_dtype!($dtype, $T => $body; bool = bool)
    };
    ($dtype:expr, $T:ident => $body:expr; bool = $B:ty) => {{
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
        }
    }};
}

/// The element types behind [`with_dtype!`] that come from other crates.
#[doc(hidden)]
pub mod elements {
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
        assert!(DataType::from_code(14).is_err());
        assert!(DataType::from_code(255).is_err());
    }

    #[test]
    fn bool_bytes_are_normalised() {
        assert_eq!(bool::from_bytes(&[0, 1, 7]), vec![false, true, true]);
        assert_eq!(f32::from_bytes(&1.5f32.to_le_bytes()), vec![1.5]);
    }
}
