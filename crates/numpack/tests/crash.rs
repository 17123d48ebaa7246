//! A child process is killed (SIGKILL) at random moments while it saves, overwrites,
//! appends, replaces, drops rows, compacts, clones and drops arrays; after every kill the
//! reopened store must equal the state after the last completed operation or after the one
//! in flight, pass verification, and accept writes again.

mod common;

use common::Rng;
use ndarray::{Array2, ArrayD};
use numpack::prelude::*;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

type Row = [i32; 4];
type Model = BTreeMap<String, Vec<Row>>;

/// The clone target: a name that is encoded into a safe file name.
const CLONE: &str = "../c";

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
    match rng.below(8) {
        0 => Op::Save(name, rows(rng, 20_000)),
        1 | 2 => Op::Append(name, rows(rng, 2_000)),
        3 if len > 0 => {
            let k = 1 + rng.below(200);
            let idx = (0..k).map(|_| rng.below(len) as i64).collect();
            Op::Replace(name, idx, [rng.next() as i32; 4])
        }
        4 if len > 10 => {
            let k = 1 + rng.below(len / 4);
            Op::DropRows(
                name,
                (0..k).map(|_| rng.below(len) as i64 - len as i64).collect(),
            )
        }
        5 => Op::Compact(name),
        6 if !m.contains_key(CLONE) => Op::Clone(name, CLONE.into()),
        _ if m.contains_key(CLONE) => Op::DropArray(CLONE.into()),
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
            let mut gone = vec![false; rows.len()];
            for &i in idx {
                gone[(i + len) as usize] = true;
            }
            let mut k = 0;
            rows.retain(|_| {
                k += 1;
                !gone[k - 1]
            });
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

fn store_state(io: &ParallelIO) -> Model {
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

/// With history on: every listed version reads back as the model after some number of
/// operations, in order, the last one being the current state.
fn check_history(io: &ParallelIO, seed: u64, k: u64, round: u64, now: &Model) {
    let models: Vec<Model> = (0..=k + 1).map(|j| model_after(seed, j)).collect();
    let store = io.shared_store();
    let versions = store.versions().unwrap();
    assert!(!versions.is_empty(), "round {round}: no versions listed");
    let mut j = 0;
    let mut last = Model::new();
    for v in &versions {
        let snap = store.snapshot_at(v.version).unwrap();
        let state: Model = snap
            .names()
            .into_iter()
            .map(|n| {
                let (_, _, b) = snap.load_bytes(&n).unwrap();
                let vals: Vec<i32> = b
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                (
                    n,
                    vals.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect(),
                )
            })
            .collect();
        while j < models.len() && models[j] != state {
            j += 1;
        }
        assert!(
            j < models.len(),
            "round {round}: version {} ({}) matches no state after 0..={} ops, in order",
            v.version,
            v.op,
            k + 1
        );
        last = state;
    }
    assert!(
        &last == now,
        "round {round}: the last version is not the current state"
    );
}

/// Progress file: `started` and `completed` operation counts, two u64 written with one pwrite.
fn write_progress(f: &std::fs::File, started: u64, completed: u64) {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&started.to_le_bytes());
    b[8..].copy_from_slice(&completed.to_le_bytes());
    f.write_all_at(&b, 0).unwrap();
}

fn read_progress(p: &Path) -> (u64, u64) {
    match std::fs::read(p) {
        Ok(b) if b.len() == 16 => (
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            u64::from_le_bytes(b[8..].try_into().unwrap()),
        ),
        _ => (0, 0),
    }
}

/// The child: runs the sequence until killed, recording started and completed operations.
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
    let progress = std::fs::File::create(dir.join("progress")).unwrap();
    let io = ParallelIO::new(dir.join("s.npk")).unwrap();
    if std::env::var("NUMPACK_CRASH_HISTORY").is_ok_and(|v| v == "1") {
        io.store().set_history(1_000_000).unwrap();
    }
    let mut rng = Rng(seed);
    let mut m = Model::new();
    for k in 1u64.. {
        let op = next_op(&mut rng, &m);
        write_progress(&progress, k, k - 1);
        apply_store(&io, &op).unwrap();
        apply_model(&mut m, &op);
        write_progress(&progress, k, k);
    }
}

#[test]
fn killed_at_random_moments() {
    let start = Instant::now();
    let mut rng = Rng(0xC0FFEE);
    let mut mid_op = 0;
    let mut landed_after = 0;
    let mut completed = Vec::new();
    for round in 0..30u64 {
        let dir = tempfile::tempdir().unwrap();
        let seed = 1000 + round;
        // Every third child fsyncs each commit; every other one keeps history. The
        // guarantees are the same.
        let durable = if round % 3 == 2 { "1" } else { "0" };
        let history = round % 2 == 1;
        let mut child = common::spawn_child(
            "crash_child",
            &[
                ("NUMPACK_CRASH_DIR", dir.path().display().to_string()),
                ("NUMPACK_CRASH_SEED", seed.to_string()),
                ("NUMPACK_DURABLE", durable.to_string()),
                ("NUMPACK_CRASH_HISTORY", u8::from(history).to_string()),
            ],
        );
        // Wait until the child has started working (so a slow start under load does not
        // eat the delay), then let it run a random few milliseconds.
        let progress = dir.path().join("progress");
        let waiting = Instant::now();
        while read_progress(&progress).0 == 0 && waiting.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(5 + rng.below(120)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child stopped by itself"
        );
        let (started, k) = read_progress(&progress);
        completed.push(k);
        let store = dir.path().join("s.npk");
        if !store.exists() {
            continue;
        }
        if started > k {
            mid_op += 1;
        }
        let io = ParallelIO::new(&store).unwrap();
        let got = store_state(&io);
        let before = model_after(seed, k);
        let after = model_after(seed, k + 1);
        assert!(
            got == before || got == after,
            "round {round}: state after kill matches neither {k} nor {} ops",
            k + 1
        );
        if got == after && got != before {
            landed_after += 1;
        }
        if history {
            check_history(&io, seed, k, round, &got);
        }
        let report = numpack::store::verify::verify_dir(&store);
        if store.join("metadata.npkm").exists() {
            assert!(
                report.problems.is_empty(),
                "round {round}: {:?}",
                report.problems
            );
        }
        // The store accepts writes again and leaves no temporary files behind.
        io.save_arrays(&[("z".to_string(), to_array(&[[1, 2, 3, 4]]), DataType::Int32)])
            .unwrap();
        if let Some(name) = got.keys().next() {
            io.append_rows(name, &to_array(&[[5, 6, 7, 8]])).unwrap();
            io.compact_array(name).unwrap();
        }
        drop(io);
        for n in common::dir_names(&store) {
            assert!(
                !n.starts_with(".numpack.tmp") && n != ".numpack.journal",
                "round {round}: {n} left behind"
            );
        }
        let io = ParallelIO::new(&store).unwrap();
        assert_eq!(io.list_arrays().len(), got.len() + 1);
    }
    eprintln!(
        "ops completed before each kill: {completed:?}; {mid_op} kills during an op, \
         {landed_after} of them after its commit; {:?}",
        start.elapsed()
    );
    // The kills must land during the work, and often in the middle of an operation.
    assert!(
        completed.iter().filter(|&&k| k > 3).count() >= 20,
        "{completed:?}"
    );
    assert!(
        mid_op >= 10,
        "only {mid_op} kills landed inside an operation"
    );
}
