//! The store directory as a closed world: every file numpack opens inside a store goes
//! through here. Nothing follows a symbolic link (`O_NOFOLLOW`) or opens a FIFO, device or
//! directory where a file belongs (`O_NONBLOCK`, so a FIFO cannot block the open, then
//! `fstat`); new files are created exclusively (`O_EXCL`). Each write, rename, unlink and
//! sync is also reported to [`super::trace`] for the power-loss tests.

use super::trace::{self, Event};
use crate::error::{IoContext, NpkError, NpkResult};
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

const NO_FOLLOW: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK;

fn kind_name(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// The error for a store entry that is not a regular file.
pub fn not_regular(path: &Path, what: &str) -> NpkError {
    NpkError::corrupt(
        path,
        format!(
            "is {what}, not a regular file; numpack never follows links or opens special files \
             inside a store (remove it, or put the real file in its place)"
        ),
    )
}

fn opened(r: io::Result<File>, path: &Path) -> NpkResult<File> {
    match r {
        Ok(f) => {
            let m = f.metadata().at(path)?;
            if !m.file_type().is_file() {
                return Err(not_regular(path, kind_name(&m)));
            }
            Ok(f)
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            Err(not_regular(path, "a symbolic link"))
        }
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Err(not_regular(path, "a directory")),
        Err(e) => Err(NpkError::io(path, e)),
    }
}

/// How [`open_at`] opens a file of a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// An existing regular file, for reading.
    Read,
    /// An existing regular file, for reading and writing.
    ReadWrite,
    /// A new file (`O_EXCL`), for reading and writing.
    CreateNew,
}

/// Opens the folder at `path` itself (never through a link), to open its files relative to
/// it: a folder swapped for a link after this cannot redirect them.
pub fn open_dir(path: &Path) -> NpkResult<File> {
    opened_dir(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path),
        path,
    )
}

fn opened_dir(r: io::Result<File>, path: &Path) -> NpkResult<File> {
    match r {
        Ok(f) => Ok(f),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            Err(NpkError::corrupt(
                path,
                "is not a folder (a link or a file); numpack never follows links inside a store",
            ))
        }
        Err(e) => Err(NpkError::io(path, e)),
    }
}

/// Opens `name` (one path component) in the folder `dir` (opened by [`open_dir`] from
/// `dir_path`): no link followed, no FIFO opened, only regular files.
pub fn open_at(dir: &File, dir_path: &Path, name: &str, how: At) -> NpkResult<File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let path = dir_path.join(name);
    let c = std::ffi::CString::new(name).map_err(|_| NpkError::corrupt(&path, "has a NUL"))?;
    let flags = libc::O_CLOEXEC
        | NO_FOLLOW
        | match how {
            At::Read => libc::O_RDONLY,
            At::ReadWrite => libc::O_RDWR,
            At::CreateNew => libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
        };
    // SAFETY: a valid directory descriptor and a NUL-terminated name; the mode is used only
    // with O_CREAT.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, 0o666 as libc::c_uint) };
    let r = if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    };
    if how == At::CreateNew {
        let f = r.at(&path)?;
        trace::note(&path, Event::Create);
        return Ok(f);
    }
    opened(r, &path)
}

