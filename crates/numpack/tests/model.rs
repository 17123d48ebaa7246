//! Random operation sequences against a plain in-memory model (proptest).

mod common;

use ndarray::{Array2, ArrayD};
use numpack::prelude::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// The model: array name → rows of 2 i32 each.
type Model = BTreeMap<String, Vec<[i32; 2]>>;

#[derive(Debug, Clone)]
enum Op {
    Save(u8, Vec<[i32; 2]>),
    Append(u8, Vec<[i32; 2]>),
    Replace(u8, Vec<i64>, i32),
    DropRows(u8, Vec<i64>),
    DropArray(u8),
    Compact(u8),
    Clone(u8, u8),
    Reopen,
}

fn rows() -> impl Strategy<Value = Vec<[i32; 2]>> {
    prop::collection::vec(any::<[i32; 2]>(), 0..12)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3u8, rows()).prop_map(|(n, r)| Op::Save(n, r)),
        (0..3u8, rows()).prop_map(|(n, r)| Op::Append(n, r)),
        (
            0..3u8,
            prop::collection::vec(-14..14i64, 0..4),
            any::<i32>()
        )
            .prop_map(|(n, i, v)| Op::Replace(n, i, v)),
        (0..3u8, prop::collection::vec(-14..14i64, 0..4)).prop_map(|(n, i)| Op::DropRows(n, i)),
        (0..3u8).prop_map(Op::DropArray),
        (0..3u8).prop_map(Op::Compact),
        (0..3u8, 0..3u8).prop_map(|(a, b)| Op::Clone(a, b)),
        Just(Op::Reopen),
    ]
}

fn name(n: u8) -> String {
    ["a", "b/../c", "名"][n as usize].to_string()
}

fn to_array(r: &[[i32; 2]]) -> ArrayD<i32> {
    Array2::from_shape_fn((r.len(), 2), |(i, j)| r[i][j]).into_dyn()
}

/// Resolves logical indices like the store: every index must be in range.
fn resolve(idx: &[i64], len: usize) -> Option<Vec<usize>> {
    idx.iter()
        .map(|&i| {
            let j = if i < 0 { i + len as i64 } else { i };
            (0..len as i64).contains(&j).then_some(j as usize)
        })
        .collect()
}

fn apply(io: &ParallelIO, m: &mut Model, op: &Op) {
    match op {
        Op::Save(n, r) => {
            io.save_arrays(&[(name(*n), to_array(r), DataType::Int32)])
                .unwrap();
            m.insert(name(*n), r.clone());
        }
        Op::Append(n, r) => {
            let res = io.append_rows(&name(*n), &to_array(r));
            match m.get_mut(&name(*n)) {
                Some(rows) => {
                    res.unwrap();
                    rows.extend(r);
                }
                None => assert!(matches!(res, Err(NpkError::ArrayNotFound(_)))),
            }
        }
        Op::Replace(n, idx, v) => {
            let vals = to_array(&vec![[*v, v.wrapping_add(1)]; idx.len()]);
            let res = io.replace_rows(&name(*n), &vals, idx);
            match m.get_mut(&name(*n)) {
                None => assert!(res.is_err()),
                Some(rows) => match resolve(idx, rows.len()) {
                    Some(js) => {
                        res.unwrap();
                        for j in js {
                            rows[j] = [*v, v.wrapping_add(1)];
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
                        for j in js.into_iter().rev() {
                            rows.remove(j);
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
            assert_eq!(res.is_ok(), m.contains_key(&name(*n)));
        }
        Op::Clone(a, b) => {
            let res = io.clone_array(&name(*a), &name(*b));
            match (m.get(&name(*a)).cloned(), m.contains_key(&name(*b))) {
                (Some(rows), false) => {
                    res.unwrap();
                    m.insert(name(*b), rows);
                }
                _ => assert!(res.is_err()),
            }
        }
        Op::Reopen => {}
    }
}

fn check(io: &ParallelIO, m: &Model) {
    assert_eq!(io.list_arrays(), m.keys().cloned().collect::<Vec<_>>());
    for (n, rows) in m {
        assert_eq!(io.get_shape(n).unwrap(), vec![rows.len() as u64, 2], "{n}");
        assert_eq!(io.load_array::<i32>(n).unwrap(), to_array(rows), "{n}");
        if !rows.is_empty() {
            let got: ArrayD<i32> = io.getitem(n, &[-1, 0]).unwrap();
            assert_eq!(got, to_array(&[rows[rows.len() - 1], rows[0]]));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_the_model(ops in prop::collection::vec(op(), 1..25)) {
        let (_d, p) = common::store();
        let mut io = ParallelIO::new(p.clone()).unwrap();
        let mut model = Model::new();
        for op in &ops {
            if matches!(op, Op::Reopen) {
                drop(io);
                io = ParallelIO::new(p.clone()).unwrap();
            }
            apply(&io, &mut model, op);
            check(&io, &model);
        }
    }
}
