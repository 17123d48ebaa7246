//! Staged writes: the rows of one array written in pieces by any number of tasks and
//! processes, invisible to every reader until one commit makes all of them appear at once
//! (or an abort drops them). Distributed engines (Dask, Ray) write a chunk per task.
//!
//! A stage is a token, `<owner pid>-<nonce>`; its files are temporaries of the owner (the
//! process that began it and commits it), so they outlive the tasks that write them and are
//! removed as stale once the owner is gone:
//!
//! ```text
//! .numpack.tmp.<pid>.stage-<nonce>.desc   "NPKS" | u32 format 1 | u8 mode | u8 dtype code
//!                                         | u16 0 | u32 ndim | ndim x u64 shape | str name
//! .numpack.tmp.<pid>.stage-<nonce>.data   the rows, C order, sized for the whole shape
//! .numpack.tmp.<pid>.stage-<nonce>.w<start>-<stop>   empty: rows start..stop are written
//! ```
//! The owner holds a shared `flock` on the descriptor until it commits or aborts: a process
//! that cannot see the owner's pid (another PID namespace, a container on the same kernel)
//! still sees the stage is live and leaves its files alone.
//!
//! A task writes its rows in place in the data file and then creates its marker; the commit
//! checks that the markers cover every row exactly, then adopts the data file as the array's
//! (create, overwrite) or appends its rows (append), through the ordinary commits.

use super::commit::{is_tmp_name, TMP_PREFIX};
use super::writer::ArrayWriter;
use super::Store;
use crate::dtype::DataType;
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::cursor::Cursor;
use crate::format::metadata::check_shape;
use crate::format::names;
use crate::io::fs;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

const MAGIC: &[u8; 4] = b"NPKS";
const FORMAT: u32 = 1;
/// Largest descriptor read.
const MAX_DESC: u64 = 4096;
/// Most pieces (markers) a stage may have.
const MAX_PIECES: usize = 1 << 20;

/// Why a sealed commit failed: the stage is incomplete (it can be completed and committed
/// again), or the commit itself failed (the stage is dropped).
enum CommitError {
    Incomplete(NpkError),
    Failed(NpkError),
}
use CommitError::{Failed, Incomplete};

/// Row ranges `(start, stop)` written to a stage, sorted.
type Ranges = Vec<(u64, u64)>;

/// What a commit of a stage does with its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageMode {
    /// A new array (the commit fails if one of that name exists).
    Create = 0,
    /// The array, replaced whole (or created).
    Overwrite = 1,
    /// Rows added at the end of the existing array.
    Append = 2,
}

impl StageMode {
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => StageMode::Create,
            1 => StageMode::Overwrite,
            2 => StageMode::Append,
            _ => return None,
        })
    }
}

/// A stage as its descriptor says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Desc {
    mode: StageMode,
    dtype: DataType,
    shape: Vec<u64>,
    name: String,
}

impl Desc {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.name.len());
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&FORMAT.to_le_bytes());
        b.push(self.mode as u8);
        b.push(self.dtype.code());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&(self.shape.len() as u32).to_le_bytes());
        for d in &self.shape {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&(self.name.len() as u32).to_le_bytes());
        b.extend_from_slice(self.name.as_bytes());
        b
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Cursor::new(bytes);
        if r.take(4)? != MAGIC {
            return Err("bad magic (expected 'NPKS')".into());
        }
        if r.u32()? != FORMAT {
            return Err("unsupported stage format".into());
        }
        let mode = StageMode::from_code(r.u8()?).ok_or("unknown mode")?;
        let dtype = DataType::from_code(r.u8()?).map_err(|e| e.to_string())?;
        r.take(2)?;
        let ndim = r.u32()? as usize;
        if ndim == 0 || ndim > 64 || ndim * 8 > r.left() {
            return Err(format!("{ndim} dimensions"));
        }
        let shape = (0..ndim).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
        check_shape(&shape, dtype)?;
        let name = r.string()?;
        names::validate(&name).map_err(|e| e.to_string())?;
        r.finish()?;
        Ok(Desc {
            mode,
            dtype,
            shape,
            name,
        })
    }

    fn row_bytes(&self) -> u64 {
        self.shape[1..].iter().product::<u64>() * self.dtype.size_bytes() as u64
    }
}

/// The file-name prefix of a stage's files, from its token (`<pid>-<nonce>`, digits and
/// lowercase hex only, so a token never names a path).
fn prefix(token: &str) -> NpkResult<String> {
    let bad = || {
        NpkError::InvalidOperation(format!(
            "{token:?} is not a stage token of this store (stage_begin returns one)"
        ))
    };
    let (pid, nonce) = token.split_once('-').ok_or_else(bad)?;
    let ok = !pid.is_empty()
        && pid.len() <= 10
        && pid.bytes().all(|b| b.is_ascii_digit())
        && nonce.len() == 16
        && nonce
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return Err(bad());
    }
    Ok(format!("{TMP_PREFIX}{pid}.stage-{nonce}."))
}