/// Whether `e` says the file does not exist.
pub fn is_not_found(e: &NpkError) -> bool {
    matches!(e, NpkError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// Opens an existing regular file for reading.
pub fn open_read(path: &Path) -> NpkResult<File> {
    opened(
        OpenOptions::new()
            .read(true)
            .custom_flags(NO_FOLLOW)
            .open(path),
        path,
    )
}

/// [`open_read`], `None` when the file does not exist.
pub fn open_read_opt(path: &Path) -> NpkResult<Option<File>> {
    match open_read(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens an existing regular file for reading and writing.
pub fn open_rw(path: &Path) -> NpkResult<File> {
    opened(
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(NO_FOLLOW)
            .open(path),
        path,
    )
}

/// [`open_rw`], `None` when the file does not exist.
pub fn open_rw_opt(path: &Path) -> NpkResult<Option<File>> {
    match open_rw(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A second name `to` for the file at `from` (a link itself is never followed). The new
/// entry is a directory change like a rename: durable after the directory's fsync.
pub fn hard_link(from: &Path, to: &Path) -> NpkResult<()> {
    std::fs::hard_link(from, to).at(to)?;
    let from_name = from.file_name().map(|n| n.to_string_lossy().into_owned());
    trace::note(to, |t| Event::Link(from_name.unwrap_or_default(), t));
    Ok(())
}

/// Opens the lock file, creating it if needed (never through a link, never a FIFO).
pub fn open_or_create(path: &Path) -> NpkResult<File> {
    opened(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(NO_FOLLOW)
            .open(path),
        path,
    )
}

/// Creates a new file for reading and writing; fails if anything exists at `path`.
pub fn create_new(path: &Path) -> NpkResult<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .at(path)?;
    trace::note(path, Event::Create);
    Ok(f)
}

/// `lstat`: what is at `path`, `None` when nothing is.
pub fn entry(path: &Path) -> NpkResult<Option<Metadata>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NpkError::io(path, e)),
    }
}

/// Whether two `stat`s name the same file (device and inode).
pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// The length of the regular file at `path` (`None` when absent); anything else there is
/// corruption.
pub fn file_len(path: &Path) -> NpkResult<Option<u64>> {
    match entry(path)? {
        None => Ok(None),
        Some(m) if m.file_type().is_file() => Ok(Some(m.len())),
        Some(m) => Err(not_regular(path, kind_name(&m))),
    }
}

/// Reads a whole regular file of at most `max` bytes (`None` when absent); a longer file is
/// refused before anything is allocated for it.
pub fn read_bounded(path: &Path, max: u64) -> NpkResult<Option<Vec<u8>>> {
    let Some(f) = open_read_opt(path)? else {
        return Ok(None);
    };
    let len = f.metadata().at(path)?.len();
    if len > max {
        return Err(NpkError::corrupt(
            path,
            format!("is {len} bytes, more than a valid file can be ({max})"),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut bytes).at(path)?;
    if bytes.len() as u64 > max {
        return Err(NpkError::corrupt(path, "grew while it was read"));
    }
    Ok(Some(bytes))
}

/// Reads into `buf` at `at` until it is full or the file ends; the bytes read.
pub fn read_upto(f: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Where the data of `file` that starts at `from` ends: the first hole at or after `from`
/// (the file's length where the file system keeps no holes). Bounds what a reader allocates
/// by the bytes a sparse file really holds.
pub fn data_end(file: &File, from: u64, len: u64) -> u64 {
    use std::os::fd::AsRawFd;
    let Ok(off) = i64::try_from(from) else {
        return len;
    };
    if from >= len {
        return len;
    }
    // SAFETY: lseek on a descriptor this `File` owns; readers use positioned reads, so moving
    // its offset changes nothing they do.
    let at = unsafe { libc::lseek(file.as_raw_fd(), off, libc::SEEK_HOLE) };
    if at >= 0 {
        return (at as u64).min(len);
    }
    match io::Error::last_os_error().raw_os_error() {
        // The file shrank under us (recovery trimmed it): nothing from `from` on.
        Some(libc::ENXIO) => from,
        // No hole seeking on this file system (EINVAL, EOPNOTSUPP on some FUSE and network
        // mounts): the length bounds the read.
        _ => len,
    }
}

/// Frees the blocks of `len` bytes at `offset` of `file` where the file system can (the
/// length stays; the range reads as zeros). Traced as a write of zeros.
pub fn punch_hole(file: &File, path: &Path, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(n)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    if n == 0 {
        return;
    }
    trace::note(path, |name| {
        Event::Write(name, offset, vec![0; len as usize])
    });
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: fallocate on a descriptor this `File` owns; no memory is passed. A file system
    // without hole punching answers EOPNOTSUPP, and the bytes just stay (readers skip them).
    let _ = unsafe { libc::fallocate(file.as_raw_fd(), mode, off, n) };
}

/// Writes `bytes` into a new file at `path` (optionally fsynced); the handle reads and writes.
pub fn write_new(path: &Path, bytes: &[u8], durable: bool) -> NpkResult<File> {
    let f = create_new(path)?;
    write_at(&f, path, bytes, 0)?;
    if durable {
        sync(&f, path)?;
    }
    Ok(f)
}

/// Writes `data` at `offset` of the file at `path` (see [`super::write_at`]).
pub fn write_at(file: &File, path: &Path, data: &[u8], offset: u64) -> NpkResult<()> {
    super::write_at(file, data, offset).at(path)?;
    trace::note(path, |n| Event::Write(n, offset, data.to_vec()));
    Ok(())
}

/// Sets the length of the file at `path`.
pub fn set_len(file: &File, path: &Path, len: u64) -> NpkResult<()> {
    file.set_len(len).at(path)?;
    trace::note(path, |n| Event::SetLen(n, len));
    Ok(())
}

/// Records bytes written into the file at `path` by other means (a shared mapping, a kernel
/// copy), for the trace; reads them back from `file` only while tracing.
pub fn note_written(file: &File, path: &Path, offset: u64, len: u64) {
    if trace::active() {
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        if file.read_exact_at(&mut buf, offset).is_ok() {
            trace::note(path, |n| Event::Write(n, offset, buf));
        }
    }
}

/// Records bytes written into the file at `path` through a mapping.
pub fn note_mapped_write(path: &Path, offset: u64, bytes: &[u8]) {
    trace::note(path, |n| Event::Write(n, offset, bytes.to_vec()));
}

/// Records that the file at `path` was made durable by other means (msync).
pub fn note_synced(path: &Path) {
    trace::note(path, Event::Sync);
}

/// fsync of a file.
pub fn sync(file: &File, path: &Path) -> NpkResult<()> {
    file.sync_all().at(path)?;
    trace::note(path, Event::Sync);
    Ok(())
}

/// fdatasync of a file (its bytes and size, not its timestamps).
pub fn sync_data(file: &File, path: &Path) -> NpkResult<()> {
    file.sync_data().at(path)?;
    trace::note(path, Event::Sync);
    Ok(())
}

/// fsync of a directory, so that renames, creations and removals in it are durable.
pub fn sync_dir(dir: &Path) -> NpkResult<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
    trace::note_dir(dir);
    Ok(())
}

/// `rename(from, to)` (never follows links: the entries themselves move).
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    trace::note(to, |t| {
        let f = from
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        Event::Rename(f, t)
    });
    Ok(())
}

/// Unlinks `path`; `Ok(false)` when nothing was there.
pub fn remove(path: &Path) -> NpkResult<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            trace::note(path, Event::Remove);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(NpkError::io(path, e)),
    }
}

/// Swaps two directory entries atomically (`renameat2(RENAME_EXCHANGE)`). `Ok(false)` when
/// the platform or file system cannot (the caller falls back to two renames).
pub fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let ca = CString::new(a.as_os_str().as_bytes())?;
        let cb = CString::new(b.as_os_str().as_bytes())?;
        // SAFETY: two valid NUL-terminated paths, relative to the working directory.
        let r = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP) => Ok(false),
            _ => Err(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        for p in [&link, &fifo, &sub] {
            for r in [open_read(p), open_rw(p), open_or_create(p)] {
                match r {
                    Err(NpkError::Corrupt { reason, .. }) => {
                        assert!(reason.contains("not a regular file"))
                    }
                    other => panic!("{p:?}: {other:?}"),
                }
            }
            assert!(file_len(p).is_err());
            assert!(create_new(p).is_err());
        }
        assert_eq!(read_bounded(&real, 1).unwrap().unwrap(), b"x");
        assert!(read_bounded(&real, 0).is_err());
        assert!(read_bounded(&dir.path().join("none"), 9).unwrap().is_none());
        assert_eq!(
            std::fs::read(&real).unwrap(),
            b"x",
            "the target is untouched"
        );
    }
}
