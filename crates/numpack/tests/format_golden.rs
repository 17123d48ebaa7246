//! The on-disk format byte by byte (FORMAT.md), both directions.

mod common;

use ndarray::{arr1, ArrayD, IxDyn};
use numpack::format::bitmap::Bitmap;
use numpack::format::metadata::MetadataFile;
use numpack::prelude::*;

fn u32le(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}
fn u64le(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// A metadata file as the published package writes it, built by hand.
fn hand_built() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(b"NPKB");
    b.extend(u32le(1));
    b.extend(u64le(24 + 6)); // total size
    b.extend(u32le(2));
    // record "emb": float32 [3, 2]
    b.extend(u32le(3));
    b.extend(b"emb");
    b.extend(u32le(2));
    b.extend(u64le(3));
    b.extend(u64le(2));
    b.extend(u32le(13));
    b.extend(b"data_emb.npkd");
    b.extend(u64le(1_700_000_000_000_000));
    b.extend(u64le(24));
    b.push(10);
    b.push(0);
    b.extend(u32le(0));
    b.extend(u64le(0));
    b.extend(u64le(0));
    b.push(0);
    // record "ids": uint16 [3]
    b.extend(u32le(3));
    b.extend(b"ids");
    b.extend(u32le(1));
    b.extend(u64le(3));
    b.extend(u32le(13));
    b.extend(b"data_ids.npkd");
    b.extend(u64le(5));
    b.extend(u64le(6));
    b.push(2);
    b.push(0);
    b.extend(u32le(0));
    b.extend(u64le(0));
    b.extend(u64le(0));
    b.push(0);
    b
}

#[test]
fn hand_built_metadata_decodes_to_the_expected_records() {
    let m = MetadataFile::decode(&hand_built()).unwrap();
    let emb = &m.arrays["emb"];
    assert_eq!(emb.shape, vec![3, 2]);
    assert_eq!(emb.data_file, "data_emb.npkd");
    assert_eq!(emb.last_modified, 1_700_000_000_000_000);
    assert_eq!(emb.size_bytes, 24);
    assert_eq!(emb.dtype, DataType::Float32);
    let ids = &m.arrays["ids"];
    assert_eq!(
        (ids.shape.clone(), ids.dtype, ids.size_bytes),
        (vec![3], DataType::Uint16, 6)
    );
    assert_eq!(m.total_size(), 30);
}

#[test]
fn a_hand_built_store_opens_with_its_bitmap() {
    let (_d, p) = common::store();
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("metadata.npkm"), hand_built()).unwrap();
    let emb: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    std::fs::write(p.join("data_emb.npkd"), emb).unwrap();
    std::fs::write(p.join("data_ids.npkd"), [1u8, 0, 2, 0, 3, 0]).unwrap();
    // Bitmap: 3 rows, 1 deleted (row 1): header (rows, deleted) then word 0b101.
    let mut bm = u64le(3);
    bm.extend(u64le(1));
    bm.extend(u64le(0b101));
    std::fs::write(p.join("deleted_emb.npkb"), bm).unwrap();
    let io = ParallelIO::new(p).unwrap();
    assert_eq!(io.get_shape("emb").unwrap(), vec![2, 2]);
    let emb = io.load_array::<f32>("emb").unwrap();
    assert_eq!(
        emb.iter().copied().collect::<Vec<_>>(),
        vec![0.0, 1.0, 4.0, 5.0]
    );
    assert_eq!(
        io.load_array::<u16>("ids").unwrap(),
        arr1(&[1u16, 2, 3]).into_dyn()
    );
}

#[test]
fn a_store_written_here_has_exactly_the_published_bytes() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(p.clone()).unwrap();
    let a = ArrayD::from_shape_vec(IxDyn(&[3]), vec![1u16, 2, 3]).unwrap();
    io.save_arrays(&[("ids".to_string(), a, DataType::Uint16)])
        .unwrap();
    io.sync_metadata().unwrap();
    assert_eq!(
        std::fs::read(p.join("data_ids.npkd")).unwrap(),
        vec![1, 0, 2, 0, 3, 0]
    );
    let meta = std::fs::read(p.join("metadata.npkm")).unwrap();
    let mtime = io.get_modify_time("ids").unwrap();
    let mut expected = Vec::new();
    expected.extend(b"NPKB");
    expected.extend(u32le(1));
    expected.extend(u64le(6));
    expected.extend(u32le(1));
    expected.extend(u32le(3));
    expected.extend(b"ids");
    expected.extend(u32le(1));
    expected.extend(u64le(3));
    expected.extend(u32le(13));
    expected.extend(b"data_ids.npkd");
    expected.extend(u64le(mtime));
    expected.extend(u64le(6));
    expected.push(2);
    expected.push(0);
    expected.extend(u32le(0));
    expected.extend(u64le(0));
    expected.extend(u64le(0));
    expected.push(0);
    assert_eq!(meta, expected);

    // Bitmap layout after dropping row 1 of 3: rows, deleted, LSB-first active bits.
    io.drop_arrays("ids", Some(&[1])).unwrap();
    let bm = std::fs::read(p.join("deleted_ids.npkb")).unwrap();
    let mut want = u64le(3);
    want.extend(u64le(1));
    want.extend(u64le(0b101));
    assert_eq!(bm, want);
    // The metadata keeps the physical shape.
    let m = MetadataFile::decode(&std::fs::read(p.join("metadata.npkm")).unwrap()).unwrap();
    assert_eq!(m.arrays["ids"].shape, vec![3]);
    // Appending extends the bitmap with active rows, deleted ones stay deleted.
    io.append_rows("ids", &arr1(&[9u16, 9]).into_dyn()).unwrap();
    let b = Bitmap::decode(&std::fs::read(p.join("deleted_ids.npkb")).unwrap(), 5).unwrap();
    assert_eq!((b.rows(), b.deleted()), (5, 1));
    assert_eq!(b.active_rows(), vec![0, 2, 3, 4]);
    // No file of ours matches the store's file patterns.
    for e in std::fs::read_dir(&p).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(
            n == "metadata.npkm"
                || n.starts_with("data_")
                || n.starts_with("deleted_")
                || n == ".numpack.lock",
            "unexpected file {n}"
        );
    }
}
