//! `ParallelIO`: the published crate's API, a thin facade over [`Store`].

use crate::dtype::{DataType, NpkElement};
use crate::error::{NpkError, NpkResult};
use crate::format::metadata::ArrayMetadata;
use crate::read::snapshot::ArraySnapshot;
use crate::read::stream::StreamIterator;
use crate::store::{SaveItem, Store};
use ndarray::{ArrayD, IxDyn};
use std::borrow::Cow;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A handle on a store directory. Every method takes `&self`; share it between threads or
/// open several (in threads or processes) on the same directory.
#[derive(Debug)]
pub struct ParallelIO {
    store: std::sync::Arc<Store>,
}

/// A lazy, mmap-backed view of one array (see [`ArraySnapshot`]).
#[derive(Debug, Clone)]
pub struct ArrayView(Arc<ArraySnapshot>);

impl Deref for ArrayView {
    type Target = ArraySnapshot;
    fn deref(&self) -> &ArraySnapshot {
        &self.0
    }
}

impl ArrayView {
    /// Logical shape as `usize`.
    pub fn shape(&self) -> Vec<usize> {
        self.logical_shape().iter().map(|&d| d as usize).collect()
    }

    /// The stored dtype.
    pub fn dtype(&self) -> DataType {
        self.meta.dtype
    }

    /// Logical row `i` (negative from the end) as an array of the trailing shape.
    pub fn row<T: NpkElement>(&self, i: i64) -> NpkResult<ArrayD<T>> {
        check_type::<T>(&self.meta)?;
        // Check the index before allocating: the row of an empty array may be huge.
        self.resolve(&[i])?;
        let mut bytes = vec![0u8; self.row_bytes()];
        self.gather_into(&[i], &mut bytes)?;
        to_array(&self.meta.shape[1..], &bytes)
    }

    /// The whole logical array.
    pub fn to_array<T: NpkElement>(&self) -> NpkResult<ArrayD<T>> {
        check_type::<T>(&self.meta)?;
        to_array(&self.logical_shape(), &self.to_bytes()?)
    }
}

/// Builds an `ArrayD<T>` from little-endian bytes.
pub(crate) fn to_array<T: NpkElement>(shape: &[u64], bytes: &[u8]) -> NpkResult<ArrayD<T>> {
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    ArrayD::from_shape_vec(IxDyn(&dims), T::from_bytes(bytes))
        .map_err(|e| NpkError::InvalidShape(e.to_string()))
}

fn check_type<T: NpkElement>(a: &ArrayMetadata) -> NpkResult<()> {
    if a.dtype != T::DTYPE {
        return Err(NpkError::InvalidDtype(format!(
            "array '{}' stores {}, requested as {}",
            a.name,
            a.dtype,
            T::DTYPE
        )));
    }
    Ok(())
}

fn bytes_of<T: NpkElement>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

fn shape_of<T>(a: &ArrayD<T>) -> Vec<u64> {
    a.shape().iter().map(|&d| d as u64).collect()
}

