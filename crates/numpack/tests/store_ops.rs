//! Every operation of the Rust API (`ParallelIO`) on small arrays, checked against expected
//! values: save one/many, load, getitem, read_rows, stream_load, get_array_view, append,
//! replace, drop rows, drop arrays, compact, clone, reset, the queries and sync_metadata.

mod common;

use common::{arr, rows_i32, store, to_rows};
use ndarray::{s, Array2, ArrayD, Axis, Dimension, IxDyn};
use numpack::format::metadata::MetadataFile;
use numpack::prelude::*;
use numpack::store::now_micros;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `rows x cols` floats counting up from 0 in C order.
fn f32s(rows: usize, cols: usize) -> ArrayD<f32> {
    Array2::from_shape_fn((rows, cols), |(r, c)| (r * cols + c) as f32).into_dyn()
}

/// `n` rows of width 2 whose row `i` is `[base + i, -(base + i)]`.
fn tagged(base: i32, n: usize) -> ArrayD<i32> {
    let rows: Vec<[i32; 2]> = (0..n as i32).map(|i| [base + i, -(base + i)]).collect();
    rows_i32(&rows, 2)
}

fn to_rows_f32(a: &ArrayD<f32>) -> Vec<Vec<f32>> {
    a.outer_iter()
        .map(|r| r.iter().copied().collect())
        .collect()
}

fn ino(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().ino()
}

fn save_i32(io: &ParallelIO, name: &str, a: ArrayD<i32>) {
    io.save_arrays(&[(name.to_string(), a, DataType::Int32)])
        .unwrap();
}

#[test]
fn save_one_then_load_and_metadata() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    let before = now_micros();
    io.save_arrays(&[("a".to_string(), f32s(10, 3), DataType::Float32)])
        .unwrap();
    let after = now_micros();
    assert_eq!(io.load_array::<f32>("a").unwrap(), f32s(10, 3));
    let m = io.get_array_metadata("a").unwrap();
    assert_eq!(m.name, "a");
    assert_eq!(m.shape, vec![10, 3]);
    assert_eq!(m.dtype, DataType::Float32);
    assert_eq!(m.get_dtype(), DataType::Float32);
    assert_eq!(m.size_bytes, 120);
    assert_eq!(m.total_elements(), 30);
    assert_eq!(m.data_file, "data_a.npkd");
    assert!((before..=after).contains(&m.last_modified), "{m:?}");
    assert_eq!(io.get_modify_time("a"), Some(m.last_modified));
    assert_eq!(io.get_array_meta("a"), Some(m));
    assert_eq!(io.get_base_dir(), p.as_path());
    assert_eq!(std::fs::metadata(p.join("data_a.npkd")).unwrap().len(), 120);
}

#[test]
fn save_many_in_one_call_is_all_or_nothing() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    io.save_arrays(&[
        ("x".to_string(), tagged(0, 4), DataType::Int32),
        ("y".to_string(), tagged(100, 2), DataType::Int32),
        ("z".to_string(), tagged(200, 0), DataType::Int32),
    ])
    .unwrap();
    assert_eq!(io.list_arrays(), ["x", "y", "z"]);
    assert_eq!(io.load_array::<i32>("y").unwrap(), tagged(100, 2));
    assert_eq!(io.load_array::<i32>("z").unwrap().shape(), &[0, 2]);
    // A name given twice: nothing of the call is saved.
    let e = io
        .save_arrays(&[
            ("new".to_string(), tagged(0, 1), DataType::Int32),
            ("x".to_string(), tagged(7, 1), DataType::Int32),
            ("x".to_string(), tagged(8, 1), DataType::Int32),
        ])
        .unwrap_err();
    assert!(matches!(e, NpkError::InvalidOperation(_)), "{e:?}");
    // A DataType that is not the element type's: nothing saved either.
    let e = io
        .save_arrays(&[
            ("new".to_string(), tagged(0, 1), DataType::Int32),
            ("bad".to_string(), tagged(0, 1), DataType::Float32),
        ])
        .unwrap_err();
    assert!(matches!(e, NpkError::InvalidDtype(_)), "{e:?}");
    assert!(!io.has_array("new") && !io.has_array("bad"));
    assert_eq!(io.load_array::<i32>("x").unwrap(), tagged(0, 4));
    // An empty call is a no-op.
    io.save_arrays::<i32>(&[]).unwrap();
    assert_eq!(io.list_arrays().len(), 3);
    // Only the expected files exist.
    assert_eq!(
        common::dir_names(&p),
        [
            ".numpack.lock",
            "data_x.npkd",
            "data_y.npkd",
            "data_z.npkd",
            "metadata.npkm"
        ]
    );
}

#[test]
fn save_overwrites_whole_with_new_shape_and_dtype_and_forgets_deleted_rows() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    io.save_arrays(&[("x".to_string(), f32s(4, 2), DataType::Float32)])
        .unwrap();
    io.drop_arrays("x", Some(&[0])).unwrap();
    assert!(p.join("deleted_x.npkb").exists());
    let t0 = io.get_modify_time("x").unwrap();
    // Same physical shape and dtype: every row visible again, none deleted.
    io.save_arrays(&[("x".to_string(), f32s(4, 2), DataType::Float32)])
        .unwrap();
    assert!(!p.join("deleted_x.npkb").exists());
    assert_eq!(io.load_array::<f32>("x").unwrap(), f32s(4, 2));
    assert!(io.get_modify_time("x").unwrap() >= t0);
    // New dtype and ndim.
    io.drop_arrays("x", Some(&[1])).unwrap();
    let i = arr(&[3], vec![1i64, 2, 3]);
    io.save_arrays(&[("x".to_string(), i.clone(), DataType::Int64)])
        .unwrap();
    assert_eq!(io.load_array::<i64>("x").unwrap(), i);
    assert_eq!(io.get_shape("x").unwrap(), vec![3]);
    let m = io.get_array_metadata("x").unwrap();
    assert_eq!((m.dtype, m.size_bytes), (DataType::Int64, 24));
    assert!(matches!(
        io.load_array::<f32>("x"),
        Err(NpkError::InvalidDtype(_))
    ));
    assert_eq!(std::fs::metadata(p.join("data_x.npkd")).unwrap().len(), 24);
}

