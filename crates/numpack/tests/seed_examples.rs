//! The published README's Rust examples, compiled unchanged. Complete examples are copied
//! verbatim (each in its own module, `pub` added); fragments are wrapped in functions that
//! define the variables they use (`io`, `data_a`, `data_b`). They use relative paths such as
//! `data.npk`, so each runs inside a scratch working directory, one at a time.
#![allow(unused_variables, unused_imports, clippy::all)]

#[rustfmt::skip]
mod basic_usage {
    use numpack::prelude::*;
    use ndarray::{ArrayD, Array2, IxDyn};
    use std::path::PathBuf;

    pub fn main() -> NpkResult<()> {
        // Create or open a NumPack storage
        let io = ParallelIO::new(PathBuf::from("data.npk"))?;
        
        // Save arrays with explicit dtype
        let data = Array2::<f32>::from_shape_fn((1000, 128), |(r, c)| (r * 128 + c) as f32);
        io.save_arrays(&[("embeddings".to_string(), data.into_dyn(), DataType::Float32)])?;
        
        // Load array back (mmap-based, with automatic cache)
        let loaded: ArrayD<f32> = io.load_array("embeddings")?;
        assert_eq!(loaded.shape(), &[1000, 128]);
        
        // In-place append (file append mode, no rewrite)
        let extra = Array2::<f32>::ones((50, 128)).into_dyn();
        io.append_rows("embeddings", &extra)?;
        assert_eq!(io.get_shape("embeddings")?, vec![1050, 128]);
        
        // Metadata is written on drop, or call sync_metadata() explicitly
        io.sync_metadata()?;
        
        Ok(())
    }
}

#[rustfmt::skip]
mod array_operations {
    use numpack::prelude::*;
    use ndarray::Array2;
    use std::path::PathBuf;

    pub fn example() -> NpkResult<()> {
        let io = ParallelIO::new(PathBuf::from("data.npk"))?;

        // Save
        let data = Array2::<f32>::zeros((1000, 128)).into_dyn();
        io.save_arrays(&[("embeddings".to_string(), data, DataType::Float32)])?;

        // In-place append (no file rewrite, O(new_data) complexity)
        let extra = Array2::<f32>::ones((100, 128)).into_dyn();
        io.append_rows("embeddings", &extra)?;

        // Load full array (mmap with LRU cache, invalidated on write)
        let arr: ndarray::ArrayD<f32> = io.load_array("embeddings")?;
        assert_eq!(arr.shape(), &[1100, 128]);

        // Random access by index (mmap, contiguous block detection)
        let rows: ndarray::ArrayD<f32> = io.getitem("embeddings", &[0, 10, -1])?;
        assert_eq!(rows.shape(), &[3, 128]);

        // Replace rows in-place (pwrite, no file rewrite)
        let new_rows = Array2::<f32>::from_elem((2, 128), 42.0).into_dyn();
        io.replace_rows("embeddings", &new_rows, &[0, 1])?;

        // Logical delete + compact
        io.drop_arrays("embeddings", Some(&[5, 6, 7]))?;
        io.compact_array("embeddings")?;

        // Clone array
        io.clone_array("embeddings", "embeddings_backup")?;

        // Query
        let shape = io.get_shape("embeddings")?;
        let names = io.list_arrays();
        let mtime = io.get_modify_time("embeddings");

        // Delete entire array
        io.drop_arrays("embeddings_backup", None)?;

        io.sync_metadata()?;
        Ok(())
    }
}

#[rustfmt::skip]
mod streaming_load {
    use numpack::prelude::*;

    pub fn fragment(io: &ParallelIO) -> NpkResult<()> {
        // Process large arrays in batches without loading everything into memory
        let iter: StreamIterator<f32> = io.stream_load("large_data", 10000)?;
        for batch_result in iter {
            let batch: ndarray::ArrayD<f32> = batch_result?;
            // Process batch (up to 10000 rows each)
            println!("Batch shape: {:?}", batch.shape());
        }
        Ok(())
    }
}

