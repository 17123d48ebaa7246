//! The lock file's shared header: the generation counter that tells handles their cache is
//! current, in-place metadata commits, and undo records kept in the lock file.

mod common;

use common::{dir_names, rows_i32, store, to_rows};
use numpack::prelude::*;
use numpack::store::commit::{begin_undo, UndoFile, UndoLog};
use numpack::store::lock::StoreLock;
use numpack::store::verify::verify_dir;
use numpack::Store;
use std::time::Duration;

#[test]
fn another_handle_sees_every_commit_at_once() {
    let (_t, path) = store();
    let a = ParallelIO::new(path.clone()).unwrap();
    let b = ParallelIO::new(path.clone()).unwrap();
    a.save_arrays(&[("x".into(), rows_i32(&[[1, 2]], 2), DataType::Int32)])
        .unwrap();
    assert_eq!(b.get_shape("x").unwrap(), vec![1, 2]);
    for i in 0..50 {
        a.append_rows("x", &rows_i32(&[[i, i]], 2)).unwrap();
        // No sleep: the generation changed, so b reloads on its next call.
        assert_eq!(b.get_shape("x").unwrap(), vec![2 + i as u64, 2]);
    }
    a.replace_rows("x", &rows_i32(&[[9, 9]], 2), &[0]).unwrap();
    let got: ndarray::ArrayD<i32> = b.getitem("x", &[0, -1]).unwrap();
    assert_eq!(to_rows(&got), vec![vec![9, 9], vec![49, 49]]);
}

#[test]
fn appends_edit_the_metadata_in_place_and_stay_readable() {
    let (_t, path) = store();
    let io = ParallelIO::new(path.clone()).unwrap();
    io.save_arrays(&[("x".into(), rows_i32(&[[1, 2]], 2), DataType::Int32)])
        .unwrap();
    let ino = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p.join("metadata.npkm")).unwrap().ino()
    };
    let before = ino(&path);
    for i in 0..10 {
        io.append_rows("x", &rows_i32(&[[i, i]], 2)).unwrap();
    }
    assert_eq!(ino(&path), before, "an append rewrites no file");
    // A fresh reader decodes the edited file.
    let fresh = ParallelIO::new(path.clone()).unwrap();
    assert_eq!(fresh.get_shape("x").unwrap(), vec![11, 2]);
    assert!(verify_dir(&path).problems.is_empty());
    // A new array is a new data file: the metadata is replaced by rename.
    io.save_arrays(&[("y".into(), rows_i32(&[[3, 4]], 2), DataType::Int32)])
        .unwrap();
    assert_ne!(ino(&path), before);
}

