//! The vector engine against a float64 reference computed here, for every metric and element
//! type, in memory and streamed from a store.

mod common;

use half::f16;
use ndarray::{Array2, ArrayD};
use numpack::prelude::*;
use numpack::store::Store;
use numpack::vector::stream::{stream_scores, stream_top_k, Queries};
use numpack::vector::{scores, top_k, Metric, Vectors};

const ALL: [Metric; 8] = [
    Metric::Dot,
    Metric::Cosine,
    Metric::L2,
    Metric::L2Sq,
    Metric::Hamming,
    Metric::Jaccard,
    Metric::Kl,
    Metric::Js,
];

fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = common::Rng(seed);
    (0..n)
        .map(|_| rng.below(1 << 24) as f64 / f64::from(1 << 24))
        .collect()
}

fn normal(n: usize, seed: u64) -> Vec<f32> {
    // Sum of uniforms: close enough to Gaussian, with many distinct scores.
    let u = uniform(4 * n, seed);
    u.chunks(4)
        .map(|c| (c.iter().sum::<f64>() - 2.0) as f32)
        .collect()
}

/// The float64 definition of every metric (ε as the kernels use it).
fn reference(m: Metric, a: &[f64], b: &[f64], eps: f64) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum();
    let nb: f64 = b.iter().map(|x| x * x).sum();
    let l2: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let kl = |p: &[f64], q: &[f64]| -> f64 {
        p.iter()
            .zip(q)
            .map(|(x, y)| x * ((x + eps) / (y + eps)).ln())
            .sum()
    };
    match m {
        Metric::Dot => dot,
        Metric::Cosine if na == 0.0 && nb == 0.0 => 1.0,
        Metric::Cosine if na == 0.0 || nb == 0.0 => 0.0,
        Metric::Cosine => dot / (na.sqrt() * nb.sqrt()),
        Metric::L2 => l2.sqrt(),
        Metric::L2Sq => l2,
        Metric::Kl => kl(a, b),
        Metric::Js => {
            let mid: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x + y) / 2.0).collect();
            ((kl(a, &mid) + kl(b, &mid)) / 2.0).max(0.0).sqrt()
        }
        Metric::Hamming | Metric::Jaccard => unreachable!(),
    }
}

/// Indices of the `k` best reference scores, ties by lower index.
fn ranked(s: &[f64], k: usize, sim: bool) -> Vec<u64> {
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by(|&a, &b| {
        let o = if sim {
            s[b].total_cmp(&s[a])
        } else {
            s[a].total_cmp(&s[b])
        };
        o.then(a.cmp(&b))
    });
    order[..k.min(s.len())].iter().map(|&i| i as u64).collect()
}

/// Checks `scores` and `top_k` of one element type against the reference.
#[allow(clippy::too_many_arguments)]
fn check<'a>(
    m: Metric,
    q: Vectors<'a>,
    c: Vectors<'a>,
    q64: &[f64],
    c64: &[f64],
    d: usize,
    eps: f64,
    tol: f64,
    exact_order: bool,
) {
    let (nq, n) = (q64.len() / d, c64.len() / d);
    let got = scores(m, q, c, d).unwrap();
    let mut want = Vec::new();
    for qi in 0..nq {
        for r in c64.chunks(d) {
            want.push(reference(m, &q64[qi * d..(qi + 1) * d], r, eps));
        }
    }
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{m:?}: {g} vs {w}");
    }
    let k = 7;
    let best = top_k(m, q, c, d, k, 0).unwrap();
    assert_eq!(best.len(), nq);
    for (qi, (idx, sc)) in best.iter().enumerate() {
        let row = &want[qi * n..(qi + 1) * n];
        let own = &got[qi * n..(qi + 1) * n];
        // In exact mode the reference order; otherwise the order of the engine's own scores.
        let order = if exact_order { row } else { own };
        assert_eq!(
            idx,
            &ranked(order, k, m.is_similarity()),
            "{m:?} query {qi}"
        );
        for (&i, &s) in idx.iter().zip(sc) {
            assert!((s - own[i as usize]).abs() <= 1e-12 * s.abs().max(1.0));
        }
    }
}

