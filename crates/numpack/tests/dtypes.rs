//! Each of the 17 element types: bit-exact round trips (special float values included), the
//! bytes on disk, the dtype code in the metadata, every row operation, 0-d and empty arrays,
//! and dtype mismatches refused without casting.

mod common;

use half::f16;
use ndarray::{ArrayD, Axis, IxDyn};
use num_complex::{Complex32, Complex64};
use numpack::format::metadata::MetadataFile;
use numpack::prelude::*;
use std::path::Path;

/// Bit-level view of an element, so NaN payloads and -0.0 compare exactly.
trait Bits: NpkElement + std::fmt::Debug {
    fn bits(&self) -> Vec<u8> {
        Self::as_bytes(std::slice::from_ref(self)).to_vec()
    }
}
impl<T: NpkElement + std::fmt::Debug> Bits for T {}

fn bits_of<T: Bits>(a: &ArrayD<T>) -> Vec<Vec<u8>> {
    a.iter().map(Bits::bits).collect()
}

#[track_caller]
fn assert_same<T: Bits>(got: &ArrayD<T>, want: &ArrayD<T>) {
    assert_eq!(got.shape(), want.shape());
    assert_eq!(bits_of(got), bits_of(want), "{got:?} vs {want:?}");
}

/// Loading as `T` of an array stored as another type: refused.
fn check_wrong_type<T: Bits>(io: &ParallelIO, name: &str) {
    assert!(matches!(
        io.load_array::<T>(name),
        Err(NpkError::InvalidDtype(_))
    ));
}

/// Runs every operation on one dtype with `values` (at least 12, includes special values).
fn exercise<T: Bits>(dir: &Path, code: u8, values: &[T]) {
    let name = format!("t{code}");
    let io = ParallelIO::new(dir).unwrap();
    assert_eq!(T::DTYPE.code(), code);
    assert_eq!(DataType::from_code(code).unwrap(), T::DTYPE);
    assert_eq!(T::DTYPE.size_bytes(), std::mem::size_of::<T>());
    let n = values.len();
    let a = ArrayD::from_shape_fn(IxDyn(&[n / 2, 2, 1]), |ix| values[ix[0] * 2 + ix[1]]);
    io.save_arrays(&[(name.clone(), a.clone(), T::DTYPE)])
        .unwrap();
    assert_same(&io.load_array::<T>(&name).unwrap(), &a);

    // Bytes on disk: the elements in C order, little-endian, no header.
    let m = io.get_array_metadata(&name).unwrap();
    assert_eq!(m.dtype, T::DTYPE);
    assert_eq!(m.size_bytes, std::mem::size_of_val(values) as u64);
    let disk = std::fs::read(dir.join(&m.data_file)).unwrap();
    let want: Vec<u8> = values.iter().flat_map(Bits::bits).collect();
    assert_eq!(disk, want);
    let meta = MetadataFile::decode(&std::fs::read(dir.join("metadata.npkm")).unwrap()).unwrap();
    assert_eq!(meta.arrays[&name].dtype.code(), code);

    // getitem / read_rows.
    let rows: ArrayD<T> = io.getitem(&name, &[-1, 0, -1]).unwrap();
    assert_same(
        &rows.index_axis(Axis(0), 0).to_owned(),
        &a.index_axis(Axis(0), n / 2 - 1).to_owned(),
    );
    assert_same(
        &rows.index_axis(Axis(0), 1).to_owned(),
        &a.index_axis(Axis(0), 0).to_owned(),
    );
    let raw = io.read_rows(&name, &[1]).unwrap();
    assert_eq!(
        raw,
        want[2 * std::mem::size_of::<T>()..4 * std::mem::size_of::<T>()]
    );

    // append / replace / drop / compact / stream / view / clone.
    io.append_rows(&name, &a).unwrap();
    let row0 = a.index_axis(Axis(0), 0).to_owned().insert_axis(Axis(0));
    io.replace_rows(&name, &row0, &[-1]).unwrap();
    io.drop_arrays(&name, Some(&[1])).unwrap();
    let got = io.load_array::<T>(&name).unwrap();
    assert_eq!(got.shape(), &[n - 1, 2, 1]);
    let mut expect: Vec<ArrayD<T>> = Vec::new();
    for (i, r) in a.outer_iter().chain(a.outer_iter()).enumerate() {
        if i != 1 {
            expect.push(r.to_owned());
        }
    }
    *expect.last_mut().unwrap() = a.index_axis(Axis(0), 0).to_owned();
    for (k, r) in got.outer_iter().enumerate() {
        assert_same(&r.to_owned(), &expect[k]);
    }
    let streamed: Vec<Vec<u8>> = io
        .stream_load::<T>(&name, 4)
        .unwrap()
        .flat_map(|b| bits_of(&b.unwrap()))
        .collect();
    assert_eq!(streamed, bits_of(&got));
    assert_same(
        &io.get_array_view(&name).unwrap().to_array::<T>().unwrap(),
        &got,
    );
    io.compact_array(&name).unwrap();
    assert_same(&io.load_array::<T>(&name).unwrap(), &got);
    io.clone_array(&name, &format!("{name}-copy")).unwrap();
    assert_same(&io.load_array::<T>(&format!("{name}-copy")).unwrap(), &got);

    // 0-d and empty.
    let scalar = ArrayD::from_elem(IxDyn(&[]), values[3]);
    let empty = ArrayD::from_shape_vec(IxDyn(&[0, 3]), Vec::<T>::new()).unwrap();
    io.save_arrays(&[
        (format!("{name}-0d"), scalar.clone(), T::DTYPE),
        (format!("{name}-empty"), empty.clone(), T::DTYPE),
    ])
    .unwrap();
    drop(io);
    let io = ParallelIO::new(dir).unwrap();
    assert_same(&io.load_array::<T>(&format!("{name}-0d")).unwrap(), &scalar);
    assert_same(
        &io.load_array::<T>(&format!("{name}-empty")).unwrap(),
        &empty,
    );
    assert_eq!(
        io.get_array_metadata(&format!("{name}-0d"))
            .unwrap()
            .size_bytes,
        std::mem::size_of::<T>() as u64
    );
    assert_same(&io.load_array::<T>(&name).unwrap(), &got);
}

