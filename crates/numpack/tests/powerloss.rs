//! Power loss, simulated the way ALICE and CrashMonkey do it: every mutation of a durable
//! store runs with the I/O trace on (feature `testing`: each create, write, truncation,
//! rename, unlink, fsync and directory fsync numpack makes, with the bytes written). The
//! trace is cut after every event; at each cut the disk states a power loss could leave are
//! built (what was synced, plus any subset, in order, of what was not) and written to a fresh
//! directory, which is then opened (recovery runs) and read. Every state must hold every
//! array as it was before the mutation or as it is after it, with nothing half-applied and
//! nothing for `verify` to complain about; and once the mutation has returned, the state
//! where nothing unsynced survived must be the new one (a returned call is durable).

mod common;

use common::Rng;
use ndarray::ArrayD;
use numpack::io::trace::{self, Event};
use numpack::store::OpenOptions;
use numpack::{AppendItem, DataType, ReplaceItem, RowSelection, SaveItem, Store};
use std::collections::BTreeMap;
use std::path::Path;

/// name -> (physical shape, logical shape, bytes) of every array.
type State = BTreeMap<String, (Vec<u64>, Vec<u64>, Vec<u8>)>;
/// A disk: file name -> bytes.
type Disk = BTreeMap<String, Vec<u8>>;

/// The trace records one directory at a time: tests take turns.
static TRACE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn durable(dir: &Path) -> Store {
    Store::open_with(dir, OpenOptions { durable: true }).expect("open")
}

fn state(store: &Store) -> numpack::NpkResult<State> {
    let mut out = State::new();
    for n in store.names()? {
        let snap = store.array(&n)?;
        let physical = store.array_metadata(&n)?.shape;
        out.insert(n, (physical, snap.logical_shape(), snap.to_bytes()?));
    }
    Ok(out)
}

/// Every file of the directory except the lock file (its contents are not needed to open a
/// store, and a power loss may leave any of them).
fn read_disk(dir: &Path) -> Disk {
    let mut d = Disk::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().into_owned();
        if n != ".numpack.lock" {
            d.insert(n, std::fs::read(e.path()).unwrap());
        }
    }
    d
}

#[derive(Clone)]
enum DataOp {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Clone)]
enum DirOp {
    Link(String, usize),
    Rename(String, String),
    Unlink(String),
}

/// The file system model: inodes with their synced bytes and unsynced operations, and the
/// directory's synced entries and unsynced operations.
struct Model {
    synced: Vec<Vec<u8>>,
    pending: Vec<Vec<DataOp>>,
    dir: BTreeMap<String, usize>,
    dir_pending: Vec<DirOp>,
    live: BTreeMap<String, usize>,
}

fn apply_data(bytes: &mut Vec<u8>, op: &DataOp) {
    match op {
        DataOp::Write(off, b) => {
            let end = *off as usize + b.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*off as usize..end].copy_from_slice(b);
        }
        DataOp::SetLen(n) => bytes.resize(*n as usize, 0),
    }
}

fn apply_dir(dir: &mut BTreeMap<String, usize>, op: &DirOp) {
    match op {
        DirOp::Link(n, i) => {
            dir.insert(n.clone(), *i);
        }
        DirOp::Rename(a, b) => {
            if let Some(i) = dir.remove(a) {
                dir.insert(b.clone(), i);
            }
        }
        DirOp::Unlink(n) => {
            dir.remove(n);
        }
    }
}

impl Model {
    fn new(disk: &Disk) -> Self {
        let mut m = Model {
            synced: Vec::new(),
            pending: Vec::new(),
            dir: BTreeMap::new(),
            dir_pending: Vec::new(),
            live: BTreeMap::new(),
        };
        for (n, b) in disk {
            m.synced.push(b.clone());
            m.pending.push(Vec::new());
            m.dir.insert(n.clone(), m.synced.len() - 1);
        }
        m.live = m.dir.clone();
        m
    }

    fn ino(&self, name: &str) -> usize {
        *self
            .live
            .get(name)
            .unwrap_or_else(|| panic!("trace names {name}, which is not there"))
    }

