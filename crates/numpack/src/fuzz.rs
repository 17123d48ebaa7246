//! The bodies of the fuzz targets (feature `testing`): one function per decoder, taking any
//! bytes. Each must return, without panicking, hanging or allocating beyond a small multiple
//! of its input, and checks what must hold of what it decoded (round trips, bounds). The
//! cargo-fuzz targets in `fuzz/` call them on nightly; `tests/fuzz_corpus.rs` runs the saved
//! corpus through them on stable.

use crate::convert::{CsvReader, Delimiter, ReadOptions};
use crate::dtype::DataType;
use crate::format::bitmap::Bitmap;
use crate::format::metadata::{check_shape, MetadataFile};
use crate::store::commit::{journal, undo, JOURNAL, METADATA};
use crate::store::lock::{HEADER_BYTES, LOCK_FILE};
use crate::store::Store;
use std::path::PathBuf;

/// A scratch directory on a memory file system when there is one.
fn scratch() -> tempfile_lite::Dir {
    tempfile_lite::Dir::new()
}

/// `metadata.npkm`: decodes, and what decodes re-encodes to the same records.
pub fn metadata(data: &[u8]) {
    if let Ok(m) = MetadataFile::decode(data) {
        let again = MetadataFile::decode(&m.encode()).expect("an encoded file decodes");
        assert_eq!(again, m);
        for a in m.arrays.values() {
            assert_eq!(check_shape(&a.shape, a.dtype), Ok(a.size_bytes));
        }
    }
}

/// `index_<name>.npki`: decodes, what decodes re-encodes to the same bytes, and its lists
/// hold rows below its row count with one vector copy each.
pub fn index(data: &[u8]) {
    use crate::format::index::IndexFile;
    if let Ok(f) = IndexFile::decode(data) {
        assert_eq!(f.encode().as_deref(), Some(data));
        let ivf = &f.ivf;
        assert_eq!(ivf.centroids.len(), ivf.nlist() * ivf.dim);
        let m = ivf.pq.as_ref().map_or(0, |p| p.m);
        for ((l, v), c) in ivf.lists.iter().zip(&ivf.vecs).zip(&ivf.codes) {
            if m == 0 {
                assert_eq!(v.len(), l.len() * ivf.dim);
            } else {
                assert_eq!(c.len(), l.len() * m);
            }
            assert!(l.iter().all(|&r| r < f.rows));
        }
    }
    // The same bytes as a delta log (following the base whose crc its header names).
    use crate::format::index_log::{decode, Bounds, Record};
    if data.len() >= 16 {
        let crc = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
        let b = Bounds { nlist: 4, rows: 64 };
        if let Ok(Some(log)) = decode(data, crc, b) {
            assert!(log.valid as usize <= data.len());
            for r in &log.records {
                if let Record::Added { rows, lists, .. } | Record::Moved { rows, lists } = r {
                    assert_eq!(rows.len(), lists.len());
                    assert!(rows.iter().all(|&r| r < 64) && lists.iter().all(|&l| l < 4));
                }
            }
        }
    }
}

/// `data_<name>.npkseg` (a 0.7 segment manifest of the stem `e`): the first byte picks the
/// row size, the second the row count; what decodes names only files of its folder, adds up
/// and re-encodes to an equal manifest.
pub fn manifest(data: &[u8]) {
    use crate::format::segments::Manifest;
    let [rb, rows, rest @ ..] = data else {
        return;
    };
    let (rb, rows) = (u64::from(*rb % 17), u64::from(*rows));
    if let Ok(m) = Manifest::decode(rest, "e", rows, rb) {
        assert_eq!(m.rows(), rows);
        for s in &m.segments {
            assert!(crate::format::names::segment_number("e", &s.file).is_some());
            assert_eq!(s.bytes, s.rows * rb);
        }
        assert_eq!(Manifest::decode(&m.encode(), "e", rows, rb), Ok(m));
    }
}

/// `deleted_<name>.npkb`: the first 8 bytes pick the array's row count (bounded, as the data
/// file bounds it in a store), the rest is the file.
pub fn bitmap(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let word = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let body = &data[8..];
    // Any row count for the folded count (nothing is allocated for it) ...
    let folded = Bitmap::count_active(body, word);
    // ... and one the decoder may allocate for (bounded as a data file bounds it).
    let rows = word % (1 << 22);
    if let Ok(b) = Bitmap::decode(body, rows) {
        assert_eq!(b.rows(), rows);
        assert!(b.active() <= rows);
        assert_eq!(Bitmap::count_active(body, rows), Ok(b.active()));
        let runs = b.active_rows();
        assert_eq!(runs.len() as u64, b.active());
        for (j, &p) in runs.iter().enumerate().step_by(7) {
            assert_eq!(b.select(j as u64), p);
            assert!(b.is_active(p));
        }
        assert_eq!(Bitmap::decode(&b.encode(), rows), Ok(b));
    }
    if let Ok(n) = folded {
        assert!(n <= word);
    }
}

