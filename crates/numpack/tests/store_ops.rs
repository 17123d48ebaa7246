//! Every operation of the Rust API on small arrays, checked against expected values.

mod common;

use half::f16;
use ndarray::{arr1, arr2, Array2, ArrayD, IxDyn};
use num_complex::{Complex32, Complex64};
use numpack::prelude::*;

fn f32s(rows: usize, cols: usize) -> ArrayD<f32> {
    Array2::from_shape_fn((rows, cols), |(r, c)| (r * cols + c) as f32).into_dyn()
}

#[test]
fn save_load_getitem_and_read_rows() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(p).unwrap();
    io.save_arrays(&[("a".to_string(), f32s(10, 3), DataType::Float32)])
        .unwrap();
    assert_eq!(io.load_array::<f32>("a").unwrap(), f32s(10, 3));
    let rows: ArrayD<f32> = io.getitem("a", &[9, -10, 9, 2]).unwrap();
    assert_eq!(rows.shape(), &[4, 3]);
    assert_eq!(
        rows.index_axis(ndarray::Axis(0), 0)
            .iter()
            .copied()
            .collect::<Vec<f32>>(),
        vec![27.0, 28.0, 29.0]
    );
    assert_eq!(
        rows.index_axis(ndarray::Axis(0), 1)
            .iter()
            .copied()
            .collect::<Vec<f32>>(),
        vec![0.0, 1.0, 2.0]
    );
    assert_eq!(
        rows.index_axis(ndarray::Axis(0), 3)
            .iter()
            .copied()
            .collect::<Vec<f32>>(),
        vec![6.0, 7.0, 8.0]
    );
    let raw = io.read_rows("a", &[-1]).unwrap();
    assert_eq!(
        raw,
        [27.0f32, 28.0, 29.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>()
    );
    assert!(matches!(
        io.getitem::<f32>("a", &[10]),
        Err(NpkError::IndexOutOfBounds(10, 10))
    ));
    assert!(matches!(
        io.getitem::<f32>("a", &[-11]),
        Err(NpkError::IndexOutOfBounds(-11, 10))
    ));
    let empty: ArrayD<f32> = io.getitem("a", &[]).unwrap();
    assert_eq!(empty.shape(), &[0, 3]);
    assert!(matches!(
        io.load_array::<f64>("a"),
        Err(NpkError::InvalidDtype(_))
    ));
    assert!(
        matches!(io.load_array::<f32>("missing"), Err(NpkError::ArrayNotFound(n)) if n == "missing")
    );
}

#[test]
fn save_many_and_overwrite_with_new_shape_and_dtype() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(p).unwrap();
    io.save_arrays(&[
        ("x".to_string(), f32s(4, 2), DataType::Float32),
        ("y".to_string(), f32s(2, 2), DataType::Float32),
    ])
    .unwrap();
    io.drop_arrays("x", Some(&[0])).unwrap();
    // Overwrite: brand-new array, the old bitmap is forgotten.
    let i = ArrayD::from_shape_vec(IxDyn(&[3]), vec![1i64, 2, 3]).unwrap();
    io.save_arrays(&[("x".to_string(), i.clone(), DataType::Int64)])
        .unwrap();
    assert_eq!(io.load_array::<i64>("x").unwrap(), i);
    assert_eq!(io.get_shape("x").unwrap(), vec![3]);
    assert_eq!(io.list_arrays(), vec!["x".to_string(), "y".to_string()]);
    assert!(matches!(
        io.save_arrays(&[("z".to_string(), f32s(1, 1), DataType::Float64)]),
        Err(NpkError::InvalidDtype(_))
    ));
}

