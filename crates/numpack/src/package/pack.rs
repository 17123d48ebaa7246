//! Writing a package from a store, one member at a time through bounded buffers.

use super::shuffle::{shuffle, BLOCK};
use super::{chain_checksum, Progress, MAGIC, VERSION, VERSION_SHUFFLE};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::format::metadata::MetadataFile;
use crate::format::names;
use crate::io::Flusher;
use crate::store::commit::{sync_dir, METADATA};
use crate::store::Store;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How to pack.
#[derive(Debug, Clone, Copy)]
pub struct PackOptions {
    /// zstd-compress each member (kept raw when that does not make it smaller).
    pub compress: bool,
    /// zstd level: the most effort spent. Large members may use a cheaper level when samples
    /// show it compresses them as well (see `level.rs`), unless `exact_level` is set.
    pub level: i32,
    /// Compress every member at exactly `level`.
    pub exact_level: bool,
    /// Byte-shuffle numeric data files by item size before compressing (version 3).
    pub shuffle: bool,
    /// zstd worker threads (0 = single-threaded).
    pub threads: u32,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            compress: true,
            level: 3,
            exact_level: false,
            shuffle: false,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        }
    }
}

/// Members at least this large are compressed straight from a mapping.
const MAPPED_BYTES: u64 = 1 << 20;
/// Bytes handed to the encoder per call from a mapping (also the progress step).
const MAPPED_SLICE: usize = 16 << 20;

/// Input bytes per zstd worker job when compressing on several threads.
const MT_JOB_SIZE: u32 = 2 << 20;

struct Member {
    name: String,
    path: PathBuf,
    size: u64,
    item: u8,
    /// Where the bytes come from when not `path` whole: a segmented array's segments in
    /// order, or bytes built here (the metadata naming one file per array).
    from: From,
}

enum From {
    File,
    Parts(Vec<(PathBuf, u64)>),
    Bytes(Vec<u8>),
}

impl Member {
    /// The member's bytes, front to back.
    fn reader(&self) -> NpkResult<Box<dyn Read + '_>> {
        Ok(match &self.from {
            From::File => Box::new(crate::io::fs::open_read(&self.path)?.take(self.size)),
            From::Bytes(b) => Box::new(&b[..]),
            From::Parts(parts) => {
                let mut r: Box<dyn Read> = Box::new(std::io::empty());
                for (p, len) in parts {
                    r = Box::new(r.chain(crate::io::fs::open_read(p)?.take(*len)));
                }
                r
            }
        })
    }
}

/// The members of a consistent snapshot: the metadata, each array's committed data bytes and
/// its bitmap, sorted by name. Call with the store's read lock held.
fn members(dir: &Path) -> NpkResult<Vec<Member>> {
    let meta_path = dir.join(METADATA);
    let bytes = crate::io::fs::read_bounded(&meta_path, crate::store::MAX_METADATA_BYTES)?
        .ok_or_else(|| {
            NpkError::io(
                &meta_path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no metadata.npkm"),
            )
        })?;
    let mut meta = MetadataFile::decode(&bytes).map_err(|r| NpkError::corrupt(&meta_path, r))?;
    let mut out = Vec::new();
    let mut single = false;
    for a in meta.arrays.values_mut() {
        if !names::is_safe_data_file(&a.data_file) {
            return Err(NpkError::corrupt(
                dir.join(METADATA),
                format!("unsafe data file {:?}", a.data_file),
            ));
        }
        let path = dir.join(&a.data_file);
        let from = if names::is_manifest(&a.data_file) {
            // A package holds one file per array: the segments, end to end.
            let segs = crate::read::segments::open(dir, &path, a)?;
            a.data_file = names::data_file(names::data_stem(&a.data_file).expect("stem"));
            single = true;
            From::Parts(segs.open.into_iter().map(|s| (s.path, s.bytes)).collect())
        } else {
            crate::read::deleted::check_data_len(dir, a)?;
            From::File
        };
        out.push(Member {
            name: a.data_file.clone(),
            path,
            size: a.size_bytes,
            item: a.dtype.size_bytes() as u8,
            from,
        });
        if let Some(f) = names::attrs_file(&a.data_file) {
            let path = dir.join(&f);
            // Checked as a reader checks it: a package carries only valid attributes.
            let some = !crate::store::attrs::read(dir, a)?.is_empty();
            if let Some(size) = crate::io::fs::file_len(&path)?.filter(|_| some) {
                out.push(Member {
                    name: f,
                    path,
                    size,
                    item: 0,
                    from: From::File,
                });
            }
        }
        if let Some(b) = names::bitmap_file(&a.data_file) {
            let path = dir.join(&b);
            if let Some(size) = crate::io::fs::file_len(&path)? {
                out.push(Member {
                    name: b,
                    path,
                    size,
                    item: 0,
                    from: From::File,
                });
            }
        }
    }
    let from = if single {
        From::Bytes(meta.encode())
    } else {
        From::File
    };
    let size = match &from {
        From::Bytes(b) => b.len() as u64,
        _ => bytes.len() as u64,
    };
    out.push(Member {
        name: METADATA.to_owned(),
        path: meta_path,
        size,
        item: 0,
        from,
    });
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The package file, nudging its [`Flusher`] as bytes go out.
struct Output<'a> {
    file: File,
    since: u64,
    flusher: &'a Flusher,
}