#[test]
fn load_errors() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    io.save_arrays(&[("a".to_string(), f32s(2, 2), DataType::Float32)])
        .unwrap();
    let e = io.load_array::<f64>("a").unwrap_err();
    assert!(
        matches!(&e, NpkError::InvalidDtype(m) if m.contains("'a'")),
        "{e}"
    );
    let e = io.load_array::<f32>("missing").unwrap_err();
    assert!(matches!(&e, NpkError::ArrayNotFound(n) if n == "missing"));
    assert_eq!(e.to_string(), "Array not found: missing");
    // NpkError is a std error and converts from io::Error.
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().contains("missing"));
    let from_io: NpkError = std::io::Error::other("boom").into();
    assert!(matches!(from_io, NpkError::IoError(_)));
}

#[test]
fn getitem_negative_unordered_and_duplicate_indexes() {
    let (_d, p) = store();
    let io = ParallelIO::new(p).unwrap();
    let a = ArrayD::from_shape_fn(IxDyn(&[6, 2, 3]), |i| {
        (i[0] * 100 + i[1] * 10 + i[2]) as i16
    });
    io.save_arrays(&[("a".to_string(), a.clone(), DataType::Int16)])
        .unwrap();
    let idx = [5i64, -6, 3, 3, -1, 0, 2];
    let got: ArrayD<i16> = io.getitem("a", &idx).unwrap();
    assert_eq!(got.shape(), &[7, 2, 3]);
    for (k, &i) in idx.iter().enumerate() {
        let j = if i < 0 { i + 6 } else { i } as usize;
        assert_eq!(got.index_axis(Axis(0), k), a.index_axis(Axis(0), j), "{k}");
    }
    let one: ArrayD<i16> = io.getitem("a", &[-2]).unwrap();
    assert_eq!(one.shape(), &[1, 2, 3], "an int index keeps the row axis");
    let empty: ArrayD<i16> = io.getitem("a", &[]).unwrap();
    assert_eq!(empty.shape(), &[0, 2, 3]);
    for bad in [6i64, -7, i64::MAX, i64::MIN] {
        assert!(
            matches!(io.getitem::<i16>("a", &[0, bad]), Err(NpkError::IndexOutOfBounds(i, 6)) if i == bad),
            "{bad}"
        );
    }
    assert!(matches!(
        io.getitem::<i32>("a", &[0]),
        Err(NpkError::InvalidDtype(_))
    ));
    assert!(matches!(
        io.getitem::<i16>("zz", &[0]),
        Err(NpkError::ArrayNotFound(_))
    ));
}

#[test]
fn getitem_and_read_rows_use_logical_indexes_after_deletions() {
    let (_d, p) = store();
    let io = ParallelIO::new(p).unwrap();
    save_i32(&io, "a", tagged(0, 100));
    // Delete rows 0, 63, 64, 99: logical row j is now physical row live[j].
    io.drop_arrays("a", Some(&[0, 63, 64, 99])).unwrap();
    let live: Vec<i32> = (0..100).filter(|r| ![0, 63, 64, 99].contains(r)).collect();
    assert_eq!(io.get_shape("a").unwrap(), vec![96, 2]);
    let idx = [0i64, -1, 62, 63, 62, -96];
    let got: ArrayD<i32> = io.getitem("a", &idx).unwrap();
    let want: Vec<Vec<i32>> = idx
        .iter()
        .map(|&i| {
            let r = live[if i < 0 { i + 96 } else { i } as usize];
            vec![r, -r]
        })
        .collect();
    assert_eq!(to_rows(&got), want);
    let raw = io.read_rows("a", &idx).unwrap();
    let want_raw: Vec<u8> = want
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(raw, want_raw);
    assert!(matches!(
        io.getitem::<i32>("a", &[96]),
        Err(NpkError::IndexOutOfBounds(96, 96))
    ));
    assert!(matches!(
        io.read_rows("a", &[-97]),
        Err(NpkError::IndexOutOfBounds(-97, 96))
    ));
}