#[test]
fn append_replace_drop_compact_clone() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(p.clone()).unwrap();
    io.save_arrays(&[("a".to_string(), f32s(5, 2), DataType::Float32)])
        .unwrap();
    let before = std::fs::metadata(p.join("data_a.npkd")).unwrap();
    io.append_rows("a", &arr2(&[[100.0f32, 101.0]]).into_dyn())
        .unwrap();
    let after = std::fs::metadata(p.join("data_a.npkd")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        before.ino(),
        after.ino(),
        "append must not rewrite the file"
    );
    assert_eq!(io.get_shape("a").unwrap(), vec![6, 2]);
    // Wrong trailing shape or dtype.
    assert!(matches!(
        io.append_rows("a", &f32s(1, 3)),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.append_rows("a", &arr2(&[[1.0f64, 2.0]]).into_dyn()),
        Err(NpkError::InvalidDtype(_))
    ));
    assert!(matches!(
        io.append_rows("nope", &f32s(1, 2)),
        Err(NpkError::ArrayNotFound(_))
    ));

    io.drop_arrays("a", Some(&[0, -1])).unwrap(); // logical rows 1..=4 remain
    assert_eq!(io.get_shape("a").unwrap(), vec![4, 2]);
    assert_eq!(
        io.get_array_metadata("a").unwrap().shape,
        vec![6, 2],
        "physical shape kept"
    );
    // Replace by logical index, in any order; a later duplicate wins.
    let vals = arr2(&[[-1.0f32, -1.0], [-2.0, -2.0], [-3.0, -3.0]]).into_dyn();
    io.replace_rows("a", &vals, &[3, 0, 3]).unwrap();
    let got = io.load_array::<f32>("a").unwrap();
    assert_eq!(
        got,
        arr2(&[[-2.0f32, -2.0], [4.0, 5.0], [6.0, 7.0], [-3.0, -3.0]]).into_dyn()
    );
    assert!(matches!(
        io.replace_rows("a", &vals, &[0, 1]),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.replace_rows("a", &arr2(&[[0.0f32, 0.0]]).into_dyn(), &[4]),
        Err(NpkError::IndexOutOfBounds(4, 4))
    ));
    // Append after a deletion: deleted rows stay deleted.
    io.append_rows("a", &arr2(&[[9.0f32, 9.0]]).into_dyn())
        .unwrap();
    assert_eq!(io.get_shape("a").unwrap(), vec![5, 2]);
    let mut seen = Vec::new();
    for batch in io.stream_load::<f32>("a", 2).unwrap() {
        let b = batch.unwrap();
        assert!(b.shape()[0] <= 2);
        seen.extend(b.iter().copied());
    }
    assert_eq!(
        seen,
        io.load_array::<f32>("a")
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>()
    );
    assert!(matches!(
        io.stream_load::<f32>("a", 0),
        Err(NpkError::InvalidOperation(_))
    ));

    io.clone_array("a", "b").unwrap();
    assert!(matches!(
        io.clone_array("a", "b"),
        Err(NpkError::InvalidOperation(_))
    ));
    assert!(matches!(
        io.clone_array("zz", "c"),
        Err(NpkError::ArrayNotFound(_))
    ));
    assert_eq!(
        io.get_array_metadata("b").unwrap().shape,
        vec![5, 2],
        "clone is compacted"
    );
    let expected = io.load_array::<f32>("a").unwrap();
    io.compact_array("a").unwrap();
    assert!(!p.join("deleted_a.npkb").exists());
    assert_eq!(io.load_array::<f32>("a").unwrap(), expected);
    assert_eq!(io.load_array::<f32>("b").unwrap(), expected);
    assert_eq!(io.get_array_metadata("a").unwrap().shape, vec![5, 2]);

    let view = io.get_array_view("b").unwrap();
    assert_eq!(view.shape(), vec![5, 2]);
    assert_eq!(
        view.row::<f32>(-1).unwrap(),
        arr1(&[9.0f32, 9.0]).into_dyn()
    );

    io.drop_arrays("b", None).unwrap();
    io.drop_arrays("never-existed", None).unwrap();
    assert!(!io.has_array("b"));
    assert!(!p.join("data_b.npkd").exists());
    assert!(io.get_modify_time("a").is_some());
    assert!(io.get_modify_time("b").is_none());
    io.sync_metadata().unwrap();
    io.reset().unwrap();
    assert!(io.list_arrays().is_empty());
    assert!(!p.join("data_a.npkd").exists());
}

