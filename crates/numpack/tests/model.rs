//! Random sequences of save / append / replace / drop rows / drop array / compact / clone /
//! reopen against a plain in-memory model (proptest): after every step the store must hold
//! exactly what the model holds, and every refused operation must change nothing.

mod common;

use common::{rows_i32, to_rows};
use ndarray::ArrayD;
use numpack::prelude::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const WIDTH: usize = 2;

/// The model: array name → rows.
type Model = BTreeMap<String, Vec<Vec<i32>>>;

#[derive(Debug, Clone)]
enum Op {
    /// Saves one array, or two in one call.
    Save(Vec<(u8, Vec<Vec<i32>>)>),
    Append(u8, Vec<Vec<i32>>),
    /// Row `k` of the value goes to index `k` (duplicates: the later wins).
    Replace(u8, Vec<i64>, i32),
    DropRows(u8, Vec<i64>),
    DropArray(u8),
    Compact(u8),
    Clone(u8, u8),
    Reopen,
}

fn rows() -> impl Strategy<Value = Vec<Vec<i32>>> {
    prop::collection::vec(prop::collection::vec(any::<i32>(), WIDTH), 0..12)
}

/// Mostly in range of a few rows (so duplicates and negatives matter), sometimes not.
fn indexes() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(prop_oneof![9 => -4..4i64, 1 => -20..20i64], 0..5)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec((0..4u8, rows()), 1..3).prop_map(Op::Save),
        3 => (0..4u8, rows()).prop_map(|(n, r)| Op::Append(n, r)),
        3 => (0..4u8, indexes(), any::<i32>()).prop_map(|(n, i, v)| Op::Replace(n, i, v)),
        3 => (0..4u8, indexes()).prop_map(|(n, i)| Op::DropRows(n, i)),
        1 => (0..4u8).prop_map(Op::DropArray),
        2 => (0..4u8).prop_map(Op::Compact),
        2 => (0..4u8, 0..4u8).prop_map(|(a, b)| Op::Clone(a, b)),
        1 => Just(Op::Reopen),
    ]
}

/// Plain, path-like and unicode names.
fn name(n: u8) -> String {
    ["a", "b/../c", "名", "../d"][n as usize].to_string()
}

fn to_array(r: &[Vec<i32>]) -> ArrayD<i32> {
    rows_i32(r, WIDTH)
}

/// Resolves logical indexes like the store: every index must be in range.
fn resolve(idx: &[i64], len: usize) -> Option<Vec<usize>> {
    idx.iter()
        .map(|&i| {
            let j = if i < 0 { i + len as i64 } else { i };
            (0..len as i64).contains(&j).then_some(j as usize)
        })
        .collect()
}

/// Applies `op` to the store and the model; checks that the store accepts exactly what the
/// model allows.
fn apply(io: &ParallelIO, m: &mut Model, op: &Op) {
    match op {
        Op::Save(items) => {
            let arrays: Vec<(String, ArrayD<i32>, DataType)> = items
                .iter()
                .map(|(n, r)| (name(*n), to_array(r), DataType::Int32))
                .collect();
            let res = io.save_arrays(&arrays);
            let mut names: Vec<u8> = items.iter().map(|(n, _)| *n).collect();
            names.sort_unstable();
            names.dedup();
            if names.len() < items.len() {
                assert!(matches!(res, Err(NpkError::InvalidOperation(_))), "{res:?}");
            } else {
                res.unwrap();
                for (n, r) in items {
                    m.insert(name(*n), r.clone());
                }
            }
        }
        Op::Append(n, r) => {
            let res = io.append_rows(&name(*n), &to_array(r));
            match m.get_mut(&name(*n)) {
                Some(rows) => {
                    res.unwrap();
                    rows.extend(r.iter().cloned());
                }
                None => assert!(matches!(res, Err(NpkError::ArrayNotFound(_)))),
            }
        }
        Op::Replace(n, idx, v) => {
            let vals: Vec<Vec<i32>> = (0..idx.len() as i32)
                .map(|k| vec![v.wrapping_add(k), k])
                .collect();
            let res = io.replace_rows(&name(*n), &to_array(&vals), idx);
            match m.get_mut(&name(*n)) {
                None => assert!(matches!(res, Err(NpkError::ArrayNotFound(_)))),
                Some(rows) => match resolve(idx, rows.len()) {
                    Some(js) => {
                        res.unwrap();
                        for (k, j) in js.into_iter().enumerate() {
                            rows[j] = vals[k].clone();
                        }
                    }
                    None => assert!(matches!(res, Err(NpkError::IndexOutOfBounds(..)))),
                },
            }
        }
        Op::DropRows(n, idx) => {
            let res = io.drop_arrays(&name(*n), Some(idx));
            match m.get_mut(&name(*n)) {
                None => assert!(matches!(res, Err(NpkError::ArrayNotFound(_)))),
                Some(rows) => match resolve(idx, rows.len()) {
                    Some(mut js) => {
                        res.unwrap();
                        js.sort_unstable();
                        js.dedup();
                        let deleted = !js.is_empty();
                        for j in js.into_iter().rev() {
                            rows.remove(j);
                        }
                        if deleted && rows.is_empty() {
                            // The last rows went: so did the array.
                            m.remove(&name(*n));
                        }
                    }
                    None => assert!(matches!(res, Err(NpkError::IndexOutOfBounds(..)))),
                },
            }
        }
        Op::DropArray(n) => {
            io.drop_arrays(&name(*n), None).unwrap();
            m.remove(&name(*n));
        }
        Op::Compact(n) => {
            let res = io.compact_array(&name(*n));
            if m.contains_key(&name(*n)) {
                res.unwrap();
                // Compaction leaves no deleted rows behind.
                let len = m[&name(*n)].len() as u64;
                assert_eq!(io.get_array_metadata(&name(*n)).unwrap().shape[0], len);
            } else {
                assert!(matches!(res, Err(NpkError::ArrayNotFound(_))));
            }
        }
        Op::Clone(a, b) => {
            let res = io.clone_array(&name(*a), &name(*b));
            match (m.get(&name(*a)).cloned(), m.contains_key(&name(*b))) {
                (Some(rows), false) => {
                    res.unwrap();
                    m.insert(name(*b), rows);
                }
                (None, _) => assert!(matches!(res, Err(NpkError::ArrayNotFound(_)))),
                (Some(_), true) => assert!(matches!(res, Err(NpkError::InvalidOperation(_)))),
            }
        }
        Op::Reopen => {}
    }
}