/// A row of another element type is refused by append and replace (no cast, no reinterpretation).
fn refuse_other<T: Bits, U: Bits + Default>(dir: &Path, name: &str) {
    let io = ParallelIO::new(dir).unwrap();
    let before = std::fs::read(io.store().data_path(name).unwrap()).unwrap();
    let width: usize = io.get_shape(name).unwrap()[1..].iter().product::<u64>() as usize;
    let mut shape = vec![1usize];
    shape.extend(io.get_shape(name).unwrap()[1..].iter().map(|&d| d as usize));
    let other = ArrayD::from_shape_vec(IxDyn(&shape), vec![U::default(); width]).unwrap();
    if U::DTYPE != T::DTYPE {
        assert!(matches!(
            io.append_rows(name, &other),
            Err(NpkError::InvalidDtype(_))
        ));
        assert!(matches!(
            io.replace_rows(name, &other, &[0]),
            Err(NpkError::InvalidDtype(_))
        ));
        assert!(matches!(
            io.getitem::<U>(name, &[0]),
            Err(NpkError::InvalidDtype(_))
        ));
        check_wrong_type::<U>(&io, name);
        assert_eq!(
            std::fs::read(io.store().data_path(name).unwrap()).unwrap(),
            before
        );
    }
}

macro_rules! refuse_all {
    ($dir:expr, $name:expr, $t:ty) => {
        refuse_other::<$t, bool>($dir, $name);
        refuse_other::<$t, u8>($dir, $name);
        refuse_other::<$t, u16>($dir, $name);
        refuse_other::<$t, u32>($dir, $name);
        refuse_other::<$t, u64>($dir, $name);
        refuse_other::<$t, i8>($dir, $name);
        refuse_other::<$t, i16>($dir, $name);
        refuse_other::<$t, i32>($dir, $name);
        refuse_other::<$t, i64>($dir, $name);
        refuse_other::<$t, f16>($dir, $name);
        refuse_other::<$t, f32>($dir, $name);
        refuse_other::<$t, f64>($dir, $name);
        refuse_other::<$t, Complex32>($dir, $name);
        refuse_other::<$t, Complex64>($dir, $name);
    };
}

macro_rules! dtype_test {
    ($test:ident, $t:ty, $code:expr, $values:expr) => {
        #[test]
        fn $test() {
            let (_d, p) = common::store();
            let values: Vec<$t> = $values;
            exercise::<$t>(&p, $code, &values);
            refuse_all!(&p, &format!("t{}", $code), $t);
        }
    };
}