/// A small valid store in a scratch directory: one array `x` of 4 rows of 8 bytes, and a
/// file outside the store hard-linked into it as `data_zz.npkd` (which no record names), so
/// that a crafted record can try to write through the link.
fn small_store() -> (tempfile_lite::Dir, PathBuf) {
    let d = scratch();
    let dir = d.path().join("s.npk");
    let s = Store::open(&dir).expect("open");
    let rows: Vec<u8> = (0..32).collect();
    s.save(&[crate::store::SaveItem {
        name: "x",
        dtype: DataType::Uint8,
        shape: &[4, 8],
        data: &rows,
    }])
    .expect("save");
    drop(s);
    let victim = d.path().join("victim");
    std::fs::write(&victim, VICTIM).expect("victim");
    std::fs::hard_link(&victim, dir.join("data_zz.npkd")).expect("link");
    (d, dir)
}

/// What the file outside the store holds (and must still hold).
const VICTIM: &[u8] = b"outside the store: never written by numpack";

/// Every file beside `dir` with its bytes.
fn outside(dir: &std::path::Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.parent().expect("parent"))
        .expect("list")
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap_or_default()))
        .collect();
    v.sort();
    v
}

/// Opens the store and reads every array: any result but a panic or a hang is fine, and
/// nothing outside the store directory may change (not a byte).
fn open_and_read(dir: &std::path::Path) {
    let before = outside(dir);
    if let Ok(s) = Store::open(dir) {
        for n in s.names().unwrap_or_default() {
            if let Ok(a) = s.array(&n) {
                let _ = a.to_bytes();
            }
        }
        let _ = s.verify();
    }
    assert_eq!(outside(dir), before, "something outside the store changed");
}

/// `.numpack.lock` header and undo area: the data are the lock file (header words, then the
/// undo record at offset 4096). Also decodes the data as an undo record directly.
pub fn lock_and_undo(data: &[u8]) {
    if let Ok(files) = undo::decode(data) {
        for f in &files {
            assert!(crate::format::names::is_safe_data_file(&f.file));
        }
    }
    let (_d, dir) = small_store();
    let mut lock = vec![0u8; HEADER_BYTES as usize];
    let head = data.len().min(24);
    lock[..head].copy_from_slice(&data[..head]);
    lock.extend_from_slice(&data[head..]);
    std::fs::write(dir.join(LOCK_FILE), &lock).expect("write lock");
    open_and_read(&dir);
}

/// `.numpack.journal`: decodes (a redo journal round-trips), and a store holding it opens
/// (recovery replays or refuses it) without touching anything outside.
pub fn journal(data: &[u8]) {
    if let Ok(steps) = journal::decode(data) {
        assert_eq!(journal::decode(&journal::encode(&steps)), Ok(steps));
    }
    let (_d, dir) = small_store();
    std::fs::write(dir.join(JOURNAL), data).expect("write journal");
    open_and_read(&dir);
}

/// A `.npkg` package: its table is read, it is verified and unpacked; what unpacks opens.
pub fn package(data: &[u8]) {
    let d = scratch();
    let pkg = d.path().join("p.npkg");
    std::fs::write(&pkg, data).expect("write package");
    if let Ok(info) = crate::package::read_info(&pkg) {
        for e in &info.entries {
            assert!(crate::package::is_member_name(&e.name));
        }
    }
    let _ = crate::package::verify(&pkg);
    let target = d.path().join("out.npk");
    let mut progress = |_: u64, _: u64| {};
    if crate::package::unpack(&pkg, &target, false, true, &mut progress).is_ok() {
        assert!(target.join(METADATA).is_file());
        open_and_read(&target);
    }
}

/// The CSV reader: the first byte picks the dtype and delimiter, the rest is the text; every
/// block is read until the end or an error.
pub fn csv(data: &[u8]) {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let dtypes = [
        DataType::Float64,
        DataType::Float32,
        DataType::Int64,
        DataType::Uint8,
        DataType::Bool,
        DataType::Float16,
        DataType::Complex128,
    ];
    let opts = ReadOptions {
        dtype: dtypes[usize::from(pick & 7) % dtypes.len()],
        delimiter: if pick & 8 == 0 {
            Delimiter::Byte(b',')
        } else {
            Delimiter::Whitespace
        },
        header_lines: u64::from(pick >> 7),
        block_bytes: 64 + usize::from(pick >> 4) * 97,
        ..ReadOptions::default()
    };
    let Ok(mut r) = CsvReader::new(std::io::Cursor::new(text), "fuzz.csv".into(), opts) else {
        return;
    };
    // Every block holds at least one byte of text.
    for _ in 0..=text.len() {
        match r.next_block() {
            Ok(Some(b)) => {
                let _ = b;
            }
            Ok(None) | Err(_) => return,
        }
    }
    panic!("the CSV reader returned more blocks than the text has bytes");
}

/// A scratch directory removed on drop (the crate's tests use `tempfile`, which the library
/// does not depend on).
mod tempfile_lite {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    static N: AtomicU64 = AtomicU64::new(0);

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let base = if Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            };
            let p = base.join(format!(
                "numpack-fuzz-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("scratch dir");
            Dir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
