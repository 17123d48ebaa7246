//! Extracting a package into a temporary directory, checking everything, then renaming it
//! into place.

use super::entry::{read_info, Entry};
use super::shuffle::unshuffle;
use super::{chain_checksum, Progress};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::metadata::MetadataFile;
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
            let _ = fs::remove_dir_all(p);
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

/// Writes one member to `dst`, checking its sizes; returns its bytes' CRC32 (and, for
/// version 1, chains the running checksum over the raw bytes).
fn extract(
    src: &Path,
    e: &Entry,
    dst: Option<&Path>,
    mut keep: Option<&mut Vec<u8>>,
    v1: &mut crc32fast::Hasher,
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
    let mut out = match dst {
        Some(dst) => Some(std::io::BufWriter::with_capacity(
            CHUNK,
            File::create_new(dst).at(dst)?,
        )),
        None => None,
    };
    let mut crc = crc32fast::Hasher::new();
    let block = if e.shuffle > 1 {
        e.shuffle_block as usize
    } else {
        CHUNK
    };
    let mut buf = vec![0u8; block.max(1)];
    let mut plain = vec![0u8; if e.shuffle > 1 { block } else { 0 }];
    let mut left = e.original_size;
    while left > 0 {
        let want = (left.min(block as u64)) as usize;
        let mut n = 0;
        while n < want {
            match reader.read(&mut buf[n..want]) {
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
        let bytes: &[u8] = if e.shuffle > 1 {
            if !want.is_multiple_of(usize::from(e.shuffle)) {
                return Err(bad("shuffled block is not a whole number of items".into()));
            }
            unshuffle(&buf[..want], &mut plain[..want], usize::from(e.shuffle));
            &plain[..want]
        } else {
            &buf[..want]
        };
        crc.update(bytes);
        v1.update(bytes);
        if let Some(keep) = keep.as_deref_mut() {
            keep.extend_from_slice(bytes);
        }
        if let (Some(out), Some(dst)) = (out.as_mut(), dst) {
            out.write_all(bytes).at(dst)?;
        }
        left -= want as u64;
        progress(want as u64);
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
    if let (Some(out), Some(dst)) = (out, dst) {
        let file = out
            .into_inner()
            .map_err(|err| NpkError::io(dst, err.into_error()))?;
        file.sync_all().at(dst)?;
    }
    Ok(crc.finalize())
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
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let created = CreatedDirs::create(parent)?;
    let result = unpack_into(source, target, parent, &info, overwrite, verify, progress);
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

fn unpack_into(
    source: &Path,
    target: &Path,
    parent: &Path,
    info: &super::entry::PackageInfo,
    overwrite: bool,
    verify: bool,
    progress: Progress<'_>,
) -> NpkResult<()> {
    let tmp = crate::store::commit::tmp_path(parent, "unpack");
    fs::create_dir(&tmp).at(&tmp)?;
    let mut guard = TempDir(Some(tmp.clone()));
    let total: u64 = info
        .entries
        .iter()
        .fold(0u64, |t, e| t.saturating_add(e.original_size));
    let mut done = 0u64;
    let mut checksum = 0u32;
    let mut v1 = crc32fast::Hasher::new();
    for e in &info.entries {
        let crc = extract(
            source,
            e,
            Some(&tmp.join(&e.name)),
            None,
            &mut v1,
            &mut |n| {
                done += n;
                progress(done, total);
            },
        )?;
        checksum = chain_checksum(checksum, crc);
    }
    if info.version == 1 {
        checksum = v1.finalize();
    }
    if verify && checksum != info.checksum {
        return Err(NpkError::Checksum {
            path: source.to_owned(),
            reason: format!("stored 0x{:08x}, computed 0x{checksum:08x}", info.checksum),
        });
    }
    check_metadata(source, fs::read(tmp.join(METADATA)).ok().as_deref())?;
    sync_dir(&tmp)?;
    if target.exists() {
        if !overwrite {
            return Err(exists_err(target));
        }
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
    sync_dir(parent)
}

/// Checks that a package's `metadata.npkm` (`None`: absent) decodes.
fn check_metadata(source: &Path, bytes: Option<&[u8]>) -> NpkResult<()> {
    let bytes = bytes.ok_or_else(|| {
        NpkError::corrupt(source, "the package holds no metadata.npkm".to_owned())
    })?;
    MetadataFile::decode(bytes)
        .map(|_| ())
        .map_err(|r| NpkError::corrupt(source, format!("metadata.npkm in the package: {r}")))
}

/// Decodes every member of `source` without writing anything and checks sizes, checksum and
/// that the metadata decodes.
pub fn verify(source: &Path) -> NpkResult<()> {
    let info = read_info(source)?;
    let mut checksum = 0u32;
    let mut v1 = crc32fast::Hasher::new();
    let mut meta: Option<Vec<u8>> = None;
    for e in &info.entries {
        let keep = (e.name == METADATA).then(|| meta.insert(Vec::new()));
        let crc = extract(source, e, None, keep, &mut v1, &mut |_| {})?;
        checksum = chain_checksum(checksum, crc);
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
    check_metadata(source, meta.as_deref())
}