#[test]
fn a_writer_that_ignores_the_counter_is_noticed() {
    let (_t, path) = store();
    let io = ParallelIO::new(path.clone()).unwrap();
    io.save_arrays(&[("x".into(), rows_i32(&[[1, 2]], 2), DataType::Int32)])
        .unwrap();
    let copy = tempfile::tempdir().unwrap();
    let other = copy.path().join("o.npk");
    let o = ParallelIO::new(other.clone()).unwrap();
    o.save_arrays(&[("z".into(), rows_i32(&[[7, 7]], 2), DataType::Int32)])
        .unwrap();
    drop(o);
    assert_eq!(io.list_arrays(), vec!["x".to_string()]);
    // Another program replaces the store's files behind numpack's back.
    for f in ["data_z.npkd", "metadata.npkm"] {
        std::fs::copy(other.join(f), path.join(format!("{f}.new"))).unwrap();
        std::fs::rename(path.join(format!("{f}.new")), path.join(f)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(io.list_arrays(), vec!["z".to_string()]);
}

#[test]
fn an_interrupted_replace_is_rolled_back_from_the_lock_file() {
    let (_t, path) = store();
    let io = ParallelIO::new(path.clone()).unwrap();
    io.save_arrays(&[(
        "x".into(),
        rows_i32(&[[1, 2], [3, 4], [5, 6]], 2),
        DataType::Int32,
    )])
    .unwrap();
    // What a replace killed between its undo record and its last row write leaves behind.
    let lock = StoreLock::open(&path).unwrap();
    let old: Vec<u8> = [3i32, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let log = UndoLog {
        files: vec![UndoFile {
            file: "data_x.npkd".into(),
            len: None,
            rows: vec![(8, old)],
        }],
    };
    begin_undo(&path, &lock, &log, false).unwrap();
    let mut bytes = std::fs::read(path.join("data_x.npkd")).unwrap();
    bytes[8..16].copy_from_slice(&[0xff; 8]);
    std::fs::write(path.join("data_x.npkd"), &bytes).unwrap();
    assert!(
        verify_dir(&path)
            .notes
            .iter()
            .any(|n| n.contains("rolled back")),
        "verify tells of the pending rollback"
    );
    // No journal file was written for it.
    assert!(!dir_names(&path).contains(&".numpack.journal".to_string()));
    // The next call of any handle rolls it back before it reads.
    let got: ndarray::ArrayD<i32> = io.load_array("x").unwrap();
    assert_eq!(to_rows(&got), vec![vec![1, 2], vec![3, 4], vec![5, 6]]);
    assert!(verify_dir(&path).notes.is_empty());
    // And a fresh open does too.
    begin_undo(&path, &lock, &log, false).unwrap();
    std::fs::write(path.join("data_x.npkd"), &bytes).unwrap();
    drop(io);
    let s = Store::open(&path).unwrap();
    let got: ndarray::ArrayD<i32> = ParallelIO::new(path.clone())
        .unwrap()
        .load_array("x")
        .unwrap();
    assert_eq!(to_rows(&got)[1], vec![3, 4]);
    drop(s);
}

#[test]
fn a_large_replace_uses_a_journal_file_and_still_works() {
    let (_t, path) = store();
    let io = ParallelIO::new(path.clone()).unwrap();
    let n = 100_000usize;
    let a = ndarray::Array2::<f64>::zeros((n, 4)).into_dyn();
    io.save_arrays(&[("big".into(), a, DataType::Float64)])
        .unwrap();
    let idx: Vec<i64> = (0..n as i64).step_by(2).collect();
    let v = ndarray::Array2::<f64>::ones((idx.len(), 4)).into_dyn();
    io.replace_rows("big", &v, &idx).unwrap();
    let got: ndarray::ArrayD<f64> = io.getitem("big", &[0, 1, 2]).unwrap();
    let col: Vec<f64> = (0..3).map(|r| got[[r, 0]]).collect();
    assert_eq!(col, vec![1.0, 0.0, 1.0]);
    assert!(!dir_names(&path).contains(&".numpack.journal".to_string()));
}

#[test]
fn replaced_large_files_are_unlinked_in_the_background_and_gone_after_sync() {
    let (_t, path) = store();
    let io = ParallelIO::new(path.clone()).unwrap();
    let big = ndarray::Array2::<f64>::zeros((200_000, 2)).into_dyn();
    for _ in 0..3 {
        io.save_arrays(&[("big".into(), big.clone(), DataType::Float64)])
            .unwrap();
    }
    io.drop_arrays("big", None).unwrap();
    io.sync_metadata().unwrap();
    let left: Vec<String> = dir_names(&path)
        .into_iter()
        .filter(|n| n.starts_with(".numpack.tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A replaced file left by a process that died before unlinking it goes at the next open.
    let stale = path.join(".numpack.tmp.999999999.1.replaced");
    std::fs::write(&stale, vec![0u8; 2 << 20]).unwrap();
    drop(ParallelIO::new(path.clone()).unwrap());
    assert!(!stale.exists());
}

#[test]
fn an_interrupted_bitmap_edit_rolls_back_even_over_torn_metadata() {
    let (_t, path) = store();
    let io = ParallelIO::new(path.clone()).unwrap();
    io.save_arrays(&[(
        "x".into(),
        rows_i32(&[[1, 2], [3, 4], [5, 6]], 2),
        DataType::Int32,
    )])
    .unwrap();
    io.drop_arrays("x", Some(&[0])).unwrap();
    let bitmap = path.join("deleted_x.npkb");
    let (old_bitmap, old_meta) = (
        std::fs::read(&bitmap).unwrap(),
        std::fs::read(path.join("metadata.npkm")).unwrap(),
    );
    // What a drop killed inside its metadata write leaves: the bitmap edited, the metadata
    // torn (undecodable), the undo record live.
    let lock = StoreLock::open(&path).unwrap();
    let log = UndoLog {
        files: vec![
            UndoFile {
                file: "deleted_x.npkb".into(),
                len: None,
                rows: vec![(0, old_bitmap[..24].to_vec())],
            },
            UndoFile {
                file: "metadata.npkm".into(),
                len: None,
                rows: vec![(0, old_meta.clone())],
            },
        ],
    };
    begin_undo(&path, &lock, &log, false).unwrap();
    let mut b = old_bitmap.clone();
    b[16] = 0; // rows 1 and 2 deleted too
    b[8] = 3;
    std::fs::write(&bitmap, &b).unwrap();
    std::fs::write(path.join("metadata.npkm"), vec![0xAB; old_meta.len()]).unwrap();
    drop(io);
    let io = ParallelIO::new(path.clone()).unwrap();
    let got: ndarray::ArrayD<i32> = io.load_array("x").unwrap();
    assert_eq!(to_rows(&got), vec![vec![3, 4], vec![5, 6]]);
    assert_eq!(std::fs::read(&bitmap).unwrap(), old_bitmap);
    assert!(verify_dir(&path).problems.is_empty());
}
