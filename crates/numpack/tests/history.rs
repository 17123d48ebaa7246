//! Versions: what history keeps, snapshots against writers in other processes, tags, gc,
//! and the records of killed mutations.

mod common;

use numpack::prelude::*;
use numpack::Store;
use std::sync::Arc;

fn ints(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn open(p: &std::path::Path) -> Arc<Store> {
    Arc::new(Store::open(p).unwrap())
}

#[test]
fn history_keeps_what_each_commit_changed() {
    let (_d, p) = common::store();
    let s = open(&p);
    s.set_history(10).unwrap();
    let dt = DataType::Int32;
    s.save(&[numpack::SaveItem {
        name: "a",
        dtype: dt,
        shape: &[4],
        data: &ints(&[1, 2, 3, 4]),
    }])
    .unwrap();
    let v1 = s.version().unwrap();
    s.replace("a", dt, &[1], &ints(&[9]), &[1]).unwrap();
    let v2 = s.version().unwrap();
    s.append("a", dt, &[2], &ints(&[5, 6])).unwrap();
    s.drop_rows("a", &[0]).unwrap();
    s.compact("a").unwrap();
    let v5 = s.version().unwrap();
    assert_eq!(v5, v1 + 4);
    let read = |v| s.snapshot_at(v).unwrap().load_bytes("a").unwrap().2;
    assert_eq!(read(v1), ints(&[1, 2, 3, 4]));
    assert_eq!(read(v2), ints(&[1, 9, 3, 4]));
    assert_eq!(read(v2 + 1), ints(&[1, 9, 3, 4, 5, 6]));
    assert_eq!(read(v2 + 2), ints(&[9, 3, 4, 5, 6]));
    assert_eq!(read(v5), ints(&[9, 3, 4, 5, 6]));
    let snap = s.snapshot_at(v1).unwrap();
    assert_eq!(snap.rows_bytes("a", &[-1, 1]).unwrap(), ints(&[4, 2]));
    let listed = s.versions().unwrap();
    let ops: Vec<&str> = listed.iter().map(|v| v.op).collect();
    assert_eq!(
        &ops[ops.len() - 5..],
        ["save", "replace", "append", "drop_rows", "update"]
    );
    // The replace kept its old row; the compaction kept the old data file.
    assert!(
        listed
            .iter()
            .find(|v| v.op == "replace")
            .unwrap()
            .bytes_kept
            >= 12
    );
    assert!(listed.iter().find(|v| v.op == "update").unwrap().bytes_kept >= 24);
    // An open snapshot keeps its version through gc.
    s.gc(Some(0), None).unwrap();
    assert_eq!(snap.load_bytes("a").unwrap().2, ints(&[1, 2, 3, 4]));
    drop(snap);
    // A tag keeps its version through gc; the versions before it go.
    s.tag("good", Some(v2)).unwrap();
    let report = s.gc(Some(0), None).unwrap();
    assert_eq!(report.oldest, v2);
    assert_eq!(read(v2), ints(&[1, 9, 3, 4]));
    assert!(s.snapshot_at(v1).is_err());
    s.untag("good").unwrap();
    s.gc(Some(0), None).unwrap();
    assert!(s.snapshot_at(v2).is_err());
    assert_eq!(read(v5), ints(&[9, 3, 4, 5, 6]));
}

#[test]
fn a_snapshot_reads_its_version_while_history_is_off() {
    let (_d, p) = common::store();
    let s = open(&p);
    let dt = DataType::Int32;
    s.save(&[numpack::SaveItem {
        name: "a",
        dtype: dt,
        shape: &[3],
        data: &ints(&[1, 2, 3]),
    }])
    .unwrap();
    let snap = s.snapshot().unwrap();
    // Another handle writes: replace, drop, overwrite, drop the array.
    let w = open(&p);
    w.replace("a", dt, &[1], &ints(&[7]), &[0]).unwrap();
    w.drop_rows("a", &[2]).unwrap();
    assert_eq!(snap.load_bytes("a").unwrap().2, ints(&[1, 2, 3]));
    w.save(&[numpack::SaveItem {
        name: "a",
        dtype: dt,
        shape: &[1],
        data: &ints(&[0]),
    }])
    .unwrap();
    w.drop_arrays(&["a"]).unwrap();
    assert_eq!(snap.load_bytes("a").unwrap().2, ints(&[1, 2, 3]));
    assert_eq!(snap.names(), ["a"]);
    let v = snap.version();
    drop(snap);
    // Released: the next commit collects what only the snapshot needed.
    w.save(&[numpack::SaveItem {
        name: "b",
        dtype: dt,
        shape: &[1],
        data: &ints(&[0]),
    }])
    .unwrap();
    assert!(s.snapshot_at(v).is_err());
    let kept = std::fs::read_dir(&p)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".numpack.v")
        })
        .count();
    assert_eq!(kept, 0);
}

