//! Extracting a package into a temporary directory, checking everything, then renaming it
//! into place.

use super::entry::PackageInfo;
use super::entry::{read_info, Entry};
use super::members::{check_bitmap, check_members, check_store};
use super::shuffle::unshuffle;
use super::{chain_checksum, Progress};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::metadata::MetadataFile;
use crate::format::names;
use crate::store::commit::{sync_dir, METADATA};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const CHUNK: usize = 1 << 20;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Removes a half-built directory unless disarmed.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            // After an exchange it may hold what was at the target, a file as well.
            if fs::remove_dir_all(&p).is_err() {
                let _ = fs::remove_file(&p);
            }
        }
    }
}

fn exists_err(target: &Path) -> NpkError {
    NpkError::io(
        target,
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "target exists (pass overwrite=True to replace it)",
        ),
    )
}

/// A member's payload, raw or decompressed.
enum Payload<R: BufRead> {
    Raw(R),
    Zstd(zstd::stream::read::Decoder<'static, R>),
    Zlib(flate2::bufread::ZlibDecoder<R>),
}

impl<R: BufRead> Read for Payload<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Payload::Raw(r) => r.read(buf),
            Payload::Zstd(r) => r.read(buf),
            Payload::Zlib(r) => r.read(buf),
        }
    }
}

impl<R: BufRead> Payload<R> {
    /// Whether stored bytes are left over once the decoder reached its end.
    fn has_trailing(&mut self) -> std::io::Result<bool> {
        let inner = match self {
            Payload::Raw(r) => r,
            Payload::Zstd(r) => r.get_mut(),
            Payload::Zlib(r) => r.get_mut(),
        };
        Ok(!inner.fill_buf()?.is_empty())
    }
}

/// Where a member's decoded bytes go: counted into the checksums, kept (for `verify`) and
/// written to a file.
struct Outlet<'a> {
    crc: crc32fast::Hasher,
    v1: &'a mut crc32fast::Hasher,
    keep: Option<&'a mut Vec<u8>>,
    out: Option<(File, &'a Path)>,
}

impl Outlet<'_> {
    fn take(&mut self, bytes: &[u8]) -> NpkResult<()> {
        self.crc.update(bytes);
        self.v1.update(bytes);
        if let Some(keep) = self.keep.as_deref_mut() {
            keep.extend_from_slice(bytes);
        }
        if let Some((f, dst)) = self.out.as_mut() {
            f.write_all(bytes).at(dst)?;
        }
        Ok(())
    }
}

/// Buffers in flight between the decoder and the writer (bounds memory: 4 x block).
const IN_FLIGHT: usize = 4;