#[test]
fn read_rows_returns_little_endian_bytes() {
    let (_d, p) = store();
    let io = ParallelIO::new(p).unwrap();
    io.save_arrays(&[("a".to_string(), f32s(10, 3), DataType::Float32)])
        .unwrap();
    let raw = io.read_rows("a", &[-1, 1, -1]).unwrap();
    let want: Vec<u8> = [27.0f32, 28.0, 29.0, 3.0, 4.0, 5.0, 27.0, 28.0, 29.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(raw, want);
    assert!(io.read_rows("a", &[]).unwrap().is_empty());
    assert!(matches!(
        io.read_rows("a", &[10]),
        Err(NpkError::IndexOutOfBounds(10, 10))
    ));
    assert!(matches!(
        io.read_rows("nope", &[0]),
        Err(NpkError::ArrayNotFound(_))
    ));
}

#[test]
fn stream_load_batches_logical_rows_of_a_snapshot() {
    let (_d, p) = store();
    let io = ParallelIO::new(p).unwrap();
    save_i32(&io, "a", tagged(0, 10));
    let sizes = |n: usize| -> Vec<usize> {
        io.stream_load::<i32>("a", n)
            .unwrap()
            .map(|b| b.unwrap().shape()[0])
            .collect()
    };
    assert_eq!(sizes(3), [3, 3, 3, 1]);
    assert_eq!(sizes(1), [1; 10]);
    assert_eq!(sizes(10), [10]);
    assert_eq!(sizes(1000), [10]);
    io.drop_arrays("a", Some(&[0, 5, -1])).unwrap();
    let mut all = Vec::new();
    for b in io.stream_load::<i32>("a", 4).unwrap() {
        let b = b.unwrap();
        assert_eq!(b.shape()[1], 2);
        all.extend(to_rows(&b));
    }
    assert_eq!(all, to_rows(&io.load_array::<i32>("a").unwrap()));
    assert_eq!(all.len(), 7);
    assert_eq!(all[0], vec![1, -1]);
    // The stream reads the array as it was when the stream was created.
    let stream = io.stream_load::<i32>("a", 2).unwrap();
    io.append_rows("a", &tagged(500, 3)).unwrap();
    io.compact_array("a").unwrap();
    io.replace_rows("a", &tagged(900, 1), &[0]).unwrap();
    let rows: usize = stream.map(|b| b.unwrap().shape()[0]).sum();
    assert_eq!(rows, 7);
    // Errors.
    assert!(matches!(
        io.stream_load::<i32>("a", 0),
        Err(NpkError::InvalidOperation(_))
    ));
    assert!(matches!(
        io.stream_load::<i64>("a", 1),
        Err(NpkError::InvalidDtype(_))
    ));
    assert!(matches!(
        io.stream_load::<i32>("zz", 1),
        Err(NpkError::ArrayNotFound(_))
    ));
    save_i32(&io, "empty", tagged(0, 0));
    assert_eq!(io.stream_load::<i32>("empty", 5).unwrap().count(), 0);
}

#[test]
fn get_array_view_is_a_lazy_snapshot() {
    let (_d, p) = store();
    let io = ParallelIO::new(p).unwrap();
    save_i32(&io, "a", tagged(0, 6));
    io.drop_arrays("a", Some(&[1])).unwrap();
    let v = io.get_array_view("a").unwrap();
    assert_eq!(v.shape(), vec![5, 2]);
    assert_eq!(v.dtype(), DataType::Int32);
    assert_eq!(v.logical_shape(), vec![5, 2]);
    assert_eq!(v.meta.shape, vec![6, 2], "physical shape in the record");
    assert_eq!(v.row::<i32>(0).unwrap(), arr(&[2], vec![0, 0]));
    assert_eq!(v.row::<i32>(1).unwrap(), arr(&[2], vec![2, -2]));
    assert_eq!(v.row::<i32>(-1).unwrap(), arr(&[2], vec![5, -5]));
    assert!(matches!(
        v.row::<i32>(5),
        Err(NpkError::IndexOutOfBounds(5, 5))
    ));
    assert!(matches!(v.row::<u32>(0), Err(NpkError::InvalidDtype(_))));
    assert!(matches!(
        v.to_array::<f32>(),
        Err(NpkError::InvalidDtype(_))
    ));
    let expected = io.load_array::<i32>("a").unwrap();
    assert_eq!(v.to_array::<i32>().unwrap(), expected);
    // Later appends, drops and whole-array replacement do not change the view.
    io.append_rows("a", &tagged(50, 2)).unwrap();
    io.drop_arrays("a", Some(&[0])).unwrap();
    io.compact_array("a").unwrap();
    assert_eq!(v.shape(), vec![5, 2]);
    assert_eq!(v.to_array::<i32>().unwrap(), expected);
    save_i32(&io, "a", tagged(1000, 1));
    assert_eq!(v.to_array::<i32>().unwrap(), expected);
    assert_eq!(io.get_array_view("a").unwrap().shape(), vec![1, 2]);
    assert!(matches!(
        io.get_array_view("zz"),
        Err(NpkError::ArrayNotFound(_))
    ));
}

#[test]
fn append_grows_in_place() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    save_i32(&io, "a", tagged(0, 5));
    let data = p.join("data_a.npkd");
    let inode = ino(&data);
    let t0 = io.get_modify_time("a").unwrap();
    io.append_rows("a", &tagged(5, 3)).unwrap();
    assert_eq!(ino(&data), inode, "append must not rewrite the file");
    assert_eq!(io.load_array::<i32>("a").unwrap(), tagged(0, 8));
    let m = io.get_array_metadata("a").unwrap();
    assert_eq!((m.shape.clone(), m.size_bytes), (vec![8, 2], 64));
    assert!(m.last_modified >= t0);
    assert_eq!(std::fs::metadata(&data).unwrap().len(), 64);
    // Zero rows: nothing changes.
    io.append_rows("a", &tagged(0, 0)).unwrap();
    assert_eq!(io.get_shape("a").unwrap(), vec![8, 2]);
    // A non-contiguous input (every other row, reversed columns) is appended by value.
    let strided = tagged(100, 6).slice_move(s![..;2, ..;-1]).into_dyn();
    assert!(strided.as_slice().is_none());
    io.append_rows("a", &strided).unwrap();
    let got = io.getitem::<i32>("a", &[-3, -1]).unwrap();
    assert_eq!(to_rows(&got), [[-100, 100], [-104, 104]]);
}

#[test]
fn append_errors_leave_the_array_unchanged() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    save_i32(&io, "a", tagged(0, 2));
    assert!(matches!(
        io.append_rows("a", &arr(&[1, 3], vec![1i32, 2, 3])),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.append_rows("a", &arr(&[2], vec![1i32, 2])),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.append_rows("a", &arr(&[1, 2, 1], vec![1i32, 2])),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.append_rows("a", &arr(&[1, 2], vec![1i64, 2])),
        Err(NpkError::InvalidDtype(_))
    ));
    assert!(matches!(
        io.append_rows("a", &arr(&[1, 2], vec![1u32, 2])),
        Err(NpkError::InvalidDtype(_))
    ));
    assert!(matches!(
        io.append_rows("nope", &tagged(0, 1)),
        Err(NpkError::ArrayNotFound(_))
    ));
    assert_eq!(io.load_array::<i32>("a").unwrap(), tagged(0, 2));
    assert_eq!(std::fs::metadata(p.join("data_a.npkd")).unwrap().len(), 16);
}

#[test]
fn replace_writes_rows_in_place_by_logical_index() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    save_i32(&io, "a", tagged(0, 8));
    let data = p.join("data_a.npkd");
    let inode = ino(&data);
    // Unordered and negative: value row k goes to index k.
    io.replace_rows("a", &tagged(100, 3), &[5, 0, -1]).unwrap();
    let rows = to_rows(&io.load_array::<i32>("a").unwrap());
    assert_eq!(rows[5], [100, -100]);
    assert_eq!(rows[0], [101, -101]);
    assert_eq!(rows[7], [102, -102]);
    assert_eq!(rows[1], [1, -1]);
    assert_eq!(ino(&data), inode, "replace must not rewrite the file");
    // Duplicates: the later one wins (NumPy's a[idx] = v).
    io.replace_rows("a", &tagged(200, 3), &[2, -6, 3]).unwrap();
    assert_eq!(
        to_rows(&io.getitem("a", &[2, 3]).unwrap()),
        [[201, -201], [202, -202]]
    );
    // One row broadcasts to every index.
    io.replace_rows("a", &tagged(300, 1), &[1, 4, 6]).unwrap();
    for i in [1, 4, 6] {
        assert_eq!(to_rows(&io.getitem("a", &[i]).unwrap()), [[300, -300]]);
    }
    // After deletions indexes are logical.
    io.drop_arrays("a", Some(&[0, 1])).unwrap(); // physical 2.. remain
    io.replace_rows("a", &tagged(400, 2), &[0, -1]).unwrap();
    let m = io.get_array_metadata("a").unwrap();
    assert_eq!(m.shape, vec![8, 2]);
    let rows = to_rows(&io.load_array::<i32>("a").unwrap());
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0], [400, -400]);
    assert_eq!(rows[5], [401, -401]);
    // The deleted rows were not touched on disk.
    let raw = std::fs::read(&data).unwrap();
    let phys: Vec<i32> = raw
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(&phys[0..4], &[101, -101, 300, -300]);
    // An empty index list with zero rows is a no-op.
    io.replace_rows("a", &tagged(0, 0), &[]).unwrap();
    assert_eq!(to_rows(&io.load_array::<i32>("a").unwrap()), rows);
}