#[test]
fn every_metric_and_dtype_matches_a_float64_reference() {
    let (n, d, nq) = (3000, 24, 3);
    let cu = uniform(n * d, 1);
    let qu = uniform(nq * d, 2);
    for m in [
        Metric::Dot,
        Metric::Cosine,
        Metric::L2,
        Metric::L2Sq,
        Metric::Kl,
        Metric::Js,
    ] {
        let c32: Vec<f32> = cu.iter().map(|&x| x as f32).collect();
        let q32: Vec<f32> = qu.iter().map(|&x| x as f32).collect();
        let w = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        let probability = matches!(m, Metric::Kl | Metric::Js);
        // KL/JS use numkong's logarithm (relative error about 1e-7).
        let tol = if probability { 1e-5 } else { 1e-12 };
        let (c64, q64) = (w(&c32), w(&q32));
        check(
            m,
            Vectors::F32(&q32),
            Vectors::F32(&c32),
            &q64,
            &c64,
            d,
            1e-7,
            tol,
            !probability,
        );
        check(
            m,
            Vectors::F64(&qu),
            Vectors::F64(&cu),
            &qu,
            &cu,
            d,
            1e-15,
            tol,
            !probability,
        );
        let c16: Vec<f16> = cu.iter().map(|&x| f16::from_f64(x)).collect();
        let q16: Vec<f16> = qu.iter().map(|&x| f16::from_f64(x)).collect();
        let h = |v: &[f16]| v.iter().map(|x| x.to_f64()).collect::<Vec<_>>();
        // float16 accumulates in f32.
        check(
            m,
            Vectors::F16(&q16),
            Vectors::F16(&c16),
            &h(&q16),
            &h(&c16),
            d,
            1e-7,
            1e-4,
            false,
        );
        let ci: Vec<i8> = cu.iter().map(|&x| (x * 255.0 - 128.0) as i8).collect();
        let qi: Vec<i8> = qu.iter().map(|&x| (x * 255.0 - 128.0) as i8).collect();
        let iw = |v: &[i8]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        if probability {
            assert!(scores(m, Vectors::I8(&qi), Vectors::I8(&ci), d).is_err());
        } else {
            check(
                m,
                Vectors::I8(&qi),
                Vectors::I8(&ci),
                &iw(&qi),
                &iw(&ci),
                d,
                0.0,
                1e-12,
                true,
            );
        }
        assert!(scores(m, Vectors::Bits(&[1]), Vectors::Bits(&[1]), 1).is_err());
    }
}

#[test]
fn binary_metrics_count_bits() {
    let (n, d) = (500, 5);
    let mut rng = common::Rng(9);
    let c: Vec<u8> = (0..n * d).map(|_| rng.below(256) as u8).collect();
    let q: Vec<u8> = (0..d).map(|_| rng.below(256) as u8).collect();
    for m in [Metric::Hamming, Metric::Jaccard] {
        let s = scores(m, Vectors::Bits(&q), Vectors::Bits(&c), d).unwrap();
        for (r, &got) in c.chunks(d).zip(&s) {
            let diff: u32 = q.iter().zip(r).map(|(a, b)| (a ^ b).count_ones()).sum();
            let and: u32 = q.iter().zip(r).map(|(a, b)| (a & b).count_ones()).sum();
            let or: u32 = q.iter().zip(r).map(|(a, b)| (a | b).count_ones()).sum();
            let want = if m == Metric::Hamming {
                f64::from(diff)
            } else if or == 0 {
                1.0
            } else {
                1.0 - f64::from(and) / f64::from(or)
            };
            assert_eq!(got, want);
        }
        let best = top_k(m, Vectors::Bits(&q), Vectors::Bits(&c), d, 9, 0).unwrap();
        assert_eq!(best[0].0, ranked(&s, 9, false));
        assert!(scores(m, Vectors::F32(&[1.0]), Vectors::F32(&[1.0]), 1).is_err());
    }
    let zero = scores(Metric::Jaccard, Vectors::Bits(&[0]), Vectors::Bits(&[0]), 1).unwrap();
    assert_eq!(zero, vec![1.0]);
}

