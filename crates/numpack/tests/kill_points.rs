//! Every mutation killed at every file operation it makes: a child process runs one
//! mutation with the I/O trace on and ends itself (`_exit`, as a SIGKILL would) right after
//! its `n`-th operation on the store's files, for `n = 1, 2, ...` until the mutation
//! completes. After each kill the reopened store must hold every array as before the
//! mutation or as after it, pass verification and take writes; with history on, every
//! version listed before still reads as it did, and a new version reads as the new state.
//! The undo record and flags live in the lock file's shared page, which is written in
//! program order between the traced operations, so a kill after operation `n` is exactly
//! the state a kill at that instant leaves.

mod common;

use numpack::io::trace;
use numpack::{AppendItem, DataType, ReplaceItem, RowSelection, SaveItem, Store};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// name -> (logical shape, bytes), and the physical row counts (a compaction changes only
/// those).
type State = BTreeMap<String, (Vec<u64>, Vec<u8>)>;

fn ints(v: impl IntoIterator<Item = i32>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn save(s: &Store, name: &str, rows: u64, base: i32) {
    s.save(&[SaveItem {
        name,
        dtype: DataType::Int32,
        shape: &[rows, 2],
        data: &ints((0..rows as i32 * 2).map(|i| base + i)),
    }])
    .unwrap();
}

/// Two arrays, one with deleted rows, a few versions (for the collecting case, enough that
/// the next commit collects the oldest).
fn setup(s: &Store, history: bool, case: &str) {
    if history {
        s.set_history(100).unwrap();
    }
    save(s, "a", 40, 0);
    save(s, "b", 130, 1000);
    s.drop_rows("b", &[3, 7, 64]).unwrap();
    s.replace("a", DataType::Int32, &[1, 2], &ints([-1, -2]), &[5])
        .unwrap();
    if case == COLLECTING {
        for k in 0..40 {
            s.replace(
                "a",
                DataType::Int32,
                &[1, 2],
                &ints([k, k]),
                &[i64::from(k % 40)],
            )
            .unwrap();
        }
    }
}

/// A replace whose commit then collects history (keep_last 1).
const COLLECTING: &str = "replace, collecting";

const CASES: &[&str] = &[
    "append",
    "append with bitmap",
    "append to two arrays",
    "drop rows first",
    "drop rows again",
    "drop rows of two arrays",
    "replace",
    "replace with bitmap",
    "save new",
    "save over",
    "drop array",
    "compact",
    "clone",
    "restore",
    COLLECTING,
    "staged create",
    "staged append",
];

fn run(s: &Arc<Store>, case: &str) {
    let dt = DataType::Int32;
    match case {
        "append" => s.append("a", dt, &[3, 2], &ints([9; 6])).unwrap(),
        "append with bitmap" => s.append("b", dt, &[70, 2], &ints(0..140)).unwrap(),
        "append to two arrays" => {
            let (x, y) = (ints([4; 2]), ints([5; 4]));
            s.append_many(&[
                AppendItem {
                    name: "a",
                    dtype: dt,
                    shape: &[1, 2],
                    data: &x,
                },
                AppendItem {
                    name: "b",
                    dtype: dt,
                    shape: &[2, 2],
                    data: &y,
                },
            ])
            .unwrap()
        }
        "drop rows first" => s.drop_rows("a", &[1, -1]).unwrap(),
        "drop rows again" => s.drop_rows("b", &[0, 5, 100]).unwrap(),
        "drop rows of two arrays" => s
            .drop_selected(&[
                ("a", RowSelection::Indices(&[2])),
                ("b", RowSelection::Indices(&[1, 2])),
            ])
            .unwrap(),
        "replace" => s.replace("a", dt, &[1, 2], &ints([7, 7]), &[0, 3]).unwrap(),
        "staged create" | "staged append" => {
            let (name, mode) = if case == "staged create" {
                ("c", numpack::StageMode::Create)
            } else {
                ("b", numpack::StageMode::Append)
            };
            let t = s.stage_begin(name, mode, dt, &[6, 2]).unwrap();
            s.stage_write(&t, 3, dt, &[3, 2], &ints(6..12)).unwrap();
            s.stage_write(&t, 0, dt, &[3, 2], &ints(0..6)).unwrap();
            s.stage_commit(&t).unwrap()
        }
        COLLECTING => {
            s.set_history(1).unwrap();
            s.replace("a", dt, &[1, 2], &ints([7, 7]), &[0, 3]).unwrap()
        }
        "replace with bitmap" => {
            let v = ints([8, 8]);
            s.replace_many(&[ReplaceItem {
                name: "b",
                dtype: dt,
                shape: &[1, 2],
                data: &v,
                rows: RowSelection::Indices(&[4, 90]),
            }])
            .unwrap()
        }
        "save new" => save(s, "c", 20, 5),
        "save over" => save(s, "b", 25, 7),
        "drop array" => s.drop_arrays(&["b"]).unwrap(),
        "compact" => s.compact("b").unwrap(),
        "clone" => s.clone_array("b", "c").unwrap(),
        "restore" => {
            // Back before the drop and the replace of the setup.
            let listed = s.versions().unwrap();
            s.restore(listed[listed.len() - 3].version).unwrap();
        }
        other => panic!("unknown case {other}"),
    }
}

fn state(s: &Store) -> (State, Vec<u64>) {
    let mut out = State::new();
    let mut physical = Vec::new();
    for n in s.names().unwrap() {
        let snap = s.array(&n).unwrap();
        physical.push(s.array_metadata(&n).unwrap().shape[0]);
        out.insert(n, (snap.logical_shape(), snap.to_bytes().unwrap()));
    }
    (out, physical)
}

/// Every listed version and what it reads back as (a version whose commit was killed before
/// its point is listed as aborted and reads as the one before it).
fn versions(s: &Arc<Store>) -> BTreeMap<u64, (bool, State)> {
    let mut out = BTreeMap::new();
    for v in s.versions().unwrap() {
        let snap = s.snapshot_at(v.version).unwrap();
        let mut st = State::new();
        for n in snap.names() {
            let (shape, _, bytes) = snap.load_bytes(&n).unwrap();
            st.insert(n, (shape, bytes));
        }
        out.insert(v.version, (v.aborted, st));
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The child: runs one case on the store, exiting after the given number of operations.
#[test]
#[ignore = "run by kill_points::every_mutation_killed_at_every_file_operation"]
fn kill_point_child() {
    let (Ok(dir), Ok(case), Ok(n)) = (
        std::env::var("NUMPACK_KILL_DIR"),
        std::env::var("NUMPACK_KILL_CASE"),
        std::env::var("NUMPACK_KILL_AT"),
    ) else {
        return;
    };
    let dir = Path::new(&dir);
    let s = Arc::new(Store::open(dir).unwrap());
    trace::start_exiting_after(dir, n.parse().unwrap());
    run(&s, &case);
    trace::stop();
}

fn check(case: &str, history: bool) -> usize {
    let label = format!("{case} (history {})", if history { "on" } else { "off" });
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base.npk");
    let (before, old_versions) = {
        let s = Arc::new(Store::open(&base).unwrap());
        setup(&s, history, case);
        (state(&s), versions(&s))
    };
    let after = {
        let d = t.path().join("after.npk");
        copy_dir(&base, &d);
        let s = Arc::new(Store::open(&d).unwrap());
        run(&s, case);
        state(&s)
    };
    assert!(before != after, "{label}: the mutation changed nothing");
    for n in 1.. {
        let d = t.path().join(format!("kill{n}.npk"));
        copy_dir(&base, &d);
        let status = common::spawn_child(
            "kill_point_child",
            &[
                ("NUMPACK_KILL_DIR", d.display().to_string()),
                ("NUMPACK_KILL_CASE", case.to_owned()),
                ("NUMPACK_KILL_AT", n.to_string()),
                ("NUMPACK_DURABLE", "0".to_owned()),
            ],
        )
        .wait()
        .unwrap();
        let killed = status.code() == Some(77);
        assert!(
            killed || status.success(),
            "{label}, kill {n}: child {status}"
        );
        let s = Arc::new(Store::open(&d).unwrap());
        let got = state(&s);
        let ctx = format!("{label}, killed after operation {n}");
        assert!(
            got == before || got == after,
            "{ctx}: a state no commit produced: {:?}",
            got.1
        );
        if !killed {
            assert!(got == after, "{ctx}: the completed mutation is not there");
        }
        let report = s.verify();
        assert!(report.problems.is_empty(), "{ctx}: {:?}", report.problems);
        if history {
            let now = versions(&s);
            let last_old = &old_versions.values().last().unwrap().1;
            for (v, (aborted, st)) in &now {
                let want = match old_versions.get(v) {
                    Some((_, old)) => old,
                    None if *aborted => last_old,
                    None => &after.0,
                };
                assert!(st == want, "{ctx}: version {v} reads back wrong");
            }
            // Collection (keep_last 1) after the commit may drop versions before the last two.
            let current = s.version().unwrap();
            for v in old_versions.keys() {
                let collected = case == COLLECTING && got == after && *v + 1 < current;
                assert!(
                    collected || now.contains_key(v),
                    "{ctx}: version {v} was lost"
                );
            }
            if case == COLLECTING && !killed {
                assert!(
                    now.len() <= 3,
                    "{ctx}: {} versions after collecting",
                    now.len()
                );
            }
            assert!(
                now.get(&current).map(|(_, st)| st) == Some(&got.0),
                "{ctx}: current version"
            );
        }
        // The store takes writes again.
        save(&s, "z", 3, 0);
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
        if !killed {
            return n;
        }
    }
    unreachable!()
}

#[test]
fn every_mutation_killed_at_every_file_operation() {
    for history in [false, true] {
        for case in CASES {
            if *case == "restore" && !history {
                continue;
            }
            let points = check(case, history);
            eprintln!("{case} (history {history}): {points} kill points");
            assert!(points > 1, "{case}: no file operation was traced");
        }
    }
}