#[test]
fn replace_errors_change_nothing() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    save_i32(&io, "a", tagged(0, 4));
    let cases: Vec<(NpkResult<()>, &str)> = vec![
        (io.replace_rows("a", &tagged(9, 2), &[0, 1, 2]), "count"),
        (io.replace_rows("a", &tagged(9, 2), &[0]), "count"),
        (io.replace_rows("a", &tagged(9, 2), &[0, 4]), "range"),
        (io.replace_rows("a", &tagged(9, 1), &[-5]), "range"),
        (
            io.replace_rows("a", &arr(&[1, 3], vec![1i32, 2, 3]), &[0]),
            "width",
        ),
        (
            io.replace_rows("a", &arr(&[1, 2], vec![1.0f32, 2.0]), &[0]),
            "dtype",
        ),
        (io.replace_rows("zz", &tagged(9, 1), &[0]), "missing"),
    ];
    for (res, why) in cases {
        let e = res.unwrap_err();
        let ok = match why {
            "count" | "width" => matches!(e, NpkError::InvalidShape(_)),
            "range" => matches!(e, NpkError::IndexOutOfBounds(_, 4)),
            "dtype" => matches!(e, NpkError::InvalidDtype(_)),
            _ => matches!(e, NpkError::ArrayNotFound(_)),
        };
        assert!(ok, "{why}: {e:?}");
    }
    assert_eq!(io.load_array::<i32>("a").unwrap(), tagged(0, 4));
    assert!(!p.join(".numpack.journal").exists());
}

#[test]
fn drop_rows_is_logical_and_normalises_against_the_logical_length() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    save_i32(&io, "a", tagged(0, 10));
    let data_before = std::fs::read(p.join("data_a.npkd")).unwrap();
    io.drop_arrays("a", Some(&[-1])).unwrap();
    // 9 logical rows left: -1 and -2 are physical rows 8 and 7 (upstream got this wrong).
    io.drop_arrays("a", Some(&[-1, -2, -1])).unwrap();
    assert_eq!(io.get_shape("a").unwrap(), vec![7, 2]);
    assert_eq!(io.load_array::<i32>("a").unwrap(), tagged(0, 7));
    // Logical index 3 is physical 3; after dropping it, logical 3 is physical 4.
    io.drop_arrays("a", Some(&[3])).unwrap();
    io.drop_arrays("a", Some(&[3])).unwrap();
    let firsts: Vec<i32> = to_rows(&io.load_array::<i32>("a").unwrap())
        .iter()
        .map(|r| r[0])
        .collect();
    assert_eq!(firsts, [0, 1, 2, 5, 6]);
    // Out of range: an error, and nothing of the call is dropped.
    assert!(matches!(
        io.drop_arrays("a", Some(&[0, 5])),
        Err(NpkError::IndexOutOfBounds(5, 5))
    ));
    assert_eq!(io.get_shape("a").unwrap(), vec![5, 2]);
    assert!(matches!(
        io.drop_arrays("zz", Some(&[0])),
        Err(NpkError::ArrayNotFound(_))
    ));
    // The data file and the physical shape are untouched; a bitmap records the deletions.
    assert_eq!(std::fs::read(p.join("data_a.npkd")).unwrap(), data_before);
    assert_eq!(io.get_array_metadata("a").unwrap().shape, vec![10, 2]);
    assert!(p.join("deleted_a.npkb").exists());
    // An empty list deletes nothing.
    io.drop_arrays("a", Some(&[])).unwrap();
    assert_eq!(io.get_shape("a").unwrap(), vec![5, 2]);
    // Deletions survive a reopen.
    drop(io);
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.get_shape("a").unwrap(), vec![5, 2]);
}

#[test]
fn dropping_the_last_rows_removes_the_array() {
    // As the published 0.6: the array goes (record, data file, bitmap) with its last rows.
    let (_d, p) = store();
    let io = ParallelIO::new(p.clone()).unwrap();
    save_i32(&io, "a", tagged(0, 3));
    io.drop_arrays("a", Some(&[0, 1])).unwrap();
    assert!(io.has_array("a"));
    io.drop_arrays("a", Some(&[0])).unwrap();
    assert!(!io.has_array("a"));
    assert!(!p.join("data_a.npkd").exists() && !p.join("deleted_a.npkb").exists());
    assert!(matches!(
        io.append_rows("a", &tagged(10, 2)),
        Err(NpkError::ArrayNotFound(_))
    ));
    // An array saved with no rows stays: a drop of nothing deleted nothing.
    save_i32(&io, "e", tagged(0, 0));
    io.drop_arrays("e", Some(&[])).unwrap();
    assert!(io.has_array("e"));
}

#[test]
fn append_after_deletion_keeps_deleted_rows_deleted() {
    // 10 rows, drop [3], append 5: upstream resurrected row 3 (same 64-row word).
    let (_d, p) = store();
    let io = ParallelIO::new(p).unwrap();
    save_i32(&io, "a", tagged(0, 10));
    io.drop_arrays("a", Some(&[3])).unwrap();
    io.append_rows("a", &tagged(10, 5)).unwrap();
    assert_eq!(io.get_shape("a").unwrap(), vec![14, 2]);
    let firsts: Vec<i32> = to_rows(&io.load_array::<i32>("a").unwrap())
        .iter()
        .map(|r| r[0])
        .collect();
    let want: Vec<i32> = (0..15).filter(|&r| r != 3).collect();
    assert_eq!(firsts, want);
    // The appended rows are addressable and deletable by logical index.
    io.drop_arrays("a", Some(&[-1, 9])).unwrap();
    let firsts: Vec<i32> = to_rows(&io.load_array::<i32>("a").unwrap())
        .iter()
        .map(|r| r[0])
        .collect();
    let want: Vec<i32> = (0..14).filter(|&r| r != 3 && r != 10).collect();
    assert_eq!(firsts, want);
}