/// Descriptors of the stages this process owns, each open with a shared `flock` held: the
/// stage is live while its owner is.
fn owned() -> std::sync::MutexGuard<'static, HashMap<PathBuf, std::fs::File>> {
    static OWNED: OnceLock<Mutex<HashMap<PathBuf, std::fs::File>>> = OnceLock::new();
    OWNED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Whether `name` (a file in `dir`) belongs to a stage whose owner holds it, whatever the
/// owner's pid says: its descriptor (or sealed descriptor) is `flock`ed.
pub(crate) fn stage_is_held(dir: &Path, name: &str) -> bool {
    let Some(at) = name.find(".stage-") else {
        return false;
    };
    let rest = &name[at + ".stage-".len()..];
    let Some(dot) = rest.find('.') else {
        return false;
    };
    let prefix = &name[..at + ".stage-".len() + dot + 1];
    // Held unless a lock could be taken: a lock that cannot even be tried (EBADF or ENOLCK
    // on some network mounts) keeps the files.
    ["desc.new", "desc", "sealed"].iter().any(|part| {
        match fs::open_read_opt(&dir.join(format!("{prefix}{part}"))) {
            Ok(Some(f)) => f.try_lock().is_err(),
            Ok(None) => false,
            Err(_) => true,
        }
    })
}

fn gone() -> NpkError {
    NpkError::InvalidOperation(
        "no such stage: it was committed or aborted, or its owner process is gone".to_owned(),
    )
}

/// `(start, stop)` of a marker name after the prefix.
fn parse_marker(rest: &str) -> Option<(u64, u64)> {
    let (a, b) = rest.strip_prefix('w')?.split_once('-')?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) && s.len() <= 20;
    if !ok(a) || !ok(b) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

impl Store {
    fn stage_path(&self, prefix: &str, part: &str) -> PathBuf {
        self.dir().join(format!("{prefix}{part}"))
    }

    fn stage_desc(&self, prefix: &str) -> NpkResult<Desc> {
        let path = self.stage_path(prefix, "desc");
        let bytes = fs::read_bounded(&path, MAX_DESC)?.ok_or_else(gone)?;
        Desc::decode(&bytes).map_err(|r| NpkError::corrupt(&path, r))
    }

