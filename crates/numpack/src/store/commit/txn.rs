//! The transaction: a mutation being prepared under the exclusive lock, and its commit.
//!
//! Commit order (`D` = durable only):
//! 1. bump the store generation (every handle reloads);
//! 2. D: fdatasync every data file written in place (appended rows), fsync every new file;
//! 3. rename new files onto the names no record refers to yet; D: fsync the directory (also
//!    when a journal follows, so that the temporaries it renames are durable);
//! 4. the commit point: the metadata `pwrite` in place, the metadata rename (one step), or
//!    the journal rename (several steps; D: the journal is fsynced first and the directory
//!    after), then the journaled steps and the journal's removal; or, for patched files
//!    (never durable), the undo record of their old bytes and the metadata's, the writes,
//!    and the record's retirement (the commit point);
//! 5. D: fsync the directory.

use super::journal::{self, Step};
use super::{tmp_path, JOURNAL, METADATA};
use crate::error::{NpkError, NpkResult};
use crate::format::metadata::MetadataFile;
use crate::io::fs;
use crate::store::lock::{StoreLock, FLAG_JOURNAL};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The metadata file as this handle last read or wrote it, for in-place commits.
#[derive(Debug, Clone, Copy)]
pub struct MetaBase<'a> {
    /// A read-write descriptor of the live `metadata.npkm`.
    pub file: &'a File,
    /// Its exact bytes.
    pub bytes: &'a [u8],
}

/// What a commit did to `metadata.npkm`.
#[derive(Debug)]
pub enum MetaWrite {
    /// Not written.
    Unchanged,
    /// Edited in place: the base file now holds these bytes.
    InPlace(Vec<u8>),
    /// Edited in place with other files (bitmaps) in the same commit: the base file now
    /// holds these bytes, and views of the arrays may be stale even where their record is
    /// unchanged.
    Patched(Vec<u8>),
    /// Replaced by a new file (open read-write) holding these bytes.
    Replaced(File, Vec<u8>),
}

/// A mutation being prepared under the exclusive lock.
#[derive(Debug)]
pub struct Txn<'a> {
    dir: PathBuf,
    durable: bool,
    lock: &'a StoreLock,
    base: Option<MetaBase<'a>>,
    /// The metadata as it will be committed.
    pub meta: MetadataFile,
    meta_changed: bool,
    /// New files renamed onto unreferenced names before the commit point.
    places: Vec<(String, String)>,
    steps: Vec<Step>,
    tmp_files: Vec<PathBuf>,
    /// Files written in place (appends), to be synced before a durable commit point.
    written: Vec<(Arc<File>, PathBuf)>,
    /// The committed metadata (what the store is until this commits).
    committed: Arc<MetadataFile>,
    /// What the commit does about history (none: a commit outside a store handle).
    pub(crate) history: Option<crate::store::history::Plan>,
    /// What the mutation is, for its history record.
    pub op: crate::format::history::Op,
    /// crc32 of the committed metadata file's bytes as read (when known).
    pub(crate) committed_crc: Option<u32>,
    /// Files to write in place at commit (bitmaps), under one undo record with the metadata.
    patches: Vec<Patch>,
    /// Segment folders (and their manifests) to remove once the commit is done.
    folders: Vec<(String, String)>,
}

mod patch;
use patch::{changed_range, Patch};

fn bare(tmp: &Path) -> String {
    tmp.file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 temp name")
        .to_owned()
}

impl<'a> Txn<'a> {
    /// Starts a mutation of the store in `dir` whose current metadata is `committed` (and,
    /// when known, `base`: the file and bytes it was decoded from).
    pub fn new(
        dir: &Path,
        committed: Arc<MetadataFile>,
        durable: bool,
        lock: &'a StoreLock,
        base: Option<MetaBase<'a>>,
    ) -> Self {
        let meta = (*committed).clone();
        Txn {
            committed,
            dir: dir.to_owned(),
            durable,
            lock,
            base,
            meta,
            meta_changed: false,
            places: Vec::new(),
            steps: Vec::new(),
            tmp_files: Vec::new(),
            written: Vec::new(),
            history: None,
            op: crate::format::history::Op::Other,
            committed_crc: None,
            patches: Vec::new(),
            folders: Vec::new(),
        }
    }

    /// The data files the committed metadata names (whatever this mutation does to it).
    pub fn committed_files(&self) -> impl Iterator<Item = &str> {
        self.committed.arrays.values().map(|a| a.data_file.as_str())
    }