#[test]
fn drop_whole_arrays() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    for n in ["a", "b", "c"] {
        save_i32(&io, n, tagged(0, 3));
    }
    io.drop_arrays("a", Some(&[0])).unwrap();
    io.drop_arrays("a", None).unwrap();
    assert!(!io.has_array("a"));
    assert!(!p.join("data_a.npkd").exists());
    assert!(!p.join("deleted_a.npkb").exists());
    assert!(io.get_modify_time("a").is_none());
    assert!(io.get_array_meta("a").is_none());
    assert!(matches!(
        io.get_array_metadata("a"),
        Err(NpkError::ArrayNotFound(_))
    ));
    // A missing name is skipped silently.
    io.drop_arrays("never-existed", None).unwrap();
    io.batch_drop_arrays(&["b".to_string(), "ghost".to_string()], None)
        .unwrap();
    assert_eq!(io.list_arrays(), ["c"]);
    // Row deletion through the batch form.
    save_i32(&io, "d", tagged(0, 3));
    io.batch_drop_arrays(&["c".to_string(), "d".to_string()], Some(&[0]))
        .unwrap();
    assert_eq!(io.get_shape("c").unwrap(), vec![2, 2]);
    assert_eq!(io.get_shape("d").unwrap(), vec![2, 2]);
    assert_eq!(
        common::dir_names(&p),
        [
            ".numpack.lock",
            "data_c.npkd",
            "data_d.npkd",
            "deleted_c.npkb",
            "deleted_d.npkb",
            "metadata.npkm"
        ]
    );
    drop(io);
    assert_eq!(ParallelIO::new(&p).unwrap().list_arrays(), ["c", "d"]);
}

#[test]
fn compact_removes_deleted_rows_and_the_bitmap() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    save_i32(&io, "a", tagged(0, 70));
    io.drop_arrays("a", Some(&[0, 64, 69])).unwrap();
    io.append_rows("a", &tagged(70, 3)).unwrap();
    let expected = io.load_array::<i32>("a").unwrap();
    assert_eq!(expected.shape(), &[70, 2]);
    let t0 = io.get_modify_time("a").unwrap();
    io.compact_array("a").unwrap();
    assert!(!p.join("deleted_a.npkb").exists());
    assert_eq!(io.load_array::<i32>("a").unwrap(), expected);
    let m = io.get_array_metadata("a").unwrap();
    assert_eq!((m.shape.clone(), m.size_bytes), (vec![70, 2], 560));
    assert!(m.last_modified >= t0);
    assert_eq!(std::fs::metadata(p.join("data_a.npkd")).unwrap().len(), 560);
    // The bytes on disk are exactly the logical rows.
    let raw = std::fs::read(p.join("data_a.npkd")).unwrap();
    let want: Vec<u8> = expected.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(raw, want);
    // No deletions: a no-op that leaves the file alone.
    let inode = ino(&p.join("data_a.npkd"));
    io.compact_array("a").unwrap();
    io.update("a").unwrap();
    assert_eq!(ino(&p.join("data_a.npkd")), inode);
    // `update` is the same operation.
    io.drop_arrays("a", Some(&[0])).unwrap();
    io.update("a").unwrap();
    assert_eq!(io.get_array_metadata("a").unwrap().shape, vec![69, 2]);
    assert!(matches!(
        io.compact_array("zz"),
        Err(NpkError::ArrayNotFound(_))
    ));
}

#[test]
fn clone_is_an_independent_compacted_copy() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    save_i32(&io, "a", tagged(0, 6));
    io.drop_arrays("a", Some(&[2])).unwrap();
    io.clone_array("a", "b").unwrap();
    let a = io.load_array::<i32>("a").unwrap();
    assert_eq!(io.load_array::<i32>("b").unwrap(), a);
    let mb = io.get_array_metadata("b").unwrap();
    assert_eq!(mb.shape, vec![5, 2], "the clone is compacted");
    assert_eq!(mb.data_file, "data_b.npkd");
    assert!(!p.join("deleted_b.npkb").exists());
    // Changing either leaves the other alone.
    io.replace_rows("a", &tagged(100, 1), &[0]).unwrap();
    io.append_rows("b", &tagged(200, 1)).unwrap();
    io.drop_arrays("b", Some(&[1])).unwrap();
    assert_eq!(to_rows(&io.getitem("b", &[0]).unwrap()), [[0, 0]]);
    assert_eq!(io.get_shape("a").unwrap(), vec![5, 2]);
    assert_eq!(io.get_shape("b").unwrap(), vec![5, 2]);
    io.drop_arrays("a", None).unwrap();
    assert_eq!(io.get_shape("b").unwrap(), vec![5, 2]);
    // Errors: existing target, missing source, invalid target name.
    save_i32(&io, "c", tagged(0, 1));
    assert!(matches!(
        io.clone_array("b", "c"),
        Err(NpkError::InvalidOperation(m)) if m.contains("already exists")
    ));
    assert_eq!(io.load_array::<i32>("c").unwrap(), tagged(0, 1));
    assert!(matches!(
        io.clone_array("zz", "d"),
        Err(NpkError::ArrayNotFound(_))
    ));
    assert!(matches!(
        io.clone_array("b", ""),
        Err(NpkError::InvalidArrayName(_))
    ));
    assert!(!io.has_array("d"));
}

#[test]
fn reset_removes_every_array_and_file() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    for n in ["a", "b", "../c"] {
        save_i32(&io, n, tagged(0, 3));
    }
    io.drop_arrays("a", Some(&[1])).unwrap();
    // An orphan data file of a killed save is removed too.
    std::fs::write(p.join("data_orphan.npkd"), [1, 2, 3]).unwrap();
    std::fs::write(p.join("deleted_orphan.npkb"), [1, 2, 3]).unwrap();
    io.reset().unwrap();
    assert!(io.list_arrays().is_empty());
    assert_eq!(common::dir_names(&p), [".numpack.lock", "metadata.npkm"]);
    // The store stays usable, and a new array does not inherit an old bitmap.
    save_i32(&io, "a", tagged(0, 3));
    assert_eq!(io.get_shape("a").unwrap(), vec![3, 2]);
    drop(io);
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.list_arrays(), ["a"]);
    io.reset().unwrap();
    io.reset().unwrap();
    assert!(io.list_arrays().is_empty());
}

