//! Several threads and processes append to one array and create arrays in one store at
//! once; afterwards every row and every array is there exactly once.

mod common;

use ndarray::{Array2, ArrayD};
use numpack::prelude::*;
use std::path::Path;
use std::process::Command;

const ROWS_PER_WRITER: i64 = 300;

/// Rows tagged with the writer id and a sequence number.
fn rows(writer: i64, seq: i64, n: i64) -> ArrayD<i64> {
    Array2::from_shape_fn((n as usize, 2), |(i, j)| {
        if j == 0 {
            writer
        } else {
            seq + i as i64
        }
    })
    .into_dyn()
}

/// One writer: its own handle; appends to the shared array in small batches and creates an
/// array of its own.
fn writer(dir: &Path, id: i64) {
    let io = ParallelIO::new(dir).unwrap();
    let mut seq = 0;
    while seq < ROWS_PER_WRITER {
        let n = 1 + (seq % 3);
        io.append_rows("shared", &rows(id, seq, n)).unwrap();
        seq += n;
    }
    io.save_arrays(&[(format!("own_{id}"), rows(id, 0, 5), DataType::Int64)])
        .unwrap();
    io.sync_metadata().unwrap();
}

#[test]
#[ignore = "run by concurrency::threads_and_processes_write_one_store as a child process"]
fn concurrency_child() {
    if let (Ok(dir), Ok(id)) = (
        std::env::var("NUMPACK_CONC_DIR"),
        std::env::var("NUMPACK_CONC_ID"),
    ) {
        writer(Path::new(&dir), id.parse().unwrap());
    }
}

#[test]
fn threads_and_processes_write_one_store() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(&p).unwrap();
    io.save_arrays(&[(
        "shared".to_string(),
        ArrayD::<i64>::zeros(ndarray::IxDyn(&[0, 2])),
        DataType::Int64,
    )])
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let procs: Vec<_> = (100..104)
        .map(|id| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "concurrency_child",
                    "--test-threads=1",
                ])
                .env("NUMPACK_CONC_DIR", &p)
                .env("NUMPACK_CONC_ID", id.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|id| {
            let p = p.clone();
            std::thread::spawn(move || writer(&p, id))
        })
        .collect();
    // A reader polls meanwhile: it must never fail or go backwards.
    let mut last = 0;
    for _ in 0..50 {
        let n = io.get_shape("shared").unwrap()[0];
        assert!(n >= last);
        last = n;
        let _ = io.load_array::<i64>("shared").unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    for mut c in procs {
        assert!(c.wait().unwrap().success());
    }
    let io = ParallelIO::new(&p).unwrap();
    let all = io.load_array::<i64>("shared").unwrap();
    let writers: Vec<i64> = (0..4).chain(100..104).collect();
    assert_eq!(all.shape(), &[writers.len() * ROWS_PER_WRITER as usize, 2]);
    for &w in &writers {
        let mut seqs: Vec<i64> = all
            .outer_iter()
            .filter(|r| r[0] == w)
            .map(|r| r[1])
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..ROWS_PER_WRITER).collect::<Vec<_>>(), "writer {w}");
        assert_eq!(
            io.load_array::<i64>(&format!("own_{w}")).unwrap(),
            rows(w, 0, 5)
        );
    }
    assert_eq!(io.list_arrays().len(), 1 + writers.len());
}
