//! A child process is killed (SIGKILL) at random moments while it saves, appends, replaces,
//! drops and compacts; after every kill the reopened store must equal the state after the
//! last completed operation or after the one in flight.

mod common;

use common::Rng;
use ndarray::{Array2, ArrayD};
use numpack::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

type Row = [i32; 4];
type Model = BTreeMap<String, Vec<Row>>;

#[derive(Debug)]
enum Op {
    Save(String, Vec<Row>),
    Append(String, Vec<Row>),
    Replace(String, Vec<i64>, Row),
    DropRows(String, Vec<i64>),
    Compact(String),
    Clone(String, String),
    DropArray(String),
}

/// `1 + below(max)` rows of recognisable values.
fn rows(rng: &mut Rng, max: u64) -> Vec<Row> {
    let n = 1 + rng.below(max);
    let base = rng.next() as i32;
    (0..n as i32).map(|i| [base, i, base ^ i, -i]).collect()
}

/// The deterministic operation sequence; always valid against the model.
fn next_op(rng: &mut Rng, m: &Model) -> Op {
    for n in ["a", "b"] {
        if !m.contains_key(n) {
            return Op::Save(n.into(), rows(rng, 20_000));
        }
    }
    let name = if rng.below(2) == 0 { "a" } else { "b" }.to_string();
    let len = m[&name].len() as u64;
    match rng.below(7) {
        0 => Op::Save(name, rows(rng, 20_000)),
        1 => Op::Append(name, rows(rng, 2_000)),
        2 if len > 0 => {
            let k = 1 + rng.below(200);
            let idx = (0..k).map(|_| rng.below(len) as i64).collect();
            Op::Replace(name, idx, [rng.next() as i32; 4])
        }
        3 if len > 10 => {
            let k = 1 + rng.below(len / 4);
            Op::DropRows(
                name,
                (0..k).map(|_| rng.below(len) as i64 - len as i64).collect(),
            )
        }
        4 => Op::Compact(name),
        5 if !m.contains_key("c") => Op::Clone(name, "c".into()),
        _ if m.contains_key("c") => Op::DropArray("c".into()),
        _ => Op::Append(name, rows(rng, 100)),
    }
}

fn apply_model(m: &mut Model, op: &Op) {
    match op {
        Op::Save(n, r) => {
            m.insert(n.clone(), r.clone());
        }
        Op::Append(n, r) => m.get_mut(n).unwrap().extend(r),
        Op::Replace(n, idx, v) => {
            let rows = m.get_mut(n).unwrap();
            for &i in idx {
                rows[i as usize] = *v;
            }
        }
        Op::DropRows(n, idx) => {
            let rows = m.get_mut(n).unwrap();
            let len = rows.len() as i64;
            let mut js: Vec<usize> = idx.iter().map(|&i| (i + len) as usize).collect();
            js.sort_unstable();
            js.dedup();
            for j in js.into_iter().rev() {
                rows.remove(j);
            }
        }
        Op::Compact(_) => {}
        Op::Clone(a, b) => {
            let r = m[a].clone();
            m.insert(b.clone(), r);
        }
        Op::DropArray(n) => {
            m.remove(n);
        }
    }
}

fn to_array(r: &[Row]) -> ArrayD<i32> {
    Array2::from_shape_fn((r.len(), 4), |(i, j)| r[i][j]).into_dyn()
}

fn apply_store(io: &ParallelIO, op: &Op) -> NpkResult<()> {
    match op {
        Op::Save(n, r) => io.save_arrays(&[(n.clone(), to_array(r), DataType::Int32)]),
        Op::Append(n, r) => io.append_rows(n, &to_array(r)),
        Op::Replace(n, idx, v) => io.replace_rows(n, &to_array(&vec![*v; idx.len()]), idx),
        Op::DropRows(n, idx) => io.drop_arrays(n, Some(idx)),
        Op::Compact(n) => io.compact_array(n),
        Op::Clone(a, b) => io.clone_array(a, b),
        Op::DropArray(n) => io.drop_arrays(n, None),
    }
}

fn model_after(seed: u64, ops: u64) -> Model {
    let mut rng = Rng(seed);
    let mut m = Model::new();
    for _ in 0..ops {
        let op = next_op(&mut rng, &m);
        apply_model(&mut m, &op);
    }
    m
}

fn store_state(p: &Path) -> Model {
    let io = ParallelIO::new(p).unwrap();
    io.list_arrays()
        .into_iter()
        .map(|n| {
            let a = io.load_array::<i32>(&n).unwrap();
            let rows = a
                .as_slice()
                .unwrap()
                .chunks(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect();
            (n, rows)
        })
        .collect()
}

/// The child: runs the sequence forever, recording completed operations.
#[test]
#[ignore = "run by crash::killed_at_random_moments as a child process"]
fn crash_child() {
    let (Ok(dir), Ok(seed)) = (
        std::env::var("NUMPACK_CRASH_DIR"),
        std::env::var("NUMPACK_CRASH_SEED"),
    ) else {
        return;
    };
    let dir = Path::new(&dir);
    let seed: u64 = seed.parse().unwrap();
    let io = ParallelIO::new(dir.join("s.npk")).unwrap();
    let mut rng = Rng(seed);
    let mut m = Model::new();
    for k in 1u64.. {
        let op = next_op(&mut rng, &m);
        apply_store(&io, &op).unwrap();
        apply_model(&mut m, &op);
        let tmp = dir.join("progress.tmp");
        std::fs::write(&tmp, k.to_string()).unwrap();
        std::fs::rename(&tmp, dir.join("progress")).unwrap();
    }
}

#[test]
fn killed_at_random_moments() {
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0xC0FFEE);
    let mut landed_mid_op = 0;
    let mut completed = Vec::new();
    for round in 0..30u64 {
        let dir = tempfile::tempdir().unwrap();
        let seed = 1000 + round;
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("NUMPACK_CRASH_DIR", dir.path())
            .env("NUMPACK_CRASH_SEED", seed.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + rng.below(120)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let k: u64 = std::fs::read_to_string(dir.path().join("progress"))
            .map(|s| s.parse().unwrap())
            .unwrap_or(0);
        let store = dir.path().join("s.npk");
        completed.push(k);
        if !store.exists() {
            continue;
        }
        let got = store_state(&store);
        let before = model_after(seed, k);
        let after = model_after(seed, k + 1);
        assert!(
            got == before || got == after,
            "round {round}: state after kill matches neither {k} nor {} ops",
            k + 1
        );
        if got == after && got != before {
            landed_mid_op += 1;
        }
        // The store accepts writes again and leaves no temporary files behind.
        let io = ParallelIO::new(&store).unwrap();
        io.save_arrays(&[("z".to_string(), to_array(&[[1, 2, 3, 4]]), DataType::Int32)])
            .unwrap();
        drop(io);
        for e in std::fs::read_dir(&store).unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            assert!(
                !n.starts_with(".numpack.tmp") && n != ".numpack.journal",
                "{n} left behind"
            );
        }
    }
    eprintln!("ops completed before each kill: {completed:?}; {landed_mid_op} kills after an op");
    // The kills must land during the work, not before it starts.
    assert!(
        completed.iter().filter(|&&k| k > 3).count() >= 20,
        "{completed:?}"
    );
}