    /// The record of array `name` as the commit has it (`ArrayNotFound` when it has none).
    pub fn record(&self, name: &str) -> NpkResult<crate::format::metadata::ArrayMetadata> {
        self.meta
            .arrays
            .get(name)
            .cloned()
            .ok_or_else(|| NpkError::ArrayNotFound(name.to_owned()))
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether files must be fsynced as they are committed.
    pub fn durable(&self) -> bool {
        self.durable
    }

    /// Marks the metadata as changed, so the commit writes it.
    pub fn meta_mut(&mut self) -> &mut MetadataFile {
        self.meta_changed = true;
        &mut self.meta
    }

    /// A new temporary path that will be renamed onto `final_name` (an existing file it
    /// replaces) at commit, under the journal.
    pub fn stage_file(&mut self, final_name: &str) -> PathBuf {
        let tmp = tmp_path(&self.dir, final_name);
        self.adopt(&tmp, final_name);
        tmp
    }

    /// A new temporary path that will be renamed onto `final_name`, a name no record refers
    /// to, just before the commit point.
    pub fn stage_new_file(&mut self, final_name: &str) -> PathBuf {
        let tmp = tmp_path(&self.dir, final_name);
        self.adopt_new(&tmp, final_name);
        tmp
    }

    /// Takes over an existing temporary file in the store directory, renamed onto
    /// `final_name` at commit (and removed if the mutation is abandoned before that).
    pub fn adopt(&mut self, tmp: &Path, final_name: &str) {
        self.tmp_files.push(tmp.to_owned());
        self.steps
            .push(Step::Rename(bare(tmp), final_name.to_owned()));
    }

    /// [`Txn::adopt`] for a file that goes onto a name no record refers to.
    pub fn adopt_new(&mut self, tmp: &Path, final_name: &str) {
        self.tmp_files.push(tmp.to_owned());
        self.places.push((bare(tmp), final_name.to_owned()));
    }

    /// Removes `final_name` at commit (if it exists).
    pub fn stage_remove(&mut self, final_name: &str) {
        // Once per file (a drop of the last rows removes a bitmap it may have staged away).
        if self
            .steps
            .iter()
            .any(|s| matches!(s, Step::Remove(n) if n == final_name))
        {
            return;
        }
        self.steps.push(Step::Remove(final_name.to_owned()));
    }

    /// Whether [`Txn::patch`] can write in place: no fsync ordering to keep (not durable) and
    /// the metadata file at hand to edit in place (a history record keeps the old bytes of
    /// the words that change). Otherwise a patch still works, as a staged copy of the file.
    pub fn can_patch(&self) -> bool {
        !self.durable && self.base.is_some()
    }

    /// Writes `writes` (`(offset, new bytes)`) into the existing file `name` (now `old_len`
    /// bytes) at commit. In place when it can be ([`Txn::can_patch`], nothing renamed in the
    /// same commit, the metadata the same length): one undo record holds the old bytes of
    /// these ranges and of the metadata, so a kill leaves both old or both new. Otherwise the
    /// file is copied with the writes applied and the copy renamed onto it.
    pub fn patch(&mut self, name: &str, old_len: u64, writes: Vec<(u64, Vec<u8>)>) {
        self.patches.push(Patch {
            file: name.to_owned(),
            old_len,
            writes,
        });
    }

    /// Removes the segment folder `folder` after the commit, unless a version kept by
    /// history still names its manifest `manifest` (which the commit removes).
    pub fn remove_folder_after(&mut self, folder: String, manifest: String) {
        self.folders.push((folder, manifest));
    }

    /// Notes a file written in place (rows appended past its committed end), synced before
    /// the commit point of a durable store.
    pub fn wrote_in_place(&mut self, file: Arc<File>, path: PathBuf) {
        self.written.push((file, path));
    }

    /// Commits: bumps the store generation (so every handle reloads), writes the metadata
    /// if changed, then applies every step atomically (see the module docs for the order).
    pub fn commit(mut self) -> NpkResult<(MetadataFile, MetaWrite)> {
        let nothing = !self.meta_changed
            && self.steps.is_empty()
            && self.places.is_empty()
            && self.patches.is_empty();
        if nothing {
            return Ok((std::mem::take(&mut self.meta), MetaWrite::Unchanged));
        }
        let encoded = self.meta_changed.then(|| self.meta.encode());
        let patched = self.open_patches(encoded.as_deref())?;
        if patched.is_none() {
            self.stage_patches()?;
        }
        self.check_targets()?;
        if let Some(plan) = self.history {
            let words = match (&patched, plan.record) {
                (Some(opened), true) => self.patched_words(opened),
                _ => Vec::new(),
            };
            let targets: Vec<&str> = self
                .places
                .iter()
                .map(|(_, to)| to.as_str())
                .chain(self.steps.iter().map(|s| match s {
                    Step::Rename(_, to) => to.as_str(),
                    Step::Remove(name) => name.as_str(),
                }))
                // Indexes are not versioned (a snapshot searches exactly).
                // Nor are attributes (a version shows the current ones).
                .filter(|n| {
                    *n != METADATA
                        && !crate::format::names::is_index_file(n)
                        && !crate::format::names::is_attrs_file(n)
                })
                .collect();
            crate::store::history::before_point(
                &crate::store::history::Commit {
                    dir: &self.dir,
                    lock: self.lock,
                    durable: self.durable,
                    plan,
                    op: self.op,
                    committed: &self.committed,
                    committed_crc: self.committed_crc,
                    new: &self.meta,
                    new_bytes: encoded.as_deref(),
                    rows: words,
                },
                &targets,
            )?;
        }
        self.lock.bump_generation();
        let mut written = MetaWrite::Unchanged;
        if let Some(files) = patched {
            written = self.write_patches(files, encoded)?;
        } else if let Some(bytes) = encoded {
            let in_place = self.steps.is_empty() && self.places.is_empty() && !self.durable;
            match self.base.filter(|_| in_place) {
                Some(base) if write_in_place(&self.dir, base, &bytes)? => {
                    written = MetaWrite::InPlace(bytes);
                }
                _ => {
                    let tmp = self.stage_file(METADATA);
                    let f = fs::write_new(&tmp, &bytes, false)?;
                    written = MetaWrite::Replaced(f, bytes);
                }
            }
        }
        if self.durable {
            for (f, p) in &self.written {
                fs::sync_data(f, p)?;
            }
            for t in &self.tmp_files {
                // Journaled temporaries were written by this process and are never links.
                if let Some(f) = fs::open_read_opt(t)? {
                    fs::sync(&f, t)?;
                }
            }
        }
        for (tmp, name) in &self.places {
            rename_now(&self.dir, tmp, name)?;
        }
        if self.durable && (!self.places.is_empty() || self.steps.len() > 1) {
            // New files' entries must be durable before anything names them: the metadata
            // (places) or the journal (whose steps rename the temporaries).
            fs::sync_dir(&self.dir)?;
        }
        match self.steps.len() {
            0 => {}
            1 => match &self.steps[0] {
                Step::Rename(tmp, name) => rename_now(&self.dir, tmp, name)?,
                remove => journal::apply(&self.dir, remove)?,
            },
            _ => {
                let path = self.dir.join(JOURNAL);
                let tmp = tmp_path(&self.dir, JOURNAL);
                self.tmp_files.push(tmp.clone());
                fs::write_new(&tmp, &journal::encode(&self.steps), self.durable)?;
                self.lock.set_flags(FLAG_JOURNAL);
                fs::rename(&tmp, &path).map_err(|e| NpkError::io(&path, e))?;
                // Committed: from here on the temporaries belong to the journal, and a
                // failure must leave them for recovery to rename, never delete them.
                self.tmp_files.clear();
                if self.durable {
                    fs::sync_dir(&self.dir)?;
                }
                for s in &self.steps {
                    journal::apply_journaled(&self.dir, s)?;
                }
                if self.durable {
                    fs::sync_dir(&self.dir)?;
                }
                fs::remove(&path)?;
                self.lock.clear_flags(FLAG_JOURNAL);
            }
        }
        if self.durable {
            fs::sync_dir(&self.dir)?;
        }
        self.tmp_files.clear();
        for (folder, manifest) in &self.folders {
            crate::store::segmented::remove_folder(&self.dir, folder, manifest);
        }
        let meta = std::mem::take(&mut self.meta);
        Ok((meta, written))
    }
}

impl Txn<'_> {
    /// Before anything changes: every entry the commit will replace or remove must be a file
    /// or a link (a directory there would stop the commit after its point, every later open
    /// replaying a journal that cannot finish).
    fn check_targets(&self) -> NpkResult<()> {
        let targets = self
            .places
            .iter()
            .map(|(_, to)| to)
            .chain(self.steps.iter().map(|s| match s {
                Step::Rename(_, to) => to,
                Step::Remove(name) => name,
            }));
        for name in targets {
            let path = self.dir.join(name);
            if let Some(m) = fs::entry(&path)? {
                if m.file_type().is_dir() {
                    return Err(fs::not_regular(&path, "a directory"));
                }
            }
        }
        Ok(())
    }
}

