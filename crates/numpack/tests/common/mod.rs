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

/// Asserts that array `name` of `s` has a current index that lists every live row once and
/// whose exhaustive search (every list probed, one candidate per result) finds exactly
/// what the exact engine finds: the same scores, unique live rows. A stale copy, a missing
/// or doubled row would change the scores.
pub fn check_index(s: &numpack::Store, name: &str, ctx: &str) {
    use numpack::store::SearchOptions;
    use numpack::vector::stream::Queries;
    let info = s
        .index_info(name)
        .unwrap_or_else(|e| panic!("{ctx}: index_info: {e}"))
        .unwrap_or_else(|| panic!("{ctx}: no index"));
    assert!(info.current, "{ctx}: the index is stale");
    let a = s.array_metadata(name).unwrap();
    let snap = s.array(name).unwrap();
    // Every live row, and rows deleted since the index was built (until compaction).
    let listed = snap.logical_rows()..=a.shape[0];
    assert!(
        listed.contains(&info.listed),
        "{ctx}: {} rows listed, not in {listed:?}",
        info.listed
    );
    let bytes = snap.to_bytes().unwrap();
    let data: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
    let dim = info.dim;
    let n = data.len() / dim;
    for qi in [0, n / 2, n.saturating_sub(1)] {
        let q: Vec<f32> = data[qi * dim..(qi + 1) * dim]
            .iter()
            .map(|x| x + 0.25)
            .collect();
        let q = Queries::new(DataType::Float32, bytemuck::cast_slice(&q).to_vec(), 1, dim).unwrap();
        let mut opts = SearchOptions {
            k: 7,
            nprobe: Some(info.nlist),
            refine: Some(1),
            exact: false,
            metric: None,
            batch: 1000,
        };
        let got = s.search(name, &q, &opts).unwrap();
        assert!(got.indexed, "{ctx}: the index did not answer");
        opts.exact = true;
        let want = s.search(name, &q, &opts).unwrap();
        let (rows, scores) = &got.results[0];
        let mut uniq = rows.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), rows.len(), "{ctx}: a row twice: {rows:?}");
        assert!(rows.iter().all(|&r| (r as usize) < n), "{ctx}: {rows:?}");
        assert_eq!(
            scores, &want.results[0].1,
            "{ctx}: query {qi}: {rows:?} vs {:?}",
            want.results[0].0
        );
    }
}
