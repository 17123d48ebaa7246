//! Index maintenance killed at every file operation: as `kill_points.rs`, for an array with
//! a vector index. After each kill the reopened store holds the array as before or after
//! the mutation, and its index (when it has one) is current and finds exactly what the
//! exact engine finds (`common::check_index`); then the store takes appends, replaces and
//! drops again and the index still does.

mod common;

use numpack::io::trace;
use numpack::vector::index::BuildOptions;
use numpack::vector::Metric;
use numpack::{DataType, SaveItem, Store};
use std::path::Path;

const CASES: &[&str] = &[
    "append",
    "append twice",
    "replace",
    "drop rows",
    "compact",
    "create index",
    "reindex",
    "drop index",
    "save over",
    "drop array",
];

fn floats(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Row `i`: distinct small integers, so float32 scores are exact.
fn rows(from: u32, n: u32) -> Vec<u8> {
    floats((from..from + n).flat_map(|i| {
        let i = i as f32;
        [i, (i * 7.0) % 31.0, (i * 3.0) % 17.0, -i / 2.0]
    }))
}

fn opts() -> BuildOptions {
    BuildOptions {
        nlist: Some(6),
        ..BuildOptions::default()
    }
}

fn setup(s: &Store) {
    s.save(&[SaveItem {
        name: "v",
        dtype: DataType::Float32,
        shape: &[200, 4],
        data: &rows(0, 200),
    }])
    .unwrap();
    s.drop_rows("v", &[3, 50, 199]).unwrap();
    s.create_index("v", Metric::L2, &opts()).unwrap();
    // Records in the log before the mutation under test.
    s.append("v", DataType::Float32, &[10, 4], &rows(500, 10))
        .unwrap();
    s.replace("v", DataType::Float32, &[1, 4], &rows(900, 1), &[7])
        .unwrap();
}

fn run(s: &Store, case: &str) {
    let f = DataType::Float32;
    match case {
        "append" => s.append("v", f, &[20, 4], &rows(1000, 20)).unwrap(),
        "append twice" => {
            s.append("v", f, &[2, 4], &rows(1100, 2)).unwrap();
            s.append("v", f, &[3, 4], &rows(1200, 3)).unwrap();
        }
        "replace" => s
            .replace("v", f, &[3, 4], &rows(2000, 3), &[0, 9, 150])
            .unwrap(),
        "drop rows" => s.drop_rows("v", &[1, 2, 100]).unwrap(),
        "compact" => s.compact("v").unwrap(),
        "create index" => s.create_index("v", Metric::Dot, &opts()).unwrap(),
        "reindex" => s
            .reindex(
                "v",
                &BuildOptions {
                    nlist: Some(9),
                    ..opts()
                },
            )
            .unwrap(),
        "drop index" => {
            s.drop_index("v").unwrap();
        }
        "save over" => s
            .save(&[SaveItem {
                name: "v",
                dtype: f,
                shape: &[30, 4],
                data: &rows(3000, 30),
            }])
            .unwrap(),
        "drop array" => s.drop_arrays(&["v"]).unwrap(),
        other => panic!("unknown case {other}"),
    }
}

/// The array's logical bytes and physical rows, and what its index is (metric, lists and
/// rows listed), if any.
type State = (Option<(Vec<u8>, u64)>, Option<(Metric, usize, u64)>);

fn state(s: &Store) -> State {
    if !s.has("v").unwrap() {
        return (None, None);
    }
    let bytes = s.array("v").unwrap().to_bytes().unwrap();
    let rows = s.array_metadata("v").unwrap().shape[0];
    let index = s
        .index_info("v")
        .unwrap()
        .map(|i| (i.metric, i.nlist, i.listed));
    (Some((bytes, rows)), index)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The child: runs one case, exiting after the given number of operations.
#[test]
#[ignore = "run by index_kill_points::index_maintenance_killed_at_every_file_operation"]
fn index_kill_child() {
    let (Ok(dir), Ok(case), Ok(n)) = (
        std::env::var("NUMPACK_KILL_DIR"),
        std::env::var("NUMPACK_KILL_CASE"),
        std::env::var("NUMPACK_KILL_AT"),
    ) else {
        return;
    };
    let dir = Path::new(&dir);
    let s = Store::open(dir).unwrap();
    trace::start_exiting_after(dir, n.parse().unwrap());
    run(&s, &case);
    trace::stop();
}

/// Appends, replaces and drops after a kill: the index keeps up.
fn keeps_up(s: &Store, ctx: &str) {
    if !s.has("v").unwrap() {
        return;
    }
    let f = DataType::Float32;
    s.append("v", f, &[4, 4], &rows(7000, 4)).unwrap();
    s.replace("v", f, &[1, 4], &rows(7100, 1), &[2]).unwrap();
    s.drop_rows("v", &[5]).unwrap();
    if s.index_info("v").unwrap().is_some() {
        common::check_index(s, "v", &format!("{ctx}, then written"));
    }
}

fn check(case: &str) -> usize {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("base.npk");
    let before = {
        let s = Store::open(&base).unwrap();
        setup(&s);
        common::check_index(&s, "v", "setup");
        state(&s)
    };
    let after = {
        let d = t.path().join("after.npk");
        copy_dir(&base, &d);
        let s = Store::open(&d).unwrap();
        run(&s, case);
        state(&s)
    };
    assert!(before != after, "{case}: the mutation changed nothing");
    for n in 1.. {
        let d = t.path().join(format!("kill{n}.npk"));
        copy_dir(&base, &d);
        let status = common::spawn_child(
            "index_kill_child",
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
            "{case}, kill {n}: child {status}"
        );
        let ctx = format!("{case}, killed after operation {n}");
        let s = Store::open(&d).unwrap();
        let got = state(&s);
        // "append twice" may also stop between its two commits.
        let between = case == "append twice"
            && got.0.as_ref().map(|b| b.0.len()) == before.0.as_ref().map(|b| b.0.len() + 2 * 16);
        assert!(
            got == before || got == after || between,
            "{ctx}: a state no commit produced"
        );
        if !killed {
            assert!(got == after, "{ctx}: the completed mutation is not there");
        }
        let report = s.verify();
        assert!(report.problems.is_empty(), "{ctx}: {:?}", report.problems);
        if got.1.is_some() {
            common::check_index(&s, "v", &ctx);
        }
        keeps_up(&s, &ctx);
        drop(s);
        std::fs::remove_dir_all(&d).unwrap();
        if !killed {
            return n;
        }
    }
    unreachable!()
}

#[test]
fn index_maintenance_killed_at_every_file_operation() {
    for case in CASES {
        let points = check(case);
        eprintln!("{case}: {points} kill points");
        assert!(points > 1, "{case}: no file operation was traced");
    }
}
