//! CSV / text conversion: parsing and formatting edge cases, every dtype, NaN/inf/-0.0,
//! errors with line and column, block boundaries, and all-or-nothing imports.

use half::f16;
use num_complex::Complex;
use numpack::convert::{
    export_csv, import_csv, CsvReader, CsvWriter, Delimiter, ReadOptions, RowFormat, Rows,
    WriteOptions,
};
use numpack::{DataType, NpkError, Store};
use std::io::Cursor;

fn opts(dtype: DataType) -> ReadOptions {
    ReadOptions {
        dtype,
        ..ReadOptions::default()
    }
}

/// Parses `text`: (bytes of all rows, rows, width, blocks).
fn read_raw(text: &str, o: ReadOptions) -> Result<(Vec<u8>, u64, Option<usize>, usize), NpkError> {
    let mut r = CsvReader::new(Cursor::new(text.as_bytes().to_vec()), "t.csv".into(), o)?;
    let (mut data, mut blocks) = (Vec::new(), 0);
    while let Some(b) = r.next_block()? {
        assert_eq!(b.data.len() as u64 % b.rows.max(1), 0);
        data.extend_from_slice(&b.data);
        blocks += 1;
    }
    Ok((data, r.rows(), r.width(), blocks))
}

fn read_f64(text: &str, o: ReadOptions) -> Result<(Vec<f64>, u64, usize), NpkError> {
    let (d, rows, w, _) = read_raw(text, o)?;
    Ok((bytemuck::pod_collect_to_vec(&d), rows, w.unwrap_or(0)))
}

fn err(text: &str, o: ReadOptions) -> String {
    match read_raw(text, o) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{text:?} parsed"),
    }
}

#[test]
fn basic_rows_comments_blank_lines_crlf() {
    let text = "# header comment\n1,2,3\n\n  4 , 5,6 # trailing\r\n#x\n7,8,9";
    let (v, rows, w) = read_f64(text, opts(DataType::Float64)).unwrap();
    assert_eq!((rows, w), (3, 3));
    assert_eq!(v, [1., 2., 3., 4., 5., 6., 7., 8., 9.]);
}

#[test]
fn specials_survive() {
    let text = "nan,NaN,-inf,Inf,infinity,-Infinity,-0.0,+nan,INF\n";
    let (v, _, _) = read_f64(text, opts(DataType::Float64)).unwrap();
    assert!(v[0].is_nan() && v[1].is_nan() && v[7].is_nan());
    assert_eq!(
        &v[2..7],
        &[
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0
        ]
    );
    assert!(v[6].is_sign_negative());
    assert_eq!(v[8], f64::INFINITY);
    let (d, ..) = read_raw("-0.0,nan\n", opts(DataType::Float32)).unwrap();
    let f: Vec<f32> = bytemuck::pod_collect_to_vec(&d);
    assert!(f[0] == 0.0 && f[0].is_sign_negative() && f[1].is_nan());
}

#[test]
fn empty_float_fields_are_nan_and_quotes_are_stripped() {
    let (v, _, w) = read_f64("1,,\"3.5\"\n,2,3\n", opts(DataType::Float64)).unwrap();
    assert_eq!(w, 3);
    assert!(v[1].is_nan() && v[3].is_nan());
    assert_eq!(v[2], 3.5);
    let e = err("1,\n", opts(DataType::Int32));
    assert!(e.contains("line 1, column 2: empty field"), "{e}");
    let e = err("1,\"2\n", opts(DataType::Float64));
    assert!(e.contains("line 1, column 2: unterminated quote"), "{e}");
}

#[test]
fn whitespace_delimiter() {
    let o = ReadOptions {
        delimiter: Delimiter::Whitespace,
        ..opts(DataType::Int64)
    };
    let (d, rows, w, _) = read_raw("  1 \t 2   3\n4 5 6   \n", o.clone()).unwrap();
    assert_eq!((rows, w), (2, Some(3)));
    assert_eq!(
        bytemuck::pod_collect_to_vec::<u8, i64>(&d),
        [1, 2, 3, 4, 5, 6]
    );
    let e = err("1 2 3\n4 5\n", o.clone());
    assert!(
        e.contains("t.csv: line 2, column 3: expected 3 columns, found 2"),
        "{e}"
    );
    let e = err("1 2 3\n4 5 6 7 8\n", o);
    assert!(
        e.contains("line 2, column 4: expected 3 columns, found 5"),
        "{e}"
    );
}

