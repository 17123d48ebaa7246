//! Streaming imports: arrays written batch by batch into temporary files, invisible to every
//! reader until [`Store::commit_writers`] makes all of them appear at once.
//!
//! An import of any size holds no store lock while it writes (other handles keep reading and
//! writing), and a failed or abandoned import leaves nothing behind: the temporary file is
//! removed when its [`ArrayWriter`] is dropped uncommitted, and a killed process's temporaries
//! are removed by the next open.

use super::commit::tmp_path;
use super::save::adopt_file;
use super::{now_micros, Store};
use crate::dtype::DataType;
use crate::error::{NpkError, NpkResult};
use crate::format::metadata::{check_shape as shape_bytes, ArrayMetadata};
use crate::format::names;
use crate::io::{fs, write_at, Flusher};
use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;

/// Bytes an import writes between two background writebacks: imports are streamed, so the
/// disk can work while the next batch is parsed or decoded.
const IMPORT_FLUSH_BYTES: u64 = 8 << 20;

/// A new array being written: its bytes go to a temporary file in the store directory.
#[derive(Debug)]
pub struct ArrayWriter {
    name: String,
    dtype: DataType,
    tmp: PathBuf,
    file: File,
    len: u64,
    /// Ownership of `tmp` passed to a commit (which removes it on failure itself).
    handed_over: bool,
    /// Writes the file back while a large import goes on, so the close's fsync is short
    /// (started once the first [`IMPORT_FLUSH_BYTES`] are written).
    flusher: Option<Flusher>,
    unflushed: u64,
    /// Attributes the array gets at the commit (replacing its old ones); `None` keeps them.
    attrs: Option<crate::format::attrs::Attrs>,
}

impl ArrayWriter {
    /// Sets the attributes (JSON text of an object) the array gets at the commit.
    pub fn set_attrs(&mut self, json: &str) -> NpkResult<()> {
        self.attrs = Some(super::attrs::parse(&self.name, json)?);
        Ok(())
    }

    /// The array name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The element type.
    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends little-endian element bytes (whole elements, C order).
    pub fn write(&mut self, data: &[u8]) -> NpkResult<()> {
        if !data.len().is_multiple_of(self.dtype.size_bytes()) {
            return Err(NpkError::InvalidShape(format!(
                "array '{}': {} bytes are not whole {} elements",
                self.name,
                data.len(),
                self.dtype
            )));
        }
        let r = write_at(&self.file, data, self.len);
        if r.is_ok() {
            fs::note_written(&self.file, &self.tmp, self.len, data.len() as u64);
        }
        self.settle(r, data.len() as u64, true)
    }

    /// Appends `len` bytes of `src` starting at `offset`, copied inside the kernel
    /// (`copy_file_range`) where the file system allows it.
    pub fn copy_from(&mut self, src: &File, offset: u64, len: u64) -> NpkResult<()> {
        if !len.is_multiple_of(self.dtype.size_bytes() as u64) {
            return Err(NpkError::InvalidShape(format!(
                "array '{}': {len} bytes are not whole {} elements",
                self.name, self.dtype
            )));
        }
        crate::io::preallocate(&self.file, self.len, len);
        let r = crate::io::copy_range(src, offset, &self.file, self.len, len);
        if r.is_ok() {
            fs::note_written(&self.file, &self.tmp, self.len, len);
        }
        // No background writeback here: an fdatasync racing a kernel copy into the same
        // file made 256 MB NPY imports 1.5-2x slower and erratic; the kernel's own
        // writeback bounds the dirty pages.
        self.settle(r, len, false)
    }

    /// Counts `n` more bytes after a successful write; after a failed one, cuts off whatever
    /// part of it landed, so the file holds exactly the bytes counted. `flush`: nudge the
    /// background writeback every [`IMPORT_FLUSH_BYTES`].
    fn settle(&mut self, r: std::io::Result<()>, n: u64, flush: bool) -> NpkResult<()> {
        if let Err(e) = r {
            let _ = self.file.set_len(self.len);
            return Err(NpkError::io(&self.tmp, e));
        }
        self.len += n;
        if !flush {
            return Ok(());
        }
        self.unflushed += n;
        if self.unflushed >= IMPORT_FLUSH_BYTES {
            self.unflushed = 0;
            self.flusher
                .get_or_insert_with(|| Flusher::start(&self.file))
                .nudge();
        }
        Ok(())
    }
}