const NUDGE_BYTES: u64 = crate::io::FLUSH_BYTES;

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since += n as u64;
        if self.since >= NUDGE_BYTES {
            self.since = 0;
            self.flusher.nudge();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Output<'_> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.file.seek(pos)
    }
}

/// Fills `buf` from `r` as far as possible; returns the bytes read (short only at the end).
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Packs the store in `dir` into `target` (written to a temporary file, fsynced, renamed).
/// The store's lock is held while reading, so the package is one consistent state.
pub fn pack(
    dir: &Path,
    target: &Path,
    opts: &PackOptions,
    progress: Progress<'_>,
) -> NpkResult<()> {
    let store = Store::open(dir)?;
    let _guard = store.read_lock()?;
    let members = members(dir)?;
    let total: u64 = members.iter().map(|m| m.size).sum();
    let version = if opts.shuffle && opts.compress {
        VERSION_SHUFFLE
    } else {
        VERSION
    };
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = crate::store::commit::tmp_path(parent, "package.npkg");
    let result = (|| -> NpkResult<()> {
        let file = File::create(&tmp).at(&tmp)?;
        let mut flusher = Flusher::start(&file);
        let output = Output {
            file,
            since: 0,
            flusher: &flusher,
        };
        let mut out = BufWriter::with_capacity(1 << 20, output);
        let w = |out: &mut BufWriter<Output<'_>>, b: &[u8]| out.write_all(b).at(&tmp);
        w(&mut out, MAGIC)?;
        w(&mut out, &version.to_le_bytes())?;
        w(&mut out, &[u8::from(opts.compress)])?;
        w(&mut out, &(members.len() as u32).to_le_bytes())?;
        let mut checksum = 0u32;
        let mut done = 0u64;
        let mut raw = vec![0u8; BLOCK];
        let mut shuffled = vec![0u8; BLOCK];
        for m in &members {
            w(&mut out, &(m.name.len() as u32).to_le_bytes())?;
            w(&mut out, m.name.as_bytes())?;
            w(&mut out, &m.size.to_le_bytes())?;
            let sizes_at = out.stream_position().at(&tmp)?;
            w(&mut out, &0u64.to_le_bytes())?;
            let item = if version == VERSION_SHUFFLE && m.item > 1 {
                m.item
            } else {
                0
            };
            if version == VERSION_SHUFFLE {
                w(&mut out, &[item])?;
                w(&mut out, &(BLOCK as u32).to_le_bytes())?;
            }
            let start = out.stream_position().at(&tmp)?;
            let mut src = m.reader()?;
            let mut crc = crc32fast::Hasher::new();
            let mut mapped_crc: Option<u32> = None;
            let mut stored = 0u64;
            if opts.compress && m.size > 0 {
                let level = if opts.exact_level || !matches!(m.from, From::File) {
                    opts.level
                } else {
                    super::level::choose(&m.path, m.size, item, opts.level)?
                };
                let mut enc = zstd::stream::write::Encoder::new(&mut out, level).at(&tmp)?;
                // Records the content size in the frame header: one-shot decoders (Python
                // zstandard's `ZstdDecompressor().decompress`) need it.
                enc.set_pledged_src_size(Some(m.size)).at(&tmp)?;
                if opts.threads > 1 {
                    enc.multithread(opts.threads).at(&tmp)?;
                    // zstd's default job (4 windows, with in and out buffers per worker) took
                    // the peak to ~100 MiB; 2 MiB jobs keep it near 25 MiB at the same speed.
                    enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(MT_JOB_SIZE))
                        .at(&tmp)?;
                }
                if item <= 1 && m.size >= MAPPED_BYTES && matches!(m.from, From::File) {
                    // Straight from a mapping of the member, in large slices (no copy through
                    // a read buffer), with its checksum computed on another thread meanwhile:
                    // zstd's workers are never starved by this thread's serial work.
                    let file = crate::io::fs::open_read(&m.path)?;
                    let len = usize::try_from(m.size).map_err(|_| {
                        NpkError::corrupt(&m.path, "member larger than the address space")
                    })?;
                    // SAFETY: the store's read lock is held, so no writer replaces or trims the
                    // file, and `len` is within the committed bytes checked by `members`.
                    let map =
                        unsafe { memmap2::MmapOptions::new().len(len).map(&file) }.at(&m.path)?;
                    let _ = map.advise(memmap2::Advice::Sequential);
                    let fed = std::thread::scope(|sc| -> NpkResult<u32> {
                        let hasher = sc.spawn(|| {
                            let mut h = crc32fast::Hasher::new();
                            h.update(&map);
                            h.finalize()
                        });
                        for part in map.chunks(MAPPED_SLICE) {
                            enc.write_all(part).at(&tmp)?;
                            done += part.len() as u64;
                            progress(done, total);
                        }
                        Ok(hasher
                            .join()
                            .unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    })?;
                    mapped_crc = Some(fed);
                } else {
                    loop {
                        let n = fill(&mut src, &mut raw).at(&m.path)?;
                        if n == 0 {
                            break;
                        }
                        crc.update(&raw[..n]);
                        if item > 1 {
                            shuffle(&raw[..n], &mut shuffled[..n], usize::from(item));
                            enc.write_all(&shuffled[..n]).at(&tmp)?;
                        } else {
                            enc.write_all(&raw[..n]).at(&tmp)?;
                        }
                        done += n as u64;
                        progress(done, total);
                    }
                }
                enc.finish().at(&tmp)?;
                stored = out.stream_position().at(&tmp)? - start;
            }
            if stored == 0 || stored >= m.size {
                mapped_crc = None;
                // Raw is smaller (or compression is off): store the bytes as they are.
                out.seek(SeekFrom::Start(start)).at(&tmp)?;
                let mut src = m.reader()?;
                crc = crc32fast::Hasher::new();
                let compressed_before = stored > 0;
                loop {
                    let n = fill(&mut src, &mut raw).at(&m.path)?;
                    if n == 0 {
                        break;
                    }
                    crc.update(&raw[..n]);
                    w(&mut out, &raw[..n])?;
                    if !compressed_before {
                        done += n as u64;
                        progress(done, total);
                    }
                }
                stored = 0;
                if version == VERSION_SHUFFLE && item > 1 {
                    let end = out.stream_position().at(&tmp)?;
                    out.seek(SeekFrom::Start(sizes_at + 8)).at(&tmp)?;
                    w(&mut out, &[0u8])?;
                    out.seek(SeekFrom::Start(end)).at(&tmp)?;
                }
            }
            let end = out.stream_position().at(&tmp)?;
            out.seek(SeekFrom::Start(sizes_at)).at(&tmp)?;
            w(&mut out, &stored.to_le_bytes())?;
            out.seek(SeekFrom::Start(end)).at(&tmp)?;
            checksum = chain_checksum(checksum, mapped_crc.unwrap_or_else(|| crc.finalize()));
        }
        w(&mut out, &checksum.to_le_bytes())?;
        let end = out.stream_position().at(&tmp)?;
        let file = out
            .into_inner()
            .map_err(|e| NpkError::io(&tmp, e.into_error()))?
            .file;
        flusher.finish();
        file.set_len(end).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        fs::rename(&tmp, target).at(target)?;
        sync_dir(parent)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
