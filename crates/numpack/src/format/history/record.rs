//! One record of the log: what a commit changed, as it was before.

use super::{MAX_VERSION, RECORD_HEAD, RECORD_MAGIC};
use crate::format::cursor::Cursor;
use crate::format::metadata::{ArrayMetadata, MetadataFile};
use crate::format::names;
use std::collections::BTreeMap;

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Anything else.
    Other = 0,
    /// `save`.
    Save = 1,
    /// `append`.
    Append = 2,
    /// `replace`.
    Replace = 3,
    /// `drop` of rows.
    DropRows = 4,
    /// `drop` of whole arrays.
    DropArrays = 5,
    /// `update` (compaction).
    Compact = 6,
    /// `reset`.
    Reset = 7,
    /// `clone`.
    Clone = 8,
    /// `restore`.
    Restore = 9,
}

impl Op {
    /// The operation's name, as listed by `versions()`.
    pub fn name(self) -> &'static str {
        match self {
            Op::Other => "other",
            Op::Save => "save",
            Op::Append => "append",
            Op::Replace => "replace",
            Op::DropRows => "drop_rows",
            Op::DropArrays => "drop_arrays",
            Op::Compact => "update",
            Op::Reset => "reset",
            Op::Clone => "clone",
            Op::Restore => "restore",
        }
    }

    fn from_code(c: u8) -> Result<Self, String> {
        Ok(match c {
            0 => Op::Other,
            1 => Op::Save,
            2 => Op::Append,
            3 => Op::Replace,
            4 => Op::DropRows,
            5 => Op::DropArrays,
            6 => Op::Compact,
            7 => Op::Reset,
            8 => Op::Clone,
            9 => Op::Restore,
            _ => return Err(format!("unknown operation code {c}")),
        })
    }
}

/// The old bytes of rows a commit overwrote in one data file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowSet {
    /// The data file, or the bitmap file (then the rows are its 8-byte words, the header's
    /// two included), bare name.
    pub file: String,
    /// Bytes of each row (at least 1).
    pub row_bytes: u64,
    /// Physical rows, ascending, each once.
    pub rows: Vec<u64>,
    /// Their old bytes, `row_bytes` each, in the order of `rows`.
    pub old: Vec<u8>,
    /// crc32 of the old rows' bytes, in order (tells an abandoned replace).
    pub old_crc: u32,
    /// crc32 of the new rows' bytes, in order (tells a committed one).
    pub new_crc: u32,
}

impl RowSet {
    /// `(physical row, old bytes)`, ascending. Decoded and built sets have `row_bytes > 0`;
    /// `max(1)` keeps a hand-built zero-width set from panicking in `chunks_exact`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let each = usize::try_from(self.row_bytes).unwrap_or(usize::MAX).max(1);
        self.rows.iter().copied().zip(self.old.chunks_exact(each))
    }
}

/// One commit of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The version this commit made.
    pub version: u64,
    /// When (µs since the epoch).
    pub time_us: u64,
    /// What it did.
    pub op: Op,
    /// The commit never happened (state byte 1).
    pub aborted: bool,
    /// crc32 of the metadata file before.
    pub pre_meta_crc: u32,
    /// crc32 of the metadata file after.
    pub post_meta_crc: u32,
    /// Every array the commit touched, with its record before (`None`: it did not exist).
    pub arrays: Vec<(String, Option<ArrayMetadata>)>,
    /// Every data or bitmap file the commit replaced, created or removed: `true` when it
    /// existed before (kept under [`kept_name`]).
    pub files: Vec<(String, bool)>,
    /// Rows overwritten in place.
    pub rows: Vec<RowSet>,
}

/// The name of a file kept for `version` (replaced or removed by that commit).
pub fn kept_name(version: u64, file: &str) -> String {
    format!(".numpack.v{version}.{file}")
}