#[test]
fn dropping_every_row_keeps_an_empty_array_that_accepts_appends() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(p).unwrap();
    io.save_arrays(&[("a".to_string(), f32s(3, 1), DataType::Float32)])
        .unwrap();
    io.drop_arrays("a", Some(&[0, 1, 2])).unwrap();
    assert_eq!(io.get_shape("a").unwrap(), vec![0, 1]);
    io.append_rows("a", &f32s(2, 1)).unwrap();
    assert_eq!(io.load_array::<f32>("a").unwrap(), f32s(2, 1));
}

#[test]
fn zero_d_and_empty_arrays() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(p.clone()).unwrap();
    let scalar = ArrayD::from_elem(IxDyn(&[]), 7.5f64);
    let empty = ArrayD::<i16>::zeros(IxDyn(&[0, 4, 2]));
    io.save_arrays(&[("s".to_string(), scalar.clone(), DataType::Float64)])
        .unwrap();
    io.save_arrays(&[("e".to_string(), empty.clone(), DataType::Int16)])
        .unwrap();
    drop(io);
    let io = ParallelIO::new(p).unwrap();
    assert_eq!(io.load_array::<f64>("s").unwrap(), scalar);
    assert_eq!(io.get_shape("s").unwrap(), Vec::<u64>::new());
    assert_eq!(io.load_array::<i16>("e").unwrap(), empty);
    assert!(matches!(
        io.getitem::<f64>("s", &[0]),
        Err(NpkError::InvalidShape(_))
    ));
    assert!(matches!(
        io.drop_arrays("s", Some(&[0])),
        Err(NpkError::InvalidShape(_))
    ));
    io.append_rows("e", &ArrayD::<i16>::ones(IxDyn(&[2, 4, 2])))
        .unwrap();
    assert_eq!(io.get_shape("e").unwrap(), vec![2, 4, 2]);
}

macro_rules! round_trip {
    ($io:expr, $name:expr, $t:ty, $dt:expr, $f:expr) => {{
        let a = ArrayD::from_shape_fn(IxDyn(&[7, 3, 2]), |i| $f(i[0] * 6 + i[1] * 2 + i[2]));
        $io.save_arrays(&[($name.to_string(), a.clone(), $dt)])
            .unwrap();
        assert_eq!($io.load_array::<$t>($name).unwrap(), a);
        let rows: ArrayD<$t> = $io.getitem($name, &[-1, 0]).unwrap();
        assert_eq!(
            rows.index_axis(ndarray::Axis(0), 0),
            a.index_axis(ndarray::Axis(0), 6)
        );
        $io.append_rows($name, &a).unwrap();
        $io.drop_arrays($name, Some(&[1])).unwrap();
        assert_eq!($io.get_shape($name).unwrap(), vec![13, 3, 2]);
        assert_eq!($io.get_array_metadata($name).unwrap().dtype, $dt);
    }};
}

#[test]
fn every_dtype_round_trips() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(p).unwrap();
    round_trip!(io, "bool", bool, DataType::Bool, |k: usize| k
        .is_multiple_of(3));
    round_trip!(io, "u8", u8, DataType::Uint8, |k: usize| k as u8);
    round_trip!(io, "u16", u16, DataType::Uint16, |k: usize| (k * 1000)
        as u16);
    round_trip!(io, "u32", u32, DataType::Uint32, |k: usize| (k as u32)
        << 20);
    round_trip!(io, "u64", u64, DataType::Uint64, |k: usize| (k as u64)
        << 40);
    round_trip!(io, "i8", i8, DataType::Int8, |k: usize| k as i8 - 20);
    round_trip!(io, "i16", i16, DataType::Int16, |k: usize| -(k as i16)
        * 300);
    round_trip!(io, "i32", i32, DataType::Int32, |k: usize| -(k as i32)
        << 16);
    round_trip!(io, "i64", i64, DataType::Int64, |k: usize| -(k as i64)
        << 40);
    round_trip!(io, "f16", f16, DataType::Float16, |k: usize| f16::from_f32(
        k as f32 * 0.5
    ));
    round_trip!(io, "f32", f32, DataType::Float32, |k: usize| k as f32 / 3.0);
    round_trip!(io, "f64", f64, DataType::Float64, |k: usize| -(k as f64)
        / 7.0);
    round_trip!(io, "c64", Complex32, DataType::Complex64, |k: usize| {
        Complex32::new(k as f32, -1.0)
    });
    round_trip!(io, "c128", Complex64, DataType::Complex128, |k: usize| {
        Complex64::new(0.5, k as f64)
    });
    assert_eq!(io.list_arrays().len(), 14);
}

