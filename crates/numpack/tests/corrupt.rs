//! Corrupt, truncated or hostile store files give `NpkError::Corrupt` (or another clear
//! error) naming the file, never a panic, an abort or a read outside the store.

mod common;

use common::{assert_corrupt, store, u64le};
use ndarray::{ArrayD, IxDyn};
use numpack::format::metadata::{ArrayMetadata, MetadataFile};
use numpack::prelude::*;
use std::path::Path;

/// A store with `a`: float32 [100, 4] (row 3 deleted, so it has a bitmap).
fn make(p: &Path) {
    let io = ParallelIO::new(p).unwrap();
    let a = ArrayD::from_shape_fn(IxDyn(&[100, 4]), |i| i[0] as f32);
    io.save_arrays(&[("a".to_string(), a, DataType::Float32)])
        .unwrap();
    io.drop_arrays("a", Some(&[3])).unwrap();
}

/// Writes a metadata file holding `records`.
fn write_meta(p: &Path, records: Vec<ArrayMetadata>) {
    let mut m = MetadataFile::default();
    for r in records {
        m.arrays.insert(r.name.clone(), r);
    }
    std::fs::create_dir_all(p).unwrap();
    std::fs::write(p.join("metadata.npkm"), m.encode()).unwrap();
}

fn record(name: &str, shape: Vec<u64>, dtype: DataType, file: &str) -> ArrayMetadata {
    ArrayMetadata::new(name, shape, dtype, file.to_string(), 0)
}

/// Position of `compact_array` in [`every_op`].
const COMPACT: usize = 9;

/// Runs every operation on `name` and returns the results.
fn every_op(io: &ParallelIO, name: &str) -> Vec<NpkResult<()>> {
    let row = ArrayD::<f32>::zeros(IxDyn(&[1, 4]));
    vec![
        io.get_shape(name).map(drop),
        io.load_array::<f32>(name).map(drop),
        io.getitem::<f32>(name, &[0, -1]).map(drop),
        io.read_rows(name, &[0]).map(drop),
        io.get_array_view(name).map(drop),
        io.stream_load::<f32>(name, 7)
            .and_then(|mut s| s.try_for_each(|b| b.map(drop))),
        io.append_rows(name, &row),
        io.replace_rows(name, &row, &[0]),
        io.drop_arrays(name, Some(&[0])),
        io.compact_array(name),
        io.clone_array(name, &format!("{name}-clone")),
    ]
}

#[test]
fn bad_magic_version_and_every_truncation_of_the_metadata() {
    let (_d, p) = store();
    make(&p);
    let good = std::fs::read(p.join("metadata.npkm")).unwrap();
    for n in 0..good.len() {
        std::fs::write(p.join("metadata.npkm"), &good[..n]).unwrap();
        assert_corrupt(ParallelIO::new(&p).unwrap_err(), "metadata.npkm");
    }
    let mut bad = good.clone();
    bad[0] = b'X';
    std::fs::write(p.join("metadata.npkm"), &bad).unwrap();
    let e = ParallelIO::new(&p).unwrap_err();
    assert!(e.to_string().contains("bad magic"), "{e}");
    assert_corrupt(e, "metadata.npkm");
    // The failed open did not "repair" the file into an empty store.
    assert_eq!(std::fs::read(p.join("metadata.npkm")).unwrap(), bad);
    let mut v2 = good.clone();
    v2[4] = 2;
    std::fs::write(p.join("metadata.npkm"), &v2).unwrap();
    let e = ParallelIO::new(&p).unwrap_err();
    assert!(e.to_string().contains("version 2"), "{e}");
    // Trailing garbage after the last record.
    let mut long = good;
    long.push(0);
    std::fs::write(p.join("metadata.npkm"), &long).unwrap();
    assert_corrupt(ParallelIO::new(&p).unwrap_err(), "metadata.npkm");
    // The data is still there for a repaired metadata file.
    assert!(p.join("data_a.npkd").exists());
}

