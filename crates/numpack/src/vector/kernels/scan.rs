//! f32 row kernels for the filtering pass of a search: per candidate row, the f32 dot product
//! with the query and the row's squared norm, from one read of the row. The results are
//! approximate (f32 accumulation); `search::bounds` turns them into guaranteed intervals and
//! only rows whose interval can reach the top-k are rescored by the exact kernels.
//!
//! Hand-written AVX-512 because numkong's per-pair f32 kernels accumulate in f64 and stop at
//! about half of the memory bandwidth on one query (docs/vector.md has the measurements);
//! elsewhere a portable loop of 16 lanes that the compiler vectorises, compiled for AVX2+FMA
//! as well and chosen at run time.

/// Which row kernel runs on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// AVX-512F intrinsics with software prefetch.
    Avx512,
    /// The portable loop compiled for AVX2 + FMA.
    Avx2,
    /// The portable loop for the build target (NEON on aarch64, SSE2 on x86-64).
    Portable,
}

/// The row kernel in use (detected once).
pub fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Level::Avx2;
            }
        }
        Level::Portable
    })
}

/// For each row of `rows` (`dots.len()` rows of `q.len()` elements): `dots[i]` = q·rowᵢ and
/// `norms[i]` = ‖rowᵢ‖², both accumulated in f32.
pub fn dot_norm_rows(q: &[f32], rows: &[f32], dots: &mut [f32], norms: &mut [f32]) {
    let d = q.len();
    assert!(rows.len() == dots.len() * d && norms.len() == dots.len());
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` found AVX-512F on this CPU; the slice lengths were checked above.
        Level::Avx512 => unsafe { avx512::dot_norm_rows(q, rows, dots, norms) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` found AVX2 and FMA on this CPU.
        Level::Avx2 => unsafe { avx2_dot_norm_rows(q, rows, dots, norms) },
        _ => portable_dot_norm_rows(q, rows, dots, norms),
    }
}