#[test]
fn non_standard_layouts_are_stored_as_their_values() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(p).unwrap();
    let a = f32s(4, 3);
    let t = a.t().to_owned(); // logical 3x4, C order after to_owned
    let fortran = a.clone().reversed_axes(); // 3x4 view in Fortran order
    io.save_arrays(&[("t".to_string(), fortran, DataType::Float32)])
        .unwrap();
    assert_eq!(io.load_array::<f32>("t").unwrap(), t);
}

#[test]
fn hostile_names_stay_inside_the_directory() {
    let (d, p) = common::store();
    let io = ParallelIO::new(p.clone()).unwrap();
    let long = "n".repeat(1000);
    let names = [
        "../x",
        "a/b",
        "/abs",
        "名前",
        ".hidden",
        long.as_str(),
        "a\\b",
        "..",
    ];
    for (i, n) in names.iter().enumerate() {
        let a = ArrayD::from_elem(IxDyn(&[2]), i as i32);
        io.save_arrays(&[(n.to_string(), a, DataType::Int32)])
            .unwrap();
    }
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            io.load_array::<i32>(n).unwrap(),
            ArrayD::from_elem(IxDyn(&[2]), i as i32)
        );
    }
    // Only the store directory is in the temp dir, and it holds no sub-directory.
    let outside: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("s.npk")]);
    for e in std::fs::read_dir(&p).unwrap() {
        let e = e.unwrap();
        assert!(e.file_type().unwrap().is_file(), "{:?}", e.path());
        assert!(e.file_name().len() < 255);
    }
    assert!(matches!(
        io.save_arrays(&[(String::new(), f32s(1, 1), DataType::Float32)]),
        Err(NpkError::InvalidArrayName(_))
    ));
    assert!(matches!(
        io.save_arrays(&[("a\0b".to_string(), f32s(1, 1), DataType::Float32)]),
        Err(NpkError::InvalidArrayName(_))
    ));
    drop(io);
    let io = ParallelIO::new(p).unwrap();
    assert_eq!(io.list_arrays().len(), names.len());
}

#[test]
fn a_second_handle_sees_changes_without_reopening() {
    let (_d, p) = common::store();
    let a = ParallelIO::new(p.clone()).unwrap();
    let b = ParallelIO::new(p).unwrap();
    a.save_arrays(&[("x".to_string(), f32s(2, 2), DataType::Float32)])
        .unwrap();
    assert_eq!(b.get_shape("x").unwrap(), vec![2, 2]);
    b.append_rows("x", &f32s(1, 2)).unwrap();
    assert_eq!(a.get_shape("x").unwrap(), vec![3, 2]);
    a.drop_arrays("x", Some(&[0])).unwrap();
    assert_eq!(b.load_array::<f32>("x").unwrap().shape(), &[2, 2]);
    b.drop_arrays("x", None).unwrap();
    assert!(!a.has_array("x"));
}

#[test]
fn longer_data_file_is_tolerated_and_trimmed_by_the_next_append() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(p.clone()).unwrap();
    io.save_arrays(&[("a".to_string(), f32s(2, 2), DataType::Float32)])
        .unwrap();
    // An append whose commit never happened left 3 garbage bytes.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(p.join("data_a.npkd"))
        .unwrap()
        .write_all(&[1, 2, 3])
        .unwrap();
    assert_eq!(io.load_array::<f32>("a").unwrap(), f32s(2, 2));
    io.append_rows("a", &f32s(1, 2)).unwrap();
    assert_eq!(std::fs::metadata(p.join("data_a.npkd")).unwrap().len(), 24);
    assert_eq!(
        io.load_array::<f32>("a")
            .unwrap()
            .index_axis(ndarray::Axis(0), 2)
            .iter()
            .copied()
            .collect::<Vec<f32>>(),
        vec![0.0, 1.0]
    );
}