impl ParallelIO {
    /// Creates or opens the store directory `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> NpkResult<Self> {
        Ok(ParallelIO {
            store: std::sync::Arc::new(Store::open(base_dir.into())?),
        })
    }

    /// The underlying store, shared (for snapshots).
    pub fn shared_store(&self) -> std::sync::Arc<Store> {
        std::sync::Arc::clone(&self.store)
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store directory.
    pub fn get_base_dir(&self) -> &Path {
        self.store.dir()
    }

    /// Saves arrays (creating or replacing them whole); parallel when large.
    /// The `DataType` of each tuple must be `T`'s.
    pub fn save_arrays<T: NpkElement>(
        &self,
        arrays: &[(String, ArrayD<T>, DataType)],
    ) -> NpkResult<()> {
        for (name, _, dtype) in arrays {
            if *dtype != T::DTYPE {
                return Err(NpkError::InvalidDtype(format!(
                    "array '{name}': DataType::{dtype:?} given for elements of {}",
                    T::DTYPE
                )));
            }
        }
        let data: Vec<(Cow<'_, [T]>, Vec<u64>)> = arrays
            .iter()
            .map(|(_, a, _)| (bytes_of(a), shape_of(a)))
            .collect();
        let items: Vec<SaveItem<'_>> = arrays
            .iter()
            .zip(&data)
            .map(|((name, _, dtype), (values, shape))| SaveItem {
                name,
                dtype: *dtype,
                shape,
                data: T::as_bytes(values),
            })
            .collect();
        self.store.save(&items)
    }

    /// The whole array (logical rows), of one committed state.
    pub fn load_array<T: NpkElement>(&self, name: &str) -> NpkResult<ArrayD<T>> {
        self.store.read_consistent(name, |s| {
            check_type::<T>(&s.meta)?;
            to_array(&s.logical_shape(), &s.to_bytes()?)
        })
    }

    /// Rows by logical index (negative from the end, any order, duplicates allowed).
    pub fn getitem<T: NpkElement>(&self, name: &str, indexes: &[i64]) -> NpkResult<ArrayD<T>> {
        let snap = self.store.array(name)?;
        check_type::<T>(&snap.meta)?;
        let bytes = self.read_rows(name, indexes)?;
        let mut shape = snap.meta.shape.clone();
        shape[0] = indexes.len() as u64;
        to_array(&shape, &bytes)
    }

    /// The same rows as raw little-endian bytes (of one committed state).
    pub fn read_rows(&self, name: &str, indexes: &[i64]) -> NpkResult<Vec<u8>> {
        self.store.read_consistent(name, |snap| {
            // On an array without rows every index is out of range: say so before allocating
            // for its rows, whose size may be huge (e.g. shape (0, 2**46)).
            if snap.logical_rows() == 0 && !indexes.is_empty() {
                snap.resolve(indexes)?;
            }
            let len = indexes.len().checked_mul(snap.row_bytes()).ok_or_else(|| {
                NpkError::InvalidShape(format!("{} rows of array '{name}' overflow", indexes.len()))
            })?;
            let mut out = Vec::new();
            out.try_reserve_exact(len)
                .map_err(|_| NpkError::OutOfMemory(format!("{len} bytes of array '{name}'")))?;
            out.resize(len, 0);
            snap.gather_into(indexes, &mut out)?;
            Ok(out)
        })
    }

    /// Batches of at most `buffer_size` logical rows.
    pub fn stream_load<T: NpkElement>(
        &self,
        name: &str,
        buffer_size: usize,
    ) -> NpkResult<StreamIterator<T>> {
        let snap = self.store.array(name)?;
        check_type::<T>(&snap.meta)?;
        StreamIterator::new(snap, buffer_size)
    }

    /// A lazy mmap-backed view.
    pub fn get_array_view(&self, name: &str) -> NpkResult<ArrayView> {
        Ok(ArrayView(self.store.array(name)?))
    }

    /// Appends rows in place (the file grows; nothing is rewritten).
    pub fn append_rows<T: NpkElement>(&self, name: &str, data: &ArrayD<T>) -> NpkResult<()> {
        let values = bytes_of(data);
        self.store
            .append(name, T::DTYPE, &shape_of(data), T::as_bytes(&values))
    }

    /// Overwrites rows in place (positional writes).
    pub fn replace_rows<T: NpkElement>(
        &self,
        name: &str,
        data: &ArrayD<T>,
        indexes: &[i64],
    ) -> NpkResult<()> {
        let values = bytes_of(data);
        self.store.replace(
            name,
            T::DTYPE,
            &shape_of(data),
            T::as_bytes(&values),
            indexes,
        )
    }

    /// Deep copy of `source` (logical rows) as `target`.
    pub fn clone_array(&self, source: &str, target: &str) -> NpkResult<()> {
        self.store.clone_array(source, target)
    }

    /// `Some(indexes)`: marks logical rows deleted; `None`: deletes the whole array
    /// (a missing array is not an error then).
    pub fn drop_arrays(&self, name: &str, indexes: Option<&[i64]>) -> NpkResult<()> {
        match indexes {
            Some(idx) => self.store.drop_rows(name, idx),
            None => self.store.drop_arrays(&[name]),
        }
    }

    /// [`ParallelIO::drop_arrays`] for several names.
    pub fn batch_drop_arrays(&self, names: &[String], indexes: Option<&[i64]>) -> NpkResult<()> {
        match indexes {
            Some(idx) => names.iter().try_for_each(|n| self.store.drop_rows(n, idx)),
            None => self
                .store
                .drop_arrays(&names.iter().map(String::as_str).collect::<Vec<_>>()),
        }
    }

    /// Physically removes deleted rows.
    pub fn compact_array(&self, name: &str) -> NpkResult<()> {
        self.store.compact(name)
    }

    /// Alias of [`ParallelIO::compact_array`] (Python's `update`).
    pub fn update(&self, name: &str) -> NpkResult<()> {
        self.compact_array(name)
    }

    /// Whether the array exists.
    pub fn has_array(&self, name: &str) -> bool {
        self.store.has(name).unwrap_or(false)
    }

    /// Array names, sorted.
    pub fn list_arrays(&self) -> Vec<String> {
        self.store.names().unwrap_or_default()
    }

    /// Alias of [`ParallelIO::list_arrays`].
    pub fn get_member_list(&self) -> Vec<String> {
        self.list_arrays()
    }

    /// The array's record (physical shape, dtype, size, modify time).
    pub fn get_array_metadata(&self, name: &str) -> NpkResult<ArrayMetadata> {
        self.store.array_metadata(name)
    }

    /// The array's record, or `None`.
    pub fn get_array_meta(&self, name: &str) -> Option<ArrayMetadata> {
        self.store.array_metadata(name).ok()
    }

    /// Logical shape.
    pub fn get_shape(&self, name: &str) -> NpkResult<Vec<u64>> {
        Ok(self.store.array(name)?.logical_shape())
    }

    /// Last modification, microseconds since the Unix epoch.
    pub fn get_modify_time(&self, name: &str) -> Option<u64> {
        self.get_array_meta(name).map(|a| a.last_modified)
    }

    /// Makes everything durable (fsync of data, metadata and directory). Also done on drop.
    pub fn sync_metadata(&self) -> NpkResult<()> {
        self.store.sync()
    }

    /// Removes every array.
    pub fn reset(&self) -> NpkResult<()> {
        self.store.reset()
    }
}
