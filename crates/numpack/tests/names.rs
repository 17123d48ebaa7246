//! Hostile array names (`../x`, `a/b`, `/abs`, 1000 characters, unicode, …) work as names
//! and never reach outside the store directory: every operation is run with them and the
//! directory and its parent are listed afterwards.

mod common;

use common::{dir_names, rows_i32, store, to_rows};
use ndarray::ArrayD;
use numpack::prelude::*;
use std::path::Path;

fn hostile() -> Vec<String> {
    vec![
        "../x".into(),
        "../../x".into(),
        "a/b".into(),
        "a/../../b".into(),
        "/abs".into(),
        "/tmp/numpack-escape".into(),
        "x".repeat(1000),
        "é".repeat(300),
        "名前".into(),
        "emoji 🎉".into(),
        ".hidden".into(),
        ".".into(),
        "..".into(),
        "a\\b".into(),
        "..\\..\\w".into(),
        " leading space".into(),
        "new\nline".into(),
        "metadata.npkm".into(),
        ".numpack.lock".into(),
        ".numpack.journal".into(),
        "data_x.npkd".into(),
        "y".repeat(201),
        "~a-0000000000000000".into(),
        "CON".into(),
    ]
}

fn value(i: usize) -> ArrayD<i32> {
    rows_i32(&[[i as i32, 0], [i as i32, 1]], 2)
}

/// The store directory holds only regular files with short names of the format's families;
/// its parent holds only the store (plus `extra`).
fn assert_contained(parent: &Path, store: &Path, extra: &[&str]) {
    let mut want: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    want.push("s.npk".into());
    want.sort();
    assert_eq!(
        dir_names(parent),
        want,
        "something was written beside the store"
    );
    for e in std::fs::read_dir(store).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().into_string().expect("file names stay UTF-8");
        assert!(
            e.file_type().unwrap().is_file(),
            "{n} is not a regular file"
        );
        assert!(n.len() < 255, "{n} is too long");
        let ok = n == "metadata.npkm"
            || n == ".numpack.lock"
            || (n.starts_with("data_") && n.ends_with(".npkd"))
            || (n.starts_with("deleted_") && n.ends_with(".npkb"));
        assert!(ok, "unexpected file {n:?}");
        assert!(!n.contains(['/', '\\', '\n']), "{n:?}");
    }
}

#[test]
fn every_operation_with_hostile_names_stays_inside_the_directory() {
    let (d, p) = store();
    std::fs::write(d.path().join("sentinel"), b"untouched").unwrap();
    let names = hostile();
    let io = ParallelIO::new(&p).unwrap();
    for (i, n) in names.iter().enumerate() {
        io.save_arrays(&[(n.clone(), value(i), DataType::Int32)])
            .unwrap();
    }
    assert_contained(d.path(), &p, &["sentinel"]);
    assert_eq!(io.list_arrays().len(), names.len());
    for (i, n) in names.iter().enumerate() {
        assert!(io.has_array(n), "{n:?}");
        assert_eq!(io.load_array::<i32>(n).unwrap(), value(i), "{n:?}");
        let m = io.get_array_metadata(n).unwrap();
        assert_eq!(&m.name, n);
        assert!(p.join(&m.data_file).is_file(), "{n:?} -> {}", m.data_file);
    }
    // Row operations create bitmaps and rewrite files: all of them inside.
    for (i, n) in names.iter().enumerate() {
        io.append_rows(n, &value(i + 1000)).unwrap();
        io.replace_rows(n, &value(i + 2000), &[0, 1]).unwrap();
        io.drop_arrays(n, Some(&[-1])).unwrap();
        assert_eq!(io.get_shape(n).unwrap(), vec![3, 2]);
    }
    assert_contained(d.path(), &p, &["sentinel"]);
    for n in names.iter().step_by(2) {
        io.compact_array(n).unwrap();
    }
    for (i, n) in names.iter().enumerate() {
        io.clone_array(n, &format!("{n}/clone")).unwrap();
        io.clone_array(&format!("{n}/clone"), &format!("../{i}"))
            .unwrap();
    }
    assert_contained(d.path(), &p, &["sentinel"]);
    assert_eq!(io.list_arrays().len(), 3 * names.len());
    for (i, n) in names.iter().enumerate() {
        let want = vec![
            vec![2000 + i as i32, 0],
            vec![2000 + i as i32, 1],
            vec![1000 + i as i32, 0],
        ];
        assert_eq!(to_rows(&io.load_array::<i32>(n).unwrap()), want, "{n:?}");
        assert_eq!(
            to_rows(&io.load_array::<i32>(&format!("../{i}")).unwrap()),
            want
        );
    }
    // Reopen: the names come back intact.
    drop(io);
    let io = ParallelIO::new(&p).unwrap();
    let listed = io.list_arrays();
    for n in &names {
        assert!(listed.contains(n), "{n:?}");
    }
    assert!(numpack::store::verify::verify_dir(&p).problems.is_empty());
    // Whole-array drops remove exactly their own files.
    for n in &names {
        io.drop_arrays(n, None).unwrap();
    }
    assert_eq!(io.list_arrays().len(), 2 * names.len());
    let files = dir_names(&p).len();
    assert_eq!(files, 2 + 2 * names.len(), "{:?}", dir_names(&p));
    io.reset().unwrap();
    assert_eq!(dir_names(&p), [".numpack.lock", "metadata.npkm"]);
    assert_contained(d.path(), &p, &["sentinel"]);
    assert_eq!(
        std::fs::read(d.path().join("sentinel")).unwrap(),
        b"untouched"
    );
    assert!(!Path::new("/tmp/numpack-escape").exists());
    assert!(!Path::new("/abs").exists());
}

