//! The engine's one dtype policy for search: the element type a query and candidates of given
//! dtypes are scored in ([`kernel`]), and the conversion of rows into it ([`convert`]). Every
//! search (in memory, streamed from a store or a snapshot) goes through both, so the same
//! pair of dtypes gives the same scores wherever the candidates come from.
//!
//! | query, candidates | metric | kernel |
//! |---|---|---|
//! | same dtype: float32, float64, float16, bfloat16 | any but hamming / jaccard | that dtype (native) |
//! | int8, int8 | dot, cosine, l2, l2sq | int8 (native) |
//! | bool, bool | hamming, jaccard | bits (bool rows packed 8 to a byte, as `np.packbits`) |
//! | uint8, uint8 | hamming, jaccard | bits (the bytes are packed bits already) |
//! | any other numeric pair | any but hamming / jaccard | float64 |
//!
//! Refused ([`NpkError::DtypeMismatch`]): complex dtypes; bool or uint8 with any other metric
//! or partner; int8 with kl / js; hamming / jaccard on anything but two bool or two uint8
//! operands. Vectors of width 0 score as vectors of one zero element.

use super::metric::Metric;
use super::search::Vectors;
use crate::dtype::DataType;
use crate::error::{NpkError, NpkResult};
use half::{bf16, f16};
use std::borrow::Cow;

/// Row-major vectors as they come (from NumPy, a store or a snapshot): `rows` rows of `dim`
/// elements of `dtype`, little-endian.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    /// The element type.
    pub dtype: DataType,
    /// `rows * dim` elements.
    pub bytes: &'a [u8],
    /// Number of vectors.
    pub rows: usize,
    /// Elements per vector.
    pub dim: usize,
}

impl<'a> Rows<'a> {
    /// `bytes` as rows of `dim` elements of `dtype`; the length must be whole rows.
    pub fn new(dtype: DataType, bytes: &'a [u8], rows: usize, dim: usize) -> NpkResult<Self> {
        let want = rows
            .checked_mul(dim)
            .and_then(|n| n.checked_mul(dtype.size_bytes()));
        if want != Some(bytes.len()) {
            return Err(NpkError::InvalidShape(format!(
                "{} bytes are not {rows} vectors of {dim} {dtype} elements",
                bytes.len()
            )));
        }
        Ok(Rows {
            dtype,
            bytes,
            rows,
            dim,
        })
    }
}

/// The element type a search runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// float32 kernels (with the f32 filter for top-k).
    F32,
    /// float64 kernels.
    F64,
    /// float16 kernels.
    F16,
    /// bfloat16 kernels.
    BF16,
    /// int8 kernels.
    I8,
    /// Packed bits (hamming, jaccard).
    Bits,
}

fn mismatch(msg: String) -> NpkError {
    NpkError::DtypeMismatch(msg)
}

/// The kernel that scores queries of dtype `q` against candidates of dtype `c` by `metric`:
/// the table in the module documentation.
pub fn kernel(metric: Metric, q: DataType, c: DataType) -> NpkResult<Kernel> {
    use DataType as D;
    for d in [q, c] {
        if matches!(d, D::Complex64 | D::Complex128) {
            return Err(mismatch(format!("Unsupported dtype: {}", d.numpy_name())));
        }
    }
    let name = metric.as_str();
    if metric.is_binary() {
        return match (q, c) {
            (D::Bool, D::Bool) | (D::Uint8, D::Uint8) => Ok(Kernel::Bits),
            _ => {
                let bad = if matches!(q, D::Uint8 | D::Bool) {
                    c
                } else {
                    q
                };
                Err(mismatch(format!(
                    "Compute error: Unsupported metric '{name}' for dtype {}",
                    bad.numpy_name()
                )))
            }
        };
    }
    for (d, what) in [(D::Bool, "bool"), (D::Uint8, "uint8")] {
        if q == d || c == d {
            return Err(mismatch(format!(
                "{what} arrays only support 'hamming' and 'jaccard' metrics, got: {name}"
            )));
        }
    }
    Ok(match (q, c) {
        (D::Float32, D::Float32) => Kernel::F32,
        (D::Float16, D::Float16) => Kernel::F16,
        (D::Bfloat16, D::Bfloat16) => Kernel::BF16,
        (D::Int8, D::Int8) => {
            if !matches!(
                metric,
                Metric::Dot | Metric::Cosine | Metric::L2 | Metric::L2Sq
            ) {
                return Err(mismatch(format!(
                    "Compute error: Unsupported metric '{name}' for dtype int8"
                )));
            }
            Kernel::I8
        }
        _ => Kernel::F64,
    })
}