#[test]
fn pins_of_a_killed_process_are_released() {
    let (_d, p) = common::store();
    let s = open(&p);
    let dt = DataType::Int32;
    s.save(&[numpack::SaveItem {
        name: "a",
        dtype: dt,
        shape: &[2],
        data: &ints(&[1, 2]),
    }])
    .unwrap();
    // A child process pins the version and exits without unpinning.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "pin_and_exit", "--nocapture", "--test-threads=1"])
        .env("NPK_PIN_CHILD", &p)
        .status()
        .unwrap();
    assert!(status.success());
    // While its pin looked live, history would be kept; the dead pid is cleared.
    s.replace("a", dt, &[1], &ints(&[5]), &[0]).unwrap();
    s.replace("a", dt, &[1], &ints(&[6]), &[0]).unwrap();
    // No record was written for the dead reader.
    assert!(!p.join(".numpack.history").exists());
    // A live pin does make commits record.
    let snap = s.snapshot().unwrap();
    s.replace("a", dt, &[1], &ints(&[7]), &[0]).unwrap();
    assert!(p.join(".numpack.history").exists());
    assert_eq!(snap.load_bytes("a").unwrap().2, ints(&[6, 2]));
}

/// The child of `pins_of_a_killed_process_are_released` (does nothing in a normal run).
#[test]
fn pin_and_exit() {
    let Some(p) = std::env::var_os("NPK_PIN_CHILD") else {
        return;
    };
    let c = Arc::new(Store::open(std::path::Path::new(&p)).unwrap());
    let snap = c.snapshot().unwrap();
    std::mem::forget(snap);
    std::process::exit(0);
}

#[test]
fn a_drop_with_history_keeps_the_bitmap_words_it_changes() {
    use std::os::unix::fs::MetadataExt;
    let (_d, p) = common::store();
    let s = open(&p);
    s.set_history(10).unwrap();
    let dt = DataType::Int32;
    let rows = 100_000u64;
    let v: Vec<i32> = (0..rows as i32).collect();
    s.save(&[numpack::SaveItem {
        name: "a",
        dtype: dt,
        shape: &[rows],
        data: &ints(&v),
    }])
    .unwrap();
    s.drop_rows("a", &[0]).unwrap();
    let bitmap = p.join("deleted_a.npkb");
    let ino = std::fs::metadata(&bitmap).unwrap().ino();
    let v1 = s.version().unwrap();
    s.drop_rows("a", &[10, 50_000, -1]).unwrap();
    s.append("a", dt, &[3], &ints(&[-1, -2, -3])).unwrap();
    s.drop_rows("a", &[-2]).unwrap();
    // Edited in place; each version kept a few words, not the 12.5 KB bitmap.
    assert_eq!(std::fs::metadata(&bitmap).unwrap().ino(), ino);
    let listed = s.versions().unwrap();
    for info in listed.iter().filter(|i| i.version > v1) {
        assert!(info.bytes_kept < 1024, "{info:?}");
    }
    let mut want: Vec<i32> = v[1..].to_vec();
    let read = |v| s.snapshot_at(v).unwrap().load_bytes("a").unwrap().2;
    assert_eq!(read(v1), ints(&want));
    want.retain(|&x| ![11, 50_001, 99_999].contains(&x));
    assert_eq!(read(v1 + 1), ints(&want));
    want.extend([-1, -2, -3]);
    assert_eq!(read(v1 + 2), ints(&want));
    want.retain(|&x| x != -2);
    assert_eq!(read(v1 + 3), ints(&want));
    // Restoring the first version writes the old words back.
    s.restore(v1).unwrap();
    assert_eq!(
        s.snapshot().unwrap().load_bytes("a").unwrap().2,
        ints(&v[1..])
    );
    assert!(numpack::store::verify::verify_dir(&p).problems.is_empty());
}