#[test]
fn float32_filtered_search_is_exact() {
    // The f32 filtering pass (one query: row scan; several: matrix product) must return the
    // float64 top k exactly, also for rows it cannot bound (zero, huge, NaN).
    for (n, d) in [(70_000, 128), (9_000, 7), (300, 33)] {
        let mut c = normal(n * d, 3);
        for r in (0..n).step_by(97) {
            c[r * d..(r + 1) * d].fill(0.0);
        }
        c[5 * d] = f32::NAN;
        c[8 * d] = 1e30;
        let q = normal(5 * d, 4);
        let c64: Vec<f64> = c.iter().map(|&x| f64::from(x)).collect();
        for m in [Metric::Dot, Metric::Cosine, Metric::L2, Metric::L2Sq] {
            for k in [1, 10, 100] {
                let many = top_k(m, Vectors::F32(&q), Vectors::F32(&c), d, k, 7).unwrap();
                let one = top_k(m, Vectors::F32(&q[..d]), Vectors::F32(&c), d, k, 7).unwrap();
                assert_eq!(one[0], many[0]);
                for (qi, (idx, sc)) in many.iter().enumerate() {
                    let qv: Vec<f64> = q[qi * d..(qi + 1) * d]
                        .iter()
                        .map(|&x| f64::from(x))
                        .collect();
                    let s: Vec<f64> = c64
                        .chunks(d)
                        .map(|r| {
                            let v = reference(m, &qv, r, 0.0);
                            if v.is_nan() && m.is_similarity() {
                                f64::NEG_INFINITY
                            } else if v.is_nan() {
                                f64::INFINITY
                            } else {
                                v
                            }
                        })
                        .collect();
                    let want: Vec<u64> = ranked(&s, k, m.is_similarity())
                        .iter()
                        .map(|i| i + 7)
                        .collect();
                    assert_eq!(idx, &want, "{m:?} n={n} d={d} k={k} q={qi}");
                    for (&i, &v) in idx.iter().zip(sc) {
                        let w = s[(i - 7) as usize];
                        assert!((v - w).abs() <= 1e-9 * w.abs().max(1.0), "{m:?} {v} {w}");
                    }
                }
            }
        }
    }
}

#[test]
fn ties_nan_and_k_edges() {
    let d = 4;
    let ones = vec![1.0f32; 5000 * d];
    let q = vec![1.0f32; d];
    for m in [Metric::Dot, Metric::Cosine, Metric::L2, Metric::Kl] {
        // Equal scores: lowest indices first.
        let best = top_k(m, Vectors::F32(&q), Vectors::F32(&ones), d, 3, 0).unwrap();
        assert_eq!(best[0].0, vec![0, 1, 2], "{m:?}");
        let best = top_k(
            m,
            Vectors::F64(&[1.0; 4]),
            Vectors::F64(&[1.0; 400]),
            d,
            2,
            0,
        )
        .unwrap();
        assert_eq!(best[0].0, vec![0, 1]);
    }
    // NaN ranks last, for similarities and distances.
    let c = [f32::NAN, 0.0, 1.0, 2.0];
    for m in [Metric::Dot, Metric::L2] {
        let best = top_k(m, Vectors::F32(&[1.0]), Vectors::F32(&c), 1, 4, 0).unwrap();
        assert_eq!(*best[0].0.last().unwrap(), 0, "{m:?}");
        assert!(best[0].1[3].is_nan());
    }
    let c = normal(50 * d, 5);
    // k = 0, zero candidates, k > n.
    for m in ALL {
        if m.is_binary() {
            continue;
        }
        let two = Vectors::F32(&q[..]);
        assert!(top_k(m, two, Vectors::F32(&c), d, 0, 0).unwrap()[0]
            .0
            .is_empty());
        assert!(top_k(m, two, Vectors::F32(&[]), d, 5, 0).unwrap()[0]
            .0
            .is_empty());
        let all = top_k(m, two, Vectors::F32(&c), d, 1000, 0).unwrap();
        let mut idx = all[0].0.clone();
        idx.sort_unstable();
        assert_eq!(idx, (0..50).collect::<Vec<u64>>(), "{m:?}");
    }
    assert!(scores(Metric::Dot, Vectors::F64(&[1.0]), Vectors::F32(&[1.0]), 1).is_err());
    assert!("manhattan".parse::<Metric>().is_err());
    assert_eq!("COS".parse::<Metric>().unwrap(), Metric::Cosine);
    assert_eq!("inner_product".parse::<Metric>().unwrap(), Metric::Dot);
    assert_eq!("squared_euclidean".parse::<Metric>().unwrap(), Metric::L2Sq);
}