    /// Renames the descriptor away (no writer starts after this) and waits for the writers
    /// in flight; the data file's lock is held until the returned handle is dropped.
    /// `Ok(None)`: there is no descriptor (committed or aborted already).
    fn seal(&self, prefix: &str) -> NpkResult<Option<Option<std::fs::File>>> {
        let desc = self.stage_path(prefix, "desc");
        let sealed = self.stage_path(prefix, "sealed");
        match fs::rename(&desc, &sealed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NpkError::io(&desc, e)),
        }
        let data = self.stage_path(prefix, "data");
        let held = fs::open_rw_opt(&data)?;
        if let Some(f) = &held {
            f.lock().at(&data)?;
        }
        Ok(Some(held))
    }

    /// Undoes [`Store::seal`] after a commit that found the stage incomplete.
    fn unseal(&self, prefix: &str) -> NpkResult<()> {
        let (sealed, desc) = (
            self.stage_path(prefix, "sealed"),
            self.stage_path(prefix, "desc"),
        );
        fs::rename(&sealed, &desc).map_err(|e| NpkError::io(&sealed, e))
    }

    /// Begins a stage of `shape` rows of array `name` (for `Append`, the shape of the new
    /// rows); returns its token. This process owns it: commit or abort it here.
    pub fn stage_begin(
        &self,
        name: &str,
        mode: StageMode,
        dtype: DataType,
        shape: &[u64],
    ) -> NpkResult<String> {
        names::validate(name)?;
        if shape.is_empty() {
            return Err(NpkError::InvalidShape(
                "a staged array needs at least one dimension (rows)".into(),
            ));
        }
        check_shape(shape, dtype)
            .map_err(|e| NpkError::InvalidShape(format!("array '{name}': {e}")))?;
        match (mode, self.array_metadata(name)) {
            (StageMode::Create, Ok(_)) => {
                return Err(NpkError::InvalidOperation(format!(
                    "array '{name}' exists; use mode 'overwrite' or 'append'"
                )))
            }
            (StageMode::Append, Ok(a)) => {
                super::check_dtype(&a, dtype)?;
                super::check_rows_shape(&a, shape)?;
            }
            (StageMode::Append, Err(e)) => return Err(e),
            _ => {}
        }
        let nonce = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(super::now_micros() as u128);
            h.finish()
        };
        let token = format!("{}-{nonce:016x}", std::process::id());
        let prefix = prefix(&token)?;
        let desc = Desc {
            mode,
            dtype,
            shape: shape.to_vec(),
            name: name.to_owned(),
        };
        // The descriptor is written and locked first, so no file of the stage is ever
        // unlocked (a cleaner that cannot see this pid keeps locked stages); it is renamed
        // into place last: a stage without a `desc` is not there yet.
        let tmp = self.stage_path(&prefix, "desc.new");
        let f = fs::write_new(&tmp, &desc.encode(), false)?;
        f.lock_shared().at(&tmp)?;
        // Left empty: tasks' writes extend it (writing into a file cut to its full length
        // up front was 5x slower on ext4, measured with 128 MiB pieces).
        let data = self.stage_path(&prefix, "data");
        fs::create_new(&data)?;
        let path = self.stage_path(&prefix, "desc");
        fs::rename(&tmp, &path).map_err(|e| NpkError::io(&tmp, e))?;
        owned().insert(path, f);
        Ok(token)
    }

    /// Writes rows `start..` of a stage (`shape` = shape of these rows, `data` their
    /// little-endian bytes), from any process; the same rows may be written again (a task
    /// retried), and must be written once by the time of the commit.
    pub fn stage_write(
        &self,
        token: &str,
        start: u64,
        dtype: DataType,
        shape: &[u64],
        data: &[u8],
    ) -> NpkResult<()> {
        let prefix = prefix(token)?;
        let desc = self.stage_desc(&prefix)?;
        if dtype != desc.dtype {
            return Err(NpkError::InvalidDtype(format!(
                "stage of array '{}' holds {}, got {dtype}",
                desc.name, desc.dtype
            )));
        }
        if shape.len() != desc.shape.len() || shape[1..] != desc.shape[1..] {
            return Err(NpkError::InvalidShape(format!(
                "rows of shape {shape:?} do not fit a stage of shape {:?}",
                desc.shape
            )));
        }
        let stop = start
            .checked_add(shape[0])
            .filter(|&s| s <= desc.shape[0])
            .ok_or_else(|| {
                NpkError::InvalidShape(format!(
                    "rows {start}..{start}+{} are past the {} rows of the stage",
                    shape[0], desc.shape[0]
                ))
            })?;
        let row = desc.row_bytes();
        if data.len() as u64 != shape[0] * row {
            return Err(NpkError::InvalidShape(format!(
                "{} bytes for {} rows of {row} bytes",
                data.len(),
                shape[0]
            )));
        }
        let path = self.stage_path(&prefix, "data");
        let f = fs::open_rw(&path)?;
        // Shared with other writers; a commit or an abort takes it exclusively after sealing
        // the descriptor, so a late writer (a task retried after the commit) finds the stage
        // sealed instead of writing into what became the array's file.
        f.lock_shared().at(&path)?;
        if fs::entry(&self.stage_path(&prefix, "desc"))?.is_none() {
            return Err(gone());
        }
        fs::write_at(&f, &path, data, start * row)?;
        if self.durable() {
            fs::sync_data(&f, &path)?;
        }
        let marker = self.stage_path(&prefix, &format!("w{start}-{stop}"));
        match fs::create_new(&marker) {
            Ok(_) => Ok(()),
            Err(_) if fs::entry(&marker)?.is_some_and(|m| m.is_file()) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The stage's files: (marker ranges, every file of the stage).
    fn stage_files(&self, prefix: &str) -> NpkResult<(Ranges, Vec<PathBuf>)> {
        let (mut ranges, mut files) = (Vec::new(), Vec::new());
        for entry in std::fs::read_dir(self.dir()).at(self.dir())? {
            let entry = entry.at(self.dir())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            if !is_tmp_name(&name) {
                continue;
            }
            if let Some(r) = parse_marker(rest) {
                ranges.push(r);
                if ranges.len() > MAX_PIECES {
                    return Err(NpkError::InvalidOperation(format!(
                        "a stage has more than {MAX_PIECES} pieces"
                    )));
                }
            }
            files.push(entry.path());
        }
        ranges.sort_unstable();
        ranges.dedup();
        Ok((ranges, files))
    }

    /// Makes every row of the stage appear at once (all or nothing, as a save or an
    /// append), then removes the stage. Fails, changing nothing, when some rows were never
    /// written or were written twice over different ranges.
    pub fn stage_commit(&self, token: &str) -> NpkResult<()> {
        let prefix = prefix(token)?;
        let desc = self.stage_desc(&prefix)?;
        let held = self.seal(&prefix)?.ok_or_else(gone)?;
        let out = self.commit_sealed(&prefix, &desc);
        drop(held);
        if matches!(out, Err(Incomplete(_))) {
            self.unseal(&prefix)?;
        } else {
            owned().remove(&self.stage_path(&prefix, "desc"));
        }
        out.map_err(|e| match e {
            Incomplete(e) | Failed(e) => e,
        })
    }

    /// The commit of a sealed stage.
    fn commit_sealed(&self, prefix: &str, desc: &Desc) -> Result<(), CommitError> {
        let (ranges, files) = self.stage_files(prefix).map_err(Failed)?;
        let mut next = 0u64;
        for &(a, b) in &ranges {
            if a != next || b < a {
                let what = if a > next {
                    format!("rows {next}..{a} were never written (did a task fail?)")
                } else {
                    format!("rows {a}..{b} overlap rows written before them")
                };
                return Err(Incomplete(NpkError::InvalidOperation(format!(
                    "stage of array '{}' is not complete: {what}; abort it and write again",
                    desc.name
                ))));
            }
            next = b;
        }
        if next != desc.shape[0] {
            return Err(Incomplete(NpkError::InvalidOperation(format!(
                "stage of array '{}' is not complete: rows {next}..{} were never written (did \
                 a task fail?); abort it and write again",
                desc.name, desc.shape[0]
            ))));
        }
        let data = self.stage_path(prefix, "data");
        let len = desc.shape[0] * desc.row_bytes();
        // Every row was written, so the file reaches exactly the stage's end.
        if fs::file_len(&data).map_err(Failed)? != Some(len) {
            return Err(Incomplete(NpkError::corrupt(
                &data,
                "is not the size of its stage (a piece went missing): abort the stage and \
                 write again",
            )));
        }
        let out = match desc.mode {
            StageMode::Append => {
                let f = fs::open_read(&data).map_err(Failed)?;
                if len == 0 {
                    // Rows without bytes (or none) still count.
                    self.append(&desc.name, desc.dtype, &desc.shape, &[])
                } else {
                    // SAFETY: a read-only mapping of the stage's own temporary, which nothing
                    // truncates (an abort only unlinks it); every row is in, and a task
                    // retried late writes the same bytes again.
                    let m = unsafe { memmap2::Mmap::map(&f) }
                        .at(&data)
                        .map_err(Failed)?;
                    self.append(&desc.name, desc.dtype, &desc.shape, &m)
                }
            }
            StageMode::Create | StageMode::Overwrite => {
                let w = ArrayWriter::adopt(&desc.name, desc.dtype, data.clone()).map_err(Failed)?;
                let new = desc.mode == StageMode::Create;
                self.commit_new_writers(vec![(w, desc.shape.clone())], false, new)
            }
        };
        // Done or failed, the stage is over (a failed commit removed an adopted file).
        let adopted = out.is_ok() && desc.mode != StageMode::Append;
        remove_all(&files, if adopted { &data } else { Path::new("") });
        out.map_err(Failed)
    }

    /// Drops a stage and everything written to it. Idempotent.
    pub fn stage_abort(&self, token: &str) -> NpkResult<()> {
        let prefix = prefix(token)?;
        // Sealed first, so no writer is in flight or starts once the files go.
        let held = self.seal(&prefix)?;
        let (_, files) = self.stage_files(&prefix)?;
        drop(held);
        remove_all(&files, Path::new(""));
        owned().remove(&self.stage_path(&prefix, "desc"));
        Ok(())
    }
}

/// Removes a stage's files but `keep` (the data file a commit adopted), descriptor last.
fn remove_all(files: &[PathBuf], keep: &Path) {
    let mut desc = None;
    for f in files.iter().filter(|f| f.as_path() != keep) {
        if f.to_string_lossy().ends_with(".desc") {
            desc = Some(f);
            continue;
        }
        let _ = fs::remove(f);
    }
    if let Some(d) = desc {
        let _ = fs::remove(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_markers_never_name_paths() {
        assert!(prefix("12-00000000000000ab").is_ok());
        for bad in [
            "",
            "12",
            "-00000000000000ab",
            "1/2-00000000000000ab",
            "12-../x",
            "12-00000000000000AB",
        ] {
            assert!(prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_marker("w0-10"), Some((0, 10)));
        for bad in ["w-1", "w1-", "x1-2", "w1-2-3", "w+1-2"] {
            assert_eq!(parse_marker(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn descriptors_round_trip_and_damage_is_an_error() {
        let d = Desc {
            mode: StageMode::Append,
            dtype: DataType::Float32,
            shape: vec![10, 4],
            name: "emb".into(),
        };
        let b = d.encode();
        assert_eq!(Desc::decode(&b).unwrap(), d);
        for n in 0..b.len() {
            assert!(Desc::decode(&b[..n]).is_err());
        }
        let mut bad = b.clone();
        bad[8] = 9;
        assert!(Desc::decode(&bad).is_err());
    }
}