#[test]
fn a_bitmap_in_the_legacy_layout_keeps_its_versions_readable() {
    let (_d, p) = common::store();
    let s = open(&p);
    s.set_history(10).unwrap();
    let dt = DataType::Int32;
    let v: Vec<i32> = (0..130).collect();
    s.save(&[numpack::SaveItem {
        name: "a",
        dtype: dt,
        shape: &[130],
        data: &ints(&v),
    }])
    .unwrap();
    drop(s);
    // The header-less layout older writers used: the words alone (row 1 deleted).
    let mut words = [u64::MAX, u64::MAX, (1u64 << 2) - 1];
    words[0] &= !(1 << 1);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    std::fs::write(p.join("deleted_a.npkb"), bytes).unwrap();
    let s = open(&p);
    let v0 = s.version().unwrap();
    s.drop_rows("a", &[0]).unwrap();
    s.append("a", dt, &[2], &ints(&[-1, -2])).unwrap();
    s.drop_rows("a", &[-1]).unwrap();
    let read = |ver| s.snapshot_at(ver).unwrap().load_bytes("a").unwrap().2;
    let mut want: Vec<i32> = v.iter().copied().filter(|&x| x != 1).collect();
    assert_eq!(read(v0), ints(&want));
    want.remove(0);
    assert_eq!(read(v0 + 1), ints(&want));
    want.push(-1);
    want.push(-2);
    assert_eq!(read(v0 + 2), ints(&want));
    want.pop();
    assert_eq!(read(v0 + 3), ints(&want));
    assert!(numpack::store::verify::verify_dir(&p).problems.is_empty());
}

#[test]
fn a_snapshot_pinned_after_unrecorded_commits_reads_its_version() {
    let (_d, p) = common::store();
    let s = open(&p);
    let dt = DataType::Int32;
    s.set_history(10).unwrap();
    s.save(&[numpack::SaveItem {
        name: "a",
        dtype: dt,
        shape: &[3],
        data: &ints(&[1, 2, 3]),
    }])
    .unwrap();
    // History off: these commits write no record, and change the metadata.
    s.set_history(0).unwrap();
    s.append("a", dt, &[1], &ints(&[4])).unwrap();
    s.drop_rows("a", &[0]).unwrap();
    let snap = s.snapshot().unwrap();
    // The recorded commits after them (and the collections they run) must keep the pinned
    // version readable.
    s.append("a", dt, &[1], &ints(&[5])).unwrap();
    for _ in 0..40 {
        s.replace("a", dt, &[1], &ints(&[9]), &[0]).unwrap();
    }
    assert_eq!(snap.load_bytes("a").unwrap().2, ints(&[2, 3, 4]));
    assert_eq!(
        s.snapshot().unwrap().load_bytes("a").unwrap().2,
        ints(&[9, 3, 4, 5])
    );
}