/// Writes one member to `dst`, checking its sizes; returns its bytes' CRC32 (and, for
/// version 1, chains the running checksum over the raw bytes). When writing, a second thread
/// checksums and writes while this one decodes, so the two costs overlap.
#[allow(clippy::too_many_arguments)]
fn extract(
    src: &Path,
    e: &Entry,
    dst: Option<&Path>,
    keep: Option<&mut Vec<u8>>,
    v1: &mut crc32fast::Hasher,
    durable: bool,
    progress: &mut dyn FnMut(u64),
) -> NpkResult<u32> {
    let bad = |why: String| NpkError::corrupt(src, format!("member {:?}: {why}", e.name));
    let mut f = File::open(src).at(src)?;
    f.seek(SeekFrom::Start(e.offset)).at(src)?;
    let mut payload = BufReader::with_capacity(CHUNK, f).take(e.stored_size());
    let mut head = [0u8; 4];
    let head_len = if e.compressed_size == 0 {
        0
    } else {
        let n = e.stored_size().min(4) as usize;
        super::entry::read_exact(&mut payload, &mut head[..n], src)?;
        n
    };
    let chained = std::io::Cursor::new(head[..head_len].to_vec()).chain(payload);
    let mut reader = if e.compressed_size == 0 {
        Payload::Raw(chained)
    } else if head == ZSTD_MAGIC {
        Payload::Zstd(zstd::stream::read::Decoder::with_buffer(chained).at(src)?)
    } else {
        // The published package writes zlib under the same compression byte.
        Payload::Zlib(flate2::bufread::ZlibDecoder::new(chained))
    };
    let out = match dst {
        Some(dst) => Some((crate::io::fs::create_new(dst)?, dst)),
        None => None,
    };
    let mut outlet = Outlet {
        crc: crc32fast::Hasher::new(),
        v1,
        keep,
        out,
    };
    let block = if e.shuffle > 1 {
        e.shuffle_block as usize
    } else {
        CHUNK
    };
    let block = block.max(1);
    let mut decoded = vec![0u8; if e.shuffle > 1 { block } else { 0 }];
    // Fills `buf` with the next `want` plain bytes of the member.
    let mut next = |buf: &mut [u8], left: u64| -> NpkResult<()> {
        let want = buf.len();
        let target: &mut [u8] = if e.shuffle > 1 {
            &mut decoded[..want]
        } else {
            buf
        };
        let mut n = 0;
        while n < want {
            match reader.read(&mut target[n..]) {
                Ok(0) => {
                    return Err(bad(format!(
                        "ends {} bytes before its declared size",
                        left - n as u64
                    )))
                }
                Ok(k) => n += k,
                Err(err) => return Err(bad(format!("cannot be decoded: {err}"))),
            }
        }
        if e.shuffle > 1 {
            if !want.is_multiple_of(usize::from(e.shuffle)) {
                return Err(bad("shuffled block is not a whole number of items".into()));
            }
            unshuffle(&decoded[..want], buf, usize::from(e.shuffle));
        }
        Ok(())
    };
    let mut left = e.original_size;
    if outlet.out.is_none() || left <= CHUNK as u64 {
        let mut buf = vec![0u8; block];
        while left > 0 {
            let want = (left.min(block as u64)) as usize;
            next(&mut buf[..want], left)?;
            outlet.take(&buf[..want])?;
            left -= want as u64;
            progress(want as u64);
        }
    } else {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        for _ in 0..IN_FLIGHT {
            let _ = empty_tx.send(vec![0u8; block]);
        }
        let written = std::thread::scope(|s| {
            let outlet = &mut outlet;
            let writer = s.spawn(move || -> NpkResult<()> {
                for buf in full_rx {
                    outlet.take(&buf)?;
                    // The decoder may have stopped: nothing to recycle then.
                    let _ = empty_tx.send(buf);
                }
                Ok(())
            });
            let decoded = (|| -> NpkResult<()> {
                while left > 0 {
                    let want = (left.min(block as u64)) as usize;
                    // Both fail only when the writer stopped; its error is reported below.
                    let Ok(mut buf) = empty_rx.recv() else {
                        return Ok(());
                    };
                    buf.resize(want, 0);
                    next(&mut buf, left)?;
                    if full_tx.send(buf).is_err() {
                        return Ok(());
                    }
                    left -= want as u64;
                    progress(want as u64);
                }
                Ok(())
            })();
            drop(full_tx);
            let wrote = writer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            decoded.and(wrote)
        });
        written?;
    }
    let mut extra = [0u8; 1];
    match reader.read(&mut extra) {
        Ok(0) => {}
        Ok(_) => return Err(bad("decompresses past its declared size".into())),
        Err(err) => return Err(bad(format!("cannot be decoded: {err}"))),
    }
    if reader.has_trailing().at(src)? {
        return Err(bad(
            "has stored bytes after the end of its compressed stream".into(),
        ));
    }
    if let Some((file, dst)) = &outlet.out {
        if durable {
            file.sync_all().at(dst)?;
        }
    }
    Ok(outlet.crc.finalize())
}

/// Unpacks `source` into the store directory `target`. Everything is written into a temporary
/// directory beside `target` and renamed into place only when every member decoded to its
/// declared size, the metadata decodes, and (with `verify`) the checksum matches. An existing
/// `target` is replaced only with `overwrite`, and only by a complete store.
pub fn unpack(
    source: &Path,
    target: &Path,
    overwrite: bool,
    verify: bool,
    progress: Progress<'_>,
) -> NpkResult<()> {
    let info = read_info(source)?;
    if target.exists() && !overwrite {
        return Err(exists_err(target));
    }
    let meta = read_metadata(source, &info)?;
    check_members(source, &info, &meta)?;
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let created = CreatedDirs::create(parent)?;
    // Like a store's mutations, an unpack is not fsynced unless the store is durable, or it
    // replaces an existing store (whose old contents must survive a power loss intact).
    let durable = target.exists() || std::env::var("NUMPACK_DURABLE").is_ok_and(|v| v == "1");
    let result = unpack_into(
        source, target, parent, &info, overwrite, verify, durable, progress,
    );
    if result.is_ok() {
        created.keep();
    }
    result
}

