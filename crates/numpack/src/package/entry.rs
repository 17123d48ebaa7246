//! Reading a package's header and member table without extracting it.

use super::{is_member_name, MAGIC, MAX_SHUFFLE_BLOCK, VERSION_SHUFFLE};
use crate::error::{IoContext, NpkError, NpkResult};
use crate::store::commit::METADATA;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Largest `metadata.npkm` a package may declare (the most a store reads).
const MAX_METADATA: u64 = crate::store::MAX_METADATA_BYTES;

/// One member of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Bare file name inside the store.
    pub name: String,
    /// Uncompressed size.
    pub original_size: u64,
    /// Stored size; 0 means stored raw (`original_size` bytes).
    pub compressed_size: u64,
    /// Byte-shuffle item size (version 3), 0 for none.
    pub shuffle: u8,
    /// Byte-shuffle block size (version 3).
    pub shuffle_block: u32,
    /// Offset of the payload in the package.
    pub offset: u64,
}

impl Entry {
    /// Bytes the payload occupies in the package.
    pub fn stored_size(&self) -> u64 {
        if self.compressed_size > 0 {
            self.compressed_size
        } else {
            self.original_size
        }
    }
}

/// A package's header and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    /// Format version (1, 2 or 3).
    pub version: u32,
    /// Compression byte (0 none, 1 compressed members).
    pub compression: u8,
    /// Members in file order.
    pub entries: Vec<Entry>,
    /// The stored checksum.
    pub checksum: u32,
}

pub(crate) fn read_exact<R: Read>(r: &mut R, buf: &mut [u8], path: &Path) -> NpkResult<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            NpkError::corrupt(path, "Invalid .npkg file: truncated".to_owned())
        } else {
            NpkError::io(path, e)
        }
    })
}

fn u32_of<R: Read>(r: &mut R, path: &Path) -> NpkResult<u32> {
    let mut b = [0u8; 4];
    read_exact(r, &mut b, path)?;
    Ok(u32::from_le_bytes(b))
}

fn u64_of<R: Read>(r: &mut R, path: &Path) -> NpkResult<u64> {
    let mut b = [0u8; 8];
    read_exact(r, &mut b, path)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads and validates the member table: names, duplicates, and that every payload lies
/// inside the file, ending exactly 4 bytes before its end (the checksum).
pub fn read_info(path: &Path) -> NpkResult<PackageInfo> {
    let bad = |why: String| NpkError::corrupt(path, why);
    let file = File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    let mut r = BufReader::new(file);
    let mut magic = [0u8; 4];
    read_exact(&mut r, &mut magic, path)
        .map_err(|_| bad("Invalid .npkg file: too short".into()))?;
    if &magic != MAGIC {
        return Err(bad("Invalid .npkg file: bad magic".into()));
    }
    let version = u32_of(&mut r, path)?;
    if version == 0 || version > VERSION_SHUFFLE {
        return Err(NpkError::InvalidOperation(format!(
            "unsupported .npkg version {version} (this numpack reads versions 1 to {VERSION_SHUFFLE})"
        )));
    }
    let mut c = [0u8; 1];
    read_exact(&mut r, &mut c, path)?;
    let compression = c[0];
    if compression > 1 {
        return Err(bad(format!("unknown compression code {compression}")));
    }
    let count = u32_of(&mut r, path)?;
    let mut pos: u64 = 13;
    let mut entries: Vec<Entry> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for i in 0..count {
        let name_len = u32_of(&mut r, path)? as u64;
        if name_len > 255 || pos + 4 + name_len > len {
            return Err(bad(format!("member {i}: bad name length {name_len}")));
        }
        let mut name = vec![0u8; name_len as usize];
        read_exact(&mut r, &mut name, path)?;
        let name =
            String::from_utf8(name).map_err(|_| bad(format!("member {i}: name not UTF-8")))?;
        if !is_member_name(&name) {
            return Err(bad(format!(
                "member {i}: {name:?} is not a store file name (metadata.npkm, data_*.npkd, deleted_*.npkb, attrs_*.npka)"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(bad(format!("member {name:?} appears twice")));
        }
        let original_size = u64_of(&mut r, path)?;
        let compressed_size = u64_of(&mut r, path)?;
        if name == METADATA && original_size > MAX_METADATA {
            // Readers hold the metadata in memory: refuse absurd sizes before decoding.
            return Err(bad(format!(
                "member {name:?} declares {original_size} bytes (at most {MAX_METADATA})"
            )));
        }
        pos += 4 + name_len + 16;
        let (mut shuffle, mut shuffle_block) = (0u8, 0u32);
        if version == VERSION_SHUFFLE {
            read_exact(&mut r, &mut c, path)?;
            shuffle = c[0];
            shuffle_block = u32_of(&mut r, path)?;
            pos += 5;
            let bad_block = shuffle_block == 0
                || shuffle_block > MAX_SHUFFLE_BLOCK
                || !shuffle_block.is_multiple_of(u32::from(shuffle));
            if shuffle > 16 || (shuffle > 1 && bad_block) {
                return Err(bad(format!(
                    "member {name:?}: bad shuffle parameters (item size {shuffle}, block {shuffle_block})"
                )));
            }
        }
        if compressed_size > 0 && compression == 0 {
            return Err(bad(format!(
                "member {name:?} is compressed in an uncompressed package"
            )));
        }
        let e = Entry {
            name,
            original_size,
            compressed_size,
            shuffle,
            shuffle_block,
            offset: pos,
        };
        pos = pos
            .checked_add(e.stored_size())
            .filter(|&p| p <= len.saturating_sub(4))
            .ok_or_else(|| {
                bad(format!(
                    "member {:?}: {} bytes declared but the file ends first (truncated?)",
                    e.name,
                    e.stored_size()
                ))
            })?;
        r.seek(SeekFrom::Start(pos)).at(path)?;
        entries.push(e);
    }
    if pos + 4 != len {
        return Err(bad(format!(
            "{} unexpected bytes after the last member",
            len.saturating_sub(pos + 4)
        )));
    }
    let checksum = u32_of(&mut r, path)?;
    Ok(PackageInfo {
        version,
        compression,
        entries,
        checksum,
    })
}