#[test]
fn collection_after_commits_drops_the_front_of_the_log_in_place() {
    use std::os::unix::fs::MetadataExt;
    let (_d, p) = common::store();
    // Durable: holes are punched only where the header is on disk first.
    let durable =
        || Arc::new(Store::open_with(&p, numpack::store::OpenOptions { durable: true }).unwrap());
    let s = durable();
    let dt = DataType::Int32;
    let (rows, cols) = (600usize, 64usize);
    let value = |v: usize, r: usize| -> i32 { (v * 1_000_000 + r) as i32 };
    let state = |v: usize| -> Vec<i32> { (0..rows * cols).map(|i| value(v, i / cols)).collect() };
    s.set_history(3).unwrap();
    s.save(&[numpack::SaveItem {
        name: "a",
        dtype: dt,
        shape: &[rows as u64, cols as u64],
        data: &ints(&state(0)),
    }])
    .unwrap();
    let v0 = s.version().unwrap();
    let idx: Vec<i64> = (0..rows as i64).collect();
    let replace_all = |k: usize| {
        s.replace("a", dt, &[rows as u64, cols as u64], &ints(&state(k)), &idx)
            .unwrap();
    };
    // A pinned snapshot holds its version through every collection after it.
    let pinned = s.snapshot().unwrap();
    for k in 1..=60 {
        replace_all(k);
    }
    assert_eq!(pinned.load_bytes("a").unwrap().2, ints(&state(0)));
    drop(pinned);
    // Unpinned: each collection moves the start; the log is rewritten once its dead front
    // passes 16 MiB and 4x what is live (each record keeps ~150 KiB here).
    for k in 61..=260 {
        replace_all(k);
        let now = s.version().unwrap();
        let listed = s.versions().unwrap();
        assert!(
            listed.len() <= 3 + 32 + 1,
            "{} versions listed",
            listed.len()
        );
        assert_eq!(listed.last().unwrap().version, now);
    }
    let now = s.version().unwrap();
    assert_eq!(now, v0 + 260);
    for back in 0..=3u64 {
        let k = (now - v0 - back) as usize;
        assert_eq!(
            s.snapshot_at(now - back)
                .unwrap()
                .load_bytes("a")
                .unwrap()
                .2,
            ints(&state(k))
        );
    }
    assert!(s.snapshot_at(v0 + 100).is_err());
    // A new handle reads the log from its start and sees the same versions.
    let again = durable();
    assert_eq!(again.versions().unwrap(), s.versions().unwrap());
    assert_eq!(
        again
            .snapshot_at(now - 3)
            .unwrap()
            .load_bytes("a")
            .unwrap()
            .2,
        ints(&state((now - v0 - 3) as usize))
    );
    // What collection dropped holds no disk blocks: a hole, or gone with a rewrite.
    let log = std::fs::metadata(p.join(".numpack.history")).unwrap();
    let live: u64 = s.versions().unwrap().iter().map(|v| v.bytes_kept).sum();
    assert!(
        log.blocks() * 512 <= live + (3 << 20),
        "{} bytes allocated for {live} live",
        log.blocks() * 512
    );
    assert!(log.len() < 24 << 20, "log of {} bytes", log.len());
    assert!(numpack::store::verify::verify_dir(&p).problems.is_empty());
}

#[test]
fn a_snapshot_folds_the_records_of_a_busy_writer_as_it_reads() {
    let (_d, p) = common::store();
    let s = open(&p);
    let dt = DataType::Int32;
    let base: Vec<i32> = (0..50).collect();
    s.save(&[numpack::SaveItem {
        name: "a",
        dtype: dt,
        shape: &[50],
        data: &ints(&base),
    }])
    .unwrap();
    let snap = s.snapshot().unwrap();
    let mut rows = 50i64;
    for k in 0..300i32 {
        // Rows of the version and rows appended after it, replaced; reads between commits.
        s.append("a", dt, &[2], &ints(&[-k, -k])).unwrap();
        rows += 2;
        s.replace(
            "a",
            dt,
            &[3],
            &ints(&[k; 3]),
            &[i64::from(k % 50), rows - 1, rows - 3],
        )
        .unwrap();
        if k % 7 == 0 {
            s.drop_rows("a", &[rows - 2]).unwrap();
            rows -= 1;
        }
        if k % 5 == 0 {
            assert_eq!(
                snap.load_bytes("a").unwrap().2,
                ints(&base),
                "after commit {k}"
            );
            assert_eq!(snap.rows_bytes("a", &[3, -1]).unwrap(), ints(&[3, 49]));
        }
    }
    assert_eq!(snap.load_bytes("a").unwrap().2, ints(&base));
}
