//! Exact per-pair kernels, one file per metric: each metric is a trait implemented per element
//! type, with the SIMD work done by `numkong` (runtime dispatch to AVX-512, AVX2, NEON, SVE or
//! scalar code). f32 inputs accumulate in f64, so these scores are what a float64 reference
//! computes. `scan` holds the f32 row kernels used to filter candidates before exact rescoring.

pub mod cosine;
pub mod dot;
pub mod hamming;
pub mod jaccard;
pub mod js;
pub mod kl;
pub mod l2;
pub mod scan;

use super::metric::Metric;
use half::{bf16, f16};

pub use cosine::Cosine;
pub use dot::Dot;
pub use hamming::Hamming;
pub use jaccard::Jaccard;
pub use js::Js;
pub use kl::Kl;
pub use l2::L2;

/// A query vector with its squared norm (used by cosine; NaN where it does not apply).
#[derive(Debug, Clone, Copy)]
pub struct Query<'a, T> {
    /// The elements.
    pub v: &'a [T],
    /// Σ vᵢ², computed once per query.
    pub norm2: f64,
}

/// An exact scorer: query against one candidate row.
pub type Scorer<T> = fn(&Query<'_, T>, &[T]) -> f64;

/// An element type the engine searches, with its table of supported metrics.
pub trait Element: Copy + Send + Sync + 'static {
    /// Name used in error messages (the NumPy dtype name).
    const NAME: &'static str;
    /// The exact scorer of `metric` for this element type, `None` where unsupported.
    fn scorer(metric: Metric) -> Option<Scorer<Self>>;
    /// Σ vᵢ² of a vector (NaN for bit vectors).
    fn norm2(v: &[Self]) -> f64;
    /// The query for `metric` (its norm only when cosine needs it).
    fn query(metric: Metric, v: &[Self]) -> Query<'_, Self> {
        let norm2 = if metric == Metric::Cosine {
            Self::norm2(v)
        } else {
            f64::NAN
        };
        Query { v, norm2 }
    }
}

macro_rules! float_element {
    ($t:ty, $name:literal) => {
        impl Element for $t {
            const NAME: &'static str = $name;
            fn scorer(metric: Metric) -> Option<Scorer<Self>> {
                Some(match metric {
                    Metric::Dot => |q, c| <$t as Dot>::dot(q.v, c),
                    Metric::Cosine => <$t as Cosine>::cosine,
                    Metric::L2 => |q, c| <$t as L2>::l2sq(q.v, c).sqrt(),
                    Metric::L2Sq => |q, c| <$t as L2>::l2sq(q.v, c),
                    Metric::Kl => |q, c| <$t as Kl>::kl(q.v, c),
                    Metric::Js => |q, c| <$t as Js>::js(q.v, c),
                    Metric::Hamming | Metric::Jaccard => return None,
                })
            }
            fn norm2(v: &[Self]) -> f64 {
                <$t as Dot>::dot(v, v)
            }
        }
    };
}
float_element!(f32, "float32");
float_element!(f64, "float64");
float_element!(f16, "float16");
float_element!(bf16, "bfloat16");

impl Element for i8 {
    const NAME: &'static str = "int8";
    fn scorer(metric: Metric) -> Option<Scorer<Self>> {
        Some(match metric {
            Metric::Dot => |q, c| <i8 as Dot>::dot(q.v, c),
            Metric::Cosine => <i8 as Cosine>::cosine,
            Metric::L2 => |q, c| <i8 as L2>::l2sq(q.v, c).sqrt(),
            Metric::L2Sq => |q, c| <i8 as L2>::l2sq(q.v, c),
            _ => return None,
        })
    }
    fn norm2(v: &[Self]) -> f64 {
        <i8 as Dot>::dot(v, v)
    }
}

/// Bit vectors packed 8 to a byte (the binary metrics only).
impl Element for u8 {
    const NAME: &'static str = "uint8";
    fn scorer(metric: Metric) -> Option<Scorer<Self>> {
        Some(match metric {
            Metric::Hamming => |q, c| <u8 as Hamming>::hamming(q.v, c),
            Metric::Jaccard => |q, c| <u8 as Jaccard>::jaccard(q.v, c),
            _ => return None,
        })
    }
    fn norm2(_: &[Self]) -> f64 {
        f64::NAN
    }
}

/// The same bits seen as numkong's half type.
pub(crate) fn nk_f16(v: &[f16]) -> &[numkong::f16] {
    // SAFETY: both types are `#[repr(transparent)]` wrappers of `u16` with the same bit
    // layout (IEEE binary16), so the slice has the same length, alignment and validity.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<numkong::f16>(), v.len()) }
}

/// The same bits seen as numkong's bfloat16 type.
pub(crate) fn nk_bf16(v: &[bf16]) -> &[numkong::bf16] {
    // SAFETY: both types are `#[repr(transparent)]` wrappers of `u16` with the same bit
    // layout (bfloat16), so the slice has the same length, alignment and validity.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<numkong::bf16>(), v.len()) }
}

/// The same bytes seen as numkong's packed-bit type.
pub(crate) fn nk_u1(v: &[u8]) -> &[numkong::u1x8] {
    // SAFETY: `u1x8` is a `#[repr(transparent)]` wrapper of `u8`, valid for every bit pattern.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<numkong::u1x8>(), v.len()) }
}

/// numkong's kernel tables are filled on first use; fill them once before threads race.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = numkong::available();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q<T: Element>(m: Metric, v: &[T]) -> Query<'_, T> {
        T::query(m, v)
    }

    #[test]
    fn support_tables_follow_the_spec() {
        for m in [Metric::Dot, Metric::Cosine, Metric::L2, Metric::L2Sq] {
            assert!(i8::scorer(m).is_some() && f32::scorer(m).is_some());
            assert!(u8::scorer(m).is_none());
        }
        for m in [Metric::Kl, Metric::Js] {
            assert!(i8::scorer(m).is_none() && f16::scorer(m).is_some());
        }
        assert!(u8::scorer(Metric::Hamming).is_some() && f64::scorer(Metric::Jaccard).is_none());
    }

    #[test]
    fn scores_match_direct_formulas() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..19).map(|i| (i * i) as f32 * 0.1).collect();
        let dot: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let l2: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        let s = |m| f32::scorer(m).unwrap()(&q(m, &a), &b);
        assert!((s(Metric::Dot) - dot).abs() < 1e-9);
        assert!((s(Metric::L2Sq) - l2).abs() < 1e-9);
        assert!((s(Metric::L2) - l2.sqrt()).abs() < 1e-9);
        let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
        let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum();
        assert!((s(Metric::Cosine) - dot / (na.sqrt() * nb.sqrt())).abs() < 1e-12);
        let h: Vec<f16> = a.iter().map(|&x| f16::from_f32(x)).collect();
        let hb: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
        let hs = f16::scorer(Metric::Dot).unwrap()(&q(Metric::Dot, &h), &hb);
        assert!((hs - dot).abs() < 1e-2 * dot.abs().max(1.0));
        let i: Vec<i8> = vec![1, -2, 3];
        let sc = i8::scorer(Metric::L2Sq).unwrap()(&q(Metric::L2Sq, &i), &[0, 0, 0]);
        assert_eq!(sc, 14.0);
    }
}