#[test]
fn every_dtype_parses_directly() {
    let cases: &[(DataType, &str, Vec<u8>)] = &[
        (
            DataType::Bool,
            "true,False,0,1,2.5,0.0",
            vec![1, 0, 0, 1, 1, 0],
        ),
        (DataType::Uint8, "0,255,1.0e2", vec![0, 255, 100]),
        (
            DataType::Int8,
            "-128,127,-0",
            bytemuck::cast_slice(&[-128i8, 127, 0]).to_vec(),
        ),
        (DataType::Uint16, "65535", 65535u16.to_le_bytes().to_vec()),
        (
            DataType::Int16,
            "-32768",
            (-32768i16).to_le_bytes().to_vec(),
        ),
        (
            DataType::Uint32,
            "4294967295",
            u32::MAX.to_le_bytes().to_vec(),
        ),
        (
            DataType::Int32,
            "-2147483648",
            i32::MIN.to_le_bytes().to_vec(),
        ),
        (
            DataType::Uint64,
            "18446744073709551615",
            u64::MAX.to_le_bytes().to_vec(),
        ),
        (
            DataType::Int64,
            "-9223372036854775808",
            i64::MIN.to_le_bytes().to_vec(),
        ),
        (
            DataType::Float16,
            "0.1",
            f16::from_f64(0.1).to_le_bytes().to_vec(),
        ),
        (
            DataType::Float32,
            "3.4028235e38",
            f32::MAX.to_le_bytes().to_vec(),
        ),
        (
            DataType::Float64,
            "2.2250738585072014e-308",
            f64::MIN_POSITIVE.to_le_bytes().to_vec(),
        ),
        (
            DataType::Complex64,
            "(1+2j),3-4j,5j,6",
            bytemuck::cast_slice(&[
                Complex::new(1f32, 2.),
                Complex::new(3., -4.),
                Complex::new(0., 5.),
                Complex::new(6., 0.),
            ])
            .to_vec(),
        ),
        (
            DataType::Complex128,
            "nan+infj,-0.0-0.0j",
            bytemuck::cast_slice(&[
                Complex::new(f64::NAN, f64::INFINITY),
                Complex::new(-0.0, -0.0),
            ])
            .to_vec(),
        ),
    ];
    for (dtype, text, want) in cases {
        let (d, rows, ..) = read_raw(text, opts(*dtype)).unwrap();
        assert_eq!(rows, 1);
        if *dtype == DataType::Complex128 {
            let c: Vec<Complex<f64>> = bytemuck::pod_collect_to_vec(&d);
            assert!(c[0].re.is_nan() && c[0].im == f64::INFINITY);
            assert!(c[1].re.is_sign_negative() && c[1].im.is_sign_negative());
        } else {
            assert_eq!(&d, want, "{dtype}");
        }
    }
}

#[test]
fn overflow_and_bad_values_name_file_line_column() {
    let e = err("1,2\n3,300\n", opts(DataType::Int8));
    assert_eq!(
        e,
        "Invalid operation: t.csv: line 2, column 2: value \"300\" is out of range for int8"
    );
    let e = err("# c\n1,2\n\n1,x2\n", opts(DataType::Float64));
    assert!(
        e.contains("line 4, column 2: could not convert string \"x2\" to float64"),
        "{e}"
    );
    let e = err("1,2\n1,2,3\n", opts(DataType::Float64));
    assert!(
        e.contains("line 2, column 3: expected 2 columns, found 3"),
        "{e}"
    );
    let e = err("1,2\n1\n", opts(DataType::Float64));
    assert!(
        e.contains("line 2, column 2: expected 2 columns, found 1"),
        "{e}"
    );
    let e = err("-1\n", opts(DataType::Uint32));
    assert!(e.contains("out of range for uint32"), "{e}");
    let e = err("1.5\n", opts(DataType::Int64));
    assert!(
        e.contains("could not convert string \"1.5\" to int64"),
        "{e}"
    );
    let e = err("nan(1)\n", opts(DataType::Float64));
    assert!(e.contains("could not convert string \"nan(1)\""), "{e}");
    let e = err("1e\n", opts(DataType::Float64));
    assert!(e.contains("\"1e\""), "{e}");
}

#[test]
fn skip_header_max_rows_usecols() {
    let text = "junk line\na,b,c\n1,2,3\n4,5,6\n7,8,9\n";
    let o = ReadOptions {
        skip_lines: 1,
        header_lines: 1,
        max_rows: Some(2),
        ..opts(DataType::Float64)
    };
    let (v, rows, _) = read_f64(text, o).unwrap();
    assert_eq!((rows, v), (2, vec![1., 2., 3., 4., 5., 6.]));
    // An error past max_rows is never reached.
    let o = ReadOptions {
        max_rows: Some(1),
        ..opts(DataType::Float64)
    };
    assert_eq!(read_f64("1\nx\n", o).unwrap().0, vec![1.0]);
    let o = ReadOptions {
        usecols: Some(vec![2, 0, -1]),
        ..opts(DataType::Float64)
    };
    let (v, rows, w) = read_f64("1,2,3\n4,5,6,7\n", o.clone()).unwrap();
    assert_eq!((rows, w), (2, 3));
    assert_eq!(v, [3., 1., 3., 6., 4., 6.]);
    let e = err("1,2,3\n4,5\n", o);
    assert!(
        e.contains("line 2, column 3: expected at least 3 columns, found 2"),
        "{e}"
    );
    let o = ReadOptions {
        usecols: Some(vec![5]),
        ..opts(DataType::Float64)
    };
    assert!(err("1,2\n", o).contains("usecols"));
}