/// Vectors converted into a kernel's element type: borrowed where the bytes already are
/// those elements, else a copy.
#[derive(Debug, Clone)]
pub enum Converted<'a> {
    /// float32 rows.
    F32(Cow<'a, [f32]>),
    /// float64 rows.
    F64(Cow<'a, [f64]>),
    /// float16 rows.
    F16(Cow<'a, [f16]>),
    /// bfloat16 rows.
    BF16(Cow<'a, [bf16]>),
    /// int8 rows.
    I8(Cow<'a, [i8]>),
    /// Packed bit rows.
    Bits(Cow<'a, [u8]>),
}

impl Converted<'_> {
    /// The vectors, for the kernels.
    pub fn vectors(&self) -> Vectors<'_> {
        match self {
            Converted::F32(v) => Vectors::F32(v),
            Converted::F64(v) => Vectors::F64(v),
            Converted::F16(v) => Vectors::F16(v),
            Converted::BF16(v) => Vectors::BF16(v),
            Converted::I8(v) => Vectors::I8(v),
            Converted::Bits(v) => Vectors::Bits(v),
        }
    }
}

/// The elements of `bytes`, borrowed when aligned (mappings and NumPy arrays are), else copied.
fn cast<T: bytemuck::Pod>(bytes: &[u8]) -> Cow<'_, [T]> {
    if bytes.is_empty() {
        return Cow::Borrowed(&[]);
    }
    match bytemuck::try_cast_slice(bytes) {
        Ok(v) => Cow::Borrowed(v),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    }
}

/// Room for `n` elements, or `OutOfMemory` (a conversion is sized by the caller's arrays).
fn room<T>(n: usize) -> NpkResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        NpkError::OutOfMemory(format!(
            "{n} converted vector elements do not fit in memory"
        ))
    })?;
    Ok(v)
}

/// Every element of `r` as float64.
fn widen(r: &Rows<'_>) -> NpkResult<Vec<f64>> {
    use DataType as D;
    let mut out = room(r.bytes.len() / r.dtype.size_bytes().max(1))?;
    macro_rules! each {
        ($t:ty, $f:expr) => {
            out.extend(
                r.bytes
                    .chunks_exact(std::mem::size_of::<$t>())
                    .map(|b| $f(<$t>::from_le_bytes(b.try_into().expect("one element")))),
            )
        };
    }
    match r.dtype {
        D::Bool | D::Uint8 => out.extend(r.bytes.iter().map(|&b| f64::from(b))),
        D::Int8 => out.extend(r.bytes.iter().map(|&b| f64::from(b as i8))),
        D::Uint16 => each!(u16, f64::from),
        D::Uint32 => each!(u32, f64::from),
        D::Uint64 => each!(u64, |v: u64| v as f64),
        D::Int16 => each!(i16, f64::from),
        D::Int32 => each!(i32, f64::from),
        D::Int64 => each!(i64, |v: i64| v as f64),
        D::Float16 => each!(u16, |v: u16| f16::from_bits(v).to_f64()),
        D::Bfloat16 => each!(u16, |v: u16| bf16::from_bits(v).to_f64()),
        D::Float8E4M3FN => out.extend(
            r.bytes
                .iter()
                .map(|&b| f64::from(crate::dtype::F8E4M3FN(b).to_f32())),
        ),
        D::Float8E5M2 => out.extend(
            r.bytes
                .iter()
                .map(|&b| f64::from(crate::dtype::F8E5M2(b).to_f32())),
        ),
        D::Float32 => each!(f32, f64::from),
        D::Float64 => each!(f64, |v: f64| v),
        D::Complex64 | D::Complex128 => {
            return Err(mismatch(format!(
                "Unsupported dtype: {}",
                r.dtype.numpy_name()
            )))
        }
    }
    Ok(out)
}

/// bool rows packed 8 to a byte, first element in the most significant bit, each row padded
/// with zero bits (NumPy's `packbits(axis=-1)`).
fn pack_bits(r: &Rows<'_>) -> NpkResult<Vec<u8>> {
    let width = r.dim.div_ceil(8);
    let mut out = room(r.rows.saturating_mul(width))?;
    for row in r.bytes.chunks_exact(r.dim.max(1)).take(r.rows) {
        out.extend(row.chunks(8).map(|bits| {
            bits.iter()
                .enumerate()
                .fold(0u8, |b, (i, &v)| b | (u8::from(v != 0) << (7 - i)))
        }));
    }
    Ok(out)
}

/// Whether rows of `dtype` are already kernel `k`'s elements (searched without a copy).
pub fn is_native(k: Kernel, dtype: DataType) -> bool {
    matches!(
        (k, dtype),
        (Kernel::F32, DataType::Float32)
            | (Kernel::F64, DataType::Float64)
            | (Kernel::F16, DataType::Float16)
            | (Kernel::BF16, DataType::Bfloat16)
            | (Kernel::I8, DataType::Int8)
            | (Kernel::Bits, DataType::Uint8)
    )
}

