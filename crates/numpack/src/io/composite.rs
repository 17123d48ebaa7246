//! One contiguous view of byte ranges of several files laid end to end (the segments of a
//! segmented array), so every reader of an array sees one slice whatever its layout.
//!
//! A range is mapped from its file where its file offset and its place in the view fall on
//! the same position within a page (the view then shares the page cache, nothing is read up
//! front); the pages it shares with a neighbour, and ranges whose offsets do not line up,
//! are read into anonymous memory when the view is built.

use crate::error::{NpkError, NpkResult};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::ptr::NonNull;

/// One range of the view.
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    /// The file (at least `offset + len` bytes long: checked by the caller).
    pub file: &'a File,
    /// Its path, for errors.
    pub path: &'a Path,
    /// Where the range starts in the file.
    pub offset: u64,
    /// Its length.
    pub len: u64,
}

/// The view: read-only, or private and writable (writes never reach the files).
#[derive(Debug)]
pub struct Composite {
    ptr: NonNull<u8>,
    len: usize,
    reserved: usize,
}

// SAFETY: the view owns its mapping; shared references only read it.
unsafe impl Send for Composite {}
// SAFETY: as above.
unsafe impl Sync for Composite {}

fn page() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

fn os_error(path: &Path, what: &str) -> NpkError {
    NpkError::io(
        path,
        std::io::Error::other(format!("{what}: {}", std::io::Error::last_os_error())),
    )
}

/// Most bytes a view reads into memory (the parts that cannot be mapped).
pub const MAX_COPIED: u64 = 1 << 30;

/// Bytes a piece's copied parts may have beyond four times what its file holds on disk (a
/// sparse file must not make a view read gigabytes of holes).
const SPARSE_SLACK: u64 = 64 << 20;

/// Where one piece lies in the view, and the pages of the view mapped from its file (the
/// rest of the piece is read into memory).
struct Place {
    at: std::ops::Range<usize>,
    mapped: Option<std::ops::Range<usize>>,
}

impl Place {
    /// The piece's bytes that are read rather than mapped.
    fn copied(&self) -> u64 {
        let mapped = self
            .mapped
            .as_ref()
            .map_or(0, |m| m.end.min(self.at.end) - m.start);
        (self.at.len() - mapped) as u64
    }
}

/// The places of `pieces` laid end to end. A piece is mapped where its file offset and its
/// place in the view fall on the same position within a page: its whole pages, and for the
/// last piece its final partial page too (bytes past its end read as zeros and are not part
/// of the view); the pages it shares with a neighbour are read.
fn places(pieces: &[Piece<'_>], page: usize) -> Vec<Place> {
    let mut pos = 0usize;
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let end = pos + p.len as usize;
            let mapped = ((p.offset % page as u64) as usize == pos % page)
                .then(|| {
                    let first = pos.div_ceil(page) * page;
                    let stop = if i + 1 == pieces.len() {
                        end.div_ceil(page) * page
                    } else {
                        end / page * page
                    };
                    first..stop
                })
                .filter(|m| m.end > m.start);
            let place = Place {
                at: pos..end,
                mapped,
            };
            pos = end;
            place
        })
        .collect()
}

