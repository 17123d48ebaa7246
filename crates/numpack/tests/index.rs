//! The IVF index against the exact engine: recall and speed on a Gaussian mixture (run with
//! `cargo test --release -p numpack --test index -- --ignored --nocapture`; the index's own
//! correctness tests are unit tests of `vector::index`).

use numpack::vector::index::kmeans::Rng;
use numpack::vector::index::{BuildOptions, Ivf, SliceRows};
use numpack::vector::{top_k, Metric, Vectors};
use std::collections::HashSet;
use std::time::Instant;

/// `n` vectors of `dim` around `centers` seeded centres (unit-variance-ish noise).
fn mixture(n: usize, dim: usize, centers: usize, seed: u64, center_seed: u64) -> Vec<f32> {
    let mut crng = Rng::new(center_seed);
    let mut unif_c = move || (crng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
    let c: Vec<f32> = (0..centers * dim).map(|_| unif_c() * 2.0 - 1.0).collect();
    let mut rng = Rng::new(seed);
    let mut unif = move || (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let j = (unif() * centers as f32) as usize % centers;
        for t in 0..dim {
            let noise = (unif() + unif() + unif() + unif() - 2.0) * 0.25;
            out.push(c[j * dim + t] + noise);
        }
    }
    out
}

#[test]
#[ignore = "benchmark"]
fn ivf_against_exact_on_a_million_vectors() {
    let (n, dim, nq, k) = (1_000_000, 128, 1000, 10);
    let data = mixture(n, dim, 1000, 1, 7);
    let q = mixture(nq, dim, 1000, 2, 7);
    let src = SliceRows {
        data: &data,
        dim,
        deleted: None,
    };
    let t = Instant::now();
    let opts = BuildOptions {
        nlist: Some(1024),
        ..BuildOptions::default()
    };
    let ivf = Ivf::build(Metric::Cosine, &src, n as u64, dim, &opts).unwrap();
    println!(
        "build: {:.2} s (nlist {}, imbalance {:.2})",
        t.elapsed().as_secs_f64(),
        ivf.nlist(),
        ivf.imbalance()
    );
    let t = Instant::now();
    let exact = top_k(
        Metric::Cosine,
        Vectors::F32(&q),
        Vectors::F32(&data),
        dim,
        k,
        0,
    )
    .unwrap();
    let te = t.elapsed().as_secs_f64();
    println!("exact: {:.0} queries/s", nq as f64 / te);
    for nprobe in [4, 8, 16, 32, 64] {
        let t = Instant::now();
        let got = ivf.search(&src, &q, k, nprobe, 4);
        let ti = t.elapsed().as_secs_f64();
        let mut hit = 0;
        for (g, w) in got.iter().zip(&exact) {
            let w: HashSet<u64> = w.0.iter().copied().collect();
            hit += g.0.iter().filter(|r| w.contains(r)).count();
        }
        println!(
            "nprobe {nprobe:3}: recall@10 {:.3}, {:.0} queries/s ({:.1}x exact)",
            hit as f64 / (nq * k) as f64,
            nq as f64 / ti,
            te / ti
        );
    }
}

/// Where a build's time goes: k-means training and listing every row, at 100k x 128.
#[test]
#[ignore = "a benchmark: cargo test --release -p numpack --test index -- --ignored build_phases"]
fn build_phases() {
    use numpack::vector::index::kmeans;
    let (n, dim, nlist) = (100_000, 128, 256);
    let data = mixture(n, dim, 100, 1, 2);
    let train = &data[..65_536 * dim];
    let t = Instant::now();
    let c = kmeans::train(train, dim, nlist, 10, 1).unwrap();
    let tt = t.elapsed().as_secs_f64();
    let cn = kmeans::norms(&c, dim);
    let t = Instant::now();
    let a = kmeans::assign(&data, &c, &cn, dim);
    let ta = t.elapsed().as_secs_f64();
    let src = SliceRows {
        data: &data,
        dim,
        deleted: None,
    };
    let opts = BuildOptions {
        nlist: Some(nlist),
        train_rows: 65_536,
        ..BuildOptions::default()
    };
    let t = Instant::now();
    let ivf = Ivf::build(Metric::Cosine, &src, n as u64, dim, &opts).unwrap();
    let tb = t.elapsed().as_secs_f64();
    println!(
        "train {tt:.3} s ({:.0} GFLOP/s), assign all {ta:.3} s, whole build {tb:.3} s, {} lists, {}",
        (65_536 * nlist * dim * 2 * 10) as f64 / tt / 1e9,
        ivf.nlist(),
        a.len()
    );
}
