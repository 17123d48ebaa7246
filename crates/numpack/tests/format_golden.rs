//! The on-disk format byte by byte (FORMAT.md), both directions: hand-built files decode to
//! the expected records and open as a store, and a store written here has exactly the
//! expected bytes (metadata header and record fields, data file, bitmap header and bits).

mod common;

use common::{u32le, u64le};
use ndarray::{ArrayD, IxDyn};
use numpack::format::bitmap::Bitmap;
use numpack::format::metadata::{BlockInfo, MetadataFile};
use numpack::prelude::*;
use std::path::Path;

/// Block section: enabled, block size, number of blocks, (offset, original, compressed)s.
type Blocks<'a> = (u8, u64, u64, &'a [(u64, u64, u64)]);

/// One metadata record, written field by field as FORMAT.md lists them.
struct Rec<'a> {
    name: &'a str,
    shape: &'a [u64],
    file: &'a str,
    mtime: u64,
    size: u64,
    dtype: u8,
    compression: u8,
    /// `None`: flag 0; `Some((enabled, block_size, num_blocks, blocks))`: flag 1.
    blocks: Option<Blocks<'a>>,
}

impl Rec<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(u32le(self.name.len() as u32));
        b.extend(self.name.as_bytes());
        b.extend(u32le(self.shape.len() as u32));
        for d in self.shape {
            b.extend(u64le(*d));
        }
        b.extend(u32le(self.file.len() as u32));
        b.extend(self.file.as_bytes());
        b.extend(u64le(self.mtime));
        b.extend(u64le(self.size));
        b.push(self.dtype);
        b.push(self.compression);
        b.extend(u32le(0)); // level
        b.extend(u64le(0)); // original size
        b.extend(u64le(0)); // compressed size
        match self.blocks {
            None => b.push(0),
            Some((enabled, block_size, num, blocks)) => {
                b.push(1);
                b.push(enabled);
                b.extend(u64le(block_size));
                b.extend(u64le(num));
                b.extend(u32le(blocks.len() as u32));
                for (o, s, c) in blocks {
                    b.extend(u64le(*o));
                    b.extend(u64le(*s));
                    b.extend(u64le(*c));
                }
            }
        }
        b
    }
}

fn rec<'a>(name: &'a str, shape: &'a [u64], file: &'a str, size: u64, dtype: u8) -> Rec<'a> {
    Rec {
        name,
        shape,
        file,
        mtime: 1_700_000_000_000_000,
        size,
        dtype,
        compression: 0,
        blocks: None,
    }
}