/// The missing ancestors of a directory, created for an unpack and removed again (when still
/// empty) if it fails, so that a failed unpack leaves nothing behind.
struct CreatedDirs(Vec<PathBuf>);

impl CreatedDirs {
    fn create(dir: &Path) -> NpkResult<Self> {
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        fs::create_dir_all(dir).at(dir)?;
        Ok(CreatedDirs(missing))
    }

    fn keep(mut self) {
        self.0.clear();
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = fs::remove_dir(d); // deepest first; fails (harmlessly) when not empty
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn unpack_into(
    source: &Path,
    target: &Path,
    parent: &Path,
    info: &super::entry::PackageInfo,
    overwrite: bool,
    verify: bool,
    durable: bool,
    progress: Progress<'_>,
) -> NpkResult<()> {
    remove_stale_unpacks(parent);
    let tmp = crate::store::commit::tmp_path(parent, "unpack");
    fs::create_dir(&tmp).at(&tmp)?;
    let mut guard = TempDir(Some(tmp.clone()));
    let total: u64 = info
        .entries
        .iter()
        .fold(0u64, |t, e| t.saturating_add(e.original_size));
    let checksum = if info.version == 1 {
        // The version-1 checksum runs over all members in order: one at a time.
        let mut done = 0u64;
        let mut v1 = crc32fast::Hasher::new();
        for e in &info.entries {
            extract(
                source,
                e,
                Some(&tmp.join(&e.name)),
                None,
                &mut v1,
                durable,
                &mut |n| {
                    done += n;
                    progress(done, total);
                },
            )?;
        }
        v1.finalize()
    } else {
        let crcs = extract_all(source, &tmp, &info.entries, durable, total, progress)?;
        crcs.into_iter().fold(0, chain_checksum)
    };
    if verify && checksum != info.checksum {
        return Err(NpkError::Checksum {
            path: source.to_owned(),
            reason: format!("stored 0x{:08x}, computed 0x{checksum:08x}", info.checksum),
        });
    }
    check_store(source, &tmp)?;
    if durable {
        sync_dir(&tmp)?;
    }
    if target.symlink_metadata().is_ok() {
        if !overwrite {
            return Err(exists_err(target));
        }
        if crate::io::fs::exchange(&tmp, target).at(target)? {
            // One atomic step: the new store is at `target`, the old one at `tmp`, which
            // the guard removes.
            if durable {
                sync_dir(parent)?;
            }
            return Ok(());
        }
        // No atomic exchange here (not Linux, or a file system without it): two renames,
        // with an instant where `target` is missing (docs/storage.md).
        let old = crate::store::commit::tmp_path(parent, "replaced");
        fs::rename(target, &old).at(target)?;
        if let Err(err) = fs::rename(&tmp, target) {
            let _ = fs::rename(&old, target);
            return Err(NpkError::io(target, err));
        }
        if old.is_dir() {
            let _ = fs::remove_dir_all(&old);
        } else {
            let _ = fs::remove_file(&old);
        }
    } else {
        fs::rename(&tmp, target).at(target)?;
    }
    guard.0 = None;
    if durable {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Removes what killed unpacks left beside their targets (temporary directories of processes
/// that are gone). Best effort.
fn remove_stale_unpacks(parent: &Path) {
    let Ok(list) = fs::read_dir(parent) else {
        return;
    };
    for e in list.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name.ends_with(".unpack") || name.ends_with(".replaced");
        if ours && crate::store::commit::recover::is_stale_temp(&name) {
            let p = e.path();
            if fs::remove_dir_all(&p).is_err() {
                let _ = fs::remove_file(&p);
            }
        }
    }
}

/// Extracts every member into `dir`, several at once (largest first: zstd decodes one frame
/// on one core, so members are the unit of parallelism). Returns each member's CRC32 in
/// entry order; the first failure in entry order is the error.
fn extract_all(
    source: &Path,
    dir: &Path,
    entries: &[Entry],
    durable: bool,
    total: u64,
    progress: Progress<'_>,
) -> NpkResult<Vec<u32>> {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(entries[i].original_size));
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, entries.len().max(1));
    let (next, done, failed) = (
        AtomicUsize::new(0),
        AtomicU64::new(0),
        AtomicBool::new(false),
    );
    let mut results: Vec<Option<NpkResult<u32>>> = entries.iter().map(|_| None).collect();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..workers {
            let tx = tx.clone();
            let (order, next, done, failed) = (&order, &next, &done, &failed);
            s.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= order.len() || failed.load(Ordering::Relaxed) {
                    break;
                }
                let e = &entries[order[k]];
                let mut unused = crc32fast::Hasher::new();
                let r = extract(
                    source,
                    e,
                    Some(&dir.join(&e.name)),
                    None,
                    &mut unused,
                    durable,
                    &mut |n| {
                        done.fetch_add(n, Ordering::Relaxed);
                    },
                );
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                let _ = tx.send((order[k], r));
            });
        }
        drop(tx);
        // This thread reports progress while the workers extract.
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(50)) {
                Ok((i, r)) => results[i] = Some(r),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            progress(done.load(Ordering::Relaxed), total);
        }
    });
    // The first failure in entry order (members after a failure may have been skipped).
    let mut crcs = Vec::with_capacity(entries.len());
    let mut skipped = None;
    for (e, r) in entries.iter().zip(results) {
        match r {
            Some(Ok(c)) => crcs.push(c),
            Some(Err(err)) => return Err(err),
            None => skipped = skipped.or(Some(&e.name)),
        }
    }
    match skipped {
        Some(name) => Err(NpkError::corrupt(
            source,
            format!("member {name:?} was not extracted"),
        )),
        None => Ok(crcs),
    }
}