#[test]
fn queries() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    assert!(io.list_arrays().is_empty());
    assert!(!io.has_array("a"));
    assert!(io.get_modify_time("a").is_none());
    assert!(matches!(io.get_shape("a"), Err(NpkError::ArrayNotFound(_))));
    for n in ["zeta", "alpha", "mid"] {
        save_i32(&io, n, tagged(0, 2));
    }
    assert_eq!(io.list_arrays(), ["alpha", "mid", "zeta"]);
    assert_eq!(io.get_member_list(), io.list_arrays());
    assert!(io.has_array("mid"));
    assert!(!io.has_array("Mid"));
    io.drop_arrays("mid", Some(&[0])).unwrap();
    assert_eq!(io.get_shape("mid").unwrap(), vec![1, 2]);
    assert_eq!(io.get_array_metadata("mid").unwrap().shape, vec![2, 2]);
    // The modify time moves forward with appends.
    let t0 = io.get_modify_time("zeta").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    io.append_rows("zeta", &tagged(0, 1)).unwrap();
    assert!(io.get_modify_time("zeta").unwrap() > t0);
}

#[test]
fn sync_metadata_puts_everything_on_disk() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    io.sync_metadata().unwrap(); // nothing written yet
    save_i32(&io, "a", tagged(0, 3));
    io.append_rows("a", &tagged(3, 1)).unwrap();
    io.drop_arrays("a", Some(&[0])).unwrap();
    io.sync_metadata().unwrap();
    io.sync_metadata().unwrap();
    // What is on disk decodes to what the handle reports, without reopening.
    let m = MetadataFile::decode(&std::fs::read(p.join("metadata.npkm")).unwrap()).unwrap();
    assert_eq!(m.arrays["a"], io.get_array_metadata("a").unwrap());
    assert_eq!(m.arrays["a"].shape, vec![4, 2]);
    assert_eq!(std::fs::metadata(p.join("data_a.npkd")).unwrap().len(), 32);
    assert!(numpack::store::verify::verify_dir(&p).problems.is_empty());
    // Another process's view is a fresh handle: it sees the same state.
    let other = ParallelIO::new(&p).unwrap();
    assert_eq!(other.load_array::<i32>("a").unwrap(), tagged(1, 3));
}

#[test]
fn zero_d_arrays() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    let scalar = ArrayD::from_elem(IxDyn(&[]), 7.5f64);
    io.save_arrays(&[("s".to_string(), scalar.clone(), DataType::Float64)])
        .unwrap();
    assert_eq!(io.load_array::<f64>("s").unwrap(), scalar);
    assert_eq!(io.get_shape("s").unwrap(), Vec::<u64>::new());
    let m = io.get_array_metadata("s").unwrap();
    assert_eq!((m.shape.len(), m.size_bytes), (0, 8));
    assert_eq!(
        std::fs::read(p.join("data_s.npkd")).unwrap(),
        7.5f64.to_le_bytes()
    );
    let v = io.get_array_view("s").unwrap();
    assert_eq!(v.shape(), Vec::<usize>::new());
    assert_eq!(v.to_array::<f64>().unwrap(), scalar);
    // Row operations have no rows to work on.
    let one = ArrayD::from_elem(IxDyn(&[]), 1.0f64);
    assert!(matches!(
        io.getitem::<f64>("s", &[0]),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.read_rows("s", &[0]),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.drop_arrays("s", Some(&[0])),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.append_rows("s", &one),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.replace_rows("s", &one, &[0]),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.stream_load::<f64>("s", 1),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(v.row::<f64>(0), Err(NpkError::InvalidShape(_))));
    // Whole-array operations work.
    io.compact_array("s").unwrap();
    io.clone_array("s", "t").unwrap();
    assert_eq!(io.load_array::<f64>("t").unwrap(), scalar);
    drop(io);
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.load_array::<f64>("s").unwrap(), scalar);
    io.drop_arrays("s", None).unwrap();
    assert_eq!(io.list_arrays(), ["t"]);
}

#[test]
fn empty_arrays() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    for shape in [&[0usize][..], &[0, 3], &[0, 4, 2], &[3, 0], &[2, 0, 5]] {
        let name = format!("e{shape:?}");
        let e = ArrayD::<i16>::zeros(IxDyn(shape));
        io.save_arrays(&[(name.clone(), e.clone(), DataType::Int16)])
            .unwrap();
        assert_eq!(io.load_array::<i16>(&name).unwrap(), e, "{name}");
        let want: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        assert_eq!(io.get_shape(&name).unwrap(), want);
        assert_eq!(io.get_array_metadata(&name).unwrap().size_bytes, 0);
        assert_eq!(
            std::fs::metadata(io.store().data_path(&name).unwrap())
                .unwrap()
                .len(),
            0
        );
        let none: ArrayD<i16> = io.getitem(&name, &[]).unwrap();
        assert_eq!(none.shape()[0], 0);
        io.clone_array(&name, &format!("{name}-clone")).unwrap();
        assert_eq!(io.load_array::<i16>(&format!("{name}-clone")).unwrap(), e);
    }
    // Zero rows: no index is valid, streams are empty, appends work.
    assert!(matches!(
        io.getitem::<i16>("e[0, 3]", &[0]),
        Err(NpkError::IndexOutOfBounds(0, 0))
    ));
    assert!(matches!(
        io.drop_arrays("e[0, 3]", Some(&[-1])),
        Err(NpkError::IndexOutOfBounds(-1, 0))
    ));
    assert_eq!(io.stream_load::<i16>("e[0, 3]", 4).unwrap().count(), 0);
    io.append_rows("e[0, 4, 2]", &ArrayD::<i16>::ones(IxDyn(&[2, 4, 2])))
        .unwrap();
    assert_eq!(
        io.load_array::<i16>("e[0, 4, 2]").unwrap(),
        ArrayD::<i16>::ones(IxDyn(&[2, 4, 2]))
    );
    // Zero-width rows: rows exist but hold no bytes.
    let w = "e[3, 0]";
    let got: ArrayD<i16> = io.getitem(w, &[2, -3, 2]).unwrap();
    assert_eq!(got.shape(), &[3, 0]);
    io.replace_rows(w, &ArrayD::<i16>::zeros(IxDyn(&[1, 0])), &[1])
        .unwrap();
    io.append_rows(w, &ArrayD::<i16>::zeros(IxDyn(&[2, 0])))
        .unwrap();
    io.drop_arrays(w, Some(&[0, -1])).unwrap();
    assert_eq!(io.get_shape(w).unwrap(), vec![3, 0]);
    io.compact_array(w).unwrap();
    assert_eq!(io.get_array_metadata(w).unwrap().shape, vec![3, 0]);
    let batches: Vec<usize> = io
        .stream_load::<i16>(w, 2)
        .unwrap()
        .map(|b| b.unwrap().shape()[0])
        .collect();
    assert_eq!(batches, [2, 1]);
    drop(io);
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.list_arrays().len(), 10);
}