    fn step(&mut self, e: &Event) {
        match e {
            Event::Create(n) => {
                self.synced.push(Vec::new());
                self.pending.push(Vec::new());
                let i = self.synced.len() - 1;
                self.live.insert(n.clone(), i);
                self.dir_pending.push(DirOp::Link(n.clone(), i));
            }
            Event::Write(n, off, b) => {
                let i = self.ino(n);
                self.pending[i].push(DataOp::Write(*off, b.clone()));
            }
            Event::SetLen(n, len) => {
                let i = self.ino(n);
                self.pending[i].push(DataOp::SetLen(*len));
            }
            Event::Link(a, b) => {
                let i = self.ino(a);
                self.live.insert(b.clone(), i);
                self.dir_pending.push(DirOp::Link(b.clone(), i));
            }
            Event::Rename(a, b) => {
                let i = self.ino(a);
                self.live.remove(a);
                self.live.insert(b.clone(), i);
                self.dir_pending.push(DirOp::Rename(a.clone(), b.clone()));
            }
            Event::Remove(n) => {
                self.live.remove(n);
                self.dir_pending.push(DirOp::Unlink(n.clone()));
            }
            Event::Sync(n) => {
                let i = self.ino(n);
                for op in std::mem::take(&mut self.pending[i]) {
                    apply_data(&mut self.synced[i], &op);
                }
            }
            Event::SyncDir => {
                for op in std::mem::take(&mut self.dir_pending) {
                    apply_dir(&mut self.dir, &op);
                }
            }
        }
    }

    /// A disk a power loss could leave: synced state plus the unsynced operations `keep`
    /// picks (in their order).
    fn crash(&self, keep: &mut dyn FnMut() -> bool) -> Disk {
        let mut dir = self.dir.clone();
        for op in &self.dir_pending {
            if keep() {
                apply_dir(&mut dir, op);
            }
        }
        dir.into_iter()
            .map(|(n, i)| {
                let mut b = self.synced[i].clone();
                for op in &self.pending[i] {
                    if keep() {
                        apply_data(&mut b, op);
                    }
                }
                (n, b)
            })
            .collect()
    }
}

fn materialise(disk: &Disk) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (n, b) in disk {
        std::fs::write(d.path().join(n), b).unwrap();
    }
    d
}

/// Calls `f(cut, k, what, dir)` for every disk state a power loss could leave after each
/// prefix (cut) of `events` applied to `before`: nothing unsynced survived (k = 0),
/// everything survived (k = 1), and `random` random subsets, materialised in `dir`.
fn each_crash_state(
    before: &Disk,
    events: &[Event],
    random: usize,
    seed: u64,
    mut f: impl FnMut(usize, usize, &str, &tempfile::TempDir),
) {
    let mut rng = Rng(seed);
    let mut model = Model::new(before);
    for cut in 0..=events.len() {
        if cut > 0 {
            model.step(&events[cut - 1]);
        }
        let mut disks = vec![
            ("nothing unsynced survived", model.crash(&mut || false)),
            ("everything survived", model.crash(&mut || true)),
        ];
        for _ in 0..random {
            disks.push((
                "some unsynced survived",
                model.crash(&mut || rng.below(2) == 0),
            ));
        }
        for (k, (what, disk)) in disks.into_iter().enumerate() {
            f(cut, k, what, &materialise(&disk));
        }
    }
}

/// Runs `op` on a durable store prepared by `setup` and checks every crash state.
fn check(label: &str, setup: impl Fn(&Store), op: impl Fn(&Store)) {
    check_then(label, setup, op, |_, _| {});
}

/// [`check`], with `more(store, context)` asserted of every crash state too.
fn check_then(
    label: &str,
    setup: impl Fn(&Store),
    op: impl Fn(&Store),
    more: impl Fn(&Store, &str),
) {
    let _turn = TRACE.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s.npk");
    {
        let s = durable(&dir);
        setup(&s);
        s.sync().unwrap();
    }
    let before_disk = read_disk(&dir);
    let store = durable(&dir);
    let before = state(&store).unwrap();
    trace::start(&dir);
    op(&store);
    let events = trace::stop();
    let after = state(&store).unwrap();
    drop(store);
    assert_ne!(before, after, "{label}: the mutation changed nothing");
    assert!(!events.is_empty(), "{label}: nothing was traced");
    each_crash_state(
        &before_disk,
        &events,
        6,
        0x5eed ^ label.len() as u64,
        |cut, k, what, d| {
            let ctx = || {
                format!(
                    "{label}: cut {cut}/{} ({what}), events {:?}",
                    events.len(),
                    &events[..cut]
                )
            };
            let s = Store::open_with(d.path(), OpenOptions { durable: true })
                .unwrap_or_else(|e| panic!("{}: open failed: {e}", ctx()));
            let got = state(&s).unwrap_or_else(|e| panic!("{}: read failed: {e}", ctx()));
            assert!(
                got == before || got == after,
                "{}: a state no commit produced: {:?}",
                ctx(),
                got.keys()
            );
            if cut == events.len() && k == 0 {
                assert!(got == after, "{}: the returned mutation was lost", ctx());
            }
            let report = s.verify();
            assert!(
                report.problems.is_empty(),
                "{}: {:?}",
                ctx(),
                report.problems
            );
            more(&s, &ctx());
        },
    );
}