impl Composite {
    /// Lays `pieces` end to end. `writable`: a private view whose pages may be written.
    /// Fails (`OutOfMemory`) when more than [`MAX_COPIED`] bytes could not be mapped.
    pub fn map(pieces: &[Piece<'_>], writable: bool, at: &Path) -> NpkResult<Self> {
        let total = pieces
            .iter()
            .try_fold(0u64, |t, p| t.checked_add(p.len))
            .and_then(|t| usize::try_from(t).ok())
            .ok_or_else(|| {
                NpkError::corrupt(at, "segments larger than the address space".to_owned())
            })?;
        let page = page();
        let places = places(pieces, page);
        let total_copied: u64 = places.iter().map(Place::copied).sum();
        if total_copied > MAX_COPIED {
            return Err(NpkError::OutOfMemory(format!(
                "{}: one view of this segmented array would read {total_copied} bytes into \
                 memory (its segments do not start on page boundaries); read it with load, \
                 getitem or stream_load, or call update() on it once to store it as one file \
                 (the published 0.7 reads that too)",
                at.display()
            )));
        }
        for (p, place) in pieces.iter().zip(&places) {
            let c = place.copied();
            let present = p.file.metadata().map_or(0, |m| {
                std::os::unix::fs::MetadataExt::blocks(&m).saturating_mul(512)
            });
            if c > SPARSE_SLACK.saturating_add(present.saturating_mul(4)) {
                return Err(NpkError::corrupt(
                    p.path,
                    format!("claims {c} bytes but holds only {present} on disk (a sparse file)"),
                ));
            }
        }
        let reserved = total.div_ceil(page) * page;
        if reserved == 0 {
            return Ok(Composite {
                ptr: NonNull::dangling(),
                len: 0,
                reserved: 0,
            });
        }
        // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(os_error(at, "reserving the view of the segments"));
        }
        let view = Composite {
            ptr: NonNull::new(base.cast()).expect("mmap returns a non-null address"),
            len: total,
            reserved,
        };
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let share = if writable {
            libc::MAP_PRIVATE
        } else {
            libc::MAP_SHARED
        };
        for (p, place) in pieces.iter().zip(&places) {
            let (pos, end) = (place.at.start, place.at.end);
            let (head, tail) = match &place.mapped {
                Some(m) => {
                    let off = p.offset + (m.start - pos) as u64;
                    // SAFETY: `m` lies inside the reservation this view owns (the last piece's
                    // partial page ends at `reserved`), and the file holds `offset + len`
                    // bytes, so every mapped page has data.
                    let got = unsafe {
                        libc::mmap(
                            view.ptr.as_ptr().add(m.start).cast(),
                            m.len(),
                            prot,
                            share | libc::MAP_FIXED,
                            p.file.as_raw_fd(),
                            off as libc::off_t,
                        )
                    };
                    if got == libc::MAP_FAILED {
                        return Err(os_error(p.path, "mapping a segment"));
                    }
                    (pos..m.start, m.end.min(end)..end)
                }
                None => (pos..end, end..end),
            };
            for r in [head, tail] {
                if r.is_empty() {
                    continue;
                }
                // SAFETY: the range lies in the reservation's anonymous, writable pages.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(view.ptr.as_ptr().add(r.start), r.len())
                };
                p.file
                    .read_exact_at(dst, p.offset + (r.start - pos) as u64)
                    .map_err(|e| NpkError::io(p.path, e))?;
            }
        }
        if !writable {
            // SAFETY: the reservation is this view's own mapping.
            if unsafe { libc::mprotect(view.ptr.as_ptr().cast(), reserved, libc::PROT_READ) } != 0 {
                return Err(os_error(at, "protecting the view of the segments"));
            }
        }
        Ok(view)
    }

    /// Tells the kernel how the view will be read (`libc::MADV_*`).
    pub fn advise(&self, advice: libc::c_int) {
        if self.reserved > 0 {
            // SAFETY: advice on this view's own mapping; it changes no byte.
            unsafe { libc::madvise(self.ptr.as_ptr().cast(), self.reserved, advice) };
        }
    }

    /// Writes the view's dirty pages back (nothing for a private view: a no-op).
    pub fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::ops::Deref for Composite {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` bytes from `ptr` are mapped for the view's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Composite {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; only private views are handed out mutably by their owners
        // (read-only views stay behind shared references).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Composite {
    fn drop(&mut self) {
        if self.reserved > 0 {
            // SAFETY: unmaps exactly the reservation this view made.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.reserved) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn the_view_is_the_ranges_end_to_end(
            ranges in proptest::collection::vec((0u64..9000, 0u64..12000), 1..5),
            writable in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut files = Vec::new();
            let mut want = Vec::new();
            for (i, &(off, len)) in ranges.iter().enumerate() {
                let path = dir.path().join(format!("f{i}"));
                let bytes: Vec<u8> = (0..off + len).map(|b| (b as u8) ^ (i as u8 * 37)).collect();
                std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
                want.extend_from_slice(&bytes[off as usize..]);
                files.push((std::fs::File::open(&path).unwrap(), path, off, len));
            }
            let pieces: Vec<Piece<'_>> = files
                .iter()
                .map(|(f, p, off, len)| Piece { file: f, path: p, offset: *off, len: *len })
                .collect();
            let mut view = Composite::map(&pieces, writable, dir.path()).unwrap();
            prop_assert_eq!(&view[..], &want[..]);
            if writable && !view.is_empty() {
                view[0] ^= 1;
                let (f, _, off, _) = &files[0];
                let mut b = [0u8];
                f.read_exact_at(&mut b, *off).ok();
            }
        }
    }
}