/// Header (magic, version, total size, count) then the records.
fn metadata(total: u64, recs: &[Rec<'_>]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(b"NPKB");
    assert_eq!(&b[..], &0x424B_504Eu32.to_le_bytes());
    b.extend(u32le(1));
    b.extend(u64le(total));
    b.extend(u32le(recs.len() as u32));
    for r in recs {
        b.extend(r.bytes());
    }
    b
}

/// A metadata file as the published package writes it: float32 [3, 2] and uint16 [3].
fn hand_built() -> Vec<u8> {
    metadata(
        30,
        &[
            rec("emb", &[3, 2], "data_emb.npkd", 24, 10),
            Rec {
                mtime: 5,
                ..rec("ids", &[3], "data_ids.npkd", 6, 2)
            },
        ],
    )
}

fn write_store(p: &Path, meta: &[u8], files: &[(&str, Vec<u8>)]) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::write(p.join("metadata.npkm"), meta).unwrap();
    for (n, b) in files {
        std::fs::write(p.join(n), b).unwrap();
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Bitmap file bytes: rows, deleted, then the words.
fn bitmap(rows: u64, deleted: u64, words: &[u64]) -> Vec<u8> {
    let mut b = u64le(rows);
    b.extend(u64le(deleted));
    for w in words {
        b.extend(u64le(*w));
    }
    b
}

#[test]
fn hand_built_metadata_decodes_to_the_expected_records() {
    let bytes = hand_built();
    let m = MetadataFile::decode(&bytes).unwrap();
    assert_eq!(m.arrays.len(), 2);
    let emb = &m.arrays["emb"];
    assert_eq!(emb.name, "emb");
    assert_eq!(emb.shape, vec![3, 2]);
    assert_eq!(emb.data_file, "data_emb.npkd");
    assert_eq!(emb.last_modified, 1_700_000_000_000_000);
    assert_eq!(emb.size_bytes, 24);
    assert_eq!(emb.dtype, DataType::Float32);
    assert_eq!(
        (
            emb.compression,
            emb.compression_level,
            emb.original_size,
            emb.compressed_size
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(emb.block_info, None);
    let ids = &m.arrays["ids"];
    assert_eq!(
        (
            ids.shape.clone(),
            ids.dtype,
            ids.size_bytes,
            ids.last_modified
        ),
        (vec![3], DataType::Uint16, 6, 5)
    );
    assert_eq!(m.total_size(), 30);
    // Records sorted by name encode back to the very same bytes.
    assert_eq!(m.encode(), bytes);
}

#[test]
fn the_optional_block_section_is_parsed_and_skipped() {
    let blocks = [(0u64, 24u64, 24u64), (24, 0, 0)];
    let meta = metadata(
        30,
        &[
            Rec {
                blocks: Some((0, 65536, 2, &blocks)),
                ..rec("emb", &[3, 2], "data_emb.npkd", 24, 10)
            },
            rec("ids", &[3], "data_ids.npkd", 6, 2),
        ],
    );
    let m = MetadataFile::decode(&meta).unwrap();
    assert_eq!(
        m.arrays["emb"].block_info,
        Some(BlockInfo {
            enabled: 0,
            block_size: 65536,
            num_blocks: 2,
            blocks: blocks.to_vec(),
        })
    );
    // The record after the block section decodes: the section was skipped exactly.
    assert_eq!(m.arrays["ids"].shape, vec![3]);
    assert_eq!(m.encode(), meta);
    // Block info that is not enabled on an uncompressed array: readable.
    let (_d, p) = common::store();
    write_store(
        &p,
        &meta,
        &[
            ("data_emb.npkd", f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
            ("data_ids.npkd", vec![1, 0, 2, 0, 3, 0]),
        ],
    );
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.load_array::<f32>("emb").unwrap().len(), 6);
    assert_eq!(
        io.load_array::<u16>("ids").unwrap(),
        common::arr(&[3], vec![1u16, 2, 3])
    );
}

#[test]
fn compressed_arrays_are_refused_with_a_clear_error() {
    let (_d, p) = common::store();
    let blocks = [(0u64, 24u64, 20u64)];
    let meta = metadata(
        30,
        &[
            Rec {
                compression: 1,
                ..rec("emb", &[3, 2], "data_emb.npkd", 24, 10)
            },
            Rec {
                blocks: Some((1, 65536, 1, &blocks)),
                ..rec("blk", &[3], "data_blk.npkd", 6, 2)
            },
        ],
    );
    write_store(
        &p,
        &meta,
        &[
            ("data_emb.npkd", vec![0; 24]),
            ("data_blk.npkd", vec![0; 6]),
        ],
    );
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.list_arrays(), ["blk", "emb"]);
    for name in ["emb", "blk"] {
        let e = io.get_array_view(name).unwrap_err();
        match &e {
            NpkError::InvalidMetadata(m) => {
                assert!(
                    m.contains(&format!("'{name}'")) && m.contains("compressed"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(io.load_array::<f32>("emb").is_err());
    assert!(io.getitem::<u16>("blk", &[0]).is_err());
}

#[test]
fn a_hand_built_store_opens_with_its_bitmap() {
    let (_d, p) = common::store();
    write_store(
        &p,
        &hand_built(),
        &[
            ("data_emb.npkd", f32_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
            ("data_ids.npkd", vec![1, 0, 2, 0, 3, 0]),
            // 3 rows, 1 deleted (row 1): active bits 0b101.
            ("deleted_emb.npkb", bitmap(3, 1, &[0b101])),
        ],
    );
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.get_shape("emb").unwrap(), vec![2, 2]);
    assert_eq!(io.get_array_metadata("emb").unwrap().shape, vec![3, 2]);
    assert_eq!(
        io.load_array::<f32>("emb").unwrap(),
        common::arr(&[2, 2], vec![0.0, 1.0, 4.0, 5.0])
    );
    assert_eq!(
        io.load_array::<u16>("ids").unwrap(),
        common::arr(&[3], vec![1u16, 2, 3])
    );
    assert_eq!(io.get_modify_time("ids"), Some(5));
    // Writing through it keeps the format: compaction removes the bitmap.
    io.compact_array("emb").unwrap();
    assert!(!p.join("deleted_emb.npkb").exists());
    assert_eq!(
        std::fs::read(p.join("data_emb.npkd")).unwrap(),
        f32_bytes(&[0.0, 1.0, 4.0, 5.0])
    );
}

#[test]
fn legacy_and_short_bitmaps_are_read() {
    // Header-less (words only) and a bitmap covering fewer rows than the array (written
    // before an append): rows past its end are active.
    let (_d, p) = common::store();
    let meta = metadata(
        160,
        &[
            rec("a", &[70], "data_a.npkd", 70, 1),
            rec("b", &[90], "data_b.npkd", 90, 1),
        ],
    );
    let mut legacy = Vec::new();
    legacy.extend(u64le(!(1u64 << 5)));
    legacy.extend(u64le(0b10_1111)); // rows 64..70: row 68 deleted
    let short = bitmap(10, 2, &[0b11_1111_1100]); // rows 0 and 1 deleted
    write_store(
        &p,
        &meta,
        &[
            ("data_a.npkd", (0..70u8).collect()),
            ("data_b.npkd", (0..90u8).collect()),
            ("deleted_a.npkb", legacy),
            ("deleted_b.npkb", short),
        ],
    );
    let io = ParallelIO::new(&p).unwrap();
    let a: Vec<u8> = io.load_array::<u8>("a").unwrap().into_iter().collect();
    assert_eq!(
        a,
        (0..70u8).filter(|&r| r != 5 && r != 68).collect::<Vec<_>>()
    );
    let b: Vec<u8> = io.load_array::<u8>("b").unwrap().into_iter().collect();
    assert_eq!(b, (2..90u8).collect::<Vec<_>>());
    assert_eq!(io.get_shape("b").unwrap(), vec![88]);
    // The next write brings the bitmap back to the headered layout covering every row.
    io.drop_arrays("b", Some(&[-1])).unwrap();
    // Rows 0 and 1 (earlier) and 89 (now) deleted; rows 90.. of word 1 are padding.
    let words = [!0b11u64, (1u64 << (89 - 64)) - 1];
    assert_eq!(
        std::fs::read(p.join("deleted_b.npkb")).unwrap(),
        bitmap(90, 3, &words)
    );
}

#[test]
fn a_hand_built_0d_record() {
    let (_d, p) = common::store();
    let meta = metadata(8, &[rec("s", &[], "data_s.npkd", 8, 11)]);
    write_store(&p, &meta, &[("data_s.npkd", 2.5f64.to_le_bytes().to_vec())]);
    let io = ParallelIO::new(&p).unwrap();
    assert_eq!(io.get_shape("s").unwrap(), Vec::<u64>::new());
    assert_eq!(
        io.load_array::<f64>("s").unwrap(),
        ArrayD::from_elem(IxDyn(&[]), 2.5)
    );
}

#[test]
fn a_store_written_here_has_exactly_the_expected_bytes() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(&p).unwrap();
    let ids = common::arr(&[3], vec![1u16, 2, 0xABCD]);
    io.save_arrays(&[("ids".to_string(), ids, DataType::Uint16)])
        .unwrap();
    let m2 = common::arr(&[2, 2], vec![1.0f64, -2.0, 0.5, 1e300]);
    let s = ArrayD::from_elem(IxDyn(&[]), -7i64);
    io.save_arrays(&[("m2".to_string(), m2, DataType::Float64)])
        .unwrap();
    io.save_arrays(&[("s".to_string(), s, DataType::Int64)])
        .unwrap();
    io.sync_metadata().unwrap();

    // Data files: C order, little-endian, no header.
    assert_eq!(
        std::fs::read(p.join("data_ids.npkd")).unwrap(),
        [1, 0, 2, 0, 0xCD, 0xAB]
    );
    let m2_bytes: Vec<u8> = [1.0f64, -2.0, 0.5, 1e300]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(std::fs::read(p.join("data_m2.npkd")).unwrap(), m2_bytes);
    assert_eq!(
        std::fs::read(p.join("data_s.npkd")).unwrap(),
        (-7i64).to_le_bytes()
    );

    // Metadata: header then one record per array, every field as FORMAT.md lists it.
    let t = |n: &str| io.get_modify_time(n).unwrap();
    let expected = metadata(
        6 + 32 + 8,
        &[
            Rec {
                mtime: t("ids"),
                ..rec("ids", &[3], "data_ids.npkd", 6, 2)
            },
            Rec {
                mtime: t("m2"),
                ..rec("m2", &[2, 2], "data_m2.npkd", 32, 11)
            },
            Rec {
                mtime: t("s"),
                ..rec("s", &[], "data_s.npkd", 8, 8)
            },
        ],
    );
    let meta = std::fs::read(p.join("metadata.npkm")).unwrap();
    assert_eq!(meta, expected);
    // Spot-check offsets of the first record against the table.
    assert_eq!(&meta[0..4], b"NPKB");
    assert_eq!(&meta[4..8], &[1, 0, 0, 0]);
    assert_eq!(&meta[8..16], &46u64.to_le_bytes());
    assert_eq!(&meta[16..20], &3u32.to_le_bytes());
    assert_eq!(&meta[20..24], &3u32.to_le_bytes());
    assert_eq!(&meta[24..27], b"ids");
    assert_eq!(&meta[27..31], &1u32.to_le_bytes());
    assert_eq!(&meta[31..39], &3u64.to_le_bytes());
    assert_eq!(&meta[39..43], &13u32.to_le_bytes());
    assert_eq!(&meta[43..56], b"data_ids.npkd");
    assert_eq!(&meta[56..64], &t("ids").to_le_bytes());
    assert_eq!(&meta[64..72], &6u64.to_le_bytes());
    assert_eq!(meta[72], 2, "dtype code of uint16");
    assert_eq!(meta[73], 0, "no compression");
    assert_eq!(&meta[74..94], &[0u8; 20][..]);
    assert_eq!(meta[94], 0, "no block section");
    only_format_files(&p);
}

#[test]
fn bitmap_layout_header_and_lsb_first_active_bits() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(&p).unwrap();
    let a = common::arr(&[130], (0..130u32).collect());
    io.save_arrays(&[("a".to_string(), a, DataType::Uint32)])
        .unwrap();
    io.drop_arrays("a", Some(&[0, 64, -1])).unwrap();
    // 130 rows, 3 deleted; bit i % 64 of word i / 64 is 1 when row i is active; padding 0.
    let want = bitmap(130, 3, &[!1u64, !1u64, 0b01]);
    assert_eq!(std::fs::read(p.join("deleted_a.npkb")).unwrap(), want);
    // The data file and the physical shape are untouched.
    assert_eq!(std::fs::metadata(p.join("data_a.npkd")).unwrap().len(), 520);
    let m = MetadataFile::decode(&std::fs::read(p.join("metadata.npkm")).unwrap()).unwrap();
    assert_eq!(m.arrays["a"].shape, vec![130]);
    assert_eq!(m.arrays["a"].size_bytes, 520);
    // Appending extends the bitmap with active rows; deleted ones stay deleted.
    io.append_rows("a", &common::arr(&[2], vec![130u32, 131]))
        .unwrap();
    let want = bitmap(132, 3, &[!1u64, !1u64, 0b1101]);
    assert_eq!(std::fs::read(p.join("deleted_a.npkb")).unwrap(), want);
    let b = Bitmap::decode(&want, 132).unwrap();
    assert_eq!((b.rows(), b.deleted(), b.active()), (132, 3, 129));
    // Deleting a row in the middle of a word.
    io.drop_arrays("a", Some(&[2])).unwrap(); // logical 2 = physical 3
    let want = bitmap(132, 4, &[!1u64 & !(1 << 3), !1u64, 0b1101]);
    assert_eq!(std::fs::read(p.join("deleted_a.npkb")).unwrap(), want);
    // Compaction: only the active rows, no bitmap, shape updated.
    io.compact_array("a").unwrap();
    assert!(!p.join("deleted_a.npkb").exists());
    let kept: Vec<u32> = (0..132).filter(|r| ![0, 3, 64, 129].contains(r)).collect();
    let bytes: Vec<u8> = kept.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(std::fs::read(p.join("data_a.npkd")).unwrap(), bytes);
    let m = MetadataFile::decode(&std::fs::read(p.join("metadata.npkm")).unwrap()).unwrap();
    assert_eq!(m.arrays["a"].shape, vec![128]);
    assert_eq!(m.arrays["a"].size_bytes, 512);
    // Every row deleted: the array goes (record, data file, bitmap), as the published 0.6.
    io.drop_arrays("a", Some(&(0..128).collect::<Vec<i64>>()))
        .unwrap();
    assert!(!p.join("deleted_a.npkb").exists() && !p.join("data_a.npkd").exists());
    let m = MetadataFile::decode(&std::fs::read(p.join("metadata.npkm")).unwrap()).unwrap();
    assert!(!m.arrays.contains_key("a"));
    only_format_files(&p);
}

#[test]
fn published_file_names_for_plain_names() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(&p).unwrap();
    let names = ["emb", "Emb_2", "a.b-c", "x".repeat(200).leak() as &str];
    for n in names {
        let a = common::arr(&[2, 1], vec![1u8, 2]);
        io.save_arrays(&[(n.to_string(), a, DataType::Uint8)])
            .unwrap();
        io.drop_arrays(n, Some(&[0])).unwrap();
        let m = io.get_array_metadata(n).unwrap();
        assert_eq!(m.data_file, format!("data_{n}.npkd"));
        assert!(p.join(format!("data_{n}.npkd")).is_file());
        assert!(p.join(format!("deleted_{n}.npkb")).is_file());
    }
    only_format_files(&p);
}

/// Nothing but the metadata, data and bitmap files (and the lock file) in the store.
fn only_format_files(p: &Path) {
    for n in common::dir_names(p) {
        let ok = n == "metadata.npkm"
            || n == ".numpack.lock"
            || (n.starts_with("data_") && n.ends_with(".npkd"))
            || (n.starts_with("deleted_") && n.ends_with(".npkb"));
        assert!(ok, "unexpected file {n}");
    }
}