#[test]
fn streamed_search_skips_deleted_rows() {
    let (_d, p) = common::store();
    let (n, d) = (20_000, 8);
    let flat = normal(n * d, 6);
    let io = ParallelIO::new(&p).unwrap();
    let a: ArrayD<f32> = Array2::from_shape_vec((n, d), flat.clone())
        .unwrap()
        .into_dyn();
    let a64: ArrayD<f64> = a.mapv(f64::from);
    io.save_arrays(&[("emb".to_string(), a, DataType::Float32)])
        .unwrap();
    io.save_arrays(&[("e64".to_string(), a64, DataType::Float64)])
        .unwrap();
    let dropped: Vec<i64> = (0..n as i64).step_by(3).collect();
    io.drop_arrays("emb", Some(&dropped)).unwrap();
    let logical: Vec<f32> = flat
        .chunks(d)
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .flat_map(|(_, r)| r.to_vec())
        .collect();
    let store = Store::open(&p).unwrap();
    let q = logical[50 * d..53 * d].to_vec();
    let f32q = |v: &[f32]| {
        Queries::new(
            DataType::Float32,
            bytemuck::cast_slice(v).to_vec(),
            v.len() / d,
            d,
        )
        .unwrap()
    };
    for m in [Metric::L2, Metric::Cosine, Metric::Dot, Metric::Kl] {
        for (k, batch) in [(4, 111), (10, 5000), (20_000, 777)] {
            let best = stream_top_k(&store, "emb", m, &f32q(&q), k, batch).unwrap();
            let want = top_k(m, Vectors::F32(&q), Vectors::F32(&logical), d, k, 0).unwrap();
            assert_eq!(best, want, "{m:?} k={k} batch={batch}");
        }
    }
    let best = stream_top_k(&store, "emb", Metric::L2, &f32q(&q), 1, 100).unwrap();
    assert_eq!(best[0].0, vec![50]);
    let q64: Vec<f64> = q.iter().map(|&x| f64::from(x)).collect();
    let f64q = Queries::new(DataType::Float64, bytemuck::cast_slice(&q64).to_vec(), 3, d).unwrap();
    let full: Vec<f64> = flat.iter().map(|&x| f64::from(x)).collect();
    let b64 = stream_top_k(&store, "e64", Metric::Dot, &f64q, 5, 999).unwrap();
    let want = top_k(
        Metric::Dot,
        Vectors::F64(&q64),
        Vectors::F64(&full),
        d,
        5,
        0,
    )
    .unwrap();
    assert_eq!(b64, want);
    let s = stream_scores(&store, "emb", Metric::Dot, &f32q(&q), 77).unwrap();
    let w = scores(Metric::Dot, Vectors::F32(&q), Vectors::F32(&logical), d).unwrap();
    assert_eq!(s, w);
    // A float64 query against the float32 array is promoted (both in float64), as in memory.
    let logical64: Vec<f64> = logical.iter().map(|&x| f64::from(x)).collect();
    let mixed = stream_top_k(&store, "emb", Metric::L2, &f64q, 4, 10).unwrap();
    let want = top_k(
        Metric::L2,
        Vectors::F64(&q64),
        Vectors::F64(&logical64),
        d,
        4,
        0,
    )
    .unwrap();
    assert_eq!(mixed, want);
    let bits = Queries::new(DataType::Bool, vec![1; d], 1, d).unwrap();
    assert!(matches!(
        stream_top_k(&store, "emb", Metric::Hamming, &bits, 4, 10),
        Err(NpkError::DtypeMismatch(_))
    ));
    let short = Queries::new(DataType::Float32, vec![0; 12], 1, 3).unwrap();
    assert!(matches!(
        stream_top_k(&store, "emb", Metric::L2, &short, 4, 10),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        stream_top_k(&store, "missing", Metric::L2, &f32q(&q), 4, 10),
        Err(NpkError::ArrayNotFound(_))
    ));
}

