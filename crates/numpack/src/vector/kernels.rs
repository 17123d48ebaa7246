//! Scalar-defined kernels written so the compiler vectorises them (8 independent lanes).
//! Float kernels accumulate in the element type per lane and sum the lanes in f64.

use super::metric::Metric;

/// Float element types the kernels accept.
pub trait Float: Copy + Send + Sync + 'static {
    /// Widening conversion.
    fn f64(self) -> f64;
    /// Zero.
    const ZERO: Self;
    /// `a * b + acc` in the element type.
    fn mul_add(a: Self, b: Self, acc: Self) -> Self;
    /// `a - b`.
    fn sub(a: Self, b: Self) -> Self;
    /// Σ aᵢbᵢ (overridden where a faster kernel exists).
    fn dot(a: &[Self], b: &[Self]) -> f64 {
        dot_lanes(a, b)
    }
    /// Σ(aᵢ−bᵢ)².
    fn l2sq(a: &[Self], b: &[Self]) -> f64 {
        l2sq_lanes(a, b)
    }
    /// (Σ aᵢbᵢ, Σ bᵢ²).
    fn dot_and_norm(a: &[Self], b: &[Self]) -> (f64, f64) {
        dot_and_norm_lanes(a, b)
    }
}

macro_rules! float {
    ($t:ty $(, $fast:item)*) => {
        impl Float for $t {
            $($fast)*
            fn f64(self) -> f64 {
                self as f64
            }
            const ZERO: Self = 0.0;
            #[inline(always)]
            fn mul_add(a: Self, b: Self, acc: Self) -> Self {
                a * b + acc
            }
            #[inline(always)]
            fn sub(a: Self, b: Self) -> Self {
                a - b
            }
        }
    };
}
float!(
    f32,
    fn dot(a: &[f32], b: &[f32]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
            return unsafe { avx2::dot(a, b) };
        }
        dot_lanes(a, b)
    },
    fn l2sq(a: &[f32], b: &[f32]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
            return unsafe { avx2::l2sq(a, b) };
        }
        l2sq_lanes(a, b)
    },
    fn dot_and_norm(a: &[f32], b: &[f32]) -> (f64, f64) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU supports AVX2 and FMA (checked at run time).
            return unsafe { avx2::dot_and_norm(a, b) };
        }
        dot_and_norm_lanes(a, b)
    }
);
float!(f64);

const LANES: usize = 8;

/// Σ f(aᵢ, bᵢ) with 8 lanes.
#[inline(always)]
fn reduce<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T, T) -> T) -> f64 {
    let mut acc = [T::ZERO; LANES];
    let (ca, ra) = a.split_at(a.len() / LANES * LANES);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(LANES).zip(cb.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = f(x[l], y[l], acc[l]);
        }
    }
    let mut total: f64 = acc.iter().map(|v| v.f64()).sum();
    for (&x, &y) in ra.iter().zip(rb) {
        total += f(x, y, T::ZERO).f64();
    }
    total
}

/// (Σ aᵢbᵢ, Σ bᵢ²) in one pass over `b` (cosine against a query whose norm is known).
pub fn dot_and_norm<T: Float>(a: &[T], b: &[T]) -> (f64, f64) {
    T::dot_and_norm(a, b)
}

#[inline(always)]
fn dot_and_norm_lanes<T: Float>(a: &[T], b: &[T]) -> (f64, f64) {
    let mut d = [T::ZERO; LANES];
    let mut n = [T::ZERO; LANES];
    let (ca, ra) = a.split_at(a.len() / LANES * LANES);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(LANES).zip(cb.chunks_exact(LANES)) {
        for l in 0..LANES {
            d[l] = T::mul_add(x[l], y[l], d[l]);
            n[l] = T::mul_add(y[l], y[l], n[l]);
        }
    }
    let mut dot: f64 = d.iter().map(|v| v.f64()).sum();
    let mut norm: f64 = n.iter().map(|v| v.f64()).sum();
    for (&x, &y) in ra.iter().zip(rb) {
        dot += T::mul_add(x, y, T::ZERO).f64();
        norm += T::mul_add(y, y, T::ZERO).f64();
    }
    (dot, norm)
}

/// Σ aᵢbᵢ.
pub fn dot<T: Float>(a: &[T], b: &[T]) -> f64 {
    T::dot(a, b)
}