#[test]
fn n_dimensional_shapes() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    let shapes: [&[usize]; 6] = [
        &[5],
        &[4, 3],
        &[3, 2, 4],
        &[2, 3, 1, 2],
        &[2, 1, 2, 1, 3],
        &[3, 2, 2, 2, 2, 2],
    ];
    for shape in shapes {
        let name = format!("nd{}", shape.len());
        let a = ArrayD::from_shape_fn(IxDyn(shape), |ix| {
            ix.slice().iter().fold(0u32, |acc, &i| acc * 10 + i as u32)
        });
        io.save_arrays(&[(name.clone(), a.clone(), DataType::Uint32)])
            .unwrap();
        assert_eq!(io.load_array::<u32>(&name).unwrap(), a);
        let rows = io.getitem::<u32>(&name, &[-1, 0]).unwrap();
        let n = shape[0];
        assert_eq!(rows.index_axis(Axis(0), 0), a.index_axis(Axis(0), n - 1));
        assert_eq!(rows.index_axis(Axis(0), 1), a.index_axis(Axis(0), 0));
        // Rows of the same trailing shape append; others do not.
        io.append_rows(&name, &a).unwrap();
        let mut bad = shape.to_vec();
        bad.push(1);
        assert!(io
            .append_rows(&name, &ArrayD::<u32>::zeros(IxDyn(&bad)))
            .is_err());
        io.drop_arrays(&name, Some(&[0])).unwrap();
        let mut want: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        want[0] = 2 * n as u64 - 1;
        assert_eq!(io.get_shape(&name).unwrap(), want);
        let view = io.get_array_view(&name).unwrap();
        assert_eq!(
            view.row::<u32>(-1).unwrap(),
            a.index_axis(Axis(0), n - 1).to_owned()
        );
        let streamed: usize = io
            .stream_load::<u32>(&name, 2)
            .unwrap()
            .map(|b| {
                let b = b.unwrap();
                assert_eq!(&b.shape()[1..], &shape[1..]);
                b.shape()[0]
            })
            .sum();
        assert_eq!(streamed, 2 * n - 1);
    }
}

#[test]
fn non_standard_layouts_are_stored_as_their_values() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    let a = f32s(4, 3);
    let fortran = a.clone().reversed_axes(); // 3x4 in Fortran order
    assert!(fortran.as_slice().is_none());
    io.save_arrays(&[("t".to_string(), fortran, DataType::Float32)])
        .unwrap();
    assert_eq!(io.load_array::<f32>("t").unwrap(), a.t().to_owned());
    let raw = std::fs::read(p.join("data_t.npkd")).unwrap();
    let want: Vec<u8> = a.t().iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(raw, want, "C order on disk");
    // Replace with a strided value.
    let strided = f32s(4, 8).slice_move(s![..2, ..;2]).into_dyn();
    assert!(strided.as_slice().is_none());
    io.replace_rows("t", &strided, &[0, 2]).unwrap();
    let got = io.getitem::<f32>("t", &[0, 2]).unwrap();
    assert_eq!(got, strided);
    assert_eq!(to_rows_f32(&got)[1], [8.0, 10.0, 12.0, 14.0]);
}

#[test]
fn a_second_handle_sees_changes_without_reopening() {
    let (_d, p) = store();
    let a = ParallelIO::new(&p).unwrap();
    let b = ParallelIO::new(&p).unwrap();
    save_i32(&a, "x", tagged(0, 2));
    assert_eq!(b.get_shape("x").unwrap(), vec![2, 2]);
    b.append_rows("x", &tagged(2, 1)).unwrap();
    assert_eq!(a.get_shape("x").unwrap(), vec![3, 2]);
    a.drop_arrays("x", Some(&[0])).unwrap();
    assert_eq!(b.load_array::<i32>("x").unwrap(), tagged(1, 2));
    b.replace_rows("x", &tagged(50, 1), &[0]).unwrap();
    assert_eq!(to_rows(&a.getitem("x", &[0]).unwrap()), [[50, -50]]);
    a.compact_array("x").unwrap();
    assert_eq!(b.get_array_metadata("x").unwrap().shape, vec![2, 2]);
    b.clone_array("x", "y").unwrap();
    assert_eq!(a.list_arrays(), ["x", "y"]);
    b.drop_arrays("x", None).unwrap();
    assert!(!a.has_array("x"));
    a.reset().unwrap();
    assert!(b.list_arrays().is_empty());
}

#[test]
fn longer_data_file_is_tolerated_and_trimmed_by_the_next_append() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    save_i32(&io, "a", tagged(0, 2));
    // An append whose commit never happened left 3 garbage bytes.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(p.join("data_a.npkd"))
        .unwrap()
        .write_all(&[1, 2, 3])
        .unwrap();
    drop(io);
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.load_array::<i32>("a").unwrap(), tagged(0, 2));
    assert_eq!(io.get_shape("a").unwrap(), vec![2, 2]);
    io.append_rows("a", &tagged(2, 1)).unwrap();
    assert_eq!(std::fs::metadata(p.join("data_a.npkd")).unwrap().len(), 24);
    assert_eq!(io.load_array::<i32>("a").unwrap(), tagged(0, 3));
}

#[test]
fn opening_creates_directories_and_rejects_files() {
    let d = tempfile::tempdir().unwrap();
    let nested = d.path().join("x/y/z.npk");
    let io = ParallelIO::new(&nested).unwrap();
    assert!(nested.is_dir());
    assert!(io.list_arrays().is_empty());
    let file = d.path().join("plain-file");
    std::fs::write(&file, b"hello").unwrap();
    let e = ParallelIO::new(&file).unwrap_err();
    assert!(matches!(e, NpkError::Io { .. }), "{e:?}");
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
}