/// Streamed search of every dtype: the promoted in-memory answer over the logical rows, from
/// the store and from a snapshot pinned before a replace.
#[test]
fn streamed_search_of_every_dtype_matches_memory() {
    use numpack::vector::promote::Rows;
    use numpack::vector::stream::{snapshot_scores, snapshot_top_k};
    use numpack::vector::{scores_of, top_k_of};
    let (_d, p) = common::store();
    let store = std::sync::Arc::new(Store::open(&p).unwrap());
    let (n, d) = (300usize, 6usize);
    let vals = normal(n * d, 5);
    let cases: Vec<(DataType, Vec<u8>)> = vec![
        (
            DataType::Int32,
            vals.iter()
                .flat_map(|&x| ((x * 9.0) as i32).to_le_bytes())
                .collect(),
        ),
        (
            DataType::Int8,
            vals.iter().map(|&x| (x * 20.0) as i8 as u8).collect(),
        ),
        (
            DataType::Float16,
            vals.iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
        ),
        (
            DataType::Uint16,
            vals.iter()
                .flat_map(|&x| ((x.abs() * 50.0) as u16).to_le_bytes())
                .collect(),
        ),
        (
            DataType::Bool,
            vals.iter().map(|&x| u8::from(x > 0.0)).collect(),
        ),
    ];
    for (dt, bytes) in &cases {
        let name = format!("a{}", dt.code());
        store
            .save(&[numpack::SaveItem {
                name: &name,
                dtype: *dt,
                shape: &[n as u64, d as u64],
                data: bytes,
            }])
            .unwrap();
        store.drop_rows(&name, &[0, 7, 299]).unwrap();
    }
    let snap = store.snapshot().unwrap();
    for (dt, bytes) in &cases {
        let name = format!("a{}", dt.code());
        let es = dt.size_bytes() * d;
        let logical: Vec<u8> = bytes
            .chunks(es)
            .enumerate()
            .filter(|(i, _)| ![0, 7, 299].contains(i))
            .flat_map(|(_, r)| r.to_vec())
            .collect();
        let rows = n - 3;
        let qb = logical[10 * es..12 * es].to_vec();
        let metrics: &[Metric] = if *dt == DataType::Bool {
            &[Metric::Hamming, Metric::Jaccard]
        } else {
            &[Metric::Dot, Metric::L2, Metric::Cosine]
        };
        for &m in metrics {
            let q = Queries::new(*dt, qb.clone(), 2, d).unwrap();
            let qr = Rows::new(*dt, &qb, 2, d).unwrap();
            let cr = Rows::new(*dt, &logical, rows, d).unwrap();
            let want = top_k_of(m, &qr, &cr, 7).unwrap();
            assert_eq!(
                stream_top_k(&store, &name, m, &q, 7, 50).unwrap(),
                want,
                "{dt} {m:?}"
            );
            assert_eq!(
                snapshot_top_k(&snap, &name, m, &q, 7, 50).unwrap(),
                want,
                "{dt} {m:?}"
            );
            let ws = scores_of(m, &qr, &cr).unwrap();
            assert_eq!(
                snapshot_scores(&snap, &name, m, &q, 64).unwrap(),
                ws,
                "{dt} {m:?}"
            );
        }
    }
    // The snapshot keeps its version's rows after a replace (patched rows are read, not mapped).
    let name = format!("a{}", DataType::Int32.code());
    let q = Queries::new(DataType::Int32, vec![0; 4 * d], 1, d).unwrap();
    let before = snapshot_scores(&snap, &name, Metric::L2, &q, 1000).unwrap();
    let big: Vec<u8> = (0..d).flat_map(|_| 1000i32.to_le_bytes()).collect();
    store
        .replace(&name, DataType::Int32, &[1, d as u64], &big, &[5])
        .unwrap();
    assert_eq!(
        snapshot_scores(&snap, &name, Metric::L2, &q, 1000).unwrap(),
        before
    );
    let now = stream_scores(&store, &name, Metric::L2, &q, 1000).unwrap();
    assert_ne!(now, before);
    // Without deleted rows, 60 replaced rows: batches of 7 walk their range (testing the
    // marks), batches of 1000 the patched rows; the version reads the same either way.
    let rows: Vec<u8> = (0..300 * d as i32).flat_map(|v| v.to_le_bytes()).collect();
    store
        .save(&[numpack::SaveItem {
            name: "p",
            dtype: DataType::Int32,
            shape: &[300, d as u64],
            data: &rows,
        }])
        .unwrap();
    let snap = store.snapshot().unwrap();
    let before = snapshot_scores(&snap, "p", Metric::L2, &q, 1000).unwrap();
    let big: Vec<u8> = (0..60 * d).flat_map(|_| 1000i32.to_le_bytes()).collect();
    let at: Vec<i64> = (0..60).map(|i| i * 3).collect();
    store
        .replace("p", DataType::Int32, &[60, d as u64], &big, &at)
        .unwrap();
    assert_eq!(
        snapshot_scores(&snap, "p", Metric::L2, &q, 1000).unwrap(),
        before
    );
    assert_eq!(
        snapshot_scores(&snap, "p", Metric::L2, &q, 7).unwrap(),
        before
    );
    assert_ne!(
        stream_scores(&store, "p", Metric::L2, &q, 7).unwrap(),
        before
    );
}

