//! Streaming imports through `ArrayWriter`: invisible until committed, all or nothing.

mod common;

use common::{dir_names, store};
use numpack::prelude::*;
use numpack::Store;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn written_arrays_appear_together_on_commit() {
    let (_t, path) = store();
    let s = Store::open(&path).unwrap();
    let mut a = s.array_writer("a", DataType::Float32).unwrap();
    let mut b = s.array_writer("b", DataType::Float32).unwrap();
    for chunk in 0..3 {
        let rows: Vec<f32> = (0..8).map(|i| (chunk * 8 + i) as f32).collect();
        a.write(&f32_bytes(&rows)).unwrap();
    }
    b.write(&f32_bytes(&[7.5])).unwrap();
    // Nothing visible yet, to this handle or another.
    assert!(!s.has("a").unwrap());
    assert!(!Store::open(&path).unwrap().has("a").unwrap());
    s.commit_writers(vec![(a, vec![12, 2]), (b, vec![])], false)
        .unwrap();
    let io = ParallelIO::new(path.clone()).unwrap();
    let got: ndarray::ArrayD<f32> = io.load_array("a").unwrap();
    assert_eq!(got.shape(), &[12, 2]);
    assert_eq!(got[[11, 1]], 23.0);
    let zero_d: ndarray::ArrayD<f32> = io.load_array("b").unwrap();
    assert_eq!(zero_d.shape(), &[] as &[usize]);
    assert!(!dir_names(&path)
        .iter()
        .any(|n| n.starts_with(".numpack.tmp")));
}

#[test]
fn commit_replaces_an_existing_array_and_its_bitmap() {
    let (_t, path) = store();
    let io = ParallelIO::new(path.clone()).unwrap();
    let old = ndarray::Array2::<f32>::zeros((10, 2)).into_dyn();
    io.save_arrays(&[("x".to_string(), old, DataType::Float32)])
        .unwrap();
    io.drop_arrays("x", Some(&[0, 1])).unwrap();
    let s = Store::open(&path).unwrap();
    let mut w = s.array_writer("x", DataType::Float32).unwrap();
    w.write(&f32_bytes(&[1.0, 2.0, 3.0, 4.0])).unwrap();
    s.commit_writers(vec![(w, vec![2, 2])], false).unwrap();
    assert_eq!(io.get_shape("x").unwrap(), vec![2, 2]);
    let got: ndarray::ArrayD<f32> = io.load_array("x").unwrap();
    assert_eq!(
        got.iter().copied().collect::<Vec<_>>(),
        [1.0, 2.0, 3.0, 4.0]
    );
    assert!(!dir_names(&path).iter().any(|n| n.starts_with("deleted_")));
}

#[test]
fn dropped_or_bad_writers_leave_nothing() {
    let (_t, path) = store();
    let s = Store::open(&path).unwrap();
    let io = ParallelIO::new(path.clone()).unwrap();
    let keep = ndarray::Array1::<f32>::from(vec![9.0, 8.0]).into_dyn();
    io.save_arrays(&[("keep".to_string(), keep, DataType::Float32)])
        .unwrap();
    let before = dir_names(&path);
    {
        let mut w = s.array_writer("gone", DataType::Float32).unwrap();
        w.write(&f32_bytes(&[1.0])).unwrap();
    }
    assert_eq!(dir_names(&path), before);
    // A shape that does not match the bytes: an error, and no array changes.
    let mut w = s.array_writer("keep", DataType::Float32).unwrap();
    w.write(&f32_bytes(&[1.0, 2.0, 3.0])).unwrap();
    let mut ok = s.array_writer("other", DataType::Float32).unwrap();
    ok.write(&f32_bytes(&[1.0])).unwrap();
    let e = s
        .commit_writers(vec![(ok, vec![1]), (w, vec![2])], false)
        .unwrap_err();
    assert!(matches!(e, NpkError::InvalidShape(_)), "{e:?}");
    assert_eq!(dir_names(&path), before);
    assert_eq!(io.list_arrays(), vec!["keep".to_string()]);
    // Partial elements and bad names are refused at once.
    let mut w = s.array_writer("p", DataType::Float32).unwrap();
    assert!(w.write(&[0u8; 3]).is_err());
    assert!(s.array_writer("", DataType::Float32).is_err());
    assert!(s.array_writer("a\0b", DataType::Float32).is_err());
}