#[test]
fn multi_byte_and_several_comment_markers() {
    let o = ReadOptions {
        comments: vec![b"//".to_vec(), b"%".to_vec()],
        ..opts(DataType::Float64)
    };
    let (v, rows, _) = read_f64("// c\n1,2 // x\n% y\n3,4%z\n", o).unwrap();
    assert_eq!((rows, v), (2, vec![1., 2., 3., 4.]));
    let o = ReadOptions {
        comments: vec![],
        ..opts(DataType::Float64)
    };
    assert!(err("#1\n", o).contains("could not convert"));
}

#[test]
fn block_boundaries_give_the_same_rows_and_line_numbers() {
    let mut text = String::from("# start\n");
    for i in 0..2000 {
        if i % 97 == 0 {
            text.push_str("\n# comment\n");
        }
        text.push_str(&format!("{i},{}.5,{}\n", i * 2, -(i as i64)));
    }
    let full = read_f64(&text, opts(DataType::Float64)).unwrap();
    for block in [1usize, 7, 64, 1000, 1 << 20] {
        let o = ReadOptions {
            block_bytes: block,
            ..opts(DataType::Float64)
        };
        let (d, rows, w, blocks) = read_raw(&text, o).unwrap();
        assert_eq!((rows, w), (2000, Some(3)));
        assert_eq!(
            bytemuck::pod_collect_to_vec::<u8, f64>(&d),
            full.0,
            "block {block}"
        );
        if block < 1000 {
            assert!(blocks > 10, "{blocks} blocks of {block} bytes");
        }
    }
    // The same error line wherever the blocks fall.
    let mut bad = text.clone();
    bad.push_str("1,2,oops\n");
    let line = bad.lines().count();
    for block in [1usize, 100, 4096, 1 << 20] {
        let o = ReadOptions {
            block_bytes: block,
            ..opts(DataType::Float64)
        };
        let e = err(&bad, o);
        assert!(
            e.contains(&format!("line {line}, column 3")),
            "{block}: {e}"
        );
    }
}

#[test]
fn big_file_parses_in_parallel_pieces() {
    let mut text = String::new();
    let mut want = Vec::new();
    for i in 0..200_000u32 {
        let v = (i as f32) * 0.37 - 5000.0;
        text.push_str(&format!("{v},{}\n", i));
        want.extend_from_slice(&[v, i as f32]);
    }
    let o = ReadOptions {
        block_bytes: 1 << 20,
        ..opts(DataType::Float32)
    };
    let (d, rows, ..) = read_raw(&text, o).unwrap();
    assert_eq!(rows, 200_000);
    assert_eq!(bytemuck::pod_collect_to_vec::<u8, f32>(&d), want);
}

#[test]
fn bom_and_no_trailing_newline_and_empty_input() {
    let (v, rows, _) = read_f64("\u{feff}1,2\n3,4", opts(DataType::Float64)).unwrap();
    assert_eq!((rows, v), (2, vec![1., 2., 3., 4.]));
    let (v, rows, w) = read_f64("", opts(DataType::Float64)).unwrap();
    assert!(v.is_empty() && rows == 0 && w == 0);
    let (_, rows, w, _) = read_raw("# only\n\n", opts(DataType::Float64)).unwrap();
    assert_eq!((rows, w), (0, None));
}

#[test]
fn bad_delimiters_are_refused() {
    for d in [b'e', b'.', b'-', b'1'] {
        let o = ReadOptions {
            delimiter: Delimiter::Byte(d),
            ..opts(DataType::Float64)
        };
        assert!(err("1\n", o).contains("cannot separate numbers"));
    }
}

fn write(
    dtype: DataType,
    width: usize,
    data: &[u8],
    fmt: Option<&str>,
) -> Result<String, NpkError> {
    let o = WriteOptions {
        format: fmt.map(|f| RowFormat::parse(f).unwrap()),
        ..WriteOptions::default()
    };
    let mut w = CsvWriter::new(Vec::new(), "a", dtype, width, o)?;
    w.write_rows(Rows::Contiguous(data))?;
    Ok(String::from_utf8(w.finish()?).unwrap())
}