fn check(io: &ParallelIO, m: &Model) {
    assert_eq!(io.list_arrays(), m.keys().cloned().collect::<Vec<_>>());
    for (n, rows) in m {
        assert_eq!(io.get_shape(n).unwrap(), vec![rows.len() as u64, 2], "{n}");
        assert!(io.get_array_metadata(n).unwrap().shape[0] >= rows.len() as u64);
        assert_eq!(&to_rows(&io.load_array::<i32>(n).unwrap()), rows, "{n}");
        if !rows.is_empty() {
            let got = io.getitem::<i32>(n, &[-1, 0, -1]).unwrap();
            let last = rows[rows.len() - 1].clone();
            assert_eq!(to_rows(&got), [last.clone(), rows[0].clone(), last]);
        }
        let streamed: Vec<Vec<i32>> = io
            .stream_load::<i32>(n, 5)
            .unwrap()
            .flat_map(|b| to_rows(&b.unwrap()))
            .collect();
        assert_eq!(&streamed, rows);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_the_model(ops in prop::collection::vec(op(), 1..=25)) {
        let (_d, p) = common::store();
        let mut io = ParallelIO::new(&p).unwrap();
        let mut model = Model::new();
        for op in &ops {
            if matches!(op, Op::Reopen) {
                drop(io);
                io = ParallelIO::new(&p).unwrap();
            }
            apply(&io, &mut model, op);
            check(&io, &model);
        }
        // A second handle opened from scratch agrees, and the files pass verification.
        drop(io);
        let fresh = ParallelIO::new(&p).unwrap();
        check(&fresh, &model);
        // (A store that was never written to has no metadata file yet.)
        if p.join("metadata.npkm").exists() {
            let report = numpack::store::verify::verify_dir(&p);
            prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
        }
    }
}

/// The model's rows of every array, as a snapshot of `v` reads them.
fn snapshot_state(s: &numpack::Snapshot) -> Model {
    s.names()
        .into_iter()
        .map(|n| {
            let (shape, dtype, bytes) = s.load_bytes(&n).unwrap();
            assert_eq!(dtype, DataType::Int32);
            let vals: Vec<i32> = bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let rows: Vec<Vec<i32>> = vals.chunks(WIDTH).map(<[i32]>::to_vec).collect();
            assert_eq!(shape[0] as usize, rows.len(), "{n}");
            (n, rows)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// With history on, every version listed reads back as the model was after that step;
    /// with history off, a snapshot opened midway still reads its version at the end.
    #[test]
    fn every_version_reads_back_as_the_model_says(
        ops in prop::collection::vec(op(), 1..=20),
        keep in prop_oneof![Just(0u64), Just(1000u64)],
        pin_at in 0usize..20,
    ) {
        let (_d, p) = common::store();
        let mut io = ParallelIO::new(&p).unwrap();
        io.store().set_history(keep).unwrap();
        let mut model = Model::new();
        let mut seen: Vec<(u64, Model)> = vec![(io.store().version().unwrap(), Model::new())];
        let mut pinned = None;
        for (k, op) in ops.iter().enumerate() {
            if k == pin_at {
                let s = io.shared_store().snapshot().unwrap();
                pinned = Some((s, model.clone()));
            }
            if matches!(op, Op::Reopen) {
                // The pinned snapshot keeps its own handle.
                io = ParallelIO::new(&p).unwrap();
            }
            apply(&io, &mut model, op);
            seen.push((io.store().version().unwrap(), model.clone()));
        }
        if let Some((s, m)) = &pinned {
            prop_assert_eq!(&snapshot_state(s), m, "pinned version {}", s.version());
        }
        if keep > 0 {
            let listed: Vec<u64> = io.store().versions().unwrap().iter().map(|v| v.version).collect();
            for (v, m) in &seen {
                prop_assert!(listed.contains(v), "version {} not listed in {:?}", v, listed);
                let s = io.shared_store().snapshot_at(*v).unwrap();
                prop_assert_eq!(&snapshot_state(&s), m, "version {}", v);
            }
            // Restoring the first version brings its state back as a new version.
            let (v0, m0) = seen[seen.len() / 2].clone();
            io.shared_store().restore(v0).unwrap();
            check(&io, &m0);
            model = m0;
        }
        drop(pinned);
        // Collecting everything leaves the current state and no kept files.
        io.store().gc(Some(0), None).unwrap();
        check(&io, &model);
        let stray: Vec<String> = std::fs::read_dir(&p).unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".numpack.v"))
            .collect();
        prop_assert!(stray.is_empty(), "{:?}", stray);
        let report = numpack::store::verify::verify_dir(&p);
        prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