#[test]
fn an_import_in_progress_survives_other_opens() {
    let (_t, path) = store();
    let s = Store::open(&path).unwrap();
    let mut w = s.array_writer("big", DataType::Uint8).unwrap();
    w.write(&[1, 2, 3]).unwrap();
    // Another handle opening the store must not take the live temporary for a leftover.
    drop(Store::open(&path).unwrap());
    w.write(&[4]).unwrap();
    s.commit_writers(vec![(w, vec![4])], false).unwrap();
    let io = ParallelIO::new(path).unwrap();
    let got: ndarray::ArrayD<u8> = io.load_array("big").unwrap();
    assert_eq!(got.iter().copied().collect::<Vec<_>>(), [1, 2, 3, 4]);
}

#[test]
fn copy_from_copies_a_byte_range_of_another_file() {
    let (t, path) = store();
    let src_path = t.path().join("src.bin");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    std::fs::write(&src_path, &bytes).unwrap();
    let src = std::fs::File::open(&src_path).unwrap();
    let s = Store::open(&path).unwrap();
    let mut w = s.array_writer("c", DataType::Uint16).unwrap();
    w.copy_from(&src, 128, 4000).unwrap();
    w.copy_from(&src, 0, 2).unwrap();
    assert!(
        w.copy_from(&src, 9_999, 2).is_err(),
        "past the end of the source"
    );
    s.commit_writers(vec![(w, vec![2001])], false).unwrap();
    let raw = std::fs::read(s.data_path("c").unwrap()).unwrap();
    assert_eq!(&raw[..4000], &bytes[128..4128]);
    assert_eq!(&raw[4000..], &bytes[..2]);
}

#[test]
fn only_these_removes_every_other_array_in_the_same_commit() {
    let (_t, path) = store();
    let io = ParallelIO::new(path.clone()).unwrap();
    for name in ["a", "b", "c"] {
        let v = ndarray::Array1::<f32>::zeros(4).into_dyn();
        io.save_arrays(&[(name.to_string(), v, DataType::Float32)])
            .unwrap();
    }
    io.drop_arrays("c", Some(&[0])).unwrap();
    let s = Store::open(&path).unwrap();
    let mut w = s.array_writer("b", DataType::Float32).unwrap();
    w.write(&f32_bytes(&[5.0])).unwrap();
    let mut n = s.array_writer("new", DataType::Float32).unwrap();
    n.write(&f32_bytes(&[6.0, 7.0])).unwrap();
    s.commit_writers(vec![(w, vec![1]), (n, vec![2])], true)
        .unwrap();
    assert_eq!(io.list_arrays(), vec!["b".to_string(), "new".to_string()]);
    assert_eq!(
        dir_names(&path)
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect::<Vec<_>>(),
        ["data_b.npkd", "data_new.npkd", "metadata.npkm"]
    );
    // No writers at all: the store is emptied.
    s.commit_writers(Vec::new(), true).unwrap();
    assert!(io.list_arrays().is_empty());
}

#[test]
fn a_new_array_never_takes_the_file_of_an_array_removed_in_the_same_commit() {
    // A foreign store whose array "q" lives in the file a new array "x" would be given: the
    // new file goes onto its name before the commit point, so it must pick another one.
    let (_t, path) = store();
    let s = Store::open(&path).unwrap();
    let mut q = s.array_writer("q", DataType::Float32).unwrap();
    q.write(&f32_bytes(&[1.0, 2.0])).unwrap();
    s.commit_writers(vec![(q, vec![2])], false).unwrap();
    drop(s);
    let meta_path = path.join("metadata.npkm");
    let mut meta =
        numpack::format::metadata::MetadataFile::decode(&std::fs::read(&meta_path).unwrap())
            .unwrap();
    meta.arrays.get_mut("q").unwrap().data_file = "data_x.npkd".into();
    std::fs::rename(path.join("data_q.npkd"), path.join("data_x.npkd")).unwrap();
    std::fs::write(&meta_path, meta.encode()).unwrap();
    let s = Store::open(&path).unwrap();
    let mut x = s.array_writer("x", DataType::Float32).unwrap();
    x.write(&f32_bytes(&[9.0, 8.0, 7.0])).unwrap();
    s.commit_writers(vec![(x, vec![3])], true).unwrap();
    assert_eq!(s.names().unwrap(), vec!["x".to_string()]);
    let snap = s.array("x").unwrap();
    assert_eq!(snap.to_bytes().unwrap(), f32_bytes(&[9.0, 8.0, 7.0]));
    assert_ne!(snap.meta.data_file, "data_x.npkd");
    assert!(numpack::store::verify::verify_dir(&path)
        .problems
        .is_empty());
    assert!(!dir_names(&path).contains(&"data_x.npkd".to_string()));
}
