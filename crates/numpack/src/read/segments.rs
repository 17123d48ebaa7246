//! Opening a segmented array (the published 0.7 layout): its manifest, checked against the
//! record, and its segment files, each checked to hold the bytes the manifest gives it.

use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::metadata::ArrayMetadata;
use crate::format::names;
use crate::format::segments::{Manifest, MAX_MANIFEST_BYTES};
use crate::io::composite::{Composite, Piece};
use crate::io::fs;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One opened segment.
#[derive(Debug)]
pub struct OpenSegment {
    /// The segment file.
    pub file: File,
    /// Its path.
    pub path: PathBuf,
    /// Its committed bytes.
    pub bytes: u64,
}

/// An opened segmented array.
#[derive(Debug)]
pub struct Segments {
    /// The manifest.
    pub manifest: Manifest,
    /// The segments that hold bytes, in row order.
    pub open: Vec<OpenSegment>,
}

/// The stem of a manifest's array, or corruption.
fn stem_of<'a>(path: &Path, a: &'a ArrayMetadata) -> NpkResult<&'a str> {
    names::data_stem(&a.data_file)
        .ok_or_else(|| NpkError::corrupt(path, format!("array '{}' has no data file stem", a.name)))
}

/// Reads and checks the manifest at `path` of array `a` (`None` when it is missing).
pub fn read_manifest(path: &Path, a: &ArrayMetadata) -> NpkResult<Option<Manifest>> {
    let stem = stem_of(path, a)?;
    if a.shape.is_empty() {
        return Err(NpkError::corrupt(
            path,
            format!("array '{}' is 0-d but kept in segments", a.name),
        ));
    }
    let Some(bytes) = fs::read_bounded(path, MAX_MANIFEST_BYTES)? else {
        return Ok(None);
    };
    Manifest::decode(&bytes, stem, a.rows(), a.row_bytes())
        .map(Some)
        .map_err(|e| NpkError::corrupt(path, format!("segment manifest of array '{}' {e}", a.name)))
}

/// Opens the segments of array `a` whose manifest is at `path` (in the store directory `dir`).
pub fn open(dir: &Path, path: &Path, a: &ArrayMetadata) -> NpkResult<Segments> {
    let manifest = read_manifest(path, a)?.ok_or_else(|| {
        NpkError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "segment manifest missing"),
        )
    })?;
    let stem = stem_of(path, a)?;
    let mut open = Vec::with_capacity(manifest.segments.len());
    let folder_path = dir.join(names::segment_dir(stem));
    let folder = match manifest.segments.iter().any(|s| s.bytes > 0) {
        true => Some(open_folder(&folder_path)?),
        false => None,
    };
    // Empty segments hold nothing to read: no descriptor is kept for them.
    for s in manifest.segments.iter().filter(|s| s.bytes > 0) {
        let seg = dir.join(&s.file);
        let base = s.file.rsplit('/').next().expect("checked: folder/name");
        let folder = folder.as_ref().expect("opened above");
        let file = fs::open_at(folder, &folder_path, base, fs::At::Read)?;
        let len = file.metadata().at(&seg)?.len();
        if len < s.bytes {
            return Err(NpkError::corrupt(
                &seg,
                format!(
                    "segment of array '{}' is {len} bytes but its manifest says {}",
                    a.name, s.bytes
                ),
            ));
        }
        open.push(OpenSegment {
            file,
            path: seg,
            bytes: s.bytes,
        });
    }
    Ok(Segments { manifest, open })
}

/// Opens the segment folder itself; its files are opened relative to it (a link there, or
/// one swapped in later, cannot lead them anywhere).
pub fn open_folder(folder: &Path) -> NpkResult<File> {
    check_folder(folder)?;
    fs::open_dir(folder)
}

/// Fails unless `folder` is a real directory (a link could lead the segments anywhere).
pub fn check_folder(folder: &Path) -> NpkResult<()> {
    match fs::entry(folder)? {
        Some(m) if m.file_type().is_dir() => Ok(()),
        Some(m) if m.file_type().is_symlink() => Err(NpkError::corrupt(
            folder,
            "is a symbolic link, not a folder; numpack never follows links inside a store \
             (put the real folder in its place)",
        )),
        Some(_) => Err(NpkError::corrupt(folder, "is not a folder")),
        None => Err(NpkError::io(
            folder,
            std::io::Error::new(std::io::ErrorKind::NotFound, "segment folder missing"),
        )),
    }
}

impl Segments {
    /// Bytes on disk of every segment (sparse files hold fewer than their length).
    pub fn blocks_bytes(&self) -> u64 {
        self.open
            .iter()
            .filter_map(|s| s.file.metadata().ok())
            .map(|m| std::os::unix::fs::MetadataExt::blocks(&m).saturating_mul(512))
            .fold(0, u64::saturating_add)
    }

    /// Copies array bytes `at..at + dst.len()` from the segment files.
    pub fn read_at(&self, at: u64, dst: &mut [u8]) -> NpkResult<()> {
        use std::os::unix::fs::FileExt;
        let (mut pos, mut done) = (0u64, 0usize);
        for s in &self.open {
            if done == dst.len() {
                break;
            }
            let want = at + done as u64;
            if want < pos + s.bytes {
                let n = ((pos + s.bytes - want) as usize).min(dst.len() - done);
                s.file
                    .read_exact_at(&mut dst[done..done + n], want - pos)
                    .map_err(|e| NpkError::io(&s.path, e))?;
                done += n;
            }
            pos += s.bytes;
        }
        if done != dst.len() {
            return Err(NpkError::InvalidOperation(
                "read past the end of a segmented array".into(),
            ));
        }
        Ok(())
    }

    /// A view of array bytes `start..stop` (private and writable, or read-only).
    pub fn view(&self, start: u64, stop: u64, writable: bool, at: &Path) -> NpkResult<Composite> {
        let mut pieces = Vec::new();
        let mut pos = 0u64;
        for s in &self.open {
            let (a, b) = (pos.max(start), (pos + s.bytes).min(stop));
            if a < b {
                pieces.push(Piece {
                    file: &s.file,
                    path: &s.path,
                    offset: a - pos,
                    len: b - a,
                });
            }
            pos += s.bytes;
        }
        Composite::map(&pieces, writable, at)
    }
}