#[test]
fn absurd_counts_shapes_and_unknown_dtypes() {
    let (_d, p) = store();
    make(&p);
    let good = std::fs::read(p.join("metadata.npkm")).unwrap();
    let reopen = |b: &[u8]| {
        std::fs::write(p.join("metadata.npkm"), b).unwrap();
        ParallelIO::new(&p).unwrap_err()
    };
    // Array count of 2^32-1.
    let mut b = good.clone();
    b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_corrupt(reopen(&b), "metadata.npkm");
    // Record: name_len(4) "a" ndim(4) dims(16) file_len(4) "data_a.npkd"(11) mtime(8) size(8) dtype
    let dtype_at = 20 + 4 + 1 + 4 + 16 + 4 + 11 + 8 + 8;
    assert_eq!(good[dtype_at], DataType::Float32.code());
    for code in [17u8, 200, 255] {
        let mut b = good.clone();
        b[dtype_at] = code;
        let e = reopen(&b);
        let msg = e.to_string();
        assert!(msg.contains(&format!("unknown dtype code {code}")), "{msg}");
        assert!(msg.contains("'a'"), "names the array: {msg}");
        assert_corrupt(e, "metadata.npkm");
    }
    // A petabyte first dimension (size no longer matches).
    let mut b = good.clone();
    b[29..37].copy_from_slice(&(1u64 << 50).to_le_bytes());
    assert_corrupt(reopen(&b), "metadata.npkm");
    // ndim of 1000 and of 2^32-1.
    for ndim in [65u32, 1000, u32::MAX] {
        let mut b = good.clone();
        b[25..29].copy_from_slice(&ndim.to_le_bytes());
        assert_corrupt(reopen(&b), "metadata.npkm");
    }
    // Name and file lengths of 2^32-1.
    let mut b = good.clone();
    b[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_corrupt(reopen(&b), "metadata.npkm");
    let mut b = good.clone();
    b[45..49].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_corrupt(reopen(&b), "metadata.npkm");
    // A block-info flag other than 0/1, and an absurd block count.
    let flag_at = good.len() - 1;
    let mut b = good.clone();
    b[flag_at] = 7;
    assert_corrupt(reopen(&b), "metadata.npkm");
    let mut b = good.clone();
    b[flag_at] = 1;
    b.push(0);
    b.extend(u64le(65536));
    b.extend(u64le(1));
    b.extend(u32::MAX.to_le_bytes());
    assert_corrupt(reopen(&b), "metadata.npkm");
    // A name that is not UTF-8.
    let mut b = good.clone();
    b[24] = 0xFF;
    assert_corrupt(reopen(&b), "metadata.npkm");
}

#[test]
fn records_that_contradict_each_other() {
    let (_d, p) = store();
    // The same name twice.
    let mut bytes = MetadataFile::default().encode();
    let one = {
        let mut m = MetadataFile::default();
        let r = record("a", vec![1], DataType::Uint8, "data_a.npkd");
        m.arrays.insert("a".into(), r);
        m.encode()
    };
    bytes[16..20].copy_from_slice(&2u32.to_le_bytes());
    bytes.extend(&one[20..]);
    bytes.extend(&one[20..]);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("metadata.npkm"), &bytes).unwrap();
    let e = ParallelIO::new(&p).unwrap_err();
    assert!(e.to_string().contains("duplicate"), "{e}");
    assert_corrupt(e, "metadata.npkm");
    // size_bytes that disagrees with the shape.
    let mut r = record("a", vec![4], DataType::Uint32, "data_a.npkd");
    r.size_bytes = 15;
    write_meta(&p, vec![r]);
    assert_corrupt(ParallelIO::new(&p).unwrap_err(), "metadata.npkm");
}

#[test]
fn shapes_whose_row_size_overflows_are_rejected() {
    // 0 rows, so size_bytes is 0, but one row would be 2^80 * 4 bytes.
    let (_d, p) = store();
    write_meta(
        &p,
        vec![record(
            "a",
            vec![0, 1 << 40, 1 << 40],
            DataType::Float32,
            "data_a.npkd",
        )],
    );
    std::fs::write(p.join("data_a.npkd"), []).unwrap();
    let e = ParallelIO::new(&p).unwrap_err();
    assert!(e.to_string().contains("larger than NumPy allows"), "{e}");
    assert_corrupt(e, "metadata.npkm");
}