/// Decodes the package's `metadata.npkm` (extracted to memory; its size was bounded when
/// the member table was read).
fn read_metadata(source: &Path, info: &PackageInfo) -> NpkResult<MetadataFile> {
    let e = info
        .entries
        .iter()
        .find(|e| e.name == METADATA)
        .ok_or_else(|| NpkError::corrupt(source, "the package holds no metadata.npkm"))?;
    let mut bytes = Vec::new();
    let mut unused = crc32fast::Hasher::new();
    extract(
        source,
        e,
        None,
        Some(&mut bytes),
        &mut unused,
        false,
        &mut |_| {},
    )?;
    MetadataFile::decode(&bytes)
        .map_err(|r| NpkError::corrupt(source, format!("metadata.npkm in the package: {r}")))
}

/// Decodes every member of `source` without writing anything and checks sizes, checksum and
/// that the metadata decodes.
pub fn verify(source: &Path) -> NpkResult<()> {
    let info = read_info(source)?;
    let meta = read_metadata(source, &info)?;
    check_members(source, &info, &meta)?;
    let mut checksum = 0u32;
    let mut v1 = crc32fast::Hasher::new();
    for e in &info.entries {
        // Bitmaps are kept (their size was bounded above) to be checked as unpack checks them.
        let mut bitmap = names::is_bitmap_file(&e.name).then(Vec::new);
        let crc = extract(
            source,
            e,
            None,
            bitmap.as_mut(),
            &mut v1,
            false,
            &mut |_| {},
        )?;
        checksum = chain_checksum(checksum, crc);
        if let Some(bytes) = bitmap {
            check_bitmap(source, &meta, &e.name, &bytes)?;
        }
    }
    if info.version == 1 {
        checksum = v1.finalize();
    }
    if checksum != info.checksum {
        return Err(NpkError::Checksum {
            path: source.to_owned(),
            reason: format!("stored 0x{:08x}, computed 0x{checksum:08x}", info.checksum),
        });
    }
    Ok(())
}