#[rustfmt::skip]
mod concurrent_access {
    use numpack::prelude::*;
    use ndarray::Array2;
    use std::path::PathBuf;
    use std::thread;

    pub fn concurrent_write() -> NpkResult<()> {
        let dir = "/tmp/numpack_data";
        std::fs::create_dir_all(dir)?;
        
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let dir = dir.to_string();
                thread::spawn(move || {
                    let io = ParallelIO::new(PathBuf::from(dir))?;
                    let data = Array2::<f32>::ones((100, 128)).into_dyn();
                    io.save_arrays(&[(format!("chunk_{}", i), data, DataType::Float32)])?;
                    io.sync_metadata()?;
                    Ok::<_, NpkError>(())
                })
            })
            .collect();
        
        for h in handles {
            h.join().unwrap()?;
        }
        
        Ok(())
    }
}

#[rustfmt::skip]
mod performance_tips {
    use numpack::prelude::*;

    pub fn fragment(io: &ParallelIO, data_a: ndarray::ArrayD<f32>, data_b: ndarray::ArrayD<f32>) -> NpkResult<()> {
        // 1. Batch saves for multiple arrays (auto-parallel for large data)
        let arrays: Vec<(String, ndarray::ArrayD<f32>, DataType)> = vec![
            ("a".to_string(), data_a, DataType::Float32),
            ("b".to_string(), data_b, DataType::Float32),
        ];
        io.save_arrays(&arrays)?;

        // 2. Use append_rows for incremental data (fastest, no rewrite)
        let new_data = Array2::<f32>::ones((100, 128)).into_dyn();
        io.append_rows("a", &new_data)?;

        // 3. Use replace_rows for updating existing rows (pwrite, no rewrite)
        let updated = Array2::<f32>::zeros((3, 128)).into_dyn();
        io.replace_rows("a", &updated, &[0, 1, 2])?;

        // 4. Use stream_load for large arrays that don't fit in memory
        let iter: StreamIterator<f32> = io.stream_load("a", 50000)?;
        for batch in iter {
            let batch = batch?;
            // process batch...
        }

        // 5. Call sync_metadata() once after all operations
        io.sync_metadata()?;

        // 6. Use compact_array() periodically after many deletions
        io.drop_arrays("a", Some(&[0, 1, 2]))?;
        io.compact_array("a")?;
        Ok(())
    }
    use ndarray::Array2;
}

#[rustfmt::skip]
mod error_handling {
    use numpack::core::error::{NpkError, NpkResult};
    use numpack::ParallelIO;

    pub fn fragment(io: &ParallelIO) -> NpkResult<()> {
        match io.get_array_metadata("nonexistent") {
            Ok(meta) => println!("Found: {:?}", meta.shape),
            Err(NpkError::ArrayNotFound(name)) => println!("Array {} not found", name),
            Err(e) => eprintln!("Error: {:?}", e),
        }
        Ok(())
    }
}

use ndarray::Array2;
use numpack::prelude::*;
use std::sync::{Mutex, MutexGuard};

/// The working directory is process-wide: examples that use it run one at a time.
static CWD: Mutex<()> = Mutex::new(());