#[test]
fn large_arrays_take_the_parallel_paths() {
    // Above 16 MiB writes, loads and stream batches are split across threads, above 4 MiB
    // gathers are, and several arrays above 8 MiB in total are saved in parallel.
    const W: usize = 256;
    let val = |r: usize, c: usize| (r * W + c) as u32;
    let block = |from: usize, n: usize| Array2::from_shape_fn((n, W), |(r, c)| val(from + r, c));
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    io.save_arrays(&[(
        "big".to_string(),
        block(0, 18_000).into_dyn(),
        DataType::Uint32,
    )])
    .unwrap();
    io.append_rows("big", &block(18_000, 17_000).into_dyn())
        .unwrap();
    let all = io.load_array::<u32>("big").unwrap();
    assert_eq!(all, block(0, 35_000).into_dyn());
    assert_eq!(
        std::fs::metadata(p.join("data_big.npkd")).unwrap().len(),
        35_000 * W as u64 * 4
    );
    let mut next = 0;
    for b in io.stream_load::<u32>("big", 20_000).unwrap() {
        let b = b.unwrap();
        assert_eq!(b, block(next, b.shape()[0]).into_dyn());
        next += b.shape()[0];
    }
    assert_eq!(next, 35_000);
    let idx: Vec<i64> = (0..6_000).rev().map(|i| i * 5).collect();
    let got = io.getitem::<u32>("big", &idx).unwrap();
    for (k, &i) in idx.iter().enumerate() {
        assert_eq!(got[[k, 0]], val(i as usize, 0));
        assert_eq!(got[[k, W - 1]], val(i as usize, W - 1));
    }
    io.drop_arrays("big", Some(&(0..35_000).step_by(2).collect::<Vec<i64>>()))
        .unwrap();
    io.compact_array("big").unwrap();
    let odd = io.load_array::<u32>("big").unwrap();
    assert_eq!(odd.shape(), &[17_500, W]);
    assert_eq!(odd[[0, 0]], val(1, 0));
    assert_eq!(odd[[17_499, 3]], val(34_999, 3));
    // Several arrays at once, 10 MiB in total.
    let five = block(0, 5_000).into_dyn();
    io.save_arrays(&[
        ("p".to_string(), five.clone(), DataType::Uint32),
        ("q".to_string(), five.clone(), DataType::Uint32),
    ])
    .unwrap();
    assert_eq!(io.load_array::<u32>("p").unwrap(), five);
    assert_eq!(io.load_array::<u32>("q").unwrap(), five);
}

#[test]
fn access_hints_on_views() {
    use numpack::AccessHint;
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    save_i32(&io, "a", tagged(0, 100));
    save_i32(&io, "e", tagged(0, 0));
    for name in ["a", "e"] {
        let v = io.get_array_view(name).unwrap();
        for h in [
            AccessHint::Sequential,
            AccessHint::Random,
            AccessHint::WillNeed,
        ] {
            v.advise(h).unwrap();
        }
    }
    let v = io.get_array_view("a").unwrap();
    assert_eq!(v.to_array::<i32>().unwrap(), tagged(0, 100));
}

#[test]
fn huge_zero_width_arrays_drop_rows_without_per_row_state() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(&p).unwrap();
    let z = ArrayD::<f32>::zeros(IxDyn(&[1 << 50, 0]));
    io.save_arrays(&[("z".to_string(), z, DataType::Float32)])
        .unwrap();
    assert_eq!(io.get_shape("z").unwrap(), vec![1 << 50, 0]);
    // Rows of no bytes are all the same row: deleting k distinct rows keeps k rows fewer,
    // and no bitmap (of 2^47 bytes) is ever built.
    io.drop_arrays("z", Some(&[0, -1, 0])).unwrap();
    assert_eq!(io.get_shape("z").unwrap(), vec![(1 << 50) - 2, 0]);
    assert!(!common::dir_names(&p)
        .iter()
        .any(|n| n.starts_with("deleted_")));
    io.append_rows("z", &ArrayD::<f32>::zeros(IxDyn(&[5, 0])))
        .unwrap();
    assert_eq!(io.get_shape("z").unwrap(), vec![(1 << 50) + 3, 0]);
    io.replace_rows("z", &ArrayD::<f32>::zeros(IxDyn(&[1, 0])), &[-1])
        .unwrap();
    assert!(matches!(
        io.drop_arrays("z", Some(&[1 << 60])),
        Err(NpkError::IndexOutOfBounds(_, _))
    ));
    assert_eq!(io.getitem::<f32>("z", &[3, -3]).unwrap().shape(), &[2, 0]);
}

#[test]
fn a_new_store_is_a_valid_empty_store_on_disk() {
    let (_d, p) = common::store();
    drop(ParallelIO::new(&p).unwrap());
    let meta = numpack::format::metadata::MetadataFile::decode(
        &std::fs::read(p.join("metadata.npkm")).unwrap(),
    )
    .unwrap();
    assert!(meta.arrays.is_empty());
    assert!(numpack::store::verify::verify_dir(&p).problems.is_empty());
}

#[test]
fn drops_and_appends_after_a_drop_edit_the_bitmap_in_place() {
    let (_d, p) = store();
    let io = ParallelIO::new(&p).unwrap();
    save_i32(&io, "a", tagged(0, 130));
    io.drop_arrays("a", Some(&[3])).unwrap();
    let bitmap = p.join("deleted_a.npkb");
    let first = ino(&bitmap);
    // Later drops and appends write the words they change into the same file; a second
    // handle (another process's view) sees every one of them.
    io.drop_arrays("a", Some(&[0, 100])).unwrap();
    io.append_rows("a", &tagged(130, 70)).unwrap();
    io.drop_arrays("a", Some(&[-1])).unwrap();
    assert_eq!(ino(&bitmap), first);
    let other = ParallelIO::new(&p).unwrap();
    let got = to_rows(&other.load_array::<i32>("a").unwrap());
    let mut want: Vec<i32> = (0..200).collect();
    want.retain(|i| ![0, 3, 101, 199].contains(i));
    assert_eq!(got.iter().map(|r| r[0]).collect::<Vec<_>>(), want);
    assert_eq!(
        std::fs::metadata(&bitmap).unwrap().len(),
        16 + 200u64.div_ceil(64) * 8
    );
    assert!(numpack::store::verify::verify_dir(&p).problems.is_empty());
    // A bitmap with another hard link is never written in place (the write would reach it):
    // the commit renames a new file over it, and the link keeps the old words.
    let link = p.parent().unwrap().join("link.npkb");
    std::fs::hard_link(&bitmap, &link).unwrap();
    let before = std::fs::read(&link).unwrap();
    io.drop_arrays("a", Some(&[0])).unwrap();
    io.append_rows("a", &tagged(200, 1)).unwrap();
    assert_ne!(ino(&bitmap), first);
    assert_eq!(std::fs::read(&link).unwrap(), before);
    assert_eq!(other.get_shape("a").unwrap(), vec![196, 2]);
}