/// The version and original file of a kept file's name.
pub fn parse_kept_name(name: &str) -> Option<(u64, &str)> {
    let rest = name.strip_prefix(".numpack.v")?;
    let (v, file) = rest.split_once('.')?;
    let version = v.parse().ok().filter(|_| !v.starts_with('+'))?;
    (names::is_safe_data_file(file) || names::is_bitmap_file(file)).then_some((version, file))
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Record {
    /// Encodes the record, head included.
    pub fn encode(&self) -> Vec<u8> {
        let rows: usize = self
            .rows
            .iter()
            .map(|s| 48 + s.file.len() + s.rows.len() * 8 + s.old.len())
            .sum();
        let mut b = Vec::with_capacity(RECORD_HEAD + 64 + rows + self.arrays.len() * 160);
        b.resize(RECORD_HEAD, 0);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&self.time_us.to_le_bytes());
        b.push(self.op as u8);
        b.extend_from_slice(&self.pre_meta_crc.to_le_bytes());
        b.extend_from_slice(&self.post_meta_crc.to_le_bytes());
        b.extend_from_slice(&(self.arrays.len() as u32).to_le_bytes());
        for (name, rec) in &self.arrays {
            put_str(&mut b, name);
            match rec {
                None => b.push(0),
                Some(r) => {
                    b.push(1);
                    let one = MetadataFile {
                        arrays: BTreeMap::from([(r.name.clone(), r.clone())]),
                    }
                    .encode();
                    b.extend_from_slice(&(one.len() as u32).to_le_bytes());
                    b.extend_from_slice(&one);
                }
            }
        }
        b.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        for (file, kept) in &self.files {
            put_str(&mut b, file);
            b.push(u8::from(*kept));
        }
        b.extend_from_slice(&(self.rows.len() as u32).to_le_bytes());
        for s in &self.rows {
            put_str(&mut b, &s.file);
            b.extend_from_slice(&s.row_bytes.to_le_bytes());
            b.extend_from_slice(&(s.rows.len() as u64).to_le_bytes());
            b.extend_from_slice(&s.old_crc.to_le_bytes());
            b.extend_from_slice(&s.new_crc.to_le_bytes());
            for (r, old) in s.iter() {
                b.extend_from_slice(&r.to_le_bytes());
                b.extend_from_slice(old);
            }
        }
        let body = b.len() - RECORD_HEAD;
        let crc = crc32fast::hash(&b[RECORD_HEAD..]);
        b[..4].copy_from_slice(RECORD_MAGIC);
        b[4..8].copy_from_slice(&(body as u32).to_le_bytes());
        b[8..12].copy_from_slice(&crc.to_le_bytes());
        b[12] = u8::from(self.aborted);
        b
    }

    pub(super) fn decode_body(body: &[u8], aborted: bool) -> Result<Self, String> {
        let mut r = Cursor::new(body);
        let version = r.u64()?;
        if version == 0 || version > MAX_VERSION {
            return Err(format!("version {version} out of range"));
        }
        let time_us = r.u64()?;
        let op = Op::from_code(r.u8()?)?;
        let pre_meta_crc = r.u32()?;
        let post_meta_crc = r.u32()?;
        let n = r.u32()? as usize;
        if n > r.left() / 5 {
            return Err(format!("{n} arrays do not fit in the record"));
        }
        let mut arrays = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string()?;
            names::validate(&name).map_err(|e| e.to_string())?;
            let rec = match r.u8()? {
                0 => None,
                1 => {
                    let len = r.u32()? as usize;
                    let m = MetadataFile::decode(r.take(len)?)?;
                    let mut it = m.arrays.into_values();
                    match (it.next(), it.next()) {
                        (Some(a), None) if a.name == name => Some(a),
                        _ => return Err(format!("the old record of '{name}' is not one record")),
                    }
                }
                t => return Err(format!("array '{name}': bad presence byte {t}")),
            };
            arrays.push((name, rec));
        }
        let n = r.u32()? as usize;
        if n > r.left() / 5 {
            return Err(format!("{n} files do not fit in the record"));
        }
        let mut files = Vec::with_capacity(n);
        for _ in 0..n {
            let file = r.file_name()?;
            if !names::is_safe_data_file(&file) && !names::is_bitmap_file(&file) {
                return Err(format!("{file:?} is not a data or bitmap file name"));
            }
            let kept = match r.u8()? {
                0 => false,
                1 => true,
                t => return Err(format!("file {file:?}: bad state byte {t}")),
            };
            files.push((file, kept));
        }
        let n = r.u32()? as usize;
        if n > r.left() / 28 {
            return Err(format!("{n} row sets do not fit in the record"));
        }
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            let file = r.file_name()?;
            if !names::is_safe_data_file(&file) && !names::is_bitmap_file(&file) {
                return Err(format!("{file:?} is not a data or bitmap file name"));
            }
            let row_bytes = r.u64()?;
            let count = r.u64()?;
            let (old_crc, new_crc) = (r.u32()?, r.u32()?);
            let each = row_bytes.checked_add(8).filter(|_| row_bytes > 0);
            let fits = each.and_then(|e| e.checked_mul(count));
            if fits.is_none_or(|need| need > r.left() as u64) {
                return Err(format!(
                    "{count} rows of {row_bytes} bytes of {file} do not fit in the record"
                ));
            }
            let mut set = Vec::with_capacity(count as usize);
            let mut old = Vec::with_capacity((count * row_bytes) as usize);
            let mut last = None;
            for _ in 0..count {
                let row = r.u64()?;
                if last.is_some_and(|l| row <= l) {
                    return Err(format!("rows of {file} are not ascending"));
                }
                last = Some(row);
                set.push(row);
                old.extend_from_slice(r.take(row_bytes as usize)?);
            }
            rows.push(RowSet {
                file,
                row_bytes,
                rows: set,
                old,
                old_crc,
                new_crc,
            });
        }
        r.finish()?;
        Ok(Record {
            version,
            time_us,
            op,
            aborted,
            pre_meta_crc,
            post_meta_crc,
            arrays,
            files,
            rows,
        })
    }

    /// Bytes the record takes in the log (kept files not included).
    pub fn payload_bytes(&self) -> u64 {
        self.encode().len() as u64
    }
}
