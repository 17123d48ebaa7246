//! The vector engine against direct computations, in memory and streamed from a store.

mod common;

use ndarray::{Array2, ArrayD};
use numpack::prelude::*;
use numpack::store::Store;
use numpack::vector::stream::{stream_scores, stream_top_k, Queries};
use numpack::vector::{scores, top_k, Metric, Vectors};

fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = common::Rng(seed);
    (0..n * d)
        .map(|_| (rng.below(2000) as f32 - 1000.0) / 100.0)
        .collect()
}

#[test]
fn metric_names_and_aliases() {
    for (s, m) in [
        ("inner_product", Metric::Dot),
        ("COS", Metric::Cosine),
        ("euclidean", Metric::L2),
        ("squared_euclidean", Metric::L2Sq),
        ("kl_divergence", Metric::Kl),
        ("js_divergence", Metric::Js),
        ("hamming", Metric::Hamming),
    ] {
        assert_eq!(s.parse::<Metric>().unwrap(), m);
    }
    assert!("manhattan".parse::<Metric>().is_err());
    assert!(Metric::Cosine.is_similarity() && !Metric::L2.is_similarity());
}

#[test]
fn scores_and_top_k_match_a_direct_computation() {
    let (n, d) = (3000, 24);
    let c = data(n, d, 1);
    let q = data(2, d, 2);
    let s = scores(Metric::L2Sq, Vectors::F32(&q), Vectors::F32(&c), d).unwrap();
    assert_eq!(s.len(), 2 * n);
    for (i, row) in c.chunks(d).enumerate().step_by(97) {
        let want: f64 = q[..d]
            .iter()
            .zip(row)
            .map(|(a, b)| f64::from((a - b) * (a - b)))
            .sum();
        assert!((s[i] - want).abs() < 1e-3 * want.max(1.0), "row {i}");
    }
    let best = top_k(Metric::L2Sq, Vectors::F32(&q), Vectors::F32(&c), d, 5, 0).unwrap();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| s[a].total_cmp(&s[b]).then(a.cmp(&b)));
    assert_eq!(
        best[0].0,
        order[..5].iter().map(|&i| i as u64).collect::<Vec<_>>()
    );
    assert_eq!(
        top_k(Metric::Dot, Vectors::F32(&q), Vectors::F32(&c), d, 0, 0).unwrap()[0]
            .0
            .len(),
        0
    );
    let all = top_k(
        Metric::Dot,
        Vectors::F32(&q),
        Vectors::F32(&c[..3 * d]),
        d,
        10,
        0,
    )
    .unwrap();
    assert_eq!(all[0].0.len(), 3);
    assert!(scores(Metric::Hamming, Vectors::F32(&q), Vectors::F32(&c), d).is_err());
    assert!(scores(Metric::Dot, Vectors::F64(&[1.0]), Vectors::F32(&[1.0]), 1).is_err());
}

#[test]
fn streamed_search_skips_deleted_rows() {
    let (_d, p) = common::store();
    let (n, d) = (2000, 8);
    let flat = data(n, d, 3);
    let io = ParallelIO::new(&p).unwrap();
    let a: ArrayD<f32> = Array2::from_shape_vec((n, d), flat.clone())
        .unwrap()
        .into_dyn();
    io.save_arrays(&[("emb".to_string(), a, DataType::Float32)])
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
    let q = logical[50 * d..51 * d].to_vec();
    let best = stream_top_k(
        &store,
        "emb",
        Metric::L2,
        &Queries::F32(q.clone()),
        d,
        4,
        111,
    )
    .unwrap();
    let want = top_k(
        Metric::L2,
        Vectors::F32(&q),
        Vectors::F32(&logical),
        d,
        4,
        0,
    )
    .unwrap();
    assert_eq!(best, want);
    assert_eq!(best[0].0[0], 50);
    let s = stream_scores(&store, "emb", Metric::Dot, &Queries::F32(q.clone()), d, 77).unwrap();
    let w = scores(Metric::Dot, Vectors::F32(&q), Vectors::F32(&logical), d).unwrap();
    assert_eq!(s, w);
    assert!(matches!(
        stream_top_k(
            &store,
            "emb",
            Metric::L2,
            &Queries::F64(vec![0.0; d]),
            d,
            4,
            10
        ),
        Err(NpkError::InvalidDtype(_))
    ));
    assert!(matches!(
        stream_top_k(
            &store,
            "emb",
            Metric::L2,
            &Queries::F32(vec![0.0; 3]),
            3,
            4,
            10
        ),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        stream_top_k(&store, "missing", Metric::L2, &Queries::F32(q), d, 4, 10),
        Err(NpkError::ArrayNotFound(_))
    ));
}