/// Σ(aᵢ−bᵢ)².
pub fn l2sq<T: Float>(a: &[T], b: &[T]) -> f64 {
    T::l2sq(a, b)
}

#[inline(always)]
fn dot_lanes<T: Float>(a: &[T], b: &[T]) -> f64 {
    reduce(a, b, T::mul_add)
}

#[inline(always)]
fn l2sq_lanes<T: Float>(a: &[T], b: &[T]) -> f64 {
    reduce(a, b, |x, y, acc| {
        let d = T::sub(x, y);
        T::mul_add(d, d, acc)
    })
}

/// The lane kernels compiled for AVX2 + FMA, chosen at run time (the default x86-64 target
/// only has SSE2).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2,fma")]
    pub fn dot(a: &[f32], b: &[f32]) -> f64 {
        super::dot_lanes(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub fn l2sq(a: &[f32], b: &[f32]) -> f64 {
        super::l2sq_lanes(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub fn dot_and_norm(a: &[f32], b: &[f32]) -> (f64, f64) {
        super::dot_and_norm_lanes(a, b)
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Cosine from a dot product and two squared norms.
pub fn cosine_from(dot: f64, na: f64, nb: f64) -> f64 {
    match (na == 0.0, nb == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => dot / (na.sqrt() * nb.sqrt()),
    }
}

const EPS: f64 = 1e-7;

/// Σ aᵢ ln((aᵢ+ε)/(bᵢ+ε)).
pub fn kl<T: Float>(a: &[T], b: &[T]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let (x, y) = (x.f64(), y.f64());
            x * ((x + EPS) / (y + EPS)).ln()
        })
        .sum()
}

/// √(½KL(a‖m) + ½KL(b‖m)), m = (a+b)/2.
pub fn js<T: Float>(a: &[T], b: &[T]) -> f64 {
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let (x, y) = (x.f64(), y.f64());
            let m = 0.5 * (x + y);
            0.5 * x * ((x + EPS) / (m + EPS)).ln() + 0.5 * y * ((y + EPS) / (m + EPS)).ln()
        })
        .sum();
    d.max(0.0).sqrt()
}

/// Any float metric between two vectors.
pub fn float_metric<T: Float>(m: Metric, a: &[T], b: &[T]) -> f64 {
    match m {
        Metric::Dot => dot(a, b),
        Metric::Cosine => {
            let (d, nb) = dot_and_norm(a, b);
            cosine_from(d, dot(a, a), nb)
        }
        Metric::L2 => l2sq(a, b).sqrt(),
        Metric::L2Sq => l2sq(a, b),
        Metric::Kl => kl(a, b),
        Metric::Js => js(a, b),
        Metric::Hamming | Metric::Jaccard => f64::NAN,
    }
}

/// Hamming or Jaccard over the bits of two byte vectors.
pub fn bit_metric(m: Metric, a: &[u8], b: &[u8]) -> f64 {
    let (mut diff, mut and, mut or) = (0u64, 0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        diff += u64::from((x ^ y).count_ones());
        and += u64::from((x & y).count_ones());
        or += u64::from((x | y).count_ones());
    }
    match m {
        Metric::Hamming => diff as f64,
        Metric::Jaccard if or == 0 => 1.0,
        Metric::Jaccard => 1.0 - and as f64 / or as f64,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_direct_formulas() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..19).map(|i| (i * i) as f32 * 0.1).collect();
        let d: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
        assert!((dot(&a, &b) - d).abs() < 1e-3);
        let l: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from((x - y) * (x - y)))
            .sum();
        assert!((l2sq(&a, &b) - l).abs() < 1e-3);
        assert_eq!(cosine_from(0.0, 0.0, 0.0), 1.0);
        assert_eq!(cosine_from(0.0, 0.0, 2.0), 0.0);
        assert_eq!(bit_metric(Metric::Hamming, &[0b1010], &[0b0110]), 2.0);
        assert_eq!(
            bit_metric(Metric::Jaccard, &[0b1010], &[0b0110]),
            1.0 - 1.0 / 3.0
        );
        assert_eq!(bit_metric(Metric::Jaccard, &[0], &[0]), 1.0);
        assert!(js(&[0.5f64, 0.5], &[0.5, 0.5]).abs() < 1e-9);
        assert!(kl(&[0.2f64, 0.8], &[0.5, 0.5]) > 0.0);
    }
}
