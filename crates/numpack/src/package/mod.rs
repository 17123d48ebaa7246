//! `.npkg` packages: a whole store in one file (REFERENCE §4.1 layout, versions 1–3).
//!
//! ```text
//! magic "NPKG" | u32 version | u8 compression | u32 file count
//! per file: u32 name length | name | u64 original size | u64 stored size (0 = raw)
//!           [v3: u8 shuffle item size (0 = none) | u32 shuffle block size] | payload
//!           (a shuffled member's block size is a non-zero multiple of its item size,
//!           at most 64 MiB)
//! u32 checksum
//! ```
//! Members are streamed through bounded buffers in both directions; a package is written to a
//! temporary file, fsynced and renamed, and unpacked into a temporary directory that is
//! renamed into place only when every check passed.

mod entry;
mod level;
mod members;
mod pack;
mod shuffle;
mod unpack;

pub use entry::{read_info, Entry, PackageInfo};
pub use pack::{pack, PackOptions};
pub use unpack::{unpack, verify};

/// The magic bytes.
pub const MAGIC: &[u8; 4] = b"NPKG";
/// The version written by default.
pub const VERSION: u32 = 2;
/// The version written with byte shuffling.
pub const VERSION_SHUFFLE: u32 = 3;
/// Largest shuffle block a reader accepts (its buffers are this big); numpack writes 1 MiB.
pub const MAX_SHUFFLE_BLOCK: u32 = 64 << 20;

/// Progress callback: `(bytes done, bytes in all)`.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Whether `name` is a bare store file name a package may hold.
pub fn is_member_name(name: &str) -> bool {
    let bare = !name.is_empty() && name.len() <= 255 && !name.contains(['/', '\\', '\0']);
    bare && (name == "metadata.npkm"
        || (name.starts_with("data_") && name.ends_with(".npkd") && name.len() > 10)
        || (name.starts_with("deleted_") && name.ends_with(".npkb") && name.len() > 13)
        || crate::format::names::is_attrs_file(name))
}

/// The checksum step of versions 2 and 3: `c = crc32(le(crc32(file)), c)`.
pub fn chain_checksum(c: u32, file_crc: u32) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(c);
    h.update(&file_crc.to_le_bytes());
    h.finalize()
}
