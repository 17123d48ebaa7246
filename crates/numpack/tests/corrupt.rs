//! Corrupt or truncated files give a clear error naming the file, never a panic.

mod common;

use ndarray::{ArrayD, IxDyn};
use numpack::prelude::*;
use std::path::Path;

fn make(p: &Path) {
    let io = ParallelIO::new(p).unwrap();
    let a = ArrayD::from_shape_fn(IxDyn(&[100, 4]), |i| i[0] as f32);
    io.save_arrays(&[("a".to_string(), a, DataType::Float32)])
        .unwrap();
    io.drop_arrays("a", Some(&[3])).unwrap();
}

fn corrupt_err(e: NpkError, file: &str) {
    match e {
        NpkError::Corrupt { path, reason } => {
            assert!(path.ends_with(file), "{path:?} should name {file}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected Corrupt naming {file}, got {other:?}"),
    }
}

#[test]
fn bad_magic_and_every_truncation_of_the_metadata() {
    let (_d, p) = common::store();
    make(&p);
    let good = std::fs::read(p.join("metadata.npkm")).unwrap();
    for n in 0..good.len() {
        std::fs::write(p.join("metadata.npkm"), &good[..n]).unwrap();
        corrupt_err(ParallelIO::new(&p).unwrap_err(), "metadata.npkm");
    }
    let mut bad = good.clone();
    bad[0] = b'X';
    std::fs::write(p.join("metadata.npkm"), &bad).unwrap();
    corrupt_err(ParallelIO::new(&p).unwrap_err(), "metadata.npkm");
    // Nothing was overwritten by the failed opens.
    assert_eq!(std::fs::read(p.join("metadata.npkm")).unwrap(), bad);
}

#[test]
fn absurd_counts_shapes_and_unknown_dtypes() {
    let (_d, p) = common::store();
    make(&p);
    let good = std::fs::read(p.join("metadata.npkm")).unwrap();
    // Array count of 2^32-1.
    let mut b = good.clone();
    b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(p.join("metadata.npkm"), &b).unwrap();
    corrupt_err(ParallelIO::new(&p).unwrap_err(), "metadata.npkm");
    // Record: name_len(4) "a" ndim(4) dims(16) file_len(4) "data_a.npkd"(11) mtime(8) size(8) dtype
    let dtype_at = 20 + 4 + 1 + 4 + 16 + 4 + 11 + 8 + 8;
    let mut b = good.clone();
    b[dtype_at] = 200;
    std::fs::write(p.join("metadata.npkm"), &b).unwrap();
    let e = ParallelIO::new(&p).unwrap_err();
    assert!(e.to_string().contains("unknown dtype code 200"), "{e}");
    // A petabyte first dimension (size no longer matches).
    let mut b = good.clone();
    b[29..37].copy_from_slice(&(1u64 << 50).to_le_bytes());
    std::fs::write(p.join("metadata.npkm"), &b).unwrap();
    corrupt_err(ParallelIO::new(&p).unwrap_err(), "metadata.npkm");
    // ndim of 1000.
    let mut b = good;
    b[25..29].copy_from_slice(&1000u32.to_le_bytes());
    std::fs::write(p.join("metadata.npkm"), &b).unwrap();
    corrupt_err(ParallelIO::new(&p).unwrap_err(), "metadata.npkm");
}

#[test]
fn data_file_shorter_than_the_metadata() {
    let (_d, p) = common::store();
    make(&p);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(p.join("data_a.npkd"))
        .unwrap();
    f.set_len(100).unwrap();
    let io = ParallelIO::new(&p).unwrap();
    corrupt_err(io.load_array::<f32>("a").unwrap_err(), "data_a.npkd");
    corrupt_err(io.getitem::<f32>("a", &[0]).unwrap_err(), "data_a.npkd");
    let extra = ArrayD::<f32>::zeros(IxDyn(&[1, 4]));
    corrupt_err(io.append_rows("a", &extra).unwrap_err(), "data_a.npkd");
}

#[test]
fn bitmap_of_the_wrong_size() {
    let (_d, p) = common::store();
    make(&p);
    let good = std::fs::read(p.join("deleted_a.npkb")).unwrap();
    for len in [0, 7, 15, 17, good.len() - 1, good.len() + 8] {
        let mut b = good.clone();
        b.resize(len, 0);
        std::fs::write(p.join("deleted_a.npkb"), &b).unwrap();
        let io = ParallelIO::new(&p).unwrap();
        corrupt_err(io.load_array::<f32>("a").unwrap_err(), "deleted_a.npkb");
    }
    // A bitmap claiming more rows than the array has.
    let mut b = good;
    b[0..8].copy_from_slice(&1000u64.to_le_bytes());
    std::fs::write(p.join("deleted_a.npkb"), &b).unwrap();
    corrupt_err(
        ParallelIO::new(&p).unwrap().get_shape("a").unwrap_err(),
        "deleted_a.npkb",
    );
}

#[test]
fn data_file_names_that_leave_the_directory_are_rejected() {
    let (d, p) = common::store();
    make(&p);
    std::fs::write(d.path().join("secret.npkd"), [0u8; 1600]).unwrap();
    let good = std::fs::read(p.join("metadata.npkm")).unwrap();
    // Replace "data_a.npkd" (11 bytes) by "../secret.n" of the same length.
    let at = good.windows(11).position(|w| w == b"data_a.npkd").unwrap();
    for evil in [
        b"../secret.n",
        b"data_/x.npkd".split_at(11).0,
        b"/etc/passwd",
    ] {
        let mut b = good.clone();
        b[at..at + 11].copy_from_slice(evil);
        std::fs::write(p.join("metadata.npkm"), &b).unwrap();
        corrupt_err(ParallelIO::new(&p).unwrap_err(), "metadata.npkm");
    }
    assert!(d.path().join("secret.npkd").exists());
}

#[test]
fn random_bytes_never_panic() {
    let (_d, p) = common::store();
    make(&p);
    let good = std::fs::read(p.join("metadata.npkm")).unwrap();
    let mut rng = common::Rng(7);
    for _ in 0..300 {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(b.len() as u64) as usize;
            b[i] = rng.next() as u8;
        }
        std::fs::write(p.join("metadata.npkm"), &b).unwrap();
        if let Ok(io) = ParallelIO::new(&p) {
            // Whatever decoded must read without panicking (errors are fine).
            for n in io.list_arrays() {
                let _ = io.get_shape(&n);
                let _ = io.read_rows(&n, &[0, -1]);
            }
        }
    }
}