fn floats(n: u32, from: u32) -> Vec<u8> {
    (from..from + n)
        .flat_map(|i| {
            let i = i as f32;
            [i, (i * 7.0) % 31.0, -i / 2.0]
        })
        .flat_map(f32::to_le_bytes)
        .collect()
}

fn indexed(s: &Store) {
    s.save(&[SaveItem {
        name: "v",
        dtype: DataType::Float32,
        shape: &[60, 3],
        data: &floats(60, 0),
    }])
    .unwrap();
    s.drop_rows("v", &[4]).unwrap();
    let opts = numpack::vector::index::BuildOptions {
        nlist: Some(4),
        ..Default::default()
    };
    s.create_index("v", numpack::vector::Metric::L2, &opts)
        .unwrap();
}

/// Index maintenance under power loss: every crash state's index is current and finds what
/// the exact engine finds.
#[test]
fn index_maintenance_survives_power_loss_at_any_point() {
    let f = DataType::Float32;
    let ok = |s: &Store, ctx: &str| common::check_index(s, "v", ctx);
    check_then(
        "indexed append",
        indexed,
        |s| s.append("v", f, &[5, 3], &floats(5, 100)).unwrap(),
        ok,
    );
    check_then(
        "indexed replace",
        indexed,
        |s| {
            s.replace("v", f, &[2, 3], &floats(2, 200), &[1, 30])
                .unwrap()
        },
        ok,
    );
    check_then(
        "indexed drop",
        indexed,
        |s| s.drop_rows("v", &[0, 9]).unwrap(),
        ok,
    );
    check_then("indexed compact", indexed, |s| s.compact("v").unwrap(), ok);
}