#[test]
fn zero_rows_of_a_huge_width_allocate_nothing() {
    // A legal record (NumPy can make such an empty array) whose rows are 2^46 bytes wide.
    let (_d, p) = store();
    write_meta(
        &p,
        vec![record(
            "a",
            vec![0, 1 << 46],
            DataType::Uint8,
            "data_a.npkd",
        )],
    );
    std::fs::write(p.join("data_a.npkd"), []).unwrap();
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.get_shape("a").unwrap(), vec![0, 1 << 46]);
    assert_eq!(io.load_array::<u8>("a").unwrap().len(), 0);
    assert!(matches!(
        io.getitem::<u8>("a", &[0]),
        Err(NpkError::IndexOutOfBounds(0, 0))
    ));
    assert!(matches!(
        io.read_rows("a", &[-1]),
        Err(NpkError::IndexOutOfBounds(-1, 0))
    ));
    assert!(matches!(
        io.get_array_view("a").unwrap().row::<u8>(0),
        Err(NpkError::IndexOutOfBounds(0, 0))
    ));
    assert_eq!(io.getitem::<u8>("a", &[]).unwrap().len(), 0);
    assert_eq!(io.stream_load::<u8>("a", 1).unwrap().count(), 0);
}

#[test]
fn absurd_shape_with_a_short_data_file() {
    // The record is self-consistent (size = shape x itemsize = 2^54 bytes) but the data file
    // holds 64 bytes: every operation reports corruption; none allocates for 2^50 rows.
    for with_bitmap in [false, true] {
        let (_d, p) = store();
        write_meta(
            &p,
            vec![record(
                "a",
                vec![1 << 50, 4],
                DataType::Float32,
                "data_a.npkd",
            )],
        );
        std::fs::write(p.join("data_a.npkd"), [0u8; 64]).unwrap();
        if with_bitmap {
            let mut bm = u64le(4);
            bm.extend(u64le(1));
            bm.extend(u64le(0b1110));
            std::fs::write(p.join("deleted_a.npkb"), bm).unwrap();
        }
        let io = ParallelIO::new(&p).unwrap();
        assert_eq!(io.list_arrays(), ["a"]);
        for (k, r) in every_op(&io, "a").into_iter().enumerate() {
            if k == COMPACT && !with_bitmap {
                // Nothing to compact: a no-op that reads nothing.
                assert!(r.is_ok());
                continue;
            }
            assert_corrupt(r.unwrap_err(), "data_a.npkd");
        }
        assert_eq!(std::fs::metadata(p.join("data_a.npkd")).unwrap().len(), 64);
        io.drop_arrays("a", None).unwrap();
        assert!(io.list_arrays().is_empty());
    }
}

#[test]
fn data_file_shorter_than_the_metadata() {
    let (_d, p) = store();
    make(&p);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(p.join("data_a.npkd"))
        .unwrap();
    f.set_len(100).unwrap();
    let io = ParallelIO::new(&p).unwrap();
    for r in every_op(&io, "a") {
        assert_corrupt(r.unwrap_err(), "data_a.npkd");
    }
    // Nothing was written past the short end and no clone appeared.
    assert_eq!(std::fs::metadata(p.join("data_a.npkd")).unwrap().len(), 100);
    assert_eq!(io.list_arrays(), ["a"]);
    // Whole-array operations still work, so the damage can be cleared.
    io.save_arrays(&[(
        "a".to_string(),
        ArrayD::<f32>::zeros(IxDyn(&[1, 4])),
        DataType::Float32,
    )])
    .unwrap();
    assert_eq!(io.get_shape("a").unwrap(), vec![1, 4]);
}