/// Renames a temporary onto its name outside any journal (nothing replays it, so nothing is
/// "already applied"): a missing temporary, removed by someone else, fails the commit
/// instead of committing a file that is not there.
fn rename_now(dir: &Path, tmp: &str, name: &str) -> NpkResult<()> {
    let (from, to) = (dir.join(tmp), dir.join(name));
    fs::rename(&from, &to).map_err(|e| NpkError::io(&from, e))
}

/// Writes `new` over the metadata file in place when that is one untearable write: same
/// length, and every changed byte within one page. Returns whether it did.
fn write_in_place(dir: &Path, base: MetaBase<'_>, new: &[u8]) -> NpkResult<bool> {
    const PAGE: usize = 4096;
    if new.len() != base.bytes.len() {
        return Ok(false);
    }
    let Some((first, last)) = changed_range(base.bytes, new) else {
        return Ok(true);
    };
    if first / PAGE != last / PAGE {
        return Ok(false);
    }
    // (A metadata file with other hard links never becomes a base: it is replaced.)
    fs::write_at(
        base.file,
        &dir.join(METADATA),
        &new[first..=last],
        first as u64,
    )?;
    Ok(true)
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        // An abandoned mutation leaves nothing behind.
        for t in &self.tmp_files {
            let _ = fs::remove(t);
        }
    }
}