#[test]
fn names_that_differ_only_in_unsafe_characters_stay_distinct() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    let names = [
        "a/b", "a\\b", "a_b", "ab", "a:b", "a b", "A/B", "a/b/", "/a/b", "a//b",
    ];
    for (i, n) in names.iter().enumerate() {
        io.save_arrays(&[(n.to_string(), value(i), DataType::Int32)])
            .unwrap();
    }
    let mut files: Vec<String> = names
        .iter()
        .map(|n| io.get_array_metadata(n).unwrap().data_file)
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(
        files.len(),
        names.len(),
        "two names share a data file: {files:?}"
    );
    for (i, n) in names.iter().enumerate() {
        assert_eq!(io.load_array::<i32>(n).unwrap(), value(i), "{n}");
    }
    // A plain name keeps the published file name; the others are encoded.
    assert_eq!(
        io.get_array_metadata("a_b").unwrap().data_file,
        "data_a_b.npkd"
    );
    assert_eq!(
        io.get_array_metadata("ab").unwrap().data_file,
        "data_ab.npkd"
    );
    assert!(io
        .get_array_metadata("a/b")
        .unwrap()
        .data_file
        .starts_with("data_~"));
}

#[test]
fn long_names_get_short_file_names() {
    let (d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    let plain_max = "p".repeat(200);
    let too_long = "p".repeat(201);
    let huge = "q".repeat(100_000);
    for (i, n) in [&plain_max, &too_long, &huge].into_iter().enumerate() {
        io.save_arrays(&[(n.clone(), value(i), DataType::Int32)])
            .unwrap();
        io.drop_arrays(n, Some(&[0])).unwrap();
    }
    assert_eq!(
        io.get_array_metadata(&plain_max).unwrap().data_file,
        format!("data_{plain_max}.npkd")
    );
    for n in [&too_long, &huge] {
        let f = io.get_array_metadata(n).unwrap().data_file;
        assert!(f.len() < 100, "{f}");
    }
    assert_contained(d.path(), &p, &[]);
    drop(io);
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.load_array::<i32>(&huge).unwrap(), rows_i32(&[[2, 1]], 2));
}

#[test]
fn invalid_names_are_refused_and_nothing_is_written() {
    let (d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    io.save_arrays(&[("ok".to_string(), value(0), DataType::Int32)])
        .unwrap();
    let before = dir_names(&p);
    let meta = std::fs::read(p.join("metadata.npkm")).unwrap();
    for bad in ["", "a\0b", "\0"] {
        let e = io
            .save_arrays(&[
                ("fine".to_string(), value(1), DataType::Int32),
                (bad.to_string(), value(2), DataType::Int32),
            ])
            .unwrap_err();
        assert!(matches!(e, NpkError::InvalidArrayName(_)), "{bad:?}: {e:?}");
        assert!(matches!(
            io.clone_array("ok", bad),
            Err(NpkError::InvalidArrayName(_))
        ));
    }
    assert!(!io.has_array("fine"));
    assert_eq!(dir_names(&p), before);
    assert_eq!(std::fs::read(p.join("metadata.npkm")).unwrap(), meta);
    // Operations on names that cannot exist just say so.
    assert!(matches!(
        io.load_array::<i32>(""),
        Err(NpkError::ArrayNotFound(_))
    ));
    assert!(matches!(
        io.append_rows("../ok", &value(0)),
        Err(NpkError::ArrayNotFound(_))
    ));
    io.drop_arrays("", None).unwrap();
    assert_contained(d.path(), &p, &[]);
}
