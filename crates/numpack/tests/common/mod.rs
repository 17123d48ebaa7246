//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ndarray::{ArrayD, IxDyn};
use numpack::prelude::*;
use std::path::{Path, PathBuf};

/// A fresh store path `s.npk` inside a temporary directory (kept alive by the returned guard).
pub fn store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.npk");
    (dir, path)
}

/// An array of `shape` filled with `values` (C order).
pub fn arr<T: Clone>(shape: &[usize], values: Vec<T>) -> ArrayD<T> {
    ArrayD::from_shape_vec(IxDyn(shape), values).expect("shape matches values")
}

/// A 2-d `i32` array from rows.
pub fn rows_i32<R: AsRef<[i32]>>(rows: &[R], width: usize) -> ArrayD<i32> {
    let mut v = Vec::with_capacity(rows.len() * width);
    for r in rows {
        assert_eq!(r.as_ref().len(), width);
        v.extend_from_slice(r.as_ref());
    }
    arr(&[rows.len(), width], v)
}

/// The rows of a 2-d `i32` array.
pub fn to_rows(a: &ArrayD<i32>) -> Vec<Vec<i32>> {
    a.outer_iter()
        .map(|r| r.iter().copied().collect())
        .collect()
}

/// Sorted names of the entries of a directory.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Asserts that `e` is `NpkError::Corrupt` naming the file `file`.
#[track_caller]
pub fn assert_corrupt(e: NpkError, file: &str) {
    match e {
        NpkError::Corrupt { path, reason } => {
            assert!(path.ends_with(file), "{path:?} should name {file}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected Corrupt naming {file}, got {other:?}"),
    }
}

/// Little-endian bytes of `u32` / `u64` values, for hand-built files.
pub fn u32le(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// See [`u32le`].
pub fn u64le(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// splitmix64: tiny deterministic RNG shared by parents and children of the process tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Spawns this test binary running only the ignored test `test` with `envs`.
pub fn spawn_child(test: &str, envs: &[(&str, String)]) -> std::process::Child {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        test,
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child test process")
}