#[test]
fn shortest_output_round_trips_every_float() {
    let mut vals: Vec<f32> = vec![
        0.1,
        -0.0,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-45,
        f32::NAN,
        f32::INFINITY,
        -f32::INFINITY,
    ];
    let mut s: u32 = 1;
    for _ in 0..20_000 {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        let f = f32::from_bits(s);
        if f.is_finite() {
            vals.push(f);
        }
    }
    let n = vals.len() / 4 * 4;
    let text = write(DataType::Float32, 4, bytemuck::cast_slice(&vals[..n]), None).unwrap();
    assert!(
        text.starts_with("0.1,-0.0,3.4028235e+38,1.1754944e-38\n1e-45,nan,inf,-inf\n"),
        "{}",
        &text[..80]
    );
    let (d, rows, ..) = read_raw(&text, opts(DataType::Float32)).unwrap();
    assert_eq!(rows as usize, n / 4);
    let back: Vec<f32> = bytemuck::pod_collect_to_vec(&d);
    for (a, b) in vals[..n].iter().zip(&back) {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{a} -> {b}"
        );
    }
    let f64s = [0.1f64, 1e300, -5e-324, 123456789.125, f64::EPSILON];
    let text = write(DataType::Float64, 5, bytemuck::cast_slice(&f64s), None).unwrap();
    assert_eq!(
        text,
        "0.1,1e+300,-5e-324,123456789.125,2.220446049250313e-16\n"
    );
    let halves: Vec<f16> = (0..=u16::MAX)
        .map(f16::from_bits)
        .filter(|h| h.is_finite())
        .collect();
    let text = write(DataType::Float16, 1, bytemuck::cast_slice(&halves), None).unwrap();
    let (d, ..) = read_raw(&text, opts(DataType::Float16)).unwrap();
    assert_eq!(
        bytemuck::pod_collect_to_vec::<u8, u16>(&d),
        halves.iter().map(|h| h.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn ints_bools_complex_and_printf() {
    let ints = [i64::MIN, -1, 0, i64::MAX];
    assert_eq!(
        write(DataType::Int64, 2, bytemuck::cast_slice(&ints), None).unwrap(),
        "-9223372036854775808,-1\n0,9223372036854775807\n"
    );
    assert_eq!(
        write(DataType::Bool, 3, &[1, 0, 1], None).unwrap(),
        "1,0,1\n"
    );
    let c = [
        Complex::new(1.5f64, -2.0),
        Complex::new(f64::NAN, f64::INFINITY),
    ];
    assert_eq!(
        write(DataType::Complex128, 2, bytemuck::cast_slice(&c), None).unwrap(),
        "1.5-2.0j,nan+infj\n"
    );
    let f = [0.1f64, -2.5];
    assert_eq!(
        write(
            DataType::Float64,
            2,
            bytemuck::cast_slice(&f),
            Some("%.18e,%.18e")
        )
        .unwrap(),
        "1.000000000000000056e-01,-2.500000000000000000e+00\n"
    );
    assert_eq!(
        write(
            DataType::Float64,
            2,
            bytemuck::cast_slice(&f),
            Some("%d;%6.2f")
        )
        .unwrap(),
        "0; -2.50\n"
    );
    let e = write(
        DataType::Float64,
        1,
        bytemuck::cast_slice(&[f64::NAN]),
        Some("%d"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("array 'a', row 0, column 1"), "{e}");
    assert!(write(DataType::Float64, 2, bytemuck::cast_slice(&f), Some("%d")).is_err());
}

#[test]
fn import_is_all_or_nothing_and_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.npk")).unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "1.5,-0.0\nnan,inf\n").unwrap();
    let shape = import_csv(&store, "g", &good, opts(DataType::Float64), false).unwrap();
    assert_eq!(shape, vec![2, 2]);
    let bad = dir.path().join("bad.csv");
    let mut text = String::new();
    for i in 0..50_000 {
        text.push_str(&format!("{i},{i}\n"));
    }
    text.push_str("1,zz\n");
    std::fs::write(&bad, &text).unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.path().join("s.npk"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let o = ReadOptions {
        block_bytes: 4096,
        ..opts(DataType::Float64)
    };
    let e = import_csv(&store, "g", &bad, o, true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.csv: line 50001, column 2"), "{e}");
    let after: Vec<_> = std::fs::read_dir(dir.path().join("s.npk"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len());
    let snap = store.array("g").unwrap();
    assert_eq!(snap.logical_shape(), vec![2, 2]);
    let out = dir.path().join("out.csv");
    export_csv(
        &snap,
        &out,
        WriteOptions::default(),
        b"# col0,col1\n",
        b"",
        8,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "# col0,col1\n1.5,-0.0\nnan,inf\n"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}