/// `r` in kernel `k`, and the width of its converted rows (elements; bytes for bits).
pub fn convert<'a>(k: Kernel, r: &Rows<'a>) -> NpkResult<(Converted<'a>, usize)> {
    if r.dim == 0 {
        // No elements: each vector scores as one zero element.
        return Ok((zeros(k, r.rows)?, 1));
    }
    Ok(match k {
        Kernel::Bits if r.dtype == DataType::Bool => (
            Converted::Bits(Cow::Owned(pack_bits(r)?)),
            r.dim.div_ceil(8),
        ),
        Kernel::Bits => (Converted::Bits(Cow::Borrowed(r.bytes)), r.dim),
        Kernel::F32 => (Converted::F32(cast(r.bytes)), r.dim),
        Kernel::F16 => (Converted::F16(cast(r.bytes)), r.dim),
        Kernel::BF16 => (Converted::BF16(cast(r.bytes)), r.dim),
        Kernel::I8 => (Converted::I8(cast(r.bytes)), r.dim),
        Kernel::F64 if r.dtype == DataType::Float64 => (Converted::F64(cast(r.bytes)), r.dim),
        Kernel::F64 => (Converted::F64(Cow::Owned(widen(r)?)), r.dim),
    })
}

fn zeros(k: Kernel, rows: usize) -> NpkResult<Converted<'static>> {
    Ok(match k {
        Kernel::F32 => Converted::F32(Cow::Owned(filled(rows, 0.0)?)),
        Kernel::F64 => Converted::F64(Cow::Owned(filled(rows, 0.0)?)),
        Kernel::F16 => Converted::F16(Cow::Owned(filled(rows, f16::ZERO)?)),
        Kernel::BF16 => Converted::BF16(Cow::Owned(filled(rows, bf16::ZERO)?)),
        Kernel::I8 => Converted::I8(Cow::Owned(filled(rows, 0)?)),
        Kernel::Bits => Converted::Bits(Cow::Owned(filled(rows, 0)?)),
    })
}

fn filled<T: Clone>(n: usize, v: T) -> NpkResult<Vec<T>> {
    let mut out = room(n)?;
    out.resize(n, v);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataType as D;

    #[test]
    fn the_table() {
        let k = |m: Metric, q, c| kernel(m, q, c).ok();
        assert_eq!(k(Metric::Dot, D::Float32, D::Float32), Some(Kernel::F32));
        assert_eq!(k(Metric::Kl, D::Float16, D::Float16), Some(Kernel::F16));
        assert_eq!(k(Metric::L2, D::Float32, D::Float64), Some(Kernel::F64));
        assert_eq!(k(Metric::Cosine, D::Int64, D::Int16), Some(Kernel::F64));
        assert_eq!(k(Metric::L2Sq, D::Int8, D::Int8), Some(Kernel::I8));
        assert_eq!(k(Metric::Kl, D::Int8, D::Int8), None);
        assert_eq!(k(Metric::Hamming, D::Bool, D::Bool), Some(Kernel::Bits));
        assert_eq!(k(Metric::Jaccard, D::Uint8, D::Uint8), Some(Kernel::Bits));
        assert_eq!(k(Metric::Hamming, D::Bool, D::Uint8), None);
        assert_eq!(k(Metric::Hamming, D::Float32, D::Float32), None);
        assert_eq!(k(Metric::Dot, D::Bool, D::Float32), None);
        assert_eq!(k(Metric::Dot, D::Float32, D::Uint8), None);
        assert_eq!(k(Metric::Dot, D::Complex64, D::Float32), None);
    }

    #[test]
    fn bools_pack_like_numpy() {
        let b = [
            1u8, 0, 1, 1, 0, 0, 0, 0, 1, /* row 2 */ 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        let r = Rows::new(D::Bool, &b, 2, 9).unwrap();
        let (c, w) = convert(Kernel::Bits, &r).unwrap();
        assert_eq!(w, 2);
        match c {
            Converted::Bits(v) => assert_eq!(&*v, &[0b1011_0000, 0b1000_0000, 0, 0b1000_0000]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn widening_keeps_values_and_zero_width_is_one_zero() {
        let v: Vec<u8> = [-3i32, 7].iter().flat_map(|x| x.to_le_bytes()).collect();
        let (c, _) = convert(Kernel::F64, &Rows::new(D::Int32, &v, 1, 2).unwrap()).unwrap();
        assert!(matches!(c, Converted::F64(ref x) if **x == [-3.0, 7.0]));
        let (c, w) = convert(Kernel::F32, &Rows::new(D::Float32, &[], 3, 0).unwrap()).unwrap();
        assert_eq!(w, 1);
        assert!(matches!(c, Converted::F32(ref x) if **x == [0.0; 3]));
        assert!(Rows::new(D::Float32, &[0; 12], 2, 2).is_err());
    }
}
