//! The redo journal: the renames and removals of a multi-file commit, written to
//! `.numpack.journal` before the first of them is applied, and replayed by recovery.
//!
//! ```text
//! "NPKJ" | u32 kind = 1 | u32 step count
//! per step: u8 1 (rename) | str temporary name | str final name
//!        or u8 2 (remove) | str name
//! (str = u32 length + UTF-8 bytes)
//! ```
//! A decoded journal can only touch the store's own files: a rename moves a numpack
//! temporary onto `metadata.npkm`, a data file or a bitmap; a removal names a data file or a
//! bitmap. Anything else is corruption, so a crafted journal cannot rename or delete other
//! entries of the directory.

use super::{is_tmp_name, METADATA};
use crate::error::{NpkError, NpkResult};
use crate::format::cursor::Cursor;
use crate::format::names;
use crate::io::fs;
use std::path::Path;

/// Magic of every journal file (redo and undo).
pub const MAGIC: &[u8; 4] = b"NPKJ";
/// Kind of a redo journal.
pub const KIND_REDO: u32 = 1;

/// One step of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Rename a temporary file (bare name) onto its final name.
    Rename(String, String),
    /// Remove a file if it exists.
    Remove(String),
}

fn is_store_file(name: &str) -> bool {
    name == METADATA
        || names::is_safe_data_file(name)
        || names::is_bitmap_file(name)
        || names::is_index_file(name)
        || names::is_attrs_file(name)
}

impl Step {
    /// Whether the step touches only what a commit may touch.
    fn check(&self) -> Result<(), String> {
        match self {
            Step::Rename(from, to) if is_tmp_name(from) && is_store_file(to) => Ok(()),
            Step::Remove(name) if is_store_file(name) && name != METADATA => Ok(()),
            other => Err(format!("step {other:?} touches a file a commit never does")),
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Encodes a redo journal.
pub fn encode(steps: &[Step]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&KIND_REDO.to_le_bytes());
    out.extend_from_slice(&(steps.len() as u32).to_le_bytes());
    for s in steps {
        match s {
            Step::Rename(a, b) => {
                out.push(1);
                put_str(&mut out, a);
                put_str(&mut out, b);
            }
            Step::Remove(a) => {
                out.push(2);
                put_str(&mut out, a);
            }
        }
    }
    out
}

/// The kind of a journal file (`KIND_REDO` or an undo kind), after checking its magic.
pub fn kind(bytes: &[u8]) -> Result<u32, String> {
    let mut r = Cursor::new(bytes);
    if r.take(4)? != MAGIC {
        return Err("bad magic".into());
    }
    r.u32()
}

/// Decodes a redo journal; every step is checked (see the module docs).
pub fn decode(bytes: &[u8]) -> Result<Vec<Step>, String> {
    let mut r = Cursor::new(bytes);
    if r.take(4)? != MAGIC {
        return Err("bad magic".into());
    }
    let kind = r.u32()?;
    if kind != KIND_REDO {
        return Err(format!("journal kind {kind} is not a redo journal"));
    }
    let count = r.u32()? as usize;
    // The smallest step (a removal of a one-byte name) takes 6 bytes.
    if count > r.left() / 6 {
        return Err(format!("{count} steps do not fit in the journal"));
    }
    let mut steps = Vec::with_capacity(count);
    for i in 0..count {
        let step = match r.u8()? {
            1 => Step::Rename(r.file_name()?, r.file_name()?),
            2 => Step::Remove(r.file_name()?),
            t => return Err(format!("step {i}: unknown step type {t}")),
        };
        step.check().map_err(|e| format!("step {i}: {e}"))?;
        steps.push(step);
    }
    r.finish()?;
    Ok(steps)
}

/// Applies one step directly (idempotent: an already applied step does nothing).
pub(crate) fn apply(dir: &Path, step: &Step) -> NpkResult<()> {
    match step {
        Step::Rename(from, to) => {
            let (from, to) = (dir.join(from), dir.join(to));
            match fs::rename(&from, &to) {
                // Already applied by an earlier, interrupted replay.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r.map_err(|e| NpkError::io(to, e)),
            }
        }
        Step::Remove(name) => fs::remove(&dir.join(name)).map(|_| ()),
    }
}

/// Files at least this large are unlinked by the reaper thread.
const REAP_BYTES: u64 = 1 << 20;

/// Applies a journaled step. A file about to be replaced or removed is first renamed to a
/// temporary name and unlinked later by the reaper thread: unlinking a large file frees its
/// pages, which costs milliseconds, and renaming a new file over an existing one makes ext4
/// flush the new file synchronously (`auto_da_alloc`). The journal makes the steps one; a
/// rename step is not yet done exactly when its temporary still exists.
pub(crate) fn apply_journaled(dir: &Path, step: &Step) -> NpkResult<()> {
    let victim = match step {
        Step::Rename(from, to) if to != METADATA && fs::entry(&dir.join(from))?.is_some() => {
            Some(to)
        }
        Step::Remove(name) => Some(name),
        Step::Rename(..) => None,
    };
    if let Some(name) = victim {
        let target = dir.join(name);
        match fs::entry(&target)? {
            // Small files (and anything not a regular file) are unlinked at once.
            Some(m) if m.file_type().is_file() && m.len() >= REAP_BYTES => {
                let trash = super::tmp_path(dir, "replaced");
                fs::rename(&target, &trash).map_err(|e| NpkError::io(&target, e))?;
                super::super::reaper::unlink_later(trash);
            }
            Some(m) if m.file_type().is_dir() => {
                return Err(fs::not_regular(&target, "a directory"));
            }
            Some(_) => {
                fs::remove(&target)?;
            }
            None => {}
        }
    }
    apply(dir, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let steps = vec![
            Step::Rename(".numpack.tmp.1.0.data_a.npkd".into(), "data_a.npkd".into()),
            Step::Remove("deleted_a.npkb".into()),
            Step::Rename(".numpack.tmp.1.1.metadata.npkm".into(), METADATA.into()),
        ];
        let bytes = encode(&steps);
        assert_eq!(decode(&bytes).unwrap(), steps);
        assert_eq!(kind(&bytes), Ok(KIND_REDO));
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        for bad in [
            Step::Remove(".numpack.lock".into()),
            Step::Remove(METADATA.into()),
            Step::Rename("data_a.npkd".into(), METADATA.into()),
            Step::Rename(".numpack.tmp.x".into(), ".numpack.lock".into()),
            Step::Rename(".numpack.tmp.x".into(), "../data_a.npkd".into()),
        ] {
            assert!(
                decode(&encode(std::slice::from_ref(&bad))).is_err(),
                "{bad:?}"
            );
        }
    }
}
