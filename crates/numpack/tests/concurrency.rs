//! Several threads (each with its own `ParallelIO`, or sharing one) and several processes
//! append to one array and create arrays in one store at once, while another handle deletes
//! rows and compacts and readers poll; afterwards every row and every array is there
//! exactly once, and every read in between saw a consistent state.

mod common;

use ndarray::{Array2, ArrayD, IxDyn};
use numpack::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const ROWS_PER_WRITER: i64 = 300;
/// Writer id of the rows the deleter removes.
const VICTIM: i64 = -1;

/// Rows `[writer, seq + i]`.
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

/// One writer: appends its rows to `shared` in small batches, in order, then creates an
/// array of its own.
fn writer(io: &ParallelIO, id: i64) {
    let mut seq = 0;
    while seq < ROWS_PER_WRITER {
        let n = (1 + (seq % 3)).min(ROWS_PER_WRITER - seq);
        io.append_rows("shared", &rows(id, seq, n)).unwrap();
        seq += n;
    }
    io.save_arrays(&[(format!("own_{id}"), rows(id, 0, 5), DataType::Int64)])
        .unwrap();
    io.sync_metadata().unwrap();
}

/// Checks a snapshot of `shared`: each writer's sequence numbers are exactly `0..n` in order
/// (appends are never torn, lost, duplicated or reordered).
fn check_consistent(a: &ArrayD<i64>, writers: &[i64]) {
    for &w in writers {
        let seqs: Vec<i64> = a.outer_iter().filter(|r| r[0] == w).map(|r| r[1]).collect();
        let want: Vec<i64> = (0..seqs.len() as i64).collect();
        assert_eq!(seqs, want, "writer {w}");
    }
    for r in a.outer_iter() {
        assert!(
            r[0] == VICTIM || writers.contains(&r[0]),
            "foreign row {r:?}"
        );
    }
}

#[test]
#[ignore = "run by concurrency::threads_and_processes_write_one_store as a child process"]
fn concurrency_child() {
    if let (Ok(dir), Ok(id)) = (
        std::env::var("NUMPACK_CONC_DIR"),
        std::env::var("NUMPACK_CONC_ID"),
    ) {
        let io = ParallelIO::new(Path::new(&dir)).unwrap();
        writer(&io, id.parse().unwrap());
    }
}

#[test]
fn threads_and_processes_write_one_store() {
    let (_d, p) = common::store();
    let io = ParallelIO::new(&p).unwrap();
    io.save_arrays(&[("shared".to_string(), rows(VICTIM, 0, 100), DataType::Int64)])
        .unwrap();
    let writers: Vec<i64> = (0..4).chain(100..104).collect();
    let procs: Vec<_> = (100..104)
        .map(|id: i64| {
            common::spawn_child(
                "concurrency_child",
                &[
                    ("NUMPACK_CONC_DIR", p.display().to_string()),
                    ("NUMPACK_CONC_ID", id.to_string()),
                ],
            )
        })
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|id| {
            let p = p.clone();
            std::thread::spawn(move || writer(&ParallelIO::new(&p).unwrap(), id))
        })
        .collect();
    // A deleter with its own handle removes the victim rows a few at a time, compacting
    // now and then. Appends only add rows at the end, so the logical indexes it computes
    // stay valid until it drops them.
    let deleter = {
        let p = p.clone();
        std::thread::spawn(move || {
            let io = ParallelIO::new(&p).unwrap();
            let mut drops = 0;
            loop {
                let a = io.load_array::<i64>("shared").unwrap();
                let victims: Vec<i64> = a
                    .outer_iter()
                    .enumerate()
                    .filter(|(_, r)| r[0] == VICTIM)
                    .map(|(i, _)| i as i64)
                    .step_by(3)
                    .take(7)
                    .collect();
                if victims.is_empty() {
                    return drops;
                }
                io.drop_arrays("shared", Some(&victims)).unwrap();
                drops += 1;
                if drops % 4 == 0 {
                    io.compact_array("shared").unwrap();
                }
            }
        })
    };
    // A reader polls meanwhile: every state it sees is consistent.
    let mut polls = 0;
    while !threads.iter().all(|t| t.is_finished()) || polls < 20 {
        let a = io.load_array::<i64>("shared").unwrap();
        check_consistent(&a, &writers);
        let shape = io.get_shape("shared").unwrap();
        assert_eq!(shape[1], 2);
        polls += 1;
    }
    for t in threads {
        t.join().unwrap();
    }
    for mut c in procs {
        assert!(c.wait().unwrap().success());
    }
    let drops = deleter.join().unwrap();
    assert!(drops >= 5, "{drops}");

    let io = ParallelIO::new(&p).unwrap();
    let all = io.load_array::<i64>("shared").unwrap();
    assert_eq!(all.shape(), &[writers.len() * ROWS_PER_WRITER as usize, 2]);
    check_consistent(&all, &writers);
    for &w in &writers {
        let n = all.outer_iter().filter(|r| r[0] == w).count();
        assert_eq!(n, ROWS_PER_WRITER as usize, "writer {w}");
        assert_eq!(
            io.load_array::<i64>(&format!("own_{w}")).unwrap(),
            rows(w, 0, 5)
        );
    }
    assert_eq!(io.list_arrays().len(), 1 + writers.len());
    assert!(numpack::store::verify::verify_dir(&p).problems.is_empty());
}

