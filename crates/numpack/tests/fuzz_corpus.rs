//! The saved fuzz corpus (`fuzz/corpus/<target>/`), replayed through the same bodies the
//! cargo-fuzz targets run (`numpack::fuzz`), as a plain test on stable. Every input found
//! by a fuzzing run, and every crash it found once, stays here as a regression test.
//!
//! `cargo test -p numpack --test fuzz_corpus -- --ignored seed` writes the seed inputs
//! (valid files of every kind) that fuzzing starts from.

use numpack::fuzz;
use std::path::{Path, PathBuf};

/// A fuzz body: any bytes in, a panic on a violated property.
type Body = fn(&[u8]);

const TARGETS: [(&str, Body); 8] = [
    ("metadata", fuzz::metadata),
    ("bitmap", fuzz::bitmap),
    ("lock_and_undo", fuzz::lock_and_undo),
    ("journal", fuzz::journal),
    ("package", fuzz::package),
    ("csv", fuzz::csv),
    ("index", fuzz::index),
    ("manifest", fuzz::manifest),
];

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

#[test]
fn every_saved_input_is_handled() {
    let mut total = 0;
    for (target, body) in TARGETS {
        let dir = corpus(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{target}: the corpus is empty");
        for f in &files {
            let data = std::fs::read(f).unwrap();
            if let Err(p) = std::panic::catch_unwind(|| body(&data)) {
                panic!("{target}: {} panicked: {p:?}", f.display());
            }
        }
        total += files.len();
    }
    assert!(total > 0);
}

/// Writes the seed inputs of the `index` target (a small index of each metric).
#[test]
#[ignore = "writes the seed corpus; run by hand"]
fn seed_index() {
    use numpack::format::index::IndexFile;
    use numpack::vector::index::{BuildOptions, Ivf, SliceRows};
    use numpack::vector::Metric;
    let d = corpus("index");
    std::fs::create_dir_all(&d).unwrap();
    let data: Vec<f32> = (0..40 * 3).map(|i| ((i * 29) % 17) as f32 - 8.0).collect();
    let src = SliceRows {
        data: &data,
        dim: 3,
        deleted: None,
    };
    for (m, name) in [
        (Metric::Cosine, "cosine"),
        (Metric::L2, "l2"),
        (Metric::Dot, "dot"),
    ] {
        let opts = BuildOptions {
            nlist: Some(4),
            ..BuildOptions::default()
        };
        let ivf = Ivf::build(m, &src, 40, 3, &opts).unwrap();
        let f = IndexFile {
            stamp: 3,
            rows: 40,
            ivf,
        };
        std::fs::write(d.join(format!("seed-{name}")), f.encode().unwrap()).unwrap();
    }
    let opts = BuildOptions {
        nlist: Some(3),
        pq: Some(3),
        ..BuildOptions::default()
    };
    let f = IndexFile {
        stamp: 4,
        rows: 40,
        ivf: Ivf::build(Metric::Cosine, &src, 40, 3, &opts).unwrap(),
    };
    std::fs::write(d.join("seed-pq"), f.encode().unwrap()).unwrap();
    use numpack::format::index_log::{encode, header, Record};
    let mut log = header(0x0102_0304);
    log.extend(encode(&Record::Added {
        stamp: 9,
        first: 3,
        rows: vec![3, 4],
        lists: vec![0, 3],
    }));
    log.extend(encode(&Record::Moved {
        rows: vec![1],
        lists: vec![2],
    }));
    log.extend(encode(&Record::Stamp(10)));
    std::fs::write(d.join("seed-log"), log).unwrap();
}

/// Writes the seed inputs of every target.
#[test]
#[ignore = "writes the seed corpus; run by hand"]
fn seed() {
    use numpack::format::bitmap::Bitmap;
    use numpack::store::commit::{journal, undo, TMP_PREFIX};
    use numpack::{DataType, SaveItem, Store};
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let d = corpus(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("seed-{name}")), bytes).unwrap();
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s.npk");
    let s = Store::open(&dir).unwrap();
    let v: Vec<u8> = (0..200).collect();
    s.save(&[
        SaveItem {
            name: "a",
            dtype: DataType::Uint8,
            shape: &[20, 10],
            data: &v,
        },
        SaveItem {
            name: "b/ü",
            dtype: DataType::Int32,
            shape: &[5, 10],
            data: &v,
        },
        SaveItem {
            name: "z",
            dtype: DataType::Float32,
            shape: &[7, 0],
            data: &[],
        },
    ])
    .unwrap();
    s.drop_rows("a", &[1, 5, -1]).unwrap();
    drop(s);
    put(
        "metadata",
        "store",
        &std::fs::read(dir.join("metadata.npkm")).unwrap(),
    );
    let bm = std::fs::read(dir.join("deleted_a.npkb")).unwrap();
    let mut with_rows = 20u64.to_le_bytes().to_vec();
    with_rows.extend(&bm);
    put("bitmap", "store", &with_rows);
    let mut b = Bitmap::all_active(130);
    b.delete([0, 64, 129]);
    let mut with_rows = 130u64.to_le_bytes().to_vec();
    with_rows.extend(b.encode());
    put("bitmap", "130", &with_rows);
    let redo = journal::encode(&[
        journal::Step::Rename(format!("{TMP_PREFIX}1.0.data_x.npkd"), "data_x.npkd".into()),
        journal::Step::Remove("deleted_x.npkb".into()),
        journal::Step::Rename(
            format!("{TMP_PREFIX}1.1.metadata.npkm"),
            "metadata.npkm".into(),
        ),
    ]);
    put("journal", "redo", &redo);
    let log = undo::UndoLog {
        files: vec![undo::UndoFile {
            file: "data_x.npkd".into(),
            len: None,
            rows: vec![(8, vec![7; 8])],
        }],
    };
    let rec = undo::encode(&log);
    put("journal", "undo", &rec);
    let mut lock = Vec::new();
    lock.extend(5u64.to_le_bytes());
    lock.extend(2u64.to_le_bytes()); // FLAG_UNDO
    lock.extend((rec.len() as u64).to_le_bytes());
    lock.resize(4096, 0);
    lock.extend(&rec);
    put("lock_and_undo", "undo", &lock);
    put(
        "lock_and_undo",
        "flags",
        &[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0],
    );
    for (name, shuffle) in [("v2", false), ("v3", true)] {
        let p = t.path().join(format!("{name}.npkg"));
        let opts = numpack::package::PackOptions {
            shuffle,
            ..Default::default()
        };
        numpack::package::pack(&dir, &p, &opts, &mut |_, _| {}).unwrap();
        put("package", name, &std::fs::read(&p).unwrap());
    }
    put(
        "csv",
        "floats",
        b"\x001.5,2,3e4\n-0.0,nan,inf\n# comment\n4,5,6\n",
    );
    put("csv", "ints", b"\x021,2\n3,4\n");
    put("csv", "ws", b"\x08 1 2\t3\n4 5 6 \n");
    put("csv", "quoted", b"\x00\"1\",\"2\"\n3,4\n");
}