#[test]
fn missing_data_file() {
    let (_d, p) = store();
    make(&p);
    std::fs::remove_file(p.join("data_a.npkd")).unwrap();
    let io = ParallelIO::new(&p).unwrap();
    for r in every_op(&io, "a") {
        match r.unwrap_err() {
            NpkError::Io { path, source } => {
                assert!(path.ends_with("data_a.npkd"), "{path:?}");
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            NpkError::Corrupt { path, .. } => assert!(path.ends_with("data_a.npkd")),
            other => panic!("{other:?}"),
        }
    }
    io.drop_arrays("a", None).unwrap();
    assert!(!p.join("deleted_a.npkb").exists());
}

#[test]
fn bitmap_of_the_wrong_size() {
    let (_d, p) = store();
    make(&p);
    let good = std::fs::read(p.join("deleted_a.npkb")).unwrap();
    assert_eq!(good.len(), 16 + 2 * 8);
    for len in [0, 7, 8, 15, 17, 24, good.len() - 1, good.len() + 8] {
        let mut b = good.clone();
        b.resize(len, 0);
        std::fs::write(p.join("deleted_a.npkb"), &b).unwrap();
        let io = ParallelIO::new(&p).unwrap();
        for r in every_op(&io, "a") {
            assert_corrupt(r.unwrap_err(), "deleted_a.npkb");
        }
    }
    // A bitmap claiming more rows than the array has.
    let mut b = good.clone();
    b[0..8].copy_from_slice(&1000u64.to_le_bytes());
    std::fs::write(p.join("deleted_a.npkb"), &b).unwrap();
    let e = ParallelIO::new(&p).unwrap().get_shape("a").unwrap_err();
    assert!(e.to_string().contains("1000"), "{e}");
    assert_corrupt(e, "deleted_a.npkb");
    // A wrong deleted count in the header is recomputed from the bits.
    let mut b = good;
    b[8..16].copy_from_slice(&77u64.to_le_bytes());
    std::fs::write(p.join("deleted_a.npkb"), &b).unwrap();
    assert_eq!(
        ParallelIO::new(&p).unwrap().get_shape("a").unwrap(),
        vec![99, 4]
    );
}

#[test]
fn a_bitmap_beside_a_0d_array_does_not_panic() {
    let (_d, p) = store();
    write_meta(
        &p,
        vec![record("s", vec![], DataType::Int32, "data_s.npkd")],
    );
    std::fs::write(p.join("data_s.npkd"), 5i32.to_le_bytes()).unwrap();
    std::fs::write(
        p.join("deleted_s.npkb"),
        [u64le(1), u64le(1), u64le(0)].concat(),
    )
    .unwrap();
    let io = ParallelIO::new(&p).unwrap();
    // Whatever it answers, it answers without panicking.
    let _ = io.get_shape("s");
    let _ = io.load_array::<i32>("s");
    let _ = io.compact_array("s");
    let _ = io.clone_array("s", "t");
    assert!(!numpack::store::verify::verify_dir(&p).problems.is_empty());
}

#[test]
fn data_file_names_that_leave_the_directory_are_rejected() {
    let (d, p) = store();
    make(&p);
    std::fs::write(d.path().join("secret.npkd"), [7u8; 1600]).unwrap();
    let long = format!("data_{}.npkd", "x".repeat(300));
    let evil = [
        "../secret.npkd",
        "data_/../../secret.npkd",
        "data_a/b.npkd",
        "data_a\\b.npkd",
        "/etc/passwd",
        "/tmp/data_x.npkd",
        "data_\0.npkd",
        "",
        ".",
        "..",
        "metadata.npkm",
        ".numpack.lock",
        "secret.npkd",
        long.as_str(),
    ];
    for file in evil {
        let mut r = record("a", vec![400], DataType::Float32, "data_a.npkd");
        r.data_file = file.to_string();
        write_meta(&p, vec![r]);
        let e = ParallelIO::new(&p).unwrap_err();
        assert!(
            e.to_string().contains("unsafe data file name"),
            "{file:?}: {e}"
        );
        assert_corrupt(e, "metadata.npkm");
    }
    assert_eq!(
        std::fs::read(d.path().join("secret.npkd")).unwrap(),
        [7u8; 1600]
    );
    assert_eq!(common::dir_names(d.path()), ["s.npk", "secret.npkd"]);
}

#[test]
fn a_damaged_journal_is_reported_and_never_followed_outside() {
    let (d, p) = store();
    make(&p);
    std::fs::write(d.path().join("victim"), b"keep").unwrap();
    let redo = |from: &str, to: &str| {
        let mut j = b"NPKJ".to_vec();
        j.extend(1u32.to_le_bytes());
        j.extend(1u32.to_le_bytes());
        j.push(1);
        j.extend((from.len() as u32).to_le_bytes());
        j.extend(from.as_bytes());
        j.extend((to.len() as u32).to_le_bytes());
        j.extend(to.as_bytes());
        j
    };
    let undo = |file: &str| {
        let mut j = b"NPKJ".to_vec();
        j.extend(2u32.to_le_bytes());
        j.extend(1u32.to_le_bytes());
        j.extend((file.len() as u32).to_le_bytes());
        j.extend(file.as_bytes());
        j.extend(0u64.to_le_bytes());
        j.extend(4u64.to_le_bytes());
        j.extend(b"EVIL");
        j
    };
    let journals = [
        b"garbage".to_vec(),
        b"NPKJ".to_vec(),
        redo("../victim", "data_a.npkd"),
        redo("data_a.npkd", "../victim"),
        redo("data_a.npkd", "/tmp/x"),
        undo("../victim"),
        undo("a/../../victim"),
        {
            let mut j = redo("x", "y");
            j[4] = 9; // unknown kind
            j
        },
    ];
    for j in journals {
        std::fs::write(p.join(".numpack.journal"), &j).unwrap();
        assert_corrupt(ParallelIO::new(&p).unwrap_err(), ".numpack.journal");
    }
    assert_eq!(std::fs::read(d.path().join("victim")).unwrap(), b"keep");
    assert_eq!(common::dir_names(d.path()), ["s.npk", "victim"]);
    // Removing the bad journal makes the store usable again, unchanged.
    std::fs::remove_file(p.join(".numpack.journal")).unwrap();
    assert_eq!(
        ParallelIO::new(&p).unwrap().get_shape("a").unwrap(),
        vec![99, 4]
    );
}

#[test]
fn random_damage_never_panics() {
    let (_d, p) = store();
    make(&p);
    let meta = std::fs::read(p.join("metadata.npkm")).unwrap();
    let bm = std::fs::read(p.join("deleted_a.npkb")).unwrap();
    let data = std::fs::read(p.join("data_a.npkd")).unwrap();
    let mut rng = common::Rng(7);
    let mut opened = 0;
    for round in 0..300 {
        let mut m = meta.clone();
        let mut b = bm.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(m.len() as u64) as usize;
            m[i] = rng.next() as u8;
        }
        if round % 3 == 0 {
            let i = rng.below(b.len() as u64) as usize;
            b[i] = rng.next() as u8;
        }
        let cut = if round % 5 == 0 {
            rng.below(data.len() as u64) as usize
        } else {
            data.len()
        };
        std::fs::write(p.join("metadata.npkm"), &m).unwrap();
        std::fs::write(p.join("deleted_a.npkb"), &b).unwrap();
        std::fs::write(p.join("data_a.npkd"), &data[..cut]).unwrap();
        if let Ok(io) = ParallelIO::new(&p) {
            opened += 1;
            // Whatever decoded must be handled without panicking (errors are fine).
            for n in io.list_arrays() {
                let _ = io.get_shape(&n);
                let _ = io.read_rows(&n, &[0, -1]);
                let _ = io.load_array::<f32>(&n);
                let _ = io.drop_arrays(&n, Some(&[1]));
                let _ = io.compact_array(&n);
            }
        }
    }
    assert!(
        opened > 10,
        "the damage should leave some stores readable: {opened}"
    );
}