#[test]
fn threads_sharing_one_handle() {
    let (_d, p) = common::store();
    let io = Arc::new(ParallelIO::new(&p).unwrap());
    io.save_arrays(&[(
        "shared".to_string(),
        ArrayD::<i64>::zeros(IxDyn(&[0, 2])),
        DataType::Int64,
    )])
    .unwrap();
    let writers: Vec<i64> = (0..6).collect();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (io, done, writers) = (Arc::clone(&io), Arc::clone(&done), writers.clone());
            std::thread::spawn(move || {
                let mut seen = 0;
                while !done.load(Ordering::Relaxed) {
                    let a = io.load_array::<i64>("shared").unwrap();
                    check_consistent(&a, &writers);
                    let n = io.get_shape("shared").unwrap()[0];
                    assert!(n >= a.shape()[0] as u64, "went backwards");
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    let threads: Vec<_> = writers
        .iter()
        .map(|&id| {
            let io = Arc::clone(&io);
            std::thread::spawn(move || writer(&io, id))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Right after the last append returned, every handle sees every row.
    assert_eq!(
        io.get_shape("shared").unwrap()[0],
        (writers.len() as u64) * ROWS_PER_WRITER as u64
    );
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let all = io.load_array::<i64>("shared").unwrap();
    check_consistent(&all, &writers);
    assert_eq!(all.shape()[0], writers.len() * ROWS_PER_WRITER as usize);
    assert_eq!(io.list_arrays().len(), 1 + writers.len());
}

#[test]
fn reads_never_see_half_of_a_replace() {
    // A writer sets every row of an array to one value per call; readers (own handles) load
    // and gather meanwhile: every row they get must hold the same value (a sequence lock on
    // in-place writes makes them copy again when a replace ran under their copy).
    let (_t, path) = common::store();
    let rows = 4096;
    let io = ParallelIO::new(path.clone()).unwrap();
    let zero = ArrayD::<i64>::zeros(IxDyn(&[rows, 8]));
    io.save_arrays(&[("x".to_string(), zero, DataType::Int64)])
        .unwrap();
    let every: Vec<i64> = (0..rows as i64).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|k| {
            let (path, stop) = (path.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let io = ParallelIO::new(path).unwrap();
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    let a: ArrayD<i64> = if k == 0 {
                        io.load_array("x").unwrap()
                    } else {
                        io.getitem("x", &[0, 4095, 17, 2048]).unwrap()
                    };
                    let first = a.iter().next().copied().unwrap();
                    assert!(
                        a.iter().all(|&v| v == first),
                        "a torn read: {first} and others"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for v in 1..=300i64 {
        let row = ArrayD::<i64>::from_elem(IxDyn(&[1, 8]), v);
        io.replace_rows("x", &row, &every).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}