/// Throughput of the float32 paths on 1M x 128 (run with
/// `cargo test --release -p numpack --test vector -- --ignored --nocapture`).
#[test]
#[ignore = "benchmark"]
fn throughput() {
    use numpack::vector::kernels::scan::dot_norm_rows;
    use rayon::prelude::*;
    use std::time::Instant;
    let (n, d) = (1_000_000, 128);
    let c = normal(n * d, 11);
    let q = normal(100 * d, 12);
    let time = |name: &str, f: &dyn Fn()| {
        f();
        let mut t: Vec<f64> = (0..9)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        let gbs = (n * d * 4) as f64 / t[4] / 1e9;
        println!("{name:40} {:8.2} ms  {gbs:5.1} GB/s", t[4] * 1e3);
    };
    time("read pass (sum, 2 threads)", &|| {
        let s: f32 = c.par_chunks(1 << 16).map(|x| x.iter().sum::<f32>()).sum();
        std::hint::black_box(s);
    });
    time("scan kernel only", &|| {
        c.par_chunks(64 * d * 256).for_each(|x| {
            let (mut dt, mut nm) = ([0f32; 64], [0f32; 64]);
            for r in x.chunks(64 * d) {
                let len = r.len() / d;
                dot_norm_rows(&q[..d], r, &mut dt[..len], &mut nm[..len]);
            }
            std::hint::black_box(dt);
        });
    });
    for m in [Metric::Cosine, Metric::Dot, Metric::L2Sq] {
        time(&format!("top_k {m:?}, 1 query"), &|| {
            std::hint::black_box(
                top_k(m, Vectors::F32(&q[..d]), Vectors::F32(&c), d, 10, 0).unwrap(),
            );
        });
    }
    time("top_k Cosine, 100 queries", &|| {
        std::hint::black_box(
            top_k(Metric::Cosine, Vectors::F32(&q), Vectors::F32(&c), d, 10, 0).unwrap(),
        );
    });
}
