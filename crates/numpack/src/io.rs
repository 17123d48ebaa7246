//! Positional file I/O helpers shared by writers and readers.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Above this size, copies in memory are split across threads.
pub const PARALLEL_BYTES: usize = 16 << 20;

/// Writes `data` at `offset`. One sequential write: buffered writes to one file serialise on
/// its inode lock, so threads would only add contention.
pub fn write_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(data, offset)
}

/// Copies `src` into `dst` (same length), in parallel chunks when large.
pub fn copy_parallel(dst: &mut [u8], src: &[u8]) {
    #[cfg(feature = "rayon")]
    if src.len() >= PARALLEL_BYTES {
        use rayon::prelude::*;
        let chunk = src
            .len()
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1 << 20);
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
        return;
    }
    dst.copy_from_slice(src);
}

/// Copies `len` bytes of `src` at `src_off` to `dst` at `dst_off`, inside the kernel
/// (`copy_file_range`) where possible. Moves both files' cursors.
pub fn copy_range(src: &File, src_off: u64, dst: &File, dst_off: u64, len: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let (mut s, mut d) = (src, dst);
    s.seek(SeekFrom::Start(src_off))?;
    d.seek(SeekFrom::Start(dst_off))?;
    let copied = io::copy(&mut s.take(len), &mut d)?;
    if copied != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("source ended after {copied} of {len} bytes"),
        ));
    }
    Ok(())
}