fn bytes_of(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn save(s: &Store, name: &str, rows: u64, base: i32) {
    let v: Vec<i32> = (0..rows as i32 * 2).map(|i| base + i).collect();
    s.save(&[SaveItem {
        name,
        dtype: DataType::Int32,
        shape: &[rows, 2],
        data: &bytes_of(&v),
    }])
    .unwrap();
}

fn two_arrays(s: &Store) {
    save(s, "a", 40, 0);
    save(s, "b", 30, 1000);
    s.drop_rows("b", &[3, 7]).unwrap();
}

#[test]
fn every_durable_mutation_survives_power_loss_at_any_point() {
    check("save new", two_arrays, |s| save(s, "c", 20, 5));
    for (label, name, mode) in [
        ("staged create", "c", numpack::StageMode::Create),
        ("staged append", "b", numpack::StageMode::Append),
    ] {
        check(label, two_arrays, move |s| {
            let dt = DataType::Int32;
            let t = s.stage_begin(name, mode, dt, &[4, 2]).unwrap();
            s.stage_write(&t, 2, dt, &[2, 2], &bytes_of(&[5; 4]))
                .unwrap();
            s.stage_write(&t, 0, dt, &[2, 2], &bytes_of(&[6; 4]))
                .unwrap();
            s.stage_commit(&t).unwrap();
        });
    }
    check("save over", two_arrays, |s| save(s, "b", 25, 7));
    check("append", two_arrays, |s| {
        s.append("a", DataType::Int32, &[3, 2], &bytes_of(&[9; 6]))
            .unwrap()
    });
    check("append with bitmap", two_arrays, |s| {
        s.append("b", DataType::Int32, &[3, 2], &bytes_of(&[9; 6]))
            .unwrap()
    });
    check("append to two arrays", two_arrays, |s| {
        let d = bytes_of(&[8; 4]);
        s.append_many(&[
            AppendItem {
                name: "a",
                dtype: DataType::Int32,
                shape: &[2, 2],
                data: &d,
            },
            AppendItem {
                name: "b",
                dtype: DataType::Int32,
                shape: &[2, 2],
                data: &d,
            },
        ])
        .unwrap()
    });
    check("replace", two_arrays, |s| {
        s.replace(
            "a",
            DataType::Int32,
            &[1, 2],
            &bytes_of(&[-1, -2]),
            &[0, 5, -1],
        )
        .unwrap()
    });
    check("replace two arrays", two_arrays, |s| {
        let d = bytes_of(&[-3, -4]);
        s.replace_many(&[
            ReplaceItem {
                name: "a",
                dtype: DataType::Int32,
                shape: &[1, 2],
                data: &d,
                rows: RowSelection::Slice {
                    start: None,
                    stop: None,
                    step: 3,
                },
            },
            ReplaceItem {
                name: "b",
                dtype: DataType::Int32,
                shape: &[1, 2],
                data: &d,
                rows: RowSelection::Indices(&[-1]),
            },
        ])
        .unwrap()
    });
    check("drop rows", two_arrays, |s| {
        s.drop_rows("a", &[1, -1]).unwrap()
    });
    check("drop rows again", two_arrays, |s| {
        s.drop_rows("b", &[0]).unwrap()
    });
    check("drop arrays", two_arrays, |s| {
        s.drop_arrays(&["a", "b"]).unwrap()
    });
    check("clone", two_arrays, |s| s.clone_array("b", "c").unwrap());
    check("compact", two_arrays, |s| s.compact("b").unwrap());
    check("reset", two_arrays, |s| s.reset().unwrap());
    check("import", two_arrays, |s| {
        let mut w = s.array_writer("a", DataType::Int32).unwrap();
        w.write(&bytes_of(&[4; 10])).unwrap();
        let mut x = s.array_writer("x", DataType::Int32).unwrap();
        x.write(&bytes_of(&[5; 4])).unwrap();
        s.commit_writers(vec![(w, vec![5, 2]), (x, vec![4])], false)
            .unwrap()
    });
}

#[test]
fn the_trace_sees_unsynced_appends_as_lost() {
    // The simulator itself: an append without durability must be lost in some crash state
    // (or the checks above would prove nothing).
    let _turn = TRACE.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s.npk");
    {
        let s = Store::open(&dir).unwrap();
        save(&s, "a", 4, 0);
        s.sync().unwrap();
    }
    let disk = read_disk(&dir);
    let s = Store::open_with(&dir, OpenOptions { durable: false }).unwrap();
    trace::start(&dir);
    s.append("a", DataType::Int32, &[1, 2], &bytes_of(&[1, 2]))
        .unwrap();
    let events = trace::stop();
    let mut m = Model::new(&disk);
    for e in &events {
        m.step(e);
    }
    let lost = materialise(&m.crash(&mut || false));
    let a = ArrayD::<i32>::zeros(ndarray::IxDyn(&[4, 2]));
    let got = Store::open(lost.path())
        .unwrap()
        .array("a")
        .unwrap()
        .logical_shape();
    assert_eq!(got, a.shape().iter().map(|&d| d as u64).collect::<Vec<_>>());
}

/// Every version a store lists and what it reads back as (an aborted one reads as the one
/// before it).
fn versions(s: &std::sync::Arc<Store>) -> BTreeMap<u64, (bool, State)> {
    let mut out = BTreeMap::new();
    for v in s.versions().unwrap() {
        let snap = s.snapshot_at(v.version).unwrap();
        let mut st = State::new();
        for n in snap.names() {
            let (shape, _, bytes) = snap.load_bytes(&n).unwrap();
            let physical = snap.array_metadata(&n).unwrap().shape;
            st.insert(n, (physical, shape, bytes));
        }
        out.insert(v.version, (v.aborted, st));
    }
    out
}

/// [`check`] for a store that keeps history: at every cut, besides the arrays, every version
/// listed before the mutation still reads as it did, and a new one as the new state (or, if
/// its commit never happened, it is listed as aborted and reads as the one before).
fn check_with_history(label: &str, op: impl Fn(&std::sync::Arc<Store>)) {
    check_with_history_after(label, 0, op)
}

/// [`check_with_history`] after `replaces` more versions (each replacing all of `a`); with
/// some, the mutation may collect the oldest versions (never one after a version listed).
fn check_with_history_after(label: &str, replaces: i32, op: impl Fn(&std::sync::Arc<Store>)) {
    use std::sync::Arc;
    let _turn = TRACE.lock().unwrap_or_else(|e| e.into_inner());
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s.npk");
    {
        let s = durable(&dir);
        s.set_history(100).unwrap();
        two_arrays(&s);
        s.drop_rows("b", &[0]).unwrap();
        let all: Vec<i64> = (0..40).collect();
        for k in 0..replaces {
            s.replace("a", DataType::Int32, &[40, 2], &bytes_of(&[k; 80]), &all)
                .unwrap();
        }
        s.sync().unwrap();
    }
    let before_disk = read_disk(&dir);
    let store = Arc::new(durable(&dir));
    let before = state(&store).unwrap();
    let old = versions(&store);
    trace::start(&dir);
    op(&store);
    let events = trace::stop();
    let after = state(&store).unwrap();
    drop(store);
    assert_ne!(before, after, "{label}: the mutation changed nothing");
    let last_old = old.values().last().unwrap().1.clone();
    // A collection's last writes are few and unsynced: sample more of their subsets.
    let random = if replaces > 0 { 24 } else { 4 };
    each_crash_state(
        &before_disk,
        &events,
        random,
        0xfeed ^ label.len() as u64,
        |cut, k, what, d| {
            let ctx = format!("{label}: cut {cut}/{} ({what})", events.len());
            let s = Arc::new(
                Store::open_with(d.path(), OpenOptions { durable: true })
                    .unwrap_or_else(|e| panic!("{ctx}: open failed: {e}")),
            );
            let got = state(&s).unwrap_or_else(|e| panic!("{ctx}: read failed: {e}"));
            assert!(
                got == before || got == after,
                "{ctx}: a state no commit produced"
            );
            if cut == events.len() && k == 0 {
                assert!(got == after, "{ctx}: the returned mutation was lost");
            }
            let now = versions(&s);
            for (v, (aborted, st)) in &now {
                let want = match old.get(v) {
                    Some((_, st)) => st,
                    None if *aborted => &last_old,
                    None => &after,
                };
                assert!(
                    st == want,
                    "{ctx}: version {v} (aborted: {aborted}) reads back wrong: as before {}, as \
                     after {}, state is after {}; events {:?}",
                    *st == last_old,
                    *st == after,
                    got == after,
                    &events[..cut]
                );
            }
            let oldest = *now.keys().next().unwrap();
            for v in old.keys() {
                let collected = replaces > 0 && *v < oldest;
                assert!(
                    collected || now.contains_key(v),
                    "{ctx}: version {v} was lost"
                );
            }
            let current = s.version().unwrap();
            assert!(
                now.get(&current).map(|(_, st)| st) == Some(&got),
                "{ctx}: the current version is not the state"
            );
            let report = s.verify();
            assert!(report.problems.is_empty(), "{ctx}: {:?}", report.problems);
        },
    );
}

#[test]
fn durable_mutations_keep_every_version_through_power_loss() {
    let dt = DataType::Int32;
    check_with_history("append", |s| {
        s.append("a", dt, &[3, 2], &bytes_of(&[9; 6])).unwrap()
    });
    check_with_history("append with bitmap", |s| {
        s.append("b", dt, &[3, 2], &bytes_of(&[9; 6])).unwrap()
    });
    check_with_history("replace", |s| {
        s.replace("a", dt, &[1, 2], &bytes_of(&[-1, -2]), &[0, 5])
            .unwrap()
    });
    check_with_history("drop rows again", |s| s.drop_rows("b", &[2, -1]).unwrap());
    check_with_history("save over", |s| save(s, "b", 25, 7));
    check_with_history("drop arrays", |s| s.drop_arrays(&["a"]).unwrap());
    check_with_history("compact", |s| s.compact("b").unwrap());
    check_with_history("restore", |s| {
        let listed = s.versions().unwrap();
        s.restore(listed[listed.len() - 3].version).unwrap();
    });
    // The commit then collects: the log's start moves (header synced) before the old
    // records' blocks are punched out.
    check_with_history_after("replace, collecting", 40, |s| {
        s.set_history(1).unwrap();
        s.replace("a", dt, &[1, 2], &bytes_of(&[-1, -2]), &[0, 5])
            .unwrap();
        assert!(s.versions().unwrap().len() <= 3);
    });
}