dtype_test!(bool_, bool, 0, (0..12).map(|i| i % 3 == 0).collect());
dtype_test!(
    uint8,
    u8,
    1,
    vec![0, 1, 2, 127, 128, 254, 255, 7, 8, 9, 10, 11]
);
dtype_test!(
    uint16,
    u16,
    2,
    vec![0, 1, 0x00FF, 0xFF00, u16::MAX, 1234, 5, 6, 7, 8, 9, 10]
);
dtype_test!(
    uint32,
    u32,
    3,
    vec![0, 1, u32::MAX, 1 << 31, 0xDEAD_BEEF, 5, 6, 7, 8, 9, 10, 11]
);
dtype_test!(
    uint64,
    u64,
    4,
    vec![
        0,
        1,
        u64::MAX,
        1 << 63,
        0x0123_4567_89AB_CDEF,
        5,
        6,
        7,
        8,
        9,
        10,
        11
    ]
);
dtype_test!(
    int8,
    i8,
    5,
    vec![0, -1, i8::MIN, i8::MAX, 3, -4, 5, -6, 7, -8, 9, -10]
);
dtype_test!(
    int16,
    i16,
    6,
    vec![0, -1, i16::MIN, i16::MAX, 300, -400, 5, -6, 7, -8, 9, -10]
);
dtype_test!(
    int32,
    i32,
    7,
    vec![
        0,
        -1,
        i32::MIN,
        i32::MAX,
        70000,
        -80000,
        5,
        -6,
        7,
        -8,
        9,
        -10
    ]
);
dtype_test!(
    int64,
    i64,
    8,
    vec![
        0,
        -1,
        i64::MIN,
        i64::MAX,
        1 << 40,
        -(1 << 40),
        5,
        -6,
        7,
        -8,
        9,
        -10
    ]
);
dtype_test!(
    float16,
    f16,
    9,
    vec![
        f16::ZERO,
        f16::NEG_ZERO,
        f16::NAN,
        f16::INFINITY,
        f16::NEG_INFINITY,
        f16::MAX,
        f16::MIN,
        f16::MIN_POSITIVE_SUBNORMAL,
        f16::from_f32(0.1),
        f16::from_f32(-2.5),
        f16::from_bits(0x7E01), // a NaN with a payload
        f16::ONE,
    ]
);
dtype_test!(
    float32,
    f32,
    10,
    vec![
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1e-45,
        0.1,
        f32::from_bits(0x7FC0_1234),
        -1.5
    ]
);
dtype_test!(
    float64,
    f64,
    11,
    vec![
        0.0,
        -0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        0.1,
        f64::from_bits(0x7FF8_0000_0000_1234),
        -1.5
    ]
);
dtype_test!(
    complex64,
    Complex32,
    12,
    (0..12)
        .map(|i| Complex32::new(i as f32 * 0.5, if i == 3 { f32::NAN } else { -(i as f32) }))
        .collect()
);
dtype_test!(
    complex128,
    Complex64,
    13,
    (0..12)
        .map(|i| Complex64::new(
            if i == 5 {
                f64::INFINITY
            } else {
                i as f64 / 3.0
            },
            -0.0
        ))
        .collect()
);

#[test]
fn complex_is_stored_as_interleaved_real_and_imaginary_parts() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(&p).unwrap();
    let a = common::arr(
        &[2],
        vec![Complex32::new(1.0, 2.0), Complex32::new(-3.0, 4.5)],
    );
    io.save_arrays(&[("c".to_string(), a, DataType::Complex64)])
        .unwrap();
    let want: Vec<u8> = [1.0f32, 2.0, -3.0, 4.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(std::fs::read(p.join("data_c.npkd")).unwrap(), want);
}

#[test]
fn bool_bytes_other_than_0_and_1_read_as_true() {
    // A foreign writer may store any non-zero byte for true; a Rust bool must stay 0/1.
    let (_d, p) = common::store();
    let io = ParallelIO::new(&p).unwrap();
    let a = common::arr(&[4], vec![false, true, false, true]);
    io.save_arrays(&[("b".to_string(), a, DataType::Bool)])
        .unwrap();
    std::fs::write(p.join("data_b.npkd"), [0u8, 2, 255, 1]).unwrap();
    let got = io.load_array::<bool>("b").unwrap();
    assert_eq!(
        got.iter().copied().collect::<Vec<_>>(),
        [false, true, true, true]
    );
    let bytes: Vec<u8> = got.iter().map(|&b| u8::from(b)).collect();
    assert_eq!(bytes, [0, 1, 1, 1]);
    let rows: ArrayD<bool> = io.getitem("b", &[2]).unwrap();
    assert!(rows[[0]]);
}

#[test]
fn dtype_table_matches_the_format() {
    let table = [
        (DataType::Bool, 0, 1, "bool"),
        (DataType::Uint8, 1, 1, "uint8"),
        (DataType::Uint16, 2, 2, "uint16"),
        (DataType::Uint32, 3, 4, "uint32"),
        (DataType::Uint64, 4, 8, "uint64"),
        (DataType::Int8, 5, 1, "int8"),
        (DataType::Int16, 6, 2, "int16"),
        (DataType::Int32, 7, 4, "int32"),
        (DataType::Int64, 8, 8, "int64"),
        (DataType::Float16, 9, 2, "float16"),
        (DataType::Float32, 10, 4, "float32"),
        (DataType::Float64, 11, 8, "float64"),
        (DataType::Complex64, 12, 8, "complex64"),
        (DataType::Complex128, 13, 16, "complex128"),
        (DataType::Bfloat16, 14, 2, "bfloat16"),
        (DataType::Float8E4M3FN, 15, 1, "float8_e4m3fn"),
        (DataType::Float8E5M2, 16, 1, "float8_e5m2"),
    ];
    assert_eq!(DataType::ALL.len(), table.len());
    for (dt, code, size, np) in table {
        assert_eq!(dt.code(), code);
        assert_eq!(dt.size_bytes(), size);
        assert_eq!(dt.numpy_name(), np);
        assert_eq!(DataType::from_code(code).unwrap(), dt);
    }
    for code in 17..=255u8 {
        let e = DataType::from_code(code).unwrap_err();
        assert!(e.to_string().contains(&code.to_string()), "{e}");
    }
}