/// Holds the lock and a scratch working directory for the duration of one example.
struct Scratch {
    _dir: tempfile::TempDir,
    old: std::path::PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl Scratch {
    fn enter() -> Self {
        let lock = CWD.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let old = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        Scratch {
            _dir: dir,
            old,
            _lock: lock,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::env::set_current_dir(&self.old);
    }
}

#[test]
fn basic_usage_runs() {
    let _s = Scratch::enter();
    basic_usage::main().unwrap();
    let io = ParallelIO::new("data.npk").unwrap();
    assert_eq!(io.get_shape("embeddings").unwrap(), vec![1050, 128]);
    let a = io.load_array::<f32>("embeddings").unwrap();
    assert_eq!(a[[999, 127]], (999 * 128 + 127) as f32);
    assert_eq!(a[[1049, 0]], 1.0);
}

#[test]
fn array_operations_run() {
    let _s = Scratch::enter();
    array_operations::example().unwrap();
    let io = ParallelIO::new("data.npk").unwrap();
    // 1100 rows, 3 dropped and compacted; the backup was cloned then dropped.
    assert_eq!(io.get_shape("embeddings").unwrap(), vec![1097, 128]);
    assert_eq!(io.list_arrays(), ["embeddings"]);
    assert_eq!(
        io.get_array_metadata("embeddings").unwrap().shape,
        vec![1097, 128]
    );
    let rows = io.getitem::<f32>("embeddings", &[0, 1, 2, -1]).unwrap();
    assert_eq!(rows[[0, 0]], 42.0);
    assert_eq!(rows[[1, 0]], 42.0);
    assert_eq!(rows[[2, 0]], 0.0);
    assert_eq!(rows[[3, 0]], 1.0);
    // Running it again on the existing store works too (save replaces).
    array_operations::example().unwrap();
    assert_eq!(io.get_shape("embeddings").unwrap(), vec![1097, 128]);
}

#[test]
fn streaming_load_fragment_runs() {
    let _s = Scratch::enter();
    let io = ParallelIO::new("data.npk").unwrap();
    let big = Array2::<f32>::from_elem((25_000, 4), 1.0).into_dyn();
    io.save_arrays(&[("large_data".to_string(), big, DataType::Float32)])
        .unwrap();
    streaming_load::fragment(&io).unwrap();
    let sizes: Vec<usize> = io
        .stream_load::<f32>("large_data", 10000)
        .unwrap()
        .map(|b| b.unwrap().shape()[0])
        .collect();
    assert_eq!(sizes, [10000, 10000, 5000]);
    io.drop_arrays("large_data", None).unwrap();
    assert!(streaming_load::fragment(&io).is_err(), "missing array");
}

#[test]
fn performance_tips_fragment_runs() {
    let _s = Scratch::enter();
    let io = ParallelIO::new("data.npk").unwrap();
    let data_a = Array2::<f32>::from_elem((10, 128), 2.0).into_dyn();
    let data_b = Array2::<f32>::from_elem((20, 128), 3.0).into_dyn();
    performance_tips::fragment(&io, data_a, data_b).unwrap();
    // 10 + 100 rows, 3 dropped and compacted away.
    assert_eq!(io.get_shape("a").unwrap(), vec![107, 128]);
    assert_eq!(io.get_array_metadata("a").unwrap().shape, vec![107, 128]);
    assert_eq!(io.get_shape("b").unwrap(), vec![20, 128]);
    let a = io.load_array::<f32>("a").unwrap();
    assert_eq!(a[[0, 0]], 2.0);
    assert_eq!(a[[106, 0]], 1.0);
}

#[test]
fn error_handling_fragment_runs() {
    let _s = Scratch::enter();
    let io = ParallelIO::new("data.npk").unwrap();
    error_handling::fragment(&io).unwrap();
    assert!(matches!(
        io.get_array_metadata("nonexistent"),
        Err(NpkError::ArrayNotFound(n)) if n == "nonexistent"
    ));
}

#[test]
fn concurrent_access_runs() {
    // This one uses the absolute path /tmp/numpack_data, as published.
    concurrent_access::concurrent_write().unwrap();
    let shared = ParallelIO::new("/tmp/numpack_data").unwrap();
    for i in 0..10 {
        let name = format!("chunk_{i}");
        assert_eq!(shared.get_shape(&name).unwrap(), vec![100, 128]);
        assert_eq!(shared.load_array::<f32>(&name).unwrap()[[99, 127]], 1.0);
    }
}