/// `norms[i]` = ‖rowᵢ‖² in f32 for rows of `d` elements.
pub fn norm_rows(rows: &[f32], d: usize, norms: &mut [f32]) {
    assert!(rows.len() == norms.len() * d);
    if d == 0 {
        norms.fill(0.0);
        return;
    }
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` found AVX2 and FMA (AVX-512 CPUs have both).
        Level::Avx512 | Level::Avx2 => unsafe { avx2_norm_rows(rows, d, norms) },
        _ => portable_norm_rows(rows, d, norms),
    }
}

const LANES: usize = 16;

#[inline(always)]
fn lanes_dot_norm(q: &[f32], r: &[f32]) -> (f32, f32) {
    let mut dot = [0.0f32; LANES];
    let mut nrm = [0.0f32; LANES];
    let (qc, qt) = q.split_at(q.len() / LANES * LANES);
    let (rc, rt) = r.split_at(qc.len());
    for (x, y) in qc.chunks_exact(LANES).zip(rc.chunks_exact(LANES)) {
        for l in 0..LANES {
            dot[l] += x[l] * y[l];
            nrm[l] += y[l] * y[l];
        }
    }
    let (mut d, mut n) = (dot.iter().sum::<f32>(), nrm.iter().sum::<f32>());
    for (x, y) in qt.iter().zip(rt) {
        d += x * y;
        n += y * y;
    }
    (d, n)
}

#[inline(always)]
fn portable_dot_norm_rows(q: &[f32], rows: &[f32], dots: &mut [f32], norms: &mut [f32]) {
    if q.is_empty() {
        dots.fill(0.0);
        norms.fill(0.0);
        return;
    }
    for ((r, d), n) in rows.chunks_exact(q.len()).zip(dots).zip(norms) {
        (*d, *n) = lanes_dot_norm(q, r);
    }
}

#[inline(always)]
fn portable_norm_rows(rows: &[f32], d: usize, norms: &mut [f32]) {
    for (r, n) in rows.chunks_exact(d).zip(norms) {
        *n = lanes_dot_norm(r, r).1;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2_dot_norm_rows(q: &[f32], rows: &[f32], dots: &mut [f32], norms: &mut [f32]) {
    portable_dot_norm_rows(q, rows, dots, norms);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2_norm_rows(rows: &[f32], d: usize, norms: &mut [f32]) {
    portable_norm_rows(rows, d, norms);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_reduce_add_ps,
        _mm512_setzero_ps, _mm_prefetch, _MM_HINT_T0,
    };

    /// Rows scored together (independent accumulator chains).
    const GROUP: usize = 4;
    /// Prefetch distance in f32 elements: 2 KiB, the next group of 4 rows at d = 128 (the
    /// hardware prefetcher stops at 4 KiB pages). Measured on 1M x 128: 512 → 28 GB/s;
    /// 256, 768, 1024, 2048 → 22-26 GB/s.
    const AHEAD: usize = 512;

    /// Dot and norm of `G` consecutive rows starting at `base`.
    ///
    /// # Safety
    /// AVX-512F must be available and `base .. base + G * d` must be readable.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn group<const G: usize>(q: &[f32], base: *const f32, out: &mut [(f32, f32)]) {
        let d = q.len();
        let mut dot: [__m512; G] = [_mm512_setzero_ps(); G];
        let mut nrm: [__m512; G] = [_mm512_setzero_ps(); G];
        let mut j = 0;
        while j + 16 <= d {
            // SAFETY: j + 16 <= d, so the 16 query elements are in bounds.
            let qv = unsafe { _mm512_loadu_ps(q.as_ptr().add(j)) };
            for r in 0..G {
                // Prefetching never faults, so the address may lie past the buffer.
                _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(r * d + j + AHEAD).cast::<i8>());
                // SAFETY: row r's elements j..j+16 lie inside base .. base + G * d.
                let a = unsafe { _mm512_loadu_ps(base.add(r * d + j)) };
                dot[r] = _mm512_fmadd_ps(a, qv, dot[r]);
                nrm[r] = _mm512_fmadd_ps(a, a, nrm[r]);
            }
            j += 16;
        }
        if j < d {
            let mask = (1u16 << (d - j)) - 1;
            // SAFETY: the masked load reads only the d - j < 16 remaining elements.
            let qv = unsafe { _mm512_maskz_loadu_ps(mask, q.as_ptr().add(j)) };
            for r in 0..G {
                // SAFETY: as above, only the row's remaining elements are read.
                let a = unsafe { _mm512_maskz_loadu_ps(mask, base.add(r * d + j)) };
                dot[r] = _mm512_fmadd_ps(a, qv, dot[r]);
                nrm[r] = _mm512_fmadd_ps(a, a, nrm[r]);
            }
        }
        for r in 0..G {
            out[r] = (_mm512_reduce_add_ps(dot[r]), _mm512_reduce_add_ps(nrm[r]));
        }
    }

    /// # Safety
    /// AVX-512F must be available; `rows.len() == dots.len() * q.len() == norms.len() * q.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_norm_rows(q: &[f32], rows: &[f32], dots: &mut [f32], norms: &mut [f32]) {
        let d = q.len();
        let n = dots.len();
        if d == 0 {
            dots.fill(0.0);
            norms.fill(0.0);
            return;
        }
        let mut out = [(0.0f32, 0.0f32); GROUP];
        let mut i = 0;
        while i + GROUP <= n {
            // SAFETY: rows i..i+GROUP exist (rows.len() == n * d).
            unsafe { group::<GROUP>(q, rows.as_ptr().add(i * d), &mut out) };
            for (r, &(dt, nm)) in out.iter().enumerate() {
                dots[i + r] = dt;
                norms[i + r] = nm;
            }
            i += GROUP;
        }
        while i < n {
            // SAFETY: row i exists.
            unsafe { group::<1>(q, rows.as_ptr().add(i * d), &mut out) };
            (dots[i], norms[i]) = out[0];
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_agrees_with_f64() {
        for d in [0usize, 1, 5, 16, 17, 33, 128] {
            let n = 11;
            let rows: Vec<f32> = (0..n * d).map(|i| ((i * 37) % 23) as f32 - 11.0).collect();
            let q: Vec<f32> = (0..d).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
            let (mut dots, mut norms) = (vec![0.0; n], vec![0.0; n]);
            dot_norm_rows(&q, &rows, &mut dots, &mut norms);
            let (mut pd, mut pn) = (vec![0.0; n], vec![0.0; n]);
            portable_dot_norm_rows(&q, &rows, &mut pd, &mut pn);
            let mut nn = vec![0.0; n];
            norm_rows(&rows, d, &mut nn);
            for i in 0..n {
                let r = &rows[i * d..(i + 1) * d];
                let wd: f64 = q.iter().zip(r).map(|(a, b)| f64::from(a * b)).sum();
                let wn: f64 = r.iter().map(|b| f64::from(b * b)).sum();
                for (got, want) in [(dots[i], wd), (pd[i], wd), (norms[i], wn), (pn[i], wn)] {
                    assert!((f64::from(got) - want).abs() <= 1e-3 * want.abs().max(1.0));
                }
                assert!((f64::from(nn[i]) - wn).abs() <= 1e-3 * wn.max(1.0));
            }
        }
    }
}