impl Drop for ArrayWriter {
    fn drop(&mut self) {
        if !self.handed_over {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn check_shape(w: &ArrayWriter, shape: &[u64]) -> NpkResult<()> {
    let need = shape_bytes(shape, w.dtype)
        .map_err(|e| NpkError::InvalidShape(format!("array '{}': {e}", w.name)))?;
    if need != w.len {
        return Err(NpkError::InvalidShape(format!(
            "array '{}': shape {shape:?} of {} needs {need} bytes, {} were written",
            w.name, w.dtype, w.len
        )));
    }
    Ok(())
}

impl ArrayWriter {
    /// A writer over a temporary file of this store written elsewhere (a stage's data
    /// file), holding what it holds now.
    pub(super) fn adopt(name: &str, dtype: DataType, tmp: PathBuf) -> NpkResult<Self> {
        let file = fs::open_rw(&tmp)?;
        let len = file.metadata().map_err(|e| NpkError::io(&tmp, e))?.len();
        Ok(ArrayWriter {
            name: name.to_owned(),
            dtype,
            tmp,
            file,
            len,
            handed_over: false,
            flusher: None,
            unflushed: 0,
            attrs: None,
        })
    }
}

impl Store {
    /// Starts writing a new array `name` (it replaces an array of that name when committed).
    pub fn array_writer(&self, name: &str, dtype: DataType) -> NpkResult<ArrayWriter> {
        names::validate(name)?;
        let final_name = names::data_file(&names::stem(name, 0));
        let tmp = tmp_path(self.dir(), &final_name);
        let file = fs::create_new(&tmp)?;
        Ok(ArrayWriter {
            name: name.to_owned(),
            dtype,
            tmp,
            file,
            len: 0,
            handed_over: false,
            flusher: None,
            unflushed: 0,
            attrs: None,
        })
    }

    /// Makes every written array appear at once with its final `shape` (which must account
    /// for exactly the bytes written), replacing arrays of the same names whole; with
    /// `only_these`, every other array of the store is removed in the same commit. All or
    /// nothing: on error no array changes and the temporary files are removed.
    pub fn commit_writers(
        &self,
        writers: Vec<(ArrayWriter, Vec<u64>)>,
        only_these: bool,
    ) -> NpkResult<()> {
        self.commit_new_writers(writers, only_these, false)
    }

    /// [`Store::commit_writers`]; with `must_be_new`, failing (under the lock) when one of
    /// the arrays exists.
    pub(super) fn commit_new_writers(
        &self,
        writers: Vec<(ArrayWriter, Vec<u64>)>,
        only_these: bool,
        must_be_new: bool,
    ) -> NpkResult<()> {
        let mut seen = HashSet::new();
        for (w, shape) in &writers {
            if w.tmp.parent() != Some(self.dir()) {
                return Err(NpkError::InvalidOperation(format!(
                    "array '{}' was started in another store",
                    w.name
                )));
            }
            check_shape(w, shape)?;
            if !seen.insert(w.name.clone()) {
                return Err(NpkError::InvalidOperation(format!(
                    "array '{}' given twice",
                    w.name
                )));
            }
        }
        if writers.is_empty() && !only_these {
            return Ok(());
        }
        let durable = self.durable();
        if durable {
            for (w, _) in &writers {
                fs::sync(&w.file, &w.tmp)?;
            }
        }
        let mut writers = writers;
        self.mutate(|txn| {
            txn.op = crate::format::history::Op::Save;
            if let Some((w, _)) = writers
                .iter()
                .find(|(w, _)| must_be_new && txn.meta.arrays.contains_key(&w.name))
            {
                return Err(NpkError::InvalidOperation(format!(
                    "array '{}' exists (it was created meanwhile); use mode 'overwrite' or \
                     'append'",
                    w.name
                )));
            }
            let now = now_micros();
            if only_these {
                // Removals are staged before the renames, so a new array may reuse a name.
                let others: Vec<ArrayMetadata> = txn
                    .meta
                    .arrays
                    .values()
                    .filter(|a| !seen.contains(&a.name))
                    .cloned()
                    .collect();
                for a in others {
                    super::remove_array(txn, &a.name);
                }
            }
            for (w, shape) in &mut writers {
                let file = adopt_file(txn, &w.name, &w.tmp);
                w.handed_over = true;
                self.mark_dirty(txn.dir().join(&file));
                let record = ArrayMetadata::new(&w.name, std::mem::take(shape), w.dtype, file, now);
                if let Some(attrs) = &w.attrs {
                    super::attrs::stage(txn, &record, attrs)?;
                    if let Some(f) = names::attrs_file(&record.data_file) {
                        self.mark_dirty(txn.dir().join(f));
                    }
                }
                txn.meta_mut().arrays.insert(w.name.clone(), record);
            }
            Ok(())
        })
    }
}
