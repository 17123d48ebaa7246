//! Files written in place at commit ([`Txn::patch`]): under one undo record with the
//! metadata's changed bytes, or, when the commit cannot be in place, as staged copies.

use super::{MetaWrite, Txn};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::history::RowSet;
use crate::io::fs;
use crate::store::commit::undo::{begin_undo, finish_undo, UndoFile, UndoLog};
use crate::store::commit::METADATA;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes to write into an existing file at commit.
#[derive(Debug)]
pub(super) struct Patch {
    pub(super) file: String,
    /// The file's length when the patch was computed.
    pub(super) old_len: u64,
    /// `(offset, new bytes)`; ranges may reach past `old_len` (the file grows).
    pub(super) writes: Vec<(u64, Vec<u8>)>,
}

/// A patch's file, open for writing, with the old bytes of every range it writes (the part
/// below the file's old length).
#[derive(Debug)]
pub(super) struct Opened {
    file: File,
    old: Vec<Vec<u8>>,
}

/// Bytes of the unit history keeps of a patched file: a bitmap word (the header is two).
const WORD: u64 = 8;

impl Txn<'_> {
    /// The files of the patches, open for writing with their old bytes read, when they can
    /// be written in place: `None` when the commit cannot be in place, or a file has other
    /// hard links (a write would reach them) or is not the length its patch was computed for.
    pub(super) fn open_patches(&self, encoded: Option<&[u8]>) -> NpkResult<Option<Vec<Opened>>> {
        let same_len = match (encoded, self.base) {
            (None, _) => true,
            (Some(new), Some(base)) => new.len() == base.bytes.len(),
            (Some(_), None) => false,
        };
        if self.patches.is_empty()
            || !self.can_patch()
            || !self.steps.is_empty()
            || !self.places.is_empty()
            || !same_len
        {
            return Ok(None);
        }
        let mut files = Vec::with_capacity(self.patches.len());
        for p in &self.patches {
            let path = self.dir.join(&p.file);
            let f = fs::open_rw(&path)?;
            let m = f.metadata().map_err(|e| NpkError::io(&path, e))?;
            if std::os::unix::fs::MetadataExt::nlink(&m) > 1 || m.len() != p.old_len {
                return Ok(None);
            }
            let mut old = Vec::with_capacity(p.writes.len());
            for (off, new) in &p.writes {
                let end = off + new.len() as u64;
                let mut b = vec![0u8; end.min(p.old_len).saturating_sub(*off) as usize];
                f.read_exact_at(&mut b, *off).at(&path)?;
                old.push(b);
            }
            files.push(Opened { file: f, old });
        }
        Ok(Some(files))
    }

    /// What history keeps of the patches: per file, the old bytes of every word that changes
    /// (words wholly below the old length; writes are word-aligned), with checksums of the
    /// old and new words that tell recovery whether the commit happened.
    pub(super) fn patched_words(&self, opened: &[Opened]) -> Vec<RowSet> {
        let mut sets = Vec::new();
        for (p, o) in self.patches.iter().zip(opened) {
            let (mut rows, mut old_words) = (Vec::new(), Vec::new());
            let (mut oc, mut nc) = (crc32fast::Hasher::new(), crc32fast::Hasher::new());
            for ((off, new), old) in p.writes.iter().zip(&o.old) {
                for (k, (ow, nw)) in old
                    .chunks_exact(WORD as usize)
                    .zip(new.chunks_exact(WORD as usize))
                    .enumerate()
                {
                    if ow != nw {
                        rows.push(off / WORD + k as u64);
                        old_words.extend_from_slice(ow);
                        oc.update(ow);
                        nc.update(nw);
                    }
                }
            }
            if !rows.is_empty() {
                sets.push(RowSet {
                    file: p.file.clone(),
                    row_bytes: WORD,
                    rows,
                    old: old_words,
                    old_crc: oc.finalize(),
                    new_crc: nc.finalize(),
                });
            }
        }
        sets
    }

    /// Turns every patch into a staged copy of its file with the writes applied.
    pub(super) fn stage_patches(&mut self) -> NpkResult<()> {
        for p in std::mem::take(&mut self.patches) {
            let path = self.dir.join(&p.file);
            let mut bytes = fs::read_bounded(&path, p.old_len)?.ok_or_else(|| {
                NpkError::io(
                    &path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "file to update is gone"),
                )
            })?;
            for (off, new) in &p.writes {
                let (at, end) = (*off as usize, *off as usize + new.len());
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[at..end].copy_from_slice(new);
            }
            let tmp = self.stage_file(&p.file);
            fs::write_new(&tmp, &bytes, false)?;
        }
        Ok(())
    }

    /// Writes the patches and the metadata in place under one undo record (the old bytes of
    /// every range written, and the lengths of the files that grow).
    pub(super) fn write_patches(
        &mut self,
        files: Vec<Opened>,
        encoded: Option<Vec<u8>>,
    ) -> NpkResult<MetaWrite> {
        let mut log = UndoLog::default();
        for (p, o) in self.patches.iter().zip(&files) {
            let new_len = p
                .writes
                .iter()
                .map(|(off, new)| off + new.len() as u64)
                .fold(p.old_len, u64::max);
            log.files.push(UndoFile {
                file: p.file.clone(),
                len: (new_len > p.old_len).then_some(p.old_len),
                rows: p
                    .writes
                    .iter()
                    .zip(&o.old)
                    .filter(|(_, old)| !old.is_empty())
                    .map(|((off, _), old)| (*off, old.clone()))
                    .collect(),
            });
        }
        let base = self.base;
        let meta_range = match (&encoded, base) {
            (Some(new), Some(base)) => changed_range(base.bytes, new),
            _ => None,
        };
        if let (Some((first, last)), Some(base)) = (meta_range, base) {
            log.files.push(UndoFile {
                file: METADATA.to_owned(),
                len: None,
                rows: vec![(first as u64, base.bytes[first..=last].to_vec())],
            });
        }
        let slot = begin_undo(&self.dir, self.lock, &log, self.durable)?;
        for (p, o) in self.patches.iter().zip(&files) {
            let path = self.dir.join(&p.file);
            for (off, new) in &p.writes {
                fs::write_at(&o.file, &path, new, *off)?;
            }
        }
        if let (Some((first, last)), Some(base), Some(new)) = (meta_range, base, &encoded) {
            fs::write_at(
                base.file,
                &self.dir.join(METADATA),
                &new[first..=last],
                first as u64,
            )?;
        }
        finish_undo(&self.dir, self.lock, slot, self.durable)?;
        Ok(encoded.map_or(MetaWrite::Unchanged, MetaWrite::Patched))
    }
}

/// The first and last byte that differ between two buffers of the same length.
pub(super) fn changed_range(old: &[u8], new: &[u8]) -> Option<(usize, usize)> {
    let first = new.iter().zip(old).position(|(a, b)| a != b)?;
    let last = new.len()
        - 1
        - new
            .iter()
            .rev()
            .zip(old.iter().rev())
            .position(|(a, b)| a != b)
            .expect("a byte differs");
    Some((first, last))
}
